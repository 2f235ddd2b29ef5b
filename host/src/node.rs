//! A node: the object store, the runtime and the scheduler, and the jobs
//! (driver runs) using them.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use parking_lot::Mutex;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::actors::{ActorId, ActorOptions, Actors};
use crate::config::Config;
use crate::error::Failure;
use crate::generators::Generators;
use crate::runtime::output::Output;
use crate::runtime::{Class, DriverExit, InstanceLimits, LoadError, Program, Runtime, TaskContext, WarmPool};
use crate::scheduler::{Scheduler, TaskArg, TaskOptions};
use crate::store::{Capacity, IdSet, ObjectId, ObjectStore, nested_refs};

/// One prism node.
pub struct Node {
    /// What it was started with.
    pub config: Config,
    /// Its objects.
    pub store: ObjectStore,
    /// What its instances may use (changed by [`Node::set_limits`]).
    limits: Mutex<InstanceLimits>,
    pub(crate) runtime: Arc<Runtime>,
    pub(crate) scheduler: Arc<Scheduler>,
    /// Its loaded components, by the blake3 of their bytes.
    programs: Mutex<HashMap<[u8; 32], Arc<Program>>>,
    pub(crate) actors: Actors,
    pub(crate) generators: Generators,
    callers: AtomicU64,
    /// Tasks run in this namespace so far.
    pub tasks: TaskCounts,
    /// Which namespace of its host this is, for fair scheduling.
    pub(crate) namespace: u64,
    /// Set once the namespace is closed for good: its instances trap.
    closed: AtomicBool,
}

/// Tasks of a namespace, counted for metrics.
#[derive(Default)]
pub struct TaskCounts {
    /// Tasks started.
    pub started: AtomicU64,
    /// Tasks that returned a value.
    pub finished: AtomicU64,
    /// Tasks that failed.
    pub failed: AtomicU64,
}

/// References held by one holder (an instance, a pending task's
/// arguments): one count per distinct ref, all given back when dropped.
#[derive(Default)]
pub struct Holdings {
    node: Option<Arc<Node>>,
    ids: IdSet,
}

impl Holdings {
    /// Holdings on `node`'s store.
    pub fn new(node: &Arc<Node>) -> Self {
        Holdings { node: Some(node.clone()), ids: IdSet::default() }
    }

    /// The holdings of a call's arguments: every top-level ref and every
    /// ref nested in a value. Unknown refs are skipped (they fail the call).
    pub fn args(node: &Arc<Node>, args: &[TaskArg]) -> Self {
        let mut holdings = Holdings::new(node);
        for arg in args {
            match arg {
                TaskArg::Object(id) => holdings.hold(*id),
                TaskArg::Value(bytes) => nested_refs(bytes).into_iter().for_each(|id| holdings.hold(id)),
            }
        }
        holdings
    }

    fn store(&self) -> &ObjectStore {
        &self.node.as_ref().expect("holdings are bound to a node").store
    }

    /// Holds `id` (takes a new reference unless already held).
    pub fn hold(&mut self, id: ObjectId) {
        if !self.ids.contains(&id) && self.store().retain(&id) {
            self.ids.insert(id);
        }
    }

    /// Takes over the reference `id` carries (from `put`, `pending`...).
    pub fn adopt(&mut self, id: ObjectId) {
        if !self.ids.insert(id) {
            self.store().release(&id);
        }
    }

    /// Gives back `id`, if held.
    pub fn release(&mut self, id: &ObjectId) {
        if self.ids.remove(id) {
            self.store().release(id);
        }
    }

    /// Moves everything `other` holds here.
    pub fn absorb(&mut self, mut other: Holdings) {
        for id in std::mem::take(&mut other.ids) {
            if self.node.is_none() {
                self.node.clone_from(&other.node);
            }
            self.adopt(id);
        }
    }

    /// Binds empty holdings to `node`.
    pub fn bind(&mut self, node: &Arc<Node>) {
        if self.node.is_none() {
            self.node = Some(node.clone());
        }
    }
}

