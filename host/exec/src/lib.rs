//! The executor seam: what the node hands to whoever runs a task or an
//! actor call, and what the running code may ask of the node in return.
//!
//! The node (scheduler, actors, jobs) decides what runs where and when; an
//! [`Executor`] runs it. The local one is the wasmtime runtime; the cluster
//! will add one that forwards to another node. Neither side names the
//! other's types: they meet here, in plain data and two traits.
//! - [`program`]: what a loaded component offers (its functions, classes);
//! - [`config`]: the node's settings and the limits guests run under;
//! - a call's arguments and options, as values ([`TaskArg`], [`Input`]);
//! - [`Executor`] and [`ActorInstance`]: running tasks, actors and drivers;
//! - [`Calls`]: the imports' side, what a running call asks of its node;
//! - [`output`]: where a job's guest output goes.

mod call;
mod calls;
pub mod config;
mod executor;
pub mod output;
pub mod program;

pub use self::call::{ActorId, ActorOptions, Affinity, DEFAULT_MAX_RETRIES, Input, Placement, TaskArg, TaskOptions};
pub use self::calls::{Calls, Lease, NextCall, NextItem, QueuedCall, Slot};
pub use self::config::{Config, LimitNames};
pub use self::executor::{
    ActorInstance, DriverExit, Executor, Fetch, InstanceLimits, LoadError, Outcome, Run, Trapped, Value, WORKER_EXPORT,
};
pub use self::output::{Output, Stream};
pub use self::program::{Class, Param, ProgramInfo, Signature};
