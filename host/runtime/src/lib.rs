//! prism's local executor: the wasmtime runtime. It compiles components
//! once (caching the artifact on disk), pre-links them, and runs drivers,
//! task calls and actors in sandboxed instances with limited memory and
//! cpu, implementing `prism:core`'s imports over [`prism_exec::Calls`].
//!
//! The parts:
//! - [`Runtime`] (`runtime.rs`): the engine, compiled components, warm
//!   instances; the [`prism_exec::Executor`] the node runs calls through;
//! - `engine.rs`: wasmtime's configuration (pooling, epochs);
//! - `instances.rs`: the pool's slots, one owner and one cap for every
//!   namespace, and the warm instances that give theirs up on demand;
//! - `bindings.rs`: host bindings generated from `wit/prism.wit`;
//! - `state.rs`: what each instance holds (limits, refs, streams);
//! - `imports.rs`: `prism:core/tasks` and `actors`;
//! - `objects.rs`: `prism:core/objects` (put, get, wait, globals);
//! - `mapping.rs`: `prism:core/bytes`, large objects mapped into guest memory;
//! - `output.rs`: guest stdout and stderr, line by line, to the job's output.

#[allow(missing_docs, reason = "generated from wit/prism.wit, which documents it")]
mod bindings;
mod engine;
mod imports;
mod instances;
mod mapping;
mod objects;
mod output;
mod runtime;
mod state;

pub use self::runtime::Runtime;
pub use self::state::LimitError;
