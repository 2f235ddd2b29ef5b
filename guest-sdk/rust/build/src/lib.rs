//! Builds Rust guest crates of this workspace into `wasm32-wasip2`
//! components, from a build script: the `prism` binary builds the one guest
//! it embeds (`prism bench`'s), the tests build all of them. The guests go to
//! their own target directory, `target/guests`, so a guest build never
//! waits on (or invalidates) the host's.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The workspace root, `up` directories above the calling package.
pub fn workspace_root(up: usize) -> PathBuf {
    let mut root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("run from a build script"));
    for _ in 0..up {
        root.pop();
    }
    root
}

/// Runs `cargo build --release --target wasm32-wasip2` for `selection`
/// (`-p`, `--bin` arguments) in `root`, tells cargo to rerun the build
/// script when guest sources change, and returns where the components are.
pub fn build(root: &Path, selection: &[String]) -> PathBuf {
    for dir in ["wit", "guest-sdk", "examples", "tests/programs"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let target_dir = root.join("target/guests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir)
        .args(selection)
        // Small components: no DWARF, but keep names for backtraces.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        // Flags meant for the host build must not leak into the guests'.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .status()
        .expect("cannot run cargo to build the guests");
    assert!(
        status.success(),
        "building the guest components failed; is the target installed? (`rustup target add wasm32-wasip2`)"
    );
    target_dir.join("wasm32-wasip2/release")
}

/// Package names of the crates directly under `dir`, sorted.
pub fn packages_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list `{}`: {e}", dir.display()))
        .flatten()
        .map(|e| e.path().join("Cargo.toml"))
        .filter(|m| m.exists())
        .filter_map(|m| package_name(&m))
        .collect();
    names.sort();
    names
}

fn package_name(manifest: &Path) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let line = text.lines().find(|l| l.trim_start().starts_with("name"))?;
    Some(line.split('"').nth(1)?.to_string())
}
