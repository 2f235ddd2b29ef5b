//! Remote calls: what `#[prism::remote]` generates code against.

use serde::Serialize;

use crate::encoding::encode;
use crate::object_ref::{from_words, to_words};
use crate::wit::prism::core::{tasks, types};
use crate::{Bytes, ObjectRef, Result, View};

/// Options of a remote call, as the arguments of Ray's `@ray.remote(...)`.
///
/// ```no_run
/// # #[prism::remote]
/// # fn flaky(x: i64) -> i64 { x }
/// # fn main() {
/// let r = flaky::remote_with(&prism::Options::new().max_retries(3), 7);
/// # }
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    max_retries: u32,
    retry_exceptions: bool,
    num_cpus: u32,
    placement: Placement,
}

impl Default for Options {
    fn default() -> Self {
        Options { max_retries: 3, retry_exceptions: false, num_cpus: 1, placement: Placement::default() }
    }
}

/// The resources and node a task or actor asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Placement {
    resources: Vec<(String, f64)>,
    node: Option<(String, bool)>,
}

impl Placement {
    pub(crate) fn resource(&mut self, name: &str, amount: f64) {
        self.resources.retain(|(n, _)| n != name);
        self.resources.push((name.to_string(), amount));
    }

    pub(crate) fn node(&mut self, node: &str, soft: bool) {
        self.node = Some((node.to_string(), soft));
    }

    pub(crate) fn to_wit(&self) -> (Vec<types::ResourceAmount>, Option<types::NodeAffinity>) {
        let resources =
            self.resources.iter().map(|(name, amount)| types::ResourceAmount { name: name.clone(), amount: *amount });
        let node = self.node.as_ref().map(|(node, soft)| types::NodeAffinity { node: node.clone(), soft: *soft });
        (resources.collect(), node)
    }
}

/// The id of the node this code runs on, for [`Options::node_affinity`]
/// (Ray's `get_runtime_context().get_node_id()`).
pub fn node_id() -> String {
    tasks::node_id()
}

impl Options {
    /// The defaults, Ray's: up to 3 re-runs after a crash, one cpu.
    pub fn new() -> Self {
        Self::default()
    }

    /// Re-run the task up to `n` times after it crashes (a trap, a panic,
    /// `exit`); never after its own cpu or memory limit ended it.
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

    /// Hold `amount` of the named resource while it runs (Ray's
    /// `resources={"gpu": 1}`): only a node started with `--resources
    /// gpu=N` runs it, one that has the amount free.
    pub fn resource(mut self, name: &str, amount: f64) -> Self {
        self.placement.resource(name, amount);
        self
    }

    /// Run on node `node` (a [`node_id`]); with `soft`, elsewhere if that
    /// node is gone or cannot run it (Ray's `NodeAffinitySchedulingStrategy`).
    pub fn node_affinity(mut self, node: &str, soft: bool) -> Self {
        self.placement.node(node, soft);
        self
    }

    pub(crate) fn to_wit(&self, component: Option<&Component>) -> types::TaskOptions {
        let (resources, node) = self.placement.to_wit();
        types::TaskOptions {
            max_retries: self.max_retries,
            retry_exceptions: self.retry_exceptions,
            num_cpus: self.num_cpus,
            component: component.map(|c| to_words(&c.id)),
            resources,
            node,
        }
    }
}

/// Another component of the same namespace (a tenant's deployed module, or
/// one `prism run --with` loaded), whose functions and actor classes this
/// one can call: values cross as MessagePack, whatever its language.
///
/// ```no_run
/// # fn main() -> prism::Result<()> {
/// let lib = prism::Component::named("lib")?;
/// let r: prism::ObjectRef<i64> = lib.remote("square", vec![prism::Arg::value(&7)], &prism::Options::new());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Component {
    id: [u8; 32],
}

impl Component {
    /// The component deployed (or loaded) under `name`.
    pub fn named(name: &str) -> Result<Component> {
        Ok(Component { id: from_words(tasks::component(name)?) })
    }

    /// The component whose bytes hash (blake3) to `id`.
    pub fn from_id(id: [u8; 32]) -> Component {
        Component { id }
    }

    /// Its id: the blake3 of its bytes.
    pub fn id(&self) -> &[u8; 32] {
        &self.id
    }

    /// Schedules its task `function` with `args`; the ref is returned before
    /// it runs. A missing function fails the task, naming it.
    pub fn remote<T>(&self, function: &str, args: Vec<Arg>, options: &Options) -> ObjectRef<T> {
        let args: Vec<types::Arg> = args.into_iter().map(Arg::into_wit).collect();
        ObjectRef::from_wit(tasks::remote(function, &args, &options.to_wit(Some(self))))
    }

    /// Creates an actor of its class `class`; `T` names the class for this
    /// program (call its methods with [`crate::Actor::call`]).
    pub fn actor<T>(&self, class: &str, args: Vec<Arg>, options: &crate::ActorOptions) -> Result<crate::Actor<T>> {
        crate::actor::create_in(Some(self), class, args, options)
    }
}

/// One argument of a remote call: a value, or a ref the host resolves first.
pub struct Arg(types::Arg);

impl Arg {
    /// `value`, passed as is.
    pub fn value<T: Serialize + ?Sized>(value: &T) -> Arg {
        Arg(types::Arg::Value(encode(value)))
    }

    /// The value of `r`, resolved before the task runs.
    pub fn object<T>(r: &ObjectRef<T>) -> Arg {
        Arg(types::Arg::Object(r.to_wit()))
    }

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
pub type Runner = fn(&[types::Payload]) -> Result<Vec<u8>, CallError>;

pub use crate::wit::exports::prism::core::worker::CallError;

/// How a function's `Err` reaches the host: a failed prism call it
/// propagated (with `?`) keeps its chain; any other error is its message.
pub fn refuse<E: std::fmt::Display + 'static>(error: E) -> CallError {
    match (&error as &dyn std::any::Any).downcast_ref::<crate::Error>().and_then(crate::Error::to_wit) {
        Some(error) => CallError::Propagated(error),
        None => CallError::Returned(error.to_string()),
    }
}

/// A message as a function's error.
pub fn refuse_with(message: String) -> CallError {
    CallError::Returned(message)
}

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
    ObjectRef::from_wit(tasks::remote(function, &args, &options.to_wit(None)))
}

/// Cancels the task whose result `r` is (Ray's `ray.cancel`): a pending
/// task never runs, a running one is interrupted within 10 ms, and its
/// `get` fails with [`crate::Error::Cancelled`]. With `recursive`, the tasks
/// it started are cancelled too. A finished task is left as it is.
pub fn cancel<T>(r: &ObjectRef<T>, recursive: bool) -> Result<()> {
    Ok(tasks::cancel(r.to_wit(), recursive)?)
}
