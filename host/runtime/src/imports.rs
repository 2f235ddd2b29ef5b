//! prism's imports, as the host implements them for each instance.
//!
//! A `get` or `wait` that has to wait gives back the task's cpu slot first
//! and takes it back after, so tasks blocked on other tasks never hold the
//! slots those need (no deadlock with nested tasks, Ray's rule).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;
use wasmtime::component::Resource;

use crate::bindings::{actors, tasks, types};
use crate::runtime::lower;
use crate::state::{InstanceState, LimitError, Method, Running};
use prism_exec::{ActorOptions, Affinity, NextCall, NextItem, Placement, TaskArg, TaskOptions};
use prism_store::ObjectId;
use prism_store::error::{Cause, Failure, Link};

pub(super) type Wit<T> = wasmtime::Result<Result<T, types::Error>>;

/// `id` as the WIT passes it.
pub(crate) fn wit_ref(id: ObjectId) -> types::ObjectRef {
    let [a, b, c, d] = id.words();
    (a, b, c, d)
}

/// The id a WIT ref names (every 32 bytes are some id).
pub(crate) fn object_id((a, b, c, d): types::ObjectRef) -> ObjectId {
    ObjectId::from_words([a, b, c, d])
}

fn links(chain: &[Link]) -> Vec<types::Failure> {
    chain.iter().map(|l| types::Failure { function: l.function.clone(), message: l.message.clone() }).collect()
}

impl From<&Failure> for types::Error {
    fn from(failure: &Failure) -> Self {
        match failure {
            Failure::TaskFailed(chain) => types::Error::TaskFailed(links(chain)),
            Failure::TaskCrashed(chain) => types::Error::TaskCrashed(links(chain)),
            Failure::Cancelled(chain) => types::Error::Cancelled(links(chain)),
            Failure::NotFound(m) => types::Error::NotFound(m.clone()),
            Failure::InvalidArgument(m) => types::Error::InvalidArgument(m.clone()),
            Failure::LimitExceeded(m) => types::Error::LimitExceeded(m.clone()),
            Failure::ActorDied(m) => types::Error::ActorDied(m.clone()),
            Failure::DiskFull(m) => types::Error::DiskFull(m.clone()),
            Failure::ObjectLost(m) => types::Error::ObjectLost(m.clone()),
            Failure::HostFailed(m) => types::Error::HostFailed(m.clone()),
            Failure::TimedOut(_) => types::Error::Timeout,
        }
    }
}

/// The failure a guest reports it propagated (`call-error.propagated`).
pub(crate) fn failure_of(error: types::Error) -> Failure {
    let chain = |links: Vec<types::Failure>| {
        links.into_iter().map(|l| Link { function: l.function, message: l.message }).collect::<Vec<_>>()
    };
    match error {
        types::Error::TaskFailed(links) => Failure::chain(Cause::Returned, chain(links)),
        types::Error::TaskCrashed(links) => Failure::chain(Cause::Crashed, chain(links)),
        types::Error::Cancelled(links) => Failure::chain(Cause::Cancelled, chain(links)),
        types::Error::Timeout => Failure::TimedOut("a prism call it made timed out".into()),
        types::Error::NotFound(m) => Failure::NotFound(m),
        types::Error::InvalidArgument(m) => Failure::InvalidArgument(m),
        types::Error::LimitExceeded(m) => Failure::LimitExceeded(m),
        types::Error::ActorDied(m) => Failure::ActorDied(m),
        types::Error::DiskFull(m) => Failure::DiskFull(m),
        types::Error::ObjectLost(m) => Failure::ObjectLost(m),
        types::Error::HostFailed(m) => Failure::HostFailed(m),
    }
}

pub(super) fn deadline(timeout_ms: Option<u64>) -> Option<Instant> {
    timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms))
}

impl InstanceState {
    pub(super) fn ctx(&self) -> wasmtime::Result<&Running> {
        self.task
            .as_ref()
            .ok_or_else(|| wasmtime::format_err!("prism imports cannot be called while a component is being loaded"))
    }

    /// Takes over the reference `id` carries and returns it for the guest.
    pub(super) fn adopt(&mut self, id: ObjectId) -> types::ObjectRef {
        self.holdings.adopt(id);
        wit_ref(id)
    }

    /// Awaits `fut` without holding the task's cpu slot.
    pub(super) async fn blocked<T>(&mut self, fut: impl Future<Output = T>) -> wasmtime::Result<T> {
        let running = self.task.as_mut().expect("checked by ctx()");
        let held = running.slot.take().is_some();
        let out = fut.await;
        if held {
            running.slot = Some(running.calls.acquire_cpus(running.num_cpus).await);
        }
        Ok(out)
    }

    fn task_function(&self, function: String, options: types::TaskOptions) -> wasmtime::Result<TaskFunction> {
        let component = self.target_component(options.component)?;
        Ok(TaskFunction { function, options: task_options(options, component) })
    }

