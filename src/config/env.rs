//! `${VAR}` in config string values: the value of the environment variable `VAR`, so that
//! secrets (`[admin] token_sha256 = "${MCPT_ADMIN_TOKEN_SHA256}"`) can stay out of the file.
//! `$${` is a literal `${`; any other `$` is itself.
//!
//! It works on parsed values, never on the raw text: the file is parsed once (by
//! `toml_edit`, the parser under `toml`) into a document that keeps each value's position,
//! each string value holding `${` is expanded, and its
//! literal in the text is replaced by a TOML string literal encoding the result (every
//! quote, backslash and control character escaped). A variable's value can therefore never
//! become TOML syntax, and only string values are touched: not keys, not table names, not
//! comments. The replacement keeps the line count (a multi-line literal becomes a
//! multi-line basic string with line-ending backslashes), so later errors name the same
//! lines as the file.

use std::fmt::Write as _;
use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

use super::{ConfigError, Source};

/// One string value to rewrite: where its literal is, and its expanded value.
struct Rewrite {
    span: Range<usize>,
    value: String,
}

/// Looks a variable up (`std::env::var` outside tests).
type Lookup<'a> = &'a dyn Fn(&str) -> Result<String, std::env::VarError>;

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
fn expand(text: &str, lookup: Lookup) -> Result<String, Failure> {
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
    pub(crate) fn expand_env(mut self, lookup: Lookup) -> Result<Self, ConfigError> {
        if !self.text.contains("${") {
            return Ok(self);
        }
        let doc = ImDocument::parse(self.text.as_str()).map_err(|e| ConfigError::Syntax {
            path: self.path.clone(),
            message: e.to_string().trim_end().replace('\n', "\n  "),
        })?;
        let mut rewrites = Vec::new();
        self.in_table(doc.as_table(), "", lookup, &mut rewrites)?;
        drop(doc);
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

    fn in_table(&self, table: &Table, key: &str, lookup: Lookup, out: &mut Vec<Rewrite>) -> Result<(), ConfigError> {
        for (name, item) in table.iter() {
            let key = if key.is_empty() { name.to_owned() } else { format!("{key}.{name}") };
            match item {
                Item::Value(v) => self.in_value(v, &key, lookup, out)?,
                Item::Table(t) => self.in_table(t, &key, lookup, out)?,
                Item::ArrayOfTables(tables) => {
                    for (i, t) in tables.iter().enumerate() {
                        self.in_table(t, &format!("{key}[{i}]"), lookup, out)?;
                    }
                }
                Item::None => {}
            }
        }
        Ok(())
    }

    fn in_value(&self, value: &Value, key: &str, lookup: Lookup, out: &mut Vec<Rewrite>) -> Result<(), ConfigError> {
        match value {
            Value::String(s) if s.value().contains("${") => {
                let span = s.span().ok_or_else(|| self.invalid_key(key, "cannot locate this value in the file"))?;
                let invalid = |f: Failure| ConfigError::Invalid {
                    path: self.path.clone(),
                    line: self.line_of(&span),
                    key: key.to_owned(),
                    reason: f.reason(),
                };
                let value = expand(s.value(), lookup).map_err(invalid)?;
                out.push(Rewrite { span, value });
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    self.in_value(v, &format!("{key}[{i}]"), lookup, out)?;
                }
            }
            Value::InlineTable(t) => {
                for (name, v) in t.iter() {
                    self.in_value(v, &format!("{key}.{name}"), lookup, out)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "env_tests.rs"]
mod tests;
