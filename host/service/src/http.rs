//! The HTTP layer: errors as JSON, bodies read under a size limit and an
//! idle timeout, and the accept loop with graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt as _, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite};

/// A response body: whole, or streamed (object downloads, logs).
pub type Body = BoxBody<Bytes, std::io::Error>;

/// How long a client may take to send its request headers: a slow-loris
/// client holding connections open gets cut off after this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request body may pause between two chunks.
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long shutdown waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// An error answer: its status, a stable machine-readable code, and a
/// message for people.
#[derive(Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// A short code, e.g. `not_found`.
    pub code: &'static str,
    /// What was wrong, and what to do.
    pub message: String,
}

impl From<prism_store::Closed> for ApiError {
    fn from(closed: prism_store::Closed) -> Self {
        crate::api::failure_error(&prism_store::Failure::HostFailed(closed.to_string()))
    }
}

impl ApiError {
    /// An error with `status` and `code`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404: no such thing in the caller's namespace.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500: the server failed.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", err.to_string())
    }

    /// The error as a response.
    pub fn response(&self) -> Response<Body> {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        json_response(self.status, &body)
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(err: anyhow::Error) -> Self {
        ApiError::internal(format!("{err:#}"))
    }
}

/// A handler's answer.
pub type Reply = Result<Response<Body>, ApiError>;

/// `value` as a JSON response with `status`.
pub fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    let mut bytes = serde_json::to_vec(value).expect("serializable");
    bytes.push(b'\n');
    let mut response = Response::new(full(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A whole body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never: Infallible| match never {}).boxed()
}

/// The largest JSON body (call arguments, an actor, a job): parsing takes
/// several times its size in memory, so large data travels as objects.
pub const JSON_BODY_MAX: u64 = 8 << 20;

/// Reads a request body of at most `limit` bytes; a larger one is 413
/// saying `why` that is the limit, one that stalls is 408.
pub async fn read_body(body: Incoming, limit: u64, why: &str) -> Result<Bytes, ApiError> {
    let mut body = BodyReader::new(body, limit, why)?;
    let mut out = Vec::new();
    while let Some(chunk) = body.chunk().await? {
        out.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(out))
}

/// A request body read chunk by chunk: at most `limit` bytes in all (else
/// 413 saying `why`), none stalling longer than [`BODY_IDLE_TIMEOUT`]
/// (else 408).
pub struct BodyReader<'q> {
    body: Incoming,
    limit: u64,
    why: &'q str,
    read: u64,
}

impl<'q> BodyReader<'q> {
    /// Refuses at once a body that announces more than `limit` bytes.
    pub fn new(body: Incoming, limit: u64, why: &'q str) -> Result<Self, ApiError> {
        let reader = BodyReader { body, limit, why, read: 0 };
        match reader.announced() {
            Some(announced) if announced > limit => Err(reader.too_large(announced)),
            _ => Ok(reader),
        }
    }

    /// The size the request announced (`content-length`), if it did.
    pub fn announced(&self) -> Option<u64> {
        self.body.size_hint().exact()
    }

    fn too_large(&self, announced: u64) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!(
                "the request body is larger than {} bytes ({}{})",
                self.limit,
                self.why,
                if announced > 0 { format!("; it announced {announced}") } else { String::new() }
            ),
        )
    }

    /// The next chunk of data, or `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ApiError> {
        loop {
            let frame = tokio::time::timeout(BODY_IDLE_TIMEOUT, self.body.frame()).await.map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!("the request body stalled for {}s", BODY_IDLE_TIMEOUT.as_secs()),
                )
            })?;
            let Some(frame) = frame else { return Ok(None) };
            let frame = frame.map_err(|e| ApiError::bad_request(format!("cannot read the request body: {e}")))?;
            if let Ok(data) = frame.into_data() {
                self.read += data.len() as u64;
                if self.read > self.limit {
                    return Err(self.too_large(0));
                }
                return Ok(Some(data));
            }
        }
    }

    /// The body for blocking code (writing a file), as an `io::Read`, and
    /// the future that feeds it, to run in the request's task; it answers
    /// how many bytes it fed. Memory holds a few chunks at a time. A body
    /// that fails, or a feed dropped midway (the client hung up), makes the
    /// reader fail rather than end: a cut-off body never passes for whole.
    pub fn into_blocking(mut self) -> (impl Future<Output = Result<u64, ApiError>> + Send + 'q, BlockingBody) {
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let feed = async move {
            while let Some(chunk) = self.chunk().await? {
                if tx.send(Some(chunk)).await.is_err() {
                    // The reader stopped; its own error says why.
                    return Ok(self.read);
                }
            }
            let _ = tx.send(None).await;
            Ok(self.read)
        };
        (feed, BlockingBody { rx, chunk: Bytes::new(), ended: false })
    }
}

/// A request body read by blocking code; see [`BodyReader::into_blocking`].
pub struct BlockingBody {
    /// Chunks, then `None` at the end; closed without it if cut off.
    rx: tokio::sync::mpsc::Receiver<Option<Bytes>>,
    chunk: Bytes,
    ended: bool,
}

impl std::io::Read for BlockingBody {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.chunk.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Some(chunk)) => self.chunk = chunk,
                Some(None) => self.ended = true,
                None => {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "the request body was cut off"));
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk.split_to(n));
        Ok(n)
    }
}

/// A listening socket: TCP for the API, Unix for the admin socket.
pub trait Listener: Send + 'static {
    /// A connection.
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection.
    fn next(&mut self) -> impl Future<Output = std::io::Result<Self::Io>> + Send;
}

impl Listener for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;

    async fn next(&mut self) -> std::io::Result<Self::Io> {
        let (stream, _) = self.accept().await?;
        // Answers are small and latency matters: no Nagle delay.
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

impl Listener for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;

    async fn next(&mut self) -> std::io::Result<Self::Io> {
        Ok(self.accept().await?.0)
    }
}

/// How [`serve`] serves each connection. A client's EOF ends its
/// connection and cancels its calls in flight (hyper's `half_close(false)`):
/// a client that hangs up frees what it asked for.
pub fn connection_builder() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
    builder
}

/// Serves `handler` on every connection of `listener` until `shutdown`
/// resolves; then stops accepting and waits (at most [`SHUTDOWN_GRACE`])
/// for the requests in flight.
pub async fn serve<L, H, F>(mut listener: L, handler: H, shutdown: impl Future<Output = ()>)
where
    L: Listener,
    H: Fn(Request<Incoming>) -> F + Send + Sync + 'static,
    F: Future<Output = Response<Body>> + Send + 'static,
{
    let handler = Arc::new(handler);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.next() => match accepted {
                Ok(stream) => stream,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let handler = handler.clone();
        let service = service_fn(move |request| {
            let reply = handler(request);
            async move { Ok::<_, Infallible>(reply.await) }
        });
        let connection = connection_builder().serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection ended");
            }
        });
    }
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still in flight after {}s; exiting anyway", SHUTDOWN_GRACE.as_secs());
    }
}
