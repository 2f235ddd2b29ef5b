//! The caller's side: an [`Executor`] that runs each task on a node of the
//! cluster, chosen as Ray's scheduler would choose it: the node holding the
//! most bytes of its large arguments, else the least loaded one that has
//! the cpus. Actors and the driver stay on the caller's own node.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_nats::SubscribeError;
use futures::StreamExt as _;
use parking_lot::Mutex;
use prism_node::{Job, Node};
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use prism_exec::{
    ActorInstance, Calls, DriverExit, Executor, Fetch, Input, InstanceLimits, LoadError, Outcome, Output, Placement,
    ProgramInfo, Run, Stream, Trapped, Value,
};
use prism_store::{Demand, Failure, Holdings, IdMap, ObjectId, ObjectStore, Whereabouts, nested_refs};

use crate::callers::{Directory, Jobs};
use crate::direct::{Answers, Sessions, Unanswered};
use crate::membership::{Cluster, DEAD_AFTER, Members};
use crate::protocol::{
    self, ActorRequest, ActorStarted, Answer, Arg, Held, NodeInfo, OutputChunk, Printed, Release, Request, TaskReply,
    TaskRequest, caller_subject, output_subject, release_subject,
};
use crate::transfer::{self, Components};

/// How many nodes lost while starting an actor's instance there are
/// tried past, before the start fails.
const START_TRIES: u32 = 3;

/// Arguments at least this large pull a task to the node holding them.
const LOCALITY_MIN: u64 = 1 << 20;

/// Runs tasks, and actors' instances, on the cluster's nodes; drivers on
/// `local`.
pub struct Dispatcher {
    local: Arc<dyn Executor>,
    link: Arc<Link>,
}

/// What the dispatcher and the actor instances it placed share: the
/// connection, what is known of the nodes, and where results come back.
struct Link {
    cluster: Cluster,
    members: Members,
    /// Where the nodes running its tasks pull from: this node's transfer
    /// server.
    origin: String,
    components: Arc<Components>,
    names: Mutex<HashMap<[u8; 32], String>>,
    /// The connections tasks go to nodes on.
    sessions: Sessions,
    /// The jobs it serves, for the tasks their tasks start.
    jobs: Jobs,
    /// Requests sent to each node and not yet answered.
    in_flight: Mutex<HashMap<String, u32>>,
    /// The nodes known to hold a copy of a large object, by its hash.
    copies: Mutex<IdMap<Vec<String>>>,
    /// The objects sent to a node for a job, let go of there once gone
    /// here: by node, job and id.
    sent: Mutex<HashSet<(String, u64, ObjectId)>>,
    /// What lets go of them: objects to release, by node and job, sent in
    /// order; a flush marker is answered once all before it are sent.
    releases: tokio::sync::mpsc::UnboundedSender<Releasing>,
    /// Nodes found not serving (no one took a request sent to them), and
    /// when: left out of placement until the failure detector decides.
    absent: Mutex<HashMap<String, Instant>>,
    /// Where its tasks' output goes: the subject, and each job's output.
    output: String,
    outputs: Arc<Mutex<HashMap<u64, Output>>>,
    /// How far each output stream has been printed ([`Printed`]).
    printed: Arc<Printing>,
    /// Where its tasks' calls of its actors come.
    callers: String,
}

impl Dispatcher {
    /// Sends tasks to the nodes `members` lists; the nodes pull from
    /// `origin`, where `components` are offered.
    pub async fn new(
        local: Arc<dyn Executor>,
        cluster: Cluster,
        members: Members,
        origin: String,
        components: Arc<Components>,
    ) -> Result<Self, SubscribeError> {
        let me = format!("{:016x}", rand::random::<u64>());
        let output = output_subject(&me);
        let mut chunks = cluster.client.subscribe(output.clone()).await?;
        let outputs: Arc<Mutex<HashMap<u64, Output>>> = Arc::default();
        let printed: Arc<Printing> = Arc::default();
        let (routes, marks) = (Arc::downgrade(&outputs), printed.clone());
        tokio::spawn(async move {
            while let Some(message) = chunks.next().await {
                let Some(routes) = routes.upgrade() else { return };
                let Ok(chunk) = rmp_serde::from_slice::<OutputChunk>(&message.payload) else { continue };
                let stream = if chunk.stderr { Stream::Stderr } else { Stream::Stdout };
                if let Some(output) = routes.lock().get(&chunk.job) {
                    output.emit(stream, &chunk.bytes);
                }
                marks.printed(chunk.stream, chunk.seq);
            }
        });
        let releases = release_in_order(cluster.client.clone(), origin.clone());
        let link = Link {
            cluster,
            members,
            origin,
            components,
            names: Mutex::default(),
            sessions: Sessions::default(),
            jobs: Jobs::default(),
            in_flight: Mutex::default(),
            copies: Mutex::default(),
            sent: Mutex::default(),
            releases,
            absent: Mutex::default(),
            output,
            outputs,
            printed,
            callers: caller_subject(&me),
        };
        Ok(Dispatcher { local, link: Arc::new(link) })
    }

