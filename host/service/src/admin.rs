//! The admin API, on a Unix socket in the data directory (`admin.sock`,
//! mode 0600): whoever may read the data directory may administer the
//! server, and nobody else, without an admin password to leak. It serves
//! tenant creation, deletion, token rotation and quotas, and `/metrics`.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::Service;
use crate::http::{ApiError, Body, Reply, full, json_response, read_body};
use crate::quotas::Overrides;
use crate::tenants::{Tenant, TenantError};

/// The socket's file name in the data directory.
pub const SOCKET: &str = "admin.sock";

/// The largest admin request body.
const MAX_BODY: u64 = 64 << 10;

/// `POST /tenants`'s body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTenant {
    name: String,
}

/// Answers one admin request.
pub async fn handle(service: Arc<Service>, request: Request<Incoming>) -> Response<Body> {
    route(&service, request).await.unwrap_or_else(|e| e.response())
}

async fn route(service: &Service, request: Request<Incoming>) -> Reply {
    let path: Vec<String> = request.uri().path().split('/').filter(|s| !s.is_empty()).map(str::to_string).collect();
    let path: Vec<&str> = path.iter().map(String::as_str).collect();
    match (request.method().clone(), path.as_slice()) {
        (Method::GET, ["metrics"]) => Ok(metrics_response(service)),
        (Method::GET, ["tenants"]) => {
            let tenants: Vec<_> = service.tenants.list().iter().map(|t| describe(t)).collect();
            Ok(json_response(StatusCode::OK, &json!({"tenants": tenants})))
        }
        (Method::POST, ["tenants"]) => {
            let body = read_body(request.into_body(), MAX_BODY, "the admin API's limit").await?;
            let new: NewTenant = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let token = service.tenants.create(&new.name).map_err(tenant_error)?;
            Ok(json_response(StatusCode::CREATED, &json!({"name": new.name, "token": token})))
        }
        (Method::DELETE, ["tenants", name]) => {
            service.delete_tenant(name).await.map_err(tenant_error)?;
            Ok(json_response(StatusCode::OK, &json!({"deleted": name})))
        }
        (Method::POST, ["tenants", name, "token"]) => {
            let token = service.tenants.rotate_token(name).map_err(tenant_error)?;
            Ok(json_response(StatusCode::OK, &json!({"name": name, "token": token})))
        }
        (Method::PATCH, ["tenants", name, "quotas"]) => {
            let name = name.to_string();
            let body = read_body(request.into_body(), MAX_BODY, "the admin API's limit").await?;
            let changes: Overrides = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(e.to_string()))?;
            let tenant = service.tenants.set_quotas(&name, &changes).map_err(tenant_error)?;
            service.apply_quotas(&tenant);
            Ok(json_response(StatusCode::OK, &describe(&tenant)))
        }
        _ => Err(ApiError::not_found(format!("no admin endpoint `{}`", request.uri().path()))),
    }
}

/// `/metrics` as Prometheus scrapes it.
pub fn metrics_response(service: &Service) -> Response<Body> {
    let mut response = Response::new(full(service.render_metrics()));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}

fn describe(tenant: &Tenant) -> serde_json::Value {
    json!({"name": tenant.name, "quotas": tenant.quotas, "overrides": tenant.overrides})
}

/// A registry error as an answer.
pub fn tenant_error(err: TenantError) -> ApiError {
    match err {
        TenantError::InvalidName(_) => ApiError::bad_request(err.to_string()),
        TenantError::Exists(_) => ApiError::new(StatusCode::CONFLICT, "conflict", err.to_string()),
        TenantError::Unknown(_) => ApiError::not_found(err.to_string()),
        TenantError::Registry { .. } | TenantError::Data { .. } => {
            ApiError::internal(format!("{:#}", anyhow::Error::from(err)))
        }
    }
}
