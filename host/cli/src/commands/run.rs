use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Args;
use prism_exec::DriverExit;
use prism_node::{Library, Node};

use super::NodeOptions;

/// Run a component's `main` as a driver: it and the tasks it starts run on
/// this machine (or its tasks on a cluster's nodes, with --cluster), with
/// their output here.
///
/// Exits with the driver's exit status; a trap in the driver is an error.
#[derive(Args)]
pub struct Run {
    /// The component (.wasm built for wasm32-wasip2 with a prism SDK), or a
    /// Python script (.py), built first (and cached)
    component: PathBuf,

    /// Another component its tasks may call into, by its file name without
    /// `.wasm` or by its id (repeatable)
    #[arg(long = "with", value_name = "COMPONENT")]
    with: Vec<PathBuf>,

    /// Arguments passed to the driver (after `--`)
    #[arg(last = true)]
    args: Vec<String>,

    #[command(flatten)]
    cluster: ClusterOptions,

    #[command(flatten)]
    node: NodeOptions,
}

/// Where a driver's tasks run, if not on this machine.
#[derive(Args)]
struct ClusterOptions {
    /// Run the tasks on the nodes of the cluster whose NATS server is at
    /// URL (actors stay on this machine)
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,

    /// With --cluster: where the nodes pull this driver's objects and
    /// component from; the address must be one they can reach
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0", requires = "cluster")]
    transfer_listen: std::net::SocketAddr,
}

impl Run {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let (name, wasm) = read(&self.component)?;
        let library = if self.with.is_empty() { None } else { Some(Files::read(&self.with)?) };
        let config = self.node.config()?;
        let cluster = self.cluster.cluster.map(|url| (url, self.cluster.transfer_listen));
        let exit = super::run_driver(config, name.clone(), wasm, library, self.args, cluster);
        match exit? {
            DriverExit::Exited(0) => Ok(ExitCode::SUCCESS),
            DriverExit::Exited(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(1).max(1))),
            DriverExit::Trapped(trap) => anyhow::bail!("driver `{name}` trapped: {trap}"),
        }
    }
}

/// A component file's name and bytes (a Python script's, built).
fn read(path: &Path) -> anyhow::Result<(String, Vec<u8>)> {
    let name = path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned());
    let file = super::python::component_file(path)?;
    let wasm = std::fs::read(&file).with_context(|| format!("cannot read `{}`", file.display()))?;
    Ok((name, wasm))
}

/// The components `--with` names, held in memory: each is found by its
/// file stem.
pub struct Files {
    components: Vec<File>,
}

struct File {
    stem: String,
    name: String,
    id: [u8; 32],
    wasm: Vec<u8>,
}

impl Files {
    fn read(paths: &[PathBuf]) -> anyhow::Result<Files> {
        let mut components: Vec<File> = Vec::new();
        for path in paths {
            let (name, wasm) = read(path)?;
            let stem = name.strip_suffix(".wasm").or_else(|| name.strip_suffix(".py")).unwrap_or(&name).to_string();
            if components.iter().any(|c| c.stem == stem) {
                anyhow::bail!("two `--with` components are named `{stem}`: rename one");
            }
            components.push(File { stem, name, id: *blake3::hash(&wasm).as_bytes(), wasm });
        }
        Ok(Files { components })
    }

    /// Compiles each component (so that a bad one fails before the driver
    /// starts), then lets `node`'s tasks call into them.
    pub async fn load_into(self, node: &Arc<Node>) -> anyhow::Result<()> {
        for c in &self.components {
            node.load(&c.name, &c.wasm).await.with_context(|| format!("cannot load `--with {}`", c.name))?;
        }
        node.set_library(Arc::new(self));
        Ok(())
    }
}

impl Library for Files {
    fn find(&self, name: &str) -> Result<[u8; 32], String> {
        if let Some(c) = self.components.iter().find(|c| c.stem == name) {
            return Ok(c.id);
        }
        let names: Vec<String> = self.components.iter().map(|c| format!("`{}`", c.stem)).collect();
        Err(format!("no component named `{name}`: `--with` loaded {}", names.join(", ")))
    }

    fn wasm(&self, id: &[u8; 32]) -> Option<(String, Vec<u8>)> {
        let c = self.components.iter().find(|c| &c.id == id)?;
        Some((c.name.clone(), c.wasm.clone()))
    }
}
