//! A namespace's pins (objects kept across restarts) and the calls still
//! running behind them, written to its `space.redb` in group commits: the
//! requests of one moment share one fsync, and no async thread waits on it.

use std::sync::Arc;
use std::sync::mpsc;
use std::thread::JoinHandle;

use redb::{Database, TableDefinition};
use tokio::sync::oneshot;

use crate::http::ApiError;
use crate::space::db_error;
use prism_store::{ObjectId, RedbFile};

/// Objects the tenant uploaded or asked to keep: id → ().
pub const PINS: TableDefinition<&[u8], ()> = TableDefinition::new("pins");

/// Pinned results of calls still running (`?result=ref`): id → the
/// function. A restart fails those it finds, as Ray fails the tasks of a
/// node that died.
pub const CALLS: TableDefinition<&[u8], &str> = TableDefinition::new("calls");

/// One change to the pins.
pub enum Change {
    /// Pin `id`; `call` names the function whose still-running call makes it.
    Pin(ObjectId, Option<String>),
    /// Unpin `id`.
    Unpin(ObjectId),
    /// The call making `id` is done. Not synced on its own: a restart that
    /// still finds the call finds its result stored, and leaves it.
    CallDone(ObjectId),
}

type Answer = oneshot::Sender<Result<bool, ApiError>>;

/// The writer of one namespace's pins.
pub struct Pins {
    tx: Option<mpsc::Sender<(Change, Answer)>>,
    writer: Option<JoinHandle<()>>,
}

impl Pins {
    /// Starts the writer of `db`.
    pub fn start(db: Arc<RedbFile>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new().name("prism-pins".into()).spawn(move || write(&db, &rx))?;
        Ok(Pins { tx: Some(tx), writer: Some(writer) })
    }

    /// Makes `change` durable: for a pin, whether `id` was not pinned
    /// before; for an unpin, whether it was.
    pub async fn apply(&self, change: Change) -> Result<bool, ApiError> {
        let answer = self.send(change)?;
        answer.await.map_err(ApiError::internal)?
    }

    /// [`Pins::apply`], from a blocking thread.
    pub fn apply_blocking(&self, change: Change) -> Result<bool, ApiError> {
        let answer = self.send(change)?;
        answer.blocking_recv().map_err(ApiError::internal)?
    }

    fn send(&self, change: Change) -> Result<oneshot::Receiver<Result<bool, ApiError>>, ApiError> {
        let (answer, receive) = oneshot::channel();
        let tx = self.tx.as_ref().expect("open until dropped");
        tx.send((change, answer)).map_err(|_| ApiError::internal("the pin writer stopped"))?;
        Ok(receive)
    }
}

impl Drop for Pins {
    fn drop(&mut self) {
        // Closing the channel lets the writer commit what is queued and exit.
        drop(self.tx.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

fn write(db: &RedbFile, rx: &mpsc::Receiver<(Change, Answer)>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        match db.write(|db| commit(db, &batch).map_err(db_error)) {
            Ok(results) => {
                for ((_, answer), result) in batch.into_iter().zip(results) {
                    let _ = answer.send(Ok(result));
                }
            }
            Err(err) => {
                for (_, answer) in batch {
                    let _ = answer.send(Err(ApiError::new(err.status, err.code, err.message.clone())));
                }
            }
        }
    }
}

fn commit(db: &Database, batch: &[(Change, Answer)]) -> Result<Vec<bool>, redb::Error> {
    let mut txn = db.begin_write()?;
    if batch.iter().all(|(change, _)| matches!(change, Change::CallDone(_))) {
        txn.set_durability(redb::Durability::None)?;
    }
    let mut results = Vec::with_capacity(batch.len());
    {
        let mut pins = txn.open_table(PINS)?;
        let mut calls = txn.open_table(CALLS)?;
        for (change, _) in batch {
            results.push(match change {
                Change::Pin(id, call) => {
                    if let Some(function) = call {
                        calls.insert(id.as_bytes().as_slice(), function.as_str())?;
                    }
                    pins.insert(id.as_bytes().as_slice(), ())?.is_none()
                }
                Change::Unpin(id) => pins.remove(id.as_bytes().as_slice())?.is_some(),
                Change::CallDone(id) => calls.remove(id.as_bytes().as_slice())?.is_some(),
            });
        }
    }
    txn.commit()?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use redb::{ReadableDatabase as _, ReadableTable as _};

    use super::*;

    #[test]
    fn changes_answer_what_they_changed_and_are_on_disk_when_answered() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(RedbFile::open(&dir.path().join("space.redb")).unwrap());
        let pins = Pins::start(db.clone()).unwrap();
        let (a, b) = (ObjectId::from([1; 32]), ObjectId::from([2; 32]));
        assert!(pins.apply_blocking(Change::Pin(a, None)).unwrap(), "new");
        assert!(!pins.apply_blocking(Change::Pin(a, None)).unwrap(), "pinned already");
        assert!(pins.apply_blocking(Change::Pin(b, Some("f".into()))).unwrap());
        assert!(pins.apply_blocking(Change::Unpin(a)).unwrap());
        assert!(!pins.apply_blocking(Change::Unpin(a)).unwrap(), "not pinned");
        // Answered changes are committed: another reader sees them.
        db.read(|db| {
            let txn = db.begin_read().unwrap();
            let pinned: Vec<_> =
                txn.open_table(PINS).unwrap().iter().unwrap().map(|r| r.unwrap().0.value().to_vec()).collect();
            assert_eq!(pinned, [b.as_bytes().to_vec()]);
            assert_eq!(txn.open_table(CALLS).unwrap().get(b.as_bytes().as_slice()).unwrap().unwrap().value(), "f");
            Ok::<_, prism_store::Closed>(())
        })
        .unwrap();
        assert!(pins.apply_blocking(Change::CallDone(b)).unwrap());
        let done = db.read(|db| {
            let txn = db.begin_read().unwrap();
            Ok::<_, prism_store::Closed>(txn.open_table(CALLS).unwrap().get(b.as_bytes().as_slice()).unwrap().is_none())
        });
        assert!(done.unwrap());
    }
}
