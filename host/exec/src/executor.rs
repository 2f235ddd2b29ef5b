//! [`Executor`]: what runs the node's tasks, actors and drivers.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use prism_store::error::{Failure, Refused};
use prism_store::{Holdings, ObjectId, ObjectStore};

use crate::config::{Config, EPOCH_TICK, LimitNames};
use crate::output::Output;
use crate::{Calls, Input, Placement, ProgramInfo, Slot};

/// The interface every prism component exports, as the error messages name it.
pub const WORKER_EXPORT: &str = "prism:core/worker@0.3.0";

/// Why a component could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Not WebAssembly at all.
    #[error("`{0}` is not a WebAssembly file: it does not start with `\\0asm`")]
    NotWasm(String),
    /// A core module, not a component.
    #[error(
        "`{0}` is a core WebAssembly module, not a component: build it for `wasm32-wasip2` \
         (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule(String),
    /// The executor rejected it.
    #[error("`{0}` is not a valid component")]
    Invalid(String, #[source] anyhow::Error),
    /// It imports something prism does not provide.
    #[error("`{0}` needs imports that prism does not provide (prism gives `prism:core` and WASI 0.2)")]
    Imports(String, #[source] anyhow::Error),
    /// It was not built against `prism:core`.
    #[error("`{0}` does not export `{WORKER_EXPORT}`: build it with a prism SDK (world `prism:core/task`)")]
    WrongWorld(String),
    /// It has no `wasi:cli/run`, so it cannot be a driver.
    #[error("`{0}` cannot run as a driver: it does not export `wasi:cli/run` (build it as a binary with `fn main`)")]
    NotCommand(String),
    /// Listing its functions failed.
    #[error("`{0}` trapped while listing its functions: {1}")]
    Inspect(String, String),
}

/// How a driver ended.
#[derive(Debug)]
pub enum DriverExit {
    /// `main` returned or called `exit`; the status code.
    Exited(i32),
    /// The driver trapped; the description.
    Trapped(String),
}

/// A call that trapped: what the caller's `get` reports, and whether a limit
/// ended it (a quota to raise, not a bug in the guest).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Trapped {
    /// The limit or trap, and the end of the guest's stderr.
    pub message: String,
    /// Whether it hit its memory, cpu or table limit.
    pub limit: bool,
}

impl Trapped {
    /// How the failed call of `function` is stored: a limit as
    /// `limit-exceeded`, any other trap as `task-crashed`.
    pub fn failure(&self, function: &str) -> Failure {
        if self.limit {
            Failure::LimitExceeded(format!("task `{function}` {}", self.message))
        } else {
            Failure::crashed(function, self.message.clone())
        }
    }
}

impl std::fmt::Display for Trapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// How a call ended: the outer error is a trap, the inner one the error the
/// guest returned.
pub type Outcome<T = Vec<u8>> = Result<Result<T, Refused>, Trapped>;

/// A task's value: here, or left on the node that made it.
pub enum Value {
    /// Its encoding.
    Here(Vec<u8>),
    /// Kept where it was made, fetched when first read.
    Elsewhere(Box<dyn Fetch>),
}

/// Fetches a value kept on another node.
#[async_trait::async_trait]
pub trait Fetch: Send + Sync {
    /// Stores the value in `store` as the pending object `id`, completing
    /// it; or why it is lost (its node died, say), leaving `id` as it was.
    async fn fetch(&self, store: &Arc<ObjectStore>, id: ObjectId) -> Result<(), String>;

    /// Where the value is, for the store to keep until it is fetched (see
    /// [`ObjectStore::whereabouts`]).
    fn whereabouts(&self) -> Option<prism_store::Whereabouts>;
}

/// What one namespace's instances may use.
#[derive(Debug, Clone, Copy)]
pub struct InstanceLimits {
    /// Bytes of linear memory.
    pub memory: u64,
    /// Epoch ticks of CPU per task call.
    pub ticks: u64,
    /// Epoch ticks of CPU per driver run.
    pub driver_ticks: u64,
    /// Actors alive at once in the namespace (each holds an instance).
    pub actors: u32,
    /// What raises them, for messages.
    pub names: LimitNames,
}

