//! [`Scope`]: the node's side of one running call, what its imports act on
//! ([`Calls`]). It knows what the executor does not: the call's job, who is
//! calling (for actor call ordering), its cancel switch (calls it makes are
//! recorded there, for a recursive cancel) and the stream it generates.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::actors::{Actors, Chain};
use crate::cancel::Token;
use crate::generators::{Ended, Generating};
use crate::node::{Job, Node};
use prism_exec::{ActorId, ActorOptions, Calls, NextCall, NextItem, Slot, TaskArg, TaskOptions};
use prism_store::error::Failure;
use prism_store::{ObjectId, ObjectStore};

/// One running call, as the node sees it.
pub struct Scope {
    node: Arc<Node>,
    job: Arc<Job>,
    token: Option<Arc<Token>>,
    caller: u64,
    actor: Option<ActorId>,
    generating: Option<Mutex<Generating>>,
    /// An actor method call's successors, taken in place.
    chain: Option<Arc<Chain>>,
}

impl Scope {
    /// A call of `job` by `caller` (one id per driver run, task attempt or
    /// actor), cancelled through `token` (none for drivers), inside `actor`
    /// if it is one, filling `generating` if it is a generator.
    pub fn new(
        node: &Arc<Node>,
        job: &Arc<Job>,
        token: Option<Arc<Token>>,
        caller: u64,
        actor: Option<ActorId>,
        generating: Option<Generating>,
    ) -> Self {
        Scope {
            node: node.clone(),
            job: job.clone(),
            token,
            caller,
            actor,
            generating: generating.map(Mutex::new),
            chain: None,
        }
    }

    /// This call, as an actor method's that may take the calls queued
    /// behind it through `chain`.
    pub(crate) fn chained(self, chain: Option<Arc<Chain>>) -> Self {
        Scope { chain, ..self }
    }

    /// Submits a task (or with `generator`, a generator task): to the
    /// driver, if the job runs here for one elsewhere.
    fn submit(&self, function: String, args: Vec<TaskArg>, mut options: TaskOptions, generator: bool) -> ObjectId {
        let id = match self.job.tasks_elsewhere() {
            Some(elsewhere) => {
                // Named, since the driver's own component may be another.
                options.component.get_or_insert(self.job.program.hash);
                elsewhere.remote(&self.node, self.caller, function, args, options, generator)
            }
            None if generator => self.node.remote_generator(&self.job, function, Ok(args), options),
            None => self.node.remote(&self.job, function, args, options),
        };
        self.started(id)
    }

    /// Records `id`, a call this one made, for a recursive cancel.
    fn started(&self, id: ObjectId) -> ObjectId {
        if let Some(token) = &self.token {
            token.adopt(id);
        }
        id
    }
}

#[async_trait::async_trait]
impl Calls for Scope {
    fn store(&self) -> &Arc<ObjectStore> {
        &self.node.store
    }

    fn is_closed(&self) -> bool {
        self.node.is_closed()
    }

    fn actor(&self) -> Option<ActorId> {
        self.actor
    }

    async fn acquire_cpus(&self, n: u32) -> Slot {
        Slot::new(self.node.scheduler.acquire(&self.node, n).await)
    }

    fn remote(&self, function: String, args: Vec<TaskArg>, options: TaskOptions) -> ObjectId {
        self.submit(function, args, options, false)
    }

    fn remote_generator(&self, function: String, args: Vec<TaskArg>, options: TaskOptions) -> ObjectId {
        self.submit(function, args, options, true)
    }

    async fn create_actor(
        &self,
        component: [u8; 32],
        class: String,
        args: Vec<TaskArg>,
        options: ActorOptions,
    ) -> Result<ActorId, Failure> {
        if let Some(elsewhere) = self.job.tasks_elsewhere() {
            return elsewhere.create_actor(component, class, args, options, self.actor).await;
        }
        let program = self.node.program(&self.job, Some(component)).await?;
        Ok(self.node.create_actor(&self.job, &program, self.actor, class, args, options)?)
    }

    fn call_actor(&self, actor: ActorId, method: String, args: Vec<TaskArg>, generator: bool) -> ObjectId {
        if !self.node.actors.knows(&actor)
            && let Some(elsewhere) = self.job.elsewhere()
        {
            return self.started(elsewhere.call(&self.node, self.caller, actor, method, args, generator));
        }
        self.started(Actors::call(&self.node, self.caller, actor, method, args, generator))
    }

    fn kill_actor(&self, actor: ActorId, no_restart: bool) -> Result<(), Failure> {
        match self.job.elsewhere() {
            Some(elsewhere) if !self.node.actors.knows(&actor) => elsewhere.kill(actor, no_restart),
            _ => self.node.kill_actor(actor, no_restart),
        }
    }

    fn actor_by_name(&self, name: &str) -> Result<ActorId, Failure> {
        self.node.actor_by_name(name).or_else(|failure| match self.job.elsewhere() {
            Some(elsewhere) => elsewhere.by_name(name),
            None => Err(failure),
        })
    }

    fn cancel(&self, id: ObjectId, recursive: bool) -> Result<(), Failure> {
        self.node.cancel(id, recursive)
    }

    fn cancelled(&self) -> Option<bool> {
        self.token.as_ref().and_then(|token| token.cancelled())
    }

    fn component_named(&self, name: &str) -> Result<[u8; 32], Failure> {
        self.node.component_named(name)
    }

    fn set_global(&self, name: String, id: ObjectId) -> Result<(), Failure> {
        self.job.set_global(&self.node.store, name, id)
    }

    fn get_global(&self, name: &str) -> Option<ObjectId> {
        self.job.globals.lock().get(name).copied()
    }

    fn globals(&self) -> Vec<(String, ObjectId)> {
        self.job.globals.lock().iter().map(|(name, id)| (name.clone(), *id)).collect()
    }

    fn generates(&self) -> bool {
        self.generating.is_some()
    }

    fn node_id(&self) -> String {
        self.node.id()
    }

    fn yield_item(&self, item: ObjectId, held: bool) -> Result<(), Failure> {
        let Some(generating) = &self.generating else {
            return Err(Failure::InvalidArgument(
                "`yield-item` is only for generators (started with `remote-generator` or `call-generator`)".into(),
            ));
        };
        // An id the caller does not hold could name nothing at all.
        if !held {
            return Err(Failure::InvalidArgument(format!(
                "`yield-item` takes a ref this call holds (from `put`, `put-bytes` or `remote`); `{item}` is not one"
            )));
        }
        let mut generating = generating.lock();
        // The stream holds each item until the caller takes it.
        if generating.stream.push(generating.yielded, item) {
            self.node.store.retain(&item);
        }
        generating.yielded += 1;
        Ok(())
    }

    async fn next_item(&self, id: ObjectId, deadline: Option<Instant>) -> Result<Option<ObjectId>, NextItem> {
        let Some(stream) = self.node.stream(&id) else {
            return Err(NextItem::Failed(Failure::NotFound(format!("no generator `{id}` on this node"))));
        };
        stream.next(deadline).await.map_err(|ended| match ended {
            Ended::TimedOut => NextItem::TimedOut,
            Ended::Cancelled(failure) => NextItem::Failed(failure),
        })
    }

    fn close_stream(&self, id: ObjectId) {
        self.node.close_stream(&id);
    }

    fn next_call(&self, value: Vec<u8>) -> NextCall {
        match &self.chain {
            Some(chain) => chain.next(value),
            None => NextCall::Unchained(value),
        }
    }
}
