//! Several prism nodes as one cluster, on NATS JetStream.
//!
//! NATS carries the control plane: who is alive, what a caller no longer
//! holds, tasks' output, and what tasks on nodes ask their caller. Tasks
//! and their answers, and bulk bytes (objects, components), go straight
//! from node to node. The parts:
//! - [`protocol`]: the subjects, the bucket, and the messages;
//! - [`membership`]: heartbeats into a KV bucket, and the failure detector;
//! - [`transfer`]: objects and components pulled node to node, checked
//!   against their blake3;
//! - `direct.rs`: tasks sent to a node on a connection of their own;
//! - [`Dispatcher`] (`dispatch.rs`): the caller's executor, placing each
//!   task on a node and waiting for its answer, or for that node to die;
//! - [`Worker`] (`worker.rs`): a node running the tasks callers send it;
//! - `callers.rs`: calls of a driver's actors by its tasks on other nodes.

mod callers;
mod direct;
mod dispatch;
pub mod membership;
pub mod protocol;
pub mod transfer;
mod worker;

pub use self::dispatch::Dispatcher;
pub use self::membership::{Cluster, Heartbeat, JoinError, Members};
pub use self::worker::Worker;

use prism_store::{Object, ObjectId, content_hash};

/// How another node pulls object `id` of `store`, once it is ready here
/// (an object left on another node is fetched first).
async fn held_here(store: &prism_store::ObjectStore, id: ObjectId) -> Result<protocol::Held, prism_store::Failure> {
    match store.get(&id, None).await {
        Ok(object) => Ok(held(id, &object)),
        Err(prism_store::GetError::Failed(failure)) => Err((*failure).clone()),
        Err(prism_store::GetError::Timeout) => unreachable!("no deadline was given"),
    }
}

/// How another node pulls `object`, named `id`.
fn held(id: ObjectId, object: &Object) -> protocol::Held {
    let hash = match object {
        Object::Inline(bytes) => ObjectId::from(content_hash(&[bytes])),
        Object::Blob(blob) => blob.hash,
    };
    protocol::Held { id, hash, len: object.len() }
}
