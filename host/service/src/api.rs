//! The REST API under `/v1`: routing, authentication and quotas, and one
//! handler per endpoint. docs/http-api.md describes it for users and
//! docs/openapi.json for machines (a test keeps the two true).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderValue, RANGE};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tracing::Instrument as _;

use crate::Service;
use crate::http::{ApiError, Body, BodyReader, JSON_BODY_MAX, Reply, full, json_response, read_body};
use crate::jobs;
use crate::space::{ActorRecord, Space};
use crate::tenants::Tenant;
use crate::values;
use prism_exec::{TaskArg, TaskOptions};
use prism_store::error::{Failure, listing};
use prism_store::{ByteString, GetError, Object, ObjectId};

/// The OpenAPI document of this API.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// Answers one request.
pub async fn handle(service: Arc<Service>, request: Request<Incoming>) -> Response<Body> {
    let started = Instant::now();
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.uri().path(),
        tenant = tracing::field::Empty,
        status = tracing::field::Empty,
    );
    let response = route(&service, request).instrument(span.clone()).await.unwrap_or_else(|e| e.response());
    span.record("status", response.status().as_u16());
    service.metrics.request(response.status(), started.elapsed());
    response
}

/// A request taken apart: what the handlers need.
struct Call {
    method: Method,
    path: Vec<String>,
    query: HashMap<String, String>,
    request: Request<Incoming>,
}

impl Call {
    fn query(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.query(key), Some("" | "true" | "1"))
    }
}

async fn route(service: &Arc<Service>, request: Request<Incoming>) -> Reply {
    let method = request.method().clone();
    let path: Vec<String> =
        request.uri().path().split('/').filter(|s| !s.is_empty()).map(|s| percent_decode(s).into_owned()).collect();
    let query =
        request.uri().query().map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
    let call = Call { method, path, query, request };
    let segments: Vec<&str> = call.path.iter().map(String::as_str).collect();
    match (&call.method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => Ok(json_response(StatusCode::OK, &json!({"status": "ok"}))),
        (&Method::GET, ["v1", "openapi.json"]) => {
            let mut response = Response::new(full(OPENAPI));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Ok(response)
        }
        (_, ["v1", ..]) => {
            let tenant = authenticate(service, &call.request)?;
            tracing::Span::current().record("tenant", tenant.name.as_str());
            if !tenant.rate.admit(tenant.quotas.requests_per_second) {
                return Err(ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "quota_exceeded",
                    format!(
                        "more than {} requests a second (quota `requests_per_second`); slow down",
                        tenant.quotas.requests_per_second
                    ),
                ));
            }
            let space = service.space(&tenant).await.map_err(|e| match e.downcast_ref::<crate::Deleted>() {
                Some(deleted) => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", deleted.to_string()),
                None => e.into(),
            })?;
            tenant_route(service, &tenant, &space, call).await
        }
        _ => unrouted(&call, &segments),
    }
}

fn authenticate(service: &Service, request: &Request<Incoming>) -> Result<Arc<Tenant>, ApiError> {
    let unauthorized = |m: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", m);
    let header = request
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(|| unauthorized("no `Authorization: Bearer <token>` header"))?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| h.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("the `Authorization` header must be `Bearer <token>`"))?;
    service.tenants.authenticate(token.trim()).ok_or_else(|| unauthorized("the token is not valid"))
}

