//! Actors: a struct whose methods run remotely in one long-lived instance
//! that holds its state (`#[prism::actor]` on the struct and its impl).

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::object_ref::{deserialize_id, from_words, serialize_id, to_words};
use crate::task::{Arg, CallError, Component, Placement};
use crate::wit::prism::core::{actors, types};
use crate::{Error, Generator, ObjectRef, Result};

/// MessagePack extension type of an actor handle nested in a value ('A').
const ACTOR_EXT_TYPE: i8 = 0x41;

/// A handle to an actor of class `T`, as Ray's `ActorHandle`. Call its
/// methods with `handle.method(args…).remote()`; pass it to tasks and other
/// actors like any value.
pub struct Actor<T> {
    id: [u8; 32],
    _class: PhantomData<fn() -> T>,
}

impl<T> Actor<T> {
    fn from_wit(id: (u64, u64, u64, u64)) -> Self {
        Actor { id: from_words(id), _class: PhantomData }
    }

    /// Ends the actor for good (Ray's `ray.kill(actor)`): the running call
    /// is interrupted, queued and later calls fail with `ActorDied`.
    pub fn kill(&self) -> Result<()> {
        Ok(actors::kill(to_words(&self.id), true)?)
    }

    /// Kills the actor and, if it has restarts left (`max_restarts`),
    /// restarts it with the same id and name (Ray's `ray.kill(actor,
    /// no_restart=False)`): the running call fails, queued ones run on the
    /// new instance.
    pub fn restart(&self) -> Result<()> {
        Ok(actors::kill(to_words(&self.id), false)?)
    }

    /// A call of `method` by name, for actors of other components (the
    /// generated `<Class>Remote` trait calls this).
    pub fn call<R>(&self, method: &str, args: Vec<Arg>) -> ActorCall<R> {
        ActorCall { actor: self.id, method: method.to_string(), args, _result: PhantomData }
    }

    /// A call of the generator method `method` by name.
    pub fn call_generator<R>(&self, method: &str, args: Vec<Arg>) -> ActorGeneratorCall<R> {
        ActorGeneratorCall(self.call(method, args))
    }
}

impl<T> Clone for Actor<T> {
    fn clone(&self) -> Self {
        Actor { id: self.id, _class: PhantomData }
    }
}

impl<T> fmt::Debug for Actor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Actor(")?;
        for b in &self.id[..8] {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

impl<T> Serialize for Actor<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_id(s, ACTOR_EXT_TYPE, &self.id)
    }
}

impl<'de, T> Deserialize<'de> for Actor<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = deserialize_id(d, ACTOR_EXT_TYPE, "an actor handle")?;
        Ok(Actor { id, _class: PhantomData })
    }
}

/// A method call, made with [`ActorCall::remote`].
#[must_use = "an actor call does nothing until `.remote()`"]
pub struct ActorCall<R> {
    actor: [u8; 32],
    method: String,
    args: Vec<Arg>,
    _result: PhantomData<fn() -> R>,
}

impl<R> ActorCall<R> {
    /// Queues the call and returns the ref of its result at once.
    pub fn remote(self) -> ObjectRef<R> {
        let args: Vec<types::Arg> = self.args.into_iter().map(Arg::into_wit).collect();
        ObjectRef::from_wit(actors::call(to_words(&self.actor), &self.method, &args))
    }
}

/// A call of a generator method, made with [`ActorGeneratorCall::remote`].
#[must_use = "an actor call does nothing until `.remote()`"]
pub struct ActorGeneratorCall<R>(ActorCall<R>);

impl<R> ActorGeneratorCall<R> {
    /// Queues the call and returns its generator at once.
    pub fn remote(self) -> Generator<R> {
        let ActorCall { actor, method, args, .. } = self.0;
        let args: Vec<types::Arg> = args.into_iter().map(Arg::into_wit).collect();
        Generator::from_wit(actors::call_generator(to_words(&actor), &method, &args))
    }
}

/// Options of an actor, as Ray's `Class.options(...)`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActorOptions {
    name: Option<String>,
    detached: bool,
    max_restarts: u32,
    max_task_retries: u32,
    placement: Placement,
}

impl ActorOptions {
    /// The defaults: unnamed, owned by its job, no restarts.
    pub fn new() -> Self {
        Self::default()
    }

    /// A unique name, for [`get_actor`].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Outlive the job that creates it (until killed).
    pub fn detached(mut self, yes: bool) -> Self {
        self.detached = yes;
        self
    }

    /// Re-run the constructor up to `n` times after a crash.
    pub fn max_restarts(mut self, n: u32) -> Self {
        self.max_restarts = n;
        self
    }

