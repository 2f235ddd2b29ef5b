//! One stored object: small ones in memory, large ones as an immutable file.
//!
//! A large object's file holds its *body*: for a byte string (one MessagePack
//! `bin`, what `put-bytes` stores) the raw bytes without the `bin` header,
//! else the whole encoding. The header is kept in the index. So a guest that
//! maps the file gets the bytes themselves, page-aligned, with nothing to
//! decode; see `runtime::mapping`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::Failure;
use crate::{INLINE_OBJECT_MAX, ObjectId};

/// An object's encoded bytes, or where they are.
#[derive(Debug)]
pub enum Object {
    /// Up to [`INLINE_OBJECT_MAX`] bytes, kept in memory.
    Inline(Vec<u8>),
    /// A larger object, in a file of its own.
    Blob(Blob),
}

/// The bytes of a byte-string value.
pub enum ByteString<'a> {
    /// In memory.
    Inline(&'a [u8]),
    /// The whole file at this path, of this length.
    File(&'a Path, u64),
}

/// A large object: `header` followed by the file at `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// The `bin` header of a byte string; empty for any other value.
    pub header: Vec<u8>,
    /// Bytes in the file.
    pub body_len: u64,
    /// The file, named by the object's id.
    pub path: PathBuf,
    /// The blake3 of header and body: what a copy of it is checked against.
    pub hash: ObjectId,
}

impl Object {
    /// Encoded length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Object::Inline(bytes) => bytes.len() as u64,
            Object::Blob(blob) => blob.header.len() as u64 + blob.body_len,
        }
    }

    /// Whether it has no bytes (never true of a valid encoding).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The encoded bytes, copied (read from the file for a blob).
    pub fn to_vec(&self) -> Result<Vec<u8>, Failure> {
        match self {
            Object::Inline(bytes) => Ok(bytes.clone()),
            Object::Blob(blob) => blob
                .read()
                .map_err(|e| Failure::NotFound(format!("object file `{}` cannot be read: {e}", blob.path.display()))),
        }
    }

    /// Where the bytes of a byte string are, if the value is one.
    pub fn byte_string(&self) -> Option<ByteString<'_>> {
        match self {
            Object::Inline(bytes) => match bin_header_len(bytes) {
                0 => None,
                header => Some(ByteString::Inline(&bytes[header..])),
            },
            Object::Blob(blob) if blob.is_raw() => Some(ByteString::File(&blob.path, blob.body_len)),
            Object::Blob(_) => None,
        }
    }

    /// The blob, for objects kept in a file.
    pub fn blob(&self) -> Option<&Blob> {
        match self {
            Object::Inline(_) => None,
            Object::Blob(blob) => Some(blob),
        }
    }
}

impl Blob {
    /// Whether the body is the raw bytes of a byte string.
    pub fn is_raw(&self) -> bool {
        !self.header.is_empty()
    }

    fn read(&self) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.header.len() + self.body_len as usize);
        out.extend_from_slice(&self.header);
        io::Read::read_to_end(&mut fs::File::open(&self.path)?, &mut out)?;
        Ok(out)
    }
}

/// Whether an object of `len` encoded bytes is kept as a file.
pub fn is_large(len: usize) -> bool {
    len > INLINE_OBJECT_MAX
}

/// Writes a blob's body to a new temporary file in `dir`, without fsync:
/// the store renames it into place when the object is inserted, and the
/// disk writer syncs it before the index names it, off the caller's path.
/// `write` fills it; the file is removed if that fails.
pub fn write_temp<T>(dir: &Path, write: impl FnOnce(&mut fs::File) -> io::Result<T>) -> io::Result<(PathBuf, T)> {
    let path = dir.join(format!(".tmp-{:016x}", rand::random::<u64>()));
    let written = fs::OpenOptions::new().write(true).create_new(true).open(&path).and_then(|mut file| write(&mut file));
    match written {
        Ok(out) => Ok((path, out)),
        Err(e) => {
            let _ = fs::remove_file(&path);
            Err(e)
        }
    }
}

/// The MessagePack header of a `bin` of `len` bytes: the smallest form, as
/// every MessagePack encoder writes it, so `put_bin` and `put` agree.
pub fn bin_header(len: usize) -> Vec<u8> {
    match len {
        0..=0xff => vec![0xc4, len as u8],
        0x100..=0xffff => [&[0xc5][..], &(len as u16).to_be_bytes()].concat(),
        _ => [&[0xc6][..], &(len as u32).to_be_bytes()].concat(),
    }
}

/// The length of the `bin` header if `bytes` is exactly one MessagePack `bin`
/// in its smallest form, else 0: then the whole encoding is the body.
pub fn bin_header_len(bytes: &[u8]) -> usize {
    let (header, len) = match bytes {
        [0xc4, n, ..] => (2, *n as usize),
        [0xc5, a, b, ..] => (3, u16::from_be_bytes([*a, *b]) as usize),
        [0xc6, a, b, c, d, ..] => (5, u32::from_be_bytes([*a, *b, *c, *d]) as usize),
        _ => return 0,
    };
    if bytes.len() == header + len && bin_header(len).len() == header { header } else { 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bin_header_len_finds_only_whole_smallest_bins() {
        for len in [0, 255, 256, 65_535, 65_536, 200_000] {
            let bytes = [bin_header(len), vec![1; len]].concat();
            assert_eq!(bin_header_len(&bytes), bin_header(len).len(), "length {len}");
            assert_eq!(bin_header_len(&bytes[..bytes.len() - 1]), 0);
        }
        // A non-minimal header (a 5-byte header for 10 bytes) is not split:
        // another encoder's bytes hash differently anyway.
        assert_eq!(bin_header_len(&[[0xc6, 0, 0, 0, 10].as_slice(), &[0; 10]].concat()), 0);
        assert_eq!(bin_header_len(&[0x93, 1, 2, 3]), 0);
    }
}
