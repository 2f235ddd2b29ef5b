//! A node's side of the cluster: it takes tasks that callers on other nodes
//! send it, pulls what they need (the component, large arguments, nested
//! objects) from the caller's node, runs each once on its own cpus, and
//! answers with the outcome. Retries are the caller's.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use parking_lot::Mutex;
use tokio::net::TcpStream;
use tokio::sync::{OnceCell, mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;

use prism_exec::{Input, Outcome, Output, ProgramInfo, Stream};
use prism_node::cancel::Token;
use prism_node::{HereTask, InstanceHere, Job, Node, generators};
use prism_store::{GetError, Holdings, ObjectId, nested_refs};

use crate::callers::{Directory, Forwarder, JobTasks, Presence, presence};
use crate::direct;
use crate::membership::Cluster;
use crate::protocol::{
    ActorRequest, ActorStarted, Answer, Arg, Held, INLINE_REPLY_MAX, OutputChunk, Printed, Release, Request, TaskReply,
    TaskRequest, Value, release_subject,
};
use crate::transfer::{self, Components};

/// How often a node asks whether the callers it keeps jobs and actors'
/// instances for are still there.
const CALLER_CHECK: Duration = Duration::from_secs(1);

/// How long a caller may leave those questions unanswered before the node
/// counts it gone: long enough for a busy driver, short next to the NATS
/// server's own two minutes.
const CALLER_SILENT: Duration = Duration::from_secs(10);

/// Where a generator's items go, as it yields them.
type Items<'a> = dyn Fn(Held) + Sync + 'a;

/// A node serving tasks for callers elsewhere.
pub struct Worker {
    node: Arc<Node>,
    cluster: Cluster,
    /// Where others pull this node's objects (`host:port`).
    transfer: String,
    components: Arc<Components>,
    /// Compiled components by hash, each pulled and loaded once.
    programs: Mutex<HashMap<[u8; 32], Arc<Loaded>>>,
    /// The callers' jobs.
    jobs: Mutex<HashMap<JobKey, Arc<Served>>>,
    /// Tasks running or waiting here for callers elsewhere.
    pub running: AtomicU32,
    /// Bytes pulled from other nodes so far.
    pub pulled: AtomicU64,
    /// Actors' instances kept for callers elsewhere, by number, with
    /// their caller's subject.
    instances: Mutex<HashMap<u64, (String, Instance)>>,
    next_instance: AtomicU64,
    /// When each caller last answered whether it is there.
    heard: Mutex<HashMap<String, Instant>>,
}

/// An actor's instance kept here, and the job it belongs to.
struct Hosted {
    instance: InstanceHere,
    served: Arc<Served>,
}

/// An actor's instance kept here, one call at a time.
type Instance = Arc<tokio::sync::Mutex<Hosted>>;

/// A component, once pulled and compiled.
type Loaded = OnceCell<Arc<ProgramInfo>>;

/// A caller's job: its caller's transfer address, the job there, and the
/// component it runs.
type JobKey = (String, u64, [u8; 32]);

/// A caller's job here.
struct Served {
    job: Arc<Job>,
    /// Its caller's subject ([`TaskRequest::caller`]).
    caller: String,
    /// Its tasks' output, on its way to the caller.
    output: mpsc::UnboundedSender<Forward>,
    /// Chunks of output written, and how many of them are sent: a task's
    /// answer waits until what it wrote is sent.
    written: Arc<AtomicU64>,
    sent: Arc<AtomicU64>,
    /// Names its output stream, for [`Printed`].
    stream: u64,
    /// What its tasks pulled and made: held while the job is, which is as
    /// long as its caller is there, unless the caller lets go of them.
    holdings: Mutex<Holdings>,
}

/// What goes to a caller's output subject, in order.
enum Forward {
    Chunk(OutputChunk),
    /// Answered once everything before it is sent.
    Flush(oneshot::Sender<()>),
}

impl Served {
    /// How far its output has got.
    fn printed(&self) -> Printed {
        Printed { stream: self.stream, upto: self.written.load(Ordering::Acquire) }
    }

    /// Resolves once the output its tasks wrote so far is on its way.
    async fn flush(&self) {
        if self.sent.load(Ordering::Acquire) >= self.written.load(Ordering::Acquire) {
            return;
        }
        let (done, sent) = oneshot::channel();
        if self.output.send(Forward::Flush(done)).is_ok() {
            let _ = sent.await;
        }
    }
}

impl Worker {
    /// Serves `node`'s cpus to `cluster`, offering `components`; its
    /// transfer server is at `transfer`.
    pub fn new(node: Arc<Node>, components: Arc<Components>, cluster: Cluster, transfer: String) -> Arc<Worker> {
        let worker = Arc::new(Worker {
            node,
            cluster,
            transfer,
            components,
            programs: Mutex::default(),
            jobs: Mutex::default(),
            running: AtomicU32::new(0),
            pulled: AtomicU64::new(0),
            instances: Mutex::default(),
            next_instance: AtomicU64::new(0),
            heard: Mutex::default(),
        });
        let checker = Arc::downgrade(&worker);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(CALLER_CHECK);
            loop {
                tick.tick().await;
                let Some(worker) = checker.upgrade() else { return };
                worker.forget_callers_gone().await;
            }
        });
        worker
    }

    /// Takes the releases callers send node `id`, from now on, for as long
    /// as the connection lasts. A node that rejoined under a new id keeps
    /// taking them under the old ones too: its callers' jobs here, and what
    /// they keep, outlive the change. Tasks come on direct connections
    /// ([`Worker::direct`]).
    pub async fn listen(self: &Arc<Self>, id: &str) -> Result<(), async_nats::SubscribeError> {
        let mut releases = self.cluster.client.subscribe(release_subject(id)).await?;
        let worker = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(release) = releases.next().await {
                let Some(worker) = worker.upgrade() else { return };
                if let Ok(release) = rmp_serde::from_slice(&release.payload) {
                    worker.release(release);
                }
            }
        });
        Ok(())
    }

    /// What answers the direct connections of callers: each request runs in
    /// a task of its own, answered as soon as it ends.
    pub fn direct(self: &Arc<Self>) -> transfer::Direct {
        let worker = self.clone();
        Arc::new(move |stream| drop(tokio::spawn(worker.clone().answer_direct(stream))))
    }

    /// Answers one caller's direct connection until it hangs up.
    async fn answer_direct(self: Arc<Self>, stream: TcpStream) {
        let (read, write) = stream.into_split();
        let (answers, queued) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            if let Err(e) = direct::write_frames(write, queued).await {
                tracing::debug!(error = %e, "a caller's direct connection broke");
            }
        });
        // The tasks running for this connection, by request number, each
        // filed on the node under an id of its own: a cancel names one.
        let running: Arc<Mutex<HashMap<u64, ObjectId>>> = Arc::default();
        let mut requests = FramedRead::new(read, direct::codec());
        while let Some(Ok(frame)) = requests.next().await {
            let Some((seq, body)) = direct::unframe(&frame) else { break };
            if seq & direct::CANCEL != 0 {
                if let Some(id) = running.lock().get(&(seq & !direct::CANCEL)) {
                    let _ = self.node.cancel(*id, body == [1]);
                }
                continue;
            }
            // A task is filed before the next frame is read, which may
            // cancel it.
            let file = |task: TaskRequest, generates| {
                let id = self.node.store.fresh_id();
                running.lock().insert(seq, id);
                let token = self.node.track_here(id, &task.function);
                Work::Task { task, generates, id, token }
            };
            let work = match rmp_serde::from_slice::<Request>(body) {
                Ok(Request::Task(task)) => file(task, false),
                Ok(Request::Generator(task)) => file(task, true),
                Ok(Request::Actor(request)) => Work::Actor(request),
                Err(e) => Work::Malformed(e.to_string()),
            };
            let (worker, answers, running) = (self.clone(), answers.clone(), running.clone());
            tokio::spawn(async move {
                let items = |item: Held| drop(answers.send(direct::frame(seq | direct::MORE, &encode(&item))));
                let answer = match work {
                    Work::Task { task, generates, id, token } => {
                        let answer = worker.run(task, token, generates.then_some(&items as &Items)).await;
                        worker.node.untrack(&id);
                        running.lock().remove(&seq);
                        Some(encode(&answer))
                    }
                    Work::Actor(request) => worker.actor(request, &items).await,
                    Work::Malformed(e) => Some(encode(&refused(format!("a malformed request: {e}")))),
                };
                if let Some(answer) = answer.filter(|_| seq != 0) {
                    let _ = answers.send(direct::frame(seq, &answer));
                }
            });
        }
        // The caller hung up (it ended, or its connection broke): no one
        // waits for these answers, and a caller still there runs the tasks
        // again, as for a node lost.
        let orphans: Vec<ObjectId> = running.lock().values().copied().collect();
        for id in orphans {
            let _ = self.node.cancel(id, false);
        }
    }

    /// Drops the jobs and actors' instances kept for callers no longer
    /// there: a driver killed (NATS says no one takes its requests), or one
    /// silent for [`CALLER_SILENT`] (cut off: NATS itself would only notice
    /// minutes later).
    async fn forget_callers_gone(&self) {
        let callers: HashSet<String> = {
            let jobs = self.jobs.lock();
            let instances = self.instances.lock();
            jobs.values().map(|s| s.caller.clone()).chain(instances.values().map(|(c, _)| c.clone())).collect()
        };
        for caller in callers {
            let gone = match presence(&self.cluster.client, &caller, CALLER_CHECK).await {
                Presence::Here => {
                    self.heard.lock().insert(caller, Instant::now());
                    continue;
                }
                Presence::Gone => "gone",
                Presence::Silent => {
                    let heard = *self.heard.lock().entry(caller.clone()).or_insert_with(Instant::now);
                    if heard.elapsed() < CALLER_SILENT {
                        continue;
                    }
                    "silent"
                }
            };
            self.heard.lock().remove(&caller);
            self.jobs.lock().retain(|_, served| served.caller != caller);
            let mut instances = self.instances.lock();
            let before = instances.len();
            instances.retain(|_, (c, _)| *c != caller);
            let dropped = before - instances.len();
            tracing::info!(%caller, instances = dropped, "the caller is {gone}: dropping what was kept for it");
        }
    }

    /// Lets go of what a caller's job no longer wants here.
    fn release(&self, release: Release) {
        let jobs: Vec<Arc<Served>> = self
            .jobs
            .lock()
            .iter()
            .filter(|((origin, job, _), _)| *origin == release.origin && *job == release.job)
            .map(|(_, served)| served.clone())
            .collect();
        for served in jobs {
            let mut holdings = served.holdings.lock();
            for id in &release.objects {
                holdings.release(id);
            }
        }
    }

    /// Actors' instances kept here.
    pub fn actors(&self) -> u32 {
        self.instances.lock().len() as u32
    }

    /// Answers an actor request (a drop gets no answer); a generator
    /// method's items go to `items`.
    async fn actor(&self, request: ActorRequest, items: &Items<'_>) -> Option<Vec<u8>> {
        match request {
            ActorRequest::Start(actor, request) => Some(encode(&match self.prepare(&request).await {
                Err(unready) => ActorStarted::Failed(unready.message()),
                Ok((served, inputs)) => {
                    match self
                        .node
                        .start_actor_here(&served.job, actor, &request.function, &inputs, request.placement.clone())
                        .await
                    {
                        Err(message) => ActorStarted::Failed(message),
                        Ok(instance) => {
                            let n = self.next_instance.fetch_add(1, Ordering::Relaxed);
                            let hosted = Hosted { instance, served };
                            let caller = request.caller.clone();
                            self.instances.lock().insert(n, (caller, Arc::new(tokio::sync::Mutex::new(hosted))));
                            ActorStarted::Started(n)
                        }
                    }
                }
            })),
            ActorRequest::Call(n, label, request) => Some(self.call_instance(n, &label, &request, None).await),
            ActorRequest::Generate(n, label, request) => {
                Some(self.call_instance(n, &label, &request, Some(items)).await)
            }
            ActorRequest::Drop(n) => {
                self.instances.lock().remove(&n);
                None
            }
        }
    }

    /// Calls instance `n`'s method (`label` is `Class.method`), and its
    /// encoded answer; a generator's items go to `items`.
    async fn call_instance(&self, n: u64, label: &str, request: &TaskRequest, items: Option<&Items<'_>>) -> Vec<u8> {
        let Some(hosted) = self.instances.lock().get(&n).map(|(_, hosted)| hosted.clone()) else {
            return encode(&refused(format!("no actor instance {n} here")));
        };
        self.running.fetch_add(1, Ordering::Relaxed);
        let answer = match self.prepare(request).await {
            Err(unready) => (None, unready.reply()),
            Ok((_, inputs)) => {
                let mut hosted = hosted.lock().await;
                let Hosted { instance, served } = &mut *hosted;
                let stream = items.map(|_| Arc::new(generators::Stream::default()));
                let (job, function) = (&served.job, &request.function);
                let call = self.node.call_actor_here(job, instance, label, function, &inputs, stream.clone());
                let outcome = self.streaming(served, stream.as_deref(), items, call).await;
                let made = Holdings::new(&self.node.store);
                let reply = self.reply(served, outcome, made).await;
                (Some(served.printed()), reply)
            }
        };
        self.running.fetch_sub(1, Ordering::Relaxed);
        encode(&answer)
    }

    /// Runs a task once; a generator's items go to `items` as it yields
    /// them.
    async fn run(&self, request: TaskRequest, token: Arc<Token>, items: Option<&Items<'_>>) -> Answer {
        self.running.fetch_add(1, Ordering::Relaxed);
        let work = async {
            match self.prepare(&request).await {
                Ok((served, inputs)) => {
                    let reply = self.execute(&served, &request, &inputs, token.clone(), items).await;
                    (Some(served.printed()), reply)
                }
                Err(unready) => (None, unready.reply()),
            }
        };
        // Cancelled, it is dropped wherever it is, as on the caller's node;
        // the caller has stopped waiting for the answer.
        let answer = tokio::select! {
            biased;
            () = token.wait() => refused("it was cancelled".into()),
            answer = work => answer,
        };
        self.running.fetch_sub(1, Ordering::Relaxed);
        answer
    }

    /// The caller's job here, and the task's arguments, pulled.
    async fn prepare(&self, request: &TaskRequest) -> Result<(Arc<Served>, Vec<Input>), Unready> {
        let program = self.program(request).await?;
        let key = (request.origin.clone(), request.job, request.component);
        let found = self.jobs.lock().get(&key).cloned();
        let served = match found {
            Some(served) => served,
            None => {
                let served = self.serve_job(program, request).await.map_err(|e| e.to_string())?;
                self.jobs.lock().entry(key).or_insert(served).clone()
            }
        };
        let store = &self.node.store;
        for (name, global) in &request.globals {
            self.pull(&request.origin, global.id, *global).await?;
            let set = served.job.set_global(store, name.clone(), global.id);
            store.release(&global.id);
            set.map_err(|f| f.to_string())?;
        }
        let mut inputs = Vec::with_capacity(request.args.len());
        for arg in &request.args {
            let adopt = |id| served.holdings.lock().adopt(id);
            inputs.push(match arg {
                Arg::Value(bytes, nested) => {
                    for object in nested {
                        self.pull(&request.origin, object.id, *object).await?;
                        adopt(object.id);
                    }
                    Input::Bytes(bytes.clone())
                }
                Arg::Large(object) => {
                    self.pull(&request.origin, object.id, *object).await?;
                    adopt(object.id);
                    self.input(object.id)?
                }
                Arg::Elsewhere { id, object, from } => {
                    self.pull(from, *id, *object).await.map_err(|why| Unready::Unpulled(*id, why))?;
                    adopt(*id);
                    self.input(*id)?
                }
            });
        }
        Ok((served, inputs))
    }

    /// How a task is handed object `id`, pulled here.
    fn input(&self, id: ObjectId) -> Result<Input, String> {
        let object = self.node.store.try_get(&id).and_then(Result::ok).ok_or("a pulled argument vanished")?;
        Input::of(id, &object).map_err(|f| f.to_string())
    }

    /// A caller's job here: its output goes to the caller, and its calls of
    /// actors this node lacks to the caller's node.
    async fn serve_job(
        &self,
        program: Arc<ProgramInfo>,
        request: &TaskRequest,
    ) -> Result<Arc<Served>, async_nats::SubscribeError> {
        let sent = Arc::new(AtomicU64::new(0));
        let (job, output) = (request.job, self.forward_output(request.output.clone(), request.job, sent.clone()));
        let (sink, written) = (output.clone(), Arc::new(AtomicU64::new(0)));
        let (wrote, named) = (written.clone(), rand::random::<u64>());
        let sink = Output::new(move |stream, bytes| {
            let seq = wrote.fetch_add(1, Ordering::AcqRel) + 1;
            let stderr = stream == Stream::Stderr;
            let chunk = OutputChunk { job, stream: named, seq, stderr, bytes: bytes.to_vec() };
            let _ = sink.send(Forward::Chunk(chunk));
        });
        let job = self.node.job(program, sink);
        let (store, here) = (self.node.store.clone(), self.transfer.clone());
        let client = self.cluster.client.clone();
        let forwarder =
            Forwarder::start(client, request.caller.clone(), store.clone(), here.clone(), request.origin.clone());
        let forwarder = forwarder.await?;
        job.set_actors_elsewhere(Arc::new(Directory::on_node(&self.cluster, store, here, forwarder.clone())));
        job.set_tasks_elsewhere(Arc::new(JobTasks { forwarder, job: request.job }));
        Ok(Arc::new(Served {
            job,
            caller: request.caller.clone(),
            output,
            written,
            sent,
            stream: named,
            holdings: Mutex::new(Holdings::new(&self.node.store)),
        }))
    }

    /// Pulls `object` from the node at `from` into this node's store as
    /// `id` (see [`transfer::pull_as`]), counting the bytes.
    async fn pull(&self, from: &str, id: ObjectId, object: Held) -> Result<(), String> {
        let bytes = transfer::pull_as(from, &self.node.store, id, object).await.map_err(|e| e.to_string())?;
        self.pulled.fetch_add(bytes, Ordering::Relaxed);
        Ok(())
    }

    /// Sends what is written to the returned channel to `subject`, in order.
    /// `sent` counts the chunks sent.
    fn forward_output(&self, subject: String, job: u64, sent: Arc<AtomicU64>) -> mpsc::UnboundedSender<Forward> {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let client = self.cluster.client.clone();
        tokio::spawn(async move {
            while let Some(forward) = rx.recv().await {
                match forward {
                    Forward::Chunk(chunk) => {
                        let bytes = rmp_serde::to_vec(&chunk).expect("chunks encode");
                        if let Err(e) = client.publish(subject.clone(), bytes.into()).await {
                            tracing::debug!(error = %e, job, "cannot forward a task's output");
                        }
                        sent.fetch_add(1, Ordering::AcqRel);
                    }
                    Forward::Flush(done) => {
                        let _ = client.flush().await;
                        let _ = done.send(());
                    }
                }
            }
        });
        tx
    }

    /// The component `request` runs, pulled from its caller and compiled
    /// once.
    async fn program(&self, request: &TaskRequest) -> Result<Arc<ProgramInfo>, String> {
        let cell = self.programs.lock().entry(request.component).or_default().clone();
        let program = cell
            .get_or_try_init(|| async {
                let wasm = match self.components.get(&request.component) {
                    Some(wasm) => wasm,
                    None => Arc::new(
                        transfer::pull_component(&request.origin, &request.component)
                            .await
                            .map_err(|e| e.to_string())?,
                    ),
                };
                let program = self.node.load(&request.name, &wasm).await.map_err(|e| e.to_string())?;
                self.components.offer(request.component, wasm);
                Ok::<_, String>(program)
            })
            .await?;
        Ok(program.clone())
    }

    async fn execute(
        &self,
        served: &Served,
        request: &TaskRequest,
        inputs: &[Input],
        token: Arc<Token>,
        items: Option<&Items<'_>>,
    ) -> TaskReply {
        let mut made = Holdings::new(&self.node.store);
        let stream = items.map(|_| Arc::new(generators::Stream::default()));
        let task = HereTask {
            function: &request.function,
            args: inputs,
            num_cpus: request.num_cpus,
            placement: &request.placement,
            stream: stream.clone(),
            token,
        };
        let run = self.node.run_task_here(&served.job, task, &mut made);
        let outcome = self.streaming(served, stream.as_deref(), items, run).await;
        let outcome = outcome.map(|returned| {
            returned.map(|value| match value {
                prism_exec::Value::Here(bytes) => bytes,
                prism_exec::Value::Elsewhere(_) => unreachable!("a node runs the tasks it is sent itself"),
            })
        });
        self.reply(served, outcome, made).await
    }

    /// Runs `call`, which yields into `stream` if it is a generator's, and
    /// sends each item to `items` as it is yielded: left here for the caller
    /// to pull, kept for `served`'s job until the caller lets go of it.
    async fn streaming<T>(
        &self,
        served: &Served,
        stream: Option<&generators::Stream>,
        items: Option<&Items<'_>>,
        call: impl Future<Output = T>,
    ) -> T {
        let call = async {
            let outcome = call.await;
            if let Some(stream) = stream {
                stream.end(None);
            }
            outcome
        };
        let forward = async {
            let (Some(stream), Some(items)) = (stream, items) else { return };
            while let Ok(Some(item)) = stream.next(None).await {
                served.holdings.lock().adopt(item);
                if let Ok(held) = self.held(item).await {
                    items(held);
                }
            }
        };
        tokio::join!(call, forward).0
    }

    /// The answer to a call that ended with `outcome`, holding `made` (the
    /// refs it still held) as long as the job is.
    async fn reply(&self, served: &Served, outcome: Outcome, mut made: Holdings) -> TaskReply {
        let store = &self.node.store;
        // What it printed reaches its caller before its answer does.
        served.flush().await;
        let bytes = match outcome {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(refused)) => return TaskReply::Ended(Ok(refused)),
            Err(trapped) => return TaskReply::Ended(Err(trapped)),
        };
        // What the value nests stays here for the caller to pull, held as
        // long as the job is.
        let mut nested = Vec::new();
        for id in nested_refs(&bytes) {
            match self.held(id).await {
                Ok(held) => nested.push(held),
                Err(message) => return TaskReply::Refused(message),
            }
            made.hold(id);
        }
        served.holdings.lock().absorb(made);
        if bytes.len() <= INLINE_REPLY_MAX {
            return TaskReply::Returned(Value::Inline(bytes), nested);
        }
        match store.put(bytes) {
            Ok(id) => {
                served.holdings.lock().adopt(id);
                match self.held(id).await {
                    Ok(held) => TaskReply::Returned(Value::Stored(held), nested),
                    Err(message) => TaskReply::Refused(message),
                }
            }
            Err(failure) => TaskReply::Refused(format!("its value cannot be stored here: {failure}")),
        }
    }

    /// How the caller pulls object `id`, once it is ready.
    async fn held(&self, id: ObjectId) -> Result<Held, String> {
        let object = match self.node.store.get(&id, None).await {
            Ok(object) => object,
            Err(GetError::Failed(failure)) => return Err(format!("object `{id}` failed: {failure}")),
            Err(GetError::Timeout) => unreachable!("no deadline was given"),
        };
        Ok(crate::held(id, &object))
    }
}

