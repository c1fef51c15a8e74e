//! A tool's fingerprint: `sha256:<hex>` of the canonical JSON of the fields that say what
//! the tool does: `name`, `description`, `inputSchema`, `outputSchema` and `annotations`
//! (absent fields are omitted, so adding one changes the fingerprint).
//!
//! `title` (and `icons`, `_meta`, `execution`) are left out on purpose: the MCP
//! specification defines them as display and transport metadata for people and clients,
//! not as what the model reads to decide how to call the tool. Counting them would make a
//! cosmetic rename look like a behaviour change and train operators to re-pin blindly.
//! (`annotations.title` is inside `annotations` and does count, like every hint there.)
//!
//! Canonical JSON follows RFC 8785 (JCS) for structure: object keys sorted by their
//! UTF-16 code units, no insignificant whitespace, strings escaped minimally (as
//! serde_json does: `\"`, `\\`, control characters, nothing else). Numbers are written as
//! serde_json prints them, which for the integers and plain decimals of JSON Schema is
//! what JCS prints too.

use serde_json::{Map, Value};

/// The tool fields that make up the definition, in the order the spec lists them.
pub const FIELDS: [&str; 5] = ["name", "description", "inputSchema", "outputSchema", "annotations"];

/// The part of a `tools/list` entry that is fingerprinted (see the module docs), or `None`
/// when the entry has no string `name`.
pub fn definition(tool: &Value) -> Option<Value> {
    let obj = tool.as_object()?;
    obj.get("name")?.as_str()?;
    let kept: Map<String, Value> =
        FIELDS.iter().filter_map(|f| obj.get(*f).map(|v| ((*f).to_owned(), v.clone()))).collect();
    Some(Value::Object(kept))
}

/// `sha256:<64 hex digits>` of the canonical form of `definition`.
pub fn fingerprint(definition: &Value) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical(definition).as_bytes());
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256:");
    for b in digest.as_ref() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The canonical JSON text of `v` (see the module docs).
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            // JCS orders by UTF-16 code units, which differs from UTF-8 byte order only for
            // characters above U+FFFF against U+E000..U+FFFF.
            keys.sort_by(|a, b| a.encode_utf16().cmp(b.encode_utf16()));
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                if let Some(value) = map.get(*k) {
                    write_canonical(value, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::String(s) => write_string(s, out),
        // Null, booleans and numbers have one compact form in serde_json.
        other => out.push_str(&other.to_string()),
    }
}

fn write_string(s: &str, out: &mut String) {
    // Serialising a string cannot fail; serde_json escapes exactly what JCS escapes.
    out.push_str(&Value::String(s.to_owned()).to_string());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fp(text: &str) -> String {
        let tool: Value = serde_json::from_str(text).unwrap();
        fingerprint(&definition(&tool).unwrap())
    }

    const TOOL: &str = r#"{"name":"search","description":"Find tickets.","inputSchema":{"type":"object","properties":{"q":{"type":"string"},"limit":{"type":"integer","minimum":1}},"required":["q"]},"annotations":{"readOnlyHint":true}}"#;

    #[test]
    fn stable_across_key_order_and_whitespace() {
        let reordered = r#"
        {
          "annotations": { "readOnlyHint": true },
          "inputSchema": {
            "required": [ "q" ],
            "properties": { "limit": { "minimum": 1, "type": "integer" }, "q": { "type": "string" } },
            "type": "object"
          },
          "description": "Find tickets.",
          "name": "search"
        }"#;
        let a = fp(TOOL);
        assert_eq!(a, fp(reordered));
        assert!(a.starts_with("sha256:") && a.len() == 7 + 64, "{a}");
    }

    #[test]
    fn changes_with_description_schema_and_annotations() {
        let base = fp(TOOL);
        let mut v: Value = serde_json::from_str(TOOL).unwrap();
        v["description"] = json!("Find tickets. Also email them to an outside address.");
        assert_ne!(fp(&v.to_string()), base);
        let mut v: Value = serde_json::from_str(TOOL).unwrap();
        v["inputSchema"]["properties"]["to"] = json!({"type": "string"});
        assert_ne!(fp(&v.to_string()), base);
        let mut v: Value = serde_json::from_str(TOOL).unwrap();
        v["inputSchema"]["required"] = json!(["q", "limit"]);
        assert_ne!(fp(&v.to_string()), base, "array order and content count");
        let mut v: Value = serde_json::from_str(TOOL).unwrap();
        v["annotations"]["destructiveHint"] = json!(true);
        assert_ne!(fp(&v.to_string()), base);
        let mut v: Value = serde_json::from_str(TOOL).unwrap();
        v["outputSchema"] = json!({"type": "object"});
        assert_ne!(fp(&v.to_string()), base, "an added field counts");
    }

    #[test]
    fn title_icons_and_meta_do_not_count() {
        let mut v: Value = serde_json::from_str(TOOL).unwrap();
        v["title"] = json!("Search tickets");
        v["icons"] = json!([{"src": "https://x.example/i.png"}]);
        v["_meta"] = json!({"k": 1});
        assert_eq!(fp(&v.to_string()), fp(TOOL));
        assert_eq!(definition(&v).unwrap().as_object().unwrap().len(), 4);
    }

    #[test]
    fn canonical_form_is_compact_sorted_and_minimally_escaped() {
        let v = json!({"b": [1, 2.5, null, true], "a": "é\"\n/", "\u{10000}": 1, "\u{e000}": 2});
        assert_eq!(canonical(&v), "{\"a\":\"é\\\"\\n/\",\"b\":[1,2.5,null,true],\"\u{10000}\":1,\"\u{e000}\":2}");
    }

    #[test]
    fn entries_without_a_string_name_have_no_definition() {
        assert!(definition(&json!({"description": "x"})).is_none());
        assert!(definition(&json!({"name": 5})).is_none());
        assert!(definition(&json!("tool")).is_none());
    }
}
