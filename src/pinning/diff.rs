//! What changed between a pinned and a last-seen tool definition, field by field:
//! `description` as before/after text, and inside `inputSchema`, `outputSchema` and
//! `annotations` every JSON path (RFC 6901 pointer) added, removed or changed. Arrays are
//! compared as whole values (a reordered `required` list shows as one change).

use serde_json::{json, Map, Value};

/// One difference.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    /// `description`, or a pointer such as `/inputSchema/properties/to`.
    pub path: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    /// The pinned value (absent for `added`).
    pub pinned: Option<Value>,
    /// The last-seen value (absent for `removed`).
    pub seen: Option<Value>,
}

impl FieldChange {
    /// As JSON for the control API.
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "path": self.path, "change": self.change });
        if let (Some(p), Some(obj)) = (&self.pinned, v.as_object_mut()) {
            obj.insert("pinned".into(), p.clone());
        }
        if let (Some(s), Some(obj)) = (&self.seen, v.as_object_mut()) {
            obj.insert("seen".into(), s.clone());
        }
        v
    }
}

/// The differences from `pinned` to `seen` (two outputs of [`super::definition`]).
pub fn diff(pinned: &Value, seen: &Value) -> Vec<FieldChange> {
    let mut out = Vec::new();
    walk("", pinned, seen, &mut out);
    // The description is one text: show it whole under its plain name.
    for c in &mut out {
        if c.path == "/description" {
            c.path = "description".into();
        }
    }
    out
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<FieldChange>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => walk_objects(path, x, y, out),
        _ if a == b => {}
        _ => out.push(FieldChange {
            path: if path.is_empty() { "/".into() } else { path.to_owned() },
            change: "changed",
            pinned: Some(a.clone()),
            seen: Some(b.clone()),
        }),
    }
}

fn walk_objects(path: &str, x: &Map<String, Value>, y: &Map<String, Value>, out: &mut Vec<FieldChange>) {
    let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        let p = format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"));
        match (x.get(k), y.get(k)) {
            (Some(a), Some(b)) => walk(&p, a, b, out),
            (Some(a), None) => {
                out.push(FieldChange { path: p, change: "removed", pinned: Some(a.clone()), seen: None })
            }
            (None, Some(b)) => out.push(FieldChange { path: p, change: "added", pinned: None, seen: Some(b.clone()) }),
            (None, None) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_and_schema_paths() {
        let a = json!({"name": "t", "description": "old", "inputSchema": {"properties": {"q": {"type": "string"}, "x/y": {}}, "required": ["q"]}});
        let b = json!({"name": "t", "description": "new", "inputSchema": {"properties": {"q": {"type": "integer"}, "to": {"type": "string"}}, "required": ["q", "to"]}, "annotations": {"destructiveHint": true}});
        let d = diff(&a, &b);
        let paths: Vec<(&str, &str)> = d.iter().map(|c| (c.path.as_str(), c.change)).collect();
        assert_eq!(
            paths,
            vec![
                ("/annotations", "added"),
                ("description", "changed"),
                ("/inputSchema/properties/q/type", "changed"),
                ("/inputSchema/properties/to", "added"),
                ("/inputSchema/properties/x~1y", "removed"),
                ("/inputSchema/required", "changed"),
            ]
        );
        assert_eq!(d[1].pinned, Some(json!("old")));
        assert_eq!(d[1].seen, Some(json!("new")));
        assert!(diff(&a, &a).is_empty());
    }
}
