//! Calls of a driver's actors by its tasks running on other nodes.
//!
//! The actors stay with the driver's node, which keeps their queues
//! (`prism_node::actors`). A task on a node that calls or kills one of them
//! goes through a [`Forwarder`]: it sends the request to the driver's node,
//! where [`answer_callers`] queues it as a local call would be queued, and
//! completes the call's result on the node once the answer comes.
//!
//! Any job finds any driver's named actor the same way: [`Directory`], its
//! job's [`ActorsElsewhere`], looks names up in
//! [`NAMES_BUCKET`](crate::protocol::NAMES_BUCKET), where each driver claims the names its actors take,
//! and calls the actor through a [`Forwarder`] to the driver that keeps it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::jetstream::kv;
use futures::StreamExt as _;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use prism_exec::{ActorOptions, TaskArg, TaskOptions};
use prism_node::generators::{Ended, Reply, Stream};
use prism_node::{ActorsElsewhere, Job, Node, TasksElsewhere};
use prism_store::{Failure, GetError, Holdings, ObjectId, ObjectStore, nested_refs};

use crate::dispatch::At;
use crate::membership::Cluster;
use crate::protocol::{
    ActorCall, ActorCreate, CallAnswer, CallArg, CallValue, CallerRequest, Held, INLINE_REPLY_MAX, Named, TaskCall,
    Value, alive_subject, name_key,
};
use crate::transfer;

/// How long a call's value is kept on the driver's node for the node that
/// asked to pull it.
const ANSWER_KEPT: Duration = Duration::from_secs(60);

/// How often a forwarder with calls waiting checks that the driver's node
/// it waits on is still there.
const OWNER_CHECK: Duration = Duration::from_secs(1);

/// How many times a name is tried for, against other drivers claiming it.
const CLAIM_TRIES: u32 = 3;

/// How long a kill or a lookup by name waits for the driver's node, and
/// an actor made, for it to say it is there.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers the requests of the nodes running `node`'s jobs and of other
/// drivers, arriving on `subject`, until the subscription ends. Calls are
/// queued in the order they arrive, which is each caller's order.
pub async fn answer_callers(
    client: async_nats::Client,
    subject: String,
    node: Arc<Node>,
    jobs: Jobs,
) -> Result<(), async_nats::SubscribeError> {
    let mut calls = client.subscribe(subject.clone()).await?;
    // Answered on its own, so that no queued call delays it.
    let mut asked = client.subscribe(alive_subject(&subject)).await?;
    let answering = client.clone();
    tokio::spawn(async move {
        while let Some(ask) = asked.next().await {
            if let Some(reply) = ask.reply {
                let _ = answering.publish(reply, bytes::Bytes::new()).await;
            }
        }
    });
    let mut callers: HashMap<String, u64> = HashMap::new();
    let forwarded = Arc::new(Forwarded::default());
    while let Some(message) = calls.next().await {
        let Some(reply) = message.reply.map(|r| r.to_string()) else { continue };
        let answer = match rmp_serde::from_slice::<CallerRequest>(&message.payload) {
            Ok(CallerRequest::Kill(actor, no_restart)) => encode(&node.kill_actor(actor, no_restart)),
            Ok(CallerRequest::ByName(name)) => encode(&node.actor_by_name(&name)),
            Ok(CallerRequest::Create(create)) => {
                let job = jobs.lock().get(&create.job).and_then(Weak::upgrade);
                let (client, node) = (client.clone(), node.clone());
                // Its arguments are pulled in a task of its own.
                tokio::spawn(async move {
                    let created = match job {
                        None => Err(Failure::NotFound(format!("job {} has ended", create.job))),
                        Some(job) => create_actor(&node, &job, create).await,
                    };
                    let _ = client.publish(reply, encode(&created).into()).await;
                });
                continue;
            }
            Ok(CallerRequest::Cancel(call, recursive)) => {
                forwarded.cancel(&node, (reply, call), recursive);
                continue;
            }
            Ok(CallerRequest::Call(call)) => {
                let caller =
                    *callers.entry(format!("{}/{}", call.origin, call.caller)).or_insert_with(|| node.next_caller());
                let generator = call.generator;
                let (key, started) = ((reply, call.call), queue(&node, caller, call).await);
                let (client, node, forwarded) = (client.clone(), node.clone(), forwarded.clone());
                if let Ok(id) = started {
                    forwarded.running(key.clone(), id);
                }
                tokio::spawn(async move { forwarded.finish(&client, &node, key, started, generator).await });
                continue;
            }
            Ok(CallerRequest::Remote(call)) => {
                let job = jobs.lock().get(&call.job).and_then(Weak::upgrade);
                let (client, node, forwarded) = (client.clone(), node.clone(), forwarded.clone());
                let key = (reply, call.call);
                forwarded.pulling(key.clone());
                // Its arguments are pulled and its value waited for in a
                // task of its own: tasks need no order among themselves.
                tokio::spawn(async move {
                    let started = match job {
                        None => Err(Failure::NotFound(format!("job {} has ended", call.job))),
                        Some(job) => match pull_args(&node, &call.origin, call.args).await {
                            Ok((args, _pulled)) => {
                                let (function, options) = (call.function, call.options);
                                let start = || match call.generator {
                                    true => node.remote_generator(&job, function.clone(), Ok(args), options),
                                    false => node.remote(&job, function.clone(), args, options),
                                };
                                forwarded.start(&key, start).ok_or_else(|| Failure::cancelled(&function))
                            }
                            Err(failure) => Err(failure),
                        },
                    };
                    forwarded.finish(&client, &node, key, started, call.generator).await;
                });
                continue;
            }
            Err(e) => encode(&Err::<(), _>(Failure::InvalidArgument(format!("a malformed request: {e}")))),
        };
        let _ = client.publish(reply, answer.into()).await;
    }
    Ok(())
}

