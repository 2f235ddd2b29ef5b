//! Fuzz targets: each takes any bytes and panics only on a bug in prism.
//!
//! - [`values`]: JSON ↔ MessagePack, as the HTTP API converts values;
//! - [`nested_refs`]: the scan for refs nested in a stored value, against
//!   rmpv's decoder;
//! - [`index_record`]: the store's index records;
//! - [`http_request`]: raw bytes on a connection to the real router, with
//!   its authentication, quotas and body limits.
//!
//! cargo-fuzz runs them from `libfuzzer/` (nightly); `tests/replay.rs`
//! replays the committed corpus on stable, in CI. docs/fuzzing.md says how.

mod http;

pub use self::http::http_request;

use prism_service::values;
use prism_store::{IndexRecord, ObjectId, REF_EXT, checked_refs};
use serde_json::Value as Json;

/// JSON that converts to MessagePack converts back unchanged; MessagePack
/// that converts to JSON converts to MessagePack that gives that JSON again.
pub fn values(data: &[u8]) {
    if let Ok(json) = serde_json::from_slice::<Json>(data)
        && let Ok(bytes) = values::encode(&json)
    {
        assert_eq!(values::decode(&bytes).expect("prism's own encoding decodes"), json);
    }
    if let Ok(json) = values::decode(data)
        && let Ok(bytes) = values::encode(&json)
    {
        assert_eq!(values::decode(&bytes).expect("prism's own encoding decodes"), json);
    }
}

/// The scan agrees with a real MessagePack decoder: where rmpv reads exactly
/// one value from `data`, the scan finds the same refs, in `data` and in
/// rmpv's own encoding of the value; the lenient scan finds them too.
pub fn nested_refs(data: &[u8]) {
    let scanned = checked_refs(data);
    if let Ok(refs) = &scanned {
        assert_eq!(&prism_store::nested_refs(data), refs);
    }
    let mut rest = data;
    let Ok(value) = rmpv::decode::read_value(&mut rest) else { return };
    if !rest.is_empty() {
        assert!(scanned.is_err(), "bytes after the value were accepted");
        return;
    }
    let (mut refs, mut well_formed) = (Vec::new(), true);
    walk(&value, &mut refs, &mut well_formed);
    let agree = |scanned: Result<Vec<ObjectId>, String>, lenient: bool| match scanned {
        Ok(found) => {
            assert!(well_formed, "a ref of the wrong length was accepted");
            assert_eq!(found, refs);
        }
        Err(message) => assert!(!well_formed || lenient, "rmpv reads it, the scan refused it: {message}"),
    };
    // rmpv reads 0xc1, which MessagePack reserves ("never used"), as nil;
    // the scan refuses it.
    agree(scanned, data.contains(&0xc1));
    let mut canonical = Vec::new();
    rmpv::encode::write_value(&mut canonical, &value).expect("writing to a Vec succeeds");
    agree(checked_refs(&canonical), false);
}

/// Collects the refs in `value`; clears `well_formed` at a ref extension
/// that is not 32 bytes.
fn walk(value: &rmpv::Value, refs: &mut Vec<ObjectId>, well_formed: &mut bool) {
    use rmpv::Value as M;
    match value {
        M::Ext(REF_EXT, data) => match ObjectId::try_from(data.as_slice()) {
            Ok(id) => refs.push(id),
            Err(_) => *well_formed = false,
        },
        M::Array(items) => items.iter().for_each(|item| walk(item, refs, well_formed)),
        M::Map(pairs) => pairs.iter().for_each(|(k, v)| {
            walk(k, refs, well_formed);
            walk(v, refs, well_formed);
        }),
        _ => {}
    }
}

/// A record that decodes encodes back to the same bytes.
pub fn index_record(data: &[u8]) {
    if let Some(record) = IndexRecord::decode(data) {
        assert_eq!(record.encode(), data);
    }
}
