//! `prism:core/objects`: put, get and wait, registered by hand rather than
//! through generated bindings, which lift a `list<object-ref>` tuple by
//! tuple. [`Refs`] lifts it as the flat array of 32-byte ids it is in guest
//! memory (an object ref's four little-endian words are its bytes), which
//! `wait` on a thousand refs a thousand times needs.

use std::sync::Arc;

use wasmtime::StoreContextMut;
use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext};
use wasmtime::component::{ComponentType, Lift, Linker, WasmList};

use crate::bindings::types;
use crate::imports::{Wit, deadline, object_id, wit_ref};
use crate::mapping::payload;
use crate::state::InstanceState;
use prism_exec::Input;
use prism_store::MAX_OBJECT_SIZE;
use prism_store::error::Failure;
use prism_store::{GetError, IdHasher, IdSet, Object, ObjectId, checked_refs};

/// What generated bindings would lift a `list<object-ref>` as.
type Tuples = WasmList<(u64, u64, u64, u64)>;

/// A `list<object-ref>` lifted as ids.
struct Refs(Vec<ObjectId>);

impl Refs {
    /// The ids of the `len` refs at `ptr`, which [`Tuples`]' own lifting has
    /// checked for bounds and alignment.
    fn read(cx: &LiftContext<'_>, ptr: u32, len: usize) -> Self {
        let bytes = &cx.memory()[ptr as usize..][..len * 32];
        Refs(bytes.chunks_exact(32).map(|b| ObjectId::from(<[u8; 32]>::try_from(b).expect("32 bytes"))).collect())
    }
}

// SAFETY: the representation is exactly `list<tuple<u64, u64, u64, u64>>`'s
// (ABI, flat lowering and type check are delegated to wasmtime's own list).
unsafe impl ComponentType for Refs {
    type Lower = <Tuples as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <Tuples as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <Tuples as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: wasmtime's own list lifting validates the pointer and length
// first; only then are the bytes read.
unsafe impl Lift for Refs {
    fn linear_lift_from_flat(cx: &mut LiftContext<'_>, ty: InterfaceType, src: &Self::Lower) -> wasmtime::Result<Self> {
        let list = <Tuples as Lift>::linear_lift_from_flat(cx, ty, src)?;
        Ok(Self::read(cx, src[0].get_u32(), list.len()))
    }

    fn linear_lift_from_memory(cx: &mut LiftContext<'_>, ty: InterfaceType, bytes: &[u8]) -> wasmtime::Result<Self> {
        let list = <Tuples as Lift>::linear_lift_from_memory(cx, ty, bytes)?;
        let ptr = u32::from_le_bytes(bytes[..4].try_into().expect("a pointer is 4 bytes"));
        Ok(Self::read(cx, ptr, list.len()))
    }
}

/// Registers `prism:core/objects`.
pub(super) fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    let mut objects = linker.instance("prism:core/objects@0.3.0")?;
    objects.func_wrap_async("put", |mut store: StoreContextMut<'_, InstanceState>, (value,): (Vec<u8>,)| {
        Box::new(async move { Ok((store.data_mut().put(value).await?,)) })
    })?;
    objects.func_wrap_async(
        "get",
        |mut store: StoreContextMut<'_, InstanceState>, (refs, timeout): (Refs, Option<u64>)| {
            Box::new(async move { Ok((store.data_mut().get(refs.0, timeout).await?,)) })
        },
    )?;
    objects.func_wrap_async(
        "wait",
        |mut store: StoreContextMut<'_, InstanceState>, (refs, n, timeout): (Refs, u32, Option<u64>)| {
            Box::new(async move { Ok((store.data_mut().wait(refs.0, n, timeout).await?,)) })
        },
    )?;
    objects.func_wrap_async(
        "set-global",
        |mut store: StoreContextMut<'_, InstanceState>, (name, value): (String, types::ObjectRef)| {
            Box::new(async move { Ok((store.data_mut().set_global(name, value).await?,)) })
        },
    )?;
    objects.func_wrap_async("get-global", |mut store: StoreContextMut<'_, InstanceState>, (name,): (String,)| {
        Box::new(async move { Ok((store.data_mut().get_global(name).await?,)) })
    })?;
    objects.func_wrap_async("release", |mut store: StoreContextMut<'_, InstanceState>, (refs,): (Refs,)| {
        Box::new(async move { store.data_mut().release(refs.0).await })
    })?;
    Ok(())
}

/// A ref that appears twice in `ids`. Ids are blake3 output, so their first
/// words are already unique; only when two share one are whole ids compared.
fn duplicate(ids: &[ObjectId]) -> Option<ObjectId> {
    let mut first = FirstWords::with_capacity_and_hasher(ids.len(), Default::default());
    if ids.iter().all(|id| first.insert(id.words()[0])) {
        return None;
    }
    let mut seen = IdSet::with_capacity_and_hasher(ids.len(), Default::default());
    ids.iter().find(|id| !seen.insert(**id)).copied()
}

type FirstWords = std::collections::HashSet<u64, std::hash::BuildHasherDefault<IdHasher>>;

