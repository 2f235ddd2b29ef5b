//! The object store: immutable objects named by 32-byte ids.
//!
//! Two tiers. The memory tier holds every object this process made or read
//! and the state of every pending task result; `get` and `wait` are served
//! from it. Small objects live there in full; a large one is written once,
//! at `put`, to an immutable file named by its hash ([`Object::Blob`]), which
//! guests map instead of copying. The disk tier ([`disk`]) makes objects
//! survive restarts: a background writer fsyncs blob files and group-commits
//! the index and small objects to redb, so `put` never waits for an fsync.
//! [`ObjectStore::flush`] waits until everything written before it is durable.

mod disk;
mod id;
mod object;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

pub use self::disk::DiskError;
use self::disk::{Disk, Stored};
pub use self::id::ObjectId;
pub use self::object::{Blob, Object};
use crate::error::Failure;

/// Inputs at least this large are hashed on all cores.
const PARALLEL_HASH_MIN: usize = 1 << 20;

/// Shards of the memory tier; a power of two so an id's first byte picks one.
const SHARDS: usize = 64;

enum Slot {
    Pending(Arc<Notify>),
    Ready(Arc<Object>),
    Failed(Arc<Failure>),
}

enum Peek {
    Ready(Arc<Object>),
    Failed(Arc<Failure>),
    Pending(Arc<Notify>),
    Absent,
}

/// The bytes of a new object.
enum Source<'a> {
    /// A whole encoding, owned.
    Encoded(Vec<u8>),
    /// The contents of a `bin`, borrowed (from guest memory).
    Bin(&'a [u8]),
}

/// Why `get` returned no value.
#[derive(Debug, Clone)]
pub enum GetError {
    /// The object failed (or is unknown); the failure says why.
    Failed(Arc<Failure>),
    /// The deadline passed first.
    Timeout,
}

/// The node's object store. Cheap to share behind an `Arc`.
pub struct ObjectStore {
    shards: Vec<Mutex<HashMap<ObjectId, Slot>>>,
    disk: Disk,
    blobs: PathBuf,
    /// Task result ids are blake3(nonce, counter): unique without coordination.
    nonce: [u8; 32],
    counter: AtomicU64,
}

impl ObjectStore {
    /// Opens (or creates) the store under `dir`.
    pub fn open(dir: &Path) -> Result<Self, DiskError> {
        Ok(ObjectStore {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            disk: Disk::open(dir)?,
            blobs: dir.join("blobs"),
            nonce: rand::random(),
            counter: AtomicU64::new(0),
        })
    }

    fn shard(&self, id: &ObjectId) -> &Mutex<HashMap<ObjectId, Slot>> {
        &self.shards[id.as_bytes()[0] as usize % SHARDS]
    }

    /// Stores `bytes` and returns their content address. Identical bytes are
    /// stored once.
    pub fn put(&self, bytes: Vec<u8>) -> Result<ObjectId, Failure> {
        let id = ObjectId::from(content_hash(&[&bytes]));
        self.insert(id, Source::Encoded(bytes))
    }

    /// Stores `data` as one MessagePack `bin` value, the same object (and
    /// ref) as `put` of its encoding, without encoding it first: `data` is
    /// hashed where it is and copied once (straight into the object's file
    /// if it is large), only if it is new.
    pub fn put_bin(&self, data: &[u8]) -> Result<ObjectId, Failure> {
        let id = ObjectId::from(content_hash(&[&object::bin_header(data.len()), data]));
        self.insert(id, Source::Bin(data))
    }

    fn insert(&self, id: ObjectId, source: Source<'_>) -> Result<ObjectId, Failure> {
        if matches!(self.peek(&id), Peek::Ready(_)) {
            return Ok(id);
        }
        // Built outside the lock: writing a large object takes a while.
        let object = Arc::new(self.build(&id, source)?);
        let mut shard = self.shard(&id).lock();
        if !matches!(shard.get(&id), Some(Slot::Ready(_))) {
            self.disk.write_object(id, object.clone());
            if let Some(Slot::Pending(n)) = shard.insert(id, Slot::Ready(object)) {
                n.notify_waiters();
            }
        }
        Ok(id)
    }

    /// The object with content hash `hash`: in memory if small, else written
    /// to its blob file, the only copy made.
    fn build(&self, hash: &ObjectId, source: Source<'_>) -> Result<Object, Failure> {
        let (header, body): (Vec<u8>, &[u8]) = match &source {
            Source::Encoded(bytes) => {
                let (header, body) = bytes.split_at(object::bin_header_len(bytes));
                (header.to_vec(), body)
            }
            Source::Bin(data) => (object::bin_header(data.len()), data),
        };
        if !object::is_large(header.len() + body.len()) {
            return Ok(Object::Inline(match source {
                Source::Encoded(bytes) => bytes,
                Source::Bin(data) => [&header, data].concat(),
            }));
        }
        let path = self.blobs.join(hash.to_string());
        object::write_body(&path, body)
            .map_err(|e| Failure::LimitExceeded(format!("the object store cannot write `{}`: {e}", path.display())))?;
        Ok(Object::Blob(Blob { header, body_len: body.len() as u64, path }))
    }

