use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use prism_exec::DriverExit;

use super::NodeOptions;

/// The benchmark guest, built from tests/programs/src/bin/bench.rs.
const BENCH_GUEST: &[u8] = include_bytes!(env!("PRISM_BENCH_GUEST"));

/// The same cases in Python (built on first use, then cached).
const PYTHON_BENCH: &str = include_str!("../../../../tests/programs/python/bench.py");

/// Memory for the benchmark guest: `single_client_put_gigabytes` holds an
/// 800 MB array and its encoding.
const BENCH_MEMORY_MIB: u64 = 4095;

/// Run Ray's microbenchmarks on this machine, by Ray's names and units.
///
/// Prints one `name value unit` line per benchmark and nothing else on
/// stdout, so the output reads side by side with Ray's
/// (../shared/tools/ray_bench.sh). Each value is the median of three runs.
#[derive(Args)]
pub struct Bench {
    /// Run only benchmarks whose names contain one of these (default: all):
    /// single_client_get_calls, single_client_put_calls,
    /// single_client_put_gigabytes, single_client_tasks_and_get_batch,
    /// single_client_wait_1k_refs, single_client_get_object_containing_10k_refs, single_client_tasks_sync,
    /// single_client_tasks_async, multi_client_tasks_async,
    /// 1_1_actor_calls_sync, 1_1_actor_calls_async, 1_1_actor_calls_concurrent,
    /// 1_n_actor_calls_async, n_n_actor_calls_async,
    /// n_n_actor_calls_with_arg_async ("actor" selects all of these),
    /// cross_node_tasks_sync, cross_node_tasks_async, cross_node_round_trip,
    /// cross_node_transfer_1gib (only when named, with --cluster),
    /// get_mapped_* and get_copied_* (128kib, 1mib, 64mib, 1gib; in µs),
    /// sum_mapped_*, sum_local_1gib; and, only when named:
    /// map_shared_256mib_x1, map_shared_256mib_x100, generator_10x100mb.
    /// With `--lang python`, the cases Ray's own benchmark has (no mapped
    /// or generator cases)
    names: Vec<String>,

    /// Seconds each of the three runs of a benchmark lasts
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,

    /// Also print the process's peak resident memory: `peak_rss` (pages
    /// mapped N times count N times) and `peak_pss` (shared pages counted
    /// once), sampled every 10 ms from /proc/self/smaps_rollup
    #[arg(long)]
    memory: bool,

    /// The language of the benchmark guest: `python` runs Ray's cases with a
    /// Python driver and Python tasks, as Ray runs them
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,

    /// Run the tasks on the nodes of the cluster whose NATS server is at
    /// URL (for the cross_node cases)
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,

    #[command(flatten)]
    node: NodeOptions,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Lang {
    Rust,
    Python,
}

impl Bench {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        if self.cluster.is_none() && self.names.iter().any(|n| n.starts_with("cross_node")) {
            anyhow::bail!("the cross_node cases need a cluster: pass --cluster URL");
        }
        let mut config = self.node.config()?;
        config.memory_limit = config.memory_limit.max(BENCH_MEMORY_MIB << 20);
        let mut args = vec![self.seconds.to_string()];
        args.extend(self.names);
        let sampler = self.memory.then(MemorySampler::start);
        let (name, guest) = match self.lang {
            Lang::Rust => ("bench.wasm", BENCH_GUEST.to_vec()),
            Lang::Python => {
                let built = super::python::component_of("bench.py", PYTHON_BENCH)?;
                ("bench.py", std::fs::read(&built).with_context(|| format!("cannot read `{}`", built.display()))?)
            }
        };
        let cluster = self.cluster.map(|url| (url, std::net::SocketAddr::from(([127, 0, 0, 1], 0))));
        let exit = super::run_driver(config, name.into(), guest, None, args, cluster)?;
        if let Some(sampler) = sampler {
            let (rss, pss) = sampler.stop();
            println!("peak_rss {} MiB\npeak_pss {} MiB", rss >> 10, pss >> 10);
        }
        match exit {
            DriverExit::Exited(0) => Ok(ExitCode::SUCCESS),
            DriverExit::Exited(code) => anyhow::bail!("the benchmark guest exited with status {code}"),
            DriverExit::Trapped(trap) => anyhow::bail!("the benchmark guest trapped: {trap}"),
        }
    }
}

/// Samples this process's resident memory in the background, keeping the
/// peaks (in KiB).
struct MemorySampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64)>,
}

impl MemorySampler {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut peak = (0, 0);
                while !stop.load(Ordering::Relaxed) {
                    let (rss, pss) = resident();
                    peak = (peak.0.max(rss), peak.1.max(pss));
                    std::thread::sleep(Duration::from_millis(10));
                }
                peak
            })
        };
        MemorySampler { stop, thread }
    }

    fn stop(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_default()
    }
}

/// `Rss` and `Pss` of this process in KiB (zero where /proc is missing).
fn resident() -> (u64, u64) {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").unwrap_or_default();
    let field = |name: &str| {
        rollup
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    (field("Rss:"), field("Pss:"))
}
