//! [`Runtime`]: the engine, the compiled components and the warm
//! instances, and the [`Executor`] they make.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, Trap, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::bindings::exports::prism::core::worker::FunctionInfo;
use crate::bindings::types::Payload;
use crate::bindings::{CallError, TaskHost, TaskHostPre};
use crate::instances::{InstanceSlot, Instances};
use crate::output::{GuestStream, StderrTail, Tag};
use crate::state::{InstanceState, LimitError, Method};
use prism_exec::config::{Config, EPOCH_TICK};
use prism_exec::{
    ActorInstance, Class, DriverExit, Executor, Input, InstanceLimits, LoadError, Outcome, Param, ProgramInfo, Run,
    Signature, Stream, Trapped, Value,
};
use prism_store::Holdings;
use prism_store::error::Refused;
use prism_store::fsutil::write_atomic;

fn params(pairs: Vec<(String, String)>) -> Vec<Param> {
    pairs.into_iter().map(|(name, ty)| Param { name, ty }).collect()
}

fn signature(f: FunctionInfo) -> Signature {
    Signature { name: f.name, params: params(f.params), returns: f.returns }
}

/// A loaded component, compiled and linked.
pub(crate) struct Compiled {
    /// Its file name, for messages.
    name: String,
    /// blake3 of its bytes.
    pub(crate) hash: [u8; 32],
    /// Where its initial memory data ends: objects are mapped above it.
    pub(crate) data_end: u64,
    task: TaskHostPre<InstanceState>,
    command: Option<CommandPre<InstanceState>>,
}

/// An instance between two task calls of its job. Calls from one job
/// reuse them, as a Ray worker process serves many tasks of its job:
/// statics persist between calls, so the first call's setup is paid once.
/// Instances are never shared between jobs, and one that trapped is never
/// reused.
pub(crate) struct Warm {
    store: Store<InstanceState>,
    instance: TaskHost,
}

/// The slot an instance of this runtime holds.
type Slot = InstanceSlot<Warm>;

/// How long a call waits for an instance slot before its job hears why.
const SLOW_SLOT: Duration = Duration::from_secs(5);

/// The instance an actor lives in.
struct LocalActor {
    store: Store<InstanceState>,
    instance: TaskHost,
    program: Arc<Compiled>,
    /// Last: freed once the store (and its memory) is gone.
    _slot: Slot,
}

/// The engine, the linker and the instance slots of one node, shared by
/// all its namespaces.
pub struct Runtime {
    engine: Engine,
    linker: Linker<InstanceState>,
    /// Every component loaded, by the blake3 of its bytes. A namespace
    /// only runs the ones it loaded (the node checks).
    programs: Mutex<HashMap<[u8; 32], Arc<Compiled>>>,
    fingerprint: String,
    /// Epoch ticks so far; the epoch itself also moves on interrupts.
    ticks: Arc<AtomicU64>,
    /// The pool's slots, and the warm instances holding some; a job keeps
    /// as many warm as it has cpus to run them on.
    instances: Arc<Instances<Warm>>,
}

