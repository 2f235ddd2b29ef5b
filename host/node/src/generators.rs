//! Streaming generators: a task that yields many values, each its own
//! object, which its caller takes one by one as they are produced (Ray's
//! `num_returns="streaming"`).
//!
//! A stream is a list of item refs plus a read cursor. The generator task
//! appends with `yield-item`; `next-item` takes the next one, waiting for it.
//! A retried generator replays its yields: an item whose index is already in
//! the list is skipped, so the caller sees each item once.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use prism_store::error::Failure;
use prism_store::{ObjectId, Unread};

use crate::Node;
use crate::scheduler::end_stream;

/// The streams of a node, by id.
#[derive(Default)]
pub struct Generators(Mutex<HashMap<ObjectId, Arc<Stream>>>);

impl Generators {
    /// Registers a new stream under `id`.
    pub fn create(&self, id: ObjectId) -> Arc<Stream> {
        let stream = Arc::new(Stream::default());
        self.0.lock().insert(id, stream.clone());
        stream
    }

    /// The stream named `id`, if there is one.
    pub fn get(&self, id: &ObjectId) -> Option<Arc<Stream>> {
        self.0.lock().get(id).cloned()
    }

    /// Forgets the stream `id`; returns the items no one took.
    pub fn close(&self, id: &ObjectId) -> Vec<ObjectId> {
        match self.0.lock().remove(id) {
            Some(stream) => stream.close(),
            None => Vec::new(),
        }
    }
}

/// Where a call's result goes: a pending object, or a generator's stream.
#[derive(Clone)]
pub enum Reply {
    /// A plain call: its result is this object.
    Object(ObjectId),
    /// A generator: its yields go to this stream, named by the id.
    Stream(ObjectId, Arc<Stream>),
}

impl Reply {
    /// A pending result (or a new stream) for a call on `node`.
    pub fn new(node: &Node, generator: bool) -> Reply {
        if generator {
            let id = node.store.fresh_id();
            Reply::Stream(id, node.generators.create(id))
        } else {
            Reply::Object(node.store.pending())
        }
    }

    /// The id the caller holds.
    pub fn id(&self) -> ObjectId {
        match self {
            Reply::Object(id) | Reply::Stream(id, _) => *id,
        }
    }

    /// Where a generator's attempt yields.
    pub fn generator(&self) -> Option<Generating> {
        match self {
            Reply::Object(_) => None,
            Reply::Stream(_, stream) => Some(Generating::new(stream.clone())),
        }
    }

    /// Ends the call with `result` (a generator's value is dropped: its
    /// items were its output); `unread` is told of a failure no one reads.
    pub fn complete(&self, node: &Node, result: Result<Vec<u8>, Failure>, unread: Option<Unread>) {
        match self {
            Reply::Object(id) => node.store.complete(*id, result, unread),
            Reply::Stream(_, stream) => end_stream(node, stream, result.map(drop), unread),
        }
    }
}

/// A generator call's stream and how many items this attempt has yielded.
pub struct Generating {
    /// Where its items go.
    pub stream: Arc<Stream>,
    /// Items yielded so far by this attempt.
    pub yielded: usize,
}

impl Generating {
    /// A new attempt at filling `stream`.
    pub fn new(stream: Arc<Stream>) -> Self {
        Generating { stream, yielded: 0 }
    }
}

/// One generator's items.
#[derive(Default)]
pub struct Stream {
    state: Mutex<State>,
    changed: Notify,
}

#[derive(Default)]
struct State {
    items: Vec<ObjectId>,
    /// Items handed to the caller so far.
    read: usize,
    ended: bool,
    /// Why the generator was cancelled, if it was.
    cancelled: Option<Failure>,
}

/// Why `next` returned no item.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// The deadline passed first.
    TimedOut,
    /// The generator was cancelled, and every item it yielded was taken.
    Cancelled(Failure),
}

impl Stream {
    /// Appends `item` as the stream's `index`th item, unless a previous
    /// attempt of the generator already yielded that one; true if added
    /// (the stream then holds a reference to it, handed to the taker).
    pub fn push(&self, index: usize, item: ObjectId) -> bool {
        let mut state = self.state.lock();
        let added = index == state.items.len() && !state.ended;
        if added {
            state.items.push(item);
            self.changed.notify_waiters();
        }
        added
    }

