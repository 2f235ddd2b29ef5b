//! Actors: one long-lived instance per actor, holding its state, running
//! one call at a time.
//!
//! Ordering: each caller (a driver run, a task attempt, an actor) has its own
//! queue into an actor. A caller's calls have their ref arguments resolved
//! one after the other and then enter the actor's run queue, so they run in
//! submission order; a call waiting for an argument never holds up another
//! caller's calls. When nothing of a caller's is waiting and the new call's
//! arguments are ready, it skips the resolver and goes straight in.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, Ordering};

use futures::FutureExt as _;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};
use tracing::Instrument;

use crate::cancel::{Kind, Token};
use crate::generators::{Generating, Reply};
use crate::node::{Job, Node, hold_args};
use crate::resources::Held;
use crate::scheduler::resolve;
use crate::scope::Scope;
use prism_exec::{
    ActorId, ActorInstance, ActorOptions, Class, Input, NextCall, Outcome, ProgramInfo, QueuedCall, Run, Slot, TaskArg,
};
use prism_store::error::Failure;
use prism_store::{Holdings, ObjectId};

/// Why an actor was not created.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CreateError {
    /// Another live actor has the name.
    #[error("an actor named `{0}` already exists")]
    NameTaken(String),
    /// Another actor has the id.
    #[error("an actor `{0}` already exists")]
    IdTaken(ActorId),
    /// As many actors as the namespace may have are alive.
    #[error("{limit} actors are alive, as many as may be at once: kill one, or raise {raise}")]
    TooMany {
        /// The limit.
        limit: u32,
        /// What raises it.
        raise: &'static str,
    },
    /// As many actors as the node's instance slots allow, beside those kept
    /// for calls, are alive across all its namespaces.
    #[error(
        "{limit} actors are alive on this node, as many as its instance slots allow beside {kept} kept for calls: \
         kill one, or raise --max-instances"
    )]
    NodeFull {
        /// The limit.
        limit: u32,
        /// Slots kept for calls and drivers.
        kept: u32,
    },
    /// The class is unknown, or its component cannot be loaded.
    #[error(transparent)]
    Failed(#[from] Failure),
}

impl From<CreateError> for Failure {
    fn from(err: CreateError) -> Failure {
        match err {
            CreateError::Failed(failure) => failure,
            full @ (CreateError::TooMany { .. } | CreateError::NodeFull { .. }) => {
                Failure::LimitExceeded(full.to_string())
            }
            taken => Failure::InvalidArgument(taken.to_string()),
        }
    }
}

/// A method call with its arguments resolved.
struct Call {
    method: String,
    args: Vec<Input>,
    reply: Reply,
    token: Arc<Token>,
    /// Keeps the arguments alive until the call is done.
    _holds: Holdings,
}

/// The most calls an instance answers in place in one export call: then
/// its loop takes its cpu slot again, behind whoever waits for one.
const CHAIN_MAX: u32 = 64;

/// The calls queued behind an actor's running one, which its instance takes
/// in place (`actors.next-call`): a queue of small calls costs one export
/// call, not one each. Its loop lends it the queue while a call runs.
pub(crate) struct Chain {
    node: Arc<Node>,
    actor: Arc<Actor>,
    state: Mutex<Chained>,
}

#[derive(Default)]
struct Chained {
    rx: Option<mpsc::UnboundedReceiver<Call>>,
    running: Running,
    /// A call taken that cannot run in place (a generator method's).
    held: Option<Call>,
    /// Calls answered in place since the loop lent the queue.
    answered: u32,
}

/// The call an actor's instance runs, as its [`Chain`] knows it.
#[derive(Default)]
enum Running {
    /// The one its loop gave it, whose result is this object.
    Given(ObjectId),
    /// One it took in place.
    Chained(Box<Call>),
    /// None: the last one was answered in place.
    #[default]
    Answered,
}

impl Chain {
    fn lend(&self, rx: mpsc::UnboundedReceiver<Call>, running: ObjectId) {
        *self.state.lock() = Chained { rx: Some(rx), running: Running::Given(running), held: None, answered: 0 };
    }

