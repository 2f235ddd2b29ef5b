use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, ValueEnum};

/// Start a program of your own, outside prism's repository: a directory
/// NAME holding a Ray-style program that builds and runs with one command.
#[derive(Args)]
pub struct New {
    /// The directory to create (and the program's name)
    name: PathBuf,

    /// The language to write it in
    #[arg(long, value_enum, default_value_t = Lang::Python)]
    lang: Lang,
}

#[derive(Clone, Copy, ValueEnum)]
enum Lang {
    /// A script, run with `prism run app.py`
    Python,
    /// A cargo project for wasm32-wasip2, run with `cargo run --release`
    Rust,
}

/// The Rust SDK in the checkout this binary was built from: programs of
/// one's own depend on it by path.
const RUST_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../guest-sdk/rust");

/// The templates are the seed's square example in each language, so they
/// are built and tested with the examples.
const PYTHON_APP: &str = include_str!("../../../../examples/python/square.py");
const RUST_MAIN: &str = include_str!("../../../../examples/square/src/main.rs");

impl New {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let dir = &self.name;
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).context("a directory name is needed")?;
        if dir.exists() {
            bail!("`{}` already exists: pick another name", dir.display());
        }
        let how = match self.lang {
            Lang::Python => {
                write(dir, "app.py", PYTHON_APP)?;
                "prism run app.py"
            }
            Lang::Rust => {
                let sdk = std::fs::canonicalize(RUST_SDK).with_context(|| {
                    format!("a Rust program depends on the SDK in prism's checkout, which is gone from `{RUST_SDK}`")
                })?;
                let prism = std::env::current_exe().context("cannot find the prism binary")?;
                let crate_name = name.replace(|c: char| !c.is_ascii_alphanumeric() && c != '_', "_");
                let manifest = format!(
                    "[package]\nname = \"{crate_name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n\
                     [dependencies]\nprism-guest = {{ path = {} }}\n\n\
                     # A project of its own, not a member of an enclosing workspace.\n[workspace]\n",
                    toml_string(&sdk)
                );
                let config = format!(
                    "# Guests are components for wasm32-wasip2; `cargo run` hands the built one to prism.\n\
                     [build]\ntarget = \"wasm32-wasip2\"\n\n[target.wasm32-wasip2]\nrunner = [{}, \"run\"]\n",
                    toml_string(&prism)
                );
                write(dir, "Cargo.toml", &manifest)?;
                write(dir, ".cargo/config.toml", &config)?;
                write(dir, "src/main.rs", RUST_MAIN)?;
                "cargo run --release"
            }
        };
        println!("created `{}`: cd {} && {how}", dir.display(), dir.display());
        Ok(ExitCode::SUCCESS)
    }
}

/// A path as a TOML string (JSON's escapes are TOML's).
fn toml_string(path: &Path) -> String {
    serde_json::to_string(&path.to_string_lossy()).expect("a string serializes")
}

fn write(dir: &Path, file: &str, text: &str) -> anyhow::Result<()> {
    let path = dir.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create `{}`", parent.display()))?;
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write `{}`", path.display()))
}
