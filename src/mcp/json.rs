//! JSON parsing that refuses duplicate object keys.
//!
//! RFC 8259 leaves duplicate keys to each parser: most keep the last value, some the first.
//! A gateway that checks `{"name":"allowed","name":"denied"}` must not read a different name
//! than the server behind it executes, so request bodies with a duplicate key anywhere are
//! refused outright. Nesting depth stays bounded by serde_json's recursion limit (128).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Message of the error for a duplicate key (checked by callers to name the fault).
pub const DUPLICATE_KEY: &str = "duplicate object key";

/// Parses `bytes` like `serde_json::from_slice::<Value>`, but fails on a duplicate key.
pub fn parse_strict(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    serde_json::from_slice::<Strict>(bytes).map(|s| s.0)
}

struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(DUPLICATE_KEY));
            }
            let Strict(v) = map.next_value()?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_values_as_serde_json() {
        let text = r#"{"a":[1,-2,3.5,1e300,18446744073709551615,true,null,"s\u00e9\n"],"b":{"c":{}},"d":[]}"#;
        assert_eq!(parse_strict(text.as_bytes()).unwrap(), serde_json::from_str::<Value>(text).unwrap());
        assert_eq!(parse_strict(b" 7 ").unwrap(), json!(7));
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        for text in [
            r#"{"name":"allowed","name":"denied"}"#,
            r#"{"params":{"name":"a","x":1,"name":"b"}}"#,
            r#"[{"ok":1},{"k":1,"k":1}]"#,
            r#"{"a":"x","\u0061":"y"}"#, // the same key, escaped differently
        ] {
            let err = parse_strict(text.as_bytes()).unwrap_err();
            assert!(err.to_string().starts_with(DUPLICATE_KEY), "{text}: {err}");
        }
        // Same key in sibling objects is fine.
        assert!(parse_strict(br#"[{"k":1},{"k":2}]"#).is_ok());
    }

    #[test]
    fn depth_stays_bounded() {
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = parse_strict(deep.as_bytes()).unwrap_err();
        assert!(err.to_string().starts_with("recursion limit"), "{err}");
    }
}
