//! A node's side of the cluster: it takes tasks that callers on other nodes
//! send it, pulls what they need (the component, large arguments, nested
//! objects) from the caller's node, runs each once on its own cpus, and
//! answers with the outcome. Retries are the caller's.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use parking_lot::Mutex;
use tokio::sync::OnceCell;
use tokio::time::Instant;

use prism_exec::{Input, Output, ProgramInfo};
use prism_node::{Job, Node};
use prism_store::{GetError, Holdings, ObjectId, nested_refs};

use crate::protocol::{Arg, Held, INLINE_REPLY_MAX, TaskReply, TaskRequest, Value, task_subject};
use crate::transfer::{self, Components};

/// How long a caller's job is kept (its instances warm, its pulled and
/// made objects held) after its last task here.
const JOB_IDLE: Duration = Duration::from_secs(60);

/// A node serving tasks for callers elsewhere.
pub struct Worker {
    node: Arc<Node>,
    components: Arc<Components>,
    /// Compiled components by hash, each pulled and loaded once.
    programs: Mutex<HashMap<[u8; 32], Arc<OnceCell<Arc<ProgramInfo>>>>>,
    /// The callers' jobs: by caller node, job and component.
    jobs: Mutex<HashMap<(String, u64, [u8; 32]), Arc<Served>>>,
    /// Tasks running or waiting here for callers elsewhere.
    pub running: AtomicU32,
}

/// A caller's job here.
struct Served {
    job: Arc<Job>,
    /// What its tasks pulled and made: held while the job is.
    holdings: Mutex<Holdings>,
    used: Mutex<Instant>,
}

impl Worker {
    /// Serves `node`'s cpus to the cluster, offering `components`.
    pub fn new(node: Arc<Node>, components: Arc<Components>) -> Arc<Worker> {
        let worker = Arc::new(Worker {
            node,
            components,
            programs: Mutex::default(),
            jobs: Mutex::default(),
            running: AtomicU32::new(0),
        });
        let sweeper = Arc::downgrade(&worker);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(JOB_IDLE / 4);
            loop {
                tick.tick().await;
                let Some(worker) = sweeper.upgrade() else { return };
                worker.jobs.lock().retain(|_, served| served.used.lock().elapsed() < JOB_IDLE);
            }
        });
        worker
    }

    /// Takes task requests for node `id` from `client` until the
    /// subscription ends (or `id` changes: the caller then serves the new one).
    pub async fn serve(self: &Arc<Self>, client: async_nats::Client, id: &str) -> Result<(), async_nats::SubscribeError> {
        let mut requests = client.subscribe(task_subject(id)).await?;
        while let Some(message) = requests.next().await {
            let (worker, client) = (self.clone(), client.clone());
            tokio::spawn(async move {
                let Some(reply) = message.reply else { return };
                let answer = match rmp_serde::from_slice::<TaskRequest>(&message.payload) {
                    Ok(request) => worker.run(request).await,
                    Err(e) => TaskReply::Refused(format!("a malformed task request: {e}")),
                };
                let bytes = rmp_serde::to_vec(&answer).expect("replies encode");
                if let Err(e) = client.publish(reply, bytes.into()).await {
                    tracing::warn!(error = %e, "cannot answer a task request");
                }
            });
        }
        Ok(())
    }

    async fn run(&self, request: TaskRequest) -> TaskReply {
        self.running.fetch_add(1, Ordering::Relaxed);
        let reply = match self.prepare(&request).await {
            Ok((served, inputs)) => self.execute(&served, &request, &inputs).await,
            Err(message) => TaskReply::Refused(message),
        };
        self.running.fetch_sub(1, Ordering::Relaxed);
        reply
    }

    /// The caller's job here, and the task's arguments, pulled.
    async fn prepare(&self, request: &TaskRequest) -> Result<(Arc<Served>, Vec<Input>), String> {
        let program = self.program(request).await?;
        let key = (request.origin.clone(), request.job, request.component);
        let served = self
            .jobs
            .lock()
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Served {
                    job: self.node.job(program, Output::stdio()),
                    holdings: Mutex::new(Holdings::new(&self.node.store)),
                    used: Mutex::new(Instant::now()),
                })
            })
            .clone();
        *served.used.lock() = Instant::now();
        let store = &self.node.store;
        let mut inputs = Vec::with_capacity(request.args.len());
        for arg in &request.args {
            let (held, input) = match arg {
                Arg::Value(_, nested) => (nested.as_slice(), None),
                Arg::Large(held) => (std::slice::from_ref(held), Some(held.id)),
            };
            for object in held {
                transfer::pull(&request.origin, store, *object).await.map_err(|e| e.to_string())?;
                served.holdings.lock().adopt(object.id);
            }
            inputs.push(match (arg, input) {
                (Arg::Value(bytes, _), _) => Input::Bytes(bytes.clone()),
                (_, Some(id)) => {
                    let object = store.try_get(&id).and_then(Result::ok).ok_or("a pulled argument vanished")?;
                    Input::of(id, &object).map_err(|f| f.to_string())?
                }
                (Arg::Large(_), None) => unreachable!("a large argument names its object"),
            });
        }
        Ok((served, inputs))
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

    async fn execute(&self, served: &Served, request: &TaskRequest, inputs: &[Input]) -> TaskReply {
        let store = &self.node.store;
        let mut made = Holdings::new(store);
        let outcome =
            self.node.run_task_here(&served.job, &request.function, inputs, request.num_cpus, &mut made).await;
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
