//! Large objects without copies: the host maps the object's file into this
//! guest's memory, and [`View`] is that memory.

use std::alloc::{Layout, alloc, dealloc};
use std::any::{Any, TypeId};
use std::ops::{Deref, DerefMut};

use serde::de::DeserializeOwned;
use serde::de::value::BytesDeserializer;
use serde::{Deserialize, Serialize};

use crate::encoding::decode;
use crate::wit::prism::core::{bytes, types};
use crate::{Error, Result};

/// Wasm's page size; mapped buffers are aligned to it.
const WASM_PAGE: usize = 64 << 10;

/// The bytes of a byte-string object: for a large object, its stored pages
/// mapped into this guest's memory (no copy, shared with every other guest
/// reading it); for a small one, a copy.
///
/// Writing to a view is allowed and private to it: the pages are
/// copy-on-write, the object never changes. Dropping a mapped view gives
/// the memory back.
///
/// ```no_run
/// # fn main() -> prism::Result<()> {
/// # let r = prism::put_bytes(&[0; 64])?;
/// let data: prism::View = prism::get_bytes(&r)?;
/// let sum: u64 = data.iter().map(|b| *b as u64).sum();
/// let floats: &[f64] = data.cast::<f64>().unwrap();
/// # Ok(()) }
/// ```
pub struct View(Repr);

enum Repr {
    Copied(Vec<u8>),
    Mapped(Mapping),
}

impl View {
    /// Whether the bytes are mapped from the store (not copied).
    pub fn is_mapped(&self) -> bool {
        matches!(self.0, Repr::Mapped(_))
    }

    /// The bytes as a slice of `T` (`f64`, `u32`, ...): `None` if the length
    /// is not a multiple of `T`'s size or the bytes are not aligned for `T`
    /// (mapped views are always aligned; small copies may not be).
    pub fn cast<T: Plain>(&self) -> Option<&[T]> {
        let bytes: &[u8] = self;
        let size = std::mem::size_of::<T>();
        if size == 0 || !bytes.len().is_multiple_of(size) || bytes.as_ptr().align_offset(std::mem::align_of::<T>()) != 0
        {
            return None;
        }
        // SAFETY: length and alignment were checked, and `T: Plain` is valid
        // for every bit pattern.
        Some(unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), bytes.len() / size) })
    }

    /// The view of a payload the host sent for a byte string.
    pub(crate) fn from_payload(payload: &types::Payload) -> Result<View> {
        match payload {
            types::Payload::Bytes(bytes) => {
                decode::<serde_bytes::ByteBuf>(bytes).map(|b| View(Repr::Copied(b.into_vec())))
            }
            types::Payload::Large(large) if large.raw => Mapping::new(large).map(|m| View(Repr::Mapped(m))),
            types::Payload::Large(_) => {
                Err(Error::Decode("the object is not a byte string: read it with `prism::get` as its own type".into()))
            }
        }
    }
}

/// Types a [`View`] can be read as: any bit pattern is a valid value.
///
/// # Safety
/// Implement only for types with no padding and no invalid bit patterns.
pub unsafe trait Plain: Copy + 'static {}

macro_rules! plain {
    ($($t:ty),*) => { $(
        // SAFETY: a primitive number: every bit pattern is a value.
        unsafe impl Plain for $t {}
    )* };
}
plain!(u8, i8, u16, i16, u32, i32, u64, i64, u128, i128, f32, f64);

impl Deref for View {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Repr::Copied(bytes) => bytes,
            Repr::Mapped(mapping) => mapping,
        }
    }
}

impl DerefMut for View {
    fn deref_mut(&mut self) -> &mut [u8] {
        match &mut self.0 {
            Repr::Copied(bytes) => bytes,
            Repr::Mapped(mapping) => mapping.as_mut(),
        }
    }
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "View({} bytes{})", self.len(), if self.is_mapped() { ", mapped" } else { "" })
    }
}

/// A view arrives as a byte string, so a task may take one as an argument
/// (a ref to a large byte string then arrives mapped).
impl<'de> Deserialize<'de> for View {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        serde_bytes::ByteBuf::deserialize(d).map(|b| View(Repr::Copied(b.into_vec())))
    }
}

/// A view is passed by value as a byte string.
impl Serialize for View {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_bytes(self)
    }
}

/// A buffer of this guest's memory holding a mapped object body.
struct Mapping {
    ptr: *mut u8,
    len: usize,
    layout: Layout,
}

impl Mapping {
    fn new(large: &types::LargeObject) -> Result<Mapping> {
        let too_big = || Error::LimitExceeded(format!("an object of {} bytes does not fit in wasm32", large.len));
        let len = usize::try_from(large.len).map_err(|_| too_big())?;
        let layout = Layout::from_size_align(len.next_multiple_of(WASM_PAGE), WASM_PAGE).map_err(|_| too_big())?;
        // SAFETY: the layout's size is not zero (large objects are > 64 KiB).
        let ptr = unsafe { alloc(layout) };
        if ptr.is_null() {
            return Err(Error::LimitExceeded(format!("no memory left to map an object of {len} bytes")));
        }
        // wasm32: an address and a length are u32s.
        match bytes::map_object(large.object, ptr as u32, layout.size() as u32) {
            Ok(()) => Ok(Mapping { ptr, len, layout }),
            Err(err) => {
                // SAFETY: allocated above with `layout`.
                unsafe { dealloc(ptr, layout) };
                Err(err.into())
            }
        }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` holds `len` mapped, writable (copy-on-write) bytes
        // owned by this mapping.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Deref for Mapping {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: as in `as_mut`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Only fails for an address that is not a mapping, and this one is.
        let _ = bytes::unmap(self.ptr as u32);
        // SAFETY: the buffer was allocated with `layout`; after `unmap` it is
        // ordinary zeroed memory again.
        unsafe { dealloc(self.ptr, self.layout) };
    }
}

/// Decodes a payload as `T`, mapping large objects (and handing a mapped
/// [`View`] over as is when `T` is `View`).
pub(crate) fn decode_payload<T: DeserializeOwned + 'static>(payload: &types::Payload) -> Result<T> {
    if TypeId::of::<T>() == TypeId::of::<View>() {
        let view: Box<dyn Any> = Box::new(View::from_payload(payload)?);
        return Ok(*view.downcast::<T>().expect("T is View"));
    }
    match payload {
        types::Payload::Bytes(bytes) => decode(bytes),
        types::Payload::Large(large) => {
            let mapping = Mapping::new(large)?;
            if large.raw {
                T::deserialize(BytesDeserializer::<serde::de::value::Error>::new(&mapping))
                    .map_err(|e| Error::Decode(e.to_string()))
            } else {
                decode(&mapping)
            }
        }
    }
}
