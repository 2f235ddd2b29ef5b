use std::fmt;
use std::marker::PhantomData;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// MessagePack extension type of a ref nested in a value ('P').
pub(crate) const REF_EXT_TYPE: i8 = 0x50;

/// A typed reference to an immutable object, as Ray's `ObjectRef`.
///
/// Get its value with [`crate::get`]. Refs are values too: put them inside
/// other values or pass them to tasks, and they arrive as refs.
pub struct ObjectRef<T> {
    id: [u8; 32],
    _value: PhantomData<fn() -> T>,
}

impl<T> ObjectRef<T> {
    pub(crate) fn from_id(id: [u8; 32]) -> Self {
        ObjectRef { id, _value: PhantomData }
    }

    /// Builds a ref from the bytes the host returned.
    pub(crate) fn from_wit(id: Vec<u8>) -> Self {
        // The host always returns 32 bytes; anything else is a host bug.
        Self::from_id(id.try_into().expect("the host returned a ref that is not 32 bytes"))
    }

    /// The 32 bytes that name the object.
    pub fn id(&self) -> &[u8; 32] {
        &self.id
    }

    pub(crate) fn to_wit(&self) -> Vec<u8> {
        self.id.to_vec()
    }
}

// Manual impls: deriving would require `T: Clone` etc., but a ref is just an id.
impl<T> Clone for ObjectRef<T> {
    fn clone(&self) -> Self {
        Self::from_id(self.id)
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
