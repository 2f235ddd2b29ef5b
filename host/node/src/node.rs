//! A node: the object store, the runtime and the scheduler, and the jobs
//! (driver runs) using them.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::Context as _;
use parking_lot::Mutex;

use crate::actors::{Actors, CreateError, HostActors};
use crate::cancel::{Forward, Kind, Token, Tokens};
use crate::generators::{self, Generating, Generators};
use crate::scheduler::{Attempt, Scheduler};
use crate::scope::Scope;
use crate::threads::Threads;
use prism_exec::config::Config;
use prism_exec::{
    ActorId, ActorInstance, ActorOptions, Class, DriverExit, Executor, Input, InstanceLimits, LoadError, Outcome,
    Output, Placement, ProgramInfo, Run, Slot, Stream, TaskArg, TaskOptions, Value,
};
use prism_store::error::{Failure, listing};
use prism_store::{Capacity, Holdings, ObjectId, ObjectStore, Unread, nested_refs};

/// One prism node.
pub struct Node {
    /// What it was started with.
    pub config: Config,
    /// Its objects.
    pub store: Arc<ObjectStore>,
    /// What its instances may use (changed by [`Node::set_limits`]).
    limits: Mutex<InstanceLimits>,
    /// What runs its tasks, actors and drivers.
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) scheduler: Arc<Scheduler>,
    /// Its loaded components, by the blake3 of their bytes.
    programs: Mutex<HashMap<[u8; 32], Arc<ProgramInfo>>>,
    /// Numbers its jobs, uniquely across the host (the executor keeps warm
    /// instances by job).
    jobs: Arc<AtomicU64>,
    pub(crate) actors: Actors,
    pub(crate) generators: Generators,
    callers: AtomicU64,
    /// Tasks run in this namespace so far.
    pub tasks: TaskCounts,
    /// Which namespace of its host this is, for fair scheduling.
    pub(crate) namespace: u64,
    /// Set once the namespace is closed for good: its instances trap.
    closed: AtomicBool,
    /// The cancel switches of the calls in flight.
    pub(crate) tokens: Tokens,
    /// Where components other than a job's own are found.
    library: Mutex<Option<Arc<dyn Library>>>,
    /// The machine's id, which its namespaces share ([`Node::id`]).
    id: Arc<Mutex<String>>,
}

/// The components a namespace's tasks may call into besides their own
/// (`remote` naming a component): a tenant's deployed modules, or what
/// `prism run --with` loaded. Nothing outside it can be named.
pub trait Library: Send + Sync {
    /// The id of the component called `name`, or a message listing the
    /// names there are.
    fn find(&self, name: &str) -> Result<[u8; 32], String>;

    /// The name and bytes of component `id`, if it has it. Called off the
    /// async threads: it may read a file.
    fn wasm(&self, id: &[u8; 32]) -> Option<(String, Vec<u8>)>;
}

/// The actors a job reaches beyond this node: a job run here for a caller
/// elsewhere names that caller's actors, which this asks it to call, kill
/// or find; a driver's job in a cluster, other drivers' named actors, and
/// the names all of them share.
pub trait ActorsElsewhere: Send + Sync {
    /// Queues `method` on `actor` for `caller` (calls of one caller keep
    /// their order); the ref of its result, pending here until it comes,
    /// or with `generator`, the id of its stream, filled here as it yields.
    fn call(
        &self,
        node: &Arc<Node>,
        caller: u64,
        actor: ActorId,
        method: String,
        args: Vec<TaskArg>,
        generator: bool,
    ) -> ObjectId;

    /// Kills `actor`, as [`Node::kill_actor`] does.
    fn kill(&self, actor: ActorId, no_restart: bool) -> Result<(), Failure>;

    /// The live actor named `name`.
    fn by_name(&self, name: &str) -> Result<ActorId, Failure>;

    /// Takes `name` for `actor`, made here, if no live actor elsewhere has
    /// it; `false` if one has.
    fn claim_name(&self, name: &str, actor: ActorId) -> Result<bool, Failure>;

    /// Gives back `name`, claimed for an actor that died for good.
    fn free_name(&self, name: &str);
}

/// An actor's instance made here for a caller on another node, which keeps
/// the actor ([`Node::start_actor_here`]): what the actors it makes are
/// owned by.
pub struct InstanceHere {
    actor: ActorId,
    instance: Box<dyn ActorInstance>,
}

