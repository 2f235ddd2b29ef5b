use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::marker::PhantomData;
use std::sync::{Arc, Weak};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// MessagePack extension type of a ref nested in a value ('P').
pub(crate) const REF_EXT_TYPE: i8 = 0x50;

/// A typed reference to an immutable object, as Ray's `ObjectRef`.
///
/// Get its value with [`crate::get`]. Refs are values too: put them inside
/// other values or pass them to tasks, and they arrive as refs.
///
/// A ref keeps its object alive, as in Ray: once every ref to an object is
/// dropped (here and everywhere else, including refs nested in other
/// objects), the object is deleted.
pub struct ObjectRef<T> {
    id: [u8; 32],
    /// `id` as the WIT passes it, made once.
    words: (u64, u64, u64, u64),
    /// Shared by every `ObjectRef` of this id in this instance: cloning one
    /// is a count, and only the last drop looks the id up.
    holder: Arc<()>,
    _value: PhantomData<fn() -> T>,
}

/// Refs dropped but not yet reported to the host are sent in batches of
/// this many (and before every call that blocks).
const RELEASE_BATCH: usize = 64;

/// How many `ObjectRef`s this instance has per id, and the ids whose last
/// one was dropped since the host was last told.
#[derive(Default)]
struct Held {
    counts: HashMap<[u8; 32], Weak<()>, BuildHasherDefault<IdHasher>>,
    dropped: Vec<[u8; 32]>,
    /// Dropped with a call's result, which holds them once stored: told
    /// from the next call on.
    deferred: Vec<[u8; 32]>,
}

/// Hashes an id by its first 8 bytes: ids are blake3 output, already
/// uniform, and only ids the host made become keys.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

thread_local! {
    static HELD: RefCell<Held> = RefCell::default();
    /// Set while a call's result is dropped after it was encoded.
    static QUIET: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (which drops a call's result) without telling the host about
/// the refs it drops until the next call begins: the host stores the result,
/// which holds them, after this call returns.
pub(crate) fn without_releasing(f: impl FnOnce()) {
    QUIET.set(true);
    f();
    QUIET.set(false);
}

/// Tells the host about dropped refs, so their objects can be deleted.
/// Ids held again since they were dropped stay held.
pub(crate) fn flush_releases() {
    let ids: Vec<(u64, u64, u64, u64)> = HELD
        .try_with(|held| {
            let mut held = held.borrow_mut();
            let Held { counts, dropped, .. } = &mut *held;
            dropped.drain(..).filter(|id| !counts.contains_key(id)).map(|id| to_words(&id)).collect()
        })
        .unwrap_or_default();
    if !ids.is_empty() {
        crate::wit::prism::core::objects::release(&ids);
    }
}

/// A call into this instance begins: the refs the last call's result held
/// may be given back from now on.
pub(crate) fn begin_call() {
    let _ = HELD.try_with(|held| {
        let mut held = held.borrow_mut();
        let deferred = std::mem::take(&mut held.deferred);
        held.dropped.extend(deferred);
    });
}

/// An id as the WIT passes it: four little-endian words (for guests that
/// call the raw WIT, as the tests do).
pub fn to_words(id: &[u8; 32]) -> (u64, u64, u64, u64) {
    let word = |i: usize| u64::from_le_bytes(id[8 * i..8 * i + 8].try_into().expect("8 bytes"));
    (word(0), word(1), word(2), word(3))
}

/// The id the WIT's four words name.
pub(crate) fn from_words((a, b, c, d): (u64, u64, u64, u64)) -> [u8; 32] {
    let mut id = [0u8; 32];
    for (chunk, word) in id.chunks_exact_mut(8).zip([a, b, c, d]) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    id
}

impl<T> ObjectRef<T> {
    pub(crate) fn from_id(id: [u8; 32]) -> Self {
        // During thread teardown nothing is counted: the instance is ending,
        // and the host gives back everything it holds then.
        let holder = HELD
            .try_with(|held| {
                let mut held = held.borrow_mut();
                let entry = held.counts.entry(id).or_default();
                entry.upgrade().unwrap_or_else(|| {
                    let holder = Arc::new(());
                    *entry = Arc::downgrade(&holder);
                    holder
                })
            })
            .unwrap_or_default();
        ObjectRef { id, words: to_words(&id), holder, _value: PhantomData }
    }

    /// Builds a ref from the words the host returned.
    pub(crate) fn from_wit(id: (u64, u64, u64, u64)) -> Self {
        Self::from_id(from_words(id))
    }

    /// The 32 bytes that name the object.
    pub fn id(&self) -> &[u8; 32] {
        &self.id
    }

    pub(crate) fn to_wit(&self) -> (u64, u64, u64, u64) {
        self.words
    }
}

// Manual impls: deriving would require `T: Clone` etc., but a ref is just an id.
impl<T> Clone for ObjectRef<T> {
    fn clone(&self) -> Self {
        ObjectRef { id: self.id, words: self.words, holder: self.holder.clone(), _value: PhantomData }
    }
}

impl<T> Drop for ObjectRef<T> {
    fn drop(&mut self) {
        if Arc::strong_count(&self.holder) > 1 {
            return;
        }
        let full = HELD
            .try_with(|held| {
                let mut held = held.borrow_mut();
                if held.counts.remove(&self.id).is_some() {
                    if QUIET.get() { held.deferred.push(self.id) } else { held.dropped.push(self.id) }
                }
                held.dropped.len() >= RELEASE_BATCH
            })
            .unwrap_or(false);
        if full {
            flush_releases();
        }
    }
}

impl<T> PartialEq for ObjectRef<T> {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl<T> Eq for ObjectRef<T> {}

impl<T> std::hash::Hash for ObjectRef<T> {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.id.hash(state)
    }
}

impl<T> fmt::Debug for ObjectRef<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ObjectRef(")?;
        for b in &self.id {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// rmp-serde writes a newtype struct of this name as a MessagePack extension.
#[derive(Serialize)]
#[serde(rename = "_ExtStruct")]
struct ExtOut<'a>((i8, &'a serde_bytes::Bytes));

#[derive(Deserialize)]
#[serde(rename = "_ExtStruct")]
struct ExtIn((i8, serde_bytes::ByteBuf));

/// Writes a 32-byte id as the MessagePack extension `tag`.
pub(crate) fn serialize_id<S: Serializer>(s: S, tag: i8, id: &[u8; 32]) -> Result<S::Ok, S::Error> {
    ExtOut((tag, serde_bytes::Bytes::new(id))).serialize(s)
}

/// Reads a 32-byte id written by [`serialize_id`] with `tag`; `what` names
/// it in errors. Malformed input is an error, never a panic.
pub(crate) fn deserialize_id<'de, D: Deserializer<'de>>(d: D, tag: i8, what: &str) -> Result<[u8; 32], D::Error> {
    use serde::de::Error;
    let ExtIn((found, bytes)) = ExtIn::deserialize(d)?;
    if found != tag {
        return Err(D::Error::custom(format!("expected {what} (extension type {tag}), found extension type {found}")));
    }
    bytes.as_ref().try_into().map_err(|_| D::Error::custom(format!("{what} has 32 bytes, not {}", bytes.len())))
}

impl<T> Serialize for ObjectRef<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_id(s, REF_EXT_TYPE, &self.id)
    }
}

impl<'de, T> Deserialize<'de> for ObjectRef<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_id(d, REF_EXT_TYPE, "an object ref").map(ObjectRef::from_id)
    }
}
