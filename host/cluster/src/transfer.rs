//! Bulk bytes straight from node to node: objects and components, over a
//! TCP connection of their own, never through NATS (whose messages are for
//! control, 1 MiB at most).
//!
//! A request is one byte (`o` for an object, `c` for a component) and a
//! 32-byte id; `t` (id unused) turns the connection into a direct one for
//! tasks (see [`crate::direct`]). The answer is a status byte; then, for `0` (found), a raw
//! flag, the length of what follows (u64, little-endian), the blake3 of the
//! object's encoding, and the bytes: a byte string's contents, else the
//! whole encoding (a component's wasm). For `1` (not here), a u32 length
//! and a message. The receiver checks every copy against the blake3 as it
//! stores it, and a large byte string streams into its blob file.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream};

use prism_store::error::Failure;
use prism_store::{Holdings, Object, ObjectId, ObjectStore, bin_header, content_hash, nested_refs};

use crate::protocol::{Held, Value};

/// The components a node can hand to others: those it loaded or pulled.
#[derive(Default)]
pub struct Components(Mutex<HashMap<[u8; 32], Arc<Vec<u8>>>>);

impl Components {
    /// Offers `wasm`, whose blake3 is `hash`.
    pub fn offer(&self, hash: [u8; 32], wasm: Arc<Vec<u8>>) {
        self.0.lock().insert(hash, wasm);
    }

    /// The component `hash`, if offered.
    pub fn get(&self, hash: &[u8; 32]) -> Option<Arc<Vec<u8>>> {
        self.0.lock().get(hash).cloned()
    }
}

/// What a node does with a connection turned direct: a [`crate::Worker`]
/// answers the tasks on it.
pub type Direct = Arc<dyn Fn(TcpStream) + Send + Sync>;

/// Serves `store`'s objects and `components` to other nodes on `listener`,
/// and hands direct connections to `direct` (a node that takes no tasks,
/// a driver, has none), until the task is dropped.
pub async fn serve(
    listener: TcpListener,
    store: Arc<ObjectStore>,
    components: Arc<Components>,
    direct: Option<Direct>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let (store, components, direct) = (store.clone(), components.clone(), direct.clone());
        tokio::spawn(async move {
            if let Err(e) = answer(stream, &store, &components, direct).await {
                tracing::debug!(error = %e, "a transfer ended early");
            }
        });
    }
}

/// Answers the requests of one connection, one after another.
async fn answer(
    mut stream: TcpStream,
    store: &ObjectStore,
    components: &Components,
    direct: Option<Direct>,
) -> io::Result<()> {
    let mut request = [0u8; 33];
    while stream.read_exact(&mut request).await.is_ok() {
        let id: [u8; 32] = request[1..].try_into().expect("32 bytes");
        match request[0] {
            crate::direct::OPEN => {
                let Some(direct) = direct else { return not_here(&mut stream, "this node takes no tasks").await };
                direct(stream);
                return Ok(());
            }
            b'c' => match components.get(&id) {
                Some(wasm) => {
                    stream.write_all(&found(false, wasm.len() as u64, &id)).await?;
                    stream.write_all(&wasm).await?;
                }
                None => not_here(&mut stream, "no such component").await?,
            },
            _ => {
                let id = ObjectId::from(id);
                // Kept on another node, not fetched here: fetched (or
                // rebuilt) first, for a node that could not pull it there.
                if store.whereabouts(&id).is_some() {
                    let _ = store.get(&id, None).await;
                }
                match store.try_get(&id) {
                    Some(Ok(object)) => send_object(&mut stream, &object).await?,
                    Some(Err(failure)) => not_here(&mut stream, &format!("the object failed: {failure}")).await?,
                    None => not_here(&mut stream, "the object is not ready").await?,
                }
            }
        }
    }
    Ok(())
}

async fn send_object(stream: &mut TcpStream, object: &Object) -> io::Result<()> {
    match object {
        Object::Inline(bytes) => {
            stream.write_all(&found(false, bytes.len() as u64, &content_hash(&[bytes]))).await?;
            stream.write_all(bytes).await
        }
        Object::Blob(blob) => {
            let raw = blob.is_raw();
            let len = if raw { blob.body_len } else { blob.header.len() as u64 + blob.body_len };
            stream.write_all(&found(raw, len, blob.hash.as_bytes())).await?;
            if !raw {
                stream.write_all(&blob.header).await?;
            }
            let file = std::fs::File::open(&blob.path)?;
            send_file(stream, &file, blob.body_len).await
        }
    }
}

