//! `prism:core/bytes`: the imports that read or map guest memory in place.
//!
//! Generated bindings copy every list into a `Vec`, so these are registered
//! by hand: a `WasmList<u8>` parameter is a view of the guest's memory, and
//! a [`GuestAddress`] parameter a plain `u32` address together with where
//! the guest's memory is.
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
//!   maps above the component's data ((`Compiled::data_end`)).

use std::fs::File;
use std::os::fd::AsRawFd;

use wasmtime::component::__internal::{CanonicalAbiInfo, InstanceType, InterfaceType, LiftContext};
use wasmtime::component::{ComponentType, Lift, Linker, WasmList};
use wasmtime::{StoreContextMut, ValRaw};

use crate::bindings::types;
use crate::imports::{object_id, wit_ref};
use crate::state::InstanceState;
use prism_exec::Input;
use prism_exec::config::MAX_MAPPINGS;
use prism_store::MAX_OBJECT_SIZE;
use prism_store::ObjectId;
use prism_store::error::Failure;

/// Wasm's page size: guests align mapped buffers to it.
pub const WASM_PAGE: u64 = 64 << 10;

type Wit<T> = wasmtime::Result<(Result<T, types::Error>,)>;

/// A guest address, passed as a WIT `u32`, lifted together with where the
/// calling instance's memory is in the host's address space: what `map` and
/// `unmap` need to find the guest's buffer, which a plain `u32` cannot say.
///
/// It lifts like the `u32` it is (wasmtime's own scalar lifting), and reads
/// the memory's base and size from the lifting context, which is the only
/// place wasmtime exposes them to a host function of a component.
struct GuestAddress {
    address: u32,
    /// The memory's base address and length at the time of the call.
    memory: (usize, usize),
}

impl GuestAddress {
    fn lifted(cx: &LiftContext<'_>, address: u32) -> Self {
        let memory = cx.memory();
        GuestAddress { address, memory: (memory.as_ptr() as usize, memory.len()) }
    }

    /// The host address of `[address, address + len)`, if it lies inside
    /// the guest's memory.
    fn range(&self, len: u64) -> Result<usize, types::Error> {
        let (base, size) = self.memory;
        let end = u64::from(self.address) + len;
        if end > size as u64 {
            return Err(invalid(format!(
                "the buffer [{}, {end}) is not inside the guest's memory of {size} bytes",
                self.address
            )));
        }
        Ok(base + self.address as usize)
    }
}

// SAFETY: the representation is exactly `u32`'s (ABI, flat lowering and
// type check are delegated to it); only the lifted Rust value differs.
unsafe impl ComponentType for GuestAddress {
    type Lower = ValRaw;
    const ABI: CanonicalAbiInfo = <u32 as ComponentType>::ABI;
    const MAY_REQUIRE_REALLOC: bool = false;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <u32 as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: lifting reads the `u32` through wasmtime's own implementation.
unsafe impl Lift for GuestAddress {
    fn linear_lift_from_flat(cx: &mut LiftContext<'_>, ty: InterfaceType, src: &ValRaw) -> wasmtime::Result<Self> {
        let address = <u32 as Lift>::linear_lift_from_flat(cx, ty, src)?;
        Ok(Self::lifted(cx, address))
    }

