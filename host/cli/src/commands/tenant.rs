use std::process::ExitCode;

use bytes::Bytes;
use clap::{Args, Subcommand};
use hyper::Method;
use prism_service::admin::SOCKET;
use prism_service::quotas::{Overrides, Quotas};
use prism_service::remove_tenant_dir;
use prism_service::tenants::Registry;
use serde_json::json;

use super::DataDir;
use super::client::{Endpoint, encode, print_json, runtime};

/// Manage tenants (admin, on the server's machine): through the running
/// server's admin socket, or the data directory itself when none runs.
#[derive(Subcommand)]
pub enum Tenant {
    /// Create a tenant and print its bearer token (shown only this once)
    Create {
        /// Lowercase letters, digits and `-`, starting with a letter
        name: String,
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// List tenants and their quotas
    List {
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// Give a tenant a new bearer token and print it (shown only this once);
    /// the old one stops working at once
    Token {
        name: String,
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// Delete a tenant and everything it kept: its token stops working, its
    /// jobs, actors and calls stop, its modules and objects are removed
    Delete {
        name: String,
        #[command(flatten)]
        data_dir: DataDir,
    },
    /// Override some of a tenant's quotas
    Quota(QuotaArgs),
}

#[derive(Args)]
pub struct QuotaArgs {
    name: String,
    #[command(flatten)]
    data_dir: DataDir,
    /// Calls in flight at once
    #[arg(long)]
    concurrent_tasks: Option<u32>,
    /// Actors alive at once (each holds an instance slot)
    #[arg(long)]
    actors: Option<u32>,
    /// Memory of each instance, in MiB
    #[arg(long, value_name = "MIB")]
    memory_per_instance: Option<u64>,
    /// CPU time of each call, in milliseconds
    #[arg(long, value_name = "MS")]
    cpu_deadline_ms: Option<u64>,
    /// CPU time of each job's driver, in milliseconds
    #[arg(long, value_name = "MS")]
    job_cpu_ms: Option<u64>,
    /// Bytes of each job's log, in MiB
    #[arg(long, value_name = "MIB")]
    job_log_bytes: Option<u64>,
    /// Bytes of objects kept, in MiB
    #[arg(long, value_name = "MIB")]
    stored_bytes: Option<u64>,
    /// The largest request body, in MiB
    #[arg(long, value_name = "MIB")]
    upload_bytes: Option<u64>,
    /// Requests per second
    #[arg(long)]
    requests_per_second: Option<u32>,
}

impl Tenant {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let data_dir = match &self {
            Tenant::Create { data_dir, .. }
            | Tenant::Token { data_dir, .. }
            | Tenant::Delete { data_dir, .. }
            | Tenant::List { data_dir } => data_dir.path(),
            Tenant::Quota(args) => args.data_dir.path(),
        };
        let socket = data_dir.join(SOCKET);
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return runtime()?.block_on(self.through_server(Endpoint::Unix(socket)));
        }
        // No server runs: change the registry directly (it is locked while one does).
        std::fs::create_dir_all(&data_dir)?;
        let registry = Registry::open(&data_dir.join("tenants.redb"), Quotas::default())?;
        match self {
            Tenant::Create { name, .. } => println!("{}", registry.create(&name)?),
            Tenant::Token { name, .. } => println!("{}", registry.rotate_token(&name)?),
            Tenant::Delete { name, .. } => {
                registry.delete(&name)?;
                remove_tenant_dir(&data_dir.join("tenants").join(&name))?;
                eprintln!("deleted tenant `{name}`");
            }
            Tenant::List { .. } => {
                for tenant in registry.list() {
                    print_json(&json!({"name": tenant.name, "overrides": tenant.overrides}));
                }
            }
            Tenant::Quota(args) => {
                let tenant = registry.set_quotas(&args.name, &args.overrides())?;
                print_json(&json!({"name": tenant.name, "overrides": tenant.overrides}));
            }
        }
        Ok(ExitCode::SUCCESS)
    }

    async fn through_server(self, admin: Endpoint) -> anyhow::Result<ExitCode> {
        match self {
            Tenant::Create { name, .. } => {
                let body = Bytes::from(json!({"name": name}).to_string());
                let answer = admin.json(Method::POST, "/tenants", body, true).await?;
                println!("{}", answer["token"].as_str().unwrap_or_default());
            }
            Tenant::Delete { name, .. } => {
                admin.json(Method::DELETE, &format!("/tenants/{}", encode(&name)), Bytes::new(), false).await?;
                eprintln!("deleted tenant `{name}`");
            }
            Tenant::Token { name, .. } => {
                let path = format!("/tenants/{}/token", encode(&name));
                let answer = admin.json(Method::POST, &path, Bytes::new(), false).await?;
                println!("{}", answer["token"].as_str().unwrap_or_default());
            }
            Tenant::List { .. } => {
                let answer = admin.json(Method::GET, "/tenants", Bytes::new(), false).await?;
                for tenant in answer["tenants"].as_array().into_iter().flatten() {
                    print_json(tenant);
                }
            }
            Tenant::Quota(args) => {
                let body = Bytes::from(serde_json::to_vec(&args.overrides())?);
                let path = format!("/tenants/{}/quotas", encode(&args.name));
                print_json(&admin.json(Method::PATCH, &path, body, true).await?);
            }
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl QuotaArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            concurrent_tasks: self.concurrent_tasks,
            actors: self.actors,
            memory_per_instance: self.memory_per_instance.map(|m| m << 20),
            cpu_deadline_ms: self.cpu_deadline_ms,
            job_cpu_ms: self.job_cpu_ms,
            job_log_bytes: self.job_log_bytes.map(|m| m << 20),
            stored_bytes: self.stored_bytes.map(|m| m << 20),
            upload_bytes: self.upload_bytes.map(|m| m << 20),
            requests_per_second: self.requests_per_second,
        }
    }
}
