//! The component runtime: compiles components once (caching the artifact on
//! disk), pre-links them, and runs drivers and task calls in fresh, limited,
//! sandboxed instances.

#[allow(missing_docs, reason = "generated from wit/prism.wit, which documents it")]
mod bindings;
mod engine;
mod imports;
mod mapping;
mod objects;
pub mod output;
mod state;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Semaphore;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::bindings::CommandPre;

use self::bindings::exports::prism::core::worker::FunctionInfo;
pub use self::bindings::types::Payload;
use self::bindings::{CallError, TaskHost, TaskHostPre};
pub(crate) use self::mapping::payload;
use self::output::{GuestStream, StderrTail, Stream, Tag};
pub use self::state::{Generating, InstanceState, LimitError, TaskContext};
use crate::config::{Config, EPOCH_TICK, LimitNames};
use crate::node::{Holdings, Job};
use prism_store::error::{Failure, Refused, listing};
use prism_store::fsutil::write_atomic;

/// The interface every prism component exports, as the error messages name it.
const WORKER_EXPORT: &str = "prism:core/worker@0.2.0";

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
    /// Wasmtime rejected it.
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

/// A task function's signature, as the component's source spells it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Signature {
    /// Its name.
    pub name: String,
    /// Its parameters, in order.
    pub params: Vec<Param>,
    /// Its return type (`()` for none).
    pub returns: String,
}

/// One parameter of a [`Signature`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: String,
}

/// An actor class, as the component's source spells it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Class {
    /// Its name.
    pub name: String,
    /// Its constructor's parameters, in order.
    pub params: Vec<Param>,
    /// Its methods, by name.
    pub methods: Vec<Signature>,
}

impl Class {
    /// The signature of method `name`, if it has one.
    pub fn method(&self, name: &str) -> Option<&Signature> {
        self.methods.iter().find(|m| m.name == name)
    }
}

fn params(pairs: Vec<(String, String)>) -> Vec<Param> {
    pairs.into_iter().map(|(name, ty)| Param { name, ty }).collect()
}

fn signature(f: FunctionInfo) -> Signature {
    Signature { name: f.name, params: params(f.params), returns: f.returns }
}

/// `a: T, b: U`, as a signature shows them.
fn param_list(params: &[Param]) -> String {
    params.iter().map(|p| format!("{}: {}", p.name, p.ty)).collect::<Vec<_>>().join(", ")
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({}) -> {}", self.name, param_list(&self.params), self.returns)
    }
}

/// The constructor: `Class(a: T)`.
impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.name, param_list(&self.params))
    }
}

/// A loaded component: compiled, linked, with its task functions known.
pub struct Program {
    /// Its file name, for messages.
    pub name: String,
    /// blake3 of its bytes.
    pub hash: [u8; 32],
    /// The functions it can run as tasks.
    pub functions: Vec<String>,
    /// Their signatures, in the same order.
    pub signatures: Vec<Signature>,
    /// The actor classes it defines, by name.
    pub classes: Vec<Class>,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
    /// Where its initial memory data ends: objects are mapped above it.
    pub(crate) data_end: u64,
    task: TaskHostPre<InstanceState>,
    command: Option<CommandPre<InstanceState>>,
}

impl Program {
    /// The failure of asking for a `what` named `name` it does not have.
    pub(crate) fn missing<'a>(&self, what: &str, name: &str, known: impl Iterator<Item = &'a str>) -> Failure {
        Failure::InvalidArgument(format!("component `{}` has no {what} `{name}`; it has {}", self.name, listing(known)))
    }

    /// Its actor class `name`.
    pub fn class(&self, name: &str) -> Option<&Class> {
        self.classes.iter().find(|c| c.name == name)
    }

    /// Whether it can run as a driver (exports `wasi:cli/run`).
    pub fn is_command(&self) -> bool {
        self.command.is_some()
    }
}

/// An instance between two task calls of its job.
pub(crate) struct Warm {
    store: Store<InstanceState>,
    instance: TaskHost,
    /// The component it is an instance of.
    program: [u8; 32],
}