    /// Returns once the nodes have been told to let go of everything this
    /// driver let go of so far: what a driver that ends waits for.
    pub async fn settle(&self) {
        let (done, sent) = tokio::sync::oneshot::channel();
        if self.link.releases.send(Releasing::Flush(done)).is_ok() {
            let _ = sent.await;
        }
    }

    /// Answers the nodes running `node`'s tasks when those call `node`'s
    /// actors; `node` is the one this dispatcher is the executor of.
    pub fn answer_callers(&self, node: Arc<Node>) -> impl Future<Output = Result<(), SubscribeError>> + use<> {
        let (client, subject) = (self.link.cluster.client.clone(), self.link.callers.clone());
        crate::callers::answer_callers(client, subject, node, self.link.jobs.clone())
    }

    /// Serves `job`, a driver's job on `node`: it finds other drivers'
    /// named actors through the cluster, and the tasks its tasks start on
    /// nodes come back here to be scheduled.
    pub fn serve_job(&self, node: &Node, job: &Arc<Job>) {
        let mut jobs = self.link.jobs.lock();
        // The jobs that ended go as a new one comes: a driver serving many
        // keeps only the live ones.
        jobs.retain(|_, job| job.strong_count() > 0);
        jobs.insert(job.id, Arc::downgrade(job));
        drop(jobs);
        let (caller, here) = (self.link.callers.clone(), self.link.origin.clone());
        job.set_actors_elsewhere(Arc::new(Directory::new(&self.link.cluster, node.store.clone(), caller, here)));
    }
}

impl Link {
    /// The node to run `request` on: one alive with the cpus and resources
    /// it asks for, the one it names if any, else the one holding most of
    /// its large arguments, else the least loaded.
    fn place(&self, request: &TaskRequest) -> Result<NodeInfo, Trapped> {
        let nodes: Vec<NodeInfo> = {
            let mut absent = self.absent.lock();
            absent.retain(|_, since| since.elapsed() < DEAD_AFTER);
            self.members.alive().into_iter().filter(|n| !absent.contains_key(&n.id)).collect()
        };
        let (num_cpus, placement) = (request.num_cpus, &request.placement);
        // Trapped messages follow "task `function`".
        let refuse = |message: String| Err(Trapped { message, limit: true });
        if nodes.is_empty() {
            return refuse(
                "cannot run: no node of the cluster is alive (start one with `prism node --cluster URL`)".into(),
            );
        }
        for (name, amount) in &placement.resources {
            if let Err(unmet) = prism_node::resources::valid(name, *amount) {
                return refuse(unmet.to_string());
            }
        }
        let mut fit: Vec<&NodeInfo> = nodes.iter().filter(|n| can_run(n, num_cpus, placement)).collect();
        if let Some(affinity) = &placement.node {
            let pinned: Vec<&NodeInfo> = fit.iter().copied().filter(|n| n.id == affinity.node).collect();
            if !pinned.is_empty() {
                fit = pinned;
            } else if !affinity.soft {
                let why = match nodes.iter().any(|n| n.id == affinity.node) {
                    true => "which has too few cpus or resources for it",
                    false => "which is not alive",
                };
                return refuse(format!("must run on node {} (node affinity), {why}", affinity.node));
            }
        }
        if fit.is_empty() {
            let has = nodes.iter().map(describe_node).collect::<Vec<_>>().join("; ");
            return refuse(format!("asks for {} but no live node has that much ({has})", asks(num_cpus, placement)));
        }
        let copies = self.copies.lock();
        let mut local_bytes: HashMap<&str, u64> = HashMap::new();
        for held in request.args.iter().filter_map(large) {
            for node in copies.get(&held.hash).into_iter().flatten() {
                *local_bytes.entry(node).or_default() += held.len;
            }
        }
        let in_flight = self.in_flight.lock();
        let load = |n: &NodeInfo| in_flight.get(&n.id).copied().unwrap_or(0) as f64 / n.cpus as f64;
        // Shuffled first, so that ties go to any of them.
        rand::seq::SliceRandom::shuffle(fit.as_mut_slice(), &mut rand::rng());
        let best = fit.iter().copied().max_by(|a, b| {
            let bytes = |n: &NodeInfo| local_bytes.get(n.id.as_str()).copied().filter(|b| *b >= LOCALITY_MIN);
            bytes(a).cmp(&bytes(b)).then(load(b).total_cmp(&load(a)))
        });
        Ok(best.expect("fit is not empty").clone())
    }

