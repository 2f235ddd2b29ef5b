//! Guest stdout and stderr: whole lines, tagged with the task that wrote
//! them, delivered to wherever the job's output goes ([`Output`]).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use parking_lot::Mutex;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use prism_exec::config::MAX_OUTPUT_LINE;
use prism_exec::{Output, Stream};

/// Lines kept from a task's stderr, to explain a trap (a Rust panic message
/// is printed there just before the trap).
const STDERR_TAIL: usize = 2048;

/// The end of a task's stderr, shared by its writer and its trap report.
#[derive(Clone, Default)]
pub struct StderrTail(Arc<Mutex<Vec<u8>>>);

impl StderrTail {
    fn push(&self, bytes: &[u8]) {
        let mut tail = self.0.lock();
        tail.extend_from_slice(bytes);
        if tail.len() > STDERR_TAIL {
            let cut = tail.len() - STDERR_TAIL;
            tail.drain(..cut);
        }
    }

    /// The kept text, trimmed.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock()).trim().to_string()
    }

    /// Forgets what was kept (a warm instance starts a new call).
    pub fn clear(&self) {
        self.0.lock().clear();
    }
}

/// The prefix of an instance's output lines: `(function) ` while it runs a
/// task, nothing for a driver. A warm instance changes it from call to call.
#[derive(Clone, Default)]
pub struct Tag(Arc<Mutex<Option<Arc<str>>>>);

impl Tag {
    /// Lines written from now on are prefixed with `(name) `.
    pub fn set(&self, name: Option<&str>) {
        let mut tag = self.0.lock();
        // A warm instance mostly runs the same function again: no new prefix.
        let same = match (tag.as_deref(), name) {
            (Some(tag), Some(name)) => tag.len() == name.len() + 3 && &tag[1..=name.len()] == name,
            (None, None) => true,
            _ => false,
        };
        if !same {
            *tag = name.map(|n| format!("({n}) ").into());
        }
    }

    fn get(&self) -> Option<Arc<str>> {
        self.0.lock().clone()
    }
}

/// One guest stream: whole lines are prefixed with the tag (if any) and
/// passed to the output.
#[derive(Clone)]
pub struct GuestStream {
    output: Output,
    stream: Stream,
    tag: Tag,
    tail: Option<StderrTail>,
}

impl GuestStream {
    /// A stream whose lines go to `output`, prefixed with `tag`.
    pub fn new(output: Output, stream: Stream, tag: Tag, tail: Option<StderrTail>) -> Self {
        GuestStream { output, stream, tag, tail }
    }
}

impl IsTerminal for GuestStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter { stream: self.clone(), buf: Vec::new() })
    }
}

struct LineWriter {
    stream: GuestStream,
    buf: Vec<u8>,
}

impl LineWriter {
    /// Passes on the whole lines written so far; with `all`, the rest too,
    /// and a partial line as soon as it reaches [`MAX_OUTPUT_LINE`].
    fn emit_lines(&mut self, all: bool) {
        let long = self.buf.len() >= MAX_OUTPUT_LINE;
        let end = match self.buf.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None if (all || long) && !self.buf.is_empty() => self.buf.len(),
            None => return,
        };
        let chunk: Vec<u8> = self.buf.drain(..end).collect();
        let out = match self.stream.tag.get() {
            // A piece cut from a long line ends as a line of its own.
            None if long && chunk.last() != Some(&b'\n') => [&chunk[..], b"\n"].concat(),
            None => chunk,
            Some(tag) => {
                let mut out = Vec::with_capacity(chunk.len() + tag.len() * 2);
                for line in chunk.split_inclusive(|&b| b == b'\n') {
                    out.extend_from_slice(tag.as_bytes());
                    out.extend_from_slice(line);
                }
                if out.last() != Some(&b'\n') {
                    out.push(b'\n');
                }
                out
            }
        };
        self.stream.output.emit(self.stream.stream, &out);
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(mut self: Pin<&mut Self>, _: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        if let Some(tail) = &self.stream.tail {
            tail.push(data);
        }
        // At most a line's worth more than the buffer may hold: the writer
        // hands over the rest in its next call.
        let data = &data[..data.len().min(MAX_OUTPUT_LINE)];
        self.buf.extend_from_slice(data);
        self.emit_lines(false);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.emit_lines(true);
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.emit_lines(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression: output without a newline grew the buffer without limit.
    #[test]
    fn output_without_newlines_is_passed_on_in_bounded_pieces() {
        let seen = Arc::new(Mutex::new(Vec::<usize>::new()));
        let output = {
            let seen = seen.clone();
            Output::new(move |_, bytes| seen.lock().push(bytes.len()))
        };
        let stream = GuestStream::new(output, Stream::Stdout, Tag::default(), None);
        let mut writer = LineWriter { stream, buf: Vec::new() };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let data = vec![b'x'; 10 * MAX_OUTPUT_LINE + 5];
        let mut written = 0;
        while written < data.len() {
            let Poll::Ready(Ok(n)) = Pin::new(&mut writer).poll_write(&mut cx, &data[written..]) else { panic!() };
            written += n;
            assert!(writer.buf.len() < MAX_OUTPUT_LINE, "the buffer holds {} bytes", writer.buf.len());
        }
        drop(writer);
        let seen = seen.lock();
        assert_eq!(seen.len(), 11, "{seen:?}");
        assert!(seen.iter().all(|&n| n <= MAX_OUTPUT_LINE + 1), "{seen:?}");
        // Each of the ten cut pieces gains a newline; the rest goes out as is.
        assert_eq!(seen.iter().sum::<usize>(), data.len() + 10);
    }
}
