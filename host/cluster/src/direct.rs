//! Requests straight from a caller to a node: tasks and actors' calls go on
//! one TCP connection per node, opened on the node's transfer port (a
//! request `t`), not through the NATS server, as Ray's owners submit tasks
//! to the workers they lease without going through its GCS. A round trip
//! costs two processes instead of three.
//!
//! Frames are length-delimited; each is an 8-byte sequence number (little
//! endian) and a MessagePack body. A caller numbers its requests from 1;
//! the node answers each as it ends, in any order, under its number.
//! Number 0 asks for no answer. A generator's items come first, each in a
//! frame whose number has its top bit ([`MORE`]) set. A caller that no
//! longer wants an answer (its call was cancelled, or its job ended) sends
//! the request's number with [`CANCEL`] set, and one byte: 1 if the calls
//! the task started go too.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{BufMut as _, Bytes, BytesMut};
use futures::{SinkExt, StreamExt as _};
use parking_lot::Mutex;
use tokio::io::AsyncWriteExt as _;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// The request on a transfer connection that makes it a direct one.
pub(crate) const OPEN: u8 = b't';

/// Set in the number of a frame that is not the last of its answer.
pub(crate) const MORE: u64 = 1 << 63;

/// Set in the number of a frame that cancels the request of that number.
pub(crate) const CANCEL: u64 = 1 << 62;

/// The largest frame: a task's inline arguments or value, with room.
const MAX_FRAME: usize = 64 << 20;

/// The framing of a direct connection.
pub(crate) fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder().max_frame_length(MAX_FRAME).little_endian().new_codec()
}

/// Frame `seq` with `body` (MessagePack, encoded).
pub(crate) fn frame(seq: u64, body: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(8 + body.len());
    frame.put_u64_le(seq);
    frame.put_slice(body);
    frame.freeze()
}

/// The number and body of a frame; `None` if it is too short.
pub(crate) fn unframe(frame: &[u8]) -> Option<(u64, &[u8])> {
    let (seq, body) = frame.split_first_chunk::<8>()?;
    Some((u64::from_le_bytes(*seq), body))
}

