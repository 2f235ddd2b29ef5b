//! The service `prism serve` runs: a node that tenants reach over HTTP.
//!
//! - [`Service`] (`service.rs`): the tenants and their namespaces;
//! - [`tenants`]: who may call, by bearer token, with which [`quotas`];
//! - [`space`]: each tenant's namespace (its own object store, modules,
//!   actors and jobs) on the node's shared engine and cpus; [`pins`]: the
//!   objects it keeps across restarts, written in group commits;
//! - [`api`]: the REST API under `/v1` (docs/http-api.md, `/v1/openapi.json`);
//! - [`admin`]: the admin API on a Unix socket in the data directory;
//! - [`http`]: the hyper server both are served by;
//! - [`values`]: JSON in requests and responses, MessagePack inside.

pub mod admin;
pub mod api;
pub mod http;
pub mod jobs;
pub mod metrics;
pub mod pins;
pub mod quotas;
pub mod space;
pub mod tenants;
pub mod values;

mod service;

pub use self::service::{Deleted, Service, remove_tenant_dir};
