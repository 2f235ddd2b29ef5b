//! Actors: one long-lived instance per actor, holding its state, running
//! one call at a time.
//!
//! Ordering: each caller (a driver run, a task attempt, an actor) has its own
//! queue into an actor. A caller's calls have their ref arguments resolved
//! one after the other and then enter the actor's run queue, so they run in
//! submission order; a call waiting for an argument never holds up another
//! caller's calls. When nothing of a caller's is waiting and the new call's
//! arguments are ready, it skips the resolver and goes straight in.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};
use tracing::Instrument;

use crate::error::Failure;
use crate::node::{Holdings, Job, Node};
use crate::runtime::{ActorInstance, Class, Payload, TaskContext, payload};
use crate::scheduler::{TaskArg, resolve};
use crate::store::ObjectId;

/// An actor's 32-byte id.
pub type ActorId = ObjectId;

/// Ray's actor options.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
}

/// A method call with its arguments resolved.
struct Call {
    method: String,
    args: Vec<Payload>,
    result: ObjectId,
    /// Keeps the arguments alive until the call is done.
    _holds: Holdings,
}

/// A call whose ref arguments may not be ready yet.
struct Unresolved {
    method: String,
    args: Vec<TaskArg>,
    result: ObjectId,
    holds: Holdings,
}

/// One caller's lane into an actor.
struct Lane {
    tx: mpsc::UnboundedSender<Unresolved>,
    /// Calls sent to the resolver and not yet in the run queue.
    waiting: Arc<AtomicUsize>,
}

/// A live (or dead) actor.
pub struct Actor {
    id: ActorId,
    class: String,
    name: Option<String>,
    options: ActorOptions,
    job: Arc<Job>,
    queue: mpsc::UnboundedSender<Call>,
    lanes: Mutex<HashMap<u64, Lane>>,
    /// Why it is dead, once it is.
    died: Mutex<Option<String>>,
    /// Actors it created (not detached): they end with it.
    owned: Mutex<Vec<ActorId>>,
    kill: Notify,
}

impl Actor {
    fn dead(&self) -> Option<String> {
        self.died.lock().clone()
    }

    fn die(&self, reason: String) {
        self.died.lock().get_or_insert(reason);
    }

    fn label(&self, method: &str) -> String {
        format!("{}.{method}", self.class)
    }
}

/// The node's actors, by id and by name.
#[derive(Default)]
pub struct Actors {
    by_id: Mutex<HashMap<ActorId, Arc<Actor>>>,
    by_name: Mutex<HashMap<String, ActorId>>,
}

impl Actors {
    /// Creates an actor of `class` in `job`'s component; its constructor runs
    /// in the background. Fails if the class is unknown or the name taken.
    pub(crate) fn create(
        node: &Arc<Node>,
        job: &Arc<Job>,
        owner: Option<ActorId>,
        class: String,
        args: Vec<TaskArg>,
        options: ActorOptions,
    ) -> Result<ActorId, Failure> {
        let program = &job.program;
        if program.class(&class).is_none() {
            return Err(program.missing("actor class", &class, program.classes.iter().map(|c| c.name.as_str())));
        }
        let id = options.id.unwrap_or_else(|| node.store.fresh_id());
        if node.actors.by_id.lock().contains_key(&id) {
            return Err(Failure::InvalidArgument(format!("an actor `{id}` already exists")));
        }
        let (queue, rx) = mpsc::unbounded_channel();
        let actor = Arc::new(Actor {
            id,
            class,
            name: options.name.clone(),
            options,
            job: job.clone(),
            queue,
            lanes: Mutex::new(HashMap::new()),
            died: Mutex::new(None),
            owned: Mutex::new(Vec::new()),
            kill: Notify::new(),
        });
        if let Some(name) = &actor.name {
            let mut names = node.actors.by_name.lock();
            if names.contains_key(name) {
                return Err(Failure::InvalidArgument(format!("an actor named `{name}` already exists")));
            }
            names.insert(name.clone(), id);
        }
        node.actors.by_id.lock().insert(id, actor.clone());
        if !actor.options.detached {
            match owner.and_then(|o| node.actors.by_id.lock().get(&o).cloned()) {
                Some(owner) => owner.owned.lock().push(id),
                None => job.owned_actors.lock().push(id),
            }
        }
        let span = tracing::info_span!("actor", class = %actor.class, id = %id);
        // Taken before `create` returns: the caller may drop its refs next.
        let holds = Holdings::args(node, &args);
        tokio::spawn(run(node.clone(), actor, args, holds, rx).instrument(span));
        Ok(id)
    }