impl Runtime {
    /// An engine configured from `config`, with prism's and WASI's imports.
    pub fn new(config: &Config) -> anyhow::Result<Self> {
        let (engine, max_instances, ticks) = crate::engine::build(config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        TaskHost::add_to_linker::<_, HasSelf<InstanceState>>(&mut linker, |s| s)?;
        crate::mapping::add_to_linker(&mut linker)?;
        crate::objects::add_to_linker(&mut linker)?;
        Ok(Runtime {
            fingerprint: crate::engine::fingerprint(&engine),
            engine,
            linker,
            ticks,
            programs: Mutex::default(),
            instances: Instances::new(max_instances as usize, config.workers as usize),
        })
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
        let ticks = self.ticks.clone();
        store.epoch_deadline_callback(move |mut ctx| {
            let state = ctx.data_mut();
            let running = state.task.as_ref();
            if running.is_some_and(|t| t.calls.is_closed()) {
                return Err(wasmtime::Error::msg("stopped: its namespace was closed"));
            }
            let now = ticks.load(Ordering::Relaxed);
            if now != state.seen_tick {
                state.seen_tick = now;
                state.ticks += 1;
                if state.ticks > state.tick_limit {
                    let deadline = (EPOCH_TICK.as_nanos() as u64).saturating_mul(state.tick_limit);
                    return Err(LimitError::Cpu(Duration::from_nanos(deadline), state.limits.names.cpu).into());
                }
            }
            // Another namespace is owed this call's cpus: it gets them, and
            // the call goes on once it has them back.
            if let Some(slot) = running.and_then(|t| t.slot.as_ref()).filter(|slot| slot.owes_turn()) {
                return Ok(UpdateDeadline::YieldCustom(1, slot.pass()));
            }
            // Let other tasks on this thread run, then go on.
            Ok(UpdateDeadline::Yield(1))
        });
        store
    }

    /// A slot for an instance of `run`. If none comes soon (every one held
    /// by running calls, actors and drivers), the job's stderr says why it
    /// waits, once.
    async fn slot(&self, run: &Run) -> Slot {
        let acquire = self.instances.acquire(run.namespace);
        tokio::pin!(acquire);
        if let Ok(slot) = tokio::time::timeout(SLOW_SLOT, &mut acquire).await {
            return slot;
        }
        let line = format!(
            "prism: waiting for an instance slot: all {} are held by running calls, actors and drivers \
             (raise --max-instances)\n",
            self.instances.capacity()
        );
        run.output.emit(Stream::Stderr, line.as_bytes());
        acquire.await
    }

    /// A store whose output goes to `run`'s; its caller holds a slot for it.
    fn job_store(&self, run: &Run, args: &[String], limits: InstanceLimits) -> Store<InstanceState> {
        let (stderr, tag) = (StderrTail::default(), Tag::default());
        let wasi = WasiCtxBuilder::new()
            .args(args)
            .stdout(GuestStream::new(run.output.clone(), Stream::Stdout, tag.clone(), None))
            .stderr(GuestStream::new(run.output.clone(), Stream::Stderr, tag.clone(), Some(stderr.clone())))
            .build();
        self.store(wasi, limits, stderr, tag)
    }

    /// The component `run` names, which the node loaded through this runtime.
    fn compiled(&self, run: &Run) -> Arc<Compiled> {
        self.programs.lock().get(&run.program).cloned().expect("the node runs only components it loaded here")
    }
}

#[async_trait::async_trait]
impl Executor for Runtime {
    fn instances(&self) -> usize {
        self.instances.in_use()
    }

    fn capacity(&self) -> usize {
        self.instances.capacity()
    }

    fn interrupt(&self) {
        self.engine.increment_epoch();
    }

    fn end_job(&self, job: u64) {
        self.instances.end_job(job);
    }

    async fn load(
        &self,
        cache_dir: &Path,
        namespace: u64,
        limits: InstanceLimits,
        name: &str,
        hash: [u8; 32],
        wasm: &[u8],
    ) -> Result<ProgramInfo, LoadError> {
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

        // Ask the component which functions it has, in a throwaway instance
        // that waits for a slot like any other.
        let _slot = self.instances.acquire(namespace).await;
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
        let info = ProgramInfo {
            name: name.into(),
            hash,
            functions,
            signatures,
            classes,
            command: command.is_some(),
            from_cache,
        };
        let compiled = Compiled { name: name.into(), hash, data_end: crate::mapping::data_end(wasm), task, command };
        self.programs.lock().insert(hash, Arc::new(compiled));
        Ok(info)
    }