async fn tenant_route(service: &Arc<Service>, tenant: &Tenant, space: &Arc<Space>, mut call: Call) -> Reply {
    // The handlers take `call` by value and need only its query and body.
    let path = std::mem::take(&mut call.path);
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    let method = call.method.clone();
    match (&method, &segments[1..]) {
        (&Method::POST, ["modules"]) => upload_module(tenant, space, call).await,
        (&Method::GET, ["modules"]) => Ok(json_response(StatusCode::OK, &json!({"modules": space.modules()}))),
        (&Method::GET, ["modules", id]) => Ok(json_response(StatusCode::OK, &space.module(id).await?.info)),
        (&Method::DELETE, ["modules", id]) => {
            space.delete_module(id)?;
            Ok(no_content())
        }
        (&Method::POST, ["modules", id, "functions", function]) => invoke(tenant, space, id, function, call).await,
        (&Method::POST, ["objects"]) => upload_object(tenant, space, call).await,
        (&Method::GET, ["objects", id]) => download(space, id, call).await,
        (&Method::GET, ["objects", id, "meta"]) => object_meta(space, id),
        (&Method::POST, ["objects", id, "cancel"]) => cancel(space, id, &call),
        (&Method::DELETE, ["objects", id]) => {
            let id = parse_ref(id)?;
            if !space.unpin(&id).await? {
                return Err(unknown_ref(&id));
            }
            Ok(no_content())
        }
        (&Method::POST, ["actors"]) => create_actor(tenant, space, call).await,
        (&Method::GET, ["actors"]) => {
            let name =
                call.query("name").ok_or_else(|| ApiError::bad_request("give the actor's name: ?name=<name>"))?;
            let id =
                space.node.actor_by_name(name).map_err(|_| ApiError::not_found(format!("no actor named `{name}`")))?;
            Ok(json_response(StatusCode::OK, &json!({"id": id.to_string(), "name": name})))
        }
        (&Method::POST, ["actors", id, "methods", method]) => call_actor(tenant, space, id, method, call).await,
        (&Method::DELETE, ["actors", id]) => {
            space.kill_actor(parse_actor(id)?).await?;
            Ok(no_content())
        }
        (&Method::POST, ["jobs"]) => jobs::submit(service, tenant, space, call.request).await,
        (&Method::GET, ["jobs"]) => Ok(json_response(StatusCode::OK, &json!({"jobs": space.jobs().await?}))),
        (&Method::GET, ["jobs", id]) => Ok(json_response(StatusCode::OK, &space.job(id).await?)),
        (&Method::GET, ["jobs", id, "logs"]) => jobs::logs(space, id, call.flag("follow")).await,
        (&Method::POST, ["jobs", id, "stop"]) => jobs::stop(space, id).await,
        _ => unrouted(&call, &segments),
    }
}

/// What a request no route takes gets: `405` with `Allow` where the path is
/// an endpoint's (the OpenAPI document says which methods it has), else `404`.
fn unrouted(call: &Call, segments: &[&str]) -> Reply {
    let path = call.request.uri().path();
    let allowed = allowed_methods(segments);
    if allowed.is_empty() {
        return Err(ApiError::not_found(format!(
            "no endpoint `{} {path}`; the API is under /v1, described at /v1/openapi.json",
            call.method
        )));
    }
    let allow = allowed.join(", ");
    let message = format!("`{path}` answers {allow}, not {}", call.method);
    let mut response = ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", message).response();
    response.headers_mut().insert(hyper::header::ALLOW, HeaderValue::from_str(&allow).expect("method names are ASCII"));
    Ok(response)
}

/// The methods of the endpoint at `segments`, from the OpenAPI document.
fn allowed_methods(segments: &[&str]) -> Vec<String> {
    type Template = (Vec<String>, Vec<String>);
    static ENDPOINTS: std::sync::LazyLock<Vec<Template>> = std::sync::LazyLock::new(|| {
        let doc: Json = serde_json::from_str(OPENAPI).expect("the OpenAPI document is JSON");
        let paths = doc["paths"].as_object().expect("the OpenAPI document has paths");
        let endpoint = |(path, operations): (&String, &Json)| {
            let template = path.split('/').filter(|s| !s.is_empty()).map(String::from).collect();
            let operations = operations.as_object().expect("a path item is an object");
            let methods = operations.keys().filter(|k| *k != "parameters").map(|m| m.to_uppercase()).collect();
            (template, methods)
        };
        paths.iter().map(endpoint).collect()
    });
    let fits = |template: &[String]| {
        template.len() == segments.len() && template.iter().zip(segments).all(|(t, s)| t.starts_with('{') || t == s)
    };
    ENDPOINTS.iter().filter(|(template, _)| fits(template)).flat_map(|(_, methods)| methods.clone()).collect()
}

