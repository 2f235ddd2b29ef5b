//! prism's node: Ray's core (`put`, `get`, `wait`, `remote`) for WebAssembly
//! components.
//!
//! The parts, in the order a `remote` call meets them:
//! - [`runtime`]: compiles and caches components, runs drivers and tasks in
//!   fresh sandboxed instances, and implements the `prism:core` imports;
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
pub mod config;
pub mod generators;
mod node;
pub mod runtime;
pub mod scheduler;
pub mod service;
pub mod slots;

pub use actors::{ActorId, ActorOptions};
pub use config::Config;
pub use node::{Host, Job, Library, Node};
pub use prism_store::{self as store, ObjectId, ObjectStore};
pub use prism_store::{Failure, Link};
pub use runtime::output::{Output, Stream};
pub use runtime::{Class, DriverExit, LoadError, Param, Program, Signature};
pub use scheduler::{TaskArg, TaskOptions};
