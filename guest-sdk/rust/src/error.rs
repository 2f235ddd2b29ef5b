use std::fmt;

use crate::wit::prism::core::types;

/// What a prism call can fail with: the WIT `error` variant, plus values that
/// do not decode as the type the caller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The task (or one it depended on) returned an error; the chain starts
    /// with the task asked for and ends with the first one that failed
    /// (Ray's `RayTaskError`).
    TaskFailed(Vec<Failure>),
    /// The first task of the chain crashed: a trap, a panic, `exit` (Ray's
    /// `WorkerCrashedError`), not an error it returned.
    TaskCrashed(Vec<Failure>),
    /// The first task of the chain was cancelled (Ray's
    /// `TaskCancelledError`).
    Cancelled(Vec<Failure>),
    /// The timeout passed first; a later call may still succeed.
    Timeout,
    /// The ref is unknown to this node.
    NotFound(String),
    /// The call's arguments were wrong.
    InvalidArgument(String),
    /// A configured limit was reached.
    LimitExceeded(String),
    /// The actor is gone (killed, failed constructor, restarts spent).
    ActorDied(String),
    /// The disk holding the node's objects is full.
    DiskFull(String),
    /// The object is gone with the node that held it, and cannot be rebuilt.
    ObjectLost(String),
    /// The host itself failed (a disk error); it logged the cause.
    HostFailed(String),
    /// The object is not a valid encoding of the requested type.
    Decode(String),
}

/// One link of a task failure chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The task function that failed.
    pub function: String,
    /// What it said.
    pub message: String,
}

/// `Result` with prism's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn chain(links: Vec<types::Failure>) -> Vec<Failure> {
    links.into_iter().map(|f| Failure { function: f.function, message: f.message }).collect()
}

fn links(chain: &[Failure]) -> Vec<types::Failure> {
    chain.iter().map(|f| types::Failure { function: f.function.clone(), message: f.message.clone() }).collect()
}

impl Error {
    /// The WIT error this is, for a function that propagates it; `None` for
    /// a value that did not decode (the function's own error).
    pub(crate) fn to_wit(&self) -> Option<types::Error> {
        Some(match self {
            Error::TaskFailed(c) => types::Error::TaskFailed(links(c)),
            Error::TaskCrashed(c) => types::Error::TaskCrashed(links(c)),
            Error::Cancelled(c) => types::Error::Cancelled(links(c)),
            Error::Timeout => types::Error::Timeout,
            Error::NotFound(m) => types::Error::NotFound(m.clone()),
            Error::InvalidArgument(m) => types::Error::InvalidArgument(m.clone()),
            Error::LimitExceeded(m) => types::Error::LimitExceeded(m.clone()),
            Error::ActorDied(m) => types::Error::ActorDied(m.clone()),
            Error::DiskFull(m) => types::Error::DiskFull(m.clone()),
            Error::ObjectLost(m) => types::Error::ObjectLost(m.clone()),
            Error::HostFailed(m) => types::Error::HostFailed(m.clone()),
            Error::Decode(_) => return None,
        })
    }
}

impl From<types::Error> for Error {
    fn from(err: types::Error) -> Self {
        match err {
            types::Error::TaskFailed(c) => Error::TaskFailed(chain(c)),
            types::Error::TaskCrashed(c) => Error::TaskCrashed(chain(c)),
            types::Error::Cancelled(c) => Error::Cancelled(chain(c)),
            types::Error::Timeout => Error::Timeout,
            types::Error::NotFound(m) => Error::NotFound(m),
            types::Error::InvalidArgument(m) => Error::InvalidArgument(m),
            types::Error::LimitExceeded(m) => Error::LimitExceeded(m),
            types::Error::ActorDied(m) => Error::ActorDied(m),
            types::Error::DiskFull(m) => Error::DiskFull(m),
            types::Error::ObjectLost(m) => Error::ObjectLost(m),
            types::Error::HostFailed(m) => Error::HostFailed(m),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TaskFailed(chain) | Error::TaskCrashed(chain) | Error::Cancelled(chain) => {
                for (i, link) in chain.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", because ")?;
                    }
                    write!(f, "task `{}` failed: {}", link.function, link.message)?;
                }
                Ok(())
            }
            Error::Timeout => f.write_str("timed out before the objects were ready"),
            Error::NotFound(m) => write!(f, "not found: {m}"),
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::LimitExceeded(m) => write!(f, "limit exceeded: {m}"),
            Error::ActorDied(m) => write!(f, "actor died: {m}"),
            Error::DiskFull(m) => write!(f, "disk full: {m}"),
            Error::ObjectLost(m) => write!(f, "object lost: {m}"),
            Error::HostFailed(m) => write!(f, "host failed: {m}"),
            Error::Decode(m) => write!(f, "cannot decode object: {m}"),
        }
    }
}

impl std::error::Error for Error {}
