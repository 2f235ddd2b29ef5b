//! prism's node: Ray's core (`put`, `get`, `wait`, `remote`, actors,
//! generators, cancel) over one namespace's objects. It decides what runs,
//! when and in which order; an executor (`prism_exec::Executor`) runs it.
//!
//! The parts, in the order a `remote` call meets them:
//! - [`Node`] (`node.rs`): one namespace: its store, components, jobs and
//!   limits; [`Host`] is what a machine's namespaces share;
//! - [`scheduler`]: admits tasks onto logical cpus, resolves their ref
//!   arguments, retries them, stores their results;
//! - [`slots`]: the logical cpus, shared fairly between namespaces;
//! - [`resources`]: named resources (`--resources gpu=1`), held by the
//!   tasks and actors that ask for them;
//! - [`threads`]: which threads run a call: long ones move to background
//!   threads of a lower OS priority;
//! - [`actors`]: long-lived instances holding state, serving calls in order;
//! - [`generators`]: streams of items yielded by generator tasks;
//! - [`cancel`]: Ray's `ray.cancel`, recursive;
//! - `scope.rs`: the node's side of one running call, what its imports act on.
//!
//! ```no_run
//! # async fn demo(executor: std::sync::Arc<dyn prism_exec::Executor>) -> anyhow::Result<()> {
//! use prism_exec::{Config, Output};
//! use prism_node::Host;
//! let config = Config::new("/tmp/prism-data");
//! let node = Host::with(executor, &config, Default::default()).open(config)?;
//! let program = node.load("square.wasm", &std::fs::read("square.wasm")?).await?;
//! let job = node.job(program, Output::stdio());
//! node.run_driver(&job, &[]).await?;
//! # Ok(()) }
//! ```

pub mod actors;
pub mod cancel;
pub mod generators;
mod node;
pub mod resources;
pub mod scheduler;
mod scope;
pub mod slots;
pub mod threads;

pub use self::node::{ActorsElsewhere, HereTask, Host, InstanceHere, Job, Library, Node, TaskCounts, TasksElsewhere};
pub use self::threads::Threads;
