//! [`Calls`]: what a running call asks of its node, through its imports.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::time::Instant;

use prism_store::ObjectStore;
use prism_store::error::Failure;

use crate::{ActorId, ActorOptions, Input, TaskArg, TaskOptions};
use prism_store::ObjectId;

/// Cpus a running call holds; given back when dropped. The executor drops
/// it while its call blocks, and passes it on at a tick when the node says
/// another namespace is owed a turn.
pub struct Slot(Arc<dyn Lease>);

/// What a [`Slot`] is, on the node's side.
pub trait Lease: Send + Sync + 'static {
    /// Whether another namespace waits for cpus while this one holds more
    /// than its share.
    fn owes_turn(&self) -> bool;

    /// Gives the cpus to whoever waits; the future resolves once they are
    /// held again, taken back ahead of this namespace's newer calls.
    fn pass(self: Arc<Self>) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

impl Slot {
    /// A slot held as `lease`.
    pub fn new(lease: impl Lease) -> Self {
        Slot(Arc::new(lease))
    }

    /// See [`Lease::owes_turn`].
    pub fn owes_turn(&self) -> bool {
        self.0.owes_turn()
    }

    /// See [`Lease::pass`].
    pub fn pass(&self) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        self.0.clone().pass()
    }
}

/// Why `next-item` returned no item.
#[derive(Debug, PartialEq, Eq)]
pub enum NextItem {
    /// The deadline passed first.
    TimedOut,
    /// The stream is unknown, or its generator was cancelled (once every
    /// item it yielded was taken).
    Failed(Failure),
}

/// The node side of one running call: everything its imports do besides
/// reading and writing objects in [`Calls::store`]. Made per call by the
/// node, which knows the call's job, caller identity and cancel switch.
/// Refs returned here carry one reference, which the caller owns.
#[async_trait::async_trait]
pub trait Calls: Send + Sync {
    /// The objects of the call's namespace.
    fn store(&self) -> &Arc<ObjectStore>;

    /// Whether its namespace was closed for good: the instance should stop.
    fn is_closed(&self) -> bool;

    /// The actor whose constructor or method this call is, if it is one:
    /// the actors it makes end with that actor.
    fn actor(&self) -> Option<ActorId>;

    /// Takes `n` cpus again after blocking.
    async fn acquire_cpus(&self, n: u32) -> Slot;

    /// Schedules task `function`; its result's ref.
    fn remote(&self, function: String, args: Vec<TaskArg>, options: TaskOptions) -> ObjectId;

    /// Schedules generator `function`; its stream's id.
    fn remote_generator(&self, function: String, args: Vec<TaskArg>, options: TaskOptions) -> ObjectId;

    /// Creates an actor of `class` of `component`, owned by the caller.
    async fn create_actor(
        &self,
        component: [u8; 32],
        class: String,
        args: Vec<TaskArg>,
        options: ActorOptions,
    ) -> Result<ActorId, Failure>;

    /// Calls `method` on `actor`; its result's ref, or with `generator` its
    /// stream's id.
    fn call_actor(&self, actor: ActorId, method: String, args: Vec<TaskArg>, generator: bool) -> ObjectId;

    /// Kills `actor` (restarting it, with `no_restart` false, if it may).
    fn kill_actor(&self, actor: ActorId, no_restart: bool) -> Result<(), Failure>;

    /// The live actor named `name`.
    fn actor_by_name(&self, name: &str) -> Result<ActorId, Failure>;

    /// Cancels the call making `id`, and with `recursive` the calls it made.
    fn cancel(&self, id: ObjectId, recursive: bool) -> Result<(), Failure>;

    /// Whether this call was cancelled, and if so whether with the calls it
    /// made: an executor running it elsewhere passes that on.
    fn cancelled(&self) -> Option<bool>;

    /// The id of the component called `name` that the call may call into.
    fn component_named(&self, name: &str) -> Result<[u8; 32], Failure>;

    /// Sets the job global `name` to `id` (taking a reference to it).
    fn set_global(&self, name: String, id: ObjectId) -> Result<(), Failure>;

    /// The job global `name`, without a new reference.
    fn get_global(&self, name: &str) -> Option<ObjectId>;

    /// Every job global, without new references (for a call that runs on
    /// another node, whose job there needs them too).
    fn globals(&self) -> Vec<(String, ObjectId)>;

    /// Whether the call is a generator's, whose items go to its stream.
    fn generates(&self) -> bool;

    /// The id of the node running the call.
    fn node_id(&self) -> String;

    /// Appends `item` to the stream the call generates, which takes its own
    /// reference from the call's (`held`: whether the call holds `item`);
    /// `invalid-argument` if it is not a generator or does not hold it.
    fn yield_item(&self, item: ObjectId, held: bool) -> Result<(), Failure>;

    /// The next item of stream `id` (with a reference), `None` at its end;
    /// waits for one until `deadline`.
    async fn next_item(&self, id: ObjectId, deadline: Option<Instant>) -> Result<Option<ObjectId>, NextItem>;

    /// Closes stream `id`: its untaken items are released.
    fn close_stream(&self, id: ObjectId);

    /// In an actor's method (`actors.next-call`): ends the running call
    /// with `value` and gives the next queued call to run in place. A call
    /// that cannot chain its successors leaves `value` with the instance.
    fn next_call(&self, value: Vec<u8>) -> NextCall {
        NextCall::Unchained(value)
    }
}

/// What [`Calls::next_call`] did with the value it was given.
#[derive(Debug)]
pub enum NextCall {
    /// Answered the running call with it; this queued call runs next, in
    /// the same export call.
    Run(QueuedCall),
    /// Answered the running call with it; no call runs next here.
    Done,
    /// Gave it back: it is the running call's result once the export
    /// returns.
    Unchained(Vec<u8>),
}

/// A queued actor call an instance takes in place.
#[derive(Debug)]
pub struct QueuedCall {
    /// `Class.method`, for its output.
    pub label: String,
    /// The method, as `call-method` takes it.
    pub method: String,
    /// Its arguments, resolved.
    pub args: Vec<Input>,
}