fn no_content() -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

fn percent_decode(segment: &str) -> Cow<'_, str> {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy()
}

fn parse_ref(id: &str) -> Result<ObjectId, ApiError> {
    id.parse().map_err(ApiError::bad_request)
}

fn parse_actor(id: &str) -> Result<ObjectId, ApiError> {
    id.parse().map_err(|_| ApiError::bad_request(format!("`{id}` is not an actor id (64 hex digits)")))
}

fn unknown_ref(id: &ObjectId) -> ApiError {
    ApiError::not_found(format!("no object `{id}`"))
}

/// A request body as JSON of type `T`.
fn parse_json<T: for<'de> Deserialize<'de>>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("{what} is not valid JSON of the expected shape: {e}")))
}

/// A call's arguments: a JSON array (an empty body is no arguments).
fn parse_args(body: &[u8]) -> Result<Vec<TaskArg>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let args: Vec<Json> = parse_json(body, "the arguments (a JSON array)")?;
    values::args_from_json(&args).map_err(ApiError::bad_request)
}

/// Refuses ref arguments the namespace does not have (a foreign or
/// guessed ref is just as unknown).
fn check_refs(space: &Space, args: &[TaskArg]) -> Result<(), ApiError> {
    for arg in args {
        if let TaskArg::Object(id) = arg
            && let Some(Err(failure)) = space.node.store.done(id)
            && matches!(*failure, Failure::NotFound(_))
        {
            return Err(unknown_ref(id));
        }
    }
    Ok(())
}

/// Counts a call against `tenant`'s `concurrent_tasks` quota (429 when full).
pub(super) fn begin_call(tenant: &Tenant, space: &Arc<Space>) -> Result<crate::space::InFlight, ApiError> {
    space.begin_call(tenant.quotas.concurrent_tasks).ok_or_else(|| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota_exceeded",
            format!(
                "{} calls are already in flight (quota `concurrent_tasks`); wait for some to finish",
                tenant.quotas.concurrent_tasks
            ),
        )
    })
}

async fn upload_module(tenant: &Tenant, space: &Space, call: Call) -> Reply {
    let name = call.query("name").unwrap_or("module.wasm").to_string();
    let wasm = read_body(call.request.into_body(), tenant.quotas.upload_bytes, UPLOAD_QUOTA).await?;
    let info = space.add_module(&name, &wasm).await?;
    Ok(json_response(StatusCode::CREATED, &info))
}

async fn invoke(tenant: &Tenant, space: &Arc<Space>, module: &str, function: &str, call: Call) -> Reply {
    let want_ref = call.query("result") == Some("ref");
    let body = read_json_body(call.request.into_body(), tenant).await?;
    let module = space.module(module).await?;
    let Some(signature) = module.info.functions.iter().find(|f| f.name == function) else {
        let names = module.info.functions.iter().map(|f| f.name.as_str());
        return Err(missing(format_args!("module `{}`", module.info.name), "function", function, names));
    };
    let args = parse_args(&body)?;
    check_arity(signature, signature.params.len(), args.len())?;
    check_refs(space, &args)?;
    let in_flight = begin_call(tenant, space)?;
    let (job, options) = (&module.job, TaskOptions::default());
    // Waiting for the value: the task runs right here, no hand-off.
    let id = if want_ref {
        space.node.remote(job, function.to_string(), args, options)
    } else {
        space.node.call(job, function.to_string(), args, options).await
    };
    answer(space, function, id, want_ref, in_flight).await
}