    /// Queues `method` on `actor` for `caller`; returns the result's ref.
    pub(crate) fn call(node: &Arc<Node>, caller: u64, actor: ActorId, method: String, args: Vec<TaskArg>) -> ObjectId {
        let Some(actor) = node.actors.by_id.lock().get(&actor).cloned() else {
            return node.failed(Failure::NotFound(format!("no actor `{actor}` on this node")));
        };
        if let Some(reason) = actor.dead() {
            return node.failed(Failure::ActorDied(reason));
        }
        let result = node.store.pending();
        let holds = Holdings::args(node, &args);
        let mut lanes = actor.lanes.lock();
        let lane = lanes.entry(caller).or_insert_with(|| open_lane(node, &actor));
        if lane.waiting.load(Ordering::Acquire) == 0
            && let Some(args) = ready_args(node, &args)
        {
            // Nothing of this caller's is ahead of it: straight to the run queue.
            send(node, &actor, Call { method, args, result, _holds: holds });
        } else {
            lane.waiting.fetch_add(1, Ordering::AcqRel);
            let _ = lane.tx.send(Unresolved { method, args, result, holds });
        }
        result
    }

    /// Kills an actor: the running call is interrupted, queued and later
    /// calls fail with actor-died.
    pub(crate) fn kill(node: &Node, actor: ActorId, reason: &str) -> Result<(), Failure> {
        let Some(actor) = node.actors.by_id.lock().get(&actor).cloned() else {
            return Err(Failure::NotFound(format!("no actor `{actor}` on this node")));
        };
        actor.die(reason.to_string());
        actor.kill.notify_one();
        Ok(())
    }

    /// Kills every actor here.
    pub(crate) fn kill_all(node: &Node, reason: &str) {
        let ids: Vec<_> = node.actors.by_id.lock().keys().copied().collect();
        for id in ids {
            let _ = Self::kill(node, id, reason);
        }
    }

    /// The class of `actor`, if it is (or was) here.
    pub(crate) fn class(node: &Node, actor: ActorId) -> Option<Class> {
        let actor = node.actors.by_id.lock().get(&actor).cloned()?;
        actor.job.program.class(&actor.class).cloned()
    }

    /// The live actor named `name`.
    pub(crate) fn by_name(node: &Node, name: &str) -> Result<ActorId, Failure> {
        let id = node.actors.by_name.lock().get(name).copied();
        match id.and_then(|id| node.actors.by_id.lock().get(&id).cloned()) {
            Some(actor) if actor.dead().is_none() => Ok(actor.id),
            _ => Err(Failure::NotFound(format!("no live actor named `{name}`"))),
        }
    }

    /// Kills the actors `job` owns (not the detached ones): Ray's owned
    /// actors end with their job.
    pub(crate) fn end_job(node: &Node, job: &Job) {
        for id in job.owned_actors.lock().drain(..) {
            let _ = Self::kill(node, id, "its job ended");
        }
    }

    /// Frees the actor's name; its id stays known, so later calls say it
    /// died rather than that it never existed.
    fn forget(&self, actor: &Actor) {
        if let Some(name) = &actor.name {
            let mut names = self.by_name.lock();
            if names.get(name) == Some(&actor.id) {
                names.remove(name);
            }
        }
    }
}

/// The argument values if every top-level ref is ready now.
fn ready_args(node: &Node, args: &[TaskArg]) -> Option<Vec<Payload>> {
    args.iter()
        .map(|arg| match arg {
            TaskArg::Value(bytes) => Some(Payload::Bytes(bytes.clone())),
            TaskArg::Object(id) => match node.store.try_get(id) {
                Some(Ok(object)) => payload(*id, &object).ok(),
                _ => None,
            },
        })
        .collect()
}

fn send(node: &Node, actor: &Actor, call: Call) {
    if let Err(mpsc::error::SendError(call)) = actor.queue.send(call) {
        let reason = actor.dead().unwrap_or_else(|| "it has stopped".into());
        node.store.complete(call.result, Err(Failure::ActorDied(reason)));
    }
}