    /// Schedules a call of `function`: its result's ref, or its stream's.
    fn submit(
        &mut self,
        TaskFunction { function, options }: TaskFunction,
        args: Vec<types::Arg>,
        generator: bool,
    ) -> wasmtime::Result<types::ObjectRef> {
        let calls = &self.ctx()?.calls;
        let (name, args) = (function, task_args(args));
        if generator {
            let id = calls.remote_generator(name, args, options);
            self.streams.open(id);
            Ok(wit_ref(id))
        } else {
            let id = calls.remote(name, args, options);
            Ok(self.adopt(id))
        }
    }

    /// Calls `method` of `actor`: its result's ref, or its stream's.
    fn call_method(
        &mut self,
        ActorMethod { actor, method }: ActorMethod,
        args: Vec<types::Arg>,
        generator: bool,
    ) -> wasmtime::Result<types::ObjectRef> {
        let id = self.ctx()?.calls.call_actor(actor, method, task_args(args), generator);
        if generator {
            self.streams.open(id);
            Ok(wit_ref(id))
        } else {
            Ok(self.adopt(id))
        }
    }

    /// Keeps `made` in the resource table, within [`MAX_PREPARED`].
    fn prepare<T: Send + 'static>(&mut self, made: T) -> wasmtime::Result<Resource<T>> {
        if self.prepared >= MAX_PREPARED {
            return Err(LimitError::Prepared.into());
        }
        self.prepared += 1;
        Ok(self.table.push(made)?)
    }

    fn prepared<T: 'static>(&self, made: &Resource<T>) -> wasmtime::Result<&T> {
        Ok(self.table.get(made)?)
    }

    fn unprepare<T: 'static>(&mut self, made: Resource<T>) -> wasmtime::Result<()> {
        self.table.delete(made)?;
        self.prepared -= 1;
        Ok(())
    }

    /// The component `options` name, or the caller's own.
    fn target_component(&self, component: Option<types::ComponentId>) -> wasmtime::Result<[u8; 32]> {
        Ok(match component {
            Some(id) => *object_id(id).as_bytes(),
            None => self.ctx()?.program.hash,
        })
    }
}

impl types::Host for InstanceState {}

/// The arguments of a call, as the scheduler takes them.
fn task_args(args: Vec<types::Arg>) -> Vec<TaskArg> {
    args.into_iter()
        .map(|arg| match arg {
            types::Arg::Value(bytes) => TaskArg::Value(bytes),
            types::Arg::Object(r) => TaskArg::Object(object_id(r)),
        })
        .collect()
}

impl actors::Host for InstanceState {
    async fn create(
        &mut self,
        class: String,
        args: Vec<types::Arg>,
        options: types::ActorOptions,
    ) -> Wit<types::ActorId> {
        let component = self.target_component(options.component)?;
        let options = ActorOptions {
            name: options.name,
            detached: options.detached,
            max_restarts: options.max_restarts,
            max_task_retries: options.max_task_retries,
            id: None,
            placement: placement(options.resources, options.node),
        };
        let calls = self.ctx()?.calls.clone();
        let created = calls.create_actor(component, class, task_args(args), options).await;
        Ok(created.map(wit_ref).map_err(|f| types::Error::from(&f)))
    }

    async fn call(
        &mut self,
        actor: types::ActorId,
        method: String,
        args: Vec<types::Arg>,
    ) -> wasmtime::Result<types::ObjectRef> {
        self.call_method(ActorMethod { actor: object_id(actor), method }, args, false)
    }

    async fn call_generator(
        &mut self,
        actor: types::ActorId,
        method: String,
        args: Vec<types::Arg>,
    ) -> wasmtime::Result<types::ObjectRef> {
        self.call_method(ActorMethod { actor: object_id(actor), method }, args, true)
    }

    async fn kill(&mut self, actor: types::ActorId, no_restart: bool) -> Wit<()> {
        Ok(self.ctx()?.calls.kill_actor(object_id(actor), no_restart).map_err(|f| types::Error::from(&f)))
    }

    async fn get_actor(&mut self, name: String) -> Wit<types::ActorId> {
        Ok(self.ctx()?.calls.actor_by_name(&name).map(wit_ref).map_err(|f| types::Error::from(&f)))
    }

    async fn next_call(&mut self, value: Vec<u8>) -> wasmtime::Result<Option<(String, Vec<types::Payload>)>> {
        if !matches!(self.method, Some(Method::Running)) {
            wasmtime::bail!(
                "`actors.next-call` was called outside an actor's running method call, or twice for one call: \
                 call it from `call-method`, once per call"
            );
        }
        Ok(match self.ctx()?.calls.next_call(value) {
            NextCall::Run(next) => {
                self.begin_next(&next);
                Some((next.method, lower(next.args)))
            }
            NextCall::Done => {
                self.method = Some(Method::Given);
                None
            }
            NextCall::Unchained(value) => {
                self.method = Some(Method::Kept(value));
                None
            }
        })
    }
}

fn task_options(options: types::TaskOptions, component: [u8; 32]) -> TaskOptions {
    TaskOptions {
        max_retries: options.max_retries,
        retry_exceptions: options.retry_exceptions,
        num_cpus: options.num_cpus,
        component: Some(component),
        placement: placement(options.resources, options.node),
    }
}