/// The instance an actor lives in.
pub(crate) struct ActorInstance {
    store: Store<InstanceState>,
    instance: TaskHost,
}

/// A job's idle instances. Calls from one job reuse them, as a Ray worker
/// process serves many tasks of its job: statics persist between calls, so
/// the first call's setup is paid once. Instances are never shared between
/// jobs, and one that trapped is never reused.
#[derive(Default)]
pub(crate) struct WarmPool(Mutex<Vec<Warm>>);

impl WarmPool {
    /// An idle instance of `program`.
    fn take(&self, program: &[u8; 32]) -> Option<Warm> {
        let mut idle = self.0.lock();
        let i = idle.iter().rposition(|w| w.program == *program)?;
        Some(idle.swap_remove(i))
    }

    fn put(&self, warm: Warm, max: usize) {
        let mut idle = self.0.lock();
        if idle.len() < max {
            idle.push(warm);
        }
    }
}

/// How a driver ended.
#[derive(Debug)]
pub enum DriverExit {
    /// `main` returned or called `exit`; the status code.
    Exited(i32),
    /// The driver trapped; the description.
    Trapped(String),
}

/// The engine, the linker and the instance slots of one node, shared by
/// all its namespaces.
pub struct Runtime {
    engine: Engine,
    linker: Linker<InstanceState>,
    fingerprint: String,
    instances: Arc<Semaphore>,
    max_instances: usize,
    /// Idle instances a job keeps warm.
    max_idle: usize,
}

/// What one namespace's instances may use.
#[derive(Debug, Clone, Copy)]
pub struct InstanceLimits {
    /// Bytes of linear memory.
    pub memory: u64,
    /// Epoch ticks of CPU per task call.
    pub ticks: u64,
    /// What raises them, for messages.
    pub names: LimitNames,
}

impl InstanceLimits {
    /// The limits `config` names.
    pub fn of(config: &Config) -> Self {
        let ticks = config.cpu_deadline.as_nanos() / EPOCH_TICK.as_nanos();
        InstanceLimits {
            memory: config.memory_limit,
            ticks: u64::try_from(ticks.max(1)).unwrap_or(u64::MAX),
            names: config.limit_names,
        }
    }
}

