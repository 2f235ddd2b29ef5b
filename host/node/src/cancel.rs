//! Cancellation, as Ray's `ray.cancel(ref, recursive=True)`.
//!
//! Every task, generator and actor call in flight has a [`Token`], found by
//! the id its caller holds (the result's ref, or the stream's id). A task's
//! future races its token: cancelling drops the future wherever it is
//! (waiting for an argument or a cpu, or running: a guest yields at every
//! epoch tick, so it is dropped within one), which drops its instance and
//! gives back its cpus. A queued actor call is failed at once; a running one
//! is left alone, as in Ray (the actor's state would be torn). A call run
//! through another node (a cluster's driver) has a token whose cancel is
//! passed on there, with `recursive`, where that call's own tokens are.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

use prism_store::{IdMap, ObjectId};

const QUEUED: u8 = 0;
const STARTED: u8 = 1;
const CANCELLED: u8 = 2;
/// Cancelled with the calls it made.
const CANCELLED_ALL: u8 = 3;

/// What passes a cancel on to where the call runs: told whether it is
/// recursive.
pub type Forward = Box<dyn Fn(bool) + Send + Sync>;

/// What a cancel applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A task or generator: interrupted wherever it is.
    Task,
    /// An actor call: only while it waits in the actor's queue.
    ActorCall,
    /// A call run through another node: the cancel is passed on there.
    Elsewhere,
}

/// The cancel switch of one call in flight, and the calls it started.
pub struct Token {
    kind: Kind,
    /// What the call is, for the failure of a queued actor call.
    pub label: String,
    state: AtomicU8,
    cancelled: Notify,
    /// Results (or streams) of the calls it made, for a recursive cancel.
    children: Mutex<Vec<ObjectId>>,
    /// Where a [`Kind::Elsewhere`] call's cancel goes.
    forward: Option<Forward>,
}

impl Token {
    fn new(kind: Kind, label: String, forward: Option<Forward>) -> Arc<Self> {
        Arc::new(Token {
            kind,
            label,
            state: AtomicU8::new(QUEUED),
            cancelled: Notify::new(),
            children: Mutex::default(),
            forward,
        })
    }

    /// What it applies to.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.state.load(Ordering::Acquire) >= CANCELLED
    }

    /// Whether it was cancelled, and if so whether with the calls it made.
    pub fn cancelled(&self) -> Option<bool> {
        match self.state.load(Ordering::Acquire) {
            CANCELLED => Some(false),
            CANCELLED_ALL => Some(true),
            _ => None,
        }
    }

    /// Waits until it is cancelled.
    pub async fn wait(&self) {
        let notified = self.cancelled.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !self.is_cancelled() {
            notified.await;
        }
    }

    /// Marks an actor call as running: false if it was cancelled first.
    pub fn start(&self) -> bool {
        self.state.compare_exchange(QUEUED, STARTED, Ordering::AcqRel, Ordering::Acquire).is_ok()
            || self.state.load(Ordering::Acquire) == STARTED
    }

    /// Records `child`, a call this one made.
    pub fn adopt(&self, child: ObjectId) {
        self.children.lock().push(child);
    }

    /// Cancels it (`recursive`: with the calls it made) unless it cannot be
    /// any more; true if it was.
    fn cancel(&self, recursive: bool) -> bool {
        let to = if recursive { CANCELLED_ALL } else { CANCELLED };
        let from = match self.kind {
            Kind::Task | Kind::Elsewhere => {
                match self.state.fetch_update(Ordering::AcqRel, Ordering::Acquire, |s| (s < CANCELLED).then_some(to)) {
                    Ok(from) => from,
                    Err(_) => return false,
                }
            }
            // Started (or cancelled already): nothing to do.
            Kind::ActorCall => {
                if self.state.compare_exchange(QUEUED, to, Ordering::AcqRel, Ordering::Acquire).is_err() {
                    return false;
                }
                QUEUED
            }
        };
        debug_assert!(from < CANCELLED);
        self.cancelled.notify_waiters();
        if let Some(forward) = &self.forward {
            forward(recursive);
        }
        true
    }
}

/// The calls in flight in one namespace, by the id their caller holds.
#[derive(Default)]
pub struct Tokens(Mutex<IdMap<Arc<Token>>>);

