//! Tenants: who may use the service. redb keeps each tenant's name, the
//! blake3 hash of its bearer token (never the token) and its quota
//! overrides; the server keeps them in memory to authenticate requests.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;
use redb::{Database, ReadableDatabase as _, ReadableTable as _, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::quotas::{Overrides, Quotas, RateLimiter};

/// name → msgpack of [`Record`].
const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");

/// The longest tenant name: it names a directory and appears in metrics.
pub const MAX_NAME_LEN: usize = 32;

/// Bearer tokens start with this, so a leaked one is easy to recognize.
const TOKEN_PREFIX: &str = "prism_";

/// What redb keeps of a tenant.
#[derive(Clone, Serialize, Deserialize)]
struct Record {
    token_hash: [u8; 32],
    overrides: Overrides,
}

/// A tenant as the server knows it.
pub struct Tenant {
    /// Its name, also its namespace's directory.
    pub name: String,
    /// Its quotas (defaults with its overrides).
    pub quotas: Quotas,
    /// Its overrides alone.
    pub overrides: Overrides,
    /// Its request rate so far.
    pub rate: RateLimiter,
}

/// Why a tenant operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// The name cannot be used.
    #[error(
        "tenant name `{0}` is not valid: use 1 to {MAX_NAME_LEN} lowercase letters, digits and `-`, starting with a letter"
    )]
    InvalidName(String),
    /// The name is taken.
    #[error("tenant `{0}` already exists")]
    Exists(String),
    /// No such tenant.
    #[error("no tenant `{0}`")]
    Unknown(String),
    /// A deleted tenant's data could not be removed.
    #[error("cannot remove tenant data `{path}`: {source}")]
    Data {
        /// The directory.
        path: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The registry could not be read or written.
    #[error("tenant registry `{path}`: {source}")]
    Registry {
        /// The redb file.
        path: String,
        /// What redb said.
        #[source]
        source: anyhow::Error,
    },
}

/// The tenants of one server.
pub struct Registry {
    db: Database,
    path: String,
    defaults: Quotas,
    by_token: RwLock<HashMap<[u8; 32], Arc<Tenant>>>,
}

impl Registry {
    /// Opens (or creates) the registry at `path`; tenants get `defaults`
    /// where they have no override.
    pub fn open(path: &Path, defaults: Quotas) -> Result<Self, TenantError> {
        let shown = path.display().to_string();
        let err = |e: anyhow::Error| TenantError::Registry { path: shown.clone(), source: e };
        let db = Database::create(path).map_err(|e| err(e.into()))?;
        let txn = db.begin_write().map_err(|e| err(e.into()))?;
        txn.open_table(TENANTS).map_err(|e| err(e.into()))?;
        txn.commit().map_err(|e| err(e.into()))?;
        let registry = Registry { db, path: shown.clone(), defaults, by_token: RwLock::new(HashMap::new()) };
        let records = registry.records()?;
        let mut by_token = registry.by_token.write();
        for (name, record) in records {
            by_token.insert(record.token_hash, Arc::new(registry.tenant(name, record.overrides)));
        }
        drop(by_token);
        Ok(registry)
    }

    fn err(&self, e: impl Into<anyhow::Error>) -> TenantError {
        TenantError::Registry { path: self.path.clone(), source: e.into() }
    }

    fn tenant(&self, name: String, overrides: Overrides) -> Tenant {
        let quotas = overrides.apply(&self.defaults);
        Tenant { name, quotas, overrides, rate: RateLimiter::new(quotas.requests_per_second) }
    }