/// Sends the first `len` bytes of `file` down `stream` with `sendfile`:
/// from the page cache to the socket, not copied through this process.
async fn send_file(stream: &TcpStream, file: &std::fs::File, len: u64) -> io::Result<()> {
    let mut offset = 0;
    while offset < len {
        stream.writable().await?;
        let want = usize::try_from(len - offset).unwrap_or(usize::MAX);
        let sent = stream.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(stream, file, Some(&mut offset), want).map_err(io::Error::from)
        });
        match sent {
            Ok(0) => {
                let short = "the object's file is shorter than its index says";
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, short));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn found(raw: bool, len: u64, hash: &[u8; 32]) -> Vec<u8> {
    let mut head = vec![0, u8::from(raw)];
    head.extend_from_slice(&len.to_le_bytes());
    head.extend_from_slice(hash);
    head
}

async fn not_here(stream: &mut TcpStream, message: &str) -> io::Result<()> {
    stream.write_all(&[1]).await?;
    stream.write_all(&(message.len() as u32).to_le_bytes()).await?;
    stream.write_all(message.as_bytes()).await
}

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    /// The node could not be reached, or hung up.
    #[error("cannot pull from {0}: {1}")]
    Io(String, #[source] io::Error),
    /// It does not have it.
    #[error("{0} cannot give it: {1}")]
    NotThere(String, String),
    /// The copy was not stored (no room, or it did not match its hash).
    #[error("{0}")]
    Store(Failure),
}

/// What the sender said it is sending.
struct Header {
    raw: bool,
    len: u64,
    hash: [u8; 32],
}

async fn request(stream: &mut TcpStream, addr: &str, kind: u8, id: &[u8; 32]) -> Result<Header, PullError> {
    let io = |e| PullError::Io(addr.to_string(), e);
    let mut ask = vec![kind];
    ask.extend_from_slice(id);
    stream.write_all(&ask).await.map_err(io)?;
    let mut head = [0u8; 42];
    stream.read_exact(&mut head[..1]).await.map_err(io)?;
    if head[0] != 0 {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len).await.map_err(io)?;
        let mut message = vec![0; u32::from_le_bytes(len).min(4096) as usize];
        stream.read_exact(&mut message).await.map_err(io)?;
        return Err(PullError::NotThere(addr.to_string(), String::from_utf8_lossy(&message).into_owned()));
    }
    stream.read_exact(&mut head[1..]).await.map_err(io)?;
    Ok(Header {
        raw: head[1] == 1,
        len: u64::from_le_bytes(head[2..10].try_into().expect("8 bytes")),
        hash: head[10..].try_into().expect("32 bytes"),
    })
}

