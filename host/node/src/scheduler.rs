//! The scheduler: admits tasks onto the node's logical cpus, resolves their
//! top-level ref arguments first, runs them, retries them, and stores their
//! results.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tracing::Instrument;

use crate::cancel::{Kind, Token};
use crate::generators::{Generating, Stream};
use crate::node::{Job, Node, hold_args};
use crate::resources::Resources;
use crate::scope::Scope;
use crate::slots::{Permit, Slots};
use crate::threads::Threads;
use prism_exec::{Fetch, Input, Outcome, Placement, ProgramInfo, Slot, TaskArg, TaskOptions, Trapped, Value};
use prism_store::error::{Cause, Failure, Link};
use prism_store::{GetError, Holdings, ObjectId, Unread};

/// The node's logical cpus, shared fairly by its namespaces ([`Slots`]),
/// and its named resources.
pub struct Scheduler {
    slots: Arc<Slots>,
    capacity: u32,
    /// What `--resources` offers.
    pub resources: Resources,
    /// Where its calls run.
    pub threads: Threads,
}

impl Scheduler {
    /// A scheduler with `workers` logical cpus and `resources`, whose
    /// running calls `interrupt` makes check whether they owe a turn,
    /// running its calls on `threads`.
    pub fn new(
        workers: u32,
        resources: &[(String, f64)],
        interrupt: impl Fn() + Send + Sync + 'static,
        threads: Threads,
    ) -> Self {
        let resources = Resources::new(resources);
        Scheduler { slots: Slots::new(workers, interrupt), capacity: workers, resources, threads }
    }

    /// Waits for `n` cpus for `node`'s namespace.
    pub async fn acquire(&self, node: &Node, n: u32) -> Permit {
        self.slots.acquire(node.namespace, n).await
    }

    /// Schedules a task and returns the ref of its result at once.
    pub(crate) fn submit(
        node: &Arc<Node>,
        job: &Arc<Job>,
        function: String,
        args: Vec<TaskArg>,
        options: TaskOptions,
    ) -> ObjectId {
        match Self::prepare(node, job, function, args, options) {
            Ok((id, task)) => {
                node.scheduler.threads.spawn(task);
                id
            }
            Err(id) => id,
        }
    }

    /// Runs a task in the caller's own tokio task (no hand-off to another
    /// thread: what a caller that only waits for the result wants) and
    /// returns its result's ref, completed. If the caller gives up, the
    /// result fails with a message saying so.
    pub(crate) async fn call(
        node: &Arc<Node>,
        job: &Arc<Job>,
        function: String,
        args: Vec<TaskArg>,
        options: TaskOptions,
    ) -> ObjectId {
        let given_up = function.clone();
        let (id, task) = match Self::prepare(node, job, function, args, options) {
            Ok(prepared) => prepared,
            Err(id) => return id,
        };
        let mut given_up = GivenUp { function: given_up, call: Some((node.clone(), id)) };
        node.scheduler.threads.moving(task).await;
        given_up.call = None;
        id
    }

    /// A task's pending result and the future that runs it; or, if it
    /// cannot run, its result, failed already.
    fn prepare(
        node: &Arc<Node>,
        job: &Arc<Job>,
        function: String,
        args: Vec<TaskArg>,
        options: TaskOptions,
    ) -> Result<(ObjectId, impl Future<Output = ()> + Send + 'static), ObjectId> {
        if let Err(failure) = Self::fits(node, &function, &options) {
            let unread = job.unread(&function, &failure);
            return Err(node.failed(failure, unread));
        }
        let id = node.store.pending();
        let span = tracing::info_span!("task", function = %function, id = %id);
        let call = Call::new(node, id, function, args);
        Ok((id, run(node.clone(), job.clone(), call, options, Results::Object(id)).instrument(span)))
    }

