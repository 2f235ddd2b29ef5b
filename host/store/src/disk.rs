//! The disk tier: redb for the index and small objects, one immutable file
//! per large object, written by one background thread in group commits.
//!
//! ```text
//! <data-dir>/objects/index.redb   objects:  id -> index record (index.rs: hash, nested refs, bytes or blob header)
//!                                 failures: task result id -> failure
//! <data-dir>/objects/blobs/<id>   large objects' bodies
//! ```
//!
//! An id is the blake3 hash of the object for `put` (so a blob's file is
//! named by its hash) and a fresh id for a task result; the entry keeps the
//! hash for verification and the nested refs the object holds.
//!
//! A blob's file is written (temp file, rename) when the object is made; the
//! writer fsyncs it and its directory before the redb transaction that names
//! it commits, so the index never points at a partial file. Every object
//! read from disk is checked against its blake3 hash, once per process: from
//! then on the memory tier (and every guest mapping) trusts it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::error::{Failure, is_disk_full};
use crate::index::{IndexBody, IndexRecord};
use crate::redb_file::{Closed, RedbFile};
use crate::{Blob, IdSet, Object, ObjectId, content_hash};

const OBJECTS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("objects");
const FAILURES: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("failures");

/// Writes the writer takes into one transaction at most: bounds the memory a
/// commit holds and the delay before a flush is acknowledged.
const MAX_BATCH: usize = 8192;

/// How long the writer gathers writes before committing them together. A
/// commit costs the same for one object or thousands (and two fsyncs), so
/// this is what keeps a stream of tiny task results cheap. It bounds how long
/// an acknowledged object may wait before it is durable; `flush` skips it.
pub const GROUP_COMMIT_WINDOW: Duration = Duration::from_millis(5);