/// The calls that forwarders sent this driver's node, until answered: what
/// a [`CallerRequest::Cancel`] finds.
#[derive(Default)]
struct Forwarded(Mutex<HashMap<Key, Stage>>);

/// A forwarded call: its forwarder's reply subject, and its number.
type Key = (String, u64);

/// Where a forwarded call is.
enum Stage {
    /// Its arguments are being pulled; `true` once it was cancelled, so
    /// it never starts.
    Pulling(bool),
    /// It was submitted here: its result.
    Running(ObjectId),
}

impl Forwarded {
    fn pulling(&self, key: Key) {
        self.0.lock().insert(key, Stage::Pulling(false));
    }

    fn running(&self, key: Key, id: ObjectId) {
        self.0.lock().insert(key, Stage::Running(id));
    }

    /// Submits the call with `start` unless it was cancelled while its
    /// arguments were pulled; its result.
    fn start(&self, key: &Key, start: impl FnOnce() -> ObjectId) -> Option<ObjectId> {
        let mut calls = self.0.lock();
        if let Some(Stage::Pulling(true)) = calls.get(key) {
            return None;
        }
        let id = start();
        calls.insert(key.clone(), Stage::Running(id));
        Some(id)
    }

    fn cancel(&self, node: &Node, key: Key, recursive: bool) {
        let id = match self.0.lock().get_mut(&key) {
            Some(Stage::Running(id)) => *id,
            Some(Stage::Pulling(cancelled)) => return *cancelled = true,
            // Answered already.
            None => return,
        };
        let _ = node.cancel(id, recursive);
    }

    /// Sends the call `key`, `started` as the call or generator whose
    /// result or stream is the id, its answer once it ends (a generator's
    /// items first): it is no longer in hand then.
    async fn finish(
        &self,
        client: &async_nats::Client,
        node: &Arc<Node>,
        key: Key,
        started: Result<ObjectId, Failure>,
        generator: bool,
    ) {
        let result = match started {
            Ok(id) if generator => items(client, node, &key, id).await,
            Ok(id) => value_of(node, id).await,
            Err(failure) => Err(failure),
        };
        self.0.lock().remove(&key);
        let (reply, call) = key;
        let _ = client.publish(reply, encode(&CallAnswer { call, item: false, result }).into()).await;
    }
}

/// Sends the forwarded call `key` the items of generator `id` as they come;
/// how it ended: an empty value, or why it was cancelled.
async fn items(
    client: &async_nats::Client,
    node: &Arc<Node>,
    (reply, call): &Key,
    id: ObjectId,
) -> Result<CallValue, Failure> {
    let stream = node.stream(&id).ok_or_else(|| Failure::NotFound(format!("no generator `{id}` here")))?;
    let ended = loop {
        match stream.next(None).await {
            Ok(Some(item)) => {
                let answer = CallAnswer { call: *call, item: true, result: value_of(node, item).await };
                let _ = client.publish(reply.clone(), encode(&answer).into()).await;
            }
            Ok(None) => break Ok(CallValue { value: Value::Inline(Vec::new()), nested: Vec::new(), at: None }),
            Err(Ended::Cancelled(failure)) => break Err(failure),
            Err(Ended::TimedOut) => unreachable!("no deadline was given"),
        }
    };
    node.close_stream(&id);
    ended
}

/// Pulls `call`'s arguments from the node that sent it, then queues it on
/// the actor for `caller`; its result's ref (or its stream's id).
async fn queue(node: &Arc<Node>, caller: u64, call: ActorCall) -> Result<ObjectId, Failure> {
    // Held until the call is queued, which takes references of its own.
    let (args, _pulled) = pull_args(node, &call.origin, call.args).await?;
    Ok(match call.generator {
        true => node.call_actor_generator(caller, call.actor, call.method, args),
        false => node.call_actor(caller, call.actor, call.method, args),
    })
}

