//! Finds the object refs nested in an encoded value: MessagePack extension
//! values of type 0x50 with 32 bytes (docs/encoding.md). An object holds
//! the refs nested in it alive, so they are found once, when it is stored.

use crate::ObjectId;

/// MessagePack extension type of a nested ref.
pub const REF_EXT: i8 = 0x50;

/// The refs nested in `bytes`, in order, duplicates kept. A malformed
/// encoding yields the refs found before the damage: guests may store any
/// bytes, and only well-formed refs can be followed anyway.
pub fn nested_refs(bytes: &[u8]) -> Vec<ObjectId> {
    let mut refs = Vec::new();
    let mut reader = Reader { bytes, at: 0, bad_ref: None };
    reader.scan(&mut refs);
    refs
}

/// The refs nested in `bytes` if it is exactly one well-formed MessagePack
/// value whose ref extensions all have 32 bytes; else what is wrong.
pub fn checked_refs(bytes: &[u8]) -> Result<Vec<ObjectId>, String> {
    if bytes.is_empty() {
        return Err("an empty value is not MessagePack".into());
    }
    let mut refs = Vec::new();
    let mut reader = Reader { bytes, at: 0, bad_ref: None };
    if !reader.scan(&mut refs) {
        return Err(format!("the value is not well-formed MessagePack (it breaks off at byte {})", reader.at));
    }
    if let Some(len) = reader.bad_ref {
        return Err(format!("a nested ref (extension type {REF_EXT:#x}) has 32 bytes, this one has {len}"));
    }
    if reader.at != bytes.len() {
        return Err(format!("{} bytes follow the end of the MessagePack value", bytes.len() - reader.at));
    }
    Ok(refs)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// The length of a ref extension that was not 32 bytes, if one was met.
    bad_ref: Option<u64>,
}

impl Reader<'_> {
    /// Reads one whole value, recording its refs; false if it is malformed.
    fn scan(&mut self, refs: &mut Vec<ObjectId>) -> bool {
        // Values still to read; a container adds its elements.
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            match self.value(refs) {
                Some(children) => pending = pending.saturating_add(children),
                None => return false,
            }
        }
        true
    }

    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let end = self.at.checked_add(n)?;
        let out = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(out)
    }

    fn uint(&mut self, n: usize) -> Option<u64> {
        Some(self.take(n)?.iter().fold(0u64, |acc, b| acc << 8 | u64::from(*b)))
    }

    /// Reads one value's header (and skips its payload), recording a ref;
    /// returns how many child values follow it.
    fn value(&mut self, refs: &mut Vec<ObjectId>) -> Option<u64> {
        let tag = *self.take(1)?.first()?;
        let skip = |r: &mut Self, n: u64| r.take(usize::try_from(n).ok()?).map(|_| 0);
        match tag {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => Some(0),
            0x80..=0x8f => Some(u64::from(tag & 0x0f) * 2),
            0x90..=0x9f => Some(u64::from(tag & 0x0f)),
            0xa0..=0xbf => skip(self, u64::from(tag & 0x1f)),
            0xc4 | 0xd9 => self.uint(1).and_then(|n| skip(self, n)),
            0xc5 | 0xda => self.uint(2).and_then(|n| skip(self, n)),
            0xc6 | 0xdb => self.uint(4).and_then(|n| skip(self, n)),
            0xcc | 0xd0 => skip(self, 1),
            0xcd | 0xd1 => skip(self, 2),
            0xca | 0xce | 0xd2 => skip(self, 4),
            0xcb | 0xcf | 0xd3 => skip(self, 8),
            0xdc => self.uint(2),
            0xdd => self.uint(4),
            0xde => self.uint(2).map(|n| n * 2),
            0xdf => self.uint(4).map(|n| n * 2),
            0xd4 => self.ext(1, refs),
            0xd5 => self.ext(2, refs),
            0xd6 => self.ext(4, refs),
            0xd7 => self.ext(8, refs),
            0xd8 => self.ext(16, refs),
            0xc7 => self.uint(1).and_then(|n| self.ext(n, refs)),
            0xc8 => self.uint(2).and_then(|n| self.ext(n, refs)),
            0xc9 => self.uint(4).and_then(|n| self.ext(n, refs)),
            0xc1 => None,
        }
    }

    fn ext(&mut self, len: u64, refs: &mut Vec<ObjectId>) -> Option<u64> {
        let kind = self.take(1)?[0] as i8;
        let data = self.take(usize::try_from(len).ok()?)?;
        if kind == REF_EXT {
            match ObjectId::try_from(data) {
                Ok(id) => refs.push(id),
                Err(_) => self.bad_ref = Some(len),
            }
        }
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// rmp-serde writes this newtype as an extension value, as the SDK does.
    #[derive(serde::Serialize)]
    #[serde(rename = "_ExtStruct")]
    struct Ext((i8, serde_bytes::ByteBuf));

    fn r(n: u8) -> Ext {
        Ext((REF_EXT, serde_bytes::ByteBuf::from(vec![n; 32])))
    }

    #[test]
    fn finds_refs_at_any_depth_and_skips_everything_else() {
        let value = (
            "text",
            vec![1u64, 1 << 40],
            r(1),
            std::collections::BTreeMap::from([("k", (r(2), 2.5f64, serde_bytes::ByteBuf::from(vec![0x50; 300])))]),
            Ext((7, serde_bytes::ByteBuf::from(vec![3; 32]))),
            vec![r(3), r(1)],
        );
        let bytes = rmp_serde::to_vec_named(&value).unwrap();
        let found: Vec<u8> = nested_refs(&bytes).iter().map(|id| id.as_bytes()[0]).collect();
        assert_eq!(found, [1, 2, 3, 1]);
    }

    #[test]
    fn checked_refs_refuses_what_no_reader_could_decode() {
        let good = rmp_serde::to_vec(&(r(1), "x")).unwrap();
        assert_eq!(checked_refs(&good).unwrap().len(), 1);
        assert!(checked_refs(&[]).unwrap_err().contains("empty"));
        assert!(checked_refs(&[0xc1]).unwrap_err().contains("not well-formed"));
        assert!(checked_refs(&good[..good.len() - 1]).unwrap_err().contains("not well-formed"));
        assert!(checked_refs(&[0x01, 0x02]).unwrap_err().contains("1 bytes follow"));
        let short = rmp_serde::to_vec(&Ext((REF_EXT, serde_bytes::ByteBuf::from(vec![1; 3])))).unwrap();
        assert!(checked_refs(&short).unwrap_err().contains("this one has 3"), "{:?}", checked_refs(&short));
    }

    #[test]
    fn malformed_input_ends_the_scan() {
        let bytes = rmp_serde::to_vec(&(r(1), r(2))).unwrap();
        assert_eq!(nested_refs(&bytes[..bytes.len() - 1]).len(), 1);
        assert!(nested_refs(&[0xdd, 0xff, 0xff, 0xff, 0xff]).is_empty());
        assert!(nested_refs(&[]).is_empty());
    }
}
