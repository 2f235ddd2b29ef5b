//! prism's imports, as the host implements them for each instance.
//!
//! A `get` or `wait` that has to wait gives back the task's cpu slot first
//! and takes it back after, so tasks blocked on other tasks never hold the
//! slots those need (no deadlock with nested tasks, Ray's rule).

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio::time::Instant;

use super::bindings::{actors, objects, tasks, types};
use super::mapping::payload;
use super::state::{InstanceState, TaskContext};
use crate::actors::ActorOptions;
use crate::config::MAX_OBJECT_SIZE;
use crate::error::Failure;
use crate::generators::TimedOut;
use crate::scheduler::{TaskArg, TaskOptions};
use crate::store::{GetError, Object, ObjectId};

type Wit<T> = wasmtime::Result<Result<T, types::Error>>;

impl From<&Failure> for types::Error {
    fn from(failure: &Failure) -> Self {
        match failure {
            Failure::TaskFailed(chain) => types::Error::TaskFailed(
                chain
                    .iter()
                    .map(|l| types::Failure { function: l.function.clone(), message: l.message.clone() })
                    .collect(),
            ),
            Failure::NotFound(m) => types::Error::NotFound(m.clone()),
            Failure::InvalidArgument(m) => types::Error::InvalidArgument(m.clone()),
            Failure::LimitExceeded(m) => types::Error::LimitExceeded(m.clone()),
            Failure::ActorDied(m) => types::Error::ActorDied(m.clone()),
        }
    }
}

fn parse_ids(refs: &[Vec<u8>]) -> Result<Vec<ObjectId>, types::Error> {
    refs.iter().map(|r| ObjectId::try_from(r.as_slice()).map_err(types::Error::InvalidArgument)).collect()
}

fn deadline(timeout_ms: Option<u64>) -> Option<Instant> {
    timeout_ms.map(|ms| Instant::now() + Duration::from_millis(ms))
}

impl InstanceState {
    pub(super) fn ctx(&self) -> wasmtime::Result<&TaskContext> {
        self.task
            .as_ref()
            .ok_or_else(|| wasmtime::format_err!("prism imports cannot be called while a component is being loaded"))
    }

    /// Takes over the reference `id` carries and returns it for the guest.
    fn adopt(&mut self, id: ObjectId) -> types::ObjectRef {
        self.holdings.adopt(id);
        id.as_bytes().to_vec()
    }

    /// Awaits `fut` without holding the task's cpu slot.
    async fn blocked<T>(&mut self, fut: impl Future<Output = T>) -> wasmtime::Result<T> {
        let ctx = self.task.as_mut().expect("checked by ctx()");
        let held = ctx.slot.take().is_some();
        let out = fut.await;
        if held {
            ctx.slot = Some(ctx.node.scheduler.acquire(&ctx.node, ctx.num_cpus).await);
        }
        Ok(out)
    }
}

impl types::Host for InstanceState {}

impl objects::Host for InstanceState {
    async fn put(&mut self, value: Vec<u8>) -> Wit<types::ObjectRef> {
        let ctx = self.ctx()?;
        if value.len() > MAX_OBJECT_SIZE {
            return Ok(Err(types::Error::LimitExceeded(format!(
                "an object of {} bytes is larger than the maximum of {MAX_OBJECT_SIZE}",
                value.len()
            ))));
        }
        let stored = ctx.node.store.put(value);
        Ok(stored.map(|id| self.adopt(id)).map_err(|f| types::Error::from(&f)))
    }

    async fn get(&mut self, refs: Vec<types::ObjectRef>, timeout_ms: Option<u64>) -> Wit<Vec<types::Payload>> {
        let node = self.ctx()?.node.clone();
        let ids = match parse_ids(&refs) {
            Ok(ids) => ids,
            Err(e) => return Ok(Err(e)),
        };
        // Fast path: everything is ready, nothing to give back.
        let mut objects: Vec<Arc<Object>> = Vec::with_capacity(ids.len());
        for id in &ids {
            match node.store.try_get(id) {
                Some(Ok(o)) => objects.push(o),
                Some(Err(f)) => return Ok(Err(f.as_ref().into())),
                None => break,
            }
        }
        if objects.len() < ids.len() {
            let deadline = deadline(timeout_ms);
            let rest = &ids[objects.len()..];
            let waited = self
                .blocked(async {
                    let mut out = Vec::with_capacity(rest.len());
                    for id in rest {
                        out.push(node.store.get(id, deadline).await?);
                    }
                    Ok::<_, GetError>(out)
                })
                .await?;
            match waited {
                Ok(more) => objects.extend(more),
                Err(GetError::Timeout) => return Ok(Err(types::Error::Timeout)),
                Err(GetError::Failed(f)) => return Ok(Err(f.as_ref().into())),
            }
        }
        // Refs nested in the values arrive as refs: the guest holds them now.
        for id in &ids {
            node.store.nested(id).into_iter().for_each(|n| self.holdings.hold(n));
        }
        let payloads: Result<Vec<_>, _> = ids.iter().zip(&objects).map(|(id, object)| payload(*id, object)).collect();
        Ok(payloads.map_err(|f: Failure| types::Error::from(&f)))
    }