    /// Schedules a generator task and returns the id of its stream at once.
    /// Malformed arguments (`Err`) fail it, as they fail a task.
    pub(crate) fn submit_generator(
        node: &Arc<Node>,
        job: &Arc<Job>,
        function: String,
        args: Result<Vec<TaskArg>, Failure>,
        options: TaskOptions,
    ) -> ObjectId {
        let id = node.store.fresh_id();
        let stream = node.generators.create(id);
        match args.and_then(|args| Self::fits(node, &function, &options).map(|()| args)) {
            Err(failure) => {
                let unread = job.unread(&function, &failure);
                end_stream(node, &stream, Err(failure), unread)
            }
            Ok(args) => {
                let span = tracing::info_span!("generator", function = %function, id = %id);
                let call = Call::new(node, id, function, args);
                let task = run(node.clone(), job.clone(), call, options, Results::Stream(stream));
                node.scheduler.threads.spawn(task.instrument(span));
            }
        }
        id
    }

    /// Whether the node has the cpus, resources and id the task asks for
    /// (another node's, if the executor places it elsewhere).
    fn fits(node: &Node, function: &str, options: &TaskOptions) -> Result<(), Failure> {
        if node.executor.places_elsewhere() {
            return Ok(());
        }
        if !options.placement.is_any() {
            node.admits(&format!("task `{function}`"), &options.placement)?;
        }
        let capacity = node.scheduler.capacity;
        if options.num_cpus > capacity {
            return Err(Failure::LimitExceeded(format!(
                "task `{function}` asks for {} cpus but this node has {capacity} (see --workers)",
                options.num_cpus
            )));
        }
        Ok(())
    }
}

/// Whether `program` has the task `function`.
fn has_function(program: &ProgramInfo, function: &str) -> Result<(), Failure> {
    if !program.functions.iter().any(|f| f == function) {
        return Err(program.missing("task", function, program.functions.iter().map(String::as_str)));
    }
    Ok(())
}

/// Fails and releases the result of a task its caller stopped running
/// (see [`Scheduler::call`]): the caller never got the ref it would own.
/// A task completes its result as its last step, with no await after it,
/// so a task dropped midway has not completed it.
struct GivenUp {
    function: String,
    call: Option<(Arc<Node>, ObjectId)>,
}

impl Drop for GivenUp {
    fn drop(&mut self) {
        if let Some((node, id)) = self.call.take() {
            let failure = Failure::chain(
                Cause::Cancelled,
                vec![Link { function: self.function.clone(), message: "its caller stopped waiting for it".into() }],
            );
            node.store.complete(id, Err(failure), None);
            node.store.release(&id);
        }
    }
}

/// A task call and its arguments, held alive from submission until the
/// task is done, and its cancel switch.
struct Call {
    function: String,
    args: Vec<TaskArg>,
    holds: Holdings,
    /// The id its caller holds (result or stream), and its token there.
    id: ObjectId,
    token: Arc<Token>,
}

impl Call {
    fn new(node: &Arc<Node>, id: ObjectId, function: String, args: Vec<TaskArg>) -> Self {
        // Taken before `remote` returns: the caller may drop its refs next.
        let holds = hold_args(node, &args);
        let token = node.tokens.insert(id, Kind::Task, String::new());
        Call { function, args, holds, id, token }
    }
}

/// Where a task's results go.
enum Results {
    /// Its return value is the object `id`.
    Object(ObjectId),
    /// It is a generator: its yields go to the stream, its return ends it.
    Stream(Arc<Stream>),
}