/// Writes the frames sent to `frames` to `write`, flushing once per batch,
/// until every sender is gone or the connection breaks.
pub(crate) async fn write_frames(write: OwnedWriteHalf, mut frames: mpsc::UnboundedReceiver<Bytes>) -> io::Result<()> {
    let mut sink = FramedWrite::new(write, codec());
    let mut batch = Vec::new();
    while frames.recv_many(&mut batch, 256).await > 0 {
        for frame in batch.drain(..) {
            sink.feed(frame).await?;
        }
        SinkExt::<Bytes>::flush(&mut sink).await?;
    }
    Ok(())
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Unanswered {
    /// The node could not be reached: it never saw the request.
    #[error("cannot connect: {0}")]
    NotServing(String),
    /// The connection broke after the request was sent: the node may have
    /// started it.
    #[error("its connection broke while running it")]
    Lost,
}

/// A caller's direct connections, by node address.
#[derive(Default)]
pub(crate) struct Sessions(Mutex<HashMap<String, Arc<Session>>>);

/// One connection to a node.
struct Session {
    frames: mpsc::UnboundedSender<Bytes>,
    /// Requests waiting for their answers; `None` once the connection broke.
    waiting: Mutex<Option<HashMap<u64, mpsc::UnboundedSender<Answered>>>>,
    next: AtomicU64,
}

impl Session {
    /// Ends the session: the requests waiting get no answer.
    fn close(&self) {
        self.waiting.lock().take();
    }
}

/// A frame of an answer: whether more follow, and its body.
pub(crate) type Answered = (bool, Bytes);

/// The frames of one request's answer, as they come. Dropped before the
/// last one, it cancels the request there.
pub(crate) struct Answers {
    frames: mpsc::UnboundedReceiver<Answered>,
    /// Where the request went, and its number, until the last frame came.
    asked: Option<(Arc<Session>, u64)>,
}

impl Answers {
    /// The next frame: an item (`true`), or the last one.
    pub async fn next(&mut self) -> Result<Answered, Unanswered> {
        let answered = self.frames.recv().await.ok_or(Unanswered::Lost)?;
        if !answered.0 {
            self.asked = None;
        }
        Ok(answered)
    }

    /// Tells the node the answer is no longer wanted (with `recursive`, nor
    /// are the calls the task started), unless it has come.
    pub fn cancel(&mut self, recursive: bool) {
        if let Some((session, seq)) = self.asked.take() {
            if let Some(waiting) = session.waiting.lock().as_mut() {
                waiting.remove(&seq);
            }
            let _ = session.frames.send(frame(seq | CANCEL, &[u8::from(recursive)]));
        }
    }
}

impl Drop for Answers {
    fn drop(&mut self) {
        self.cancel(false);
    }
}

impl Sessions {
    /// Sends the encoded `request` to the node at `addr`; its answer comes
    /// in the frames returned.
    pub async fn ask(&self, addr: &str, request: &[u8]) -> Result<Answers, Unanswered> {
        let session = self.session(addr).await?;
        let seq = session.next.fetch_add(1, Ordering::Relaxed) + 1;
        let (answer, answered) = mpsc::unbounded_channel();
        match session.waiting.lock().as_mut() {
            Some(waiting) => waiting.insert(seq, answer),
            None => return Err(Unanswered::NotServing("the connection just broke".into())),
        };
        if session.frames.send(frame(seq, request)).is_err() {
            return Err(Unanswered::Lost);
        }
        Ok(Answers { frames: answered, asked: Some((session, seq)) })
    }

    /// Sends the encoded `request` to the node at `addr`, asking for no
    /// answer.
    pub async fn tell(&self, addr: &str, request: &[u8]) -> Result<(), Unanswered> {
        let session = self.session(addr).await?;
        session.frames.send(frame(0, request)).map_err(|_| Unanswered::Lost)
    }

    /// The open connection to `addr`, opened if there is none.
    async fn session(&self, addr: &str) -> Result<Arc<Session>, Unanswered> {
        if let Some(session) = self.0.lock().get(addr).filter(|s| s.waiting.lock().is_some()) {
            return Ok(session.clone());
        }
        let mut stream = crate::transfer::connect(addr).await.map_err(|e| Unanswered::NotServing(e.to_string()))?;
        let mut open = [0; 33];
        open[0] = OPEN;
        stream.write_all(&open).await.map_err(|e| Unanswered::NotServing(e.to_string()))?;
        let (read, write) = stream.into_split();
        let (frames, queued) = mpsc::unbounded_channel();
        let session = Arc::new(Session { frames, waiting: Mutex::new(Some(HashMap::new())), next: AtomicU64::new(0) });
        // Neither task keeps the session: once no one holds it, its sender
        // goes, and with it both.
        let writing = Arc::downgrade(&session);
        tokio::spawn(async move {
            if let Err(e) = write_frames(write, queued).await {
                tracing::debug!(error = %e, "a direct connection broke");
            }
            if let Some(session) = writing.upgrade() {
                session.close();
            }
        });
        let reading = Arc::downgrade(&session);
        tokio::spawn(async move {
            let mut answers = FramedRead::new(read, codec());
            while let Some(Ok(answer)) = answers.next().await {
                let Some(session) = reading.upgrade() else { return };
                let Some((seq, _)) = unframe(&answer) else { break };
                let (more, seq) = (seq & MORE != 0, seq & !MORE);
                let waiter = match session.waiting.lock().as_mut() {
                    Some(waiting) if more => waiting.get(&seq).cloned(),
                    Some(waiting) => waiting.remove(&seq),
                    None => None,
                };
                if let Some(waiter) = waiter {
                    let _ = waiter.send((more, answer.freeze().slice(8..)));
                }
            }
            if let Some(session) = reading.upgrade() {
                session.close();
            }
        });
        // Two asking at once may both connect: the first one kept wins.
        let mut sessions = self.0.lock();
        let kept = sessions.entry(addr.to_string()).or_insert_with(|| session.clone());
        if kept.waiting.lock().is_none() {
            *kept = session;
        }
        Ok(kept.clone())
    }
}
