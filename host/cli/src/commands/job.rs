use std::process::ExitCode;

use bytes::Bytes;
use clap::Subcommand;
use hyper::Method;
use serde_json::json;

use super::client::{ServerOptions, print_json, runtime};
use super::client::{copy_body, ok};

/// Run a driver component on the server, as `prism run` runs one here.
#[derive(Subcommand)]
pub enum Job {
    /// Start a job; prints its record (with its id)
    Submit {
        /// The module's id or name (it must have `fn main`)
        module: String,
        /// Arguments passed to the driver (after `--`)
        #[arg(last = true)]
        args: Vec<String>,
        #[command(flatten)]
        server: ServerOptions,
    },
    /// Print a job's state
    Status {
        /// The job's id
        id: String,
        #[command(flatten)]
        server: ServerOptions,
    },
    /// Print a job's output
    Logs {
        /// The job's id
        id: String,
        /// Keep printing until the job ends
        #[arg(short, long)]
        follow: bool,
        #[command(flatten)]
        server: ServerOptions,
    },
    /// Stop a running job
    Stop {
        /// The job's id
        id: String,
        #[command(flatten)]
        server: ServerOptions,
    },
}

impl Job {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let rt = runtime()?;
        match self {
            Job::Submit { module, args, server } => {
                let body = Bytes::from(json!({"module": module, "args": args}).to_string());
                print_json(&rt.block_on(server.endpoint()?.json(Method::POST, "/v1/jobs", body, true))?);
            }
            Job::Status { id, server } => {
                print_json(&rt.block_on(server.endpoint()?.json(
                    Method::GET,
                    &format!("/v1/jobs/{id}"),
                    Bytes::new(),
                    false,
                ))?);
            }
            Job::Stop { id, server } => {
                let path = format!("/v1/jobs/{id}/stop");
                print_json(&rt.block_on(server.endpoint()?.json(Method::POST, &path, Bytes::new(), false))?);
            }
            Job::Logs { id, follow, server } => {
                let path = format!("/v1/jobs/{id}/logs{}", if follow { "?follow=true" } else { "" });
                rt.block_on(async {
                    let response = server.endpoint()?.send(Method::GET, &path, Bytes::new(), false).await?;
                    copy_body(ok(response).await?, &mut std::io::stdout().lock()).await
                })?;
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}