    /// A fresh id for a result that does not exist yet.
    pub fn pending(&self) -> ObjectId {
        let id = self.fresh_id();
        self.shard(&id).lock().insert(id, Slot::Pending(Arc::new(Notify::new())));
        id
    }

    /// An id no one has used: blake3 of this store's nonce and a counter.
    pub fn fresh_id(&self) -> ObjectId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.nonce).update(&n.to_le_bytes());
        ObjectId::from(*hasher.finalize().as_bytes())
    }

    /// Resolves the pending `id` with a value or a failure, waking its waiters.
    pub fn complete(&self, id: ObjectId, result: Result<Vec<u8>, Failure>) {
        let stored = result.and_then(|bytes| {
            let hash = ObjectId::from(content_hash(&[&bytes]));
            Ok((hash, self.build(&hash, Source::Encoded(bytes))?))
        });
        let slot = match stored {
            Ok((hash, object)) => {
                let object = Arc::new(object);
                self.disk.write_result(id, hash, object.clone());
                Slot::Ready(object)
            }
            Err(failure) => {
                self.disk.write_failure(id, &failure);
                Slot::Failed(Arc::new(failure))
            }
        };
        let previous = self.shard(&id).lock().insert(id, slot);
        if let Some(Slot::Pending(n)) = previous {
            n.notify_waiters();
        }
    }

    /// The value of `id` if it is ready now, without waiting: `None` while
    /// pending.
    pub fn try_get(&self, id: &ObjectId) -> Option<Result<Arc<Object>, Arc<Failure>>> {
        match self.peek(id) {
            Peek::Ready(o) => Some(Ok(o)),
            Peek::Failed(f) => Some(Err(f)),
            Peek::Pending(_) => None,
            Peek::Absent => Some(self.load(id)),
        }
    }

    /// Waits until `id` is ready (or failed) or `deadline` passes.
    pub async fn get(&self, id: &ObjectId, deadline: Option<Instant>) -> Result<Arc<Object>, GetError> {
        loop {
            let notify = match self.peek(id) {
                Peek::Ready(o) => return Ok(o),
                Peek::Failed(f) => return Err(GetError::Failed(f)),
                Peek::Pending(n) => n,
                Peek::Absent => return self.load(id).map_err(GetError::Failed),
            };
            let notified = notify.notified();
            tokio::pin!(notified);
            // Register before re-checking, so a completion in between is seen.
            notified.as_mut().enable();
            if let Some(done) = self.try_get(id) {
                return done.map_err(GetError::Failed);
            }
            match deadline {
                Some(deadline) => {
                    if tokio::time::timeout_at(deadline, notified).await.is_err() {
                        return Err(GetError::Timeout);
                    }
                }
                None => notified.await,
            }
        }
    }

    /// The memory tier's view of `id`, with the shard unlocked again.
    fn peek(&self, id: &ObjectId) -> Peek {
        match self.shard(id).lock().get(id) {
            Some(Slot::Ready(o)) => Peek::Ready(o.clone()),
            Some(Slot::Failed(f)) => Peek::Failed(f.clone()),
            Some(Slot::Pending(n)) => Peek::Pending(n.clone()),
            None => Peek::Absent,
        }
    }

    /// Reads `id` from disk into the memory tier; unknown ids fail with
    /// `NotFound`.
    fn load(&self, id: &ObjectId) -> Result<Arc<Object>, Arc<Failure>> {
        let slot = match self.disk.load(id) {
            Ok(Some(Stored::Value(object))) => Slot::Ready(Arc::new(object)),
            Ok(Some(Stored::Failed(failure))) => Slot::Failed(Arc::new(failure)),
            Ok(None) => return Err(Arc::new(Failure::NotFound(format!("no object `{id}` on this node")))),
            Err(err) => {
                tracing::error!(%id, error = %err, "cannot read object from disk");
                return Err(Arc::new(Failure::NotFound(format!("object `{id}` cannot be read: {err}"))));
            }
        };
        let mut shard = self.shard(id).lock();
        let slot = shard.entry(*id).or_insert(slot);
        match slot {
            Slot::Ready(o) => Ok(o.clone()),
            Slot::Failed(f) => Err(f.clone()),
            Slot::Pending(_) => unreachable!("a loaded slot is never pending"),
        }
    }

    /// Blocks until every object written before this call is on disk.
    pub fn flush(&self) -> Result<(), DiskError> {
        self.disk.flush()
    }
}

/// blake3 of the concatenation of `parts`, on all cores for large parts.
pub fn content_hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new();
    for part in parts {
        if part.len() >= PARALLEL_HASH_MIN {
            hasher.update_rayon(part);
        } else {
            hasher.update(part);
        }
    }
    *hasher.finalize().as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_bin_is_the_same_object_as_put_of_the_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        for len in [0, 10, 255, 256, 65_535, 65_536, 200_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let encoded = rmp_serde::to_vec(serde_bytes::Bytes::new(&data)).unwrap();
            let id = store.put_bin(&data).unwrap();
            assert_eq!(id, store.put(encoded.clone()).unwrap(), "length {len}");
            assert_eq!(store.try_get(&id).unwrap().unwrap().to_vec().unwrap(), encoded);
        }
    }
}