impl Drop for Holdings {
    fn drop(&mut self) {
        if let Some(node) = &self.node {
            for id in self.ids.drain() {
                node.store.release(&id);
            }
        }
    }
}

/// A job: one run of a program (a driver, or tasks started from outside),
/// with its output and the globals its tasks share.
pub struct Job {
    /// The component the job's tasks run in.
    pub program: Arc<Program>,
    /// Where its guests' stdout and stderr go.
    pub output: Output,
    /// Refs named for the job's tasks; each holds its object until the job ends.
    pub(crate) globals: Mutex<HashMap<String, ObjectId>>,
    pub(crate) warm: WarmPool,
    /// Actors killed when the job ends (all but the detached ones).
    pub(crate) owned_actors: Mutex<Vec<ActorId>>,
}

impl Node {
    /// Opens a node on `config.data_dir`, creating it if needed.
    pub fn open(config: Config) -> anyhow::Result<Arc<Node>> {
        Host::new(&config)?.open(config)
    }
}

/// What the namespaces of one machine share: the engine, its instance
/// slots, and the logical cpus.
#[derive(Clone)]
pub struct Host {
    runtime: Arc<Runtime>,
    scheduler: Arc<Scheduler>,
    namespaces: Arc<AtomicU64>,
}

impl Host {
    /// An engine and cpus as `config` sizes them.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        Ok(Host {
            runtime: Arc::new(Runtime::new(config)?),
            scheduler: Arc::new(Scheduler::new(config.workers)),
            namespaces: Arc::default(),
        })
    }

    /// Opens a namespace in `config.data_dir`: its own objects, components,
    /// actors and limits, on this host's engine and cpus. Nothing in one
    /// namespace can name anything in another.
    pub fn open(&self, config: Config) -> anyhow::Result<Arc<Node>> {
        let (runtime, scheduler) = (self.runtime.clone(), self.scheduler.clone());
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data directory `{}`", config.data_dir.display()))?;
        let capacity = Capacity {
            memory: config.object_store_memory,
            disk: config.object_store_disk,
            raise: config.limit_names.store,
        };
        let store = ObjectStore::open_with(&config.data_dir.join("objects"), capacity)?;
        Ok(Arc::new(Node {
            limits: Mutex::new(InstanceLimits::of(&config)),
            config,
            store,
            runtime,
            scheduler,
            programs: Mutex::new(HashMap::new()),
            actors: Actors::default(),
            generators: Generators::default(),
            callers: AtomicU64::new(0),
            tasks: TaskCounts::default(),
            namespace: self.namespaces.fetch_add(1, Ordering::Relaxed),
            closed: AtomicBool::new(false),
        }))
    }
}

impl Host {
    /// Instances alive now (running, or waiting in `get`), in all namespaces.
    pub fn instances(&self) -> usize {
        self.runtime.instances()
    }
}

impl Node {
    /// What its instances may use now.
    pub fn limits(&self) -> InstanceLimits {
        *self.limits.lock()
    }

    /// Changes what its instances may use, from their next call on, and
    /// how many bytes its store keeps (memory, all).
    pub fn set_limits(&self, limits: InstanceLimits, store: (u64, u64)) {
        *self.limits.lock() = limits;
        self.store.set_capacity(store.0, store.1);
    }

    /// Loads a component (compiled once, then cached in the data directory).
    pub async fn load(&self, name: &str, wasm: &[u8]) -> Result<Arc<Program>, LoadError> {
        let hash = *blake3::hash(wasm).as_bytes();
        if let Some(program) = self.programs.lock().get(&hash) {
            return Ok(program.clone());
        }
        let cache_dir = self.config.data_dir.join("compiled");
        let program = Arc::new(self.runtime.load(&cache_dir, self.limits(), name, hash, wasm).await?);
        self.programs.lock().insert(hash, program.clone());
        Ok(program)
    }