/// A request from a direct connection.
enum Work {
    /// A task, or a generator, filed on the node under `id`.
    Task { task: TaskRequest, generates: bool, id: ObjectId, token: Arc<Token> },
    /// A request to an actor's instance.
    Actor(ActorRequest),
    /// A request that could not be read: why.
    Malformed(String),
}

/// Why a request could not start here.
enum Unready {
    /// Why (the component or an argument from the caller could not be
    /// pulled, say).
    Refused(String),
    /// An argument kept on a third node could not be pulled from there.
    Unpulled(ObjectId, String),
}

impl From<String> for Unready {
    fn from(message: String) -> Self {
        Unready::Refused(message)
    }
}

impl Unready {
    fn reply(self) -> TaskReply {
        match self {
            Unready::Refused(message) => TaskReply::Refused(message),
            Unready::Unpulled(id, why) => TaskReply::Unpulled(id, why),
        }
    }

    fn message(self) -> String {
        match self {
            Unready::Refused(message) => message,
            Unready::Unpulled(id, why) => format!("its argument `{id}` cannot be pulled: {why}"),
        }
    }
}

/// The answer to a request that could not start: why.
fn refused(message: String) -> Answer {
    (None, TaskReply::Refused(message))
}

fn encode(message: &impl serde::Serialize) -> Vec<u8> {
    rmp_serde::to_vec(message).expect("replies encode")
}