    /// Records that `node` holds the large arguments it was sent and the
    /// large value it left there.
    fn record_copies(&self, node: &str, args: &[Arg], value: &protocol::Value) {
        let stored = match value {
            protocol::Value::Stored(held) => Some(held),
            protocol::Value::Inline(_) => None,
        };
        let large = args.iter().filter_map(large);
        let mut copies = self.copies.lock();
        for held in large.chain(stored) {
            let nodes = copies.entry(held.hash).or_default();
            if !nodes.iter().any(|n| n == node) {
                nodes.push(node.to_string());
            }
        }
    }

    /// Where object `id` of `store` is, if it is kept on a node still
    /// thought alive and not fetched here.
    fn elsewhere(&self, store: &ObjectStore, id: ObjectId) -> Option<At> {
        let at = store.whereabouts(&id)?.downcast::<At>().ok()?;
        let alive = self.members.alive().iter().any(|n| n.id == at.node.id);
        (alive && !self.absent.lock().contains_key(&at.node.id))
            .then(|| At { node: at.node.clone(), object: at.object })
    }

    /// `node` could not pull argument `id` from the node keeping it, which
    /// is then left out until the failure detector decides.
    fn unpulled(&self, store: &ObjectStore, node: &NodeInfo, id: ObjectId, why: &str) {
        tracing::warn!(node = %node.id, %id, why, "a node could not pull an argument from the node keeping it");
        if let Some(at) = store.whereabouts(&id).and_then(|w| w.downcast::<At>().ok()) {
            self.absent.lock().insert(at.node.id.clone(), Instant::now());
        }
    }

    /// Item `item` (an encoded [`Held`]) that a generator of `calls`, on
    /// `node` for `job`, yielded: left there, known here as an object
    /// elsewhere, and put in the stream; let go of there once gone here.
    fn yielded(self: &Arc<Self>, calls: &dyn Calls, node: &NodeInfo, job: u64, item: &[u8]) {
        let Ok(object) = rmp_serde::from_slice::<Held>(item) else {
            return tracing::warn!(node = %node.id, "a malformed generator item");
        };
        let store = calls.store();
        let at: Whereabouts = Arc::new(At { node: node.clone(), object });
        store.expect(object.id, nested_demand(store, node, object), Some(at));
        let kept = self.kept(&node.id, job, object);
        store.when_gone(object.id, Box::new(move || drop(kept)));
        // The stream takes its own reference (none if an earlier attempt
        // yielded this item already).
        if let Err(failure) = calls.yield_item(object.id, true) {
            tracing::warn!(%failure, "cannot add a generator's item");
        }
        store.release(&object.id);
    }

    /// The task's arguments as another node pulls them.
    async fn args(&self, store: &ObjectStore, args: &[Input]) -> Result<Vec<Arg>, Trapped> {
        let mut described = Vec::with_capacity(args.len());
        for input in args {
            described.push(match input {
                Input::Bytes(bytes) => {
                    let mut nested = Vec::new();
                    for id in nested_refs(bytes) {
                        nested.push(describe(store, id).await?);
                    }
                    Arg::Value(bytes.clone(), nested)
                }
                Input::Large { id, .. } => Arg::Large(describe(store, *id).await?),
                Input::Elsewhere(id) => match self.elsewhere(store, *id) {
                    Some(At { node, object }) => Arg::Elsewhere { id: *id, object, from: node.transfer },
                    // Its node is gone: fetched here first (rebuilt if lost).
                    None => Arg::Large(describe(store, *id).await?),
                },
            });
        }
        Ok(described)
    }

