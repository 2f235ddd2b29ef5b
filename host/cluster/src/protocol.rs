//! What nodes say to each other over NATS: the subjects, and the messages
//! on them (MessagePack, by serde).

use serde::{Deserialize, Serialize};

use prism_exec::{Placement, Trapped};
use prism_store::error::Refused;
use prism_store::{Failure, ObjectId};

/// The KV bucket each node's [`NodeInfo`] is kept in, under its id.
pub const NODES_BUCKET: &str = "prism-nodes";

/// The subject a node is told on which objects it keeps for a caller are
/// no longer wanted ([`Release`]).
pub fn release_subject(node: &str) -> String {
    format!("prism.node.{node}.release")
}

/// The objects a node keeps for a caller's job (its arguments, the values
/// its tasks left, what those nest) that the caller no longer holds: the
/// node lets go of them, as Ray's owner frees an object everywhere once its
/// last reference goes. Not answered.
#[derive(Debug, Serialize, Deserialize)]
pub struct Release {
    /// The caller's node, as [`TaskRequest::origin`] names it.
    pub origin: String,
    /// The caller's job.
    pub job: u64,
    /// The objects, by their ids on the node.
    pub objects: Vec<ObjectId>,
}

/// The subject a caller's node takes requests from the nodes running its
/// jobs on: calls of its actors by tasks there, kills, names.
pub fn caller_subject(caller: &str) -> String {
    format!("prism.caller.{caller}")
}

/// The KV bucket of named actors: each live one's [`Named`], under
/// [`name_key`] of its name. Created with `create`, which fails if the key
/// is there, so two drivers never both hold a name.
pub const NAMES_BUCKET: &str = "prism-names";

/// The key of actor name `name` in [`NAMES_BUCKET`]: names may hold any
/// character, keys only a few.
pub fn name_key(name: &str) -> String {
    blake3::hash(name.as_bytes()).to_hex().to_string()
}

/// A named actor, as [`NAMES_BUCKET`] keeps it: the driver's node that
/// keeps it, which other drivers call it through.
#[derive(Debug, Serialize, Deserialize)]
pub struct Named {
    /// The actor.
    pub actor: ObjectId,
    /// That node's [`caller_subject`], where calls and kills go.
    pub caller: String,
    /// That node's transfer server, where values are pulled from.
    pub transfer: String,
}

/// The subject a caller's node answers at once, empty, to say it is still
/// there (apart from [`caller_subject`], whose requests may queue).
pub fn alive_subject(caller_subject: &str) -> String {
    format!("{caller_subject}.alive")
}

/// The subject a caller's node takes its tasks' output on; `caller` is
/// random, new at every start.
pub fn output_subject(caller: &str) -> String {
    format!("prism.output.{caller}")
}

/// What a node tells the cluster about itself, at every heartbeat.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NodeInfo {
    /// Its id: random, new at every start (and after it was declared dead).
    pub id: String,
    /// Where other nodes pull its objects and components (`host:port`).
    pub transfer: String,
    /// Its logical cpus.
    pub cpus: u32,
    /// The named resources it offers (`--resources`).
    pub resources: Vec<(String, f64)>,
    /// Tasks it runs or queues now, for callers elsewhere.
    pub running: u32,
    /// Tasks it ran for callers elsewhere, and how many of them failed.
    pub tasks: u64,
    /// Of those, how many failed.
    pub failed: u64,
    /// Objects in its store, and their bytes.
    pub objects: u64,
    /// Bytes of those objects.
    pub bytes: u64,
    /// Bytes it pulled from other nodes so far.
    pub pulled: u64,
    /// Actors' instances it keeps for callers elsewhere.
    pub actors: u32,
}

/// An object a node holds and another may pull: its id, and the blake3 of
/// its encoding, which the copy is checked against.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Held {
    /// Its id.
    pub id: ObjectId,
    /// The blake3 of its encoding.
    pub hash: ObjectId,
    /// Bytes of its encoding.
    pub len: u64,
}

/// One argument of a task sent to another node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Arg {
    /// An encoded value, with the objects it nests (pulled first).
    Value(#[serde(with = "serde_bytes")] Vec<u8>, Vec<Held>),
    /// A large object to pull (unless the node has it), then map.
    Large(Held),
    /// An object kept on another node, not on the caller's: pulled from
    /// there (`from`, its transfer address), where it is named as `object`
    /// says, and kept here as `id`, the caller's name for it.
    Elsewhere {
        /// The caller's name for it.
        id: ObjectId,
        /// Its name, hash and length on the node that keeps it.
        object: Held,
        /// That node's transfer address.
        from: String,
    },
}

