//! `prism:core/bytes`: the imports that read or map guest memory in place.
//!
//! Generated bindings copy every list into a `Vec`, so these are registered
//! by hand: a `WasmList<u8>` parameter is a view of the guest's memory.
//!
//! `map` puts a large object's file over a guest buffer with
//! `mmap(MAP_FIXED | MAP_PRIVATE, PROT_READ | PROT_WRITE)`: the guest reads
//! the page cache itself, so N guests reading one object share its pages,
//! and a write (by the guest, or by the host lowering a value into that
//! memory) only makes a private copy of a page. Read-only mappings would
//! make such a host write fault outside guest code and kill the process.
//!
//! Two rules keep this sound with the pooling allocator:
//! - A memory slot is reset with `madvise(DONTNEED)`, which on a private file
//!   mapping brings back the *file's* bytes, for the next instance in that
//!   slot to read. So every mapping is replaced by anonymous zero pages
//!   before the Store is dropped ([`Mappings`]'s `Drop`, which runs before
//!   wasmtime releases the memory).
//! - The module's initial data is itself a copy-on-write image that wasmtime
//!   keeps in the slot for the next instance of the same module; mapping
//!   over it (and zeroing it later) would corrupt that instance. `map` only
//!   maps above the component's data ([`super::Program::data_end`]).

use std::fs::File;
use std::os::fd::AsRawFd;

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, WasmList};

use super::bindings::types;
use super::state::InstanceState;
use crate::config::MAX_OBJECT_SIZE;
use crate::error::Failure;
use crate::store::{Object, ObjectId};

/// Wasm's page size: guests align mapped buffers to it.
pub const WASM_PAGE: u64 = 64 << 10;

type Wit<T> = wasmtime::Result<(Result<T, types::Error>,)>;

/// The ranges of one instance's memory that hold a mapped file.
#[derive(Default)]
pub struct Mappings(Vec<(usize, usize)>);

impl Mappings {
    /// Replaces the mapping starting at `start` (if any) with zero pages.
    fn release(&mut self, start: usize) {
        if let Some(i) = self.0.iter().position(|(s, _)| *s == start) {
            let (start, len) = self.0.swap_remove(i);
            zero(start, len);
        }
    }
}

impl Drop for Mappings {
    fn drop(&mut self) {
        for (start, len) in self.0.drain(..) {
            zero(start, len);
        }
    }
}

/// Replaces `[start, start + len)` with fresh anonymous zero pages, as the
/// pooling allocator expects its memory to be.
fn zero(start: usize, len: usize) {
    // SAFETY: the range is a mapping `map` made inside an instance's linear
    // memory, which no Rust reference points into while the guest is not
    // running; mapping anonymous memory over it only changes its contents.
    let at = unsafe {
        libc::mmap(
            start as *mut libc::c_void,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    // Failing here would leave an object's bytes for the slot's next user.
    assert_eq!(at as usize, start, "cannot unmap an object from guest memory: {}", std::io::Error::last_os_error());
}

/// Where the initial data of `wasm`'s core modules ends: the highest end of
/// an active data segment, which bounds the copy-on-write image wasmtime
/// keeps in a memory slot. A segment at a computed offset makes the whole
/// memory off limits (`u64::MAX`): mapping is then refused, never unsafe.
pub(super) fn data_end(wasm: &[u8]) -> u64 {
    use wasmparser::{DataKind, Operator, Parser, Payload};
    let mut end = 0;
    for payload in Parser::new(0).parse_all(wasm) {
        let Ok(Payload::DataSection(reader)) = payload else { continue };
        for data in reader {
            let Ok(data) = data else { return u64::MAX };
            let DataKind::Active { offset_expr, .. } = data.kind else { continue };
            match offset_expr.get_operators_reader().read() {
                Ok(Operator::I32Const { value }) => end = end.max(value as u32 as u64 + data.data.len() as u64),
                Ok(Operator::I64Const { value }) => end = end.max(value as u64 + data.data.len() as u64),
                _ => return u64::MAX,
            }
        }
    }
    end
}

/// How `object` (named `id` by the guest) is handed to a guest: small ones
/// copied, large ones described, for the guest to map.
pub(crate) fn payload(id: ObjectId, object: &Object) -> Result<types::Payload, Failure> {
    Ok(match object.blob() {
        None => types::Payload::Bytes(object.to_vec()?),
        Some(blob) => types::Payload::Large(types::LargeObject {
            object: id.as_bytes().to_vec(),
            len: blob.body_len,
            raw: blob.is_raw(),
        }),
    })
}

fn host_page() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

fn round_up(n: u64, to: u64) -> u64 {
    n.div_ceil(to) * to
}

fn invalid(message: String) -> types::Error {
    types::Error::InvalidArgument(message)
}

/// Registers `prism:core/bytes`.
pub(super) fn add_to_linker(linker: &mut Linker<InstanceState>) -> wasmtime::Result<()> {
    let mut bytes = linker.instance("prism:core/bytes@0.1.0")?;
    bytes.func_wrap("put-bytes", |mut store: StoreContextMut<'_, InstanceState>, (data,): (WasmList<u8>,)| {
        let node = store.data().ctx()?.node.clone();
        let data = data.as_le_slice(&store);
        if data.len() > MAX_OBJECT_SIZE {
            let message = format!("{} bytes is larger than the maximum object of {MAX_OBJECT_SIZE}", data.len());
            return Ok((Err(types::Error::LimitExceeded(message)),));
        }
        let stored = node.store.put_bin(data).map_err(|f| types::Error::from(&f));
        Ok((stored.map(|id| {
            store.data_mut().holdings.adopt(id);
            id.as_bytes().to_vec()
        }),))
    })?;
    bytes.func_wrap(
        "map-object",
        |store: StoreContextMut<'_, InstanceState>, (object, window): (Vec<u8>, WasmList<u8>)| {
            Ok((map(store, &object, &window)?,))
        },
    )?;
    bytes.func_wrap("unmap", |mut store: StoreContextMut<'_, InstanceState>, (buffer,): (WasmList<u8>,)| {
        let start = buffer.as_le_slice(&store).as_ptr() as usize;
        store.data_mut().mappings.release(start);
        Ok(())
    })?;
    bytes.func_wrap("read", |store: StoreContextMut<'_, InstanceState>, (object,): (Vec<u8>,)| -> Wit<Vec<u8>> {
        let node = store.data().ctx()?.node.clone();
        let read = ObjectId::try_from(object.as_slice()).map_err(Failure::InvalidArgument).and_then(|id| {
            match node.store.try_get(&id) {
                Some(Ok(object)) => object.to_vec(),
                Some(Err(failure)) => Err(failure.as_ref().clone()),
                None => Err(Failure::InvalidArgument(format!("object `{id}` is not ready: `get` it first"))),
            }
        });
        Ok((read.map_err(|f| types::Error::from(&f)),))
    })?;
    Ok(())
}

