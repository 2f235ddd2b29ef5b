//! [`Service`]: the tenants and their namespaces, opened on first use.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::metrics::Metrics;
use crate::quotas::Quotas;
use crate::space::Space;
use crate::tenants::{Registry, Tenant, TenantError};
use prism_exec::InstanceLimits;
use prism_exec::config::Config;
use prism_node::Host;
use prism_store::Results;

/// A tenant deleted while its request waited for its namespace.
#[derive(Debug, thiserror::Error)]
#[error("tenant `{0}` was deleted")]
pub struct Deleted(String);

/// One server: its tenants and their namespaces.
pub struct Service {
    pub(crate) host: Host,
    /// The configuration each namespace starts from.
    config: Config,
    /// Who may call.
    pub tenants: Registry,
    spaces: Mutex<HashMap<String, Arc<Space>>>,
    /// Held while a tenant's namespace opens (redb allows one opener per
    /// file), one per tenant: a tenant whose namespace takes long to open
    /// (actors to restart) holds up no other tenant.
    opening: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
}

impl Service {
    /// Opens the service on `config.data_dir`, its namespaces on `host`;
    /// tenants get `defaults` where the admin set no override.
    pub fn open(host: Host, config: Config, defaults: Quotas) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(config.data_dir.join("tenants"))?;
        let tenants = Registry::open(&config.data_dir.join("tenants.redb"), defaults)?;
        Ok(Arc::new(Service {
            host,
            config,
            tenants,
            spaces: Mutex::new(HashMap::new()),
            opening: Mutex::new(HashMap::new()),
            metrics: Metrics::default(),
        }))
    }

    /// The data directory.
    pub fn data_dir(&self) -> &PathBuf {
        &self.config.data_dir
    }

    /// `tenant`'s namespace, opened on first use (restarting its actors).
    pub async fn space(&self, tenant: &Tenant) -> anyhow::Result<Arc<Space>> {
        if let Some(space) = self.spaces.lock().get(&tenant.name) {
            return Ok(space.clone());
        }
        // Opening reads from disk: not under `spaces`, so tenants already
        // open are served meanwhile.
        let _opening = self.opening(&tenant.name).lock_owned().await;
        if let Some(space) = self.spaces.lock().get(&tenant.name) {
            return Ok(space.clone());
        }
        // Deleted while this request waited.
        if !self.tenants.contains(&tenant.name) {
            return Err(Deleted(tenant.name.clone()).into());
        }
        let (host, config, name) = (self.host.clone(), self.namespace_config(tenant), tenant.name.clone());
        let space = tokio::task::spawn_blocking(move || Space::open(&name, host.open(config)?)).await??;
        space.restore_actors().await?;
        self.spaces.lock().insert(tenant.name.clone(), space.clone());
        Ok(space)
    }

    /// The lock held while `tenant`'s namespace opens.
    fn opening(&self, tenant: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.opening.lock().entry(tenant.to_string()).or_default().clone()
    }

    /// Deletes tenant `name`: its token stops working, its namespace closes
    /// (jobs stop, actors die, running calls trap at their next tick) and
    /// its directory, with everything it kept, is removed.
    pub async fn delete_tenant(&self, name: &str) -> Result<(), TenantError> {
        // Not while its namespace opens.
        let _opening = self.opening(name).lock_owned().await;
        self.tenants.delete(name)?;
        self.opening.lock().remove(name);
        let space = self.spaces.lock().remove(name);
        if let Some(space) = space {
            space.close();
        }
        let dir = self.config.data_dir.join("tenants").join(name);
        tokio::task::spawn_blocking(move || remove_tenant_dir(&dir))
            .await
            .map_err(|e| TenantError::Data { path: name.to_string(), source: std::io::Error::other(e) })?
    }

    /// The configuration of `tenant`'s namespace: the server's, with the
    /// tenant's quotas as its limits.
    fn namespace_config(&self, tenant: &Tenant) -> Config {
        let mut config = self.config.clone();
        config.data_dir = self.config.data_dir.join("tenants").join(&tenant.name);
        config.memory_limit = tenant.quotas.memory_per_instance;
        config.cpu_deadline = Duration::from_millis(tenant.quotas.cpu_deadline_ms);
        config.max_actors = Some(tenant.quotas.actors);
        config.driver_cpu_deadline = Some(Duration::from_millis(tenant.quotas.job_cpu_ms));
        config.object_store_disk = tenant.quotas.stored_bytes;
        config.object_store_memory = config.object_store_memory.min(tenant.quotas.stored_bytes);
        // A call answered with a ref is read after a restart too.
        config.results = Results::Durable;
        config
    }

    /// Applies `tenant`'s quotas to its namespace, if open (else they apply
    /// when it opens): its next calls and stores see them.
    pub fn apply_quotas(&self, tenant: &Tenant) {
        if let Some(space) = self.spaces.lock().get(&tenant.name) {
            let config = self.namespace_config(tenant);
            let store = (config.object_store_memory, config.object_store_disk);
            space.node.set_limits(InstanceLimits::of(&config), store);
        }
    }

    /// The namespaces open now, by tenant.
    pub fn open_spaces(&self) -> Vec<Arc<Space>> {
        let mut spaces: Vec<_> = self.spaces.lock().values().cloned().collect();
        spaces.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        spaces
    }

    /// Makes everything acknowledged durable (at shutdown).
    pub fn flush(&self) -> anyhow::Result<()> {
        for space in self.spaces.lock().values() {
            space.node.store.flush()?;
        }
        Ok(())
    }
}

/// Removes a deleted tenant's directory (if it had one). Its last calls
/// may still write a file there as they end: then it tries again.
pub fn remove_tenant_dir(dir: &std::path::Path) -> Result<(), TenantError> {
    let mut attempts = 0;
    loop {
        match std::fs::remove_dir_all(dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(_) if attempts < 5 => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(TenantError::Data { path: dir.display().to_string(), source: e }),
            Ok(()) => return Ok(()),
        }
        attempts += 1;
    }
}