impl InstanceState {
    async fn put(&mut self, value: Vec<u8>) -> Wit<types::ObjectRef> {
        let ctx = self.ctx()?;
        if value.len() > MAX_OBJECT_SIZE {
            return Ok(Err(types::Error::LimitExceeded(format!(
                "an object of {} bytes is larger than the maximum of {MAX_OBJECT_SIZE}",
                value.len()
            ))));
        }
        // What `get` hands any reader must decode, in every language.
        let nested = match checked_refs(&value) {
            Ok(nested) => nested,
            Err(message) => {
                return Ok(Err(types::Error::InvalidArgument(format!("`put` refused the value: {message}"))));
            }
        };
        if let Some(unknown) = nested.iter().find(|id| !ctx.calls.store().knows(id)) {
            return Ok(Err(types::Error::NotFound(format!(
                "`put` refused the value: it nests the ref `{unknown}`, which names no object on this node"
            ))));
        }
        let stored = ctx.calls.store().put(value);
        Ok(stored.map(|id| self.adopt(id)).map_err(|f| types::Error::from(&f)))
    }

    async fn get(&mut self, ids: Vec<ObjectId>, timeout_ms: Option<u64>) -> Wit<Vec<types::Payload>> {
        let store = self.ctx()?.calls.store().clone();
        // Fast path: everything is ready, nothing to give back.
        let mut objects: Vec<Arc<Object>> = Vec::with_capacity(ids.len());
        for id in &ids {
            match store.try_get(id) {
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
                        out.push(store.get(id, deadline).await?);
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
            store.nested(id).into_iter().for_each(|n| self.holdings.hold(n));
        }
        let payloads: Result<Vec<_>, _> =
            ids.iter().zip(&objects).map(|(id, object)| Input::of(*id, object).map(payload)).collect();
        Ok(payloads.map_err(|f: Failure| types::Error::from(&f)))
    }

    async fn wait(&mut self, ids: Vec<ObjectId>, num_returns: u32, timeout_ms: Option<u64>) -> Wit<Vec<u32>> {
        let store = self.ctx()?.calls.store().clone();
        // Ray: waiting for nothing returns at once, whatever `num_returns`.
        if ids.is_empty() {
            return Ok(Ok(Vec::new()));
        }
        let wanted = num_returns as usize;
        if wanted == 0 || wanted > ids.len() {
            return Ok(Err(types::Error::InvalidArgument(format!(
                "`num-returns` must be from 1 to the {} refs given, not {wanted}",
                ids.len()
            ))));
        }
        if let Some(dup) = duplicate(&ids) {
            return Ok(Err(types::Error::InvalidArgument(format!("ref `{dup}` appears more than once in `wait`"))));
        }
        // A failed object counts as ready (its `get` returns at once); an
        // unknown one is an error. Only the first `wanted` ready ones are
        // returned as ready, so a scan stops there.
        let mut ready = vec![false; ids.len()];
        let mut count = 0;
        for (i, id) in ids.iter().enumerate() {
            if count == wanted {
                break;
            }
            match store.done(id) {
                Some(Err(f)) if matches!(*f, Failure::NotFound(_)) => return Ok(Err(f.as_ref().into())),
                Some(_) => {
                    ready[i] = true;
                    count += 1;
                }
                None => {}
            }
        }
        if count < wanted {
            let deadline = deadline(timeout_ms);
            let store = &store;
            // One sleep on the store's completions, then a rescan: no waiter
            // per ref, whatever the number of refs.
            ready = self
                .blocked(async move {
                    loop {
                        let completion = store.completion();
                        tokio::pin!(completion);
                        completion.as_mut().enable();
                        for (i, id) in ids.iter().enumerate() {
                            if count == wanted {
                                break;
                            }
                            if !ready[i] && store.done(id).is_some() {
                                ready[i] = true;
                                count += 1;
                            }
                        }
                        if count == wanted {
                            return ready;
                        }
                        let woke = match deadline {
                            Some(d) => tokio::time::timeout_at(d, completion).await.is_ok(),
                            None => {
                                completion.await;
                                true
                            }
                        };
                        if !woke {
                            return ready;
                        }
                    }
                })
                .await?;
        }
        // Exactly `num-returns` (or fewer on timeout) ready, in input order.
        let positions = ready.iter().enumerate().filter(|(_, r)| **r).map(|(i, _)| i as u32).take(wanted);
        Ok(Ok(positions.collect()))
    }

    async fn set_global(&mut self, name: String, value: types::ObjectRef) -> Wit<()> {
        Ok(self.ctx()?.calls.set_global(name, object_id(value)).map_err(|f| types::Error::from(&f)))
    }

    async fn get_global(&mut self, name: String) -> Wit<types::ObjectRef> {
        let found = self.ctx()?.calls.get_global(&name);
        Ok(match found {
            Some(id) => {
                self.holdings.hold(id);
                Ok(wit_ref(id))
            }
            None => Err(types::Error::NotFound(format!("no global `{name}` was set in this job"))),
        })
    }

    async fn release(&mut self, ids: Vec<ObjectId>) -> wasmtime::Result<()> {
        for id in ids {
            self.holdings.release(&id);
        }
        Ok(())
    }
}