/// The answer to a call whose result is `id` (a reference the caller
/// owns): the value, or at once the ref (pinned) with `want_ref`.
async fn answer(
    space: &Arc<Space>,
    function: &str,
    id: ObjectId,
    want_ref: bool,
    in_flight: crate::space::InFlight,
) -> Reply {
    if want_ref {
        space.pin_call(id, function).await?;
        // The call stays counted against the quota until it is done.
        let space = space.clone();
        tokio::spawn(async move {
            let _ = space.node.store.get(&id, None).await;
            drop(in_flight);
            space.call_done(id).await;
        });
        return Ok(json_response(StatusCode::ACCEPTED, &json!({"ref": id.to_string()})));
    }
    let result = space.node.store.get(&id, None).await;
    drop(in_flight);
    space.node.store.release(&id);
    let object = result.map_err(get_error)?;
    let value = decode(&object)?;
    Ok(json_response(StatusCode::OK, &json!({"result": value})))
}

fn decode(object: &Object) -> Result<Json, ApiError> {
    values::decode(&object.to_vec().map_err(|f| failure_error(&f))?).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_json",
            format!("the value has no JSON form ({e}); tasks can still take it by its ref"),
        )
    })
}

/// What limits an upload's body.
const UPLOAD_QUOTA: &str = "quota `upload_bytes`";

/// Reads a JSON request body: at most [`JSON_BODY_MAX`] (or the tenant's
/// `upload_bytes`, if smaller).
pub async fn read_json_body(body: Incoming, tenant: &Tenant) -> Result<Bytes, ApiError> {
    if tenant.quotas.upload_bytes < JSON_BODY_MAX {
        return read_body(body, tenant.quotas.upload_bytes, UPLOAD_QUOTA).await;
    }
    let why = "a JSON body's limit; upload large data with `POST /v1/objects` and pass `{\"$ref\": …}`";
    read_body(body, JSON_BODY_MAX, why).await
}

/// A failed call as an error answer.
pub fn failure_error(failure: &Failure) -> ApiError {
    let (status, code) = match failure {
        Failure::TaskFailed(_) => (StatusCode::UNPROCESSABLE_ENTITY, "task_failed"),
        Failure::TaskCrashed(_) => (StatusCode::UNPROCESSABLE_ENTITY, "task_crashed"),
        Failure::Cancelled(_) => (StatusCode::CONFLICT, "cancelled"),
        Failure::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        Failure::InvalidArgument(_) => (StatusCode::BAD_REQUEST, "invalid_argument"),
        Failure::LimitExceeded(_) => (StatusCode::PAYLOAD_TOO_LARGE, "quota_exceeded"),
        Failure::ActorDied(_) => (StatusCode::GONE, "actor_died"),
        Failure::DiskFull(_) => (StatusCode::INSUFFICIENT_STORAGE, "disk_full"),
        Failure::ObjectLost(_) => (StatusCode::GONE, "object_lost"),
        Failure::HostFailed(_) => (StatusCode::INTERNAL_SERVER_ERROR, "host_failed"),
        Failure::TimedOut(_) => (StatusCode::GATEWAY_TIMEOUT, "timed_out"),
    };
    ApiError::new(status, code, failure.to_string())
}

/// Refuses a call of `what` (taking `takes` arguments) with `given`, before
/// it runs.
fn check_arity(what: impl std::fmt::Display, takes: usize, given: usize) -> Result<(), ApiError> {
    if takes == given {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_argument",
        format!("`{what}` takes {takes} argument(s), got {given}"),
    ))
}

/// 404: `owner` has no `what` called `name`; the message lists those it has.
fn missing<'a>(
    owner: impl std::fmt::Display,
    what: &str,
    name: &str,
    known: impl Iterator<Item = &'a str>,
) -> ApiError {
    ApiError::not_found(format!("{owner} has no {what} `{name}`; it has {}", listing(known)))
}

async fn upload_object(tenant: &Tenant, space: &Arc<Space>, call: Call) -> Reply {
    let body = BodyReader::new(call.request.into_body(), tenant.quotas.upload_bytes, UPLOAD_QUOTA)?;
    if let Some(len) = body.announced() {
        space.node.store.check_room(len).map_err(|f| failure_error(&f))?;
    }
    // Streamed into the store's file by a blocking thread: neither a large
    // upload nor many at once take their size in memory.
    let (feed, reader) = body.into_blocking();
    let space = space.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let id = space.node.store.put_bin_streamed(reader).map_err(|f| failure_error(&f))?;
        space.pin_blocking(id)?;
        // Acknowledged means durable.
        space.node.store.flush().map_err(|f| failure_error(&f))?;
        Ok::<_, ApiError>(id)
    });
    let (fed, stored) = tokio::join!(feed, stored);
    // A body that failed explains why the store did.
    let size = fed?;
    let id = stored.map_err(ApiError::internal)??;
    Ok(json_response(StatusCode::CREATED, &json!({"ref": id.to_string(), "size": size})))
}

