//! Which MCP methods and tools a route lets through.
//!
//! A [`Glob`] is a name pattern where `*` matches any run of characters (also none) and `?`
//! exactly one character; every other character matches itself, case-sensitively (MCP names
//! are case-sensitive). There is no escaping: a tool whose name contains `*` or `?` can only be
//! named by a pattern that also matches other names.
//!
//! Matching walks text and pattern once, remembering only the most recent `*` to fall back to.
//! That is exact for `*`/`?` globs (a later `*` can absorb anything an earlier one could) and
//! costs at most O(pattern × text) steps, so patterns like `*a*a*a*a*b` cannot explode.

use std::fmt;
use std::str::FromStr;

use super::message::{MessageKind, RequestInfo};

/// Longest pattern accepted, in bytes (tool names are short; this bounds matching work).
pub const MAX_GLOB_LEN: usize = 1024;

/// Why a pattern was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GlobError {
    /// The pattern is the empty string (which would match nothing but look like "everything").
    #[error("empty name pattern")]
    Empty,
    /// The pattern is longer than [`MAX_GLOB_LEN`].
    #[error("name pattern longer than {MAX_GLOB_LEN} bytes")]
    TooLong,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Star,
    One,
    Char(char),
}

/// A compiled `*` / `?` name pattern.
#[derive(Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    /// `None` when the pattern has no wildcard: plain string equality.
    tokens: Option<Vec<Token>>,
}

impl Glob {
    /// Compiles `pattern`; rejects the empty string and overlong patterns.
    pub fn new(pattern: &str) -> Result<Glob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError::Empty);
        }
        if pattern.len() > MAX_GLOB_LEN {
            return Err(GlobError::TooLong);
        }
        if !pattern.contains(['*', '?']) {
            return Ok(Glob { source: pattern.to_owned(), tokens: None });
        }
        let mut tokens = Vec::with_capacity(pattern.len());
        for c in pattern.chars() {
            let t = match c {
                '*' => Token::Star,
                '?' => Token::One,
                c => Token::Char(c),
            };
            // `**` means the same as `*`; collapsing keeps the walk short.
            if !(t == Token::Star && tokens.last() == Some(&Token::Star)) {
                tokens.push(t);
            }
        }
        Ok(Glob { source: pattern.to_owned(), tokens: Some(tokens) })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `text` matches the whole pattern.
    pub fn matches(&self, text: &str) -> bool {
        match &self.tokens {
            None => self.source == text,
            Some(tokens) => wildcard_match(tokens, text),
        }
    }
}

/// Iterative matcher: `p` indexes tokens, `s` is a byte offset into `text` (always on a char
/// boundary). On a mismatch, go back to just after the last `*` and let it absorb one more char.
fn wildcard_match(tokens: &[Token], text: &str) -> bool {
    let (mut p, mut s) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None; // (token after the star, text offset it resumes at)
    loop {
        let c = text[s..].chars().next();
        match (tokens.get(p), c) {
            (Some(Token::Star), _) => {
                p += 1;
                star = Some((p, s));
                continue;
            }
            (Some(Token::One), Some(c)) => {
                p += 1;
                s += c.len_utf8();
                continue;
            }
            (Some(Token::Char(t)), Some(c)) if *t == c => {
                p += 1;
                s += c.len_utf8();
                continue;
            }
            (None, None) => return true,
            _ => {}
        }
        // Mismatch (or pattern/text ran out early): retry from the last star, one char later.
        match star {
            Some((sp, ss)) => match text[ss..].chars().next() {
                Some(c) => {
                    let next = ss + c.len_utf8();
                    star = Some((sp, next));
                    p = sp;
                    s = next;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

impl FromStr for Glob {
    type Err = GlobError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Glob::new(s)
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl fmt::Debug for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Glob({:?})", self.source)
    }
}

/// Tool and method filter for one route.
///
/// `deny` wins over `allow`; an empty `allow` allows every tool not denied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ToolPolicy {
    /// Tools allowed; empty means "all tools".
    pub allow: Vec<Glob>,
    /// Tools denied, even when `allow` matches them.
    pub deny: Vec<Glob>,
    /// JSON-RPC methods denied (e.g. `resources/*`, `sampling/createMessage`).
    pub deny_methods: Vec<Glob>,
}

/// What the policy refused: the audit `reason` and the `policy_denials_total` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// A method in `deny_methods` (client→server, or server→client on a guarded route).
    Method,
    /// A `tools/call` of a tool outside `allow` or in `deny`.
    Tool,
}

impl Denied {
    /// The reason word.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Method => "method_denied",
            Self::Tool => "tool_denied",
        }
    }
}

impl ToolPolicy {
    /// Whether a `tools/call` of `name` (and listing it in `tools/list`) is allowed.
    pub fn tool_allowed(&self, name: &str) -> bool {
        if self.deny.iter().any(|g| g.matches(name)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|g| g.matches(name))
    }

    /// Whether the JSON-RPC method `method` may pass.
    pub fn method_allowed(&self, method: &str) -> bool {
        !self.deny_methods.iter().any(|g| g.matches(method))
    }

    /// Whether the policy can hide any tool (so `tools/list` responses need filtering).
    pub fn restricts_tools(&self) -> bool {
        !self.allow.is_empty() || !self.deny.is_empty()
    }

    /// The first message of a request the policy refuses, as `(why, message)`: a denied
    /// method, or a `tools/call` of a denied tool. A batch is judged whole by the caller.
    pub fn first_denied(&self, info: &RequestInfo) -> Option<(Denied, String)> {
        info.messages.iter().filter(|m| m.kind != MessageKind::Response).find_map(|m| {
            let method = m.method.as_deref()?;
            if !self.method_allowed(method) {
                return Some((Denied::Method, format!("method {method} is not allowed on this route")));
            }
            match m.called_tool() {
                Some(tool) if !self.tool_allowed(tool) => {
                    Some((Denied::Tool, format!("tool {tool} is not allowed on this route")))
                }
                _ => None,
            }
        })
    }
}

#[cfg(test)]
#[path = "tests/policy.rs"]
mod tests;
