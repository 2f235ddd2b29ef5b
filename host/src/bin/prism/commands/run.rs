use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use prism_host::DriverExit;

use super::NodeOptions;

/// Run a component's `main` as a driver: it and the tasks it starts run on
/// this machine, with their output here.
///
/// Exits with the driver's exit status; a trap in the driver is an error.
#[derive(Args)]
pub struct Run {
    /// The component (.wasm built for wasm32-wasip2 with a prism SDK)
    component: PathBuf,

    /// Arguments passed to the driver (after `--`)
    #[arg(last = true)]
    args: Vec<String>,

    #[command(flatten)]
    node: NodeOptions,
}

impl Run {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let wasm =
            std::fs::read(&self.component).with_context(|| format!("cannot read `{}`", self.component.display()))?;
        let name = self
            .component
            .file_name()
            .map_or_else(|| self.component.display().to_string(), |n| n.to_string_lossy().into_owned());
        let config = self.node.config()?;
        let exit = super::run_driver(config, name.clone(), wasm, self.args);
        match exit? {
            DriverExit::Exited(0) => Ok(ExitCode::SUCCESS),
            DriverExit::Exited(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1).max(1))),
            DriverExit::Trapped(trap) => anyhow::bail!("driver `{name}` trapped: {trap}"),
        }
    }
}