/// The object `id` once it is ready (waiting for a pending result).
async fn ready(space: &Space, id: &ObjectId) -> Result<Arc<Object>, ApiError> {
    if !space.node.store.retain(id) {
        return Err(unknown_ref(id));
    }
    let result = space.node.store.get(id, None).await;
    space.node.store.release(id);
    result.map_err(get_error)
}

/// A `get` without a deadline that found no value, as an answer.
fn get_error(err: GetError) -> ApiError {
    match err {
        GetError::Failed(failure) => failure_error(&failure),
        GetError::Timeout => unreachable!("no deadline was given"),
    }
}

async fn download(space: &Space, id: &str, call: Call) -> Reply {
    let id = parse_ref(id)?;
    let object = ready(space, &id).await?;
    let Some(bytes) = object.byte_string() else {
        let value = decode(&object)?;
        return Ok(json_response(StatusCode::OK, &value));
    };
    let len = match bytes {
        ByteString::Inline(b) => b.len() as u64,
        ByteString::File(_, len) => len,
    };
    let range = match call.request.headers().get(RANGE) {
        Some(header) => Some(parse_range(header, len)?),
        None => None,
    };
    let (start, end) = range.unwrap_or((0, len));
    let body = match bytes {
        ByteString::Inline(b) => full(Bytes::copy_from_slice(&b[start as usize..end as usize])),
        ByteString::File(path, _) => file_body(path, start, end).await?,
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(end - start));
    headers.insert("accept-ranges", HeaderValue::from_static("bytes"));
    if range.is_some() {
        let value = format!("bytes {start}-{}/{len}", end.max(1) - 1);
        headers.insert(CONTENT_RANGE, HeaderValue::from_str(&value).map_err(ApiError::internal)?);
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    Ok(response)
}

/// `Range: bytes=a-b`, `a-` or `-n` over `len` bytes, as [start, end): a
/// header of another shape is `400`, a range outside the object `416`.
fn parse_range(header: &HeaderValue, len: u64) -> Result<(u64, u64), ApiError> {
    let text = header.to_str().unwrap_or("?");
    let malformed =
        || ApiError::bad_request(format!("`Range: {text}` is not one range, `bytes=start-end`, `start-` or `-n`"));
    // Digits past u64 are past any object's end.
    let number =
        |s: &str| (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().unwrap_or(u64::MAX));
    let spec = text.strip_prefix("bytes=").ok_or_else(malformed)?;
    let (a, b) = spec.split_once('-').ok_or_else(malformed)?;
    let (start, end) = match (a, b) {
        ("", n) => (len.saturating_sub(number(n).ok_or_else(malformed)?), len),
        (a, "") => (number(a).ok_or_else(malformed)?, len),
        (a, b) => {
            // `b < a` is a range of nothing: unsatisfiable (RFC 9110, 14.1.1).
            let (a, b) = (number(a).ok_or_else(malformed)?, number(b).ok_or_else(malformed)?);
            (a, b.saturating_add(1).min(len))
        }
    };
    if start >= end || start >= len {
        return Err(ApiError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range_not_satisfiable",
            format!("the range `{text}` is not within the object's {len} bytes"),
        ));
    }
    Ok((start, end))
}

