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
pub(crate) struct ExtOut<'a>(pub (i8, &'a serde_bytes::Bytes));

#[derive(Deserialize)]
#[serde(rename = "_ExtStruct")]
pub(crate) struct ExtIn(pub (i8, serde_bytes::ByteBuf));

impl<T> Serialize for ObjectRef<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ExtOut((REF_EXT_TYPE, serde_bytes::Bytes::new(&self.id))).serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for ObjectRef<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let ExtIn((tag, bytes)) = ExtIn::deserialize(d)?;
        if tag != REF_EXT_TYPE {
            return Err(D::Error::custom(format!(
                "expected an object ref (extension type {REF_EXT_TYPE}), found extension type {tag}"
            )));
        }
        let id: [u8; 32] = bytes
            .as_ref()
            .try_into()
            .map_err(|_| D::Error::custom(format!("an object ref has 32 bytes, not {}", bytes.len())))?;
        Ok(ObjectRef::from_id(id))
    }
}
