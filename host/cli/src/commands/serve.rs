use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use prism_exec::config::LimitNames;
use prism_node::Threads;
use prism_service::quotas::Quotas;
use prism_service::{Service, admin, api, http};

use super::HostOptions;

/// Serve the HTTP API: tenants deploy components, invoke their functions,
/// keep objects, run actors and jobs (docs/http-api.md).
///
/// Prints `listening on http://<addr>` once it accepts requests. Tenants
/// are created with `prism tenant create` (through the admin socket in the
/// data directory). SIGTERM or ctrl-c: stop accepting, let requests in
/// flight finish, make everything durable, exit.
#[derive(Args)]
pub struct Serve {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, default_value = "127.0.0.1:8080", env = "PRISM_LISTEN")]
    listen: SocketAddr,

    /// Also serve `/metrics` on this address (it is always on the admin
    /// socket; it names tenants, so keep it off public interfaces)
    #[arg(long)]
    metrics_listen: Option<SocketAddr>,

    #[command(flatten)]
    quotas: QuotaOptions,

    #[command(flatten)]
    host: HostOptions,
}

/// Tenants' default quotas (`prism tenant quota` overrides them per tenant).
#[derive(Args)]
struct QuotaOptions {
    /// Calls in flight per tenant
    #[arg(long, default_value_t = Quotas::default().concurrent_tasks)]
    quota_concurrent_tasks: u32,
    /// Actors alive at once per tenant (each holds an instance slot)
    #[arg(long, default_value_t = Quotas::default().actors)]
    quota_actors: u32,
    /// Memory of each instance, in MiB
    #[arg(long, value_name = "MIB", default_value_t = Quotas::default().memory_per_instance >> 20)]
    quota_memory_per_instance: u64,
    /// CPU time of each call, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = Quotas::default().cpu_deadline_ms)]
    quota_cpu_deadline_ms: u64,
    /// CPU time of each job's driver, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = Quotas::default().job_cpu_ms)]
    quota_job_cpu_ms: u64,
    /// Bytes of each job's log, in MiB
    #[arg(long, value_name = "MIB", default_value_t = Quotas::default().job_log_bytes >> 20)]
    quota_job_log_bytes: u64,
    /// Bytes of objects kept per tenant, in MiB
    #[arg(long, value_name = "MIB", default_value_t = Quotas::default().stored_bytes >> 20)]
    quota_stored_bytes: u64,
    /// The largest request body, in MiB
    #[arg(long, value_name = "MIB", default_value_t = Quotas::default().upload_bytes >> 20)]
    quota_upload_bytes: u64,
    /// Requests per second per tenant
    #[arg(long, default_value_t = Quotas::default().requests_per_second)]
    quota_requests_per_second: u32,
}

impl QuotaOptions {
    fn quotas(&self) -> Quotas {
        Quotas {
            concurrent_tasks: self.quota_concurrent_tasks,
            actors: self.quota_actors,
            memory_per_instance: self.quota_memory_per_instance << 20,
            cpu_deadline_ms: self.quota_cpu_deadline_ms,
            job_cpu_ms: self.quota_job_cpu_ms,
            job_log_bytes: self.quota_job_log_bytes << 20,
            stored_bytes: self.quota_stored_bytes << 20,
            upload_bytes: self.quota_upload_bytes << 20,
            requests_per_second: self.quota_requests_per_second,
        }
    }
}

impl Serve {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let mut config = self.host.config();
        config.limit_names = LimitNames::QUOTAS;
        // Declared first, so it outlives the calls that moved to it.
        let background = super::background_runtime(&config)?;
        let tokio = super::serve_runtime(&config)?;
        tokio.block_on(async {
            let socket = config.data_dir.join(admin::SOCKET);
            std::fs::create_dir_all(&config.data_dir)?;
            let admin = bind_admin(&socket)?;
            let threads = Threads::split(tokio::runtime::Handle::current(), background.handle().clone());
            let service = Service::open(prism_cli::local_host(&config, threads)?, config, self.quotas.quotas())?;
            let listener = tokio::net::TcpListener::bind(self.listen)
                .await
                .with_context(|| format!("cannot listen on {}", self.listen))?;
            let (stop_tx, stop) = tokio::sync::watch::channel(false);
            let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
                let _ = rx.wait_for(|s| *s).await;
            };
            let s = service.clone();
            let admin_server =
                tokio::spawn(http::serve(admin, move |r| admin::handle(s.clone(), r), stopped(stop.clone())));
            if let Some(addr) = self.metrics_listen {
                let metrics =
                    tokio::net::TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}"))?;
                let s = service.clone();
                let handler = move |_| {
                    let response = admin::metrics_response(&s);
                    async move { response }
                };
                tokio::spawn(http::serve(metrics, handler, stopped(stop.clone())));
            }
            println!("listening on http://{}", listener.local_addr()?);
            let s = service.clone();
            let signal = async {
                shutdown_signal().await;
                eprintln!("shutting down: finishing requests in flight");
                let _ = stop_tx.send(true);
            };
            http::serve(listener, move |r| api::handle(s.clone(), r), signal).await;
            let _ = admin_server.await;
            let _ = std::fs::remove_file(&socket);
            service.flush()?;
            anyhow::Ok(ExitCode::SUCCESS)
        })
    }
}

/// Binds the admin socket, readable by this user only. A socket file left
/// by a server that died is replaced; a live one means a server runs.
fn bind_admin(path: &std::path::Path) -> anyhow::Result<tokio::net::UnixListener> {
    if std::os::unix::net::UnixStream::connect(path).is_ok() {
        anyhow::bail!("a server already runs on this data directory (its admin socket `{}` answers)", path.display());
    }
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)
        .with_context(|| format!("cannot bind the admin socket `{}`", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Resolves on ctrl-c or SIGTERM.
pub(super) async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