/// The bytes [start, end) of the file at `path`, streamed.
async fn file_body(path: &std::path::Path, start: u64, end: u64) -> Result<Body, ApiError> {
    use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _};
    let mut file = tokio::fs::File::open(path).await.map_err(ApiError::internal)?;
    file.seek(std::io::SeekFrom::Start(start)).await.map_err(ApiError::internal)?;
    let stream =
        futures::stream::unfold((file.take(end - start), vec![0u8; 256 << 10]), |(mut file, mut buf)| async move {
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => Some((Ok(hyper::body::Frame::data(Bytes::copy_from_slice(&buf[..n]))), (file, buf))),
                Err(e) => Some((Err(e), (file, buf))),
            }
        });
    Ok(http_body_util::StreamBody::new(stream).boxed())
}

fn object_meta(space: &Space, id: &str) -> Reply {
    let id = parse_ref(id)?;
    let meta = match space.node.store.try_get(&id) {
        None => json!({"ref": id.to_string(), "state": "pending"}),
        Some(Ok(object)) => {
            let (kind, size) = match object.byte_string() {
                Some(ByteString::Inline(b)) => ("bytes", b.len() as u64),
                Some(ByteString::File(_, len)) => ("bytes", len),
                None => ("value", object.len()),
            };
            json!({"ref": id.to_string(), "state": "ready", "kind": kind, "size": size})
        }
        Some(Err(failure)) if matches!(*failure, Failure::NotFound(_)) => return Err(unknown_ref(&id)),
        Some(Err(failure)) => {
            let error = failure_error(&failure);
            json!({"ref": id.to_string(), "state": "failed", "error": {"code": error.code, "message": error.message}})
        }
    };
    Ok(json_response(StatusCode::OK, &meta))
}

/// Ray's `ray.cancel(ref, recursive=…)` on the call that makes `id`: it
/// ends within an epoch tick, so the answer only says it was asked.
fn cancel(space: &Space, id: &str, call: &Call) -> Reply {
    let id = parse_ref(id)?;
    let recursive = match call.query("recursive") {
        None | Some("" | "true" | "1") => true,
        Some("false" | "0") => false,
        Some(other) => {
            return Err(ApiError::bad_request(format!("`recursive` is `true` or `false`, not `{other}`")));
        }
    };
    space.node.cancel(id, recursive).map_err(|failure| failure_error(&failure))?;
    Ok(json_response(StatusCode::ACCEPTED, &json!({"ref": id.to_string(), "recursive": recursive})))
}

async fn create_actor(tenant: &Tenant, space: &Arc<Space>, call: Call) -> Reply {
    let body = read_json_body(call.request.into_body(), tenant).await?;
    let record: ActorRecord = parse_json(&body, "the actor")?;
    let args = values::args_from_json(&record.args).map_err(ApiError::bad_request)?;
    let module = space.module(&record.module).await?;
    let Some(class) = module.job.program.class(&record.class) else {
        let names = module.info.classes.iter().map(|c| c.name.as_str());
        return Err(missing(format_args!("module `{}`", module.info.name), "actor class", &record.class, names));
    };
    check_arity(class, class.params.len(), args.len())?;
    check_refs(space, &args)?;
    let id = space.create_actor(&record, None).await?;
    Ok(json_response(StatusCode::CREATED, &json!({"id": id.to_string(), "name": record.name})))
}

async fn call_actor(tenant: &Tenant, space: &Arc<Space>, id: &str, method: &str, call: Call) -> Reply {
    let want_ref = call.query("result") == Some("ref");
    let id = parse_actor(id)?;
    let body = read_json_body(call.request.into_body(), tenant).await?;
    let args = parse_args(&body)?;
    // An actor that is not here fails its call (404, or 410 if it died).
    if let Some(class) = space.node.actor_class(id) {
        let Some(signature) = class.method(method) else {
            let names = class.methods.iter().map(|m| m.name.as_str());
            return Err(missing(format_args!("actor class `{}`", class.name), "method", method, names));
        };
        check_arity(format_args!("{}.{signature}", class.name), signature.params.len(), args.len())?;
    }
    check_refs(space, &args)?;
    let in_flight = begin_call(tenant, space)?;
    let caller = space.node.next_caller();
    let result = space.node.call_actor(caller, id, method.to_string(), args);
    answer(space, method, result, want_ref, in_flight).await
}
