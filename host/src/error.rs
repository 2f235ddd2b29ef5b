//! Why an object has no value: the host side of the WIT `error` variant.

use std::fmt;

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
    /// The task failed; the chain ends with the task that failed first.
    TaskFailed(Vec<Link>),
    /// A ref the store has never seen.
    NotFound(String),
    /// The call was malformed.
    InvalidArgument(String),
    /// A limit was reached; the message names it.
    LimitExceeded(String),
    /// The actor is gone; the message says why.
    ActorDied(String),
}

impl Failure {
    /// A task `function` failed with `message`.
    pub fn task(function: &str, message: impl Into<String>) -> Self {
        Failure::TaskFailed(vec![Link { function: function.to_string(), message: message.into() }])
    }

    /// Task `function` could not run because `cause` (one of its inputs)
    /// failed: the chain names both.
    pub fn caused(function: &str, message: impl Into<String>, cause: &Failure) -> Self {
        let mut chain = vec![Link { function: function.to_string(), message: message.into() }];
        match cause {
            Failure::TaskFailed(links) => chain.extend(links.iter().cloned()),
            other => chain[0].message = format!("{}: {other}", chain[0].message),
        }
        Failure::TaskFailed(chain)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::TaskFailed(chain) => {
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
        }
    }
}

impl std::error::Error for Failure {}

/// `names` as an error message lists them: `` `a`, `b` ``, or `none`.
pub(crate) fn listing<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<_> = names.map(|n| format!("`{n}`")).collect();
    if names.is_empty() { "none".to_string() } else { names.join(", ") }
}
