//! A redb database that outlives a failed write. After an I/O error (a full
//! disk) redb refuses every later operation until the database is closed;
//! [`RedbFile`] closes and reopens it after any failed write, so writes work
//! again once there is room, without a restart.

use std::fmt;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;
use redb::Database;

use crate::error::{Failure, io_failure};

/// The failure `err` is, met while `doing` what it says: a full disk, or
/// else the host's own (logged).
pub fn redb_failure(doing: impl fmt::Display, err: &redb::Error) -> Failure {
    match err {
        redb::Error::Io(io) => io_failure(doing, io),
        other => {
            tracing::error!(error = %other, "{doing}");
            Failure::HostFailed(format!("{doing}: {other}"))
        }
    }
}

/// Bytes of pages each database caches in memory. redb's default, 1 GiB,
/// let a server grow with every job and object its tenants ever recorded
/// (each namespace has two databases); past this, pages are read back from
/// the file, which the OS caches anyway.
pub const CACHE_BYTES: usize = 16 << 20;

/// The database at `path`, created if missing, with its cache bounded.
fn create(path: &Path) -> Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(CACHE_BYTES).create(path)
}

/// The database could not be reopened after a failed write (yet).
#[derive(Debug, thiserror::Error)]
#[error("the database `{}` is closed after a failed write and cannot be reopened yet", .0.display())]
pub struct Closed(PathBuf);

/// One redb file, reopened after a failed write.
pub struct RedbFile {
    path: PathBuf,
    /// `None` while it cannot be reopened.
    db: RwLock<Option<Database>>,
}

impl RedbFile {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, redb::DatabaseError> {
        Ok(RedbFile { path: path.to_path_buf(), db: RwLock::new(Some(create(path)?)) })
    }

    /// Runs `read` on the database.
    pub fn read<T, E: From<Closed>>(&self, read: impl FnOnce(&Database) -> Result<T, E>) -> Result<T, E> {
        match self.db.read().as_ref() {
            Some(db) => read(db),
            None => Err(Closed(self.path.clone()).into()),
        }
    }

    /// Runs `write` on the database; if it fails, the database is reopened
    /// for the next one.
    pub fn write<T, E: From<Closed>>(&self, write: impl FnOnce(&Database) -> Result<T, E>) -> Result<T, E> {
        let written = self.read(write);
        if written.is_err() {
            self.reopen();
        }
        written
    }

    fn reopen(&self) {
        let mut db = self.db.write();
        // redb holds a lock on the file: the old handle goes first.
        drop(db.take());
        match create(&self.path) {
            Ok(reopened) => *db = Some(reopened),
            Err(err) => {
                tracing::error!(path = %self.path.display(), error = %err, "cannot reopen a database; trying again at the next write")
            }
        }
    }
}