fn placement(resources: Vec<types::ResourceAmount>, node: Option<types::NodeAffinity>) -> Placement {
    Placement {
        resources: resources.into_iter().map(|r| (r.name, r.amount)).collect(),
        node: node.map(|a| Affinity { node: a.node, soft: a.soft }),
    }
}

impl tasks::Host for InstanceState {
    async fn remote(
        &mut self,
        function: String,
        args: Vec<types::Arg>,
        options: types::TaskOptions,
    ) -> wasmtime::Result<types::ObjectRef> {
        let function = self.task_function(function, options)?;
        self.submit(function, args, false)
    }

    async fn remote_generator(
        &mut self,
        function: String,
        args: Vec<types::Arg>,
        options: types::TaskOptions,
    ) -> wasmtime::Result<types::ObjectRef> {
        let function = self.task_function(function, options)?;
        self.submit(function, args, true)
    }

    async fn yield_item(&mut self, item: types::ObjectRef) -> Wit<()> {
        let id = object_id(item);
        let held = self.holdings.holds(&id);
        Ok(self.ctx()?.calls.yield_item(id, held).map_err(|f| types::Error::from(&f)))
    }

    async fn next_item(
        &mut self,
        generator: types::ObjectRef,
        timeout_ms: Option<u64>,
    ) -> Wit<Option<types::ObjectRef>> {
        let calls = self.ctx()?.calls.clone();
        let next = self.blocked(calls.next_item(object_id(generator), deadline(timeout_ms))).await?;
        Ok(match next {
            Ok(item) => Ok(item.map(|id| self.adopt(id))),
            Err(NextItem::TimedOut) => Err(types::Error::Timeout),
            Err(NextItem::Failed(failure)) => Err(types::Error::from(&failure)),
        })
    }

    async fn close_generator(&mut self, generator: types::ObjectRef) -> wasmtime::Result<()> {
        self.ctx()?;
        self.streams.close(&object_id(generator));
        Ok(())
    }

    async fn cancel(&mut self, task: types::ObjectRef, recursive: bool) -> Wit<()> {
        Ok(self.ctx()?.calls.cancel(object_id(task), recursive).map_err(|f| types::Error::from(&f)))
    }

    async fn node_id(&mut self) -> wasmtime::Result<String> {
        Ok(self.ctx()?.calls.node_id())
    }

    async fn component(&mut self, name: String) -> Wit<types::ComponentId> {
        let found = self.ctx()?.calls.component_named(&name);
        Ok(found.map(|id| wit_ref(ObjectId::from(id))).map_err(|f| types::Error::from(&f)))
    }
}

/// Task functions and actor methods an instance may hold at once: each is a
/// few bytes of host memory that the guest's own limits do not count.
pub(crate) const MAX_PREPARED: usize = 4096;

/// A `tasks.task-function`: the function and its options, as the scheduler
/// takes them.
#[derive(Clone)]
pub struct TaskFunction {
    function: String,
    options: TaskOptions,
}

/// An `actors.actor-method`.
#[derive(Clone)]
pub struct ActorMethod {
    actor: ObjectId,
    method: String,
}

impl tasks::HostTaskFunction for InstanceState {
    async fn new(&mut self, function: String, options: types::TaskOptions) -> wasmtime::Result<Resource<TaskFunction>> {
        let function = self.task_function(function, options)?;
        self.prepare(function)
    }

    async fn remote(
        &mut self,
        function: Resource<TaskFunction>,
        args: Vec<types::Arg>,
    ) -> wasmtime::Result<types::ObjectRef> {
        let function = self.prepared(&function)?.clone();
        self.submit(function, args, false)
    }

    async fn remote_generator(
        &mut self,
        function: Resource<TaskFunction>,
        args: Vec<types::Arg>,
    ) -> wasmtime::Result<types::ObjectRef> {
        let function = self.prepared(&function)?.clone();
        self.submit(function, args, true)
    }

    async fn drop(&mut self, function: Resource<TaskFunction>) -> wasmtime::Result<()> {
        self.unprepare(function)
    }
}

impl actors::HostActorMethod for InstanceState {
    async fn new(&mut self, actor: types::ActorId, method: String) -> wasmtime::Result<Resource<ActorMethod>> {
        self.prepare(ActorMethod { actor: object_id(actor), method })
    }

    async fn call(
        &mut self,
        method: Resource<ActorMethod>,
        args: Vec<types::Arg>,
    ) -> wasmtime::Result<types::ObjectRef> {
        let method = self.prepared(&method)?.clone();
        self.call_method(method, args, false)
    }

    async fn call_generator(
        &mut self,
        method: Resource<ActorMethod>,
        args: Vec<types::Arg>,
    ) -> wasmtime::Result<types::ObjectRef> {
        let method = self.prepared(&method)?.clone();
        self.call_method(method, args, true)
    }

    async fn drop(&mut self, method: Resource<ActorMethod>) -> wasmtime::Result<()> {
        self.unprepare(method)
    }
}