    /// The request for `function` of `run`'s component with `args`: what
    /// the node needs to run it (the run's slot is given back: the cpus
    /// that count are the node's).
    async fn request(
        &self,
        run: Run,
        function: &str,
        args: &[Input],
    ) -> Result<(TaskRequest, Arc<dyn Calls>), Trapped> {
        let Run { calls, slot, job, program, num_cpus, output, placement, .. } = run;
        drop(slot);
        self.outputs.lock().entry(job).or_insert(output);
        let name = self.names.lock().get(&program).cloned().unwrap_or_default();
        let (args, globals) = (self.args(calls.store(), args).await?, globals(calls.as_ref()).await?);
        let request = TaskRequest {
            origin: self.origin.clone(),
            job,
            component: program,
            name,
            function: function.to_string(),
            args,
            num_cpus,
            placement,
            globals,
            output: self.output.clone(),
            caller: self.callers.clone(),
        };
        Ok((request, calls))
    }

    /// Sends `message` to a node chosen for `request` and waits for the
    /// answer, or for that node to die; returns the node and its answer. A
    /// node that cannot be reached (it just died) never saw it: it goes to
    /// another at once, which costs the call no retry.
    async fn place_and_ask<R: DeserializeOwned>(
        &self,
        request: &TaskRequest,
        message: &Request,
        calls: &dyn Calls,
        items: Option<&mut Items<'_>>,
    ) -> Result<(NodeInfo, R), Trapped> {
        let payload = rmp_serde::to_vec(message).expect("requests encode");
        let mut items = items;
        loop {
            let node = self.place(request)?;
            match self.ask(&node, &payload, calls, items.as_deref_mut()).await {
                Err(Sent::NotServing) => {
                    tracing::debug!(node = %node.id, "the node cannot be reached: placing elsewhere");
                    self.absent.lock().insert(node.id.clone(), Instant::now());
                }
                Err(Sent::Failed(trapped)) => return Err(trapped),
                Ok(reply) => return Ok((node, reply)),
            }
        }
    }

    /// Sends the encoded request `payload` of `calls` to `node` and waits
    /// for its answer, or for `node` to die; a generator's items go to
    /// `items` as they come, before it. Dropped first, it cancels the
    /// request there.
    async fn ask<R: DeserializeOwned>(
        &self,
        node: &NodeInfo,
        payload: &[u8],
        calls: &dyn Calls,
        mut items: Option<&mut Items<'_>>,
    ) -> Result<R, Sent> {
        let lost = |why: String| Sent::Failed(Trapped { message: format!("node {} {why}", node.id), limit: false });
        *self.in_flight.lock().entry(node.id.clone()).or_default() += 1;
        let answered = async {
            let answers = self.sessions.ask(&node.transfer, payload).await?;
            let mut answers = Cancelling { answers, calls };
            loop {
                match answers.answers.next().await? {
                    (true, item) => {
                        if let Some(items) = items.as_deref_mut() {
                            items(node, item);
                        }
                    }
                    (false, answer) => return Ok(answer),
                }
            }
        };
        let answer = tokio::select! {
            answer = answered => answer,
            () = self.members.lost(&node.id) => Err(Unanswered::Lost),
        };
        if let Some(n) = self.in_flight.lock().get_mut(&node.id) {
            *n = n.saturating_sub(1);
        }
        let answer = answer.map_err(|e| match e {
            Unanswered::NotServing(why) => {
                tracing::debug!(node = %node.id, %why, "cannot reach a node");
                Sent::NotServing
            }
            Unanswered::Lost => lost("died while running it".into()),
        })?;
        rmp_serde::from_slice(&answer).map_err(|e| lost(format!("sent a malformed answer: {e}")))
    }

    /// What lets go of `object`, which `node` keeps for `job`, when dropped.
    fn kept(self: &Arc<Self>, node: &str, job: u64, object: Held) -> Kept {
        Kept { link: self.clone(), node: node.to_string(), job, object }
    }

    /// Tells `node` to let go of `object`, kept there for `job`.
    fn let_go(&self, node: &str, job: u64, object: Held) {
        if let Some(nodes) = self.copies.lock().get_mut(&object.hash) {
            nodes.retain(|n| n != node);
        }
        self.sent.lock().remove(&(node.to_string(), job, object.id));
        let _ = self.releases.send(Releasing::Object(node.to_string(), job, object.id));
    }

