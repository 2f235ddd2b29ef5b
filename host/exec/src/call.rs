//! A call's arguments and options, as the node and the executor pass them.

use prism_store::error::Failure;
use prism_store::{Object, ObjectId};

/// An actor's 32-byte id.
pub type ActorId = ObjectId;

/// One argument of a remote call.
#[derive(Debug, Clone)]
pub enum TaskArg {
    /// An encoded value, passed as is.
    Value(Vec<u8>),
    /// A top-level ref: the task receives the object's value.
    Object(ObjectId),
}

/// An argument resolved for the callee: small values as bytes, large ones
/// named for the callee to map in place.
#[derive(Debug, Clone)]
pub enum Input {
    /// The whole encoded value.
    Bytes(Vec<u8>),
    /// A large object left in the store.
    Large {
        /// The object.
        id: ObjectId,
        /// Bytes of its body.
        len: u64,
        /// Whether it is a byte string (its body is the bytes themselves).
        raw: bool,
    },
    /// An object kept on another node and not fetched here. Only an
    /// executor that places tasks elsewhere is given one
    /// ([`crate::Executor::places_elsewhere`]): it has the node that runs
    /// the task pull it from where it is.
    Elsewhere(ObjectId),
}

impl Input {
    /// How `object` (named `id`) is handed over: small ones copied, large
    /// ones described.
    pub fn of(id: ObjectId, object: &Object) -> Result<Input, Failure> {
        Ok(match object.blob() {
            None => Input::Bytes(object.to_vec()?),
            Some(blob) => Input::Large { id, len: blob.body_len, raw: blob.is_raw() },
        })
    }
}

/// Where a task or an actor's instance may run: Ray's custom resources
/// and node affinity.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Placement {
    /// Named resources held while it runs, and how much of each.
    pub resources: Vec<(String, f64)>,
    /// The node it must, or would rather, run on.
    pub node: Option<Affinity>,
}

/// A node a task or actor is pinned to (Ray's `NodeAffinitySchedulingStrategy`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Affinity {
    /// The node's id.
    pub node: String,
    /// Elsewhere, if that node is gone or cannot run it.
    pub soft: bool,
}

impl Placement {
    /// Whether it asks for nothing beyond cpus, anywhere.
    pub fn is_any(&self) -> bool {
        self.resources.is_empty() && self.node.is_none()
    }
}

/// Ray's `@ray.remote(...)` options.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TaskOptions {
    /// Re-runs after a crash (Ray's default: 3).
    pub max_retries: u32,
    /// Whether a returned error is retried too.
    pub retry_exceptions: bool,
    /// Logical cpus held while running.
    pub num_cpus: u32,
    /// The component whose function runs (the blake3 of its bytes): `None`
    /// for the job's own.
    pub component: Option<[u8; 32]>,
    /// Resources and node it asks for.
    pub placement: Placement,
}

/// Ray re-runs a task that crashed up to 3 times unless told otherwise.
pub const DEFAULT_MAX_RETRIES: u32 = 3;

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions {
            max_retries: DEFAULT_MAX_RETRIES,
            retry_exceptions: false,
            num_cpus: 1,
            component: None,
            placement: Placement::default(),
        }
    }
}

/// Ray's actor options.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ActorOptions {
    /// Unique name for `get_actor`.
    pub name: Option<String>,
    /// Outlives its job.
    pub detached: bool,
    /// Constructor re-runs allowed after traps.
    pub max_restarts: u32,
    /// Re-runs of the call that trapped.
    pub max_task_retries: u32,
    /// The id to give it (an actor restored after a restart keeps its id);
    /// `None` for a fresh one.
    pub id: Option<ActorId>,
    /// Resources its instance holds, and the node it runs on.
    pub placement: Placement,
}