/// What a caller asks a node, on its direct connection ([`crate::direct`]).
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// Run a task once; answered with an [`Answer`].
    Task(TaskRequest),
    /// Run a generator task once: each item it yields comes as a [`Held`]
    /// (left on the node, to pull) before its [`Answer`].
    Generator(TaskRequest),
    /// Start, call or drop an actor's instance kept there.
    Actor(ActorRequest),
}

/// A task for another node to run once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TaskRequest {
    /// The caller's node, where the arguments and the component are pulled
    /// from (`host:port` of its transfer server), and its job.
    pub origin: String,
    /// The caller's job: calls of one job share warm instances.
    pub job: u64,
    /// The component (its blake3) and its file name, for messages.
    pub component: [u8; 32],
    /// The component's file name.
    pub name: String,
    /// The function.
    pub function: String,
    /// Its arguments.
    pub args: Vec<Arg>,
    /// Logical cpus it holds.
    pub num_cpus: u32,
    /// The resources it holds, and the node it asks for.
    pub placement: Placement,
    /// The job's globals (set by its driver), for the task to read.
    pub globals: Vec<(String, Held)>,
    /// Where the task's stdout and stderr go: a subject the caller takes
    /// [`OutputChunk`]s on.
    pub output: String,
    /// Where the task's calls of the caller's actors go: a subject the
    /// caller takes [`CallerRequest`]s on.
    pub caller: String,
}

/// What a task running on a node asks of its caller's node, where the job's
/// actors are.
#[derive(Debug, Serialize, Deserialize)]
pub enum CallerRequest {
    /// Queue a method call; answered, once it ends, with a [`CallAnswer`]
    /// on the message's reply subject.
    Call(ActorCall),
    /// Kill an actor (`no_restart`); answered with `Result<(), Failure>`.
    Kill(ObjectId, bool),
    /// Find a live actor by name; answered with `Result<ObjectId, Failure>`.
    ByName(String),
    /// Submit a task a task on a node started; answered, once it ends, with
    /// a [`CallAnswer`] on the message's reply subject.
    Remote(TaskCall),
    /// Make an actor for a task on a node: the caller's node keeps it, as
    /// it keeps the actors its driver makes; answered with
    /// `Result<ObjectId, Failure>` once it exists (its constructor runs on).
    Create(ActorCreate),
    /// Cancel call `.0` (a [`CallerRequest::Call`] or
    /// [`CallerRequest::Remote`] sent before, from the same reply subject),
    /// with `.1` the calls it made. Not answered: the call's answer says
    /// how it ended.
    Cancel(u64, bool),
}

/// A task that a task running on a node started, for the caller's node to
/// schedule across the cluster: it owns the result, as it owns the job's.
#[derive(Debug, Serialize, Deserialize)]
pub struct TaskCall {
    /// Numbers the calls of one node's job, to match answers to them.
    pub call: u64,
    /// The caller's job.
    pub job: u64,
    /// The function.
    pub function: String,
    /// Its arguments.
    pub args: Vec<CallArg>,
    /// Its options (naming its component).
    pub options: prism_exec::TaskOptions,
    /// Whether it is a generator: its items come before its answer.
    pub generator: bool,
    /// Where the arguments are pulled from: that node's transfer server.
    pub origin: String,
}

/// An actor that a task (or an actor's instance) running on a node makes.
#[derive(Debug, Serialize, Deserialize)]
pub struct ActorCreate {
    /// The caller's job, which owns the actor unless `owner` does.
    pub job: u64,
    /// The component whose class it is.
    pub component: [u8; 32],
    /// The class.
    pub class: String,
    /// Its constructor's arguments.
    pub args: Vec<CallArg>,
    /// Its options (its name among them).
    pub options: prism_exec::ActorOptions,
    /// The actor whose constructor or method made it, if one did: it ends
    /// with that one, as on one node.
    pub owner: Option<ObjectId>,
    /// Where the arguments are pulled from: that node's transfer server.
    pub origin: String,
}

/// A call of one of the caller's actors by a task running on a node.
#[derive(Debug, Serialize, Deserialize)]
pub struct ActorCall {
    /// Numbers the calls of one node's job, to match answers to them.
    pub call: u64,
    /// Who calls, on that node: calls of one caller keep their order.
    pub caller: String,
    /// The actor.
    pub actor: ObjectId,
    /// The method.
    pub method: String,
    /// Its arguments.
    pub args: Vec<CallArg>,
    /// Whether it is a generator method: its items come before its answer.
    pub generator: bool,
    /// Where the arguments are pulled from: that node's transfer server.
    pub origin: String,
}