    /// The queue back, the call running when the instance stopped, and the
    /// call taken but not run.
    fn take_back(&self) -> (mpsc::UnboundedReceiver<Call>, Running, Option<Call>) {
        let Chained { rx, running, held, .. } = std::mem::take(&mut *self.state.lock());
        (rx.expect("the loop lends the queue before every call"), running, held)
    }

    /// See [`prism_exec::Calls::next_call`].
    pub(crate) fn next(&self, value: Vec<u8>) -> NextCall {
        let mut state = self.state.lock();
        // Dropped once its result is stored: its arguments' refs stay held until then.
        let running = std::mem::take(&mut state.running);
        let id = match &running {
            Running::Given(id) => *id,
            Running::Chained(call) => call.reply.id(),
            Running::Answered => return NextCall::Unchained(value),
        };
        self.node.tokens.remove(&id);
        self.node.store.complete(id, Ok(value), None);
        drop(running);
        state.answered += 1;
        if state.answered >= CHAIN_MAX || self.actor.restart.load(Ordering::Acquire) || self.actor.dead().is_some() {
            return NextCall::Done;
        }
        let Chained { rx: Some(rx), held, .. } = &mut *state else { return NextCall::Done };
        while let Ok(call) = rx.try_recv() {
            // Cancelled while queued: already failed.
            if !call.token.start() {
                self.node.tokens.remove(&call.reply.id());
                continue;
            }
            if matches!(call.reply, Reply::Stream(..)) {
                *held = Some(call);
                return NextCall::Done;
            }
            let next = QueuedCall {
                label: self.actor.label(&call.method),
                method: call.method.clone(),
                args: call.args.clone(),
            };
            state.running = Running::Chained(Box::new(call));
            return NextCall::Run(next);
        }
        NextCall::Done
    }
}

/// A call whose ref arguments may not be ready yet.
struct Unresolved {
    method: String,
    args: Vec<TaskArg>,
    reply: Reply,
    token: Arc<Token>,
    holds: Holdings,
}

/// One caller's lane into an actor: open only while some call of the
/// caller's waits for its arguments (each HTTP call is a caller of its own).
struct Lane {
    tx: mpsc::UnboundedSender<Unresolved>,
    /// Calls sent to the resolver and not yet in the run queue.
    waiting: usize,
}

/// A live (or dead) actor.
pub struct Actor {
    id: ActorId,
    class: String,
    name: Option<String>,
    options: ActorOptions,
    job: Arc<Job>,
    /// The component whose class it is.
    program: Arc<ProgramInfo>,
    /// Its run queue; dropped as it shuts down, so a dead actor kept for
    /// its name and reason holds none of the queue's memory.
    queue: Mutex<Option<mpsc::UnboundedSender<Call>>>,
    lanes: Mutex<HashMap<u64, Lane>>,
    /// Why it is dead, once it is.
    died: Mutex<Option<String>>,
    /// Actors it created (not detached): they end with it.
    owned: Mutex<Vec<ActorId>>,
    kill: Notify,
    /// Where its loop is: [`TAKING`], [`ASLEEP`] or [`WOKEN`] (see [`send`]).
    turn: AtomicU8,
    /// Set by a kill that asks for a restart (`no_restart` false).
    restart: AtomicBool,
    /// Restarts so far, against `max_restarts`.
    restarts: AtomicU32,
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

    /// Ends a call of `method` with `result`: a failure no one reads is
    /// reported to the actor's job.
    fn reply(&self, node: &Node, reply: &Reply, method: &str, result: Result<Vec<u8>, Failure>) {
        let unread = result.as_ref().err().and_then(|failure| self.job.unread(&self.label(method), failure));
        reply.complete(node, result, unread);
    }
}

/// The node's actors, by id and by name.
pub struct Actors {
    by_id: Mutex<HashMap<ActorId, Arc<Actor>>>,
    by_name: Mutex<HashMap<String, ActorId>>,
    /// Actors not yet shut down, against [`prism_exec::InstanceLimits::actors`].
    live: AtomicU32,
    /// The same across every namespace of the host.
    host: Arc<HostActors>,
    /// The dead still in `by_id`, the oldest first.
    dead: Mutex<VecDeque<ActorId>>,
}

/// Dead actors remembered per namespace (as Ray's GCS caches destroyed
/// actors), so a call to one says why it died; older ones are forgotten, or
/// a server whose tenants make and kill actors would grow for ever.
pub const DEAD_KEPT: usize = 10_000;

