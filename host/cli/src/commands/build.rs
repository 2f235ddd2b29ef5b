use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::Args;

use super::python;

/// Build a Python script into a component (with componentize-py and the
/// Python SDK). Rust programs build with cargo (docs/python.md).
#[derive(Args)]
pub struct Build {
    /// The script (.py): a Ray script with `import prism`
    script: PathBuf,

    /// Where to write the component [default: the script's name, .wasm]
    #[arg(short, long)]
    output: Option<PathBuf>,
}

impl Build {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        if !python::is_script(&self.script) {
            bail!("`{}` is not a Python script (.py); build Rust programs with cargo", self.script.display());
        }
        let built = python::component(&self.script)?;
        let output = self.output.unwrap_or_else(|| self.script.with_extension("wasm"));
        std::fs::copy(&built, &output).with_context(|| format!("cannot write `{}`", output.display()))?;
        Ok(ExitCode::SUCCESS)
    }
}