/// Why the disk tier failed.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// The database could not be opened or created.
    #[error("cannot open the object index `{path}`")]
    Open {
        /// The index file.
        path: PathBuf,
        /// What redb said.
        #[source]
        source: redb::Error,
    },
    /// A file could not be written or read.
    #[error("object file `{path}`")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// redb failed during a transaction.
    #[error("object index")]
    Index(#[from] redb::Error),
    /// Stored bytes no longer match their hash.
    #[error("object `{0}` is corrupt on disk: its bytes do not match its blake3 hash")]
    Corrupt(ObjectId),
    /// The index could not be reopened after a failed write.
    #[error(transparent)]
    Closed(#[from] Closed),
}

impl DiskError {
    /// What this error is to a caller: a full disk, or the host's failure.
    pub fn failure(&self) -> Failure {
        let message = format!("the object store cannot write: {}", error_chain(self));
        match self {
            DiskError::Io { source, .. } | DiskError::Index(redb::Error::Io(source)) if is_disk_full(source) => {
                Failure::DiskFull(message)
            }
            _ => Failure::HostFailed(message),
        }
    }
}

fn index_err(e: impl Into<redb::Error>) -> DiskError {
    DiskError::Index(e.into())
}

/// What the disk holds for an id.
pub enum Stored {
    /// The object, verified, and the refs nested in it.
    Value(Object, Vec<ObjectId>),
    /// The task behind this id failed.
    Failed(Failure),
}

enum Write {
    /// An object's id, content hash, value and nested refs.
    Object(ObjectId, ObjectId, Arc<Object>, Vec<ObjectId>),
    Failure(ObjectId, Vec<u8>),
    /// The object or failure `id` is gone (its blob file already is).
    Delete(ObjectId),
    Flush(mpsc::SyncSender<Result<(), Failure>>),
}

pub struct Disk {
    index: Arc<RedbFile>,
    blobs: PathBuf,
    tx: Option<mpsc::Sender<Write>>,
    writer: Option<JoinHandle<()>>,
}

impl Disk {
    pub fn open(dir: &Path) -> Result<Self, DiskError> {
        let blobs = dir.join("blobs");
        fs::create_dir_all(&blobs).map_err(|source| DiskError::Io { path: blobs.clone(), source })?;
        let path = dir.join("index.redb");
        let index = RedbFile::open(&path).map_err(|e| DiskError::Open { path: path.clone(), source: e.into() })?;
        index.write(|db| {
            let txn = db.begin_write().map_err(index_err)?;
            txn.open_table(OBJECTS).map_err(index_err)?;
            txn.open_table(FAILURES).map_err(index_err)?;
            txn.commit().map_err(index_err)
        })?;

        let index = Arc::new(index);
        let (tx, rx) = mpsc::channel();
        let writer = {
            let (index, blobs) = (index.clone(), blobs.clone());
            std::thread::Builder::new()
                .name("prism-store-writer".into())
                .spawn(move || write_behind(&index, &blobs, &rx))
                .map_err(|source| DiskError::Io { path: dir.to_path_buf(), source })?
        };
        Ok(Disk { index, blobs, tx: Some(tx), writer: Some(writer) })
    }

    fn send(&self, write: Write) {
        // The writer only exits once `tx` is dropped, in `Drop`.
        let _ = self.tx.as_ref().expect("writer is running").send(write);
    }

    pub fn write_object(&self, id: ObjectId, hash: ObjectId, object: Arc<Object>, nested: &[ObjectId]) {
        self.send(Write::Object(id, hash, object, nested.to_vec()));
    }

    pub fn delete(&self, id: ObjectId) {
        self.send(Write::Delete(id));
    }

    /// Every id on disk, with the bytes its object takes.
    pub fn sizes(&self) -> Result<Vec<(ObjectId, u64)>, DiskError> {
        self.index.read(Self::sizes_in)
    }

    fn sizes_in(db: &Database) -> Result<Vec<(ObjectId, u64)>, DiskError> {
        let txn = db.begin_read().map_err(index_err)?;
        let mut out = Vec::new();
        for row in txn.open_table(OBJECTS).map_err(index_err)?.iter().map_err(index_err)? {
            let (id, entry) = row.map_err(index_err)?;
            let id = ObjectId::from(id.value());
            let size = IndexRecord::decode(entry.value()).map_or(0, |record| record.body.stored_len());
            out.push((id, size));
        }
        for row in txn.open_table(FAILURES).map_err(index_err)?.iter().map_err(index_err)? {
            out.push((ObjectId::from(row.map_err(index_err)?.0.value()), 0));
        }
        Ok(out)
    }

    pub fn write_failure(&self, id: ObjectId, failure: &Failure) {
        let bytes = rmp_serde::to_vec(failure).expect("a failure always encodes");
        self.send(Write::Failure(id, bytes));
    }

    /// Returns once everything sent before is committed, or why it is not:
    /// the disk is full, or the host failed to write. What failed is tried
    /// again with the next writes.
    pub fn flush(&self) -> Result<(), Failure> {
        let (ack, done) = mpsc::sync_channel(1);
        self.send(Write::Flush(ack));
        done.recv().unwrap_or_else(|_| Err(Failure::HostFailed("the object store's writer stopped".into())))
    }

    pub fn load(&self, id: &ObjectId) -> Result<Option<Stored>, DiskError> {
        self.index.read(|db| self.load_in(db, id))
    }

    fn load_in(&self, db: &Database, id: &ObjectId) -> Result<Option<Stored>, DiskError> {
        let txn = db.begin_read().map_err(index_err)?;
        let failures = txn.open_table(FAILURES).map_err(index_err)?;
        if let Some(bytes) = failures.get(id.as_bytes()).map_err(index_err)? {
            let failure = rmp_serde::from_slice(bytes.value()).map_err(|_| DiskError::Corrupt(*id))?;
            return Ok(Some(Stored::Failed(failure)));
        }
        let objects = txn.open_table(OBJECTS).map_err(index_err)?;
        let Some(entry) = objects.get(id.as_bytes()).map_err(index_err)? else {
            return Ok(None);
        };
        let Some(IndexRecord { hash, nested, body }) = IndexRecord::decode(entry.value()) else {
            return Err(DiskError::Corrupt(*id));
        };
        let object = match body {
            IndexBody::Inline(bytes) => {
                if content_hash(&[bytes]) != *hash.as_bytes() {
                    return Err(DiskError::Corrupt(*id));
                }
                Object::Inline(bytes.to_vec())
            }
            IndexBody::Blob { body_len, header } => {
                let blob = Blob { header: header.to_vec(), body_len, path: self.blobs.join(id.to_string()), hash };
                verify_blob(&hash, &blob).map_err(|e| match e {
                    DiskError::Corrupt(_) => DiskError::Corrupt(*id),
                    other => other,
                })?;
                Object::Blob(blob)
            }
        };
        Ok(Some(Stored::Value(object, nested)))
    }
}

/// Checks a blob file against its hash, reading it mapped on all cores.
fn verify_blob(hash: &ObjectId, blob: &Blob) -> Result<(), DiskError> {
    let io = |source| DiskError::Io { path: blob.path.clone(), source };
    let len = std::fs::metadata(&blob.path).map_err(io)?.len();
    let mut hasher = blake3::Hasher::new();
    hasher.update(&blob.header);
    hasher.update_mmap_rayon(&blob.path).map_err(io)?;
    if len != blob.body_len || hasher.finalize().as_bytes() != hash.as_bytes() {
        return Err(DiskError::Corrupt(*hash));
    }
    Ok(())
}

impl Drop for Disk {
    fn drop(&mut self) {
        // Closing the channel lets the writer commit what is queued and exit.
        drop(self.tx.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn write_behind(index: &RedbFile, blobs: &Path, rx: &mpsc::Receiver<Write>) {
    // Writes whose commit failed, tried again (first) with the next ones.
    let mut failed: Vec<Write> = Vec::new();
    while let Ok(first) = rx.recv() {
        // Sleep through the window instead of waking for every write: the
        // writers never pay for a context switch.
        if !matches!(first, Write::Flush(_)) {
            std::thread::sleep(GROUP_COMMIT_WINDOW);
        }
        let mut batch = std::mem::take(&mut failed);
        batch.push(first);
        batch.extend(rx.try_iter().take(MAX_BATCH));
        drop_superseded(&mut batch);
        let (acks, writes): (Vec<Write>, Vec<Write>) = batch.into_iter().partition(|w| matches!(w, Write::Flush(_)));
        let outcome = index.write(|db| commit(db, blobs, &writes)).map_err(|err| {
            let failure = err.failure();
            if !matches!(failure, Failure::DiskFull(_)) {
                tracing::error!(error = %error_chain(&err), "object store write failed");
            }
            failed = writes;
            failure
        });
        for ack in acks {
            if let Write::Flush(ack) = ack {
                let _ = ack.send(outcome.clone());
            }
        }
    }
}

/// Drops the writes of objects that the same batch deletes again: a result
/// released as soon as it is read (every synchronous HTTP invoke) then costs
/// one index lookup instead of an insert and a remove.
fn drop_superseded(batch: &mut Vec<Write>) {
    let mut deleted_later = IdSet::default();
    let mut keep = vec![true; batch.len()];
    for (i, write) in batch.iter().enumerate().rev() {
        match write {
            Write::Delete(id) => {
                deleted_later.insert(*id);
            }
            Write::Object(id, ..) | Write::Failure(id, _) => keep[i] = !deleted_later.contains(id),
            Write::Flush(_) => {}
        }
    }
    let mut keep = keep.into_iter();
    batch.retain(|_| keep.next().unwrap_or(true));
}

fn commit(db: &Database, blobs: &Path, batch: &[Write]) -> Result<(), DiskError> {
    // Blob files first, so the index below never names an unsynced file. A
    // file already gone was deleted with its object, whose entry is skipped.
    let mut gone = std::collections::HashSet::new();
    let mut synced = false;
    for write in batch {
        if let Write::Object(id, _, object, _) = write
            && let Object::Blob(blob) = object.as_ref()
        {
            match fs::File::open(&blob.path).and_then(|f| f.sync_all()) {
                Ok(()) => synced = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    gone.insert(*id);
                }
                Err(source) => return Err(DiskError::Io { path: blob.path.clone(), source }),
            }
        }
    }
    if synced {
        fs::File::open(blobs)
            .and_then(|d| d.sync_all())
            .map_err(|source| DiskError::Io { path: blobs.into(), source })?;
    }
    let txn = db.begin_write().map_err(index_err)?;
    {
        let mut objects = txn.open_table(OBJECTS).map_err(index_err)?;
        let mut failures = txn.open_table(FAILURES).map_err(index_err)?;
        for write in batch {
            match write {
                Write::Object(id, _, _, _) if gone.contains(id) => {}
                Write::Object(id, hash, object, nested) => {
                    let body = match &**object {
                        Object::Inline(bytes) => IndexBody::Inline(bytes),
                        Object::Blob(blob) => IndexBody::Blob { body_len: blob.body_len, header: &blob.header },
                    };
                    let record = IndexRecord { hash: *hash, nested: nested.clone(), body };
                    objects.insert(id.as_bytes(), record.encode().as_slice()).map_err(index_err)?;
                }
                Write::Failure(id, bytes) => {
                    failures.insert(id.as_bytes(), bytes.as_slice()).map_err(index_err)?;
                }
                Write::Delete(id) => {
                    objects.remove(id.as_bytes()).map_err(index_err)?;
                    failures.remove(id.as_bytes()).map_err(index_err)?;
                }
                Write::Flush(_) => {}
            }
        }
    }
    txn.commit().map_err(index_err)
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