/// An argument of an [`ActorCall`].
#[derive(Debug, Serialize, Deserialize)]
pub enum CallArg {
    /// An encoded value, with the objects it nests.
    Value(#[serde(with = "serde_bytes")] Vec<u8>, Vec<Held>),
    /// A top-level ref: the method receives its value.
    Ref(Held),
}

/// How an [`ActorCall`] or a [`TaskCall`] ended: its value (and what it
/// nests, to pull from the caller's node), or why it failed. A generator's
/// items come first, one answer each, in the order it yielded them.
#[derive(Debug, Serialize, Deserialize)]
pub struct CallAnswer {
    /// The call's number.
    pub call: u64,
    /// Whether this is one of a generator's items (else the call's end; a
    /// generator's value is empty).
    pub item: bool,
    /// Its value, or its failure.
    pub result: Result<CallValue, Failure>,
}

/// A forwarded call's value, as a [`CallAnswer`] carries it.
#[derive(Debug, Serialize, Deserialize)]
pub struct CallValue {
    /// The value: in the answer, or stored, to pull.
    pub value: Value,
    /// The objects it nests, to pull from the answering node.
    pub nested: Vec<Held>,
    /// Where a stored value is when a third node keeps it (the node whose
    /// task made it), pulled from there straight: that node's transfer
    /// server, and the answering node's id for the value, to pull it
    /// through that node instead should the third fail.
    pub at: Option<(String, ObjectId)>,
}

/// What a caller asks of an actor instance it keeps on another node. The
/// caller's node keeps the actor itself (its queue, per-caller order,
/// restarts, name); the node it is on keeps only the instance.
#[derive(Debug, Serialize, Deserialize)]
pub enum ActorRequest {
    /// Make an instance of actor `.0`, of `class` (the `function` of the
    /// request), its constructor run with the request's arguments.
    /// Answered with [`ActorStarted`].
    Start(ObjectId, TaskRequest),
    /// Run method `function` of instance `.0` (`label` is
    /// `Class.method`). Answered with a [`TaskReply`].
    Call(u64, String, TaskRequest),
    /// Run generator method `function` of instance `.0`: each item it
    /// yields comes as a [`Held`] before its [`TaskReply`].
    Generate(u64, String, TaskRequest),
    /// The instance is no longer wanted. Not answered.
    Drop(u64),
}

/// How starting an actor's instance on another node ended.
#[derive(Debug, Serialize, Deserialize)]
pub enum ActorStarted {
    /// Its number there.
    Started(u64),
    /// The constructor failed, or the node could not run it: why.
    Failed(String),
}

/// Output of a task that ran on another node, for its caller's job.
#[derive(Debug, Serialize, Deserialize)]
pub struct OutputChunk {
    /// The caller's job.
    pub job: u64,
    /// Which node's output of the job this is (random), and the chunk's
    /// number in it, from 1.
    pub stream: u64,
    /// The chunk's number in its stream, from 1.
    pub seq: u64,
    /// Whether it was written to stderr (else stdout).
    pub stderr: bool,
    /// What was written.
    #[serde(with = "serde_bytes")]
    pub bytes: Vec<u8>,
}

/// How far a job's output stream on a node had got when a task there
/// ended: its caller prints that much before it takes the task's result,
/// as if the task had run where the caller is.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Printed {
    /// The stream ([`OutputChunk::stream`]).
    pub stream: u64,
    /// Chunks of it written so far.
    pub upto: u64,
}

/// A task's answer: how far its output had got, if it ran, and how it
/// ended.
pub type Answer = (Option<Printed>, TaskReply);

/// How a task sent to another node ended.
#[derive(Debug, Serialize, Deserialize)]
pub enum TaskReply {
    /// It returned a value, with the objects the value nests, which the
    /// caller pulls from the node that ran it.
    Returned(Value, Vec<Held>),
    /// It returned an error, or trapped.
    Ended(Result<Refused, Trapped>),
    /// It could not start there (the component or an argument could not
    /// be pulled): why.
    Refused(String),
    /// It did not start: an argument kept on a third node ([`Arg::Elsewhere`],
    /// named by the caller's id) could not be pulled from there, and why.
    Unpulled(ObjectId, String),
}

/// A task's value, as its reply carries it.
#[derive(Debug, Serialize, Deserialize)]
pub enum Value {
    /// Small: in the reply.
    Inline(#[serde(with = "serde_bytes")] Vec<u8>),
    /// Too large for a control message: left on the node that ran it, to
    /// pull.
    Stored(Held),
}

/// The largest value a reply carries itself.
pub const INLINE_REPLY_MAX: usize = 256 << 10;
