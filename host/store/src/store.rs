//! [`ObjectStore`]: the memory tier, reference counts and capacity, over
//! the disk tier ([`crate::disk`]).

use std::collections::VecDeque;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::disk::{Disk, DiskError, Stored};
use crate::error::{Failure, io_failure};
use crate::object::{self, Blob, Object};
use crate::{INLINE_OBJECT_MAX, IdMap, IdSet, MAX_OBJECT_SIZE, ObjectId, nested};

/// Inputs at least this large are hashed on all cores.
const PARALLEL_HASH_MIN: usize = 1 << 20;

/// Shards of the memory tier; a power of two so an id's first byte picks one.
const SHARDS: usize = 64;

enum Slot {
    Pending(Arc<Notify>),
    /// Ready on another node: its demand, taken by the first reader here,
    /// fetches it (the slot is pending from then on) or fails it; its
    /// whereabouts, if known, say where it is without fetching it.
    Elsewhere(Arc<Notify>, Demand, Option<Whereabouts>),
    Ready(Arc<Object>),
    Failed(Arc<Failure>),
}

/// Fetches an object kept on another node, completing it here; called once,
/// when it is first read here, outside the store's locks.
pub type Demand = Box<dyn FnOnce() + Send>;

/// Where an object kept on another node is, as the layer that left it there
/// describes it (a cluster's node and the object's name there), for that
/// layer to read back with [`ObjectStore::whereabouts`].
pub type Whereabouts = Arc<dyn std::any::Any + Send + Sync>;

impl Slot {
    /// Whether something will complete it (a pending result), so that it
    /// stays with no reference until then.
    fn completing(&self) -> bool {
        matches!(self, Slot::Pending(_))
    }

    /// Who waits for it, if it is not done.
    fn waiters(self) -> Option<Arc<Notify>> {
        match self {
            Slot::Pending(n) | Slot::Elsewhere(n, ..) => Some(n),
            Slot::Ready(_) | Slot::Failed(_) => None,
        }
    }
}

/// Called once if a failed object is deleted before anyone read its failure
/// (Ray's "unhandled error"), outside the store's locks, with its id.
pub type Unread = Box<dyn FnOnce(&ObjectId, &Failure) + Send>;

/// An object in the memory tier, with what keeps it alive.
struct Entry {
    slot: Slot,
    /// Who is told if it is a failure deleted unread; taken by the first read.
    unread: Option<Unread>,
    /// Holders: instances that were handed the ref, pending tasks taking it
    /// as an argument, objects it is nested in, job globals, streams.
    refs: u32,
    /// The refs nested in its value, which it holds.
    nested: Vec<ObjectId>,
    usage: Usage,
    /// Told when it is deleted here.
    gone: Option<Gone>,
    /// Whether the disk tier has it (or will, once the writer commits).
    on_disk: bool,
}

impl Entry {
    /// A new entry with one reference, nesting nothing, taking no room yet.
    fn held(slot: Slot, on_disk: bool) -> Self {
        Entry { gone: None, slot, unread: None, refs: 1, nested: Vec::new(), usage: Usage::default(), on_disk }
    }

    /// Wakes who waits for it, and tells who asked, as it is deleted unmade.
    fn forget(self) {
        if let Some(waiters) = self.slot.waiters() {
            waiters.notify_waiters();
        }
        if let Some(gone) = self.gone {
            gone();
        }
    }
}

/// Called once when an object is deleted here (see
/// [`ObjectStore::when_gone`]), outside the store's locks.
pub type Gone = Box<dyn FnOnce() + Send>;

/// Bytes an object takes: in memory (small objects) and in all (stored).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Usage {
    memory: u64,
    total: u64,
}

impl Usage {
    fn of(object: &Object) -> Usage {
        match object {
            Object::Inline(bytes) => Usage { memory: bytes.len() as u64, total: bytes.len() as u64 },
            Object::Blob(_) => Usage { memory: 0, total: object.len() },
        }
    }
}

/// How much the store may hold. Unreferenced objects are evicted to make
/// room; past that, a new object fails with `limit-exceeded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Bytes of small objects held in memory.
    pub memory: u64,
    /// Bytes of all objects stored (memory and blob files).
    pub disk: u64,
    /// What raises them, for the message of a full store.
    pub raise: &'static str,
}

impl Capacity {
    /// No bounds.
    pub const UNBOUNDED: Capacity = Capacity { memory: u64::MAX, disk: u64::MAX, raise: "" };
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
    /// The contents of a large `bin`, already in a temporary blob file of
    /// this many bytes.
    File(PathBuf, u64),
}

/// A byte string read from a stream.
enum Streamed {
    /// Small enough to keep in memory.
    Small(Vec<u8>),
    /// In a temporary blob file: its path, length and content hash.
    File(PathBuf, u64, ObjectId),
}

