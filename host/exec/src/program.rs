//! What a loaded component offers, as its source spells it.

use prism_store::error::{Failure, listing};

/// A task function's signature.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Signature {
    /// Its name.
    pub name: String,
    /// Its parameters, in order.
    pub params: Vec<Param>,
    /// Its return type (`()` for none).
    pub returns: String,
}

/// One parameter of a [`Signature`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Param {
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub ty: String,
}

/// An actor class.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Class {
    /// Its name.
    pub name: String,
    /// Its constructor's parameters, in order.
    pub params: Vec<Param>,
    /// Its methods, by name.
    pub methods: Vec<Signature>,
}

impl Class {
    /// The signature of method `name`, if it has one.
    pub fn method(&self, name: &str) -> Option<&Signature> {
        self.methods.iter().find(|m| m.name == name)
    }
}

/// `a: T, b: U`, as a signature shows them.
fn param_list(params: &[Param]) -> String {
    params.iter().map(|p| format!("{}: {}", p.name, p.ty)).collect::<Vec<_>>().join(", ")
}

impl std::fmt::Display for Signature {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({}) -> {}", self.name, param_list(&self.params), self.returns)
    }
}

/// The constructor: `Class(a: T)`.
impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}({})", self.name, param_list(&self.params))
    }
}

/// A loaded component: what it is and what it can run. The executor that
/// loaded it runs it by `hash`.
#[derive(Debug, Clone)]
pub struct ProgramInfo {
    /// Its file name, for messages.
    pub name: String,
    /// blake3 of its bytes.
    pub hash: [u8; 32],
    /// The functions it can run as tasks, sorted.
    pub functions: Vec<String>,
    /// Their signatures, in the same order.
    pub signatures: Vec<Signature>,
    /// The actor classes it defines, sorted by name.
    pub classes: Vec<Class>,
    /// Whether it can run as a driver (exports `wasi:cli/run`).
    pub command: bool,
    /// Whether the compiled code came from the on-disk cache.
    pub from_cache: bool,
}

impl ProgramInfo {
    /// The failure of asking for a `what` named `name` it does not have.
    pub fn missing<'a>(&self, what: &str, name: &str, known: impl Iterator<Item = &'a str>) -> Failure {
        Failure::InvalidArgument(format!("component `{}` has no {what} `{name}`; it has {}", self.name, listing(known)))
    }

    /// Its actor class `name`.
    pub fn class(&self, name: &str) -> Option<&Class> {
        self.classes.iter().find(|c| c.name == name)
    }

    /// Whether it can run as a driver (exports `wasi:cli/run`).
    pub fn is_command(&self) -> bool {
        self.command
    }
}
