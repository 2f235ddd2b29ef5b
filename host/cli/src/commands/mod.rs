//! One module per subcommand; each is a clap struct with `execute`.

mod bench;
mod build;
mod client;
mod cluster;
mod deploy;
mod invoke;
mod job;
mod new;
mod node;
mod object;
mod python;
mod run;
mod serve;
mod tenant;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use prism_exec::config::{self, Config};
use prism_exec::{DriverExit, Output};

/// prism: Ray's tasks, actors and objects as sandboxed WebAssembly components.
#[derive(Parser)]
#[command(version, about, long_about = None)]
pub struct Prism {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Run(run::Run),
    Build(build::Build),
    New(new::New),
    Bench(bench::Bench),
    Serve(serve::Serve),
    Node(node::Node),
    #[command(subcommand)]
    Cluster(cluster::Cluster),
    #[command(subcommand)]
    Tenant(tenant::Tenant),
    Deploy(deploy::Deploy),
    Invoke(invoke::Invoke),
    #[command(subcommand)]
    Object(object::Object),
    #[command(subcommand)]
    Job(job::Job),
}

impl Prism {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Run(cmd) => cmd.execute(),
            Command::Build(cmd) => cmd.execute(),
            Command::New(cmd) => cmd.execute(),
            Command::Bench(cmd) => cmd.execute(),
            Command::Serve(cmd) => cmd.execute(),
            Command::Node(cmd) => cmd.execute(),
            Command::Cluster(cmd) => cmd.execute(),
            Command::Tenant(cmd) => cmd.execute(),
            Command::Deploy(cmd) => cmd.execute(),
            Command::Invoke(cmd) => cmd.execute(),
            Command::Object(cmd) => cmd.execute(),
            Command::Job(cmd) => cmd.execute(),
        }
    }
}

/// Where a node keeps its data.
#[derive(Args, Debug, Clone)]
pub struct DataDir {
    /// Where objects and compiled components are kept
    /// [default: $XDG_DATA_HOME/prism or ~/.local/share/prism]
    #[arg(long, env = "PRISM_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl DataDir {
    pub fn path(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(config::default_data_dir)
    }
}

/// Options of the machine a node runs on, shared by its namespaces.
#[derive(Args, Debug, Clone)]
pub struct HostOptions {
    #[command(flatten)]
    data_dir: DataDir,

    /// Logical cpus for tasks [default: one per core]
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    workers: Option<u32>,

    /// Instances alive at once (each holds a memory slot); the driver is one
    #[arg(long, default_value_t = config::DEFAULT_MAX_INSTANCES, value_parser = clap::value_parser!(u32).range(2..))]
    max_instances: u32,

    /// MiB of small objects kept in memory [default: 30% of memory]
    #[arg(long, value_name = "MIB")]
    object_store_memory: Option<u64>,
}

impl HostOptions {
    pub fn config(&self) -> Config {
        let mut config = Config::new(self.data_dir.path());
        if let Some(workers) = self.workers {
            config.workers = workers;
        }
        config.max_instances = self.max_instances;
        if let Some(mib) = self.object_store_memory {
            config.object_store_memory = mib << 20;
        }
        config
    }
}

/// A tokio runtime with `threads` worker threads named `name`.
fn tokio_runtime(threads: u32, name: &str) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().worker_threads(threads as usize).thread_name(name).enable_all().build()
}

/// The runtime `prism serve` runs on: a thread per logical cpu, and one
/// more. Calls holding cpus occupy at most one thread each, so a thread is
/// always free to read requests and to start a call, which then takes its
/// turn (see `prism_node::slots`), even while every cpu's call spins.
fn serve_runtime(config: &Config) -> std::io::Result<tokio::runtime::Runtime> {
    tokio_runtime(config.workers + 1, "prism-serve")
}

/// How much lower than the server's the OS priority (nice value) of the
/// threads running long calls is: a thread woken for a request or a short
/// call then takes a core from them at once.
const BACKGROUND_NICE: i32 = 10;

/// The runtime long calls move to (see `prism_node::threads`): a thread
/// per logical cpu, each at a lower OS priority.
fn background_runtime(config: &Config) -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.workers as usize)
        .thread_name("prism-long")
        .on_thread_start(|| {
            // SAFETY: errno is this thread's; nice(2) changes only the
            // calling thread's priority on Linux. It may return -1 on
            // success, so errno tells.
            let failed = unsafe {
                *libc::__errno_location() = 0;
                libc::nice(BACKGROUND_NICE) == -1 && *libc::__errno_location() != 0
            };
            if failed {
                eprintln!(
                    "warning: cannot lower the priority of a thread for long calls: {}",
                    std::io::Error::last_os_error()
                );
            }
        })
        .enable_all()
        .build()
}