    /// Ends the stream early: later pushes are refused; returns the items
    /// not taken yet.
    fn close(&self) -> Vec<ObjectId> {
        let mut state = self.state.lock();
        state.ended = true;
        let read = state.read;
        state.read = state.items.len();
        self.changed.notify_waiters();
        state.items[read..].to_vec()
    }

    /// Ends the stream, after `failed` (the ref of the generator's failure)
    /// if it failed.
    /// Returns `failed` if the stream was closed already: the caller then
    /// owns it.
    pub fn end(&self, failed: Option<ObjectId>) -> Option<ObjectId> {
        let mut state = self.state.lock();
        if state.ended {
            return failed;
        }
        state.items.extend(failed);
        state.ended = true;
        self.changed.notify_waiters();
        None
    }

    /// Ends the stream of a cancelled generator: the items it yielded stay
    /// to be taken, then `next` reports `failure`.
    pub fn cancel(&self, failure: Failure) {
        let mut state = self.state.lock();
        if !state.ended {
            state.ended = true;
            state.cancelled = Some(failure);
            self.changed.notify_waiters();
        }
    }

    /// The next item, `None` once the stream has ended and every item was
    /// taken; waits for one until `deadline`.
    pub async fn next(&self, deadline: Option<Instant>) -> Result<Option<ObjectId>, Ended> {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            // Registered before looking, so a push in between is not missed.
            notified.as_mut().enable();
            {
                let mut state = self.state.lock();
                if let Some(&item) = state.items.get(state.read) {
                    state.read += 1;
                    return Ok(Some(item));
                }
                if state.ended {
                    return match &state.cancelled {
                        Some(failure) => Err(Ended::Cancelled(failure.clone())),
                        None => Ok(None),
                    };
                }
            }
            match deadline {
                Some(deadline) => tokio::time::timeout_at(deadline, notified).await.map_err(|_| Ended::TimedOut)?,
                None => notified.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId::from([n; 32])
    }

    #[tokio::test]
    async fn items_come_in_order_once_then_the_end() {
        let stream = Stream::default();
        stream.push(0, id(1));
        stream.push(1, id(2));
        // A retry replays its first yield: skipped.
        stream.push(0, id(1));
        stream.push(2, id(3));
        assert_eq!(stream.end(Some(id(9))), None);
        for want in [1, 2, 3, 9] {
            assert_eq!(stream.next(None).await, Ok(Some(id(want))));
        }
        assert_eq!(stream.next(None).await, Ok(None));
        assert_eq!(stream.next(None).await, Ok(None));
    }

    #[tokio::test]
    async fn next_waits_for_the_generator_or_times_out() {
        let stream = Arc::new(Stream::default());
        let soon = Instant::now() + std::time::Duration::from_millis(20);
        assert_eq!(stream.next(Some(soon)).await, Err(Ended::TimedOut));
        let producer = {
            let stream = stream.clone();
            tokio::spawn(async move {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                stream.push(0, id(7));
            })
        };
        assert_eq!(stream.next(None).await, Ok(Some(id(7))));
        producer.await.unwrap();
    }

    #[tokio::test]
    async fn a_cancelled_stream_gives_what_was_yielded_then_reports_the_cancel() {
        let stream = Stream::default();
        stream.push(0, id(1));
        stream.cancel(Failure::cancelled("numbers"));
        assert!(!stream.push(1, id(2)));
        assert_eq!(stream.next(None).await, Ok(Some(id(1))));
        for _ in 0..2 {
            assert_eq!(stream.next(None).await, Err(Ended::Cancelled(Failure::cancelled("numbers"))));
        }
    }

    #[test]
    fn a_closed_stream_gives_back_what_was_not_taken_and_refuses_more() {
        let generators = Generators::default();
        let stream = generators.create(id(0));
        assert!(stream.push(0, id(1)) && stream.push(1, id(2)));
        assert_eq!(generators.close(&id(0)), [id(1), id(2)]);
        assert!(!stream.push(2, id(3)));
        assert_eq!(stream.end(Some(id(9))), Some(id(9)));
        assert!(generators.get(&id(0)).is_none());
    }
}