async fn run(node: Arc<Node>, job: Arc<Job>, call: Call, options: TaskOptions, results: Results) {
    let Call { function, args, holds, id, token } = call;
    let _forget = node.tokens.forget(id);
    let stream = match &results {
        Results::Stream(stream) => Some(stream.clone()),
        Results::Object(_) => None,
    };
    // The refs the task made stay alive until its result (which may nest
    // them) is stored; its arguments until it is done.
    let mut made = Holdings::new(&node.store);
    // The resolved arguments, kept to run the task again if its value is
    // left on a node that dies.
    let mut inputs = Vec::new();
    node.tasks.started.fetch_add(1, Ordering::Relaxed);
    let work = async {
        let program = node.program(&job, options.component).await?;
        has_function(&program, &function)?;
        inputs = resolve(&node, &function, args).await?;
        let task = Task { node: &node, job: &job, program: &program, function: &function, token: &token };
        task.attempt(&inputs, &options, stream, &mut made).await
    };
    // Cancelling drops the work wherever it is: waiting for an argument or
    // a cpu, or running (a guest yields at every epoch tick).
    let result = tokio::select! {
        biased;
        () = token.wait() => Err(Failure::cancelled(&function)),
        result = work => result,
    };
    match &result {
        Ok(_) => node.tasks.finished.fetch_add(1, Ordering::Relaxed),
        Err(failure) => {
            tracing::debug!(%failure, "task failed");
            node.tasks.failed.fetch_add(1, Ordering::Relaxed)
        }
    };
    let unread = result.as_ref().err().and_then(|failure| job.unread(&function, failure));
    match (results, result) {
        (Results::Object(id), Ok(Value::Elsewhere(fetch))) => {
            let lineage = Lineage { node: node.clone(), job, function, inputs, _holds: holds, options, token, made };
            let whereabouts = fetch.whereabouts();
            node.store.complete_elsewhere(id, lineage.demand(id, fetch), whereabouts);
        }
        (Results::Object(id), Ok(Value::Here(bytes))) => node.store.complete(id, Ok(bytes), unread),
        (Results::Object(id), Err(failure)) => node.store.complete(id, Err(failure), unread),
        (Results::Stream(stream), result) => end_stream(&node, &stream, result.map(drop), unread),
    }
}

/// What makes a task's value again if the node it was left on dies, as
/// Ray's lineage reconstruction does: the task, its resolved arguments
/// (held here: an argument left elsewhere was fetched, or rebuilt the same
/// way, before the task first ran), and the refs its value nests.
struct Lineage {
    node: Arc<Node>,
    job: Arc<Job>,
    function: String,
    inputs: Vec<Input>,
    _holds: Holdings,
    options: TaskOptions,
    token: Arc<Token>,
    made: Holdings,
}

impl Lineage {
    /// What fetches value `id` with `fetch` when it is first read here.
    fn demand(self, id: ObjectId, fetch: Box<dyn Fetch>) -> prism_store::Demand {
        let handle = tokio::runtime::Handle::current();
        Box::new(move || drop(handle.spawn(self.fetch(id, fetch))))
    }

    /// Fetches the value into `id`; if it is lost, runs the task again (up
    /// to its `max_retries` times) and fetches what that made.
    async fn fetch(mut self, id: ObjectId, mut fetch: Box<dyn Fetch>) {
        let node = self.node.clone();
        let mut rebuilt = 0;
        loop {
            let lost = match fetch.fetch(&node.store, id).await {
                Ok(()) => return,
                Err(lost) => lost,
            };
            if rebuilt >= self.options.max_retries {
                let message = format!(
                    "the value of task `{}` (`{id}`) is lost ({lost}), and was rebuilt {rebuilt} times, its max_retries (raise it to rebuild more)",
                    self.function
                );
                return node.store.complete(id, Err(Failure::ObjectLost(message)), None);
            }
            rebuilt += 1;
            node.tasks.rebuilt.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(function = %self.function, %id, %lost, "rebuilding a lost value: running its task again");
            fetch = match self.run().await {
                Ok(Value::Elsewhere(again)) => again,
                Ok(Value::Here(bytes)) => return node.store.complete(id, Ok(bytes), None),
                Err(failure) => return node.store.complete(id, Err(failure), None),
            };
        }
    }

    /// Runs the task again, as it first ran.
    async fn run(&mut self) -> Result<Value, Failure> {
        let (node, function) = (&self.node, &self.function);
        let program = node.program(&self.job, self.options.component).await?;
        let task = Task { node, job: &self.job, program: &program, function, token: &self.token };
        task.attempt(&self.inputs, &self.options, None, &mut self.made).await
    }
}

/// Ends a generator's stream; a failure becomes its last item (unless the
/// caller closed the stream already), told to `unread` if dropped unread; a
/// cancel ends it.
pub(crate) fn end_stream(node: &Node, stream: &Stream, outcome: Result<(), Failure>, unread: Option<Unread>) {
    match outcome {
        Err(failure @ Failure::Cancelled(_)) => stream.cancel(failure),
        outcome => {
            if let Some(unwanted) = stream.end(outcome.err().map(|failure| node.failed(failure, unread))) {
                node.store.release(&unwanted);
            }
        }
    }
}

