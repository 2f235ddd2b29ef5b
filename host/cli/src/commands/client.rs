//! The HTTP client of the commands that talk to a server: `deploy`,
//! `invoke`, `object`, `job` over TCP, and `tenant` over the admin socket.

use std::io::{IsTerminal as _, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use bytes::{Bytes, BytesMut};
use clap::Args;
use futures::stream::{self, BoxStream, StreamExt as _};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt as _;

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
        body: impl Into<Upload>,
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
        let (body, length) = upload_body(body.into()).await?;
        let request = request.header(CONTENT_LENGTH, length).body(body)?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
        tokio::spawn(connection);
        Ok(sender.send_request(request).await?)
    }

    /// Sends a request and returns its JSON answer; an error answer is an
    /// error with the server's message.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Upload>,
        json: bool,
    ) -> anyhow::Result<serde_json::Value> {
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
    Ok(ok(response).await?.collect().await?.to_bytes())
}

/// Writes `body` to `out` as it arrives, flushing each chunk (logs are
/// read as they grow).
pub async fn copy_body(mut body: Incoming, out: &mut impl Write) -> anyhow::Result<()> {
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            out.write_all(&data)?;
            out.flush()?;
        }
    }
    Ok(())
}

/// The body of a successful response, unread; an error answer becomes an
/// error.
pub async fn ok(response: Response<Incoming>) -> anyhow::Result<Incoming> {
    let status = response.status();
    if status.is_success() {
        return Ok(response.into_body());
    }
    let bytes = response.into_body().collect().await?.to_bytes();
    let message = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
    anyhow::bail!("{message} (HTTP {status})")
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

/// A request body.
pub enum Upload {
    /// Bytes in memory (JSON, a module).
    Bytes(Bytes),
    /// A file, read a chunk at a time as it is sent.
    File(PathBuf),
}

impl From<Bytes> for Upload {
    fn from(bytes: Bytes) -> Self {
        Upload::Bytes(bytes)
    }
}

impl From<Vec<u8>> for Upload {
    fn from(bytes: Vec<u8>) -> Self {
        Upload::Bytes(bytes.into())
    }
}

type Chunk = Result<Frame<Bytes>, std::io::Error>;

/// The body of `upload` in chunks, and its length; on a terminal, each
/// chunk sent of a large one moves a progress line.
async fn upload_body(upload: Upload) -> anyhow::Result<(UnsyncBoxBody<Bytes, std::io::Error>, u64)> {
    let (chunks, total): (BoxStream<'static, Chunk>, u64) = match upload {
        Upload::Bytes(bytes) => {
            let total = bytes.len() as u64;
            let chunks: Vec<Chunk> = bytes.chunks(CHUNK).map(|c| Ok(Frame::data(bytes.slice_ref(c)))).collect();
            (stream::iter(chunks).boxed(), total)
        }
        Upload::File(path) => {
            let file =
                tokio::fs::File::open(&path).await.with_context(|| format!("cannot read `{}`", path.display()))?;
            let total = file.metadata().await?.len();
            let chunks = stream::try_unfold(file, |mut file| async move {
                let mut chunk = BytesMut::with_capacity(CHUNK);
                while chunk.len() < CHUNK && file.read_buf(&mut chunk).await? > 0 {}
                Ok((!chunk.is_empty()).then(|| (Frame::data(chunk.freeze()), file)))
            });
            (chunks.boxed(), total)
        }
    };
    let body = StreamBody::new(chunks);
    if total <= 4 * CHUNK as u64 || !std::io::stderr().is_terminal() {
        return Ok((body.boxed_unsync(), total));
    }
    let mut done = 0u64;
    let body = body.map_frame(move |frame| {
        done += frame.data_ref().map_or(0, |d| d.len() as u64);
        eprint!("\ruploading: {} of {} MiB ({}%)", done >> 20, total >> 20, done * 100 / total);
        if done == total {
            eprintln!();
        }
        frame
    });
    Ok((body.boxed_unsync(), total))
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