    async fn wait(
        &mut self,
        refs: Vec<types::ObjectRef>,
        num_returns: u32,
        timeout_ms: Option<u64>,
    ) -> Wit<types::WaitResult> {
        let node = self.ctx()?.node.clone();
        let ids = match parse_ids(&refs) {
            Ok(ids) => ids,
            Err(e) => return Ok(Err(e)),
        };
        let mut seen = HashSet::with_capacity(ids.len());
        if let Some(dup) = ids.iter().find(|id| !seen.insert(**id)) {
            return Ok(Err(types::Error::InvalidArgument(format!("ref `{dup}` appears more than once in `wait`"))));
        }
        let wanted = num_returns as usize;
        if wanted > ids.len() {
            return Ok(Err(types::Error::InvalidArgument(format!(
                "`num-returns` is {wanted} but only {} refs were given",
                ids.len()
            ))));
        }
        // A failed object counts as ready (its `get` returns at once); an
        // unknown one is an error.
        let mut ready = Vec::with_capacity(ids.len());
        for id in &ids {
            match node.store.try_get(id) {
                Some(Err(f)) if matches!(*f, Failure::NotFound(_)) => return Ok(Err(f.as_ref().into())),
                state => ready.push(state.is_some()),
            }
        }
        let count = ready.iter().filter(|r| **r).count();
        if count < wanted {
            let deadline = deadline(timeout_ms);
            let store = &node.store;
            let newly = self
                .blocked(async {
                    let mut pending: FuturesUnordered<_> = ids
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| !ready[*i])
                        .map(|(i, id)| async move {
                            let _ = store.get(id, None).await;
                            i
                        })
                        .collect();
                    let mut newly = Vec::new();
                    while count + newly.len() < wanted {
                        let next = match deadline {
                            Some(d) => tokio::time::timeout_at(d, pending.next()).await.ok().flatten(),
                            None => pending.next().await,
                        };
                        match next {
                            Some(i) => newly.push(i),
                            None => break,
                        }
                    }
                    newly
                })
                .await?;
            for i in newly {
                ready[i] = true;
            }
        }
        // Exactly `num-returns` (or fewer on timeout) ready, in input order.
        let mut result = types::WaitResult { ready: Vec::new(), not_ready: Vec::new() };
        for (i, r) in refs.into_iter().enumerate() {
            if ready[i] && result.ready.len() < wanted {
                result.ready.push(r);
            } else {
                result.not_ready.push(r);
            }
        }
        Ok(Ok(result))
    }

    async fn set_global(&mut self, name: String, value: types::ObjectRef) -> Wit<()> {
        let ctx = self.ctx()?;
        let id = match ObjectId::try_from(value.as_slice()) {
            Ok(id) => id,
            Err(e) => return Ok(Err(types::Error::InvalidArgument(e))),
        };
        if !ctx.node.store.retain(&id) {
            return Ok(Err(types::Error::NotFound(format!("no object `{id}` on this node"))));
        }
        if let Some(old) = ctx.job.globals.lock().insert(name, id) {
            ctx.node.store.release(&old);
        }
        Ok(Ok(()))
    }

    async fn get_global(&mut self, name: String) -> Wit<types::ObjectRef> {
        let ctx = self.ctx()?;
        let found = ctx.job.globals.lock().get(&name).copied();
        Ok(match found {
            Some(id) => {
                self.holdings.hold(id);
                Ok(id.as_bytes().to_vec())
            }
            None => Err(types::Error::NotFound(format!("no global `{name}` was set in this job"))),
        })
    }

    async fn release(&mut self, refs: Vec<types::ObjectRef>) -> wasmtime::Result<()> {
        for r in refs {
            if let Ok(id) = ObjectId::try_from(r.as_slice()) {
                self.holdings.release(&id);
            }
        }
        Ok(())
    }
}

/// The ref arguments of a call, checked; a malformed one fails the call.
fn task_args(args: Vec<types::Arg>) -> Result<Vec<TaskArg>, Failure> {
    args.into_iter()
        .map(|arg| match arg {
            types::Arg::Value(bytes) => Ok(TaskArg::Value(bytes)),
            types::Arg::Object(r) => ObjectId::try_from(r.as_slice()).map(TaskArg::Object),
        })
        .collect::<Result<Vec<_>, String>>()
        .map_err(Failure::InvalidArgument)
}

fn actor_id(id: &[u8]) -> Result<ObjectId, Failure> {
    ObjectId::try_from(id).map_err(|e| Failure::InvalidArgument(e.replace("object ref", "actor id")))
}