    /// Has `node` let go of the objects `request` sent it once they are
    /// gone here (from `store`).
    fn note_sent(self: &Arc<Self>, store: &ObjectStore, node: &str, request: &TaskRequest) {
        // Borrowed, not collected: most tasks send no object at all.
        let sent = request.args.iter().flat_map(|arg| {
            let (nested, one): (&[Held], _) = match arg {
                Arg::Value(_, nested) => (nested, None),
                Arg::Large(held) => (&[], Some(*held)),
                // Kept there under this node's name for it.
                Arg::Elsewhere { id, object, .. } => (&[], Some(Held { id: *id, ..*object })),
            };
            nested.iter().copied().chain(one)
        });
        for object in sent {
            if self.sent.lock().insert((node.to_string(), request.job, object.id)) {
                let kept = self.kept(node, request.job, object);
                store.when_gone(object.id, Box::new(move || drop(kept)));
            }
        }
    }

    /// The outcome `reply` from `node` says, for `request`. The objects its
    /// value nests stay there, known to `store` (held by `keep`) and
    /// fetched when first read; the value itself, if the node kept it, is
    /// the caller's to fetch. What the node keeps is let go of there once
    /// it is gone here.
    fn receive(
        self: &Arc<Self>,
        node: &NodeInfo,
        store: &Arc<ObjectStore>,
        request: &TaskRequest,
        reply: TaskReply,
        keep: &mut Holdings,
    ) -> Outcome<protocol::Value> {
        let (value, nested) = match reply {
            TaskReply::Returned(value, nested) => (value, nested),
            TaskReply::Ended(Ok(refused)) => return Ok(Err(refused)),
            TaskReply::Ended(Err(trapped)) => return Err(trapped),
            TaskReply::Refused(why) => {
                return Err(Trapped { message: format!("node {} could not run it: {why}", node.id), limit: false });
            }
            TaskReply::Unpulled(id, why) => {
                let message = format!("node {} could not pull its argument `{id}`: {why}", node.id);
                return Err(Trapped { message, limit: false });
            }
        };
        self.record_copies(&node.id, &request.args, &value);
        self.note_sent(store, &node.id, request);
        for object in nested {
            let at: Whereabouts = Arc::new(At { node: node.clone(), object });
            store.expect(object.id, nested_demand(store, node, object), Some(at));
            let kept = self.kept(&node.id, request.job, object);
            store.when_gone(object.id, Box::new(move || drop(kept)));
            keep.adopt(object.id);
        }
        Ok(Ok(value))
    }
}

/// A request's answers: dropped before the last one, they cancel the
/// request there, as recursively as the call waiting for them was.
struct Cancelling<'a> {
    answers: Answers,
    calls: &'a dyn Calls,
}

impl Drop for Cancelling<'_> {
    fn drop(&mut self) {
        self.answers.cancel(self.calls.cancelled() == Some(true));
    }
}

/// What fetches `object`, which a task on `node` made and its value nests,
/// when it is first read: it has no lineage here, so if `node` is gone it
/// is lost.
fn nested_demand(store: &Arc<ObjectStore>, node: &NodeInfo, object: Held) -> Demand {
    let (store, node, handle) = (Arc::downgrade(store), node.clone(), tokio::runtime::Handle::current());
    Box::new(move || {
        drop(handle.spawn(async move {
            let Some(store) = store.upgrade() else { return };
            if let Err(e) = transfer::fetch(&node.transfer, &store, object.id, object).await {
                let message = format!(
                    "object `{}` was only on node {}, where a task made it, and cannot be fetched ({e}): \
                     it cannot be rebuilt",
                    object.id, node.id
                );
                store.complete(object.id, Err(Failure::ObjectLost(message)), None);
            }
        }))
    })
}

/// What the releasing task is asked.
enum Releasing {
    /// Tell the node to let go of the object kept there for the job.
    Object(String, u64, ObjectId),
    /// Answer once everything before is sent.
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Starts the task that tells nodes which objects to let go of, in order,
/// grouping those queued together by node and job.
fn release_in_order(client: async_nats::Client, origin: String) -> tokio::sync::mpsc::UnboundedSender<Releasing> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut queued = Vec::new();
        while rx.recv_many(&mut queued, 1024).await > 0 {
            let mut batches: HashMap<(String, u64), Vec<ObjectId>> = HashMap::new();
            for releasing in queued.drain(..) {
                match releasing {
                    Releasing::Object(node, job, id) => batches.entry((node, job)).or_default().push(id),
                    Releasing::Flush(done) => {
                        send_releases(&client, &origin, std::mem::take(&mut batches)).await;
                        let _ = client.flush().await;
                        let _ = done.send(());
                    }
                }
            }
            send_releases(&client, &origin, batches).await;
        }
    });
    tx
}