/// Starts the resolver of one caller's calls into `actor`.
fn open_lane(node: &Arc<Node>, actor: &Arc<Actor>) -> Lane {
    let (tx, mut rx) = mpsc::unbounded_channel::<Unresolved>();
    let waiting = Arc::new(AtomicUsize::new(0));
    let (node, actor, count) = (node.clone(), actor.clone(), waiting.clone());
    tokio::spawn(async move {
        while let Some(call) = rx.recv().await {
            match resolve(&node, &actor.label(&call.method), call.args).await {
                Ok(args) => {
                    send(&node, &actor, Call { method: call.method, args, result: call.result, _holds: call.holds })
                }
                Err(failure) => node.store.complete(call.result, Err(failure)),
            }
            count.fetch_sub(1, Ordering::AcqRel);
        }
    });
    Lane { tx, waiting }
}

/// The actor's life: construct, serve calls one at a time, restart after
/// traps within budget, and fail whatever is left when it dies.
/// The constructor's arguments stay held (`_holds`) as long as the actor
/// lives: a restart runs it again.
async fn run(
    node: Arc<Node>,
    actor: Arc<Actor>,
    args: Vec<TaskArg>,
    _holds: Holdings,
    mut rx: mpsc::UnboundedReceiver<Call>,
) {
    let caller = node.next_caller();
    let context = || TaskContext {
        node: node.clone(),
        job: actor.job.clone(),
        slot: None,
        num_cpus: 0,
        caller,
        actor: Some(actor.id),
        generator: None,
    };
    let constructed = match resolve(&node, &actor.label("new"), args).await {
        Ok(args) => start(&node, &actor, context(), &args).await.map(|i| (i, args)),
        Err(failure) => Err(failure.to_string()),
    };
    let (mut instance, ctor_args) = match constructed {
        Ok(started) => started,
        Err(message) => {
            actor.die(format!("the constructor of `{}` failed: {message}", actor.class));
            return shut_down(&node, &actor, rx);
        }
    };
    let mut restarts = 0;
    'serve: loop {
        let call = tokio::select! {
            call = rx.recv() => call,
            () = actor.kill.notified() => None,
        };
        let Some(call) = call else { break };
        let label = actor.label(&call.method);
        let mut retries = 0;
        loop {
            let slot = node.scheduler.acquire(&node, 1).await;
            let ctx = TaskContext { slot: Some(slot), num_cpus: 1, ..context() };
            let outcome = tokio::select! {
                outcome = node.runtime.call_actor(&mut instance, ctx, &label, &call.method, &call.args) => outcome,
                () = actor.kill.notified() => {
                    node.store.complete(call.result, Err(Failure::ActorDied(actor.dead().unwrap_or_default())));
                    break 'serve;
                }
            };
            let trap = match outcome {
                Ok(Ok(bytes)) => break node.store.complete(call.result, Ok(bytes)),
                Ok(Err(message)) => break node.store.complete(call.result, Err(Failure::task(&label, message))),
                Err(trap) => trap,
            };
            if restarts >= actor.options.max_restarts {
                node.store.complete(call.result, Err(trap.failure(&label)));
                actor.die(format!(
                    "`{}` crashed in `{label}` ({trap}) and was restarted {restarts} times (max_restarts)",
                    actor.class
                ));
                break 'serve;
            }
            restarts += 1;
            tracing::warn!(%trap, restart = restarts, of = actor.options.max_restarts, "actor crashed, restarting");
            instance = match start(&node, &actor, context(), &ctor_args).await {
                Ok(instance) => instance,
                Err(message) => {
                    node.store.complete(call.result, Err(trap.failure(&label)));
                    actor.die(format!("the constructor of `{}` failed on restart: {message}", actor.class));
                    break 'serve;
                }
            };
            if retries >= actor.options.max_task_retries {
                break node.store.complete(call.result, Err(trap.failure(&label)));
            }
            retries += 1;
        }
    }
    shut_down(&node, &actor, rx);
}

async fn start(node: &Node, actor: &Actor, ctx: TaskContext, args: &[Payload]) -> Result<ActorInstance, String> {
    node.runtime.start_actor(ctx, &actor.class, args).await
}

/// Marks the actor dead and fails every call still queued.
fn shut_down(node: &Node, actor: &Actor, mut rx: mpsc::UnboundedReceiver<Call>) {
    actor.die("it has stopped".into());
    rx.close();
    let reason = actor.dead().unwrap_or_default();
    while let Ok(call) = rx.try_recv() {
        node.store.complete(call.result, Err(Failure::ActorDied(reason.clone())));
    }
    // Ends the resolvers, which fail what they still hold.
    actor.lanes.lock().clear();
    node.actors.forget(actor);
    for owned in actor.owned.lock().drain(..) {
        let _ = Actors::kill(node, owned, "the actor that created it ended");
    }
}
