//! The scheduler: admits tasks onto the node's logical cpus, resolves their
//! top-level ref arguments first, runs them, retries them, and stores their
//! results.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::Instrument;

use crate::error::Failure;
use crate::node::{Job, Node};
use crate::runtime::{Payload, TaskContext, payload};
use crate::store::{GetError, ObjectId};

/// One argument of a remote call.
#[derive(Debug, Clone)]
pub enum TaskArg {
    /// An encoded value, passed as is.
    Value(Vec<u8>),
    /// A top-level ref: the task receives the object's value.
    Object(ObjectId),
}

/// Ray's `@ray.remote(...)` options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskOptions {
    /// Re-runs after a trap.
    pub max_retries: u32,
    /// Whether a returned error is retried too.
    pub retry_exceptions: bool,
    /// Logical cpus held while running.
    pub num_cpus: u32,
}

impl Default for TaskOptions {
    fn default() -> Self {
        TaskOptions { max_retries: 0, retry_exceptions: false, num_cpus: 1 }
    }
}

/// The node's logical cpus, handed out first come, first served.
pub struct Scheduler {
    slots: Arc<Semaphore>,
    capacity: u32,
}

impl Scheduler {
    /// A scheduler with `workers` logical cpus.
    pub fn new(workers: u32) -> Self {
        Scheduler { slots: Arc::new(Semaphore::new(workers as usize)), capacity: workers }
    }

    /// Waits for `n` cpus.
    pub async fn acquire(&self, n: u32) -> OwnedSemaphorePermit {
        self.slots.clone().acquire_many_owned(n).await.expect("the cpu semaphore is never closed")
    }

    /// Schedules a task and returns the ref of its result at once.
    pub(crate) fn submit(
        node: &Arc<Node>,
        job: &Arc<Job>,
        function: String,
        args: Vec<TaskArg>,
        options: TaskOptions,
    ) -> ObjectId {
        let program = &job.program;
        if !program.functions.contains(&function) {
            return node.failed(program.missing("task", &function, &program.functions));
        }
        let capacity = node.scheduler.capacity;
        if options.num_cpus > capacity {
            return node.failed(Failure::LimitExceeded(format!(
                "task `{function}` asks for {} cpus but this node has {capacity} (see --workers)",
                options.num_cpus
            )));
        }
        let id = node.store.pending();
        let span = tracing::info_span!("task", function = %function, id = %id);
        tokio::spawn(run(node.clone(), job.clone(), id, function, args, options).instrument(span));
        id
    }
}

async fn run(node: Arc<Node>, job: Arc<Job>, id: ObjectId, function: String, args: Vec<TaskArg>, options: TaskOptions) {
    let result = match resolve(&node, &function, args).await {
        Ok(values) => attempt(&node, &job, &function, &values, options).await,
        Err(failure) => Err(failure),
    };
    if let Err(failure) = &result {
        tracing::debug!(%failure, "task failed");
    }
    node.store.complete(id, result);
}

/// Replaces top-level refs with their values, waiting for them (without a
/// cpu slot); large objects stay in the store for the task to map. A failed
/// input fails the task with a chain naming both.
pub(crate) async fn resolve(node: &Node, function: &str, args: Vec<TaskArg>) -> Result<Vec<Payload>, Failure> {
    let mut values = Vec::with_capacity(args.len());
    for (i, arg) in args.into_iter().enumerate() {
        values.push(match arg {
            TaskArg::Value(bytes) => Payload::Bytes(bytes),
            TaskArg::Object(r) => match node.store.get(&r, None).await {
                Ok(object) => payload(r, &object)?,
                Err(GetError::Failed(cause)) => {
                    return Err(Failure::caused(function, format!("its argument {i} (`{r}`) failed"), &cause));
                }
                Err(GetError::Timeout) => unreachable!("no deadline was given"),
            },
        });
    }
    Ok(values)
}

/// Runs the task, re-running it as `options` allow.
async fn attempt(
    node: &Arc<Node>,
    job: &Arc<Job>,
    function: &str,
    args: &[Payload],
    options: TaskOptions,
) -> Result<Vec<u8>, Failure> {
    let mut retries = 0;
    loop {
        let slot = node.scheduler.acquire(options.num_cpus).await;
        let ctx = TaskContext {
            node: node.clone(),
            job: job.clone(),
            slot: Some(slot),
            num_cpus: options.num_cpus,
            caller: node.next_caller(),
            actor: None,
        };
        let (message, retryable) = match node.runtime.call_task(ctx, function, args).await {
            Ok(Ok(bytes)) => return Ok(bytes),
            Ok(Err(message)) => (message, options.retry_exceptions),
            Err(trap) => (trap, true),
        };
        if !retryable || retries >= options.max_retries {
            return Err(Failure::task(function, message));
        }
        retries += 1;
        tracing::warn!(%message, retry = retries, of = options.max_retries, "task failed, retrying");
    }
}