/// Forgets a call's token when dropped: when the call ends, however it ends.
pub struct Forget<'a>(&'a Tokens, ObjectId);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.0.lock().remove(&self.1);
    }
}

impl Tokens {
    /// A token for the call whose caller holds `id`, kept while the call is
    /// in flight (until the guard of [`Tokens::forget`] drops).
    pub fn insert(&self, id: ObjectId, kind: Kind, label: String) -> Arc<Token> {
        let token = Token::new(kind, label, None);
        self.0.lock().insert(id, token.clone());
        token
    }

    /// A [`Kind::Elsewhere`] token for the call whose caller holds `id`: a
    /// cancel goes to `forward`. Kept until [`Tokens::remove`].
    pub fn insert_elsewhere(&self, id: ObjectId, label: String, forward: Forward) {
        self.0.lock().insert(id, Token::new(Kind::Elsewhere, label, Some(forward)));
    }

    /// Forgets the token of `id` (its call ended before it started).
    pub fn remove(&self, id: &ObjectId) {
        self.0.lock().remove(id);
    }

    /// A guard that forgets the token of `id` once the call has ended.
    pub fn forget(&self, id: ObjectId) -> Forget<'_> {
        Forget(self, id)
    }

    /// Cancels the call `id` (and, with `recursive`, the calls it made, at
    /// any depth); returns the ids whose calls were cancelled, for the
    /// caller to fail the ones that will not fail themselves.
    pub fn cancel(&self, id: ObjectId, recursive: bool) -> Vec<(ObjectId, Arc<Token>)> {
        let mut cancelled = Vec::new();
        let mut todo = vec![id];
        while let Some(id) = todo.pop() {
            let Some(token) = self.0.lock().get(&id).cloned() else { continue };
            if recursive {
                todo.extend(token.children.lock().iter().copied());
            }
            if token.cancel(recursive) {
                cancelled.push((id, token));
            }
        }
        cancelled
    }

    /// Whether a call of `id` is in flight.
    pub fn contains(&self, id: &ObjectId) -> bool {
        self.0.lock().contains_key(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId::from([n; 32])
    }

    #[test]
    fn a_recursive_cancel_reaches_grandchildren_and_a_started_actor_call_is_left_alone() {
        let tokens = Tokens::default();
        let root = tokens.insert(id(1), Kind::Task, String::new());
        let child = tokens.insert(id(2), Kind::Task, String::new());
        let running_call = tokens.insert(id(3), Kind::ActorCall, "A.m".into());
        let queued_call = tokens.insert(id(4), Kind::ActorCall, "A.m".into());
        root.adopt(id(2));
        child.adopt(id(3));
        child.adopt(id(4));
        assert!(running_call.start());
        let cancelled: Vec<_> = tokens.cancel(id(1), true).into_iter().map(|(id, t)| (id, t.kind)).collect();
        assert_eq!(cancelled, [(id(1), Kind::Task), (id(2), Kind::Task), (id(4), Kind::ActorCall)]);
        assert!(root.is_cancelled() && child.is_cancelled() && !running_call.is_cancelled());
        assert!(!queued_call.start());
        // Again: nothing more to cancel.
        assert!(tokens.cancel(id(1), true).is_empty());
    }

    #[test]
    fn without_recursive_children_go_on() {
        let tokens = Tokens::default();
        let root = tokens.insert(id(1), Kind::Task, String::new());
        let child = tokens.insert(id(2), Kind::Task, String::new());
        root.adopt(id(2));
        tokens.cancel(id(1), false);
        assert!(root.is_cancelled() && !child.is_cancelled());
        assert_eq!(root.cancelled(), Some(false));
    }

    #[test]
    fn a_call_elsewhere_passes_its_cancel_on_once_with_its_recursion() {
        let tokens = Tokens::default();
        let root = tokens.insert(id(1), Kind::Task, String::new());
        let forwarded = Arc::new(Mutex::new(Vec::new()));
        let told = forwarded.clone();
        tokens.insert_elsewhere(id(2), "f".into(), Box::new(move |recursive| told.lock().push(recursive)));
        root.adopt(id(2));
        tokens.cancel(id(1), true);
        tokens.cancel(id(2), false);
        assert_eq!(*forwarded.lock(), [true]);
        assert_eq!(root.cancelled(), Some(true));
    }
}
