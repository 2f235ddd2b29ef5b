//! The disk tier: redb for the index and small objects, one immutable file
//! per large object, written by one background thread in group commits.
//!
//! ```text
//! <data-dir>/objects/index.redb     objects: hash -> 0 ‖ bytes  (inline)
//!                                            hash -> 1 ‖ len    (blob file)
//!                                   results: task result id -> hash
//!                                   failures: task result id -> failure
//! <data-dir>/objects/blobs/<hash>   large objects, named by their blake3
//! ```
//!
//! A blob is written to a temporary file, fsynced and renamed before the redb
//! transaction that names it commits, so the index never points at a partial
//! file. Every read from disk checks the bytes against their blake3 hash.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use parking_lot::Mutex;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Object, ObjectId, content_hash};
use crate::config::INLINE_OBJECT_MAX;
use crate::error::Failure;
use crate::fsutil::write_atomic;

const OBJECTS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("objects");
const RESULTS: TableDefinition<[u8; 32], [u8; 32]> = TableDefinition::new("results");
const FAILURES: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("failures");

const INLINE: u8 = 0;
const BLOB: u8 = 1;

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
    /// An earlier background write failed, so not everything is durable.
    #[error("a background write failed: {0}")]
    Writer(String),
}

fn index_err(e: impl Into<redb::Error>) -> DiskError {
    DiskError::Index(e.into())
}

/// What the disk holds for an id.
pub enum Stored {
    /// The object's bytes, verified.
    Value(Vec<u8>),
    /// The task behind this id failed.
    Failed(Failure),
}

enum Write {
    Object(ObjectId, Object),
    Result(ObjectId, Object),
    Failure(ObjectId, Vec<u8>),
    Flush(mpsc::SyncSender<()>),
}

pub struct Disk {
    db: Arc<Database>,
    blobs: PathBuf,
    tx: Option<mpsc::Sender<Write>>,
    writer: Option<JoinHandle<()>>,
    /// The first background write error, reported by every later flush.
    broken: Arc<Mutex<Option<String>>>,
}

impl Disk {
    pub fn open(dir: &Path) -> Result<Self, DiskError> {
        let blobs = dir.join("blobs");
        fs::create_dir_all(&blobs).map_err(|source| DiskError::Io { path: blobs.clone(), source })?;
        let path = dir.join("index.redb");
        let db = Database::create(&path).map_err(|e| DiskError::Open { path: path.clone(), source: e.into() })?;
        let txn = db.begin_write().map_err(index_err)?;
        txn.open_table(OBJECTS).map_err(index_err)?;
        txn.open_table(RESULTS).map_err(index_err)?;
        txn.open_table(FAILURES).map_err(index_err)?;
        txn.commit().map_err(index_err)?;

        let db = Arc::new(db);
        let broken = Arc::new(Mutex::new(None));
        let (tx, rx) = mpsc::channel();
        let writer = {
            let (db, blobs, broken) = (db.clone(), blobs.clone(), broken.clone());
            std::thread::Builder::new()
                .name("prism-store-writer".into())
                .spawn(move || write_behind(&db, &blobs, &rx, &broken))
                .map_err(|source| DiskError::Io { path: dir.to_path_buf(), source })?
        };
        Ok(Disk { db, blobs, tx: Some(tx), writer: Some(writer), broken })
    }

    fn send(&self, write: Write) {
        // The writer only exits once `tx` is dropped, in `Drop`.
        let _ = self.tx.as_ref().expect("writer is running").send(write);
    }

    pub fn write_object(&self, id: ObjectId, object: Object) {
        self.send(Write::Object(id, object));
    }

    pub fn write_result(&self, id: ObjectId, object: Object) {
        self.send(Write::Result(id, object));
    }

    pub fn write_failure(&self, id: ObjectId, failure: &Failure) {
        let bytes = rmp_serde::to_vec(failure).expect("a failure always encodes");
        self.send(Write::Failure(id, bytes));
    }

    /// Returns once everything sent before is committed (or reports why not).
    pub fn flush(&self) -> Result<(), DiskError> {
        let (ack, done) = mpsc::sync_channel(1);
        self.send(Write::Flush(ack));
        let _ = done.recv();
        match self.broken.lock().clone() {
            Some(err) => Err(DiskError::Writer(err)),
            None => Ok(()),
        }
    }