/// Makes the actor that a task on the node at `create.origin` asked for,
/// once its arguments are pulled here: kept here, as this driver's own.
async fn create_actor(node: &Arc<Node>, job: &Arc<Job>, create: ActorCreate) -> Result<ObjectId, Failure> {
    // Held until the actor is made, which takes references of its own.
    let (args, _pulled) = pull_args(node, &create.origin, create.args).await?;
    let program = node.program(job, Some(create.component)).await?;
    Ok(node.create_actor(job, &program, create.owner, create.class, args, create.options)?)
}

/// Pulls the objects `args` name from the node at `origin`: the arguments
/// as a call here takes them, and the pulled objects, held.
async fn pull_args(node: &Node, origin: &str, args: Vec<CallArg>) -> Result<(Vec<TaskArg>, Holdings), Failure> {
    let store = &node.store;
    let mut pulled = Holdings::new(store);
    let mut taken = Vec::with_capacity(args.len());
    for arg in args {
        let (objects, arg) = match arg {
            CallArg::Value(bytes, nested) => (nested, TaskArg::Value(bytes)),
            CallArg::Ref(held) => (vec![held], TaskArg::Object(held.id)),
        };
        for object in objects {
            transfer::pull(origin, store, object).await.map_err(|e| Failure::HostFailed(e.to_string()))?;
            pulled.adopt(object.id);
        }
        taken.push(arg);
    }
    Ok((taken, pulled))
}

/// The driver's jobs, by number, for the tasks their tasks start.
pub type Jobs = Arc<Mutex<HashMap<u64, Weak<Job>>>>;

/// The value of the call whose result is `id` (which this takes), once it
/// is done, as the node that asked pulls it: kept here a while for that.
/// A large value left on the node whose task made it is pulled from there.
async fn value_of(node: &Arc<Node>, id: ObjectId) -> Result<CallValue, Failure> {
    let store = node.store.clone();
    let result = async {
        store.settled(&id).await;
        if let Some(at) = store.whereabouts(&id).and_then(|w| w.downcast::<At>().ok())
            && at.object.len > INLINE_REPLY_MAX as u64
        {
            // What it nests comes with it from there.
            let (value, at) = (Value::Stored(at.object), Some((at.node.transfer.clone(), id)));
            return Ok(CallValue { value, nested: Vec::new(), at });
        }
        let bytes = match store.get(&id, None).await {
            Ok(object) => object.to_vec()?,
            Err(GetError::Failed(failure)) => return Err((*failure).clone()),
            Err(GetError::Timeout) => unreachable!("no deadline was given"),
        };
        let mut nested = Vec::new();
        for n in nested_refs(&bytes) {
            nested.push(crate::held_here(&store, n).await?);
        }
        let value = if bytes.len() <= INLINE_REPLY_MAX {
            Value::Inline(bytes)
        } else {
            Value::Stored(crate::held_here(&store, id).await?)
        };
        Ok(CallValue { value, nested, at: None })
    }
    .await;
    // The value holds what it nests; it stays for the puller.
    tokio::spawn(async move {
        tokio::time::sleep(ANSWER_KEPT).await;
        store.release(&id);
    });
    result
}

fn encode(message: &impl serde::Serialize) -> Vec<u8> {
    rmp_serde::to_vec(message).expect("messages encode")
}

/// The calls, kills and tasks that a job on one node sends the driver's
/// node that keeps the actors (or runs the tasks), in the order they were
/// made.
pub struct Forwarder {
    client: async_nats::Client,
    /// The driver's node's [`crate::protocol::caller_subject`].
    subject: String,
    /// Calls in the order they were made, to send in that order, and
    /// their cancels.
    queue: mpsc::UnboundedSender<Outgoing>,
    /// The calls not yet answered.
    in_hand: Arc<Mutex<InHand>>,
    next: AtomicU64,
    /// The store of the job's node, and where that node serves transfers.
    store: Arc<ObjectStore>,
    here: String,
}

/// What a forwarder sends, in order.
enum Outgoing {
    Call(Box<Queued>),
    /// The cancel of a call sent already (`recursive`: with the calls it
    /// made).
    Cancel(u64, bool),
}

/// A forwarder's calls not yet answered, by number.
#[derive(Default)]
struct InHand {
    /// Queued, not yet sent. A call cancelled first leaves this, and is
    /// never sent.
    unsent: HashSet<u64>,
    /// Sent, waiting for their answers.
    waiting: HashMap<u64, Queued>,
}

/// What a call forwarded to the driver's node does.
enum Work {
    /// Calls a method (a generator, if so) of one of its actors.
    Method { actor: ObjectId, method: String, generator: bool },
    /// Runs a task (a generator, if so) of its job, scheduled there.
    Task { job: u64, function: String, options: TaskOptions, generator: bool },
}