/// A task a caller on another node sent here, to run once
/// ([`Node::run_task_here`]).
pub struct HereTask<'a> {
    /// The function.
    pub function: &'a str,
    /// Its arguments.
    pub args: &'a [Input],
    /// Logical cpus it holds.
    pub num_cpus: u32,
    /// The resources it holds.
    pub placement: &'a Placement,
    /// Where a generator's items go.
    pub stream: Option<Arc<generators::Stream>>,
    /// Its cancel switch ([`Node::track_here`]): the tasks it starts are
    /// recorded there, for a recursive cancel.
    pub token: Arc<Token>,
}

/// Where the tasks that a job's tasks start, and the actors they make, go
/// when the job runs here for a driver on another node: to that driver,
/// whose scheduler places them across its cluster, which owns their
/// results and keeps the actors (their queues, names and restarts).
#[async_trait::async_trait]
pub trait TasksElsewhere: Send + Sync {
    /// Submits `function` with `args` for `caller` (its component is named
    /// in `options`); the ref of its result, pending here until it comes,
    /// or with `generator`, the id of its stream, filled here as it yields.
    fn remote(
        &self,
        node: &Arc<Node>,
        caller: u64,
        function: String,
        args: Vec<TaskArg>,
        options: TaskOptions,
        generator: bool,
    ) -> ObjectId;

    /// Makes an actor of `class` of `component` with `args`, kept by the
    /// driver's node and owned by the actor `owner` if given (else by the
    /// job), once the objects `args` name are ready; its id.
    async fn create_actor(
        &self,
        component: [u8; 32],
        class: String,
        args: Vec<TaskArg>,
        options: ActorOptions,
        owner: Option<ActorId>,
    ) -> Result<ActorId, Failure>;
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
    /// Tasks run again to rebuild a value lost with the node it was on.
    pub rebuilt: AtomicU64,
}

/// Counts a task run for another node as finished or failed once it ends,
/// also when the caller drops it mid-run (cancelled): that counts as
/// failed, as a cancelled task does here.
struct Ending<'a> {
    counts: &'a TaskCounts,
    finished: bool,
}

