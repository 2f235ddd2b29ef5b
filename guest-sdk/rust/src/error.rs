use std::fmt;

use crate::wit::prism::core::types;

/// What a prism call can fail with: the WIT `error` variant, plus values that
/// do not decode as the type the caller asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The task (or one it depended on) failed; the chain starts with the
    /// task asked for and ends with the first one that failed.
    TaskFailed(Vec<Failure>),
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

impl From<types::Error> for Error {
    fn from(err: types::Error) -> Self {
        match err {
            types::Error::TaskFailed(chain) => Error::TaskFailed(
                chain.into_iter().map(|f| Failure { function: f.function, message: f.message }).collect(),
            ),
            types::Error::Timeout => Error::Timeout,
            types::Error::NotFound(m) => Error::NotFound(m),
            types::Error::InvalidArgument(m) => Error::InvalidArgument(m),
            types::Error::LimitExceeded(m) => Error::LimitExceeded(m),
            types::Error::ActorDied(m) => Error::ActorDied(m),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::TaskFailed(chain) => {
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
            Error::Decode(m) => write!(f, "cannot decode object: {m}"),
        }
    }
}

impl std::error::Error for Error {}