/// A new object, its blob written but not yet in place.
struct Built {
    object: Object,
    /// The file written for a blob (a temporary one until it is renamed to
    /// `object`'s path); removed if the object is discarded.
    temp: Option<PathBuf>,
    nested: Vec<ObjectId>,
    usage: Usage,
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
///
/// Objects are reference counted. `put`, `put_bin` and `pending` return an
/// id carrying one reference, which the caller owns: it hands it to a
/// holder or gives it back with [`ObjectStore::release`]. An object whose
/// count drops to zero is deleted from memory and disk, and releases the
/// refs nested in it.
pub struct ObjectStore {
    shards: Vec<Mutex<IdMap<Entry>>>,
    disk: Disk,
    blobs: PathBuf,
    capacity: Mutex<Capacity>,
    used: Mutex<Usage>,
    /// Objects nothing references, kept until room is needed: those found
    /// on disk at startup (no holder survives a restart). May hold ids
    /// deleted since.
    orphans: Mutex<VecDeque<(ObjectId, Usage)>>,
    /// Objects on disk not read since startup. With the memory tier, this
    /// is everything the store has: absent from both means unknown.
    unloaded: Mutex<IdSet>,
    /// Task result ids are blake3(nonce, counter): unique without coordination.
    nonce: [u8; 32],
    counter: AtomicU64,
    /// Notified whenever a pending result completes: what `wait` on many
    /// refs sleeps on, instead of a waiter per ref.
    completed: Notify,
    results: Results,
}

/// Removes the files in `blobs` that the index does not name: large results
/// kept in memory by an earlier process, and what a `kill -9` cut short (a
/// temporary file, or a blob whose commit never came).
fn remove_unindexed(blobs: &Path, indexed: &IdSet) -> Result<(), DiskError> {
    let io = |source| DiskError::Io { path: blobs.to_path_buf(), source };
    for file in std::fs::read_dir(blobs).map_err(io)? {
        let path = file.map_err(io)?.path();
        let named = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse::<ObjectId>().ok());
        if !named.is_some_and(|id| indexed.contains(&id)) {
            std::fs::remove_file(&path).map_err(io)?;
        }
    }
    Ok(())
}

/// Whether task results reach the disk tier, as `put`s do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Results {
    /// Written behind like a `put`: a result that a client holds a ref to
    /// survives a restart (`prism serve`).
    Durable,
    /// Kept in memory (a large one in its file, never synced) and gone with
    /// the process, as Ray keeps them: where nothing holds a ref across a
    /// restart (`prism run`, a cluster's nodes), writing them is only cost.
    InMemory,
}

impl ObjectStore {
    /// Opens (or creates) the store under `dir`, without bounds, with
    /// durable results.
    pub fn open(dir: &Path) -> Result<Self, DiskError> {
        Self::open_with(dir, Capacity::UNBOUNDED, Results::Durable)
    }

    /// Opens (or creates) the store under `dir`, holding at most `capacity`.
    pub fn open_with(dir: &Path, capacity: Capacity, results: Results) -> Result<Self, DiskError> {
        let disk = Disk::open(dir)?;
        let orphans: VecDeque<_> =
            disk.sizes()?.into_iter().map(|(id, total)| (id, Usage { memory: 0, total })).collect();
        let used = Usage { memory: 0, total: orphans.iter().map(|(_, u)| u.total).sum() };
        let unloaded: IdSet = orphans.iter().map(|(id, _)| *id).collect();
        remove_unindexed(&dir.join("blobs"), &unloaded)?;
        Ok(ObjectStore {
            shards: (0..SHARDS).map(|_| Mutex::new(IdMap::default())).collect(),
            disk,
            blobs: dir.join("blobs"),
            capacity: Mutex::new(capacity),
            used: Mutex::new(used),
            orphans: Mutex::new(orphans),
            unloaded: Mutex::new(unloaded),
            nonce: rand::random(),
            counter: AtomicU64::new(0),
            completed: Notify::new(),
            results,
        })
    }

    fn shard(&self, id: &ObjectId) -> &Mutex<IdMap<Entry>> {
        &self.shards[id.as_bytes()[0] as usize % SHARDS]
    }

    /// Stores `bytes` and returns their content address, with one reference.
    /// Identical bytes are stored once.
    pub fn put(&self, bytes: Vec<u8>) -> Result<ObjectId, Failure> {
        let id = ObjectId::from(content_hash(&[&bytes]));
        self.insert(id, id, Source::Encoded(bytes))
    }

    /// Stores `data` as one MessagePack `bin` value, the same object (and
    /// ref) as `put` of its encoding, without encoding it first: `data` is
    /// hashed where it is and copied once (straight into the object's file
    /// if it is large), only if it is new.
    pub fn put_bin(&self, data: &[u8]) -> Result<ObjectId, Failure> {
        let id = ObjectId::from(content_hash(&[&object::bin_header(data.len()), data]));
        self.insert(id, id, Source::Bin(data))
    }

    /// Stores all that `reader` yields as one `bin` value: the same object
    /// as `put_bin` of those bytes, but a large one streams into its blob
    /// file (and is hashed there), so memory holds only a buffer of it.
    pub fn put_bin_streamed(&self, reader: impl io::Read) -> Result<ObjectId, Failure> {
        match self.stream_bin(reader)? {
            Streamed::Small(data) => self.put_bin(&data),
            Streamed::File(temp, len, hash) => self.insert(hash, hash, Source::File(temp, len)),
        }
    }

    /// Stores a copy of object `id`, made elsewhere, from its encoding; it
    /// must hash to `hash`. Takes a reference, as `put` does.
    pub fn adopt(&self, id: ObjectId, hash: ObjectId, bytes: Vec<u8>) -> Result<(), Failure> {
        if content_hash(&[&bytes]) != *hash.as_bytes() {
            return Err(mismatch(&id));
        }
        self.insert(id, hash, Source::Encoded(bytes)).map(drop)
    }