async fn send_releases(client: &async_nats::Client, origin: &str, batches: HashMap<(String, u64), Vec<ObjectId>>) {
    for ((node, job), objects) in batches {
        let release = Release { origin: origin.to_string(), job, objects };
        let payload = rmp_serde::to_vec(&release).expect("releases encode");
        if let Err(e) = client.publish(release_subject(&node), payload.into()).await {
            tracing::debug!(error = %e, %node, "cannot tell a node to let go of objects");
        }
    }
}

/// An object a node keeps for a job of this driver's: let go of there when
/// dropped, as Ray frees an object everywhere once no one holds it.
struct Kept {
    link: Arc<Link>,
    node: String,
    job: u64,
    object: Held,
}

impl Drop for Kept {
    fn drop(&mut self) {
        self.link.let_go(&self.node, self.job, self.object);
    }
}

/// A task's value left on the node that ran it: let go of there when it is
/// gone here, or never fetched.
struct Left {
    node: NodeInfo,
    object: Held,
    kept: Mutex<Option<Kept>>,
}

#[async_trait::async_trait]
impl Fetch for Left {
    async fn fetch(&self, store: &Arc<ObjectStore>, id: ObjectId) -> Result<(), String> {
        transfer::fetch(&self.node.transfer, store, id, self.object)
            .await
            .map_err(|e| format!("node {} kept it: {e}", self.node.id))?;
        if let Some(kept) = self.kept.lock().take() {
            store.when_gone(id, Box::new(move || drop(kept)));
        }
        Ok(())
    }

    fn whereabouts(&self) -> Option<Whereabouts> {
        Some(Arc::new(At { node: self.node.clone(), object: self.object }))
    }
}

/// Where an object kept on a node is: its whereabouts in the driver's
/// store, read to have another node pull it from there.
pub(crate) struct At {
    pub(crate) node: NodeInfo,
    pub(crate) object: Held,
}

#[async_trait::async_trait]
impl Executor for Dispatcher {
    async fn load(
        &self,
        cache_dir: &Path,
        namespace: u64,
        limits: InstanceLimits,
        name: &str,
        hash: [u8; 32],
        wasm: &[u8],
    ) -> Result<ProgramInfo, LoadError> {
        let program = self.local.load(cache_dir, namespace, limits, name, hash, wasm).await?;
        self.link.components.offer(hash, Arc::new(wasm.to_vec()));
        self.link.names.lock().insert(hash, name.to_string());
        Ok(program)
    }

    async fn run_task(&self, run: Run, function: &str, args: &[Input], keep: &mut Holdings) -> Outcome<Value> {
        let generates = run.calls.generates();
        let (request, calls) = self.link.request(run, function, args).await?;
        let job = request.job;
        let mut message = if generates { Request::Generator(request) } else { Request::Task(request) };
        // A generator's items come as it yields them, left on its node.
        let mut yielded = |node: &NodeInfo, item: bytes::Bytes| self.link.yielded(calls.as_ref(), node, job, &item);
        let (node, printed, reply) = loop {
            let items = generates.then_some(&mut yielded as &mut Items);
            let (node, (printed, reply)) =
                self.link.place_and_ask::<Answer>(task(&message), &message, calls.as_ref(), items).await?;
            let TaskReply::Unpulled(id, why) = reply else { break (node, printed, reply) };
            // The node keeping an argument is gone, or going: this node
            // fetches it (or rebuilds it) and sends it itself. Not a retry:
            // the task did not start.
            self.link.unpulled(calls.store(), &node, id, &why);
            if let Request::Task(request) | Request::Generator(request) = &mut message {
                request.args = self.link.args(calls.store(), args).await?;
            }
        };
        let request = task(&message);
        self.link.printed.wait(printed).await;
        // What the value nests is held until the caller has stored it.
        Ok(match self.link.receive(&node, calls.store(), request, reply, keep)? {
            Ok(protocol::Value::Inline(bytes)) => Ok(Value::Here(bytes)),
            // Left where it is, as Ray leaves large values: read there by
            // the tasks placed with it, fetched here only if read here.
            Ok(protocol::Value::Stored(object)) => {
                let kept = Mutex::new(Some(self.link.kept(&node.id, request.job, object)));
                Ok(Value::Elsewhere(Box::new(Left { node, object, kept })))
            }
            Err(refused) => Err(refused),
        })
    }