    pub fn load(&self, id: &ObjectId) -> Result<Option<Stored>, DiskError> {
        let txn = self.db.begin_read().map_err(index_err)?;
        let failures = txn.open_table(FAILURES).map_err(index_err)?;
        if let Some(bytes) = failures.get(id.as_bytes()).map_err(index_err)? {
            let failure = rmp_serde::from_slice(bytes.value()).map_err(|_| DiskError::Corrupt(*id))?;
            return Ok(Some(Stored::Failed(failure)));
        }
        let results = txn.open_table(RESULTS).map_err(index_err)?;
        let hash = match results.get(id.as_bytes()).map_err(index_err)? {
            Some(hash) => hash.value(),
            None => *id.as_bytes(),
        };
        let objects = txn.open_table(OBJECTS).map_err(index_err)?;
        let Some(entry) = objects.get(&hash).map_err(index_err)? else {
            return Ok(None);
        };
        let entry = entry.value();
        let bytes = match entry.split_first() {
            Some((&INLINE, bytes)) => bytes.to_vec(),
            Some((&BLOB, _)) => {
                let path = self.blobs.join(ObjectId::from(hash).to_string());
                fs::read(&path).map_err(|source| DiskError::Io { path, source })?
            }
            _ => return Err(DiskError::Corrupt(*id)),
        };
        if content_hash(&[&bytes]) != hash {
            return Err(DiskError::Corrupt(ObjectId::from(hash)));
        }
        Ok(Some(Stored::Value(bytes)))
    }
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

fn write_behind(db: &Database, blobs: &Path, rx: &mpsc::Receiver<Write>, broken: &Mutex<Option<String>>) {
    while let Ok(first) = rx.recv() {
        // Sleep through the window instead of waking for every write: the
        // writers never pay for a context switch.
        if !matches!(first, Write::Flush(_)) {
            std::thread::sleep(GROUP_COMMIT_WINDOW);
        }
        let mut batch = vec![first];
        batch.extend(rx.try_iter().take(MAX_BATCH));
        if let Err(err) = commit(db, blobs, &batch) {
            tracing::error!(error = %error_chain(&err), "object store write failed");
            broken.lock().get_or_insert_with(|| error_chain(&err));
        }
        for write in batch {
            if let Write::Flush(ack) = write {
                let _ = ack.send(());
            }
        }
    }
}

fn commit(db: &Database, blobs: &Path, batch: &[Write]) -> Result<(), DiskError> {
    let txn = db.begin_write().map_err(index_err)?;
    {
        let mut objects = txn.open_table(OBJECTS).map_err(index_err)?;
        let mut results = txn.open_table(RESULTS).map_err(index_err)?;
        let mut failures = txn.open_table(FAILURES).map_err(index_err)?;
        for write in batch {
            match write {
                Write::Object(id, bytes) => store_object(&mut objects, blobs, *id.as_bytes(), bytes)?,
                Write::Result(id, bytes) => {
                    let hash = content_hash(&[bytes]);
                    store_object(&mut objects, blobs, hash, bytes)?;
                    results.insert(id.as_bytes(), hash).map_err(index_err)?;
                }
                Write::Failure(id, bytes) => {
                    failures.insert(id.as_bytes(), bytes.as_slice()).map_err(index_err)?;
                }
                Write::Flush(_) => {}
            }
        }
    }
    txn.commit().map_err(index_err)
}

fn store_object(
    objects: &mut redb::Table<[u8; 32], &[u8]>,
    blobs: &Path,
    hash: [u8; 32],
    bytes: &[u8],
) -> Result<(), DiskError> {
    if objects.get(&hash).map_err(index_err)?.is_some() {
        return Ok(());
    }
    let mut entry;
    if bytes.len() <= INLINE_OBJECT_MAX {
        entry = Vec::with_capacity(bytes.len() + 1);
        entry.push(INLINE);
        entry.extend_from_slice(bytes);
    } else {
        let path = blobs.join(ObjectId::from(hash).to_string());
        if !path.exists() {
            write_atomic(&path, bytes).map_err(|source| DiskError::Io { path, source })?;
        }
        entry = vec![BLOB];
        entry.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    }
    objects.insert(&hash, entry.as_slice()).map_err(index_err)?;
    Ok(())
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
