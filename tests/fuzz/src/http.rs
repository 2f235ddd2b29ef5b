//! The HTTP target: one real [`Service`] on a temporary data directory,
//! each connection an in-memory pipe served as prism's server serves one.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use prism_exec::Config;
use prism_service::quotas::Quotas;
use prism_service::{Service, api, http};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// In a request, this stands for the fuzz tenant's token: the fuzzer cannot
/// guess one, and the routes behind authentication are the interesting ones.
pub const TOKEN: &[u8] = b"$TOKEN";

/// How long one connection may take before the target calls it a hang.
const HANG: Duration = Duration::from_secs(20);

struct Harness {
    runtime: tokio::runtime::Runtime,
    service: Arc<Service>,
    token: String,
    _data: tempfile::TempDir,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let data = tempfile::tempdir().expect("a temporary directory");
        let mut config = Config::new(data.path());
        config.workers = 2;
        config.max_instances = 16;
        // Small enough that a million uploads stay on a laptop's disk.
        let quotas = Quotas {
            stored_bytes: 64 << 20,
            upload_bytes: 1 << 20,
            requests_per_second: u32::MAX,
            ..Quotas::default()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let service = runtime.block_on(async {
            let wasm = prism_runtime::Runtime::new(&config).expect("the runtime starts");
            let host = prism_node::Host::with(Arc::new(wasm), &config, Default::default());
            Service::open(host, config, quotas).expect("the service opens")
        });
        let token = service.tenants.create("fuzz").expect("the fuzz tenant");
        Harness { runtime, service, token, _data: data }
    })
}

/// Sends `data` (with [`TOKEN`] replaced by a real token) as the bytes of
/// one connection to the server's own connection handling, then shuts the
/// client's side. Whatever the bytes, the server answers with well-formed
/// status lines below 500 or closes the connection, and never hangs.
pub fn http_request(data: &[u8]) {
    let harness = harness();
    let request = replace(data, TOKEN, harness.token.as_bytes());
    harness.runtime.block_on(async {
        let (client, server) = tokio::io::duplex(64 << 10);
        let service = harness.service.clone();
        let handler = service_fn(move |request| {
            let reply = api::handle(service.clone(), request);
            async move { Ok::<_, std::convert::Infallible>(reply.await) }
        });
        // Unlike a served socket, answer what came before the client's EOF:
        // the input is all the client says.
        let connection = http::connection_builder().half_close(true).serve_connection(TokioIo::new(server), handler);
        tokio::spawn(connection);
        let (mut from, mut to) = tokio::io::split(client);
        let write = async move {
            // The server may answer (and close) before it reads everything.
            let _ = to.write_all(&request).await;
            let _ = to.shutdown().await;
        };
        let read = async move {
            let mut response = Vec::new();
            let _ = from.read_to_end(&mut response).await;
            response
        };
        let (_, response) =
            tokio::time::timeout(HANG, async { tokio::join!(write, read) }).await.expect("the server hung");
        check(&response);
    });
}

/// Every response on the connection is a status line, none a 5xx.
fn check(response: &[u8]) {
    let text = String::from_utf8_lossy(response);
    let is_status = |line: &str| line.starts_with("HTTP/1.1 ") || line.starts_with("HTTP/1.0 ");
    for line in text.split("\r\n").filter(|l| is_status(l)) {
        let status = line.get(9..12).and_then(|s| s.parse::<u16>().ok());
        let status = status.unwrap_or_else(|| panic!("a malformed status line: {line}"));
        assert!(status < 500, "the server failed: {line}\n{text}");
    }
    assert!(response.is_empty() || is_status(&text), "not an HTTP response: {text}");
}

fn replace(data: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut rest = data;
    while let Some(at) = rest.windows(from.len()).position(|w| w == from) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(to);
        rest = &rest[at + from.len()..];
    }
    out.extend_from_slice(rest);
    out
}