fn map(
    mut store: StoreContextMut<'_, InstanceState>,
    object: &[u8],
    window: &WasmList<u8>,
) -> wasmtime::Result<Result<(), types::Error>> {
    let ctx = store.data().ctx()?;
    let data_end = round_up(ctx.job.program.data_end, WASM_PAGE);
    let id = match ObjectId::try_from(object) {
        Ok(id) => id,
        Err(e) => return Ok(Err(invalid(e))),
    };
    let blob = match ctx.node.store.try_get(&id) {
        Some(Ok(object)) => match object.blob() {
            Some(blob) => blob.clone(),
            None => return Ok(Err(invalid(format!("object `{id}` is small: its value comes with `get`")))),
        },
        Some(Err(failure)) => return Ok(Err(failure.as_ref().into())),
        None => return Ok(Err(invalid(format!("object `{id}` is not ready: `get` it first")))),
    };
    let (base, window_len) = {
        let window = window.as_le_slice(&store);
        (window.as_ptr() as usize, window.len() as u64)
    };
    let len = round_up(blob.body_len, WASM_PAGE);
    let Some(offset) = window_len.checked_sub(len) else {
        return Ok(Err(invalid(format!("a window of {window_len} bytes cannot hold {} bytes", blob.body_len))));
    };
    // `base` is at or above where guest memory starts (a list cannot start
    // lower), so the buffer's address is at least `offset`; both are page
    // aligned, so it is at least `offset` rounded up to a page.
    let lowest = round_up(offset, host_page() as u64);
    if lowest < data_end {
        return Ok(Err(invalid(format!(
            "the buffer starts at or after address {lowest}, maybe below {data_end}: mapped buffers must lie \
             above the component's data (pass a window starting at address 1)"
        ))));
    }
    let start = base + offset as usize;
    if !start.is_multiple_of(host_page()) {
        return Ok(Err(invalid(format!("the buffer at offset {offset} is not aligned to {WASM_PAGE} bytes"))));
    }
    let file = match File::open(&blob.path) {
        Ok(file) => file,
        Err(e) => {
            let message = format!("object `{id}` cannot be opened: {e}");
            return Ok(Err(types::Error::NotFound(message)));
        }
    };
    // Only whole pages of the file: a page wholly past its end would raise
    // SIGBUS when touched. The rest of the buffer stays guest memory.
    let file_len = round_up(blob.body_len, host_page() as u64) as usize;
    // SAFETY: `[start, start + file_len)` lies inside this instance's linear
    // memory (the window was bounds-checked when lifted, and file_len <=
    // len), above its data image, and no Rust reference points into it: the
    // guest is suspended in this call and the window's slice is gone.
    let at = unsafe {
        libc::mmap(
            start as *mut libc::c_void,
            file_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_FIXED,
            file.as_raw_fd(),
            0,
        )
    };
    if at == libc::MAP_FAILED {
        let message = format!("object `{id}` cannot be mapped: {}", std::io::Error::last_os_error());
        return Ok(Err(types::Error::LimitExceeded(message)));
    }
    // A mapping made over an older one replaces it.
    let mappings = &mut store.data_mut().mappings.0;
    mappings.retain(|(s, _)| *s != start);
    mappings.push((start, file_len));
    Ok(Ok(()))
}