    /// A new job running `program`, its output going to `output`.
    pub fn job(&self, program: Arc<Program>, output: Output) -> Arc<Job> {
        Arc::new(Job {
            program,
            output,
            globals: Mutex::new(HashMap::new()),
            warm: WarmPool::default(),
            owned_actors: Mutex::new(Vec::new()),
        })
    }

    /// Runs the job's program as a driver with `args` until it ends.
    pub async fn run_driver(self: &Arc<Self>, job: &Arc<Job>, args: &[String]) -> Result<DriverExit, LoadError> {
        // A driver holds no cpu slot: like Ray's driver, it only waits on tasks.
        let ctx = TaskContext {
            node: self.clone(),
            job: job.clone(),
            slot: None,
            num_cpus: 0,
            caller: self.next_caller(),
            actor: None,
            generator: None,
        };
        let exit = self.runtime.run_driver(ctx, args).await;
        Actors::end_job(self, job);
        for (_, id) in job.globals.lock().drain() {
            self.store.release(&id);
        }
        exit
    }

    /// Creates an actor of `class` for `job`, owned by the actor `owner` if
    /// given (else by the job); see [`Actors`].
    pub fn create_actor(
        self: &Arc<Self>,
        job: &Arc<Job>,
        owner: Option<ActorId>,
        class: String,
        args: Vec<TaskArg>,
        options: ActorOptions,
    ) -> Result<ActorId, Failure> {
        Actors::create(self, job, owner, class, args, options)
    }

    /// Calls `method` on `actor` as `caller`; returns its result's ref.
    pub fn call_actor(self: &Arc<Self>, caller: u64, actor: ActorId, method: String, args: Vec<TaskArg>) -> ObjectId {
        Actors::call(self, caller, actor, method, args)
    }

    /// Kills `actor`.
    pub fn kill_actor(&self, actor: ActorId) -> Result<(), Failure> {
        Actors::kill(self, actor, "it was killed")
    }

    /// Closes this namespace for good (its tenant is deleted): its actors
    /// die, and every instance still running traps at its next epoch tick.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        Actors::kill_all(self, "its namespace was closed");
    }

    /// Whether [`Node::close`] was called.
    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }

    /// The class of `actor` (its constructor and methods), if it is or was
    /// on this node.
    pub fn actor_class(&self, actor: ActorId) -> Option<Class> {
        Actors::class(self, actor)
    }

    /// The live actor named `name`.
    pub fn actor_by_name(&self, name: &str) -> Result<ActorId, Failure> {
        Actors::by_name(self, name)
    }

    /// A new caller identity (driver run, task attempt, actor).
    pub fn next_caller(&self) -> u64 {
        self.callers.fetch_add(1, Ordering::Relaxed)
    }

    /// Schedules `function` of the job's program; returns its result's ref.
    pub fn remote(
        self: &Arc<Self>,
        job: &Arc<Job>,
        function: String,
        args: Vec<TaskArg>,
        options: TaskOptions,
    ) -> ObjectId {
        Scheduler::submit(self, job, function, args, options)
    }

    /// Runs `function` of the job's program in the calling tokio task and
    /// returns its result's ref once it is done.
    pub async fn call(
        self: &Arc<Self>,
        job: &Arc<Job>,
        function: String,
        args: Vec<TaskArg>,
        options: TaskOptions,
    ) -> ObjectId {
        Scheduler::call(self, job, function, args, options).await
    }

    /// Schedules the generator `function`; returns its stream's id.
    pub fn remote_generator(
        self: &Arc<Self>,
        job: &Arc<Job>,
        function: String,
        args: Result<Vec<TaskArg>, Failure>,
        options: TaskOptions,
    ) -> ObjectId {
        Scheduler::submit_generator(self, job, function, args, options)
    }

    /// A ref that is failed from the start.
    pub(crate) fn failed(&self, failure: Failure) -> ObjectId {
        let id = self.store.pending();
        self.store.complete(id, Err(failure));
        id
    }
}