    /// Runs one task call, in a warm instance of the job if one is idle,
    /// else in a fresh one. An instance that trapped is dropped; one that
    /// returned goes back to the job's idle instances.
    async fn run_task(&self, run: Run, function: &str, args: &[Input], keep: &mut Holdings) -> Outcome<Value> {
        let (job, program) = (run.job, self.compiled(&run));
        let limits = run.limits;
        let (warm, slot) = match self.instances.take_idle(job, &run.program) {
            Some((warm, slot)) => (Some(warm), slot),
            None => (None, self.slot(&run).await),
        };
        // Declared after the slot, so dropped before it.
        let (mut store, instance) = match warm {
            Some(Warm { mut store, instance }) => {
                // The limits may have changed since it was made.
                store.data_mut().set_limits(limits);
                store.set_hostcall_fuel(usize::try_from(limits.memory).unwrap_or(usize::MAX));
                (store, Some(instance))
            }
            None => (self.job_store(&run, &[], limits), None),
        };
        let hash = run.program;
        store.data_mut().begin(run, program.clone(), Some(function));
        store.set_epoch_deadline(1);
        let args = lower(args.iter().cloned());
        let result = async {
            let instance = match instance {
                Some(instance) => instance,
                None => program.task.instantiate_async(&mut store).await?,
            };
            let out = instance.prism_core_worker().call_run(&mut store, function, &args).await?;
            Ok((out, instance))
        }
        .await;
        match result {
            Ok((out, instance)) => {
                // A task's generators end with it, whether it closed them or not.
                store.data_mut().streams.close_all();
                store.data_mut().finish();
                keep.absorb(std::mem::take(&mut store.data_mut().holdings));
                self.instances.put_idle(slot, job, hash, Warm { store, instance });
                Ok(out.map(Value::Here).map_err(refused))
            }
            Err(e) => Err(describe(&e, &store.data().stderr)),
        }
    }

    async fn start_actor(&self, run: Run, class: &str, args: &[Input]) -> Result<Box<dyn ActorInstance>, String> {
        let program = self.compiled(&run);
        let slot = self.slot(&run).await;
        let mut store = self.job_store(&run, &[], run.limits);
        store.data_mut().begin(run, program.clone(), Some(class));
        store.data_mut().hold_nested(args);
        store.set_epoch_deadline(1);
        let args = lower(args.iter().cloned());
        let result = async {
            let instance = program.task.instantiate_async(&mut store).await?;
            let out = instance.prism_core_worker().call_construct(&mut store, class, &args).await?;
            Ok((out, instance))
        }
        .await;
        match result {
            Ok((Ok(()), instance)) => {
                store.data_mut().finish();
                Ok(Box::new(LocalActor { store, instance, program, _slot: slot }))
            }
            Ok((Err(error), _)) => Err(refused(error).to_string()),
            Err(e) => Err(describe(&e, &store.data().stderr).message),
        }
    }

    async fn run_driver(&self, run: Run, args: &[String]) -> Result<DriverExit, LoadError> {
        let program = self.compiled(&run);
        let Some(command) = &program.command else {
            return Err(LoadError::NotCommand(program.name.clone()));
        };
        let mut argv = vec![program.name.clone()];
        argv.extend_from_slice(args);
        let _slot = self.slot(&run).await;
        let mut store = self.job_store(&run, &argv, run.limits);
        store.data_mut().begin(run, program.clone(), None);
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

#[async_trait::async_trait]
impl ActorInstance for LocalActor {
    async fn call(&mut self, run: Run, label: &str, method: &str, args: &[Input]) -> Outcome {
        let LocalActor { store, instance, program, .. } = self;
        store.data_mut().begin(run, program.clone(), Some(label));
        store.data_mut().method = Some(Method::Running);
        // An actor may keep refs from its arguments in its state.
        store.data_mut().hold_nested(args);
        store.set_epoch_deadline(1);
        let args = lower(args.iter().cloned());
        let result = instance.prism_core_worker().call_call_method(&mut *store, method, &args).await;
        let answered = store.data_mut().method.take();
        store.data_mut().finish();
        match (result, answered) {
            // Answered through `next-call`: what the export returns is unread.
            (Ok(_), Some(Method::Kept(value))) => Ok(Ok(value)),
            (Ok(_), Some(Method::Given)) => Ok(Ok(Vec::new())),
            (Ok(out), _) => Ok(out.map_err(refused)),
            (Err(e), _) => Err(describe(&e, &store.data().stderr)),
        }
    }
}

/// Arguments as the guest's `run` takes them.
pub(crate) fn lower(args: impl IntoIterator<Item = Input>) -> Vec<Payload> {
    args.into_iter().map(crate::mapping::payload).collect()
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

/// The host's account of a guest's `call-error`.
fn refused(error: CallError) -> Refused {
    match error {
        CallError::Returned(message) => Refused::Returned(message),
        CallError::Propagated(error) => Refused::Propagated(crate::imports::failure_of(error)),
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
