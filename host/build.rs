//! Builds every guest program (examples/* and tests/programs) for
//! `wasm32-wasip2`, and tells the crate where each component is:
//! `PRISM_GUEST_<NAME>` is the path of `<name>.wasm` (`-` becomes `_`).
//! `prism bench` embeds `PRISM_GUEST_BENCH`; the tests run the others.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host/ is inside the workspace").to_path_buf();
    for dir in ["wit", "guest-sdk", "examples", "tests/programs"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }

    let mut packages = vec!["prism-test-programs".to_string()];
    packages.extend(crate_names(&root.join("examples")));

    let target_dir = root.join("target/guests");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--release", "--target", "wasm32-wasip2", "--target-dir"])
        .arg(&target_dir)
        // Small components: no DWARF, but keep names for backtraces.
        .env("CARGO_PROFILE_RELEASE_DEBUG", "false")
        .env("CARGO_PROFILE_RELEASE_STRIP", "debuginfo")
        // Flags meant for the host build must not leak into the guests'.
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC_WORKSPACE_WRAPPER");
    for p in &packages {
        cmd.args(["-p", p]);
    }
    let status = cmd.status().expect("cannot run cargo to build the guests");
    assert!(
        status.success(),
        "building the guest components failed; is the target installed? (`rustup target add wasm32-wasip2`)"
    );

    let out = target_dir.join("wasm32-wasip2/release");
    let mut names = Vec::new();
    for wasm in std::fs::read_dir(&out).expect("guest output directory").flatten() {
        let path = wasm.path();
        if path.extension().is_some_and(|e| e == "wasm") {
            let name = path.file_stem().unwrap().to_string_lossy().to_uppercase().replace('-', "_");
            println!("cargo:rustc-env=PRISM_GUEST_{name}={}", path.display());
            names.push(name);
        }
    }
    // tests/all checks that every guest is run by some test.
    names.sort();
    println!("cargo:rustc-env=PRISM_GUESTS={}", names.join(","));
}

/// Package names of the crates directly under `dir`.
fn crate_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("examples/ exists")
        .flatten()
        .map(|e| e.path().join("Cargo.toml"))
        .filter(|m| m.exists())
        .filter_map(|m| package_name(&m))
        .collect();
    names.sort();
    names
}

fn package_name(manifest: &PathBuf) -> Option<String> {
    let text = std::fs::read_to_string(manifest).ok()?;
    let line = text.lines().find(|l| l.trim_start().starts_with("name"))?;
    Some(line.split('"').nth(1)?.to_string())
}
