//! Why an object has no value: the host side of the WIT `error` variant.

use std::fmt;
use std::io;

use serde::{Deserialize, Serialize};

/// One link of a failure chain: the function that failed and its message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The task function.
    pub function: String,
    /// The guest's message or the trap's description.
    pub message: String,
}

/// Why a ref has no value. Stored (and persisted) in place of the value, and
/// handed to every `get` of the ref.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    /// The task returned an error; the chain ends with the task that
    /// failed first.
    TaskFailed(Vec<Link>),
    /// A ref the store has never seen.
    NotFound(String),
    /// The call was malformed.
    InvalidArgument(String),
    /// A limit was reached; the message names it.
    LimitExceeded(String),
    /// The actor is gone; the message says why.
    ActorDied(String),
    /// The task's instance crashed (a trap, a panic, `exit`); the chain
    /// ends with the task that crashed.
    TaskCrashed(Vec<Link>),
    /// The task was cancelled; the chain ends with the cancelled task.
    Cancelled(Vec<Link>),
    /// The disk holding the objects is full; the message names it.
    DiskFull(String),
    /// The host's own I/O failed (not a limit): the message says where.
    HostFailed(String),
    /// A wait with a timeout gave up first; the message says which.
    TimedOut(String),
    /// Only a node that died held the object, and it cannot be rebuilt
    /// (made by `put`, or its task's rebuilds ran out); the message names it.
    ObjectLost(String),
}

/// How the first failure of a chain happened: which [`Failure`] a chain is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The guest returned an error.
    Returned,
    /// The instance crashed.
    Crashed,
    /// It was cancelled.
    Cancelled,
}

impl Failure {
    /// A task `function` returned the error `message`.
    pub fn task(function: &str, message: impl Into<String>) -> Self {
        Self::chain(Cause::Returned, vec![Link { function: function.to_string(), message: message.into() }])
    }

    /// A task `function` crashed: `message` says how.
    pub fn crashed(function: &str, message: impl Into<String>) -> Self {
        Self::chain(Cause::Crashed, vec![Link { function: function.to_string(), message: message.into() }])
    }

    /// The task `function` was cancelled.
    pub fn cancelled(function: &str) -> Self {
        Self::chain(Cause::Cancelled, vec![Link { function: function.to_string(), message: "it was cancelled".into() }])
    }

    /// The failure of a chain whose first failure happened as `cause` says.
    pub fn chain(cause: Cause, links: Vec<Link>) -> Self {
        match cause {
            Cause::Returned => Failure::TaskFailed(links),
            Cause::Crashed => Failure::TaskCrashed(links),
            Cause::Cancelled => Failure::Cancelled(links),
        }
    }

    /// The chain and how it began, if this is a task's failure.
    pub fn links(&self) -> Option<(Cause, &[Link])> {
        match self {
            Failure::TaskFailed(links) => Some((Cause::Returned, links)),
            Failure::TaskCrashed(links) => Some((Cause::Crashed, links)),
            Failure::Cancelled(links) => Some((Cause::Cancelled, links)),
            _ => None,
        }
    }

    /// Task `function` failed because `cause` (one of its inputs, or a call
    /// it made) failed: the chain names both, and is of `cause`'s kind (a
    /// task that consumed a cancelled object fails as cancelled, as in Ray).
    pub fn caused(function: &str, message: impl Into<String>, cause: &Failure) -> Self {
        let mut chain = vec![Link { function: function.to_string(), message: message.into() }];
        match cause.links() {
            Some((kind, links)) => {
                chain.extend(links.iter().cloned());
                Self::chain(kind, chain)
            }
            None => {
                chain[0].message = format!("{}: {cause}", chain[0].message);
                Failure::TaskFailed(chain)
            }
        }
    }
}

/// How a guest's call ended without a value, by its own account (the WIT
/// `call-error`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Refused {
    /// It returned an error: its message.
    Returned(String),
    /// It gave up because a prism call it made failed.
    Propagated(Failure),
}

impl Refused {
    /// The failure of `function` that this makes: a propagated failure is
    /// chained after a link naming `function`.
    pub fn failure(&self, function: &str) -> Failure {
        match self {
            Refused::Returned(message) => Failure::task(function, message.clone()),
            Refused::Propagated(cause) => Failure::caused(function, "a prism call it made failed", cause),
        }
    }
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Returned(message) => f.write_str(message),
            Refused::Propagated(cause) => write!(f, "{cause}"),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::TaskFailed(chain) | Failure::TaskCrashed(chain) | Failure::Cancelled(chain) => {
                for (i, link) in chain.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", because ")?;
                    }
                    write!(f, "task `{}` failed: {}", link.function, link.message)?;
                }
                Ok(())
            }
            Failure::NotFound(m) => write!(f, "not found: {m}"),
            Failure::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Failure::LimitExceeded(m) => write!(f, "limit exceeded: {m}"),
            Failure::ActorDied(m) => write!(f, "actor died: {m}"),
            Failure::DiskFull(m) => write!(f, "disk full: {m}"),
            Failure::HostFailed(m) => write!(f, "host failed: {m}"),
            Failure::TimedOut(m) => write!(f, "timed out: {m}"),
            Failure::ObjectLost(m) => write!(f, "object lost: {m}"),
        }
    }
}

impl std::error::Error for Failure {}

/// Whether `e` says the disk (or the user's disk quota) is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded)
}

/// The failure of the host's I/O error `e` while `doing` what it says: a
/// full disk is [`Failure::DiskFull`]; anything else is the host's own
/// failure, logged here.
pub fn io_failure(doing: impl fmt::Display, e: &io::Error) -> Failure {
    if is_disk_full(e) {
        return Failure::DiskFull(format!("{doing}: {e}"));
    }
    tracing::error!(error = %e, "{doing}");
    Failure::HostFailed(format!("{doing}: {e}"))
}

/// `names` as an error message lists them: `` `a`, `b` ``, or `none`.
pub fn listing<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<_> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() { "none".to_string() } else { names.join(", ") }
}
