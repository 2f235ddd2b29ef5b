//! prism's node: Ray's core (`put`, `get`, `wait`, `remote`) for WebAssembly
//! components.
//!
//! The parts, in the order a `remote` call meets them:
//! - [`exec`]: the seam between the node, which decides what runs, and the
//!   [`prism_exec::Executor`] that runs it;
//! - the `prism-runtime` crate: the local executor: compiles and caches
//!   components, runs drivers and tasks in sandboxed instances, and
//!   implements the `prism:core` imports over [`prism_exec::Calls`];
//! - [`scheduler`]: admits tasks onto logical cpus, resolves their ref
//!   arguments, retries them;
//! - [`store`] (the `prism-store` crate): immutable objects, in memory and
//!   durably on disk;
//! - [`actors`]: long-lived instances holding state, serving calls in order;
//! - [`generators`]: streams of items yielded by generator tasks.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use prism_host::{Config, Node, Output};
//! let node = Node::open(Config::new("/tmp/prism-data"))?;
//! let program = node.load("square.wasm", &std::fs::read("square.wasm")?).await?;
//! let job = node.job(program, Output::stdio());
//! node.run_driver(&job, &[]).await?;
//! # Ok(()) }
//! ```

pub mod actors;
pub mod cancel;
pub mod generators;
mod node;
pub mod scheduler;
mod scope;
pub mod service;
pub mod slots;

pub use node::{Host, Job, Library, Node};
pub use prism_exec::{
    ActorId, ActorOptions, Class, Config, DriverExit, LoadError, Output, Param, ProgramInfo, Signature, Stream,
    TaskArg, TaskOptions, config,
};
pub use prism_store::{self as store, Failure, Link, ObjectId, ObjectStore};