/// Actors alive across a host's namespaces. Each holds an instance slot
/// for its life, so the host lets them hold all but a slot per cpu: one
/// tenant's quota times many tenants cannot leave no slot for calls.
pub(crate) struct HostActors {
    live: AtomicU32,
    limit: u32,
    kept: u32,
}

impl HostActors {
    /// Room for `slots` instance slots less the `kept` ones (at least one).
    pub(crate) fn new(slots: usize, kept: u32) -> Self {
        let slots = u32::try_from(slots).unwrap_or(u32::MAX);
        let kept = kept.clamp(1, slots.max(1));
        HostActors { live: AtomicU32::new(0), limit: slots.saturating_sub(kept), kept }
    }
}

/// Takes a place in `live` if fewer than `limit` are taken.
fn take_place(live: &AtomicU32, limit: u32) -> bool {
    live.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < limit).then_some(n + 1)).is_ok()
}

impl Actors {
    pub(crate) fn new(host: Arc<HostActors>) -> Self {
        Actors {
            by_id: Mutex::default(),
            by_name: Mutex::default(),
            live: AtomicU32::new(0),
            host,
            dead: Mutex::default(),
        }
    }

    /// Takes a place among the namespace's and the host's live actors.
    fn take_place(&self, limits: &prism_exec::InstanceLimits) -> Result<(), CreateError> {
        if !take_place(&self.live, limits.actors) {
            return Err(CreateError::TooMany { limit: limits.actors, raise: limits.names.actors });
        }
        if !take_place(&self.host.live, self.host.limit) {
            self.live.fetch_sub(1, Ordering::AcqRel);
            return Err(CreateError::NodeFull { limit: self.host.limit, kept: self.host.kept });
        }
        Ok(())
    }

    /// Gives a place back (the actor shut down, or was never made).
    fn give_place(&self) {
        self.live.fetch_sub(1, Ordering::AcqRel);
        self.host.live.fetch_sub(1, Ordering::AcqRel);
    }

    /// Creates an actor of `class` in `job`'s component; its constructor runs
    /// in the background. Fails if the class is unknown, the name or id
    /// taken, or as many actors alive as the limits allow.
    pub(crate) fn create(
        node: &Arc<Node>,
        job: &Arc<Job>,
        program: &Arc<ProgramInfo>,
        owner: Option<ActorId>,
        class: String,
        args: Vec<TaskArg>,
        options: ActorOptions,
    ) -> Result<ActorId, CreateError> {
        if program.class(&class).is_none() {
            return Err(program.missing("actor class", &class, program.classes.iter().map(|c| c.name.as_str())).into());
        }
        node.actors.take_place(&node.limits())?;
        let id = options.id.unwrap_or_else(|| node.store.fresh_id());
        let (queue, rx) = mpsc::unbounded_channel();
        let actor = Arc::new(Actor {
            id,
            class,
            name: options.name.clone(),
            options,
            job: job.clone(),
            program: program.clone(),
            queue: Mutex::new(Some(queue)),
            lanes: Mutex::new(HashMap::new()),
            died: Mutex::new(None),
            owned: Mutex::new(Vec::new()),
            kill: Notify::new(),
            turn: AtomicU8::new(TAKING),
            restart: AtomicBool::new(false),
            restarts: AtomicU32::new(0),
        });
        match node.actors.by_id.lock().entry(id) {
            Entry::Occupied(_) => {
                node.actors.give_place();
                return Err(CreateError::IdTaken(id));
            }
            // Known before its name is claimed: a driver that finds the
            // claim asks this node whether the actor lives.
            Entry::Vacant(entry) => entry.insert(actor.clone()),
        };
        if let Some(name) = &actor.name {
            let taken = {
                let mut names = node.actors.by_name.lock();
                let taken = names.contains_key(name);
                if !taken {
                    names.insert(name.clone(), id);
                }
                taken
            };
            let claimed = match job.elsewhere() {
                _ if taken => Ok(false),
                Some(elsewhere) => elsewhere.claim_name(name, id),
                None => Ok(true),
            };
            if claimed != Ok(true) {
                if !taken {
                    node.actors.by_name.lock().remove(name);
                }
                node.actors.by_id.lock().remove(&id);
                node.actors.give_place();
                return Err(claimed.map_or_else(CreateError::Failed, |_| CreateError::NameTaken(name.clone())));
            }
        }
        if !actor.options.detached {
            match owner.and_then(|o| node.actors.by_id.lock().get(&o).cloned()) {
                Some(owner) => owner.owned.lock().push(id),
                None => job.owned_actors.lock().push(id),
            }
        }
        let span = tracing::info_span!("actor", class = %actor.class, id = %id);
        // Taken before `create` returns: the caller may drop its refs next.
        let holds = hold_args(node, &args);
        node.scheduler.threads.spawn(run(node.clone(), actor, args, holds, rx).instrument(span));
        Ok(id)
    }