impl InstanceLimits {
    /// The limits `config` names.
    pub fn of(config: &Config) -> Self {
        let ticks = |deadline: Duration| u64::try_from((deadline.as_nanos() / EPOCH_TICK.as_nanos()).max(1));
        InstanceLimits {
            memory: config.memory_limit,
            ticks: ticks(config.cpu_deadline).unwrap_or(u64::MAX),
            driver_ticks: config.driver_cpu_deadline.map_or(u64::MAX, |d| ticks(d).unwrap_or(u64::MAX)),
            actors: config.max_actors.unwrap_or(config.max_instances.saturating_sub(1)),
            names: config.limit_names,
        }
    }

    /// The limits of a driver: its own cpu deadline, named as such.
    pub fn driver(self) -> Self {
        InstanceLimits {
            ticks: self.driver_ticks,
            names: LimitNames { cpu: self.names.driver_cpu, ..self.names },
            ..self
        }
    }
}

/// What one call runs as.
pub struct Run {
    /// What its imports act on.
    pub calls: Arc<dyn Calls>,
    /// Its job: calls of one job may share warm instances, never of two.
    pub job: u64,
    /// Its namespace: instance slots are shared fairly between them.
    pub namespace: u64,
    /// Where its stdout and stderr go.
    pub output: Output,
    /// The component it runs (one [`Executor::load`] returned).
    pub program: [u8; 32],
    /// What its instance may use.
    pub limits: InstanceLimits,
    /// The cpus it holds, given back while it blocks (none for drivers and
    /// between an actor's calls).
    pub slot: Option<Slot>,
    /// How many cpus to take back after blocking.
    pub num_cpus: u32,
    /// The resources and node it asks for.
    pub placement: Placement,
}

/// Runs components: compiles them once, then runs their task calls, actor
/// instances and drivers, each sandboxed and limited.
#[async_trait::async_trait]
pub trait Executor: Send + Sync {
    /// Loads a component whose bytes hash to `hash` (compiling it, or
    /// reading `cache_dir`); its functions are listed under `limits`, in an
    /// instance that counts as `namespace`'s.
    async fn load(
        &self,
        cache_dir: &Path,
        namespace: u64,
        limits: InstanceLimits,
        name: &str,
        hash: [u8; 32],
        wasm: &[u8],
    ) -> Result<ProgramInfo, LoadError>;

    /// Runs task `function`. The refs the call still holds when it returns
    /// move to `keep`: the caller gives them back once the result (which may
    /// nest them) is stored.
    async fn run_task(&self, run: Run, function: &str, args: &[Input], keep: &mut Holdings) -> Outcome<Value>;

    /// Makes an actor's instance, its constructor of `class` run with
    /// `args`; or the constructor's error.
    async fn start_actor(&self, run: Run, class: &str, args: &[Input]) -> Result<Box<dyn ActorInstance>, String>;

    /// Runs the job's component as a driver with `args`.
    async fn run_driver(&self, run: Run, args: &[String]) -> Result<DriverExit, LoadError>;

    /// Forgets what it keeps for `job` (its warm instances).
    fn end_job(&self, job: u64);

    /// Instances alive now, idle warm ones included.
    fn instances(&self) -> usize;

    /// Instances that may be alive at once.
    fn capacity(&self) -> usize;

    /// Has every running call check its slot now rather than at its next
    /// tick: a namespace owed a turn waits.
    fn interrupt(&self);

    /// Whether it places each task and actor instance on another node (the
    /// cluster's dispatcher), checking there the cpus, resources and node
    /// it asks for: then this node neither checks nor holds them.
    fn places_elsewhere(&self) -> bool {
        false
    }
}

/// The instance an actor lives in.
#[async_trait::async_trait]
pub trait ActorInstance: Send {
    /// Runs one method call (`label` is `Class.method`, for its output). A
    /// trap leaves the instance unusable: the caller restarts or drops it.
    async fn call(&mut self, run: Run, label: &str, method: &str, args: &[Input]) -> Outcome;
}