/// Options every command that starts a node takes.
#[derive(Args, Debug, Clone)]
pub struct NodeOptions {
    #[command(flatten)]
    host: HostOptions,

    /// Memory limit of each instance, in MiB
    #[arg(long, value_name = "MIB", default_value_t = config::DEFAULT_MEMORY_LIMIT >> 20,
          value_parser = clap::value_parser!(u64).range(1..=config::MAX_MEMORY_LIMIT >> 20))]
    memory_limit: u64,

    /// CPU time each task call may use, in seconds
    #[arg(long, value_name = "SECONDS", default_value_t = config::DEFAULT_CPU_DEADLINE.as_secs_f64())]
    cpu_deadline: f64,

    /// CPU time the driver may use, in seconds (default: no limit)
    #[arg(long, value_name = "SECONDS")]
    driver_cpu_deadline: Option<f64>,

    /// MiB of all objects kept, in memory and in files
    #[arg(long, value_name = "MIB", default_value_t = config::DEFAULT_OBJECT_STORE_DISK >> 20)]
    object_store_disk: u64,

    /// Named resources offered to tasks and actors that ask for them, as
    /// Ray's custom resources (`gpu=1,licence=4`)
    #[arg(long, value_name = "NAME=AMOUNT,...", value_delimiter = ',', value_parser = resource)]
    resources: Vec<(String, f64)>,
}

/// `NAME=AMOUNT`, as `--resources` takes it.
fn resource(text: &str) -> Result<(String, f64), String> {
    let (name, amount) = text.split_once('=').ok_or_else(|| format!("`{text}` is not NAME=AMOUNT"))?;
    let amount: f64 = amount.parse().map_err(|_| format!("the amount of `{name}` is not a number: `{amount}`"))?;
    prism_node::resources::valid(name, amount).map_err(|e| format!("`{text}` {e}"))?;
    Ok((name.to_string(), amount))
}

impl NodeOptions {
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = self.host.config();
        config.memory_limit = self.memory_limit << 20;
        config.cpu_deadline = seconds("--cpu-deadline", self.cpu_deadline)?;
        config.driver_cpu_deadline =
            self.driver_cpu_deadline.map(|s| seconds("--driver-cpu-deadline", s)).transpose()?;
        config.object_store_disk = self.object_store_disk << 20;
        config.resources = self.resources.clone();
        Ok(config)
    }
}

/// `value` seconds, if it is a positive number of them.
fn seconds(flag: &str, value: f64) -> anyhow::Result<Duration> {
    if !(value > 0.0 && value.is_finite()) {
        anyhow::bail!("{flag} must be a positive number of seconds, not {value}");
    }
    Ok(Duration::from_secs_f64(value))
}

/// Starts a node, runs `wasm` as a driver with `args` until it ends, and
/// makes everything it stored durable before returning. The components of
/// `library` are loaded first, for its tasks to call into. With `cluster`,
/// its tasks run on the cluster's nodes.
fn run_driver(
    config: Config,
    name: String,
    wasm: Vec<u8>,
    library: Option<run::Files>,
    args: Vec<String>,
    cluster: Option<(String, std::net::SocketAddr)>,
) -> anyhow::Result<DriverExit> {
    let tokio = tokio_runtime(config.workers, "prism")?;
    let (node, dispatcher) = match cluster {
        None => (prism_cli::open_node(config)?, None),
        Some((url, transfer)) => {
            let (node, dispatcher) = tokio.block_on(prism_cli::cluster_node(config, &url, transfer))?;
            (node, Some(dispatcher))
        }
    };
    // The driver runs on a worker thread, next to the tasks it starts.
    let driver = {
        let (node, dispatcher) = (node.clone(), dispatcher.clone());
        async move {
            if let Some(library) = library {
                library.load_into(&node).await?;
            }
            let program = node.load(&name, &wasm).await?;
            let job = node.job(program, Output::stdio());
            if let Some(dispatcher) = dispatcher {
                dispatcher.serve_job(&node, &job);
            }
            anyhow::Ok(node.run_driver(&job, &args).await?)
        }
    };
    let exit = tokio.block_on(tokio.spawn(driver))?;
    if let Some(dispatcher) = dispatcher {
        // The nodes let go of what the job kept there.
        tokio.block_on(dispatcher.settle());
    }
    node.store.flush()?;
    exit
}