    /// Whether `actor` is (or was) on this node.
    pub(crate) fn knows(&self, actor: &ActorId) -> bool {
        self.by_id.lock().contains_key(actor)
    }

    /// Queues `method` on `actor` for `caller`; returns the result's ref
    /// (or, for a generator method, its stream's id).
    pub(crate) fn call(
        node: &Arc<Node>,
        caller: u64,
        actor: ActorId,
        method: String,
        args: Vec<TaskArg>,
        generator: bool,
    ) -> ObjectId {
        let reply = Reply::new(node, generator);
        let found = node.actors.by_id.lock().get(&actor).cloned();
        let actor = match found {
            None => Err(Failure::NotFound(format!("no actor `{actor}` on this node"))),
            Some(actor) => match actor.dead() {
                Some(reason) => Err(Failure::ActorDied(reason)),
                None => Ok(actor),
            },
        };
        let actor = match actor {
            Ok(actor) => actor,
            Err(failure) => {
                reply.complete(node, Err(failure), None);
                return reply.id();
            }
        };
        let id = reply.id();
        let token = node.tokens.insert(id, Kind::ActorCall, actor.label(&method));
        let holds = hold_args(node, &args);
        let mut lanes = actor.lanes.lock();
        if !lanes.contains_key(&caller)
            && let Some(args) = ready_args(node, &args)
        {
            // Nothing of this caller's is ahead of it: straight to the run queue.
            send(node, &actor, Call { method, args, reply, token, _holds: holds });
        } else {
            let lane = lanes.entry(caller).or_insert_with(|| open_lane(node, &actor, caller));
            lane.waiting += 1;
            let _ = lane.tx.send(Unresolved { method, args, reply, token, holds });
        }
        id
    }

    /// Fails the queued call `id`, just cancelled (it is skipped when its
    /// turn comes).
    pub(crate) fn cancelled(node: &Node, id: ObjectId, label: &str) {
        match node.generators.get(&id) {
            Some(stream) => stream.cancel(Failure::cancelled(label)),
            None => node.store.complete(id, Err(Failure::cancelled(label)), None),
        }
    }

    /// Kills an actor: the running call is interrupted, queued and later
    /// calls fail with actor-died. With `no_restart` false, an actor with
    /// restarts left is restarted instead: the running call fails, and the
    /// queued ones run on the new instance.
    pub(crate) fn kill(node: &Node, actor: ActorId, reason: &str, no_restart: bool) -> Result<(), Failure> {
        let Some(actor) = node.actors.by_id.lock().get(&actor).cloned() else {
            return Err(Failure::NotFound(format!("no actor `{actor}` on this node")));
        };
        if !no_restart && actor.dead().is_none() && actor.restarts.load(Ordering::Acquire) < actor.options.max_restarts
        {
            actor.restart.store(true, Ordering::Release);
        } else {
            actor.die(reason.to_string());
        }
        actor.kill.notify_one();
        Ok(())
    }

    /// Kills every actor here.
    pub(crate) fn kill_all(node: &Node, reason: &str) {
        let ids: Vec<_> = node.actors.by_id.lock().keys().copied().collect();
        for id in ids {
            let _ = Self::kill(node, id, reason, true);
        }
    }

