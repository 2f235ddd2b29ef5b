//! Node configuration and the limits guests run under. Every bound a guest
//! can push against is named here, with why it has its value.

use std::path::PathBuf;
use std::time::Duration;

use prism_store::Results;

/// How often the engine's epoch advances. Guests are interrupted at most this
/// late, yield to other tasks this often, and CPU deadlines are counted in
/// these ticks. 10 ms keeps the interruption overhead invisible.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Memory one task or driver instance may grow to, by default. Enough for the
/// seed's 100 MB values with headroom; raise it with `--memory-limit`.
pub const DEFAULT_MEMORY_LIMIT: u64 = 1 << 30;

/// The longest line of guest output passed on whole. A longer one (or
/// output that never ends a line) goes out in pieces of this size, each
/// ended with a newline: a guest cannot grow a host buffer with its output.
pub const MAX_OUTPUT_LINE: usize = 64 << 10;

/// The largest memory any instance can have: all of wasm32's 4 GiB. Pool slots
/// are reserved at this size so a per-run limit never needs a new pool.
pub const MAX_MEMORY_LIMIT: u64 = 4 << 30;

/// CPU time one task call may use, by default. Long enough for real work,
/// short enough that an endless loop is noticed.
pub const DEFAULT_CPU_DEADLINE: Duration = Duration::from_secs(60);

/// Table elements an instance may grow to: far above what compiled Rust,
/// Python or JavaScript guests use, far below what could hurt the host.
pub const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// Instances alive at once (running, or blocked in `get`). Each holds a slot
/// of the pooling allocator; past this, new tasks queue for a slot.
pub const DEFAULT_MAX_INSTANCES: u32 = 1000;

/// Objects one instance may hold mapped at once. Each mapping is a kernel
/// memory area, and a process has about 65k of them for all its instances;
/// a guest that forgets to drop its views meets this limit, not the
/// kernel's.
pub const MAX_MAPPINGS: usize = 256;

/// Bytes of small objects the store keeps in memory, by default: 30% of the
/// machine's memory, Ray's default for its object store.
pub fn default_object_store_memory() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let (pages, page) = unsafe { (libc::sysconf(libc::_SC_PHYS_PAGES), libc::sysconf(libc::_SC_PAGESIZE)) };
    (pages.max(0) as u64).saturating_mul(page.max(0) as u64) / 10 * 3
}

/// Bytes of all objects the store keeps, by default: 64 GiB, so a runaway
/// job fills neither the disk nor the page cache unnoticed.
pub const DEFAULT_OBJECT_STORE_DISK: u64 = 64 << 30;

/// What messages tell a user to raise when a guest hits a limit: the CLI's
/// flags for `prism run`, a tenant's quotas for `prism serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimitNames {
    /// What sets the memory limit of an instance.
    pub memory: &'static str,
    /// What sets the cpu deadline of a call.
    pub cpu: &'static str,
    /// What sets the cpu deadline of a driver.
    pub driver_cpu: &'static str,
    /// What sets the object store's capacity.
    pub store: &'static str,
    /// What sets how many actors may be alive at once.
    pub actors: &'static str,
}

impl LimitNames {
    /// The flags of `prism run` and `prism bench`.
    pub const CLI: LimitNames = LimitNames {
        memory: "--memory-limit",
        cpu: "--cpu-deadline",
        driver_cpu: "--driver-cpu-deadline",
        store: "--object-store-disk and --object-store-memory",
        actors: "--max-instances",
    };

    /// A tenant's quotas.
    pub const QUOTAS: LimitNames = LimitNames {
        memory: "the tenant quota `memory_per_instance`",
        cpu: "the tenant quota `cpu_deadline_ms`",
        driver_cpu: "the tenant quota `job_cpu_ms`",
        store: "the tenant quota `stored_bytes`",
        actors: "the tenant quota `actors`",
    };
}

/// Everything a node is started with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where objects and compiled components are kept.
    pub data_dir: PathBuf,
    /// Logical cpus for tasks, and the runtime's worker threads.
    pub workers: u32,
    /// Named resources it offers tasks and actors (`--resources gpu=2`).
    pub resources: Vec<(String, f64)>,
    /// Memory limit of each instance, in bytes.
    pub memory_limit: u64,
    /// CPU deadline of each task call.
    pub cpu_deadline: Duration,
    /// CPU deadline of a driver; `None` for none (a Ray driver script runs
    /// as long as it likes).
    pub driver_cpu_deadline: Option<Duration>,
    /// Instances alive at once.
    pub max_instances: u32,
    /// Actors alive at once; `None` for one fewer than `max_instances` (a
    /// slot stays for the driver). Each holds an instance for its life, so
    /// past this one more fails at once rather than wait for a slot forever.
    pub max_actors: Option<u32>,
    /// Bytes of small objects kept in memory.
    pub object_store_memory: u64,
    /// Bytes of all objects kept (memory and blob files).
    pub object_store_disk: u64,
    /// What raises each limit, for messages.
    pub limit_names: LimitNames,
    /// Whether task results are written to disk (`prism serve`) or kept in
    /// memory only.
    pub results: Results,
}

impl Config {
    /// Defaults for a node keeping its data in `data_dir`, using every core.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            workers: default_workers(),
            resources: Vec::new(),
            memory_limit: DEFAULT_MEMORY_LIMIT,
            cpu_deadline: DEFAULT_CPU_DEADLINE,
            driver_cpu_deadline: None,
            max_instances: DEFAULT_MAX_INSTANCES,
            max_actors: None,
            object_store_memory: default_object_store_memory(),
            object_store_disk: DEFAULT_OBJECT_STORE_DISK,
            limit_names: LimitNames::CLI,
            results: Results::InMemory,
        }
    }
}

/// One worker per core, as Ray starts one worker per cpu.
pub fn default_workers() -> u32 {
    std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
}

/// `$XDG_DATA_HOME/prism`, else `~/.local/share/prism`, else `./.prism`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("prism");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/share/prism"),
        None => PathBuf::from(".prism"),
    }
}
