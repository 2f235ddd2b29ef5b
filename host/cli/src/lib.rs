//! The `prism` command's library: where the parts are put together. The
//! node ([`prism_node`]) runs its calls through the local executor
//! ([`prism_runtime`]); `prism serve` serves them over HTTP
//! ([`prism_service`]); with a cluster, a driver's tasks run on the
//! cluster's nodes ([`prism_cluster`]).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use prism_cluster::transfer::{self, Components};
use prism_cluster::{Cluster, Dispatcher};

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

/// A node on `config.data_dir` whose tasks run on the nodes of the cluster
/// whose NATS server is at `url` (its actors and drivers here); the nodes
/// pull its objects and components from `transfer_listen`. Fails if no
/// node is alive. The dispatcher is what a driver that ends waits on
/// ([`Dispatcher::settle`]).
pub async fn cluster_node(
    config: Config,
    url: &str,
    transfer_listen: SocketAddr,
) -> anyhow::Result<(Arc<Node>, Arc<Dispatcher>)> {
    let cluster = Cluster::connect(url).await?;
    let members = cluster.watch().await?;
    if !members.at_least(1, Duration::from_secs(5)).await {
        anyhow::bail!("no node of the cluster at {url} is alive: start one with `prism node --cluster {url}`");
    }
    let listener = tokio::net::TcpListener::bind(transfer_listen)
        .await
        .with_context(|| format!("cannot listen on {transfer_listen}"))?;
    let origin = listener.local_addr()?.to_string();
    let components = Arc::new(Components::default());
    let local = Arc::new(Runtime::new(&config)?);
    let dispatcher = Arc::new(Dispatcher::new(local, cluster, members, origin, components.clone()).await?);
    let node = Host::with(dispatcher.clone(), &config, Threads::default()).open(config)?;
    tokio::spawn(transfer::serve(listener, node.store.clone(), components, None));
    tokio::spawn(dispatcher.answer_callers(node.clone()));
    Ok((node, dispatcher))
}