    /// The class of `actor`, if it is (or was) here.
    pub(crate) fn class(node: &Node, actor: ActorId) -> Option<Class> {
        let actor = node.actors.by_id.lock().get(&actor).cloned()?;
        actor.program.class(&actor.class).cloned()
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
            let _ = Self::kill(node, id, "its job ended", true);
        }
    }

    /// Frees the actor's name and its place among the live; its id stays
    /// known, so later calls say it died rather than that it never existed,
    /// until [`DEAD_KEPT`] actors have died since.
    fn forget(&self, actor: &Actor) {
        self.give_place();
        let mut dead = self.dead.lock();
        dead.push_back(actor.id);
        if dead.len() > DEAD_KEPT {
            let oldest = dead.pop_front();
            self.by_id.lock().remove(&oldest.expect("more than one is kept"));
        }
        drop(dead);
        if let Some(name) = &actor.name {
            let mut names = self.by_name.lock();
            if names.get(name) == Some(&actor.id) {
                names.remove(name);
                drop(names);
                if let Some(elsewhere) = actor.job.elsewhere() {
                    elsewhere.free_name(name);
                }
            }
        }
    }
}

/// The argument values if every top-level ref is ready now.
fn ready_args(node: &Node, args: &[TaskArg]) -> Option<Vec<Input>> {
    args.iter()
        .map(|arg| match arg {
            TaskArg::Value(bytes) => Some(Input::Bytes(bytes.clone())),
            TaskArg::Object(id) => match node.store.try_get(id) {
                Some(Ok(object)) => Input::of(*id, &object).ok(),
                _ => None,
            },
        })
        .collect()
}

fn send(node: &Node, actor: &Actor, call: Call) {
    let refused = match &*actor.queue.lock() {
        Some(queue) => queue.send(call).err().map(|mpsc::error::SendError(call)| call),
        None => Some(call),
    };
    let Some(call) = refused else {
        // The first call wakes the loop: a caller that blocks next (a sync
        // call) lets it run at once on this thread. A second call before it
        // ran means the caller goes on computing: let another thread run it.
        let next = |turn| match turn {
            ASLEEP => Some(WOKEN),
            WOKEN => Some(TAKING),
            _ => None,
        };
        if actor.turn.fetch_update(Ordering::AcqRel, Ordering::Acquire, next) == Ok(WOKEN) {
            free_woken();
        }
        return;
    };
    let reason = actor.dead().unwrap_or_else(|| "it has stopped".into());
    node.tokens.remove(&call.reply.id());
    actor.reply(node, &call.reply, &call.method, Err(Failure::ActorDied(reason)));
}

/// An actor's loop takes calls.
const TAKING: u8 = 0;
/// An actor's loop waits for a call.
const ASLEEP: u8 = 1;
/// A call woke an actor's loop, which has not run since.
const WOKEN: u8 = 2;

/// Lets another worker thread take the task just woken on this one. Tokio
/// keeps a task woken from a worker thread in that thread's LIFO slot,
/// which no other worker steals: an actor's loop woken by a caller that
/// goes on computing (a driver queueing a thousand calls) would wait until
/// the caller blocks, and the two would take turns on one cpu instead of
/// running on two. A task spawned after it takes the slot, and the woken
/// one moves to the queue other workers steal from.
fn free_woken() {
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::spawn(async {});
    }
}

/// Starts the resolver of `caller`'s calls into `actor`. It closes the lane
/// once nothing is left in it, under the lanes' lock, so a call either
/// joins the lane before that or finds it gone.
fn open_lane(node: &Arc<Node>, actor: &Arc<Actor>, caller: u64) -> Lane {
    let (tx, mut rx) = mpsc::unbounded_channel::<Unresolved>();
    let (node, actor, this) = (node.clone(), actor.clone(), tx.downgrade());
    tokio::spawn(async move {
        while let Some(call) = rx.recv().await {
            let Unresolved { method, args, reply, token, holds } = call;
            match resolve(&node, &actor.label(&method), args).await {
                Ok(args) => send(&node, &actor, Call { method, args, reply, token, _holds: holds }),
                Err(failure) => {
                    node.tokens.remove(&reply.id());
                    actor.reply(&node, &reply, &method, Err(failure));
                }
            }
            let mut lanes = actor.lanes.lock();
            // Not there if the actor shut down (its lanes cleared): then
            // the rest is drained, each call failing as it is sent.
            let ours = |lane: &&mut Lane| this.upgrade().is_some_and(|tx| tx.same_channel(&lane.tx));
            if let Some(lane) = lanes.get_mut(&caller).filter(ours) {
                lane.waiting -= 1;
                if lane.waiting == 0 {
                    lanes.remove(&caller);
                }
            }
        }
    });
    Lane { tx, waiting: 0 }
}

