//! `put`, `get` and `wait`: the object store as Ray users know it.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::encoding::encode;
use crate::object_ref::flush_releases;
use crate::view::{View, decode_payload};
use crate::wit::prism::core::objects;
use crate::{ObjectRef, Result};

/// Raw bytes, stored as one MessagePack `bin` value.
pub type Bytes = serde_bytes::ByteBuf;

/// Stores `value` and returns its ref. Identical values give identical refs.
pub fn put<T: Serialize>(value: &T) -> Result<ObjectRef<T>> {
    Ok(ObjectRef::from_wit(objects::put(&encode(value))?))
}

/// Stores raw bytes (any language reads them as a byte string). The host
/// reads them straight from this guest's memory: no encoding, one copy.
pub fn put_bytes(bytes: &[u8]) -> Result<ObjectRef<Bytes>> {
    Ok(ObjectRef::from_wit(crate::wit::prism::core::bytes::put_bytes(bytes)?))
}

/// Blocks until the object is ready and returns its value.
pub fn get<T: DeserializeOwned + 'static>(r: &ObjectRef<T>) -> Result<T> {
    get_inner(std::slice::from_ref(r), None).map(|mut v| v.remove(0))
}

/// [`get`], failing with [`crate::Error::Timeout`] after `timeout`.
pub fn get_timeout<T: DeserializeOwned + 'static>(r: &ObjectRef<T>, timeout: Duration) -> Result<T> {
    get_inner(std::slice::from_ref(r), Some(timeout)).map(|mut v| v.remove(0))
}

/// The values of `refs`, in order (duplicates allowed).
pub fn get_all<T: DeserializeOwned + 'static>(refs: &[ObjectRef<T>]) -> Result<Vec<T>> {
    get_inner(refs, None)
}

/// [`get_all`], failing with [`crate::Error::Timeout`] after `timeout`.
pub fn get_all_timeout<T: DeserializeOwned + 'static>(refs: &[ObjectRef<T>], timeout: Duration) -> Result<Vec<T>> {
    get_inner(refs, Some(timeout))
}

/// The bytes stored by [`put_bytes`] (or `put` of a byte string): a large
/// object is mapped into this guest's memory, not copied.
pub fn get_bytes(r: &ObjectRef<Bytes>) -> Result<View> {
    flush_releases();
    let payloads = objects::get(&[r.to_wit()], None)?;
    View::from_payload(&payloads[0])
}

fn get_inner<T: DeserializeOwned + 'static>(refs: &[ObjectRef<T>], timeout: Option<Duration>) -> Result<Vec<T>> {
    let ids: Vec<_> = refs.iter().map(ObjectRef::to_wit).collect();
    flush_releases();
    let payloads = objects::get(&ids, timeout.map(millis))?;
    payloads.iter().map(decode_payload).collect()
}

/// What [`wait`] returns: `(ready, not_ready)`.
pub type Ready<T> = (Vec<ObjectRef<T>>, Vec<ObjectRef<T>>);

/// Waits until one of `refs` is ready, and returns `(ready, not_ready)`,
/// both in input order: Ray's `ray.wait(refs)`, with its default
/// `num_returns=1`. `[]` gives two empty lists; duplicates are an error.
pub fn wait<T>(refs: &[ObjectRef<T>]) -> Result<Ready<T>> {
    wait_with(refs, 1, None)
}

/// Waits until `num_returns` of `refs` are ready or `timeout` passes, and
/// returns `(ready, not_ready)`, both in input order (Ray's `ray.wait(refs,
/// num_returns=, timeout=)`). `num_returns` must be from 1 to `refs.len()`
/// unless `refs` is empty; duplicates are an error.
pub fn wait_with<T>(refs: &[ObjectRef<T>], num_returns: usize, timeout: Option<Duration>) -> Result<Ready<T>> {
    let ids: Vec<_> = refs.iter().map(ObjectRef::to_wit).collect();
    let num = u32::try_from(num_returns).unwrap_or(u32::MAX);
    flush_releases();
    let positions = objects::wait(&ids, num, timeout.map(millis))?;
    // The host names the ready ones by position: split `refs` in one walk.
    let mut ready = Vec::with_capacity(positions.len());
    let mut not_ready = Vec::with_capacity(refs.len() - positions.len().min(refs.len()));
    let mut next_ready = positions.iter().map(|&p| p as usize).peekable();
    for (i, r) in refs.iter().enumerate() {
        if next_ready.next_if_eq(&i).is_some() {
            ready.push(r.clone());
        } else {
            not_ready.push(r.clone());
        }
    }
    Ok((ready, not_ready))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
