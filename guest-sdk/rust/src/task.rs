//! Remote calls: what `#[prism::remote]` generates code against.

use serde::Serialize;

use crate::encoding::encode;
use crate::wit::prism::core::{tasks, types};
use crate::{Bytes, ObjectRef, View};

/// Options of a remote call, as the arguments of Ray's `@ray.remote(...)`.
///
/// ```ignore
/// let r = flaky::remote_with(&prism::Options::new().max_retries(3), 7);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    max_retries: u32,
    retry_exceptions: bool,
    num_cpus: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options { max_retries: 0, retry_exceptions: false, num_cpus: 1 }
    }
}

impl Options {
    /// The defaults: no retries, one cpu.
    pub fn new() -> Self {
        Self::default()
    }

    /// Re-run the task up to `n` times after it traps.
    pub fn max_retries(mut self, n: u32) -> Self {
        self.max_retries = n;
        self
    }

    /// Also re-run it (within `max_retries`) when it returns an error.
    pub fn retry_exceptions(mut self, yes: bool) -> Self {
        self.retry_exceptions = yes;
        self
    }

    /// Logical cpus the task holds while it runs (0: it never waits for one).
    pub fn num_cpus(mut self, n: u32) -> Self {
        self.num_cpus = n;
        self
    }

    pub(crate) fn to_wit(self) -> types::TaskOptions {
        types::TaskOptions {
            max_retries: self.max_retries,
            retry_exceptions: self.retry_exceptions,
            num_cpus: self.num_cpus,
        }
    }
}

/// One argument of a remote call: a value, or a ref the host resolves first.
pub struct Arg(types::Arg);

impl Arg {
    pub(crate) fn into_wit(self) -> types::Arg {
        self.0
    }
}

/// Anything that can be passed where a task takes a `T`: a `T` itself, or an
/// `ObjectRef<T>` (the task receives the object's value, as in Ray).
pub trait IntoArg<T> {
    /// Converts into the argument sent to the host.
    fn into_arg(self) -> Arg;
}

impl<T: Serialize> IntoArg<T> for T {
    fn into_arg(self) -> Arg {
        Arg(types::Arg::Value(encode(&self)))
    }
}

impl<T> IntoArg<T> for ObjectRef<T> {
    fn into_arg(self) -> Arg {
        Arg(types::Arg::Object(self.to_wit()))
    }
}

impl<T> IntoArg<T> for &ObjectRef<T> {
    fn into_arg(self) -> Arg {
        Arg(types::Arg::Object(self.to_wit()))
    }
}

/// A ref to a byte string passes where a task takes a [`View`]: a large one
/// arrives mapped.
impl IntoArg<View> for ObjectRef<Bytes> {
    fn into_arg(self) -> Arg {
        Arg(types::Arg::Object(self.to_wit()))
    }
}

impl IntoArg<View> for &ObjectRef<Bytes> {
    fn into_arg(self) -> Arg {
        Arg(types::Arg::Object(self.to_wit()))
    }
}

/// Decodes a task's arguments, calls it, encodes its result (or its error).
pub type Runner = fn(&[types::Payload]) -> Result<Vec<u8>, String>;

/// A function registered by `#[prism::remote]`.
pub struct TaskFn {
    /// The function's name, as given to `remote`.
    pub name: &'static str,
    /// Its parameters' names and types, as written.
    pub params: &'static [(&'static str, &'static str)],
    /// Its return type, as written.
    pub returns: &'static str,
    /// Runs it.
    pub run: Runner,
}

inventory::collect!(TaskFn);

pub(crate) fn registered() -> impl Iterator<Item = &'static TaskFn> {
    inventory::iter::<TaskFn>.into_iter()
}

/// Schedules `function` with `args`; the ref is returned before it runs.
pub fn remote<T>(function: &str, args: Vec<Arg>, options: &Options) -> ObjectRef<T> {
    let args: Vec<types::Arg> = args.into_iter().map(Arg::into_wit).collect();
    ObjectRef::from_wit(tasks::remote(function, &args, options.to_wit()))
}