pub(crate) async fn connect(addr: &str) -> Result<TcpStream, PullError> {
    let io = |e| PullError::Io(addr.to_string(), e);
    // A node cut off does not refuse: it never answers.
    let connecting = tokio::time::timeout(crate::membership::DEAD_AFTER, TcpStream::connect(addr)).await;
    let stream = connecting.map_err(|_| io(io::ErrorKind::TimedOut.into()))?.map_err(io)?;
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Pulls component `hash` from the node at `addr`, checked against it.
pub async fn pull_component(addr: &str, hash: &[u8; 32]) -> Result<Vec<u8>, PullError> {
    let mut stream = connect(addr).await?;
    let header = request(&mut stream, addr, b'c', hash).await?;
    let mut wasm = vec![0; header.len as usize];
    stream.read_exact(&mut wasm).await.map_err(|e| PullError::Io(addr.to_string(), e))?;
    if blake3::hash(&wasm).as_bytes() != hash {
        return Err(PullError::Store(Failure::HostFailed(format!(
            "the component `{}` pulled from {addr} does not match its blake3 hash",
            ObjectId::from(*hash)
        ))));
    }
    Ok(wasm)
}

/// The bytes of a call's value as an answer carries it: in the answer, or
/// left on the node at `addr`, pulled from there and read (the caller
/// stores the value anew, so this copy is let go at once).
pub async fn value_bytes(addr: &str, store: &Arc<ObjectStore>, value: Value) -> Result<Vec<u8>, PullError> {
    let object = match value {
        Value::Inline(bytes) => return Ok(bytes),
        Value::Stored(object) => object,
    };
    pull(addr, store, object).await?;
    take(store, object.id, None).map_err(PullError::Store)
}

/// The bytes of `id`, pulled here, which is let go of (the caller stores
/// the value anew); what they nest stays, held in `nested` if given.
pub fn take(store: &ObjectStore, id: ObjectId, nested: Option<&mut Holdings>) -> Result<Vec<u8>, Failure> {
    let bytes = store.try_get(&id).and_then(Result::ok).map(|o| o.to_vec());
    let vanished = || Failure::NotFound(format!("the value `{id}` vanished as it was read"));
    let bytes = bytes.ok_or_else(vanished).and_then(|b| b);
    if let (Ok(bytes), Some(held)) = (&bytes, nested) {
        nested_refs(bytes).into_iter().for_each(|n| held.hold(n));
    }
    store.release(&id);
    bytes
}

/// Fetches `object` from the node at `addr` into `store` as the pending
/// object `id` (checked against its hash), completing it; what it nests is
/// pulled first (see [`pull`]). Returns the bytes pulled.
pub async fn fetch(addr: &str, store: &Arc<ObjectStore>, id: ObjectId, object: Held) -> Result<u64, PullError> {
    let mut stream = connect(addr).await?;
    let header = request(&mut stream, addr, b'o', object.id.as_bytes()).await?;
    let io = |e| PullError::Io(addr.to_string(), e);
    let mut bytes = if header.raw { bin_header(header.len as usize) } else { Vec::new() };
    let start = bytes.len();
    bytes.resize(start + header.len as usize, 0);
    stream.read_exact(&mut bytes[start..]).await.map_err(io)?;
    if content_hash(&[&bytes]) != *object.hash.as_bytes() {
        return Err(PullError::NotThere(
            addr.to_string(),
            format!("its copy of `{}` does not match its hash", object.id),
        ));
    }
    let mut pulled = header.len;
    let mut children = Vec::new();
    for child in nested_refs(&bytes) {
        if !store.retain(&child) {
            pulled += Box::pin(pull_on(&mut stream, addr, store, (child, child), None)).await?;
        }
        children.push(child);
    }
    store.complete(id, Ok(bytes), None);
    for child in &children {
        store.release(child);
    }
    Ok(pulled)
}

/// Makes sure `store` holds `object` (pulling it from `addr` if it lacks
/// it, checked against its hash) and the objects it nests, and takes a
/// reference to it. Returns the bytes pulled.
pub async fn pull(addr: &str, store: &Arc<ObjectStore>, object: Held) -> Result<u64, PullError> {
    pull_as(addr, store, object.id, object).await
}

/// [`pull`] of `object` (so named on the node at `addr`), kept here as `id`.
pub async fn pull_as(addr: &str, store: &Arc<ObjectStore>, id: ObjectId, object: Held) -> Result<u64, PullError> {
    // Known here, under its id or (the value of a task that ran here, say)
    // under its hash.
    if store.retain(&id) || store.copy(id, &object.hash).map_err(PullError::Store)? {
        return Ok(0);
    }
    let mut stream = connect(addr).await?;
    pull_on(&mut stream, addr, store, (object.id, id), Some(object.hash)).await
}

/// [`pull`] of `there` (named `id` in `store`) on an open connection,
/// recursively for what it nests.
async fn pull_on(
    stream: &mut TcpStream,
    addr: &str,
    store: &Arc<ObjectStore>,
    (there, id): (ObjectId, ObjectId),
    expect: Option<ObjectId>,
) -> Result<u64, PullError> {
    let header = request(stream, addr, b'o', there.as_bytes()).await?;
    let hash = ObjectId::from(header.hash);
    if expect.is_some_and(|expect| expect != hash) {
        return Err(PullError::NotThere(addr.to_string(), format!("it holds another object under `{there}`")));
    }
    let io = |e| PullError::Io(addr.to_string(), e);
    if header.raw {
        // A byte string nests nothing; a large one streams to its file.
        let store = store.clone();
        let reader = tokio_util::io::SyncIoBridge::new(&mut *stream);
        return tokio::task::block_in_place(|| store.adopt_bin_streamed(id, hash, header.len, reader))
            .map(|()| header.len)
            .map_err(PullError::Store);
    }
    let mut bytes = vec![0; header.len as usize];
    stream.read_exact(&mut bytes).await.map_err(io)?;
    let mut pulled = header.len;
    // What it nests first: storing it takes a reference to each.
    let mut children = Vec::new();
    for child in nested_refs(&bytes) {
        if !store.retain(&child) {
            pulled += Box::pin(pull_on(stream, addr, store, (child, child), None)).await?;
        }
        children.push(child);
    }
    let stored = store.adopt(id, hash, bytes).map_err(PullError::Store);
    for child in &children {
        store.release(child);
    }
    stored.map(|()| pulled)
}
