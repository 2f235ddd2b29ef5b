//! The `prism` command's library: where the parts are put together. The
//! node ([`prism_node`]) runs its calls through the local executor
//! ([`prism_runtime`]); `prism serve` serves them over HTTP
//! ([`prism_service`]).

use std::sync::Arc;

use prism_exec::Config;
use prism_node::{Host, Node, Threads};
use prism_runtime::Runtime;

/// A host whose calls run in this process's wasmtime runtime, sized by
/// `config`, on `threads`.
pub fn local_host(config: &Config, threads: Threads) -> anyhow::Result<Host> {
    Ok(Host::with(Arc::new(Runtime::new(config)?), config, threads))
}

/// A node on `config.data_dir` (created if needed), on a local host of its
/// own, its calls on the current tokio runtime.
pub fn open_node(config: Config) -> anyhow::Result<Arc<Node>> {
    local_host(&config, Threads::default())?.open(config)
}
