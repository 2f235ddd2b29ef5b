use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context as _;
use clap::Args;
use prism_cluster::protocol::NodeInfo;
use prism_cluster::transfer::{self, Components};
use prism_cluster::{Cluster, Heartbeat, Worker};

use super::NodeOptions;

/// Join a cluster as a node: run the tasks that drivers anywhere in it send
/// here, until stopped (Ctrl-C or SIGTERM).
#[derive(Args)]
pub struct Node {
    /// The cluster's NATS server, with JetStream on (`nats-server -js`)
    #[arg(long, value_name = "URL")]
    cluster: String,

    /// Where other nodes pull this node's objects from; the address must
    /// be one they can reach
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:0")]
    transfer_listen: SocketAddr,

    #[command(flatten)]
    node: NodeOptions,
}

impl Node {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let config = self.node.config()?;
        let (cpus, resources) = (config.workers, config.resources.clone());
        let tokio = super::tokio_runtime(cpus + 1, "prism-node")?;
        tokio.block_on(async {
            let node = prism_cli::open_node(config)?;
            let listener = tokio::net::TcpListener::bind(self.transfer_listen)
                .await
                .with_context(|| format!("cannot listen on {}", self.transfer_listen))?;
            let transfer = listener.local_addr()?.to_string();
            let components = Arc::new(Components::default());
            let cluster = Cluster::connect(&self.cluster).await?;
            let worker = Worker::new(node.clone(), components.clone(), cluster.clone(), transfer.clone());
            tokio::spawn(transfer::serve(listener, node.store.clone(), components, Some(worker.direct())));
            let info = {
                let (node, worker, transfer) = (node.clone(), worker.clone(), transfer.clone());
                move || NodeInfo {
                    id: String::new(),
                    transfer: transfer.clone(),
                    cpus,
                    resources: resources.clone(),
                    running: worker.running.load(Ordering::Relaxed),
                    tasks: node.tasks.started.load(Ordering::Relaxed),
                    failed: node.tasks.failed.load(Ordering::Relaxed),
                    objects: node.store.len() as u64,
                    bytes: node.store.usage().1,
                    pulled: worker.pulled.load(Ordering::Relaxed),
                    actors: worker.actors(),
                }
            };
            let mut id = Heartbeat::start(cluster.clone(), info).id;
            let serve = async {
                loop {
                    let current = id.borrow_and_update().clone();
                    node.set_id(&current);
                    worker.listen(&current).await.context("cannot take requests from the cluster")?;
                    eprintln!("node {current} joined {} ({cpus} cpus, objects served on {transfer})", self.cluster);
                    id.changed().await?;
                }
                #[expect(unreachable_code, reason = "the loop ends only with an error")]
                anyhow::Ok(())
            };
            tokio::select! {
                result = serve => result?,
                () = super::serve::shutdown_signal() => {
                    eprintln!("leaving the cluster");
                    cluster.leave(&id.borrow()).await;
                }
            }
            anyhow::Ok(())
        })?;
        Ok(ExitCode::SUCCESS)
    }
}
