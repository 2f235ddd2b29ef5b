//! Where a job's guest output goes.

use std::sync::Arc;

/// Which guest stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The guest's stdout.
    Stdout,
    /// The guest's stderr.
    Stderr,
}

/// What receives a job's output: each finished chunk, with its stream.
type Sink = dyn Fn(Stream, &[u8]) + Send + Sync;

/// Where a job's output goes.
#[derive(Clone)]
pub struct Output(Arc<Sink>);

impl Output {
    /// Output that goes to this process's stdout and stderr.
    pub fn stdio() -> Self {
        Output::new(|stream, bytes| {
            use std::io::Write;
            // A closed stdout (e.g. `prism run … | head`) must not kill the node.
            let _ = match stream {
                Stream::Stdout => std::io::stdout().lock().write_all(bytes),
                Stream::Stderr => std::io::stderr().lock().write_all(bytes),
            };
        })
    }

    /// Output nobody reads (invocations over HTTP: results and errors are
    /// the answer, and a trap's message carries the end of stderr).
    pub fn discard() -> Self {
        Output::new(|_, _| {})
    }

    /// Output handed to `sink`.
    pub fn new(sink: impl Fn(Stream, &[u8]) + Send + Sync + 'static) -> Self {
        Output(Arc::new(sink))
    }

    /// Hands `bytes` (whole lines) to the sink.
    pub fn emit(&self, stream: Stream, bytes: &[u8]) {
        (self.0)(stream, bytes)
    }
}