    /// Re-run a call that crashed up to `n` times (at-least-once calls).
    pub fn max_task_retries(mut self, n: u32) -> Self {
        self.max_task_retries = n;
        self
    }

    /// Hold `amount` of the named resource for as long as the actor lives,
    /// as [`Options::resource`](crate::Options::resource) does for a task.
    pub fn resource(mut self, name: &str, amount: f64) -> Self {
        self.placement.resource(name, amount);
        self
    }

    /// Live on node `node`, as [`Options::node_affinity`](crate::Options::node_affinity) says.
    pub fn node_affinity(mut self, node: &str, soft: bool) -> Self {
        self.placement.node(node, soft);
        self
    }
}

/// The live actor named `name`.
pub fn get_actor<T>(name: &str) -> Result<Actor<T>> {
    Ok(Actor::from_wit(actors::get_actor(name)?))
}

/// Creates an actor of `class`; what `Class::remote_with` calls.
pub fn create<T>(class: &str, args: Vec<Arg>, options: &ActorOptions) -> Result<Actor<T>> {
    create_in(None, class, args, options)
}

/// Creates an actor of `class` of `component` (the caller's own if `None`).
pub(crate) fn create_in<T>(
    component: Option<&Component>,
    class: &str,
    args: Vec<Arg>,
    options: &ActorOptions,
) -> Result<Actor<T>> {
    let args: Vec<types::Arg> = args.into_iter().map(Arg::into_wit).collect();
    let (resources, node) = options.placement.to_wit();
    let options = types::ActorOptions {
        component: component.map(|c| to_words(c.id())),
        name: options.name.clone(),
        detached: options.detached,
        max_restarts: options.max_restarts,
        max_task_retries: options.max_task_retries,
        resources,
        node,
    };
    Ok(Actor::from_wit(actors::create(class, &args, &options)?))
}

/// An actor class registered by `#[prism::actor]`.
pub struct ActorClass {
    /// The struct's name.
    pub name: &'static str,
    /// Its constructor's parameters' names and types, as written.
    pub params: &'static [(&'static str, &'static str)],
    /// Its methods' signatures.
    pub methods: &'static [Method],
    /// Decodes the constructor's arguments and builds the state.
    pub construct: Constructor,
    /// Runs a method on the state.
    pub call: MethodRunner,
}

/// A method's signature, as written.
pub struct Method {
    /// Its name, as called.
    pub name: &'static str,
    /// Its parameters' names and types (without the receiver).
    pub params: &'static [(&'static str, &'static str)],
    /// Its return type.
    pub returns: &'static str,
}

/// Decodes a constructor's arguments and builds an actor's state.
pub type Constructor = fn(&[types::Payload]) -> Result<Box<dyn Any>, CallError>;

/// Decodes a method's arguments, calls it on the state, encodes its result.
pub type MethodRunner = fn(&mut dyn Any, &str, &[types::Payload]) -> Result<Vec<u8>, CallError>;

inventory::collect!(ActorClass);

pub(crate) fn classes() -> impl Iterator<Item = &'static ActorClass> {
    inventory::iter::<ActorClass>.into_iter()
}

thread_local! {
    /// The actor this instance is, once constructed.
    static STATE: RefCell<Option<(&'static ActorClass, Box<dyn Any>)>> = const { RefCell::new(None) };
}

pub(crate) fn construct(class: &str, args: &[types::Payload]) -> Result<(), CallError> {
    let Some(found) = classes().find(|c| c.name == class) else {
        return Err(CallError::Returned(format!("this component has no actor class `{class}`")));
    };
    let state = (found.construct)(args)?;
    STATE.with(|s| *s.borrow_mut() = Some((found, state)));
    Ok(())
}

pub(crate) fn call_method(method: &str, args: &[types::Payload]) -> Result<Vec<u8>, CallError> {
    STATE.with(|s| match &mut *s.borrow_mut() {
        Some((class, state)) => (class.call)(state.as_mut(), method, args),
        None => Err(CallError::Returned("this instance holds no actor".to_string())),
    })
}

/// Decodes and checks a state downcast; used by generated code.
pub fn state<T: 'static>(state: &mut dyn Any) -> &mut T {
    state.downcast_mut::<T>().expect("an actor's state has its class's type")
}

/// The handle of an actor created without a name, which cannot fail (its
/// class is the generated code's own); used by `Class::remote()`.
pub fn created<T>(result: Result<Actor<T>>) -> Actor<T> {
    result.unwrap_or_else(|e: Error| panic!("creating an actor failed: {e}"))
}