    /// Stores a copy of object `id`, a byte string of `len` bytes that
    /// `reader` yields: a large one streams into its blob file, hashed as it
    /// arrives (one pass over the bytes). It must hash to `hash`, or nothing
    /// is kept.
    pub fn adopt_bin_streamed(
        &self,
        id: ObjectId,
        hash: ObjectId,
        len: u64,
        mut reader: impl io::Read,
    ) -> Result<(), Failure> {
        let cut_off = |e: io::Error| Failure::InvalidArgument(format!("the copy of `{id}` was cut off: {e}"));
        if !object::is_large(len as usize) {
            let mut data = object::bin_header(len as usize);
            io::Read::read_to_end(&mut reader.take(len), &mut data).map_err(cut_off)?;
            return self.adopt(id, hash, data);
        }
        if len > MAX_OBJECT_SIZE as u64 {
            return Err(Failure::LimitExceeded(format!(
                "an object of {len} bytes is larger than the largest object, {MAX_OBJECT_SIZE} bytes"
            )));
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(&object::bin_header(len as usize));
        let written = object::write_temp(&self.blobs, |file| {
            let mut buffer = vec![0; 1 << 20];
            let mut left = len;
            while left > 0 {
                let want = buffer.len().min(left as usize);
                let n = reader.read(&mut buffer[..want])?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the sender stopped midway"));
                }
                hasher.update(&buffer[..n]);
                io::Write::write_all(file, &buffer[..n])?;
                left -= n as u64;
            }
            Ok(())
        });
        let (temp, ()) = written.map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => cut_off(e),
            _ => self.cannot_write(e),
        })?;
        if ObjectId::from(*hasher.finalize().as_bytes()) != hash {
            let _ = std::fs::remove_file(temp);
            return Err(mismatch(&id));
        }
        self.insert(id, hash, Source::File(temp, len)).map(drop)
    }

    /// Stores object `id` as a copy of object `from`, if this store has it
    /// (the same bytes under another id: a byte string's file is linked,
    /// not copied); `false` if it does not. Takes a reference, as `put`
    /// does.
    pub fn copy(&self, id: ObjectId, from: &ObjectId) -> Result<bool, Failure> {
        let Some(Ok(object)) = self.try_get(from) else { return Ok(false) };
        let hash = match &*object {
            Object::Blob(blob) if blob.is_raw() => {
                let (temp, ()) = object::write_temp(&self.blobs, |_| Ok(())).map_err(|e| self.cannot_write(e))?;
                std::fs::remove_file(&temp)
                    .and_then(|()| std::fs::hard_link(&blob.path, &temp))
                    .map_err(|e| self.cannot_write(e))?;
                self.insert(id, blob.hash, Source::File(temp, blob.body_len))?;
                return Ok(true);
            }
            Object::Blob(blob) => blob.hash,
            Object::Inline(bytes) => ObjectId::from(content_hash(&[bytes])),
        };
        self.insert(id, hash, Source::Encoded(object.to_vec()?))?;
        Ok(true)
    }

    /// Reads all that `reader` yields as the contents of one `bin` value:
    /// a small one into memory, a large one into a temporary blob file,
    /// hashed there.
    fn stream_bin(&self, mut reader: impl io::Read) -> Result<Streamed, Failure> {
        let cut_off = |e: io::Error| Failure::InvalidArgument(format!("the bytes to store were cut off: {e}"));
        let mut head = Vec::new();
        io::Read::read_to_end(&mut (&mut reader).take(INLINE_OBJECT_MAX as u64 + 1), &mut head).map_err(cut_off)?;
        if head.len() <= INLINE_OBJECT_MAX {
            return Ok(Streamed::Small(head));
        }
        let (temp, len) = object::write_temp(&self.blobs, |file| {
            io::Write::write_all(file, &head)?;
            Ok(head.len() as u64 + io::copy(&mut reader, file)?)
        })
        .map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData => cut_off(e),
            _ => self.cannot_write(e),
        })?;
        let hashed = (|| {
            if len > MAX_OBJECT_SIZE as u64 {
                return Err(Failure::LimitExceeded(format!(
                    "an object of {len} bytes is larger than the largest object, {MAX_OBJECT_SIZE} bytes"
                )));
            }
            let mut hasher = blake3::Hasher::new();
            hasher.update(&object::bin_header(len as usize));
            hasher.update_mmap_rayon(&temp).map_err(|e| self.cannot_write(e))?;
            Ok(ObjectId::from(*hasher.finalize().as_bytes()))
        })();
        match hashed {
            Ok(hash) => Ok(Streamed::File(temp, len, hash)),
            Err(failure) => {
                let _ = std::fs::remove_file(&temp);
                Err(failure)
            }
        }
    }

    fn cannot_write(&self, e: io::Error) -> Failure {
        io_failure(format_args!("the object store cannot write in `{}`", self.blobs.display()), &e)
    }

    /// Stores object `id` (whose content hash is `hash`) with one
    /// reference, or takes one more if it is known.
    fn insert(&self, id: ObjectId, hash: ObjectId, source: Source<'_>) -> Result<ObjectId, Failure> {
        if self.retain(&id) {
            if let Source::File(temp, _) = source {
                let _ = std::fs::remove_file(temp);
            }
            return Ok(id);
        }
        // Built outside the lock: writing a large object takes a while.
        let built = self.build(&id, hash, source)?;
        let mut shard = self.shard(&id).lock();
        if let Some(entry) = shard.get_mut(&id) {
            // Stored meanwhile by someone else.
            entry.refs += 1;
            drop(shard);
            self.discard(built);
            return Ok(id);
        }
        let Built { object, temp, nested, usage } = built;
        if let (Some(temp), Object::Blob(blob)) = (&temp, &object)
            && let Err(e) = std::fs::rename(temp, &blob.path)
        {
            drop(shard);
            let _ = std::fs::remove_file(temp);
            self.unreserve(usage);
            return Err(io_failure(format_args!("the object store cannot write `{}`", blob.path.display()), &e));
        }
        let object = Arc::new(object);
        self.disk.write_object(id, hash, object.clone(), &nested);
        shard.insert(
            id,
            Entry {
                gone: None,
                slot: Slot::Ready(object),
                unread: None,
                refs: 1,
                nested: nested.clone(),
                usage,
                on_disk: true,
            },
        );
        drop(shard);
        self.retain_all(&nested);
        Ok(id)
    }

    /// Makes the object with content hash `hash` for `id`: in memory if
    /// small, else its body written to a temporary blob file, the only copy
    /// made. Room is reserved for it (evicting unreferenced objects).
    fn build(&self, id: &ObjectId, hash: ObjectId, source: Source<'_>) -> Result<Built, Failure> {
        let (header, body): (Vec<u8>, &[u8]) = match &source {
            Source::File(temp, len) => {
                let header = object::bin_header(*len as usize);
                let usage = Usage { memory: 0, total: header.len() as u64 + len };
                if let Err(failure) = self.reserve(usage) {
                    let _ = std::fs::remove_file(temp);
                    return Err(failure);
                }
                let blob = Blob { header, body_len: *len, path: self.blobs.join(id.to_string()), hash };
                return Ok(Built { object: Object::Blob(blob), temp: Some(temp.clone()), nested: Vec::new(), usage });
            }
            Source::Encoded(bytes) => {
                let (header, body) = bytes.split_at(object::bin_header_len(bytes));
                (header.to_vec(), body)
            }
            Source::Bin(data) => (object::bin_header(data.len()), data),
        };
        // A byte string holds no refs; anything else may.
        let nested = if header.is_empty() { nested::nested_refs(body) } else { Vec::new() };
        let len = (header.len() + body.len()) as u64;
        if !object::is_large(header.len() + body.len()) {
            let usage = Usage { memory: len, total: len };
            self.reserve(usage)?;
            let bytes = match source {
                Source::Encoded(bytes) => bytes,
                _ => [&header, body].concat(),
            };
            return Ok(Built { object: Object::Inline(bytes), temp: None, nested, usage });
        }
        let usage = Usage { memory: 0, total: len };
        self.reserve(usage)?;
        let (temp, ()) = object::write_temp(&self.blobs, |file| io::Write::write_all(file, body)).map_err(|e| {
            self.unreserve(usage);
            self.cannot_write(e)
        })?;
        let blob = Blob { header, body_len: body.len() as u64, path: self.blobs.join(id.to_string()), hash };
        Ok(Built { object: Object::Blob(blob), temp: Some(temp), nested, usage })
    }

    /// Throws away an object that was built but not inserted.
    fn discard(&self, built: Built) {
        if let Some(temp) = built.temp {
            let _ = std::fs::remove_file(temp);
        }
        self.unreserve(built.usage);
    }

    /// Takes room for `usage`, evicting unreferenced objects if needed.
    fn reserve(&self, usage: Usage) -> Result<(), Failure> {
        loop {
            {
                let mut used = self.used.lock();
                let memory = used.memory.saturating_add(usage.memory);
                let total = used.total.saturating_add(usage.total);
                let capacity = *self.capacity.lock();
                if memory <= capacity.memory && total <= capacity.disk {
                    *used = Usage { memory, total };
                    return Ok(());
                }
            }
            let Some((id, orphan)) = self.orphans.lock().pop_front() else {
                return Err(self.full(usage.total));
            };
            self.evict(id, orphan);
        }
    }

    /// Fails at once, as storing it would, if an object of `len` bytes
    /// cannot fit even after every unreferenced object is evicted: an
    /// upload that announces its size is refused before it is sent.
    pub fn check_room(&self, len: u64) -> Result<(), Failure> {
        let evictable: u64 = self.orphans.lock().iter().map(|(_, u)| u.total).sum();
        let held = self.used.lock().total.saturating_sub(evictable);
        if held.saturating_add(len) <= self.capacity.lock().disk { Ok(()) } else { Err(self.full(len)) }
    }

    fn full(&self, len: u64) -> Failure {
        let used = *self.used.lock();
        let capacity = *self.capacity.lock();
        Failure::LimitExceeded(format!(
            "the object store is full: an object of {len} bytes does not fit next to the {} bytes ({} in memory) \
             that referenced objects hold; the capacity is {} bytes ({} in memory), see {}",
            used.total, used.memory, capacity.disk, capacity.memory, capacity.raise
        ))
    }

    fn unreserve(&self, usage: Usage) {
        let mut used = self.used.lock();
        used.memory = used.memory.saturating_sub(usage.memory);
        used.total = used.total.saturating_sub(usage.total);
    }

    /// Deletes the orphan `id` unless something took a reference since.
    fn evict(&self, id: ObjectId, orphan: Usage) {
        let mut shard = self.shard(&id).lock();
        match shard.get(&id) {
            Some(entry) if entry.refs > 0 || entry.slot.completing() => {}
            Some(_) => {
                let entry = shard.remove(&id).expect("present");
                self.delete(id, &entry);
                drop(shard);
                self.unreserve(entry.usage);
                self.release_all(&entry.nested);
                entry.forget();
            }
            None if self.unloaded.lock().remove(&id) => {
                // Only on disk: its file and index entry go.
                let _ = std::fs::remove_file(self.blobs.join(id.to_string()));
                self.disk.delete(id);
                drop(shard);
                self.unreserve(orphan);
            }
            None => {}
        }
    }

    /// Deletes `id`'s file (under its shard's lock, so a new object with the
    /// same id cannot be renamed into place meanwhile) and index entry.
    fn delete(&self, id: ObjectId, entry: &Entry) {
        match &entry.slot {
            Slot::Ready(object) => {
                if let Some(blob) = object.blob() {
                    let _ = std::fs::remove_file(&blob.path);
                }
            }
            Slot::Failed(_) => {}
            // Never written here.
            Slot::Pending(_) | Slot::Elsewhere(..) => return,
        }
        if entry.on_disk {
            self.disk.delete(id);
        }
    }

    /// Adds a reference to `id`, loading it from disk if needed; false if
    /// the store has no such object.
    pub fn retain(&self, id: &ObjectId) -> bool {
        if let Some(entry) = self.shard(id).lock().get_mut(id) {
            entry.refs += 1;
            return true;
        }
        if self.load(id).is_err() {
            return false;
        }
        match self.shard(id).lock().get_mut(id) {
            Some(entry) => {
                entry.refs += 1;
                true
            }
            None => false,
        }
    }

    /// Whether `id` names an object here (ready, failed or pending, in
    /// memory or on disk).
    pub fn knows(&self, id: &ObjectId) -> bool {
        self.shard(id).lock().contains_key(id) || self.unloaded.lock().contains(id)
    }

    /// Gives back a reference to `id`; the last one deletes it (a pending
    /// result is deleted when it completes).
    pub fn release(&self, id: &ObjectId) {
        let mut work = vec![*id];
        while let Some(id) = work.pop() {
            let mut shard = self.shard(&id).lock();
            let Some(entry) = shard.get_mut(&id) else { continue };
            entry.refs = entry.refs.saturating_sub(1);
            if entry.refs > 0 || entry.slot.completing() {
                continue;
            }
            let mut entry = shard.remove(&id).expect("present");
            self.delete(id, &entry);
            drop(shard);
            self.unreserve(entry.usage);
            if let (Slot::Failed(failure), Some(unread)) = (&entry.slot, entry.unread.take()) {
                unread(&id, failure);
            }
            work.extend(std::mem::take(&mut entry.nested));
            entry.forget();
        }
    }

    fn retain_all(&self, ids: &[ObjectId]) {
        for id in ids {
            self.retain(id);
        }
    }

    fn release_all(&self, ids: &[ObjectId]) {
        for id in ids {
            self.release(id);
        }
    }

    /// The refs nested in `id`'s value (held by it).
    pub fn nested(&self, id: &ObjectId) -> Vec<ObjectId> {
        self.shard(id).lock().get(id).map(|e| e.nested.clone()).unwrap_or_default()
    }

    /// Makes `id` a failed object with one reference, durably: the result
    /// of a call that a restart lost.
    pub fn insert_failed(&self, id: ObjectId, failure: Failure) {
        self.disk.write_failure(id, &failure);
        let entry = Entry::held(Slot::Failed(Arc::new(failure)), true);
        self.shard(&id).lock().insert(id, entry);
    }

    /// A fresh id for a result that does not exist yet, with one reference.
    pub fn pending(&self) -> ObjectId {
        let id = self.fresh_id();
        let entry = Entry::held(Slot::Pending(Arc::new(Notify::new())), false);
        self.shard(&id).lock().insert(id, entry);
        id
    }

    /// An id no one has used: blake3 of this store's nonce and a counter.
    pub fn fresh_id(&self) -> ObjectId {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.nonce).update(&n.to_le_bytes());
        ObjectId::from(*hasher.finalize().as_bytes())
    }

    /// Resolves the pending `id` with a value or a failure, waking its
    /// waiters. A result no one holds any more is dropped. A failure is
    /// told to `unread` if its last holder lets go of it unread.
    pub fn complete(&self, id: ObjectId, result: Result<Vec<u8>, Failure>, unread: Option<Unread>) {
        let built = result.and_then(|bytes| {
            let hash = ObjectId::from(content_hash(&[&bytes]));
            let mut built = self.build(&id, hash, Source::Encoded(bytes))?;
            // A fresh id: nothing else writes this path, so no lock is needed.
            if let (Some(temp), Object::Blob(blob)) = (&built.temp, &built.object) {
                if let Err(e) = std::fs::rename(temp, &blob.path) {
                    let path = blob.path.display().to_string();
                    self.discard(built);
                    return Err(io_failure(format_args!("the object store cannot write `{path}`"), &e));
                }
                built.temp = Some(blob.path.clone());
            }
            Ok((hash, built))
        });
        let mut shard = self.shard(&id).lock();
        let Some(entry) = shard.get_mut(&id).filter(|e| e.refs > 0) else {
            let removed = shard.remove(&id);
            drop(shard);
            if let Some(entry) = removed {
                entry.forget();
            }
            if let Ok((_, built)) = built {
                self.discard(built);
            }
            return;
        };
        entry.on_disk = self.results == Results::Durable;
        let (slot, nested) = match built {
            Ok((hash, Built { object, nested, usage, .. })) => {
                let object = Arc::new(object);
                if entry.on_disk {
                    self.disk.write_object(id, hash, object.clone(), &nested);
                }
                entry.usage = usage;
                (Slot::Ready(object), nested)
            }
            Err(failure) => {
                if entry.on_disk {
                    self.disk.write_failure(id, &failure);
                }
                entry.unread = unread;
                (Slot::Failed(Arc::new(failure)), Vec::new())
            }
        };
        entry.nested = nested.clone();
        if let Some(waiters) = std::mem::replace(&mut entry.slot, slot).waiters() {
            waiters.notify_waiters();
        }
        drop(shard);
        self.completed.notify_waiters();
        self.retain_all(&nested);
    }

    /// The value of `id` if it is ready now, without waiting: `None` while
    /// pending.
    pub fn try_get(&self, id: &ObjectId) -> Option<Result<Arc<Object>, Arc<Failure>>> {
        match self.peek(id, true) {
            Peek::Ready(o) => Some(Ok(o)),
            Peek::Failed(f) => Some(Err(f)),
            Peek::Pending(_) => None,
            Peek::Absent => Some(self.load(id)),
        }
    }

    /// Whether `id` is done (`Some`, failed or not) or pending, as
    /// [`ObjectStore::try_get`] says, without reading it: a failure looked
    /// at here is still unread.
    pub fn done(&self, id: &ObjectId) -> Option<Result<(), Arc<Failure>>> {
        match self.peek(id, false) {
            Peek::Ready(_) => Some(Ok(())),
            Peek::Failed(f) => Some(Err(f)),
            Peek::Pending(_) => None,
            Peek::Absent => Some(self.load(id).map(drop)),
        }
    }

    /// Resolves once some pending result completes after the call (enable
    /// it before looking, so a completion in between is not missed).
    pub fn completion(&self) -> tokio::sync::futures::Notified<'_> {
        self.completed.notified()
    }

    /// Waits until `id` is ready (or failed) or `deadline` passes.
    pub async fn get(&self, id: &ObjectId, deadline: Option<Instant>) -> Result<Arc<Object>, GetError> {
        loop {
            let notify = match self.peek(id, true) {
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

    /// The memory tier's view of `id`, with the shard unlocked again; a
    /// failure seen with `read` has been read, and an object elsewhere is
    /// being fetched.
    fn peek(&self, id: &ObjectId, read: bool) -> Peek {
        let mut shard = self.shard(id).lock();
        let Some(entry) = shard.get_mut(id) else { return Peek::Absent };
        let (peek, demand) = match &entry.slot {
            Slot::Ready(o) => (Peek::Ready(o.clone()), None),
            Slot::Failed(f) => {
                if read {
                    entry.unread = None;
                }
                (Peek::Failed(f.clone()), None)
            }
            Slot::Pending(n) => (Peek::Pending(n.clone()), None),
            Slot::Elsewhere(n, ..) => {
                let waiters = n.clone();
                match std::mem::replace(&mut entry.slot, Slot::Pending(waiters.clone())) {
                    Slot::Elsewhere(_, demand, _) => (Peek::Pending(waiters), Some(demand)),
                    _ => unreachable!("matched above"),
                }
            }
        };
        drop(shard);
        if let Some(demand) = demand {
            demand();
        }
        peek
    }

    /// Waits until `id` is no longer pending here: ready, failed, or kept on
    /// another node, which this does not fetch (unlike [`ObjectStore::get`]).
    /// Every completion wakes every such waiter: for the few tasks that wait
    /// on a pending argument before they are sent elsewhere.
    pub async fn settled(&self, id: &ObjectId) {
        loop {
            let completion = self.completion();
            tokio::pin!(completion);
            completion.as_mut().enable();
            if !matches!(self.shard(id).lock().get(id).map(|e| &e.slot), Some(Slot::Pending(_))) {
                return;
            }
            completion.await;
        }
    }

    /// Where `id` is, if it is kept on another node and not yet fetched
    /// here (reading it this way does not fetch it).
    pub fn whereabouts(&self, id: &ObjectId) -> Option<Whereabouts> {
        match &self.shard(id).lock().get(id)?.slot {
            Slot::Elsewhere(_, _, whereabouts) => whereabouts.clone(),
            _ => None,
        }
    }

    /// Has `gone` called once `id` is deleted here (at once if it is not
    /// here): what a copy elsewhere is let go by.
    pub fn when_gone(&self, id: ObjectId, gone: Gone) {
        let mut shard = self.shard(&id).lock();
        let Some(entry) = shard.get_mut(&id) else {
            drop(shard);
            return gone();
        };
        entry.gone = Some(match entry.gone.take() {
            None => gone,
            Some(first) => Box::new(move || {
                first();
                gone();
            }),
        });
    }

    /// Makes `id`, an object ready on another node, known here with one
    /// reference: `demand` fetches it when it is first read (or fails it).
    /// If the store knows `id` already, it takes a reference to that
    /// instead, and returns false.
    pub fn expect(&self, id: ObjectId, demand: Demand, whereabouts: Option<Whereabouts>) -> bool {
        if self.retain(&id) {
            return false;
        }
        let entry = Entry::held(Slot::Elsewhere(Arc::new(Notify::new()), demand, whereabouts), false);
        let mut shard = self.shard(&id).lock();
        if let Some(entry) = shard.get_mut(&id) {
            // Made meanwhile by someone else.
            entry.refs += 1;
            return false;
        }
        shard.insert(id, entry);
        true
    }

    /// The pending result `id` is ready on another node: `demand` fetches
    /// it when it is first read. A result no one holds any more is dropped.
    pub fn complete_elsewhere(&self, id: ObjectId, demand: Demand, whereabouts: Option<Whereabouts>) {
        let mut shard = self.shard(&id).lock();
        match shard.get_mut(&id) {
            Some(entry) if entry.refs > 0 && matches!(entry.slot, Slot::Pending(_)) => {
                let Slot::Pending(waiters) = &entry.slot else { unreachable!("matched above") };
                let waiters = waiters.clone();
                // Readers waiting already read it: fetch it for them now.
                let waiting = Arc::strong_count(&waiters) > 2;
                entry.slot = Slot::Elsewhere(waiters, demand, whereabouts);
                drop(shard);
                self.completed.notify_waiters();
                if waiting {
                    self.peek(&id, false);
                }
            }
            Some(entry) if entry.refs == 0 => {
                let removed = shard.remove(&id).expect("present");
                drop(shard);
                removed.forget();
            }
            _ => {}
        }
    }

    /// Reads `id` from disk into the memory tier (unreferenced, as it was);
    /// unknown ids fail with `NotFound`.
    fn load(&self, id: &ObjectId) -> Result<Arc<Object>, Arc<Failure>> {
        if !self.unloaded.lock().contains(id) {
            return Err(Arc::new(Failure::NotFound(format!("no object `{id}` on this node"))));
        }
        let (slot, nested, usage) = match self.disk.load(id) {
            Ok(Some(Stored::Value(object, nested))) => {
                let usage = Usage::of(&object);
                (Slot::Ready(Arc::new(object)), nested, usage)
            }
            Ok(Some(Stored::Failed(failure))) => (Slot::Failed(Arc::new(failure)), Vec::new(), Usage::default()),
            Ok(None) => return Err(Arc::new(Failure::NotFound(format!("no object `{id}` on this node")))),
            Err(err) => {
                tracing::error!(%id, error = %err, "cannot read object from disk");
                return Err(Arc::new(Failure::HostFailed(format!("object `{id}` cannot be read: {err}"))));
            }
        };
        let mut shard = self.shard(id).lock();
        let loaded = !shard.contains_key(id);
        let entry = shard.entry(*id).or_insert(Entry {
            gone: None,
            slot,
            unread: None,
            refs: 0,
            nested: nested.clone(),
            usage,
            on_disk: true,
        });
        let found = match &entry.slot {
            Slot::Ready(o) => Ok(o.clone()),
            Slot::Failed(f) => Err(f.clone()),
            Slot::Pending(_) | Slot::Elsewhere(..) => unreachable!("a loaded slot is never pending"),
        };
        drop(shard);
        if loaded {
            // Its bytes on disk were counted at startup; now it is in memory too.
            self.unloaded.lock().remove(id);
            self.used.lock().memory += usage.memory;
            self.retain_all(&nested);
        }
        found
    }

    /// Holds at most `memory` bytes of small objects and `disk` in all
    /// from now on (what it holds already stays).
    pub fn set_capacity(&self, memory: u64, disk: u64) {
        let mut capacity = self.capacity.lock();
        capacity.memory = memory;
        capacity.disk = disk;
    }

    /// Bytes the store holds now: (in memory, in all).
    pub fn usage(&self) -> (u64, u64) {
        let used = *self.used.lock();
        (used.memory, used.total)
    }

    /// Objects in the memory tier (ready, failed or pending).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Whether the memory tier is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Blocks until every object written before this call is on disk.
    pub fn flush(&self) -> Result<(), Failure> {
        self.disk.flush()
    }
}

/// A copy whose bytes do not match the hash its sender gave.
fn mismatch(id: &ObjectId) -> Failure {
    Failure::HostFailed(format!("the copy of object `{id}` that arrived does not match its blake3 hash"))
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
    fn the_last_release_deletes_an_object_and_what_it_nests() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        let inner = store.put_bin(&[7; 100_000]).unwrap();
        let ext = [&[0xc7, 32, 0x50][..], inner.as_bytes()].concat();
        let outer = store.put([&[0x91][..], &ext].concat()).unwrap();
        assert_eq!(store.nested(&outer), [inner]);
        store.release(&inner);
        assert!(store.try_get(&inner).unwrap().is_ok(), "held by `outer`");
        store.release(&outer);
        assert!(store.is_empty());
        assert_eq!(store.usage(), (0, 0));
        assert_eq!(std::fs::read_dir(dir.path().join("blobs")).unwrap().count(), 0);
    }

    /// An object elsewhere is fetched by its first reader only, and one no
    /// one holds any more is forgotten, its demand dropped unrun.
    #[tokio::test]
    async fn an_object_elsewhere_is_fetched_once_when_first_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(ObjectStore::open(dir.path()).unwrap());
        let asked = Arc::new(AtomicU64::new(0));
        let demand = |store: &Arc<ObjectStore>, id: ObjectId| -> Demand {
            let (store, asked) = (store.clone(), asked.clone());
            Box::new(move || {
                asked.fetch_add(1, Ordering::Relaxed);
                store.complete(id, Ok(vec![0x2a]), None);
            })
        };
        let result = store.pending();
        store.complete_elsewhere(result, demand(&store, result), None);
        assert_eq!(asked.load(Ordering::Relaxed), 0, "no one read it yet");
        assert!(store.done(&result).is_none(), "not here yet when first read");
        assert_eq!(asked.load(Ordering::Relaxed), 1, "but fetched from then on");
        assert_eq!(store.get(&result, None).await.unwrap().to_vec().unwrap(), [0x2a]);
        assert_eq!(asked.load(Ordering::Relaxed), 1);
        let nested = ObjectId::from([9; 32]);
        assert!(store.expect(nested, demand(&store, nested), None));
        assert!(!store.expect(nested, demand(&store, nested), None), "known already: held again");
        store.release(&nested);
        store.release(&nested);
        assert!(!store.knows(&nested), "forgotten with its last holder");
        assert_eq!(asked.load(Ordering::Relaxed), 1, "and never fetched");
        // A reader that was waiting when the result was left elsewhere
        // makes it fetched at once.
        let waited = store.pending();
        let reader = tokio::spawn({
            let store = store.clone();
            async move { store.get(&waited, None).await.map(|o| o.to_vec().unwrap()) }
        });
        tokio::task::yield_now().await;
        store.complete_elsewhere(waited, demand(&store, waited), None);
        assert_eq!(reader.await.unwrap().unwrap(), [0x2a]);
    }

    #[test]
    fn a_result_nobody_holds_is_never_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        let id = store.pending();
        store.release(&id);
        assert!(store.try_get(&id).is_none(), "still pending");
        store.complete(id, Ok(vec![0xc4, 1, 1]), None);
        assert!(store.is_empty());
    }

    #[test]
    fn a_failure_released_unread_is_told_once_and_a_read_one_never() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        let told = Arc::new(Mutex::new(Vec::new()));
        let teller = || -> Option<Unread> {
            let told = told.clone();
            Some(Box::new(move |id: &ObjectId, failure: &Failure| told.lock().push((*id, failure.to_string()))))
        };
        let unread = store.pending();
        store.complete(unread, Err(Failure::task("f", "boom")), teller());
        assert!(store.retain(&unread));
        assert!(matches!(store.done(&unread), Some(Err(_))), "`done` is not a read");
        store.release(&unread);
        assert!(told.lock().is_empty(), "still held");
        store.release(&unread);
        assert_eq!(*told.lock(), [(unread, "task `f` failed: boom".to_string())]);
        let read = store.pending();
        store.complete(read, Err(Failure::task("g", "boom")), teller());
        assert!(matches!(store.try_get(&read), Some(Err(_))));
        store.release(&read);
        let unheld = store.pending();
        store.release(&unheld);
        store.complete(unheld, Err(Failure::task("h", "boom")), teller());
        assert_eq!(told.lock().len(), 1, "a read failure, and one nobody held, are not told");
    }

    #[test]
    fn writes_deleted_again_in_one_batch_leave_the_last_state_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        // Put, delete and put again, all inside one group-commit window.
        let again = store.put_bin(b"again").unwrap();
        store.release(&again);
        assert_eq!(store.put_bin(b"again").unwrap(), again);
        let small = store.put_bin(b"kept").unwrap();
        let large = store.put_bin(&[3; 100_000]).unwrap();
        let released = store.pending();
        store.complete(released, Ok(vec![0xc4, 1, 1]), None);
        store.release(&released);
        let gone = store.put_bin(&[4; 100_000]).unwrap();
        store.release(&gone);
        store.flush().unwrap();
        drop(store);
        let store = ObjectStore::open(dir.path()).unwrap();
        for id in [again, small, large] {
            assert!(store.try_get(&id).unwrap().is_ok(), "{id} survives");
        }
        for id in [released, gone] {
            assert!(matches!(store.try_get(&id), Some(Err(f)) if matches!(*f, Failure::NotFound(_))), "{id} is gone");
        }
    }

    #[test]
    fn results_kept_in_memory_never_reach_the_index_and_their_files_go_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open_with(dir.path(), Capacity::UNBOUNDED, Results::InMemory).unwrap();
        let put = store.put_bin(&[5; 100_000]).unwrap();
        let (small, large, failed) = (store.pending(), store.pending(), store.pending());
        store.complete(small, Ok(vec![0xc4, 1, 1]), None);
        let mut encoded = object::bin_header(100_000);
        encoded.extend([6; 100_000]);
        store.complete(large, Ok(encoded), None);
        store.complete(failed, Err(Failure::task("f", "boom")), None);
        assert_eq!(store.try_get(&large).unwrap().unwrap().len(), 100_005, "readable while the process runs");
        // A file no index names, as a `kill -9` mid-write leaves one.
        std::fs::write(dir.path().join("blobs").join(".tmp-cut-short"), b"partial").unwrap();
        store.flush().unwrap();
        // Held still as the process ends: never released.
        drop(store);
        let store = ObjectStore::open(dir.path()).unwrap();
        assert!(store.try_get(&put).unwrap().is_ok(), "a put is durable");
        for id in [small, large, failed] {
            assert!(
                matches!(store.try_get(&id), Some(Err(f)) if matches!(*f, Failure::NotFound(_))),
                "{id} was never written"
            );
        }
        let files: Vec<_> =
            std::fs::read_dir(dir.path().join("blobs")).unwrap().map(|f| f.unwrap().file_name()).collect();
        assert_eq!(files, [std::ffi::OsString::from(put.to_string())]);
    }

    #[test]
    fn a_streamed_put_is_the_same_object_and_a_failed_one_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = ObjectStore::open(dir.path()).unwrap();
        for len in [0, 1000, INLINE_OBJECT_MAX - 3, INLINE_OBJECT_MAX, INLINE_OBJECT_MAX + 1, 3_000_000] {
            let data: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
            let id = store.put_bin_streamed(&data[..]).unwrap();
            assert_eq!(id, store.put_bin(&data).unwrap(), "length {len}");
            let encoded = [object::bin_header(len), data].concat();
            assert_eq!(store.try_get(&id).unwrap().unwrap().to_vec().unwrap(), encoded);
        }
        let blobs = || std::fs::read_dir(dir.path().join("blobs")).unwrap().count();
        let before = blobs();
        let cut_off = (&[5u8; 1_000_000][..]).chain(Failing);
        let failure = store.put_bin_streamed(cut_off).unwrap_err();
        assert!(matches!(&failure, Failure::InvalidArgument(m) if m.contains("cut off")), "{failure}");
        assert_eq!(blobs(), before);
    }

    struct Failing;

    impl io::Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(io::Error::new(io::ErrorKind::UnexpectedEof, "gone"))
        }
    }

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
