//! What each Store holds: its WASI context (closed by default), its limits,
//! and the task context prism's imports act on.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::OwnedSemaphorePermit;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::imports::object_id;
use super::mapping::Mappings;
use super::output::{StderrTail, Tag};
use super::{InstanceLimits, Program};
use crate::cancel::Token;
use crate::config::LimitNames;
use crate::config::MAX_TABLE_ELEMENTS;
use crate::generators::Stream;
use crate::node::{Holdings, Job, Node, Streams};
use crate::slots::Permit;
use prism_store::{ObjectId, nested_refs};

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

/// The job and cpu slot a running instance acts for.
pub struct TaskContext {
    /// The node it runs on.
    pub node: Arc<Node>,
    /// The job it belongs to.
    pub job: Arc<Job>,
    /// The component it runs (the job's own, or one it called into).
    pub program: Arc<Program>,
    /// The cancel switch of the call it runs (none for drivers): the calls
    /// it makes are recorded there, for a recursive cancel.
    pub token: Option<Arc<Token>>,
    /// The cpu slots this task holds; given back while it blocks in `get`.
    pub slot: Option<Permit>,
    /// Slots to take back after blocking (the task's `num_cpus`; 0 for drivers).
    pub num_cpus: u32,
    /// Who is calling, for actor call ordering: one id per driver run, task
    /// attempt or actor.
    pub caller: u64,
    /// The actor this instance is, if it is one: actors it creates are
    /// owned by it and end with it.
    pub actor: Option<ObjectId>,
    /// The stream this call yields to, if it runs a generator.
    pub generator: Option<Generating>,
}

/// A generator call's stream and how many items this attempt has yielded.
pub struct Generating {
    /// Where its items go.
    pub stream: Arc<Stream>,
    /// Items yielded so far by this attempt.
    pub yielded: usize,
}

impl Generating {
    /// A new attempt at filling `stream`.
    pub fn new(stream: Arc<Stream>) -> Self {
        Generating { stream, yielded: 0 }
    }
}

/// The data of one Store.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(super) limits: Limits,
    /// Epoch ticks this instance has run; compared with `tick_limit`.
    pub(super) ticks: u64,
    pub(super) tick_limit: u64,
    pub(super) stderr: StderrTail,
    pub(super) tag: Tag,
    /// What the current call acts for; absent between calls of a warm
    /// instance and while a component is inspected at load time.
    pub task: Option<TaskContext>,
    /// Held while the instance lives: bounds instances alive at once.
    pub(super) _instance_slot: Option<OwnedSemaphorePermit>,
    /// Objects mapped into this instance's memory; zeroed when it ends.
    pub(super) mappings: Mappings,
    /// The refs this instance was handed and has not dropped: they keep
    /// their objects alive. A task's are given back once its result is
    /// stored, an actor's and a driver's when the instance ends.
    pub(crate) holdings: Holdings,
    /// The generator streams it opened and did not close.
    pub(crate) streams: Streams,
}

impl InstanceState {
    pub(super) fn new(wasi: WasiCtx, limits: InstanceLimits, stderr: StderrTail, tag: Tag) -> Self {
        InstanceState {
            wasi,
            table: ResourceTable::new(),
            limits: Limits { memory: limits.memory, names: limits.names },
            ticks: 0,
            tick_limit: limits.ticks,
            stderr,
            tag,
            task: None,
            _instance_slot: None,
            mappings: Mappings::default(),
            holdings: Holdings::default(),
            streams: Streams::default(),
        }
    }

    /// Applies `limits` to the calls from now on.
    pub(super) fn set_limits(&mut self, limits: InstanceLimits) {
        self.limits = Limits { memory: limits.memory, names: limits.names };
        self.tick_limit = limits.ticks;
    }

    /// Starts a call for `ctx`, its output tagged with `function`.
    pub(super) fn begin(&mut self, ctx: TaskContext, function: Option<&str>) {
        self.holdings.bind(&ctx.node);
        self.streams.bind(&ctx.node);
        self.task = Some(ctx);
        self.ticks = 0;
        self.stderr.clear();
        self.tag.set(function);
    }

    /// Holds the refs nested in `args`, which outlive the call in an actor.
    pub(super) fn hold_nested(&mut self, args: &[super::Payload]) {
        let Some(ctx) = &self.task else { return };
        let node = ctx.node.clone();
        for arg in args {
            let nested = match arg {
                super::Payload::Bytes(bytes) => nested_refs(bytes),
                super::Payload::Large(large) => node.store.nested(&object_id(large.object)),
            };
            nested.into_iter().for_each(|id| self.holdings.hold(id));
        }
    }

    /// Ends the call: gives back its cpu slot and its job.
    pub(super) fn finish(&mut self) {
        self.task = None;
        self.tag.set(None);
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}
