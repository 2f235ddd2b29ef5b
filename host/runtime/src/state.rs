//! What each Store holds: its WASI context (closed by default), its limits,
//! and the task context prism's imports act on.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::imports::MAX_PREPARED;
use crate::mapping::Mappings;
use crate::output::{StderrTail, Tag};
use crate::runtime::Compiled;
use prism_exec::config::{LimitNames, MAX_TABLE_ELEMENTS};
use prism_exec::{Calls, Input, InstanceLimits, QueuedCall, Run, Slot};
use prism_store::{Holdings, ObjectId, nested_refs};

/// A limit a guest ran into: it ends the call as a trap.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LimitError {
    /// The call ran longer than its CPU deadline.
    #[error("exceeded its cpu deadline of {0:?} (raise it with {1})")]
    Cpu(Duration, &'static str),
    /// Memory grew past the limit.
    #[error("exceeded its memory limit of {} MiB (raise it with {})", .0 >> 20, .1)]
    Memory(u64, &'static str),
    /// A table grew past [`MAX_TABLE_ELEMENTS`].
    #[error("grew a table past {MAX_TABLE_ELEMENTS} elements")]
    Table,
    /// It held more task functions and actor methods than [`MAX_PREPARED`].
    #[error("held more than {MAX_PREPARED} task functions and actor methods at once")]
    Prepared,
}

/// Per-instance memory and table bounds.
pub struct Limits {
    memory: u64,
    /// What raises each limit, for messages.
    pub(super) names: LimitNames,
}

impl ResourceLimiter for Limits {
    fn memory_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory {
            return Err(LimitError::Memory(self.memory, self.names.memory).into());
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Err(LimitError::Table.into());
        }
        Ok(true)
    }
}

/// The call an instance is running.
pub struct Running {
    /// What its imports act on.
    pub calls: Arc<dyn Calls>,
    /// The component it runs.
    pub program: Arc<Compiled>,
    /// The cpus it holds; given back while it blocks in `get`.
    pub slot: Option<Slot>,
    /// Cpus to take back after blocking (0 for drivers).
    pub num_cpus: u32,
}

/// The generator streams an instance opened and did not close: held like
/// refs, closed (their untaken items released) when the holder is done.
#[derive(Default)]
pub struct Streams {
    calls: Option<Arc<dyn Calls>>,
    ids: Vec<ObjectId>,
}

impl Streams {
    /// Holds the stream `id`.
    pub fn open(&mut self, id: ObjectId) {
        self.ids.push(id);
    }

    /// Closes the stream `id`: its untaken items are released.
    pub fn close(&mut self, id: &ObjectId) {
        self.ids.retain(|s| s != id);
        if let Some(calls) = &self.calls {
            calls.close_stream(*id);
        }
    }

    /// Closes every stream still held, and lets go of the node (a warm
    /// instance must not keep its job alive).
    pub fn close_all(&mut self) {
        for id in std::mem::take(&mut self.ids) {
            self.close(&id);
        }
        self.calls = None;
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        self.close_all();
    }
}

/// The data of one Store.
pub struct InstanceState {
    wasi: WasiCtx,
    pub(super) table: ResourceTable,
    /// The task functions and actor methods it holds in `table`.
    pub(super) prepared: usize,
    pub(super) limits: Limits,
    /// Epoch ticks this instance has run; compared with `tick_limit`.
    pub(super) ticks: u64,
    /// The tick count it last saw: an epoch change without a tick is an
    /// interrupt, not cpu spent.
    pub(super) seen_tick: u64,
    pub(super) tick_limit: u64,
    pub(super) stderr: StderrTail,
    pub(super) tag: Tag,
    /// What the current call acts for; absent between calls of a warm
    /// instance and while a component is inspected at load time.
    pub task: Option<Running>,
    /// Objects mapped into this instance's memory; zeroed when it ends.
    pub(super) mappings: Mappings,
    /// The refs this instance was handed and has not dropped: they keep
    /// their objects alive. A task's are given back once its result is
    /// stored, an actor's and a driver's when the instance ends.
    pub(super) holdings: Holdings,
    /// The generator streams it opened and did not close.
    pub(super) streams: Streams,
    /// In an actor's method call, what `next-call` did with its value.
    pub(super) method: Option<Method>,
}

/// Where an actor's running method call is, for `actors.next-call`.
pub(super) enum Method {
    /// Running: its value is what `call-method` returns.
    Running,
    /// Answered through `next-call`, which kept its value for the return.
    Kept(Vec<u8>),
    /// Answered through `next-call`, by the node: none runs now.
    Given,
}

impl InstanceState {
    pub(super) fn new(wasi: WasiCtx, limits: InstanceLimits, stderr: StderrTail, tag: Tag) -> Self {
        InstanceState {
            wasi,
            table: ResourceTable::new(),
            prepared: 0,
            limits: Limits { memory: limits.memory, names: limits.names },
            ticks: 0,
            seen_tick: 0,
            tick_limit: limits.ticks,
            stderr,
            tag,
            task: None,
            mappings: Mappings::default(),
            holdings: Holdings::default(),
            streams: Streams::default(),
            method: None,
        }
    }

    /// Applies `limits` to the calls from now on.
    pub(super) fn set_limits(&mut self, limits: InstanceLimits) {
        self.limits = Limits { memory: limits.memory, names: limits.names };
        self.tick_limit = limits.ticks;
    }

    /// Starts the call `run` of `program`, its output tagged with `function`.
    pub(super) fn begin(&mut self, run: Run, program: Arc<Compiled>, function: Option<&str>) {
        self.holdings.bind(run.calls.store());
        self.streams.calls = Some(run.calls.clone());
        self.task = Some(Running { calls: run.calls, program, slot: run.slot, num_cpus: run.num_cpus });
        self.method = None;
        self.ticks = 0;
        self.stderr.clear();
        self.tag.set(function);
    }

    /// Starts `next`, a queued call taken in place: its arguments held, its
    /// output tagged, its cpu limit counted afresh.
    pub(super) fn begin_next(&mut self, next: &QueuedCall) {
        self.hold_nested(&next.args);
        self.method = Some(Method::Running);
        self.ticks = 0;
        self.stderr.clear();
        self.tag.set(Some(&next.label));
    }

    /// Holds the refs nested in `args`, which outlive the call in an actor.
    pub(super) fn hold_nested(&mut self, args: &[Input]) {
        let Some(running) = &self.task else { return };
        let store = running.calls.store().clone();
        for arg in args {
            let nested = match arg {
                Input::Bytes(bytes) => nested_refs(bytes),
                Input::Large { id, .. } => store.nested(id),
                Input::Elsewhere(_) => unreachable!("only an executor placing tasks elsewhere is given one"),
            };
            nested.into_iter().for_each(|id| self.holdings.hold(id));
        }
    }

    /// Ends the call: gives back its cpu slot and its job. (The tag stays
    /// until the next call sets it: an idle instance writes nothing.)
    pub(super) fn finish(&mut self) {
        self.task = None;
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