/// The tasks that the tasks of a driver's job, run on this node, start:
/// sent to the driver's node through its job's [`Forwarder`].
pub struct JobTasks {
    /// The forwarder to the driver's node.
    pub forwarder: Arc<Forwarder>,
    /// The job there.
    pub job: u64,
}

#[async_trait::async_trait]
impl TasksElsewhere for JobTasks {
    fn remote(
        &self,
        node: &Arc<Node>,
        caller: u64,
        function: String,
        args: Vec<TaskArg>,
        options: TaskOptions,
        generator: bool,
    ) -> ObjectId {
        self.forwarder.send(node, caller, Work::Task { job: self.job, function, options, generator }, args)
    }

    async fn create_actor(
        &self,
        component: [u8; 32],
        class: String,
        args: Vec<TaskArg>,
        options: ActorOptions,
        owner: Option<ObjectId>,
    ) -> Result<ObjectId, Failure> {
        let forwarder = &self.forwarder;
        let args = describe_args(&forwarder.store, &args).await?;
        let (job, origin) = (self.job, forwarder.here.clone());
        let create = ActorCreate { job, component, class, args, options, owner, origin };
        forwarder.creating(create).await
    }
}

/// Where a forwarded call's answer goes.
enum To {
    /// The call's end: it leaves the calls in hand.
    End(Box<Queued>),
    /// A generator's item, and its number.
    Item((Arc<Stream>, usize)),
}

/// A call made here.
struct Queued {
    call: u64,
    caller: u64,
    what: Work,
    args: Vec<TaskArg>,
    /// Its arguments, held until it is answered.
    _holds: Holdings,
    /// Its result here, pending until the answer (or a generator's
    /// stream, filled as its items come).
    result: Reply,
    /// A generator's items come so far.
    items: usize,
    /// The node it was made on, whose cancel switch it has until answered.
    node: Weak<Node>,
}

impl Queued {
    /// Completes its result with `result` (a generator's stream ends, or
    /// ends with the failure): its cancel switch goes.
    fn complete(self, result: Result<Vec<u8>, Failure>) {
        if let Some(node) = self.node.upgrade() {
            node.untrack(&self.result.id());
            self.result.complete(&node, result, None);
        }
    }

    /// Where its generator's next item goes, and that item's number; `None`
    /// if it is no generator.
    fn next_item(&mut self) -> Option<(Arc<Stream>, usize)> {
        let Reply::Stream(_, stream) = &self.result else { return None };
        self.items += 1;
        Some((stream.clone(), self.items - 1))
    }
}

impl Forwarder {
    /// Forwards to the driver's node at `subject` (whose transfer server is
    /// at `driver`) the calls of a job on `store`, whose node serves
    /// transfers at `here`.
    pub async fn start(
        client: async_nats::Client,
        subject: String,
        store: Arc<ObjectStore>,
        here: String,
        driver: String,
    ) -> Result<Arc<Forwarder>, async_nats::SubscribeError> {
        let inbox = client.new_inbox();
        let mut answers = client.subscribe(inbox.clone()).await?;
        let (queue, mut queued) = mpsc::unbounded_channel::<Outgoing>();
        let in_hand: Arc<Mutex<InHand>> = Arc::default();
        // Dropped when the sender ends (the job is gone here).
        let (ended, mut ending) = tokio::sync::oneshot::channel::<()>();
        // Sends the calls in order, each once its arguments are ready, and
        // the cancels of calls sent, after them.
        let sender = {
            let (client, subject, store, in_hand, inbox, here) =
                (client.clone(), subject.clone(), store.clone(), in_hand.clone(), inbox.clone(), here.clone());
            async move {
                while let Some(outgoing) = queued.recv().await {
                    let call = match outgoing {
                        Outgoing::Call(call) => *call,
                        Outgoing::Cancel(call, recursive) => {
                            let request = encode(&CallerRequest::Cancel(call, recursive));
                            let _ = client.publish_with_reply(subject.clone(), inbox.clone(), request.into()).await;
                            continue;
                        }
                    };
                    let args = describe_args(&store, &call.args).await;
                    let Some(request) = send_now(&in_hand, call, args, &here) else { continue };
                    let _ = client.publish_with_reply(subject.clone(), inbox.clone(), encode(&request).into()).await;
                }
                drop(ended);
            }
        };
        // Completes each call's result as its answer comes; once the job is
        // gone here and no call waits, it unsubscribes. While calls wait, it
        // checks every second that the driver's node is still there: if it
        // is gone, they would wait for ever.
        let (asker, owner, waiting) = (client.clone(), subject.clone(), in_hand.clone());
        let ours = store.clone();
        let receiver = async move {
            let mut gone = false;
            let mut check = tokio::time::interval(OWNER_CHECK);
            loop {
                if gone && waiting.lock().waiting.is_empty() {
                    break;
                }
                let message = tokio::select! {
                    message = answers.next() => message,
                    _ = &mut ending, if !gone => {
                        gone = true;
                        continue;
                    }
                    _ = check.tick() => {
                        if !waiting.lock().waiting.is_empty()
                            && presence(&asker, &owner, OWNER_CHECK).await == Presence::Gone
                        {
                            let failure = || Failure::ActorDied("the driver that keeps the actor is gone".into());
                            let calls: Vec<Queued> = waiting.lock().waiting.drain().map(|(_, call)| call).collect();
                            for call in calls {
                                call.complete(Err(failure()));
                            }
                        }
                        continue;
                    }
                };
                let Some(message) = message else { break };
                let Ok(CallAnswer { call, item, result }) = rmp_serde::from_slice(&message.payload) else { continue };
                // A generator's item leaves its call in hand, until its end.
                let to = match item {
                    true => waiting.lock().waiting.get_mut(&call).and_then(Queued::next_item).map(To::Item),
                    false => waiting.lock().waiting.remove(&call).map(|call| To::End(Box::new(call))),
                };
                let Some(to) = to else { continue };
                let result = match result {
                    Ok(value) => receive(&driver, &store, value).await,
                    Err(failure) => Err(failure),
                };
                // What the value nests is held until it is stored.
                let (result, _nested) = match result {
                    Ok((bytes, nested)) => (Ok(bytes), Some(nested)),
                    Err(failure) => (Err(failure), None),
                };
                match to {
                    To::End(call) => call.complete(result),
                    To::Item((stream, index)) => {
                        let item = store.pending();
                        store.complete(item, result, None);
                        if !stream.push(index, item) {
                            store.release(&item);
                        }
                    }
                }
            }
        };
        tokio::spawn(sender);
        tokio::spawn(receiver);
        Ok(Arc::new(Forwarder { client, subject, queue, in_hand, next: AtomicU64::new(0), store: ours, here }))
    }