impl Runtime {
    /// An engine configured from `config`, with prism's and WASI's imports.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let engine = engine::build(config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        TaskHost::add_to_linker::<_, HasSelf<InstanceState>>(&mut linker, |s| s)?;
        mapping::add_to_linker(&mut linker)?;
        objects::add_to_linker(&mut linker)?;
        Ok(Runtime {
            fingerprint: engine::fingerprint(&engine),
            engine,
            linker,
            instances: Arc::new(Semaphore::new(config.max_instances as usize)),
            max_instances: config.max_instances as usize,
            max_idle: config.workers as usize,
        })
    }

    /// Instances alive now.
    pub fn instances(&self) -> usize {
        self.max_instances - self.instances.available_permits()
    }

    /// Compiles (or loads from `cache_dir`) and links a component whose
    /// bytes hash to `hash`; its functions are listed under `limits`.
    pub async fn load(
        &self,
        cache_dir: &Path,
        limits: InstanceLimits,
        name: &str,
        hash: [u8; 32],
        wasm: &[u8],
    ) -> Result<Program, LoadError> {
        match wasm.get(..8) {
            Some([0, b'a', b's', b'm', 1, 0, 0, 0]) => return Err(LoadError::CoreModule(name.into())),
            Some([0, b'a', b's', b'm', ..]) => {}
            _ => return Err(LoadError::NotWasm(name.into())),
        }
        let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
        let path = cache_dir.join(format!("{hex}-{}.cwasm", self.fingerprint));
        // Compiling takes a core for up to seconds: off the async threads,
        // so the node's other requests and tasks go on meanwhile.
        let (engine, owned_name, owned_wasm) = (self.engine.clone(), name.to_string(), wasm.to_vec());
        let (component, from_cache) =
            tokio::task::spawn_blocking(move || compile(&engine, &path, &owned_name, &owned_wasm))
                .await
                .map_err(|e| LoadError::Invalid(name.into(), anyhow::anyhow!("compilation stopped: {e}")))??;
        let pre = self.linker.instantiate_pre(&component).map_err(|e| LoadError::Imports(name.into(), e.into()))?;
        let task = TaskHostPre::new(pre.clone()).map_err(|_| LoadError::WrongWorld(name.into()))?;
        let command = CommandPre::new(pre).ok();

        // Ask the component which functions it has, in a throwaway instance.
        let mut store = self.store(WasiCtxBuilder::new().build(), limits, StderrTail::default(), Tag::default());
        store.set_epoch_deadline(1);
        let (mut signatures, mut classes) = async {
            let instance = task.instantiate_async(&mut store).await?;
            let worker = instance.prism_core_worker();
            Ok::<_, wasmtime::Error>((worker.call_functions(&mut store).await?, worker.call_classes(&mut store).await?))
        }
        .await
        .map_err(|e| LoadError::Inspect(name.into(), describe(&e, &store.data().stderr).message))?;
        signatures.sort_by(|a, b| a.name.cmp(&b.name));
        classes.sort_by(|a, b| a.name.cmp(&b.name));
        let signatures: Vec<_> = signatures.into_iter().map(signature).collect();
        let functions = signatures.iter().map(|s| s.name.clone()).collect();
        let classes = classes
            .into_iter()
            .map(|c| {
                let mut methods: Vec<_> = c.methods.into_iter().map(signature).collect();
                methods.sort_by(|a, b| a.name.cmp(&b.name));
                Class { name: c.name, params: params(c.params), methods }
            })
            .collect();

        let data_end = mapping::data_end(wasm);
        Ok(Program { name: name.into(), hash, functions, signatures, classes, from_cache, data_end, task, command })
    }

    fn store(
        &self,
        wasi: wasmtime_wasi::WasiCtx,
        limits: InstanceLimits,
        stderr: StderrTail,
        tag: Tag,
    ) -> Store<InstanceState> {
        let mut store = Store::new(&self.engine, InstanceState::new(wasi, limits, stderr, tag));
        store.limiter(|state| &mut state.limits);
        // A guest cannot hand the host more than its own memory, which is
        // already limited; wasmtime's default (128 MiB) would cap objects.
        store.set_hostcall_fuel(usize::try_from(limits.memory).unwrap_or(usize::MAX));
        store.epoch_deadline_callback(|mut ctx| {
            let state = ctx.data_mut();
            if state.task.as_ref().is_some_and(|t| t.node.is_closed()) {
                return Err(wasmtime::Error::msg("stopped: its namespace was closed"));
            }
            state.ticks += 1;
            if state.ticks > state.tick_limit {
                let deadline = (EPOCH_TICK.as_nanos() as u64).saturating_mul(state.tick_limit);
                return Err(LimitError::Cpu(std::time::Duration::from_nanos(deadline), state.limits.names.cpu).into());
            }
            // Let other tasks on this thread run, then go on.
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    /// A store whose output goes to `job`'s, holding an instance slot.
    async fn job_store(&self, job: &Job, args: &[String], limits: InstanceLimits) -> Store<InstanceState> {
        let slot = self.instances.clone().acquire_owned().await.expect("instance semaphore is never closed");
        let (stderr, tag) = (StderrTail::default(), Tag::default());
        let wasi = WasiCtxBuilder::new()
            .args(args)
            .stdout(GuestStream::new(job.output.clone(), Stream::Stdout, tag.clone(), None))
            .stderr(GuestStream::new(job.output.clone(), Stream::Stderr, tag.clone(), Some(stderr.clone())))
            .build();
        let mut store = self.store(wasi, limits, stderr, tag);
        store.data_mut()._instance_slot = Some(slot);
        store
    }

    /// Runs one task call, in a warm instance of the job if one is idle,
    /// else in a fresh one. The outer error is a trap, the inner
    /// one the error the guest returned. An instance that trapped is dropped;
    /// one that returned goes back to the job's idle instances, its refs
    /// moved to `keep`: the caller gives them back once the result (which
    /// may nest them) is stored.
    pub async fn call_task(
        &self,
        ctx: TaskContext,
        function: &str,
        args: &[Payload],
        keep: &mut Holdings,
    ) -> Result<Result<Vec<u8>, Refused>, Trapped> {
        let (job, program) = (ctx.job.clone(), ctx.program.clone());
        let warm = job.warm.take(&program.hash);
        let limits = ctx.node.limits();
        let (mut store, instance) = match warm {
            Some(Warm { mut store, instance, .. }) => {
                // The limits may have changed since it was made.
                store.data_mut().set_limits(limits);
                store.set_hostcall_fuel(usize::try_from(limits.memory).unwrap_or(usize::MAX));
                (store, Some(instance))
            }
            None => (self.job_store(&job, &[], limits).await, None),
        };
        store.data_mut().begin(ctx, Some(function));
        store.set_epoch_deadline(1);
        let result = async {
            let instance = match instance {
                Some(instance) => instance,
                None => program.task.instantiate_async(&mut store).await?,
            };
            let out = instance.prism_core_worker().call_run(&mut store, function, args).await?;
            Ok((out, instance))
        }
        .await;
        match result {
            Ok((out, instance)) => {
                store.data_mut().finish();
                // A task's generators end with it, whether it closed them or not.
                store.data_mut().streams.close_all();
                keep.absorb(std::mem::take(&mut store.data_mut().holdings));
                job.warm.put(Warm { store, instance, program: program.hash }, self.max_idle);
                Ok(out.map_err(refused))
            }
            Err(e) => Err(describe(&e, &store.data().stderr)),
        }
    }

    /// Makes the instance of an actor: a fresh instance of the job's
    /// component whose constructor of `class` ran with `args`.
    pub(crate) async fn start_actor(
        &self,
        ctx: TaskContext,
        class: &str,
        args: &[Payload],
    ) -> Result<ActorInstance, String> {
        let (job, program) = (ctx.job.clone(), ctx.program.clone());
        let mut store = self.job_store(&job, &[], ctx.node.limits()).await;
        store.data_mut().begin(ctx, Some(class));
        store.data_mut().hold_nested(args);
        store.set_epoch_deadline(1);
        let result = async {
            let instance = program.task.instantiate_async(&mut store).await?;
            let out = instance.prism_core_worker().call_construct(&mut store, class, args).await?;
            Ok((out, instance))
        }
        .await;
        match result {
            Ok((Ok(()), instance)) => {
                store.data_mut().finish();
                Ok(ActorInstance { store, instance })
            }
            Ok((Err(error), _)) => Err(refused(error).to_string()),
            Err(e) => Err(describe(&e, &store.data().stderr).message),
        }
    }

    /// Runs one method call on an actor's instance. A trap (the outer error)
    /// leaves the instance unusable: the caller restarts or drops it.
    pub(crate) async fn call_actor(
        &self,
        actor: &mut ActorInstance,
        ctx: TaskContext,
        label: &str,
        method: &str,
        args: &[Payload],
    ) -> Result<Result<Vec<u8>, Refused>, Trapped> {
        let ActorInstance { store, instance } = actor;
        store.data_mut().begin(ctx, Some(label));
        // An actor may keep refs from its arguments in its state.
        store.data_mut().hold_nested(args);
        store.set_epoch_deadline(1);
        let result = instance.prism_core_worker().call_call_method(&mut *store, method, args).await;
        store.data_mut().finish();
        match result {
            Ok(out) => Ok(out.map_err(refused)),
            Err(e) => Err(describe(&e, &store.data().stderr)),
        }
    }

    /// Runs the job's component as a driver (`wasi:cli/run`) with `args`.
    pub async fn run_driver(&self, ctx: TaskContext, args: &[String]) -> Result<DriverExit, LoadError> {
        let program = ctx.job.program.clone();
        let Some(command) = &program.command else {
            return Err(LoadError::NotCommand(program.name.clone()));
        };
        let mut argv = vec![program.name.clone()];
        argv.extend_from_slice(args);
        let limits = InstanceLimits { ticks: u64::MAX, ..ctx.node.limits() };
        let mut store = self.job_store(&ctx.job, &argv, limits).await;
        store.data_mut().begin(ctx, None);
        store.set_epoch_deadline(1);
        let result = async {
            let instance = command.instantiate_async(&mut store).await?;
            instance.wasi_cli_run().call_run(&mut store).await
        }
        .await;
        Ok(match result {
            Ok(Ok(())) => DriverExit::Exited(0),
            Ok(Err(())) => DriverExit::Exited(1),
            Err(e) => match e.downcast_ref::<wasmtime_wasi::I32Exit>() {
                Some(exit) => DriverExit::Exited(exit.0),
                None => DriverExit::Trapped(describe(&e, &store.data().stderr).message),
            },
        })
    }
}

/// The compiled component, from the cache file `path` (named by the
/// wasm's hash and the engine's fingerprint) or freshly compiled and then
/// cached there; and whether it came from the cache.
fn compile(engine: &Engine, path: &Path, name: &str, wasm: &[u8]) -> Result<(Component, bool), LoadError> {
    let started = Instant::now();
    if path.exists() {
        // SAFETY: only this runtime writes the cache directory, atomically,
        // with artifacts its own engine serialized; the fingerprint in the
        // name guarantees a compatible engine.
        match unsafe { Component::deserialize_file(engine, path) } {
            Ok(component) => {
                tracing::info!(component = name, elapsed = ?started.elapsed(), "loaded compiled component from cache");
                return Ok((component, true));
            }
            Err(err) => tracing::warn!(path = %path.display(), error = %err, "ignoring unusable cached artifact"),
        }
    }
    let component = Component::new(engine, wasm).map_err(|e| LoadError::Invalid(name.into(), e.into()))?;
    tracing::info!(component = name, elapsed = ?started.elapsed(), "compiled component");
    match component.serialize() {
        Ok(bytes) => {
            let dir = path.parent().unwrap_or(Path::new("."));
            if let Err(err) = std::fs::create_dir_all(dir).and_then(|()| write_atomic(path, &bytes)) {
                tracing::warn!(path = %path.display(), error = %err, "cannot cache compiled component");
            }
        }
        Err(err) => tracing::warn!(error = %err, "cannot serialize compiled component"),
    }
    Ok((component, false))
}

/// A call that trapped: what the caller's `get` reports, and whether a limit
/// ended it (a quota to raise, not a bug in the guest).
#[derive(Debug, Clone)]
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

/// The host's account of a guest's `call-error`.
fn refused(error: CallError) -> Refused {
    match error {
        CallError::Returned(message) => Refused::Returned(message),
        CallError::Propagated(error) => Refused::Propagated(imports::failure_of(error)),
    }
}

impl std::fmt::Display for Trapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// A trap as the caller's `get` reports it: the limit or trap, and the end
/// of the guest's stderr (where a Rust panic message is).
fn describe(err: &wasmtime::Error, stderr: &StderrTail) -> Trapped {
    let limit = err.downcast_ref::<LimitError>();
    let what = if let Some(limit) = limit {
        limit.to_string()
    } else if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
        format!("it called `exit({})` instead of returning", exit.0)
    } else if let Some(trap) = err.downcast_ref::<Trap>() {
        match trap {
            // Rust and C keep their stack in linear memory: overflowing it
            // shows up as an access below address 0.
            Trap::MemoryOutOfBounds => format!("{trap} (or a stack overflow in linear memory)"),
            _ => trap.to_string(),
        }
    } else {
        format!("{err:#}")
    };
    let message = match stderr.text() {
        tail if tail.is_empty() => what,
        tail => format!("{what}; stderr: {tail}"),
    };
    Trapped { message, limit: limit.is_some() }
}
