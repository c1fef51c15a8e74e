//! Tool arguments made safe to log: the shape stays, the values go.
//!
//! [`redact`] keeps every object key (recursively, through arrays too) and replaces every leaf
//! value (string, number, bool, null) by `"[redacted]"` or, in [`RedactMode::Hash`], by
//! `"sha256:<first 16 hex digits>"` of the leaf's JSON text, so equal values can be correlated
//! across log lines without being shown. Only top-level keys named in `clear_keys` keep their
//! value unchanged (an operator's explicit choice, e.g. `"region"`).
//!
//! Limits worth knowing: a hash of a low-entropy value (a PIN, `true`, a small number) is
//! easy to reverse by trying candidates, so Hash mode is for correlation, not secrecy; keys
//! themselves are kept, so a secret used as an object key survives. Below [`MAX_DEPTH`] nesting
//! levels a whole subtree becomes one `"[redacted]"` (bounds recursion on any `Value`).

use ring::digest;
use serde_json::{Map, Value};

/// Replacement for a leaf in [`RedactMode::Redact`] (and for subtrees deeper than [`MAX_DEPTH`]).
pub const REDACTED: &str = "[redacted]";

/// Nesting depth below which subtrees are replaced whole.
pub const MAX_DEPTH: usize = 64;

/// How leaves are replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RedactMode {
    /// Every leaf becomes `"[redacted]"`.
    #[default]
    Redact,
    /// Every leaf becomes `"sha256:"` + the first 16 hex digits of SHA-256 of its JSON text.
    Hash,
}

/// Returns a copy of `args` with every value replaced except top-level `clear_keys`.
pub fn redact(args: &Value, clear_keys: &[String], mode: RedactMode) -> Value {
    match args {
        Value::Object(map) => {
            let out: Map<String, Value> = map
                .iter()
                .map(|(k, v)| {
                    let v = if clear_keys.iter().any(|c| c == k) { v.clone() } else { redact_value(v, mode, 1) };
                    (k.clone(), v)
                })
                .collect();
            Value::Object(out)
        }
        other => redact_value(other, mode, 0),
    }
}

fn redact_value(v: &Value, mode: RedactMode, depth: usize) -> Value {
    if depth >= MAX_DEPTH {
        return Value::String(REDACTED.to_owned());
    }
    match v {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), redact_value(v, mode, depth + 1))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| redact_value(v, mode, depth + 1)).collect()),
        leaf => match mode {
            RedactMode::Redact => Value::String(REDACTED.to_owned()),
            RedactMode::Hash => Value::String(hash_leaf(leaf)),
        },
    }
}

/// `sha256:<16 hex>` of the leaf's canonical JSON text (a leaf has exactly one: no keys to order).
fn hash_leaf(leaf: &Value) -> String {
    let text = leaf.to_string();
    let d = digest::digest(&digest::SHA256, text.as_bytes());
    let mut out = String::with_capacity(7 + 16);
    out.push_str("sha256:");
    for b in &d.as_ref()[..8] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SECRET: &str = "sk-live-9Qx7ZpL2mW4vT8nB";

    fn args() -> Value {
        json!({
            "region": "eu-west-1",
            "token": SECRET,
            "nested": {"auth": {"password": SECRET, "retries": 3}, "list": [SECRET, 1.5, true, null, {"k": SECRET}]},
            "count": 42
        })
    }

    #[test]
    fn redact_keeps_shape_and_clear_keys() {
        let out = redact(&args(), &["region".to_owned()], RedactMode::Redact);
        assert_eq!(
            out,
            json!({
                "region": "eu-west-1",
                "token": REDACTED,
                "nested": {"auth": {"password": REDACTED, "retries": REDACTED},
                           "list": [REDACTED, REDACTED, REDACTED, REDACTED, {"k": REDACTED}]},
                "count": REDACTED
            })
        );
    }

    #[test]
    fn no_substring_of_the_secret_survives_redaction() {
        let text = redact(&args(), &["region".to_owned()], RedactMode::Redact).to_string();
        let chars: Vec<char> = SECRET.chars().collect();
        for len in 4..=chars.len() {
            for w in chars.windows(len) {
                let piece: String = w.iter().collect();
                assert!(!text.contains(&piece), "{piece:?} leaked into {text}");
            }
        }
    }

    #[test]
    fn clear_keys_are_top_level_only() {
        let out = redact(
            &json!({"a": {"region": "x"}, "region": {"deep": SECRET}}),
            &["region".to_owned()],
            RedactMode::Redact,
        );
        assert_eq!(out, json!({"a": {"region": REDACTED}, "region": {"deep": SECRET}}));
    }

    #[test]
    fn hash_mode_is_stable_and_hides_the_value() {
        let out = redact(&args(), &[], RedactMode::Hash);
        let text = out.to_string();
        assert!(!text.contains(SECRET));
        assert!(!text.contains("9Qx7"));
        // Same value → same hash, wherever it appears.
        assert_eq!(out["token"], out["nested"]["auth"]["password"]);
        assert_eq!(out["token"], out["nested"]["list"][0]);
        // Known answer: SHA-256 of the JSON text "\"abc\"" (with quotes).
        let d = digest::digest(&digest::SHA256, br#""abc""#);
        let want: String = d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(redact(&json!("abc"), &[], RedactMode::Hash), json!(format!("sha256:{want}")));
        // Different types with the same text do not collide: "3" vs 3.
        assert_ne!(redact(&json!("3"), &[], RedactMode::Hash), redact(&json!(3), &[], RedactMode::Hash));
    }

    #[test]
    fn non_object_arguments_and_deep_nesting() {
        assert_eq!(redact(&json!([SECRET, {"a": 1}]), &[], RedactMode::Redact), json!([REDACTED, {"a": REDACTED}]));
        assert_eq!(redact(&json!(SECRET), &[SECRET.to_owned()], RedactMode::Redact), json!(REDACTED));
        let mut deep = json!(SECRET);
        for _ in 0..(MAX_DEPTH * 2) {
            deep = json!([deep]);
        }
        let out = redact(&deep, &[], RedactMode::Hash);
        assert!(!out.to_string().contains(SECRET));
        assert!(out.to_string().contains(REDACTED));
    }
}