impl actors::Host for InstanceState {
    async fn create(
        &mut self,
        class: String,
        args: Vec<types::Arg>,
        options: types::ActorOptions,
    ) -> Wit<types::ActorId> {
        let ctx = self.ctx()?;
        let options = ActorOptions {
            name: options.name,
            detached: options.detached,
            max_restarts: options.max_restarts,
            max_task_retries: options.max_task_retries,
            id: None,
        };
        let created = task_args(args).and_then(|args| ctx.node.create_actor(&ctx.job, ctx.actor, class, args, options));
        Ok(created.map(|id| id.as_bytes().to_vec()).map_err(|f| types::Error::from(&f)))
    }

    async fn call(
        &mut self,
        actor: types::ActorId,
        method: String,
        args: Vec<types::Arg>,
    ) -> wasmtime::Result<types::ObjectRef> {
        let ctx = self.ctx()?;
        let id = match (actor_id(&actor), task_args(args)) {
            (Ok(actor), Ok(args)) => ctx.node.call_actor(ctx.caller, actor, method, args),
            (Err(f), _) | (_, Err(f)) => ctx.node.failed(f),
        };
        Ok(self.adopt(id))
    }

    async fn kill(&mut self, actor: types::ActorId) -> Wit<()> {
        let ctx = self.ctx()?;
        Ok(actor_id(&actor).and_then(|id| ctx.node.kill_actor(id)).map_err(|f| types::Error::from(&f)))
    }

    async fn get_actor(&mut self, name: String) -> Wit<types::ActorId> {
        let ctx = self.ctx()?;
        Ok(ctx.node.actor_by_name(&name).map(|id| id.as_bytes().to_vec()).map_err(|f| types::Error::from(&f)))
    }
}

fn task_options(options: types::TaskOptions) -> TaskOptions {
    TaskOptions {
        max_retries: options.max_retries,
        retry_exceptions: options.retry_exceptions,
        num_cpus: options.num_cpus,
    }
}

impl tasks::Host for InstanceState {
    async fn remote(
        &mut self,
        function: String,
        args: Vec<types::Arg>,
        options: types::TaskOptions,
    ) -> wasmtime::Result<types::ObjectRef> {
        let ctx = self.ctx()?;
        let id = match task_args(args) {
            Ok(args) => ctx.node.remote(&ctx.job, function, args, task_options(options)),
            Err(f) => ctx.node.failed(f),
        };
        Ok(self.adopt(id))
    }

    async fn remote_generator(
        &mut self,
        function: String,
        args: Vec<types::Arg>,
        options: types::TaskOptions,
    ) -> wasmtime::Result<types::ObjectRef> {
        let ctx = self.ctx()?;
        Ok(ctx.node.remote_generator(&ctx.job, function, task_args(args), task_options(options)).as_bytes().to_vec())
    }

    async fn yield_item(&mut self, item: types::ObjectRef) -> Wit<()> {
        self.ctx()?;
        let ctx = self.task.as_mut().expect("checked by ctx()");
        let id = match ObjectId::try_from(item.as_slice()) {
            Ok(id) => id,
            Err(e) => return Ok(Err(types::Error::InvalidArgument(e))),
        };
        let Some(generating) = ctx.generator.as_mut() else {
            let message = "`yield-item` is only for generator tasks (started with `remote-generator`)".to_string();
            return Ok(Err(types::Error::InvalidArgument(message)));
        };
        // The stream holds each item until the caller takes it.
        if generating.stream.push(generating.yielded, id) && !ctx.node.store.retain(&id) {
            return Ok(Err(types::Error::NotFound(format!("no object `{id}` on this node"))));
        }
        generating.yielded += 1;
        Ok(Ok(()))
    }

    async fn next_item(
        &mut self,
        generator: types::ObjectRef,
        timeout_ms: Option<u64>,
    ) -> Wit<Option<types::ObjectRef>> {
        let node = self.ctx()?.node.clone();
        let stream = match ObjectId::try_from(generator.as_slice()) {
            Ok(id) => match node.generators.get(&id) {
                Some(stream) => stream,
                None => return Ok(Err(types::Error::NotFound(format!("no generator `{id}` on this node")))),
            },
            Err(e) => return Ok(Err(types::Error::InvalidArgument(e.replace("object ref", "generator id")))),
        };
        let deadline = deadline(timeout_ms);
        Ok(match self.blocked(stream.next(deadline)).await? {
            Ok(item) => Ok(item.map(|id| self.adopt(id))),
            Err(TimedOut) => Err(types::Error::Timeout),
        })
    }

    async fn close_generator(&mut self, generator: types::ObjectRef) -> wasmtime::Result<()> {
        let node = self.ctx()?.node.clone();
        if let Ok(id) = ObjectId::try_from(generator.as_slice()) {
            for item in node.generators.close(&id) {
                node.store.release(&item);
            }
        }
        Ok(())
    }
}