    async fn start_actor(&self, run: Run, class: &str, args: &[Input]) -> Result<Box<dyn ActorInstance>, String> {
        let actor = run.calls.actor().expect("an actor's instance starts as that actor");
        let (mut request, calls) = self.link.request(run, class, args).await.map_err(|t| t.message)?;
        // An instance holds a cpu only while a call runs, as Ray's actors
        // (num_cpus=0 once created) do; any node with one will do.
        request.num_cpus = 1;
        let message = Request::Actor(ActorRequest::Start(actor, request));
        // A node lost while starting it did not fail the constructor: the
        // instance goes to another node (a refusal to place it is final).
        let mut lost = 0;
        let (node, started) = loop {
            match self.link.place_and_ask(task(&message), &message, calls.as_ref(), None).await {
                Err(trapped) if !trapped.limit && lost < START_TRIES => {
                    lost += 1;
                    tracing::warn!(%trapped.message, "starting an actor's instance elsewhere");
                }
                answered => break answered.map_err(|t| t.message)?,
            }
        };
        match started {
            ActorStarted::Started(instance) => Ok(Box::new(RemoteActor {
                link: self.link.clone(),
                node,
                instance,
                store: calls.store().clone(),
                keep: Holdings::new(calls.store()),
            })),
            ActorStarted::Failed(message) => Err(message),
        }
    }

    async fn run_driver(&self, run: Run, args: &[String]) -> Result<DriverExit, LoadError> {
        self.local.run_driver(run, args).await
    }

    fn end_job(&self, job: u64) {
        self.link.outputs.lock().remove(&job);
        self.local.end_job(job);
    }

    fn instances(&self) -> usize {
        self.local.instances()
    }

    fn capacity(&self) -> usize {
        self.local.capacity()
    }

    fn interrupt(&self) {
        self.local.interrupt();
    }

    fn places_elsewhere(&self) -> bool {
        true
    }
}

/// An actor's instance on another node. The actor itself (its queue,
/// per-caller order, restarts, name) stays with the caller's node, which
/// calls this instance one call at a time; if its node dies, a call ends
/// as a trap and the actor restarts, on a node placed afresh.
struct RemoteActor {
    link: Arc<Link>,
    node: NodeInfo,
    instance: u64,
    store: Arc<ObjectStore>,
    /// The objects its calls' values nested, pulled here: held as long as
    /// the instance is.
    keep: Holdings,
}

#[async_trait::async_trait]
impl ActorInstance for RemoteActor {
    async fn call(&mut self, run: Run, label: &str, method: &str, args: &[Input]) -> Outcome {
        let generates = run.calls.generates();
        let (request, calls) = self.link.request(run, method, args).await?;
        let (instance, label, job) = (self.instance, label.to_string(), request.job);
        let message = match generates {
            true => Request::Actor(ActorRequest::Generate(instance, label, request)),
            false => Request::Actor(ActorRequest::Call(instance, label, request)),
        };
        let payload = rmp_serde::to_vec(&message).expect("requests encode");
        let request = task(&message);
        // A generator method's items come as it yields them, left there.
        let mut yielded = |node: &NodeInfo, item: bytes::Bytes| self.link.yielded(calls.as_ref(), node, job, &item);
        let items = generates.then_some(&mut yielded as &mut Items);
        let reply = match self.link.ask::<Answer>(&self.node, &payload, calls.as_ref(), items).await {
            Ok((printed, reply)) => {
                self.link.printed.wait(printed).await;
                reply
            }
            Err(Sent::Failed(trapped)) => return Err(trapped),
            Err(Sent::NotServing) => {
                let message = format!("node {} can no longer be reached", self.node.id);
                return Err(Trapped { message, limit: false });
            }
        };
        let value = match self.link.receive(&self.node, &self.store, request, reply, &mut self.keep)? {
            Ok(value) => value,
            Err(refused) => return Ok(Err(refused)),
        };
        // An actor's value is copied here at once: the node need not keep it.
        let stored = match &value {
            protocol::Value::Stored(object) => Some(self.link.kept(&self.node.id, request.job, *object)),
            protocol::Value::Inline(_) => None,
        };
        let bytes = transfer::value_bytes(&self.node.transfer, &self.store, value).await;
        drop(stored);
        let pulled =
            |e| Trapped { message: format!("cannot pull its value from node {}: {e}", self.node.id), limit: false };
        Ok(Ok(bytes.map_err(pulled)?))
    }
}