    fn records(&self) -> Result<Vec<(String, Record)>, TenantError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(TENANTS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.err(e))? {
            let (name, record) = row.map_err(|e| self.err(e))?;
            let record: Record = rmp_serde::from_slice(record.value()).map_err(|e| self.err(e))?;
            out.push((name.value().to_string(), record));
        }
        Ok(out)
    }

    /// Creates tenant `name`; returns its bearer token, which is shown
    /// only this once.
    pub fn create(&self, name: &str) -> Result<String, TenantError> {
        if !valid_name(name) {
            return Err(TenantError::InvalidName(name.to_string()));
        }
        let token = new_token();
        let record = Record { token_hash: token_hash(&token), overrides: Overrides::default() };
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        {
            let mut table = txn.open_table(TENANTS).map_err(|e| self.err(e))?;
            if table.get(name).map_err(|e| self.err(e))?.is_some() {
                return Err(TenantError::Exists(name.to_string()));
            }
            let bytes = rmp_serde::to_vec_named(&record).map_err(|e| self.err(e))?;
            table.insert(name, bytes.as_slice()).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        self.by_token.write().insert(record.token_hash, Arc::new(self.tenant(name.to_string(), record.overrides)));
        Ok(token)
    }

    /// Lays `changes` over tenant `name`'s overrides; returns the tenant.
    pub fn set_quotas(&self, name: &str, changes: &Overrides) -> Result<Arc<Tenant>, TenantError> {
        let (old, record) = self.update(name, |record| record.overrides = record.overrides.merge(changes))?;
        let tenant = Arc::new(self.tenant(name.to_string(), record.overrides));
        let mut by_token = self.by_token.write();
        by_token.remove(&old.token_hash);
        by_token.insert(record.token_hash, tenant.clone());
        Ok(tenant)
    }

    /// Gives tenant `name` a new bearer token, returned (and shown) only
    /// this once; the old one stops working at once.
    pub fn rotate_token(&self, name: &str) -> Result<String, TenantError> {
        let token = new_token();
        let (old, record) = self.update(name, |record| record.token_hash = token_hash(&token))?;
        let mut by_token = self.by_token.write();
        let tenant =
            by_token.remove(&old.token_hash).unwrap_or_else(|| Arc::new(self.tenant(name.into(), record.overrides)));
        by_token.insert(record.token_hash, tenant);
        Ok(token)
    }

    /// Deletes tenant `name` from the registry: its token stops working at
    /// once. (Its namespace is the service's to close and remove.)
    pub fn delete(&self, name: &str) -> Result<(), TenantError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let removed = {
            let mut table = txn.open_table(TENANTS).map_err(|e| self.err(e))?;
            table.remove(name).map_err(|e| self.err(e))?.map(|v| v.value().to_vec())
        };
        let Some(record) = removed else {
            return Err(TenantError::Unknown(name.to_string()));
        };
        let record: Record = rmp_serde::from_slice(&record).map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))?;
        self.by_token.write().remove(&record.token_hash);
        Ok(())
    }

    /// Whether tenant `name` exists.
    pub fn contains(&self, name: &str) -> bool {
        self.by_token.read().values().any(|t| t.name == name)
    }

    /// Changes tenant `name`'s record with `change`; returns it before and after.
    fn update(&self, name: &str, change: impl FnOnce(&mut Record)) -> Result<(Record, Record), TenantError> {
        let txn = self.db.begin_write().map_err(|e| self.err(e))?;
        let records = {
            let mut table = txn.open_table(TENANTS).map_err(|e| self.err(e))?;
            let Some(old) = table.get(name).map_err(|e| self.err(e))?.map(|v| v.value().to_vec()) else {
                return Err(TenantError::Unknown(name.to_string()));
            };
            let old: Record = rmp_serde::from_slice(&old).map_err(|e| self.err(e))?;
            let mut record = old.clone();
            change(&mut record);
            let bytes = rmp_serde::to_vec_named(&record).map_err(|e| self.err(e))?;
            table.insert(name, bytes.as_slice()).map_err(|e| self.err(e))?;
            (old, record)
        };
        txn.commit().map_err(|e| self.err(e))?;
        Ok(records)
    }

    /// The tenant whose token this is.
    pub fn authenticate(&self, token: &str) -> Option<Arc<Tenant>> {
        self.by_token.read().get(&token_hash(token)).cloned()
    }

    /// Every tenant, by name.
    pub fn list(&self) -> Vec<Arc<Tenant>> {
        let mut all: Vec<_> = self.by_token.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

/// A tenant name: a lowercase letter, then letters, digits and `-`.
pub fn valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// A fresh bearer token: 256 random bits.
fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", hex(&rand::random::<[u8; 32]>()))
}

fn token_hash(token: &str) -> [u8; 32] {
    *blake3::hash(token.as_bytes()).as_bytes()
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_and_overrides_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tenants.redb");
        let defaults = Quotas::default();
        let token = {
            let registry = Registry::open(&path, defaults).unwrap();
            let token = registry.create("alice").unwrap();
            // One field set, then another: neither may land in the other's place.
            registry.set_quotas("alice", &Overrides { requests_per_second: Some(7), ..Overrides::default() }).unwrap();
            registry.set_quotas("alice", &Overrides { stored_bytes: Some(5), ..Overrides::default() }).unwrap();
            assert!(matches!(registry.create("alice"), Err(TenantError::Exists(_))));
            assert!(matches!(registry.create("Alice"), Err(TenantError::InvalidName(_))));
            token
        };
        let registry = Registry::open(&path, defaults).unwrap();
        let alice = registry.authenticate(&token).unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.quotas, Quotas { requests_per_second: 7, stored_bytes: 5, ..defaults }, "overrides as saved");
        assert!(registry.authenticate("prism_0000").is_none());
        assert!(matches!(registry.set_quotas("bob", &Overrides::default()), Err(TenantError::Unknown(_))));
        // A new token replaces the old one, at once and after reopening.
        let rotated = registry.rotate_token("alice").unwrap();
        assert!(registry.authenticate(&token).is_none());
        assert_eq!(registry.authenticate(&rotated).unwrap().quotas, alice.quotas);
        drop((alice, registry));
        let registry = Registry::open(&path, defaults).unwrap();
        assert!(registry.authenticate(&token).is_none());
        assert_eq!(registry.authenticate(&rotated).unwrap().name, "alice");
        assert!(matches!(registry.rotate_token("bob"), Err(TenantError::Unknown(_))));
        // Deleted: gone at once and after reopening; the name is free again.
        registry.delete("alice").unwrap();
        assert!(registry.authenticate(&rotated).is_none() && !registry.contains("alice"));
        assert!(matches!(registry.delete("alice"), Err(TenantError::Unknown(_))));
        drop(registry);
        let registry = Registry::open(&path, defaults).unwrap();
        assert!(registry.authenticate(&rotated).is_none() && registry.list().is_empty());
        registry.create("alice").unwrap();
    }
}
