//! The HTTP client of the commands that talk to a server: `deploy`,
//! `invoke`, `object`, `job` over TCP, and `tenant` over the admin socket.

use std::io::IsTerminal as _;
use std::path::PathBuf;

use anyhow::Context as _;
use bytes::Bytes;
use clap::Args;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;

/// Which server, as whom.
#[derive(Args, Debug, Clone)]
pub struct ServerOptions {
    /// The server's address
    #[arg(long, env = "PRISM_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,

    /// The tenant's bearer token (from `prism tenant create`)
    #[arg(long, env = "PRISM_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Where requests go.
pub enum Endpoint {
    /// host:port, with a tenant token.
    Tcp { authority: String, token: Option<String> },
    /// The admin socket.
    Unix(PathBuf),
}

/// Chunks an upload is sent in (and its progress shown by).
const CHUNK: usize = 1 << 20;

impl ServerOptions {
    pub fn endpoint(&self) -> anyhow::Result<Endpoint> {
        let authority = self
            .server
            .strip_prefix("http://")
            .ok_or_else(|| anyhow::anyhow!("--server must be an http:// address, not `{}`", self.server))?
            .trim_end_matches('/')
            .to_string();
        Ok(Endpoint::Tcp { authority, token: self.token.clone() })
    }
}

impl Endpoint {
    /// Sends a request and returns the response, with the body streamed
    /// from `body` (showing progress on a terminal if it is large).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
        json: bool,
    ) -> anyhow::Result<Response<Incoming>> {
        let mut request = Request::builder().method(method).uri(path);
        let (host, io): (String, Box<dyn Io>) = match self {
            Endpoint::Tcp { authority, token } => {
                if let Some(token) = token {
                    request = request.header(AUTHORIZATION, format!("Bearer {token}"));
                }
                let stream = tokio::net::TcpStream::connect(authority)
                    .await
                    .with_context(|| format!("cannot reach the server at {authority} (see --server)"))?;
                (authority.clone(), Box::new(stream))
            }
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .with_context(|| format!("cannot reach the admin socket `{}`", path.display()))?;
                ("localhost".into(), Box::new(stream))
            }
        };
        request = request.header(HOST, host);
        if json {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request.body(progress_body(body))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(connection);
        Ok(sender.send_request(request).await?)
    }

    /// Sends a request and returns its JSON answer; an error answer is an
    /// error with the server's message.
    pub async fn json(&self, method: Method, path: &str, body: Bytes, json: bool) -> anyhow::Result<serde_json::Value> {
        let response = self.send(method, path, body, json).await?;
        let bytes = ok_body(response).await?;
        if bytes.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&bytes).context("the server's answer is not JSON")
    }
}

/// The body of a successful response; an error answer becomes an error.
pub async fn ok_body(response: Response<Incoming>) -> anyhow::Result<Bytes> {
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    if status.is_success() {
        return Ok(bytes);
    }
    let message = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
    anyhow::bail!("{message} (HTTP {status})")
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

type UploadBody = StreamBody<futures::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, std::convert::Infallible>>>>;

/// `body` in chunks; on a terminal, each chunk sent moves a progress line.
fn progress_body(body: Bytes) -> http_body_util::combinators::BoxBody<Bytes, std::convert::Infallible> {
    let total = body.len();
    let show = total > 4 * CHUNK && std::io::stderr().is_terminal();
    let mut chunks = Vec::new();
    let mut sent = 0;
    while sent < total {
        let end = (sent + CHUNK).min(total);
        chunks.push(Ok(Frame::data(body.slice(sent..end))));
        sent = end;
    }
    let stream = futures::stream::iter(chunks);
    let body: UploadBody = StreamBody::new(stream);
    if !show {
        return body.boxed();
    }
    let mut done = 0usize;
    body.map_frame(move |frame| {
        done += frame.data_ref().map_or(0, Bytes::len);
        eprint!("\ruploading: {} of {} MiB ({}%)", done >> 20, total >> 20, done * 100 / total);
        if done == total {
            eprintln!();
        }
        frame
    })
    .boxed()
}

/// A tokio runtime for one client command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// `value` pretty-printed on stdout.
pub fn print_json(value: &serde_json::Value) {
    use std::io::Write as _;
    // A closed stdout (`| head`) is not an error worth a panic.
    let _ = writeln!(std::io::stdout(), "{}", serde_json::to_string_pretty(value).expect("a JSON value prints"));
}

/// Percent-encodes a path segment or query value.
pub fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