/// The actor's life: construct, serve calls one at a time, restart after
/// traps (or a kill that asks for it) within budget, and fail whatever is
/// left when it dies. The constructor's arguments stay held (`_holds`) as
/// long as the actor lives: a restart runs it again.
async fn run(
    node: Arc<Node>,
    actor: Arc<Actor>,
    args: Vec<TaskArg>,
    _holds: Holdings,
    mut rx: mpsc::UnboundedReceiver<Call>,
) {
    let caller = node.next_caller();
    // What each constructor run and method call runs as.
    let context = |slot: Option<Slot>, num_cpus: u32, generating: Option<Generating>, chain: Option<Arc<Chain>>| {
        let scope = Scope::new(&node, &actor.job, None, caller, Some(actor.id), generating).chained(chain);
        node.run(&actor.job, scope, actor.program.hash, slot, num_cpus, actor.options.placement.clone())
    };
    let constructed = match resolve(&node, &actor.label("new"), args).await {
        Ok(args) => start(&node, &actor, context(None, 0, None, None), &args).await.map(|i| (i, args)),
        Err(failure) => Err(failure.to_string()),
    };
    let (mut instance, ctor_args) = match constructed {
        Ok(started) => started,
        Err(message) => {
            actor.die(format!("the constructor of `{}` failed: {message}", actor.class));
            return shut_down(&node, &actor, None, rx);
        }
    };
    // Runs the constructor again on a new instance, within budget; else the
    // actor dies with `why`. The old one goes first: it may hold resources
    // the new one needs.
    let restart = async |old: Box<dyn ActorInstance>, why: String| -> Option<Box<dyn ActorInstance>> {
        drop(old);
        let restarts = actor.restarts.fetch_add(1, Ordering::AcqRel);
        if restarts >= actor.options.max_restarts {
            actor.die(format!("{why} and was restarted {restarts} times (max_restarts)"));
            return None;
        }
        tracing::warn!(%why, restart = restarts + 1, of = actor.options.max_restarts, "restarting actor");
        match start(&node, &actor, context(None, 0, None, None), &ctor_args).await {
            Ok(instance) => Some(instance),
            Err(message) => {
                actor.die(format!("the constructor of `{}` failed on restart: {message}", actor.class));
                None
            }
        }
    };
    // Lent the queue while a call runs, for the instance to take the calls
    // behind it in place.
    let chain = Arc::new(Chain { node: node.clone(), actor: actor.clone(), state: Mutex::new(Chained::default()) });
    // A call the chain took but could not run in place: served next.
    let mut held = None;
    'serve: loop {
        let call = match held.take() {
            Some(call) => Some(call),
            None => {
                if rx.is_empty() {
                    actor.turn.store(ASLEEP, Ordering::Release);
                }
                tokio::select! {
                    call = rx.recv() => call,
                    () = actor.kill.notified() => None,
                }
            }
        };
        actor.turn.store(TAKING, Ordering::Release);
        if actor.restart.swap(false, Ordering::AcqRel) && actor.dead().is_none() {
            match restart(instance, format!("`{}` was killed", actor.class)).await {
                Some(new) => instance = new,
                None => break,
            }
            if call.is_none() {
                continue;
            }
            // A call won the race with the kill's wake-up: take the wake-up
            // now, or it would interrupt this call on the new instance.
            let _ = actor.kill.notified().now_or_never();
        }
        let Some(mut call) = call else { break };
        let mut _forget = node.tokens.forget(call.reply.id());
        // Cancelled while queued: already failed.
        if !call.token.start() {
            continue;
        }
        let mut label = actor.label(&call.method);
        let mut retries = 0;
        loop {
            let slot = node.scheduler.acquire(&node, 1).await;
            let generating = call.reply.generator();
            // A generator's call takes none in place: its stream is its own.
            let chained = generating.is_none().then(|| chain.clone());
            chain.lend(rx, call.reply.id());
            let run = context(Some(Slot::new(slot)), 1, generating, chained);
            let outcome = tokio::select! {
                outcome = instance.call(run, &label, &call.method, &call.args) => Some(outcome),
                () = actor.kill.notified() => None,
            };
            let (queue, running, taken) = chain.take_back();
            (rx, held) = (queue, taken);
            let answered = match running {
                Running::Given(_) => false,
                Running::Chained(next) => {
                    call = *next;
                    _forget = node.tokens.forget(call.reply.id());
                    label = actor.label(&call.method);
                    retries = 0;
                    false
                }
                Running::Answered => true,
            };
            let Some(outcome) = outcome else {
                let restarting = actor.restart.swap(false, Ordering::AcqRel) && actor.dead().is_none();
                if !answered {
                    let reason = if restarting {
                        format!("`{label}` was interrupted: the actor was killed to restart")
                    } else {
                        actor.dead().unwrap_or_default()
                    };
                    actor.reply(&node, &call.reply, &call.method, Err(Failure::ActorDied(reason)));
                }
                if restarting && let Some(new) = restart(instance, format!("`{}` was killed", actor.class)).await {
                    instance = new;
                    continue 'serve;
                }
                break 'serve;
            };
            let trap = match outcome {
                Ok(_) if answered => break,
                Ok(Ok(bytes)) => break actor.reply(&node, &call.reply, &call.method, Ok(bytes)),
                Ok(Err(refused)) => break actor.reply(&node, &call.reply, &call.method, Err(refused.failure(&label))),
                Err(trap) => trap,
            };
            match restart(instance, format!("`{}` crashed in `{label}` ({trap})", actor.class)).await {
                Some(new) => instance = new,
                None => {
                    if !answered {
                        actor.reply(&node, &call.reply, &call.method, Err(trap.failure(&label)));
                    }
                    break 'serve;
                }
            }
            if answered {
                break;
            }
            if retries >= actor.options.max_task_retries {
                break actor.reply(&node, &call.reply, &call.method, Err(trap.failure(&label)));
            }
            retries += 1;
        }
    }
    shut_down(&node, &actor, held, rx);
}