    /// Queues `what` with `args` for `caller`; its result's ref, pending
    /// here until the answer comes (or its generator's stream's id),
    /// cancelled through `node` as a call made here is.
    fn send(&self, node: &Arc<Node>, caller: u64, what: Work, args: Vec<TaskArg>) -> ObjectId {
        let generator = match what {
            Work::Method { generator, .. } | Work::Task { generator, .. } => generator,
        };
        let result = Reply::new(node, generator);
        let mut holds = Holdings::new(&node.store);
        for arg in &args {
            match arg {
                TaskArg::Object(id) => holds.hold(*id),
                TaskArg::Value(bytes) => nested_refs(bytes).into_iter().for_each(|id| holds.hold(id)),
            }
        }
        let call = self.next.fetch_add(1, Ordering::Relaxed);
        let label = match &what {
            Work::Method { method, .. } => method.clone(),
            Work::Task { function, .. } => function.clone(),
        };
        self.in_hand.lock().unsent.insert(call);
        let (in_hand, queue, reply) = (Arc::downgrade(&self.in_hand), self.queue.clone(), result.clone());
        let (weak, function) = (Arc::downgrade(node), label.clone());
        node.track_elsewhere(
            result.id(),
            label,
            Box::new(move |recursive| {
                let Some(in_hand) = in_hand.upgrade() else { return };
                let mut hand = in_hand.lock();
                if hand.unsent.remove(&call) {
                    drop(hand);
                    if let Some(node) = weak.upgrade() {
                        node.untrack(&reply.id());
                        reply.complete(&node, Err(Failure::cancelled(&function)), None);
                    }
                } else if hand.waiting.contains_key(&call) {
                    let _ = queue.send(Outgoing::Cancel(call, recursive));
                }
            }),
        );
        let id = result.id();
        let queued = Queued { call, caller, what, args, _holds: holds, result, items: 0, node: Arc::downgrade(node) };
        if let Err(mpsc::error::SendError(Outgoing::Call(queued))) = self.queue.send(Outgoing::Call(Box::new(queued))) {
            self.in_hand.lock().unsent.remove(&call);
            let failure = Failure::HostFailed("the calls to the driver's node have stopped".into());
            (*queued).complete(Err(failure));
        }
        id
    }

    /// Kills `actor`, which the driver's node keeps, from an import (which
    /// is not async).
    fn kill(&self, actor: ObjectId, no_restart: bool) -> Result<(), Failure> {
        let asked = block_on(ask(&self.client, &self.subject, &CallerRequest::Kill(actor, no_restart)));
        match asked.map_err(not_asked)? {
            Asked::Answer(answer) => answer,
            Asked::Gone => Err(not_asked("it is gone".into())),
        }
    }

