//! The record the disk tier's redb index keeps for each object:
//!
//! ```text
//! hash (32) ‖ nested ref count (u32 le) ‖ nested refs (32 each) ‖ 0 ‖ bytes                      inline
//! hash (32) ‖ nested ref count (u32 le) ‖ nested refs (32 each) ‖ 1 ‖ body len (u64 le) ‖ header  blob
//! ```
//!
//! The encoding is canonical: a record that decodes encodes back to the same
//! bytes (the fuzz target `index_record` holds it to that).

use crate::ObjectId;

const INLINE: u8 = 0;
const BLOB: u8 = 1;

/// One object's index record.
#[derive(Debug, PartialEq, Eq)]
pub struct IndexRecord<'a> {
    /// The object's blake3 hash, checked when it is read back.
    pub hash: ObjectId,
    /// The refs nested in it, which it holds alive.
    pub nested: Vec<ObjectId>,
    /// Where its bytes are.
    pub body: IndexBody<'a>,
}

/// Where an object's bytes are.
#[derive(Debug, PartialEq, Eq)]
pub enum IndexBody<'a> {
    /// In the record itself.
    Inline(&'a [u8]),
    /// In a blob file named by the object's id.
    Blob {
        /// The bytes in the file.
        body_len: u64,
        /// The bytes before them, kept here.
        header: &'a [u8],
    },
}

impl<'a> IndexRecord<'a> {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32 + 4 + 32 * self.nested.len() + 1 + 8 + self.body.in_record().len());
        out.extend_from_slice(self.hash.as_bytes());
        out.extend_from_slice(&(self.nested.len() as u32).to_le_bytes());
        for id in &self.nested {
            out.extend_from_slice(id.as_bytes());
        }
        match self.body {
            IndexBody::Inline(bytes) => {
                out.push(INLINE);
                out.extend_from_slice(bytes);
            }
            IndexBody::Blob { body_len, header } => {
                out.push(BLOB);
                out.extend_from_slice(&body_len.to_le_bytes());
                out.extend_from_slice(header);
            }
        }
        out
    }

    /// The record in `bytes`, or `None` if they are not one.
    pub fn decode(bytes: &'a [u8]) -> Option<IndexRecord<'a>> {
        let (hash, rest) = bytes.split_first_chunk::<32>()?;
        let (count, mut rest) = rest.split_first_chunk::<4>()?;
        let count = u32::from_le_bytes(*count) as usize;
        // Checked before allocating: a damaged count must not reserve gigabytes.
        if rest.len() < count.checked_mul(32)? + 1 {
            return None;
        }
        let mut nested = Vec::with_capacity(count);
        for _ in 0..count {
            let (id, more) = rest.split_first_chunk::<32>()?;
            nested.push(ObjectId::from(*id));
            rest = more;
        }
        let body = match rest.split_first()? {
            (&INLINE, bytes) => IndexBody::Inline(bytes),
            (&BLOB, rest) => {
                let (len, header) = rest.split_first_chunk::<8>()?;
                IndexBody::Blob { body_len: u64::from_le_bytes(*len), header }
            }
            _ => return None,
        };
        Some(IndexRecord { hash: ObjectId::from(*hash), nested, body })
    }
}

impl<'a> IndexBody<'a> {
    /// The object's bytes kept in the record.
    fn in_record(&self) -> &'a [u8] {
        match *self {
            IndexBody::Inline(bytes) | IndexBody::Blob { header: bytes, .. } => bytes,
        }
    }

    /// The bytes the object takes on disk.
    pub fn stored_len(&self) -> u64 {
        match self {
            IndexBody::Inline(bytes) => bytes.len() as u64,
            IndexBody::Blob { body_len, header } => body_len + header.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_damage_is_refused() {
        let (a, b) = (ObjectId::from([1; 32]), ObjectId::from([2; 32]));
        let inline = IndexRecord { hash: a, nested: vec![b, b], body: IndexBody::Inline(b"value") };
        let blob =
            IndexRecord { hash: b, nested: vec![], body: IndexBody::Blob { body_len: 1 << 40, header: b"\x92" } };
        for record in [inline, blob] {
            let bytes = record.encode();
            assert_eq!(IndexRecord::decode(&bytes), Some(record));
            assert_eq!(IndexRecord::decode(&bytes[..36]), None);
        }
        let mut huge = vec![0; 32];
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(IndexRecord::decode(&huge), None);
    }
}
