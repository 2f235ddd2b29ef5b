//! The value encoding: MessagePack, structs as maps, so that Python and
//! JavaScript guests read what Rust guests write (docs/encoding.md).

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::Error;
use crate::task::CallError;
use crate::wit::prism::core::types::Payload;

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    // Serializing into a Vec only fails for types serde cannot represent at
    // all (e.g. maps with non-string keys are fine in MessagePack), so a
    // failure here is a bug in the caller's Serialize impl.
    rmp_serde::to_vec_named(value).expect("value cannot be encoded as MessagePack")
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    rmp_serde::from_slice(bytes).map_err(|e| Error::Decode(e.to_string()))
}

/// Decodes argument `arg` of task `function`, naming both on failure.
pub fn decode_arg<T: DeserializeOwned + 'static>(function: &str, arg: &str, payload: &Payload) -> Result<T, CallError> {
    crate::view::decode_payload(payload).map_err(|e| {
        CallError::Returned(format!(
            "argument `{arg}` of `{function}` does not decode as `{}`: {e}",
            std::any::type_name::<T>()
        ))
    })
}

/// Encodes the value returned by task `function`, then drops it without
/// releasing the refs in it yet: the host must store the result (which
/// holds them) first.
pub fn encode_result<T: Serialize>(function: &str, value: T) -> Result<Vec<u8>, CallError> {
    let encoded = rmp_serde::to_vec_named(&value);
    crate::object_ref::without_releasing(|| drop(value));
    encoded.map_err(|e| CallError::Returned(format!("the result of `{function}` cannot be encoded: {e}")))
}