    /// Asks the driver's node to make an actor; its id, once made. Waits
    /// for as long as that node is there (asked every [`OWNER_CHECK`]) and
    /// has not been silent for [`ASK_TIMEOUT`]: it pulls the constructor's
    /// arguments first, which a slow link makes long, and an answer given
    /// up on would leave an actor no one holds.
    async fn creating(&self, create: ActorCreate) -> Result<ObjectId, Failure> {
        let request = async_nats::Request::new().payload(encode(&CallerRequest::Create(create)).into()).timeout(None);
        let asking = self.client.send_request(self.subject.clone(), request);
        tokio::pin!(asking);
        let mut check = tokio::time::interval_at(tokio::time::Instant::now() + OWNER_CHECK, OWNER_CHECK);
        let mut heard = tokio::time::Instant::now();
        loop {
            tokio::select! {
                answered = &mut asking => {
                    let message = answered.map_err(|e| match e.kind() {
                        async_nats::RequestErrorKind::NoResponders => not_asked("it is gone".into()),
                        _ => not_asked(e.to_string()),
                    })?;
                    return rmp_serde::from_slice(&message.payload).map_err(|e| not_asked(e.to_string()))?;
                }
                _ = check.tick() => match presence(&self.client, &self.subject, OWNER_CHECK).await {
                    Presence::Here => heard = tokio::time::Instant::now(),
                    Presence::Gone => return Err(not_asked("it is gone".into())),
                    Presence::Silent if heard.elapsed() >= ASK_TIMEOUT => {
                        return Err(not_asked(format!("silent for {ASK_TIMEOUT:?} (cut off, or stuck)")));
                    }
                    Presence::Silent => {}
                },
            }
        }
    }
}

/// Why the driver's node could not be asked.
fn not_asked(why: String) -> Failure {
    Failure::HostFailed(format!("the driver's node cannot be asked: {why}"))
}

/// The request that sends `call`, whose arguments `args` describe, if it
/// is still to be sent: it waits for its answer from now on. A call
/// cancelled while it waited is not sent (its result failed then), nor is
/// one whose arguments failed (its result fails now).
fn send_now(
    in_hand: &Mutex<InHand>,
    call: Queued,
    args: Result<Vec<CallArg>, Failure>,
    here: &str,
) -> Option<CallerRequest> {
    let mut hand = in_hand.lock();
    if !hand.unsent.remove(&call.call) {
        return None;
    }
    let args = match args {
        Ok(args) => args,
        Err(failure) => {
            drop(hand);
            call.complete(Err(failure));
            return None;
        }
    };
    let origin = here.to_string();
    let request = match &call.what {
        Work::Method { actor, method, generator } => CallerRequest::Call(ActorCall {
            call: call.call,
            caller: call.caller.to_string(),
            actor: *actor,
            method: method.clone(),
            args,
            generator: *generator,
            origin,
        }),
        Work::Task { job, function, options, generator } => CallerRequest::Remote(TaskCall {
            call: call.call,
            job: *job,
            function: function.clone(),
            args,
            options: options.clone(),
            generator: *generator,
            origin,
        }),
    };
    // A cancel from now on goes out after this request does.
    hand.waiting.insert(call.call, call);
    Some(request)
}

/// Runs `work` to its end from an import, which is not async (the runtime
/// has other threads).
fn block_on<T>(work: impl Future<Output = T>) -> T {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(work))
}

/// What a driver's node said to a request.
enum Asked<T> {
    /// Its answer.
    Answer(Result<T, Failure>),
    /// No one takes its subject: NATS saw its connection close.
    Gone,
}

/// Asks the driver's node whose caller subject is `subject`, and waits
/// [`ASK_TIMEOUT`] at most for its answer.
async fn ask<T: serde::de::DeserializeOwned>(
    client: &async_nats::Client,
    subject: &str,
    request: &CallerRequest,
) -> Result<Asked<T>, String> {
    let asking = client.request(subject.to_string(), encode(request).into());
    let silent = |_| format!("no answer from `{subject}` within {ASK_TIMEOUT:?} (cut off, or stuck)");
    match tokio::time::timeout(ASK_TIMEOUT, asking).await.map_err(silent)? {
        Ok(message) => rmp_serde::from_slice(&message.payload).map(Asked::Answer).map_err(|e| e.to_string()),
        Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => Ok(Asked::Gone),
        Err(e) => Err(e.to_string()),
    }
}

/// Whether a driver's node is there, as asking it says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Presence {
    /// It answered.
    Here,
    /// No one takes its subject: NATS saw its connection close (a driver
    /// killed, or ended).
    Gone,
    /// It did not answer in time: cut off, or very busy.
    Silent,
}

/// Asks the driver's node whose caller subject is `subject` whether it is
/// there, waiting `wait` at most.
pub(crate) async fn presence(client: &async_nats::Client, subject: &str, wait: Duration) -> Presence {
    let ask = async_nats::Request::new().timeout(Some(wait));
    match client.send_request(alive_subject(subject), ask).await {
        Ok(_) => Presence::Here,
        Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => Presence::Gone,
        Err(_) => Presence::Silent,
    }
}