impl Drop for RemoteActor {
    fn drop(&mut self) {
        let payload = rmp_serde::to_vec(&Request::Actor(ActorRequest::Drop(self.instance))).expect("requests encode");
        let (link, addr) = (self.link.clone(), self.node.transfer.clone());
        tokio::spawn(async move { link.sessions.tell(&addr, &payload).await });
    }
}

/// How far each output stream of tasks on nodes has been printed here.
#[derive(Default)]
struct Printing {
    upto: Mutex<HashMap<u64, u64>>,
    more: tokio::sync::Notify,
}

impl Printing {
    /// Chunk `seq` of `stream` was printed.
    fn printed(&self, stream: u64, seq: u64) {
        let mut upto = self.upto.lock();
        let at = upto.entry(stream).or_default();
        *at = (*at).max(seq);
        self.more.notify_waiters();
    }

    /// Waits until what a task printed is printed here: its output comes
    /// on another subject than its answer, and may come a moment later. A
    /// chunk lost on the way is waited for a second at most.
    async fn wait(&self, printed: Option<Printed>) {
        let Some(Printed { stream, upto }) = printed else { return };
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                let more = self.more.notified();
                tokio::pin!(more);
                // Registered before the check, so no chunk slips between.
                more.as_mut().enable();
                if self.upto.lock().get(&stream).copied().unwrap_or(0) >= upto {
                    return;
                }
                more.await;
            }
        })
        .await;
    }
}

/// The task a request carries.
fn task(request: &Request) -> &TaskRequest {
    match request {
        Request::Task(task)
        | Request::Generator(task)
        | Request::Actor(
            ActorRequest::Start(_, task) | ActorRequest::Call(_, _, task) | ActorRequest::Generate(_, _, task),
        ) => task,
        Request::Actor(ActorRequest::Drop(_)) => unreachable!("a drop carries no task"),
    }
}

/// Where a generator's items go as they come, encoded.
type Items<'a> = dyn FnMut(&NodeInfo, bytes::Bytes) + Send + 'a;

/// Why a task sent to a node has no answer.
enum Sent {
    /// The node cannot be reached: it did not start the task.
    NotServing,
    /// It may have started it: a crashed attempt.
    Failed(Trapped),
}

/// Whether `node` has the cpus and resources a task asks for.
fn can_run(node: &NodeInfo, num_cpus: u32, placement: &Placement) -> bool {
    node.cpus >= num_cpus
        && placement
            .resources
            .iter()
            .all(|(name, amount)| node.resources.iter().any(|(n, has)| n == name && has >= amount))
}

/// What a task asks for, as `cpus=2, gpu=1`.
fn asks(num_cpus: u32, placement: &Placement) -> String {
    let resources = placement.resources.iter().map(|(name, amount)| format!(", {name}={amount}"));
    format!("cpus={num_cpus}{}", resources.collect::<String>())
}

/// What a node has, as `node 1a2b…: cpus=2, gpu=1`.
fn describe_node(node: &NodeInfo) -> String {
    let resources = node.resources.iter().map(|(name, amount)| format!(", {name}={amount}"));
    format!("node {}: cpus={}{}", node.id, node.cpus, resources.collect::<String>())
}

/// How another node pulls object `id` of `store`, once it is here (an
/// object left on a node is fetched first).
async fn describe(store: &ObjectStore, id: ObjectId) -> Result<Held, Trapped> {
    crate::held_here(store, id)
        .await
        .map_err(|e| Trapped { message: format!("its argument `{id}` cannot be sent: {e}"), limit: true })
}

/// The job globals a call sees, as another node pulls them.
async fn globals(calls: &dyn Calls) -> Result<Vec<(String, Held)>, Trapped> {
    let mut globals = Vec::new();
    for (name, id) in calls.globals() {
        globals.push((name, describe(calls.store(), id).await?));
    }
    Ok(globals)
}

/// An argument's object, if it is large enough to pull a task to it.
fn large(arg: &Arg) -> Option<&Held> {
    match arg {
        Arg::Large(held) | Arg::Elsewhere { object: held, .. } => Some(held),
        Arg::Value(..) => None,
    }
}
