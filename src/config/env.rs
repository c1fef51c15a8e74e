//! `${VAR}` in config string values: the value of the environment variable `VAR`, so that
//! secrets (`[admin] token_sha256 = "${MCPT_ADMIN_TOKEN_SHA256}"`) can stay out of the file.
//! `$${` is a literal `${`; any other `$` is itself.
//!
//! It works on parsed values, never on the raw text: the file is parsed once into a tree of
//! string values with their spans, each string value holding `${` is expanded, and its
//! literal in the text is replaced by a TOML string literal encoding the result (every
//! quote, backslash and control character escaped). A variable's value can therefore never
//! become TOML syntax, and only string values are touched: not keys, not table names, not
//! comments. The replacement keeps the line count (a multi-line literal becomes a
//! multi-line basic string with line-ending backslashes), so later errors name the same
//! lines as the file.

use std::fmt::{self, Write as _};
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use toml::Spanned;

use super::{ConfigError, Source};

/// The parts of a parsed TOML document that substitution needs: string values, and the
/// tables and arrays that hold them.
enum Node {
    Str(String),
    Table(Vec<(String, Spanned<Node>)>),
    Array(Vec<Spanned<Node>>),
    Other,
}

/// What toml calls the one key of the table it presents a date-time as.
const DATETIME_KEY: &str = "$__toml_private_datetime";

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a TOML value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Node, E> {
        Ok(Node::Other)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Node, E> {
        Ok(Node::Other)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Node, E> {
        Ok(Node::Other)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Node, E> {
        Ok(Node::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == DATETIME_KEY {
                map.next_value::<IgnoredAny>()?;
                return Ok(Node::Other);
            }
            entries.push((key, map.next_value()?));
        }
        Ok(Node::Table(entries))
    }
}

/// One string value to rewrite: where its literal is, its key, its expanded value.
struct Rewrite {
    span: Range<usize>,
    value: String,
}

/// Why a value could not be expanded.
enum Failure {
    Unset(String),
    NotUnicode(String),
    Malformed,
}

impl Failure {
    fn reason(&self) -> String {
        let escape = "write `$${` for a literal `${`";
        match self {
            Failure::Unset(name) => {
                format!("environment variable `{name}` is not set (used as `${{{name}}}`; {escape})")
            }
            Failure::NotUnicode(name) => format!("environment variable `{name}` is not valid UTF-8"),
            Failure::Malformed => {
                format!("`${{` must start a variable name and `}}`, e.g. `${{MCPT_TOKEN}}` (letters, digits, `_`); {escape}")
            }
        }
    }
}

/// Expands `${NAME}` and `$${` in one string, looking names up with `lookup`.
fn expand(text: &str, lookup: &dyn Fn(&str) -> Result<String, std::env::VarError>) -> Result<String, Failure> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        if let Some(after) = rest.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${") {
            let end = after.find('}').ok_or(Failure::Malformed)?;
            let name = &after[..end];
            let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
            if !valid {
                return Err(Failure::Malformed);
            }
            match lookup(name) {
                Ok(value) => out.push_str(&value),
                Err(std::env::VarError::NotPresent) => return Err(Failure::Unset(name.to_owned())),
                Err(std::env::VarError::NotUnicode(_)) => return Err(Failure::NotUnicode(name.to_owned())),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// A TOML basic string holding `value`, spread over `newlines` + 1 lines (line-ending
/// backslashes add no characters) so that the text around it keeps its line numbers.
fn literal(value: &str, newlines: usize) -> String {
    let mut out = String::from(if newlines == 0 { "\"" } else { "\"\"\"" });
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    if newlines == 0 {
        out.push('"');
    } else {
        out.push('\\');
        out.extend(std::iter::repeat_n('\n', newlines));
        out.push_str("\"\"\"");
    }
    out
}

impl Source {
    /// Expands `${VAR}` in every string value (see the module doc), with `lookup` giving
    /// variables' values. An unset variable is an error naming it, the key and the line.
    pub(crate) fn expand_env(
        mut self,
        lookup: &dyn Fn(&str) -> Result<String, std::env::VarError>,
    ) -> Result<Self, ConfigError> {
        if !self.text.contains("${") {
            return Ok(self);
        }
        let root: Node = self.parse()?;
        let mut rewrites = Vec::new();
        self.collect(&root, "", lookup, &mut rewrites)?;
        rewrites.sort_by_key(|r| r.span.start);
        let mut text = String::with_capacity(self.text.len());
        let mut copied = 0;
        for r in &rewrites {
            let original = self.text.get(r.span.clone()).unwrap_or("");
            text.push_str(self.text.get(copied..r.span.start).unwrap_or(""));
            text.push_str(&literal(&r.value, original.matches('\n').count()));
            copied = r.span.end;
        }
        text.push_str(self.text.get(copied..).unwrap_or(""));
        self.text = text;
        self.expanded = !rewrites.is_empty();
        Ok(self)
    }

    fn collect(
        &self,
        node: &Node,
        key: &str,
        lookup: &dyn Fn(&str) -> Result<String, std::env::VarError>,
        out: &mut Vec<Rewrite>,
    ) -> Result<(), ConfigError> {
        let visit = |child: &Spanned<Node>, key: String, out: &mut Vec<Rewrite>| match child.get_ref() {
            Node::Str(s) if s.contains("${") => {
                let value = expand(s, lookup).map_err(|f| self.invalid(&key, child, f.reason()))?;
                out.push(Rewrite { span: child.span(), value });
                Ok(())
            }
            other => self.collect(other, &key, lookup, out),
        };
        match node {
            Node::Table(entries) => {
                for (name, child) in entries {
                    visit(child, if key.is_empty() { name.clone() } else { format!("{key}.{name}") }, out)?;
                }
            }
            Node::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    visit(child, format!("{key}[{i}]"), out)?;
                }
            }
            Node::Str(_) | Node::Other => {}
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