/// The objects `args` name, as the driver's node pulls them, once ready.
async fn describe_args(store: &ObjectStore, args: &[TaskArg]) -> Result<Vec<CallArg>, Failure> {
    let mut described = Vec::with_capacity(args.len());
    for arg in args {
        let ready = async |id: ObjectId| match store.get(&id, None).await {
            Ok(object) => Ok(crate::held(id, &object)),
            Err(GetError::Failed(failure)) => Err((*failure).clone()),
            Err(GetError::Timeout) => unreachable!("no deadline was given"),
        };
        described.push(match arg {
            TaskArg::Object(id) => CallArg::Ref(ready(*id).await?),
            TaskArg::Value(bytes) => {
                let mut nested = Vec::new();
                for id in nested_refs(bytes) {
                    nested.push(ready(id).await?);
                }
                CallArg::Value(bytes.clone(), nested)
            }
        });
    }
    Ok(described)
}

/// A call's value from the driver's node at `driver` (or from the node
/// that keeps it), with what it nests pulled here (held until the caller
/// stores the value, then given back).
async fn receive(driver: &str, store: &Arc<ObjectStore>, value: CallValue) -> Result<(Vec<u8>, Holdings), Failure> {
    let failed = |e: transfer::PullError| Failure::HostFailed(e.to_string());
    let mut held = Holdings::new(store);
    for object in value.nested {
        transfer::pull(driver, store, object).await.map_err(failed)?;
        held.adopt(object.id);
    }
    let bytes = match (value.value, value.at) {
        (Value::Stored(object), Some((third, id))) => {
            if let Err(e) = transfer::pull(&third, store, object).await {
                tracing::warn!(error = %e, "pulling a value through the driver's node instead");
                transfer::pull_as(driver, store, object.id, Held { id, ..object }).await.map_err(failed)?;
            }
            transfer::take(store, object.id, Some(&mut held))?
        }
        (value, _) => transfer::value_bytes(driver, store, value).await.map_err(failed)?,
    };
    Ok((bytes, held))
}

/// A job's [`ActorsElsewhere`] in a cluster: the named actors of every
/// driver, found in [`NAMES_BUCKET`](crate::protocol::NAMES_BUCKET) and called through a [`Forwarder`] to the
/// driver that keeps each. A driver's job claims there the names its own
/// actors take, so that no other driver takes them too; a job run on a
/// node for a driver elsewhere calls that driver's actors, named or not.
pub struct Directory {
    client: async_nats::Client,
    names: kv::Store,
    store: Arc<ObjectStore>,
    /// This node's transfer server.
    here: String,
    /// Whose job it is.
    home: Home,
    /// The revision of each name claimed here: freeing it deletes only that
    /// one, not a later claim of the same name.
    claimed: Mutex<HashMap<String, u64>>,
    /// Forwarders, by the caller subject of the driver they go to.
    owners: Mutex<HashMap<String, Arc<Forwarder>>>,
    /// Where each actor found so far is called.
    routes: Mutex<HashMap<ObjectId, Arc<Forwarder>>>,
}

/// Whose job a [`Directory`] finds actors for.
enum Home {
    /// A driver's, on its own node, which takes calls of its actors on
    /// this caller subject.
    Driver(String),
    /// A driver's elsewhere, to which this forwards the calls of its
    /// actors (every actor not found by name is one of them).
    Node(Arc<Forwarder>),
}

impl Directory {
    /// Finds actors for a driver's job on `store`, whose node takes calls
    /// on `caller` and serves transfers at `here`.
    pub fn new(cluster: &Cluster, store: Arc<ObjectStore>, caller: String, here: String) -> Directory {
        Directory::with(cluster, store, here, Home::Driver(caller), HashMap::new())
    }

    /// Finds actors for a job on `store` (on a node serving transfers at
    /// `here`) run for the driver that `driver` forwards to.
    pub fn on_node(cluster: &Cluster, store: Arc<ObjectStore>, here: String, driver: Arc<Forwarder>) -> Directory {
        // Its driver's actors, found by name or not, take one road: each
        // caller's calls stay in order.
        let owners = HashMap::from([(driver.subject.clone(), driver.clone())]);
        Directory::with(cluster, store, here, Home::Node(driver), owners)
    }

    fn with(
        cluster: &Cluster,
        store: Arc<ObjectStore>,
        here: String,
        home: Home,
        owners: HashMap<String, Arc<Forwarder>>,
    ) -> Directory {
        Directory {
            client: cluster.client.clone(),
            names: cluster.names.clone(),
            store,
            here,
            home,
            claimed: Mutex::default(),
            owners: Mutex::new(owners),
            routes: Mutex::default(),
        }
    }