impl Drop for Ending<'_> {
    fn drop(&mut self) {
        let counter = if self.finished { &self.counts.finished } else { &self.counts.failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// The holdings of a call's arguments: every top-level ref and every ref
/// nested in a value. Unknown refs are skipped (they fail the call).
pub(crate) fn hold_args(node: &Node, args: &[TaskArg]) -> Holdings {
    let mut holdings = Holdings::new(&node.store);
    for arg in args {
        match arg {
            TaskArg::Object(id) => holdings.hold(*id),
            TaskArg::Value(bytes) => nested_refs(bytes).into_iter().for_each(|id| holdings.hold(id)),
        }
    }
    holdings
}

/// A job: one run of a program (a driver, or tasks started from outside),
/// with its output and the globals its tasks share.
pub struct Job {
    /// Its number, unique on the host.
    pub id: u64,
    /// The component the job's tasks run in.
    pub program: Arc<ProgramInfo>,
    /// Where its guests' stdout and stderr go.
    pub output: Output,
    /// Refs named for the job's tasks; each holds its object until the job ends.
    pub(crate) globals: Mutex<HashMap<String, ObjectId>>,
    /// Actors killed when the job ends (all but the detached ones).
    pub(crate) owned_actors: Mutex<Vec<ActorId>>,
    /// Where the actors it names but this node lacks are.
    /// Set once, as the job starts: read by every call.
    elsewhere: OnceLock<Arc<dyn ActorsElsewhere>>,
    /// Where the tasks its tasks start go, if not to this node's scheduler.
    tasks_elsewhere: OnceLock<Arc<dyn TasksElsewhere>>,
    /// Told when the job is gone, to drop what it kept for it.
    executor: Arc<dyn Executor>,
}

impl Drop for Job {
    fn drop(&mut self) {
        self.executor.end_job(self.id);
    }
}

impl Job {
    /// Sends what the job's calls ask of actors this node lacks to
    /// `elsewhere`. Called once, before the job runs anything.
    pub fn set_actors_elsewhere(&self, elsewhere: Arc<dyn ActorsElsewhere>) {
        assert!(self.elsewhere.set(elsewhere).is_ok(), "a job's actors elsewhere are set once");
    }

    /// Where the job's actors are, if not here.
    pub(crate) fn elsewhere(&self) -> Option<&Arc<dyn ActorsElsewhere>> {
        self.elsewhere.get()
    }

    /// Sends the tasks the job's tasks start to `elsewhere`. Called once,
    /// before the job runs anything.
    pub fn set_tasks_elsewhere(&self, elsewhere: Arc<dyn TasksElsewhere>) {
        assert!(self.tasks_elsewhere.set(elsewhere).is_ok(), "a job's tasks elsewhere are set once");
    }

    /// Where the tasks the job's tasks start go, if not here.
    pub(crate) fn tasks_elsewhere(&self) -> Option<&Arc<dyn TasksElsewhere>> {
        self.tasks_elsewhere.get()
    }

    /// Sets the job global `name` to `id` in `store` (the job's node's),
    /// taking a reference to it and giving back the one it replaces.
    pub fn set_global(&self, store: &ObjectStore, name: String, id: ObjectId) -> Result<(), Failure> {
        if !store.retain(&id) {
            return Err(Failure::NotFound(format!("no object `{id}` on this node")));
        }
        if let Some(old) = self.globals.lock().insert(name, id) {
            store.release(&old);
        }
        Ok(())
    }

    /// What writes a line to the job's stderr if `failure`, the outcome of
    /// `what` (a task function or an actor method), is dropped with no one
    /// having read it: Ray's "unhandled error". A cancel is not reported:
    /// whoever cancelled it knows.
    pub(crate) fn unread(&self, what: &str, failure: &Failure) -> Option<Unread> {
        if matches!(failure, Failure::Cancelled(_)) {
            return None;
        }
        let (output, what) = (self.output.clone(), what.to_string());
        Some(Box::new(move |id: &ObjectId, failure: &Failure| {
            let line = format!("prism: unhandled error from `{what}` (ref {id}, dropped without a get): {failure}\n");
            output.emit(Stream::Stderr, line.as_bytes());
        }))
    }
}

/// What the namespaces of one machine share: the engine, its instance
/// slots, and the logical cpus.
#[derive(Clone)]
pub struct Host {
    executor: Arc<dyn Executor>,
    scheduler: Arc<Scheduler>,
    namespaces: Arc<AtomicU64>,
    jobs: Arc<AtomicU64>,
    actors: Arc<HostActors>,
    id: Arc<Mutex<String>>,
}

impl Host {
    /// `executor` and cpus as `config` sizes them.
    pub fn with(executor: Arc<dyn Executor>, config: &Config, threads: Threads) -> Self {
        let interrupt = executor.clone();
        // A slot per cpu stays for calls and drivers, whatever the actors.
        let actors = Arc::new(HostActors::new(executor.capacity(), config.workers));
        Host {
            actors,
            executor,
            scheduler: Arc::new(Scheduler::new(
                config.workers,
                &config.resources,
                move || interrupt.interrupt(),
                threads,
            )),
            namespaces: Arc::default(),
            id: Arc::new(Mutex::new(format!("{:016x}", rand::random::<u64>()))),
            jobs: Arc::default(),
        }
    }

    /// Opens a namespace in `config.data_dir`: its own objects, components,
    /// actors and limits, on this host's engine and cpus. Nothing in one
    /// namespace can name anything in another.
    pub fn open(&self, config: Config) -> anyhow::Result<Arc<Node>> {
        let (executor, scheduler) = (self.executor.clone(), self.scheduler.clone());
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("cannot create data directory `{}`", config.data_dir.display()))?;
        let capacity = Capacity {
            memory: config.object_store_memory,
            disk: config.object_store_disk,
            raise: config.limit_names.store,
        };
        let store = Arc::new(ObjectStore::open_with(&config.data_dir.join("objects"), capacity, config.results)?);
        Ok(Arc::new(Node {
            limits: Mutex::new(InstanceLimits::of(&config)),
            config,
            store,
            executor,
            scheduler,
            programs: Mutex::new(HashMap::new()),
            jobs: self.jobs.clone(),
            actors: Actors::new(self.actors.clone()),
            generators: Generators::default(),
            callers: AtomicU64::new(0),
            tasks: TaskCounts::default(),
            namespace: self.namespaces.fetch_add(1, Ordering::Relaxed),
            closed: AtomicBool::new(false),
            tokens: Tokens::default(),
            library: Mutex::new(None),
            id: self.id.clone(),
        }))
    }
}

impl Host {
    /// Instance slots held now (by running calls, calls waiting in `get`,
    /// actors, drivers and idle warm instances), in all namespaces.
    pub fn instances(&self) -> usize {
        self.executor.instances()
    }
}

impl Node {
    /// The id of the machine it runs on: random, until a cluster it joins
    /// names it ([`Node::set_id`]).
    pub fn id(&self) -> String {
        self.id.lock().clone()
    }

    /// Names the machine, as its cluster knows it.
    pub fn set_id(&self, id: &str) {
        *self.id.lock() = id.to_string();
    }

    /// Whether `what` (say "task `f`") may run here, by the resources and
    /// node it asks for; not whether they are free now.
    pub(crate) fn admits(&self, what: &str, placement: &Placement) -> Result<(), Failure> {
        if let Some(affinity) = placement.node.as_ref().filter(|a| !a.soft) {
            let me = self.id();
            if affinity.node != me {
                return Err(Failure::LimitExceeded(format!(
                    "{what} must run on node {} (node affinity), but this is node {me}",
                    affinity.node
                )));
            }
        }
        self.scheduler.resources.check(&placement.resources).map_err(|unmet| unmet.failure(what))
    }

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
    pub async fn load(&self, name: &str, wasm: &[u8]) -> Result<Arc<ProgramInfo>, LoadError> {
        let hash = *blake3::hash(wasm).as_bytes();
        if let Some(program) = self.programs.lock().get(&hash) {
            return Ok(program.clone());
        }
        let cache_dir = self.config.data_dir.join("compiled");
        let program = Arc::new(self.executor.load(&cache_dir, self.namespace, self.limits(), name, hash, wasm).await?);
        self.programs.lock().insert(hash, program.clone());
        Ok(program)
    }

    /// Lets this namespace's tasks call into the components of `library`.
    pub fn set_library(&self, library: Arc<dyn Library>) {
        *self.library.lock() = Some(library);
    }

    /// The id of the component called `name` in this namespace's library.
    pub fn component_named(&self, name: &str) -> Result<[u8; 32], Failure> {
        let library = self.library.lock().clone();
        match library {
            Some(library) => library.find(name).map_err(Failure::NotFound),
            None => Err(Failure::NotFound(format!("no component named `{name}`: there are none to call into"))),
        }
    }

    /// The component `id` names (the job's own if `None`), loading it from
    /// the library if needed.
    pub async fn program(&self, job: &Job, id: Option<[u8; 32]>) -> Result<Arc<ProgramInfo>, Failure> {
        let id = match id {
            None => return Ok(job.program.clone()),
            Some(id) if id == job.program.hash => return Ok(job.program.clone()),
            Some(id) => id,
        };
        if let Some(program) = self.programs.lock().get(&id) {
            return Ok(program.clone());
        }
        let hex = ObjectId::from(id).to_string();
        let library = self.library.lock().clone();
        let found = match library {
            Some(library) => tokio::task::spawn_blocking(move || library.wasm(&id)).await.ok().flatten(),
            None => None,
        };
        let Some((name, wasm)) = found else {
            let known: Vec<String> = self.programs.lock().values().map(|p| p.name.clone()).collect();
            return Err(Failure::NotFound(format!(
                "no component `{hex}` in this namespace (loaded: {})",
                listing(known.iter().map(String::as_str))
            )));
        };
        self.load(&name, &wasm).await.map_err(|e| {
            Failure::InvalidArgument(format!(
                "component `{name}` ({hex}) cannot be loaded: {:#}",
                anyhow::Error::from(e)
            ))
        })
    }

    /// A new job running `program`, its output going to `output`.
    pub fn job(&self, program: Arc<ProgramInfo>, output: Output) -> Arc<Job> {
        Arc::new(Job {
            id: self.jobs.fetch_add(1, Ordering::Relaxed),
            program,
            output,
            globals: Mutex::new(HashMap::new()),
            owned_actors: Mutex::new(Vec::new()),
            elsewhere: OnceLock::new(),
            tasks_elsewhere: OnceLock::new(),
            executor: self.executor.clone(),
        })
    }

    /// Runs the job's program as a driver with `args` until it ends.
    pub async fn run_driver(self: &Arc<Self>, job: &Arc<Job>, args: &[String]) -> Result<DriverExit, LoadError> {
        // A driver holds no cpu slot (like Ray's driver, it mostly waits on
        // tasks) and has a cpu deadline of its own.
        let scope = Scope::new(self, job, None, self.next_caller(), None, None);
        let mut run = self.run(job, scope, job.program.hash, None, 0, Placement::default());
        run.limits = self.limits().driver();
        let (node, job, args) = (self.clone(), job.clone(), args.to_vec());
        let driver = async move {
            // Also when the run is stopped (`prism job stop`, a tenant
            // deleted) and this future dropped midway.
            let _ended = JobEnd { node: &node, job: &job };
            node.executor.run_driver(run, &args).await
        };
        self.scheduler.threads.moving(driver).await
    }

    /// What a call of `job` in `program` runs as, under the node's limits.
    pub(crate) fn run(
        &self,
        job: &Job,
        scope: Scope,
        program: [u8; 32],
        slot: Option<Slot>,
        num_cpus: u32,
        placement: Placement,
    ) -> Run {
        let (calls, output, limits) = (Arc::new(scope), job.output.clone(), self.limits());
        Run { calls, job: job.id, namespace: self.namespace, output, program, limits, slot, num_cpus, placement }
    }

    /// Creates an actor of `class` of `program` for `job`, owned by the
    /// actor `owner` if given (else by the job); see [`Actors`].
    pub fn create_actor(
        self: &Arc<Self>,
        job: &Arc<Job>,
        program: &Arc<ProgramInfo>,
        owner: Option<ActorId>,
        class: String,
        args: Vec<TaskArg>,
        options: ActorOptions,
    ) -> Result<ActorId, CreateError> {
        Actors::create(self, job, program, owner, class, args, options)
    }

    /// Calls `method` on `actor` as `caller`; returns its result's ref.
    pub fn call_actor(self: &Arc<Self>, caller: u64, actor: ActorId, method: String, args: Vec<TaskArg>) -> ObjectId {
        Actors::call(self, caller, actor, method, args, false)
    }

    /// Calls the generator method `method` on `actor` as `caller`; returns
    /// its stream's id.
    pub fn call_actor_generator(
        self: &Arc<Self>,
        caller: u64,
        actor: ActorId,
        method: String,
        args: Vec<TaskArg>,
    ) -> ObjectId {
        Actors::call(self, caller, actor, method, args, true)
    }

    /// Kills `actor`; with `no_restart` false, an actor with restarts left
    /// is restarted instead.
    pub fn kill_actor(&self, actor: ActorId, no_restart: bool) -> Result<(), Failure> {
        Actors::kill(self, actor, "it was killed", no_restart)
    }

    /// Cancels the call whose result (or stream) is `id`, and with
    /// `recursive` the calls it made ([`crate::cancel`]). A finished call
    /// or an object made by `put` is left as it is.
    pub fn cancel(&self, id: ObjectId, recursive: bool) -> Result<(), Failure> {
        if !self.tokens.contains(&id) && !self.store.knows(&id) && self.generators.get(&id).is_none() {
            return Err(Failure::NotFound(format!("no task or object `{id}` on this node")));
        }
        for (id, token) in self.tokens.cancel(id, recursive) {
            // A task fails itself as its future ends; a queued actor call
            // never reaches the actor, so it fails here.
            if token.kind() == Kind::ActorCall {
                Actors::cancelled(self, id, &token.label);
            }
        }
        Ok(())
    }

    /// Files the cancel switch of a task run here for a caller on another
    /// node under `id` (a fresh one), where [`Node::cancel`] finds it until
    /// [`Node::untrack`].
    pub fn track_here(&self, id: ObjectId, function: &str) -> Arc<Token> {
        self.tokens.insert(id, Kind::Task, function.to_string())
    }

    /// Files the cancel switch of `id`, the result of a call run through
    /// another node: [`Node::cancel`] passes it on to `forward`, until
    /// [`Node::untrack`].
    pub fn track_elsewhere(&self, id: ObjectId, label: String, forward: Forward) {
        self.tokens.insert_elsewhere(id, label, forward);
    }

    /// Forgets the cancel switch filed under `id`: its call ended.
    pub fn untrack(&self, id: &ObjectId) {
        self.tokens.remove(id);
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

    /// The stream of generator `id`, while its caller has not closed it.
    pub fn stream(&self, id: &ObjectId) -> Option<Arc<generators::Stream>> {
        self.generators.get(id)
    }

    /// Closes the stream of generator `id`: its caller is done with it,
    /// and the items it did not take are let go of.
    pub fn close_stream(&self, id: &ObjectId) {
        for item in self.generators.close(id) {
            self.store.release(&item);
        }
    }

    /// The live actor named `name`.
    pub fn actor_by_name(&self, name: &str) -> Result<ActorId, Failure> {
        Actors::by_name(self, name)
    }

    /// A new caller identity (driver run, task attempt, actor).
    pub fn next_caller(&self) -> u64 {
        self.callers.fetch_add(1, Ordering::Relaxed)
    }

    /// Schedules `function` (of `options.component`, or the job's program);
    /// returns its result's ref.
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

    /// Runs `task` of the job's program once, here, on its cpus and
    /// resources, with no retry: what a node does for a caller on another
    /// node, whose scheduler retries. The refs the call still holds move to
    /// `made`, as [`Executor::run_task`] says.
    pub async fn run_task_here(
        self: &Arc<Self>,
        job: &Arc<Job>,
        task: HereTask<'_>,
        made: &mut Holdings,
    ) -> Outcome<Value> {
        self.tasks.started.fetch_add(1, Ordering::Relaxed);
        let mut ending = Ending { counts: &self.tasks, finished: false };
        let HereTask { function, args, num_cpus, placement, stream, token } = task;
        let attempt = Attempt { job, program: job.program.hash, function, num_cpus, placement };
        let outcome = attempt.run(self, args, Some(token), stream.map(Generating::new), made).await;
        ending.finished = matches!(outcome, Ok(Ok(_)));
        outcome
    }

    /// Makes an instance of `actor`, of `class` of the job's program, here,
    /// its constructor run with `args`, holding the resources `placement`
    /// asks for: the instance of an actor whose caller, on another node,
    /// keeps its queue, order and restarts.
    pub async fn start_actor_here(
        self: &Arc<Self>,
        job: &Arc<Job>,
        actor: ActorId,
        class: &str,
        args: &[Input],
        placement: Placement,
    ) -> Result<InstanceHere, String> {
        let scope = Scope::new(self, job, None, self.next_caller(), Some(actor), None);
        let run = self.run(job, scope, job.program.hash, None, 0, placement);
        let instance = crate::actors::start_instance(self, run, class, args).await?;
        Ok(InstanceHere { actor, instance })
    }

    /// Runs `method` (`label` is `Class.method`) on `here`, made by
    /// [`Node::start_actor_here`], on one of this node's cpus.
    pub async fn call_actor_here(
        self: &Arc<Self>,
        job: &Arc<Job>,
        here: &mut InstanceHere,
        label: &str,
        method: &str,
        args: &[Input],
        stream: Option<Arc<generators::Stream>>,
    ) -> Outcome {
        let slot = self.scheduler.acquire(self, 1).await;
        let scope = Scope::new(self, job, None, self.next_caller(), Some(here.actor), stream.map(Generating::new));
        let run = self.run(job, scope, job.program.hash, Some(Slot::new(slot)), 1, Placement::default());
        here.instance.call(run, label, method, args).await
    }

    /// A ref that is failed from the start; `unread` is told if it is
    /// dropped unread.
    pub(crate) fn failed(&self, failure: Failure, unread: Option<Unread>) -> ObjectId {
        let id = self.store.pending();
        self.store.complete(id, Err(failure), unread);
        id
    }
}

/// Ends a job when its driver's run ends, however it ends: its owned
/// actors are killed and its globals released.
struct JobEnd<'a> {
    node: &'a Arc<Node>,
    job: &'a Arc<Job>,
}

impl Drop for JobEnd<'_> {
    fn drop(&mut self) {
        Actors::end_job(self.node, self.job);
        for (_, id) in self.job.globals.lock().drain() {
            self.node.store.release(&id);
        }
    }
}