async fn start(node: &Node, actor: &Actor, run: Run, args: &[Input]) -> Result<Box<dyn ActorInstance>, String> {
    start_instance(node, run, &actor.class, args).await
}

/// Makes an instance of `class`, which holds the resources `run` asks for
/// while it lives; unless the executor places it elsewhere, which holds
/// them there.
pub(crate) async fn start_instance(
    node: &Node,
    run: Run,
    class: &str,
    args: &[Input],
) -> Result<Box<dyn ActorInstance>, String> {
    if node.executor.places_elsewhere() || run.placement.is_any() {
        return node.executor.start_actor(run, class, args).await;
    }
    let what = format!("actor `{class}`");
    node.admits(&what, &run.placement).map_err(|f| f.to_string())?;
    let held = node.scheduler.resources.acquire(&run.placement.resources).await.map_err(|u| format!("{what} {u}"))?;
    let instance = node.executor.start_actor(run, class, args).await?;
    Ok(Box::new(Holding { instance, _held: held }))
}

/// An instance and the resources it holds.
struct Holding {
    instance: Box<dyn ActorInstance>,
    _held: Held,
}

#[async_trait::async_trait]
impl ActorInstance for Holding {
    async fn call(&mut self, run: Run, label: &str, method: &str, args: &[Input]) -> Outcome {
        self.instance.call(run, label, method, args).await
    }
}

/// Marks the actor dead and fails every call still queued.
fn shut_down(node: &Node, actor: &Actor, held: Option<Call>, mut rx: mpsc::UnboundedReceiver<Call>) {
    actor.die("it has stopped".into());
    actor.queue.lock().take();
    rx.close();
    let reason = actor.dead().unwrap_or_default();
    for call in held.into_iter().chain(std::iter::from_fn(|| rx.try_recv().ok())) {
        node.tokens.remove(&call.reply.id());
        actor.reply(node, &call.reply, &call.method, Err(Failure::ActorDied(reason.clone())));
    }
    // Ends the resolvers, which fail what they still hold.
    actor.lanes.lock().clear();
    node.actors.forget(actor);
    for owned in actor.owned.lock().drain(..) {
        let _ = Actors::kill(node, owned, "the actor that created it ended", true);
    }
}