    fn route(&self, actor: &ObjectId) -> Result<Arc<Forwarder>, Failure> {
        let route = self.routes.lock().get(actor).cloned();
        match (route, &self.home) {
            (Some(forwarder), _) => Ok(forwarder),
            (None, Home::Node(driver)) => Ok(driver.clone()),
            (None, Home::Driver(_)) => {
                Err(Failure::NotFound(format!("no actor `{actor}` here, or named by another driver")))
            }
        }
    }

    /// The actor `entry` names, if its driver still keeps it alive under
    /// `name`: `None` if not, and then the entry is deleted (a driver that
    /// ended, or was killed, leaves its names behind).
    async fn live(&self, name: &str, entry: &kv::Entry) -> Result<Option<Named>, String> {
        if entry.operation != kv::Operation::Put {
            return Ok(None);
        }
        let named: Named = rmp_serde::from_slice(&entry.value).map_err(|e| e.to_string())?;
        let alive = match ask::<ObjectId>(&self.client, &named.caller, &CallerRequest::ByName(name.into())).await? {
            Asked::Answer(Ok(actor)) => actor == named.actor,
            Asked::Answer(Err(_)) | Asked::Gone => false,
        };
        if alive {
            return Ok(Some(named));
        }
        let _ = self.names.delete_expect_revision(&entry.key, Some(entry.revision)).await;
        Ok(None)
    }
}

impl ActorsElsewhere for Directory {
    fn call(
        &self,
        node: &Arc<Node>,
        caller: u64,
        actor: ObjectId,
        method: String,
        args: Vec<TaskArg>,
        generator: bool,
    ) -> ObjectId {
        match self.route(&actor) {
            Ok(forwarder) => forwarder.send(node, caller, Work::Method { actor, method, generator }, args),
            Err(failure) => {
                let result = Reply::new(node, generator);
                result.complete(node, Err(failure), None);
                result.id()
            }
        }
    }

    fn kill(&self, actor: ObjectId, no_restart: bool) -> Result<(), Failure> {
        self.route(&actor)?.kill(actor, no_restart)
    }

    fn by_name(&self, name: &str) -> Result<ObjectId, Failure> {
        let missing = || Failure::NotFound(format!("no live actor named `{name}` here or on another driver"));
        let failed = |e: String| Failure::HostFailed(format!("cannot look up the name `{name}` in the cluster: {e}"));
        block_on(async {
            let entry = self.names.entry(name_key(name)).await.map_err(|e| failed(e.to_string()))?;
            let Some(entry) = entry else { return Err(missing()) };
            let Some(named) = self.live(name, &entry).await.map_err(failed)? else { return Err(missing()) };
            let known = self.owners.lock().get(&named.caller).cloned();
            let forwarder = match known {
                Some(forwarder) => forwarder,
                None => {
                    let (client, store) = (self.client.clone(), self.store.clone());
                    let started =
                        Forwarder::start(client, named.caller.clone(), store, self.here.clone(), named.transfer);
                    let forwarder = started.await.map_err(|e| failed(e.to_string()))?;
                    self.owners.lock().entry(named.caller).or_insert(forwarder).clone()
                }
            };
            self.routes.lock().insert(named.actor, forwarder);
            Ok(named.actor)
        })
    }

    fn claim_name(&self, name: &str, actor: ObjectId) -> Result<bool, Failure> {
        let failed = |e: String| Failure::HostFailed(format!("cannot claim the name `{name}` in the cluster: {e}"));
        // A job on a node makes its actors through its driver
        // (`TasksElsewhere::create_actor`), which claims their names.
        let Home::Driver(caller) = &self.home else {
            return Err(failed("a job run for a driver elsewhere makes its actors there".into()));
        };
        let key = name_key(name);
        let named: bytes::Bytes = encode(&Named { actor, caller: caller.clone(), transfer: self.here.clone() }).into();
        block_on(async {
            // Two drivers racing for a name: one create (or update of the
            // same revision) wins; the loser finds the winner alive.
            for _ in 0..CLAIM_TRIES {
                let revision = match self.names.create(&key, named.clone()).await {
                    Ok(revision) => revision,
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                        let Some(entry) = self.names.entry(&key).await.map_err(|e| failed(e.to_string()))? else {
                            continue;
                        };
                        if self.live(name, &entry).await.map_err(failed)?.is_some() {
                            return Ok(false);
                        }
                        match self.names.update(&key, named.clone(), entry.revision).await {
                            Ok(revision) => revision,
                            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
                            Err(e) => return Err(failed(e.to_string())),
                        }
                    }
                    Err(e) => return Err(failed(e.to_string())),
                };
                self.claimed.lock().insert(name.to_string(), revision);
                return Ok(true);
            }
            Ok(false)
        })
    }

    fn free_name(&self, name: &str) {
        let Some(revision) = self.claimed.lock().remove(name) else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (names, key) = (self.names.clone(), name_key(name));
        runtime.spawn(async move {
            let _ = names.delete_expect_revision(key, Some(revision)).await;
        });
    }
}
