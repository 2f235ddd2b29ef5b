use std::process::ExitCode;

use clap::{Args, Subcommand};
use prism_cluster::Cluster as Nats;
use prism_cluster::membership::DEAD_AFTER;

/// Look at a cluster of nodes
#[derive(Subcommand)]
pub enum Cluster {
    /// List the cluster's nodes: alive or dead, their cpus, load, actors and objects
    Status(Status),
}

#[derive(Args)]
pub struct Status {
    /// The cluster's NATS server
    #[arg(long, value_name = "URL")]
    cluster: String,

    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

impl Cluster {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let Cluster::Status(status) = self;
        let tokio = super::tokio_runtime(1, "prism")?;
        let mut nodes = tokio.block_on(async {
            let cluster = Nats::connect(&status.cluster).await?;
            cluster.nodes().await.map_err(|e| anyhow::anyhow!("cannot list the cluster's nodes: {e}"))
        })?;
        nodes.sort_by(|(a, _), (b, _)| a.id.cmp(&b.id));
        if status.json {
            let nodes: Vec<_> = nodes
                .iter()
                .map(|(n, alive)| {
                    serde_json::json!({
                        "id": n.id, "alive": alive, "transfer": n.transfer, "cpus": n.cpus, "running": n.running,
                        "tasks": n.tasks, "failed": n.failed, "objects": n.objects, "bytes": n.bytes, "pulled": n.pulled, "actors": n.actors,
                        "resources": n.resources.iter().map(|(k, v)| (k.clone(), serde_json::json!(v))).collect::<serde_json::Map<_, _>>(),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&nodes)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!(
            "{:<16}  {:<5}  {:>4}  {:>7}  {:>8}  {:>6}  {:>6}  {:>7}  {:>12}  {:>12}  {:<21}  RESOURCES",
            "NODE", "STATE", "CPUS", "RUNNING", "TASKS", "FAILED", "ACTORS", "OBJECTS", "BYTES", "PULLED", "TRANSFER"
        );
        for (n, alive) in &nodes {
            let state = if *alive { "alive" } else { "dead" };
            let resources: Vec<String> = n.resources.iter().map(|(name, amount)| format!("{name}={amount}")).collect();
            println!(
                "{:<16}  {:<5}  {:>4}  {:>7}  {:>8}  {:>6}  {:>6}  {:>7}  {:>12}  {:>12}  {:<21}  {}",
                n.id,
                state,
                n.cpus,
                n.running,
                n.tasks,
                n.failed,
                n.actors,
                n.objects,
                n.bytes,
                n.pulled,
                n.transfer,
                resources.join(",")
            );
        }
        if nodes.is_empty() {
            eprintln!("no node has joined (start one with `prism node --cluster {}`)", status.cluster);
        }
        eprintln!("(a node not heard from for {DEAD_AFTER:?} is dead)");
        Ok(ExitCode::SUCCESS)
    }
}