/// Replaces top-level refs with their values, waiting for them (without a
/// cpu slot); large objects stay in the store for the task to map, and an
/// executor placing tasks elsewhere is given those kept on other nodes as
/// they are, unfetched. A failed input fails the task with a chain naming
/// both.
pub(crate) async fn resolve(node: &Node, function: &str, args: Vec<TaskArg>) -> Result<Vec<Input>, Failure> {
    let mut values = Vec::with_capacity(args.len());
    for (i, arg) in args.into_iter().enumerate() {
        if let TaskArg::Object(r) = &arg
            && node.executor.places_elsewhere()
        {
            node.store.settled(r).await;
            if node.store.whereabouts(r).is_some() {
                values.push(Input::Elsewhere(*r));
                continue;
            }
        }
        values.push(match arg {
            TaskArg::Value(bytes) => Input::Bytes(bytes),
            TaskArg::Object(r) => match node.store.get(&r, None).await {
                Ok(object) => Input::of(r, &object)?,
                Err(GetError::Failed(cause)) => {
                    return Err(Failure::caused(function, format!("its argument {i} (`{r}`) failed"), &cause));
                }
                Err(GetError::Timeout) => unreachable!("no deadline was given"),
            },
        });
    }
    Ok(values)
}

/// One task, as it runs.
struct Task<'a> {
    node: &'a Arc<Node>,
    job: &'a Arc<Job>,
    program: &'a Arc<ProgramInfo>,
    function: &'a str,
    token: &'a Arc<Token>,
}

impl Task<'_> {
    /// Runs the task, re-running it as `options` allow: after a crash, and
    /// after an error it returned with `retry_exceptions`; never after its
    /// own cpu or memory limit ended it (it would only hit it again).
    async fn attempt(
        &self,
        args: &[Input],
        options: &TaskOptions,
        stream: Option<Arc<Stream>>,
        made: &mut Holdings,
    ) -> Result<Value, Failure> {
        let (node, function) = (self.node, self.function);
        let mut retries = 0;
        loop {
            // Each attempt yields from the first item again; the stream
            // skips what an earlier attempt already gave.
            let generating = stream.clone().map(Generating::new);
            let attempt = Attempt {
                job: self.job,
                program: self.program.hash,
                function,
                num_cpus: options.num_cpus,
                placement: &options.placement,
            };
            let (failure, retryable) = match attempt.run(node, args, Some(self.token.clone()), generating, made).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(refused)) => (refused.failure(function), options.retry_exceptions),
                Err(trap) => (trap.failure(function), !trap.limit),
            };
            // A closed namespace stops its calls for good.
            if !retryable || retries >= options.max_retries || node.is_closed() {
                return Err(failure);
            }
            retries += 1;
            tracing::warn!(%failure, retry = retries, of = options.max_retries, "task failed, retrying");
        }
    }
}

/// One run of a task on this node's cpus, with no retry.
pub(crate) struct Attempt<'a> {
    pub job: &'a Arc<Job>,
    pub program: [u8; 32],
    pub function: &'a str,
    pub num_cpus: u32,
    pub placement: &'a Placement,
}

impl Attempt<'_> {
    /// Waits for its resources and cpus (unless the executor places it
    /// elsewhere), then runs the task, cancelled through `token`, filling
    /// `generating` if it is a generator.
    pub async fn run(
        self,
        node: &Arc<Node>,
        args: &[Input],
        token: Option<Arc<Token>>,
        generating: Option<Generating>,
        made: &mut Holdings,
    ) -> Outcome<Value> {
        let _held = match self.placement.resources.is_empty() || node.executor.places_elsewhere() {
            true => None,
            false => {
                let acquired = node.scheduler.resources.acquire(&self.placement.resources).await;
                Some(acquired.map_err(|unmet| Trapped { message: unmet.to_string(), limit: true })?)
            }
        };
        let slot = node.scheduler.acquire(node, self.num_cpus).await;
        let scope = Scope::new(node, self.job, token, node.next_caller(), None, generating);
        let slot = Some(Slot::new(slot));
        let run = node.run(self.job, scope, self.program, slot, self.num_cpus, self.placement.clone());
        node.executor.run_task(run, self.function, args, made).await
    }
}