    fn linear_lift_from_memory(cx: &mut LiftContext<'_>, ty: InterfaceType, bytes: &[u8]) -> wasmtime::Result<Self> {
        let address = <u32 as Lift>::linear_lift_from_memory(cx, ty, bytes)?;
        Ok(Self::lifted(cx, address))
    }
}

/// The ranges of one instance's memory that hold a mapped file.
#[derive(Default)]
pub struct Mappings(Vec<(usize, usize)>);

impl Mappings {
    /// Replaces the mapping starting at `start` with zero pages; false if
    /// none starts there.
    fn release(&mut self, start: usize) -> bool {
        match self.0.iter().position(|(s, _)| *s == start) {
            Some(i) => {
                let (start, len) = self.0.swap_remove(i);
                zero(start, len);
                true
            }
            None => false,
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

/// An argument or `get` result as the WIT hands it to a guest: small values
/// copied, large ones described, for the guest to map.
pub(super) fn payload(input: Input) -> types::Payload {
    match input {
        Input::Bytes(bytes) => types::Payload::Bytes(bytes),
        Input::Large { id, len, raw } => types::Payload::Large(types::LargeObject { object: wit_ref(id), len, raw }),
        Input::Elsewhere(_) => unreachable!("only an executor placing tasks elsewhere is given one"),
    }
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
    let mut bytes = linker.instance("prism:core/bytes@0.3.0")?;
    bytes.func_wrap("put-bytes", |mut store: StoreContextMut<'_, InstanceState>, (data,): (WasmList<u8>,)| {
        let objects = store.data().ctx()?.calls.store().clone();
        let data = data.as_le_slice(&store);
        if data.len() > MAX_OBJECT_SIZE {
            let message = format!("{} bytes is larger than the maximum object of {MAX_OBJECT_SIZE}", data.len());
            return Ok((Err(types::Error::LimitExceeded(message)),));
        }
        let stored = objects.put_bin(data).map_err(|f| types::Error::from(&f));
        Ok((stored.map(|id| {
            store.data_mut().holdings.adopt(id);
            wit_ref(id)
        }),))
    })?;
    bytes.func_wrap(
        "map-object",
        |store: StoreContextMut<'_, InstanceState>,
         (object, address, length): (types::ObjectRef, GuestAddress, u32)|
         -> Wit<()> { Ok((map(store, object_id(object), &address, length)?,)) },
    )?;
    bytes.func_wrap(
        "unmap",
        |mut store: StoreContextMut<'_, InstanceState>, (address,): (GuestAddress,)| -> Wit<()> {
            let unmapped = address.range(0).and_then(|start| match store.data_mut().mappings.release(start) {
                true => Ok(()),
                false => Err(invalid(format!("no mapping starts at address {}", address.address))),
            });
            Ok((unmapped,))
        },
    )?;
    bytes.func_wrap(
        "read",
        |store: StoreContextMut<'_, InstanceState>, (object,): (types::ObjectRef,)| -> Wit<Vec<u8>> {
            let objects = store.data().ctx()?.calls.store().clone();
            let id = object_id(object);
            let read = match objects.try_get(&id) {
                Some(Ok(object)) => object.to_vec(),
                Some(Err(failure)) => Err(failure.as_ref().clone()),
                None => Err(Failure::InvalidArgument(format!("object `{id}` is not ready: `get` it first"))),
            };
            Ok((read.map_err(|f| types::Error::from(&f)),))
        },
    )?;
    Ok(())
}

fn map(
    mut store: StoreContextMut<'_, InstanceState>,
    id: ObjectId,
    buffer: &GuestAddress,
    length: u32,
) -> wasmtime::Result<Result<(), types::Error>> {
    let ctx = store.data().ctx()?;
    let data_end = round_up(ctx.program.data_end, WASM_PAGE);
    let blob = match ctx.calls.store().try_get(&id) {
        Some(Ok(object)) => match object.blob() {
            Some(blob) => blob.clone(),
            None => return Ok(Err(invalid(format!("object `{id}` is small: its value comes with `get`")))),
        },
        Some(Err(failure)) => return Ok(Err(failure.as_ref().into())),
        None => return Ok(Err(invalid(format!("object `{id}` is not ready: `get` it first")))),
    };
    let len = round_up(blob.body_len, WASM_PAGE);
    if u64::from(length) < len {
        return Ok(Err(invalid(format!(
            "a buffer of {length} bytes cannot hold object `{id}`: its {} bytes take {len} in whole 64 KiB pages",
            blob.body_len
        ))));
    }
    let address = u64::from(buffer.address);
    if !address.is_multiple_of(WASM_PAGE) {
        return Ok(Err(invalid(format!("the buffer at address {address} is not aligned to {WASM_PAGE} bytes"))));
    }
    if address < data_end {
        return Ok(Err(invalid(format!(
            "the buffer at address {address} lies in the component's initial data (below {data_end}): \
             map into memory the guest allocated"
        ))));
    }
    let start = match buffer.range(len) {
        Ok(start) => start,
        Err(e) => return Ok(Err(e)),
    };
    if !start.is_multiple_of(host_page()) {
        return Ok(Err(invalid(format!("the buffer at address {address} is not aligned to a host page"))));
    }
    // Only whole pages of the file: a page wholly past its end would raise
    // SIGBUS when touched. The rest of the buffer stays guest memory.
    let file_len = round_up(blob.body_len, host_page() as u64) as usize;
    let mappings = &store.data().mappings.0;
    // Zeroing an older mapping later would wipe part of the new one, or
    // leave file pages of the older one behind.
    if let Some((s, _)) = mappings.iter().find(|(s, l)| *s < start + file_len && start < s + l) {
        return Ok(Err(invalid(format!(
            "the buffer at address {address} overlaps the mapping at address {}: unmap it first",
            (address as usize + s).wrapping_sub(start)
        ))));
    }
    if mappings.len() >= MAX_MAPPINGS {
        return Ok(Err(types::Error::LimitExceeded(format!(
            "an instance may hold at most {MAX_MAPPINGS} mapped objects at once (MAX_MAPPINGS); \
             drop (unmap) one before mapping another"
        ))));
    }
    let file = match File::open(&blob.path) {
        Ok(file) => file,
        Err(e) => {
            let message = format!("object `{id}` cannot be opened: {e}");
            return Ok(Err(types::Error::NotFound(message)));
        }
    };
    // SAFETY: `[start, start + file_len)` lies inside this instance's linear
    // memory (checked against its size just now, and file_len <= len),
    // above its data image, and no Rust reference points into it: the guest
    // is suspended in this call.
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
    store.data_mut().mappings.0.push((start, file_len));
    Ok(Ok(()))
}
