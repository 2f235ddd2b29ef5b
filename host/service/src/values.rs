//! Values over HTTP: JSON in requests and responses, MessagePack (prism's
//! value encoding, docs/encoding.md) inside. What JSON has no word for is a
//! one-key object: `{"$ref": "<64 hex>"}` for an object ref and
//! `{"$bytes": "<base64>"}` for a byte string.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value as Json};

use prism_exec::TaskArg;
use prism_store::{ObjectId, REF_EXT};

/// The arguments of a call, from a JSON array. An argument that is
/// `{"$ref": id}` passes that object (the task receives its value, as a
/// Ray task given a ref does); any other is a value.
pub fn args_from_json(args: &[Json]) -> Result<Vec<TaskArg>, String> {
    args.iter()
        .enumerate()
        .map(|(i, arg)| match as_ref(arg) {
            Some(id) => id.map(TaskArg::Object).map_err(|e| format!("argument {i}: {e}")),
            None => encode(arg).map(TaskArg::Value).map_err(|e| format!("argument {i}: {e}")),
        })
        .collect()
}

/// `{"$ref": "<hex>"}`'s ref, if `value` has that shape.
pub fn as_ref(value: &Json) -> Option<Result<ObjectId, String>> {
    let map = value.as_object().filter(|m| m.len() == 1)?;
    let hex = map.get("$ref")?;
    Some(hex.as_str().ok_or_else(|| "`$ref` must be a string".to_string()).and_then(str::parse))
}

/// A JSON value as MessagePack (`{"$bytes": ..}` as a byte string).
pub fn encode(value: &Json) -> Result<Vec<u8>, String> {
    let value = to_msgpack(value)?;
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &value).map_err(|e| e.to_string())?;
    Ok(out)
}

fn to_msgpack(value: &Json) -> Result<rmpv::Value, String> {
    use rmpv::Value as M;
    Ok(match value {
        Json::Null => M::Nil,
        Json::Bool(b) => M::Boolean(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => M::from(u),
            (_, Some(i), _) => M::from(i),
            (_, _, Some(f)) => M::F64(f),
            _ => return Err(format!("number `{n}` is out of range")),
        },
        Json::String(s) => M::from(s.as_str()),
        Json::Array(items) => M::Array(items.iter().map(to_msgpack).collect::<Result<_, _>>()?),
        Json::Object(map) => {
            if let Some(Json::String(b64)) = map.get("$bytes").filter(|_| map.len() == 1) {
                return BASE64.decode(b64).map(M::Binary).map_err(|e| format!("`$bytes` is not base64: {e}"));
            }
            if map.len() == 1 && map.contains_key("$ref") {
                return Err("an object ref can only be a whole argument, not part of a value".into());
            }
            M::Map(map.iter().map(|(k, v)| Ok((M::from(k.as_str()), to_msgpack(v)?))).collect::<Result<_, String>>()?)
        }
    })
}

/// A stored value as JSON. A map key that is not a string becomes the
/// text of its JSON (`1`, `true`, `null`); one that is bytes, a list, a map
/// or an extension has no JSON form.
pub fn decode(bytes: &[u8]) -> Result<Json, String> {
    let value = rmpv::decode::read_value(&mut &bytes[..]).map_err(|e| format!("not a MessagePack value: {e}"))?;
    to_json(value)
}

fn to_json(value: rmpv::Value) -> Result<Json, String> {
    use rmpv::Value as M;
    Ok(match value {
        M::Nil => Json::Null,
        M::Boolean(b) => Json::Bool(b),
        M::Integer(i) => i.as_u64().map(Json::from).or_else(|| i.as_i64().map(Json::from)).unwrap_or(Json::Null),
        M::F32(f) => serde_json::Number::from_f64(f64::from(f)).map_or(Json::Null, Json::Number),
        M::F64(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number),
        M::String(s) => match s.into_str() {
            Some(s) => Json::String(s),
            None => Json::Null,
        },
        M::Binary(b) => one("$bytes", Json::String(BASE64.encode(b))),
        M::Array(items) => Json::Array(items.into_iter().map(to_json).collect::<Result<_, _>>()?),
        M::Map(pairs) => {
            Json::Object(pairs.into_iter().map(|(k, v)| Ok((key(k)?, to_json(v)?))).collect::<Result<_, String>>()?)
        }
        M::Ext(REF_EXT, id) if id.len() == 32 => one("$ref", Json::String(crate::tenants::hex(&id))),
        M::Ext(kind, data) => one("$ext", Json::Array(vec![Json::from(kind), Json::String(BASE64.encode(data))])),
    })
}

/// A map key as a JSON object key. Only scalars: a container key's text
/// would be escaped again at every level of nesting, growing exponentially.
fn key(key: rmpv::Value) -> Result<String, String> {
    use rmpv::Value as M;
    match key {
        M::String(s) => Ok(s.into_str().unwrap_or_default()),
        M::Nil | M::Boolean(_) | M::Integer(_) | M::F32(_) | M::F64(_) => Ok(to_json(key)?.to_string()),
        other => Err(format!("a map key that is {} has no JSON form", kind(&other))),
    }
}

fn kind(value: &rmpv::Value) -> &'static str {
    match value {
        rmpv::Value::Binary(_) => "a byte string",
        rmpv::Value::Array(_) => "a list",
        rmpv::Value::Map(_) => "a map",
        _ => "an extension value",
    }
}

fn one(key: &str, value: Json) -> Json {
    let mut map = Map::new();
    map.insert(key.to_string(), value);
    Json::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trips_through_msgpack() {
        let value = serde_json::json!({"a": [1, -2, 2.5, null, true, "x"], "b": {"$bytes": "AAEC"}});
        assert_eq!(decode(&encode(&value).unwrap()).unwrap(), value);
    }

    #[test]
    fn only_scalar_map_keys_have_a_json_form() {
        use rmpv::Value as M;
        let encode = |v: &M| {
            let mut out = Vec::new();
            rmpv::encode::write_value(&mut out, v).unwrap();
            out
        };
        let scalars = M::Map(vec![(M::from(1), M::from("a")), (M::Nil, M::from(true))]);
        assert_eq!(decode(&encode(&scalars)).unwrap(), serde_json::json!({"1": "a", "null": true}));
        // Found by fuzzing: a key that is a map nested in a key's map...
        // was stringified at every level, a few bytes becoming gigabytes.
        let mut nested = M::Map(vec![(M::from("\\"), M::Nil)]);
        for _ in 0..40 {
            nested = M::Map(vec![(nested, M::Nil)]);
        }
        let err = decode(&encode(&nested)).unwrap_err();
        assert!(err.contains("a map key that is a map has no JSON form"), "{err}");
    }

    #[test]
    fn refs_are_whole_arguments_only() {
        let id = "ab".repeat(32);
        let args = args_from_json(&[serde_json::json!({"$ref": id}), serde_json::json!(3)]).unwrap();
        assert!(matches!(args[0], TaskArg::Object(_)));
        let nested = args_from_json(&[serde_json::json!([{"$ref": id}])]).unwrap_err();
        assert!(nested.contains("whole argument"), "{nested}");
        let bad = args_from_json(&[serde_json::json!({"$ref": "zz"})]).unwrap_err();
        assert!(bad.contains("not an object ref"), "{bad}");
    }
}
