//! Configuration files: TOML with unknown keys refused, validated at startup into real
//! types. Every error names the file, the line where it is known, the key and the reason.
//!
//! Relative paths in a config file are resolved against the file's directory, so a
//! config and its certificates can move together.

mod approval;
pub mod controls;
pub mod defaults;
pub mod edge;
mod edge_tunnels;
mod env;
pub mod gateway;
mod route;

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use serde::de::DeserializeOwned;
use toml::Spanned;

use crate::tls::pem::{self, Identity, PemError};

/// A configuration problem, always naming the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}{line}: `{key}`: {reason}")]
    Invalid { path: PathBuf, line: LineRef, key: String, reason: String },
    #[error("{path}{line}: `{key}`: {source}")]
    Pem { path: PathBuf, line: LineRef, key: String, source: PemError },
}

/// An optional 1-based line number, printed as `:N` after the file name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineRef(pub Option<usize>);

impl fmt::Display for LineRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(n) => write!(f, ":{n}"),
            None => Ok(()),
        }
    }
}

/// The source text of a config file, for turning spans into line numbers in errors.
pub struct Source {
    /// Where the file is (or a label such as `<demo>`).
    pub path: PathBuf,
    text: String,
    /// Every file the config referred to, so a watcher can reload when one changes.
    referenced: std::cell::RefCell<Vec<PathBuf>>,
    /// Whether `${VAR}` substitution changed `text` (then its errors quote no text: a
    /// line of it may hold a secret).
    expanded: bool,
}

impl Source {
    /// Reads a config file and expands `${VAR}` in its string values from the process's
    /// environment (see `env.rs`).
    pub fn read(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        Self::from_text(path, &text).expand_env(&|name| std::env::var(name))
    }

    /// Wraps text that did not come from a file (tests, examples); no `${VAR}` expansion.
    pub fn from_text(path: &Path, text: &str) -> Self {
        Self { path: path.to_owned(), text: text.to_owned(), referenced: Default::default(), expanded: false }
    }

    /// Parses the text into a raw (unvalidated) config.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ConfigError> {
        toml::from_str(&self.text).map_err(|e| {
            let message = match e.span() {
                // toml's message quotes the line; after substitution it may hold a secret.
                Some(span) if self.expanded => {
                    format!("TOML parse error at line {}: {}", self.line_of(&span).0.unwrap_or(1), e.message())
                }
                _ => e.to_string().trim_end().replace('\n', "\n  "),
            };
            ConfigError::Syntax { path: self.path.clone(), message }
        })
    }

    fn line_of(&self, span: &Range<usize>) -> LineRef {
        let upto = self.text.get(..span.start).unwrap_or("");
        LineRef(Some(upto.bytes().filter(|b| *b == b'\n').count() + 1))
    }

    /// An error about a value whose position is known.
    pub fn invalid<T>(&self, key: &str, at: &Spanned<T>, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            line: self.line_of(&at.span()),
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// An error about a key with no position (a missing or whole-table problem).
    pub fn invalid_key(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { path: self.path.clone(), line: LineRef(None), key: key.into(), reason: reason.into() }
    }

    /// Resolves a path from the config against the config file's directory.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        let full = if p.is_absolute() { p.to_owned() } else { self.path.parent().unwrap_or(Path::new(".")).join(p) };
        self.referenced.borrow_mut().push(full.clone());
        full
    }

    /// The config file and every file it referred to so far.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files = vec![self.path.clone()];
        files.extend(self.referenced.borrow().iter().cloned());
        files.sort();
        files.dedup();
        files
    }

    /// Loads every certificate from the file a key names.
    pub fn certs(&self, key: &str, at: &Spanned<String>) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
        pem::load_certs(&self.resolve(at.get_ref())).map_err(|source| self.pem_error(key, at, source))
    }

    /// Loads a certificate chain and the matching key from two keys' files.
    pub fn identity(
        &self,
        (cert_key, cert): (&str, &Spanned<String>),
        (key_key, key): (&str, &Spanned<String>),
    ) -> Result<Identity, ConfigError> {
        let cert_path = self.resolve(cert.get_ref());
        let chain = pem::load_certs(&cert_path).map_err(|e| self.pem_error(cert_key, cert, e))?;
        let key_path = self.resolve(key.get_ref());
        let secret = pem::load_key(&key_path).map_err(|e| self.pem_error(key_key, key, e))?;
        let identity = Identity { chain, key: secret, source: cert_path.display().to_string() };
        pem::check_key_matches(&identity, &key_path).map_err(|e| self.pem_error(key_key, key, e))?;
        Ok(identity)
    }

    fn pem_error<T>(&self, key: &str, at: &Spanned<T>, source: PemError) -> ConfigError {
        ConfigError::Pem { path: self.path.clone(), line: self.line_of(&at.span()), key: key.into(), source }
    }

    /// Parses an optional duration value, falling back to `default`.
    pub fn duration(
        &self,
        key: &str,
        at: Option<&Spanned<String>>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        match at {
            None => Ok(default),
            Some(v) => parse_duration(v.get_ref()).map_err(|reason| self.invalid(key, v, reason)),
        }
    }
}

impl Source {
    /// Like [`Source::duration`], refusing zero (a zero timeout or interval would close
    /// everything at once or spin).
    pub fn positive_duration(
        &self,
        key: &str,
        at: Option<&Spanned<String>>,
        default: Duration,
    ) -> Result<Duration, ConfigError> {
        let d = self.duration(key, at, default)?;
        match at {
            Some(v) if d.is_zero() => Err(self.invalid(key, v, "must be greater than zero")),
            _ => Ok(d),
        }
    }
}

/// The `[admin]` table, shared by the edge and gateway configs.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    listen: Spanned<String>,
    /// The gateway's admin token hash (control operations over HTTP).
    pub(crate) token_sha256: Option<Spanned<String>>,
}

impl Source {
    /// The admin endpoint address, if the config has an `[admin]` table.
    pub(crate) fn admin_listen(&self, admin: Option<&RawAdmin>) -> Result<Option<std::net::SocketAddr>, ConfigError> {
        admin
            .map(|a| &a.listen)
            .map(|v| {
                v.get_ref()
                    .parse()
                    .map_err(|_| self.invalid("admin.listen", v, "expected \"ip:port\", e.g. \"127.0.0.1:9090\""))
            })
            .transpose()
    }

    /// `[admin] token_sha256`, normalised to `sha256:<lower-case hex>` (the form
    /// `mcp-tunnel auth hash-token` prints; the bare hex is accepted too).
    pub(crate) fn admin_token(&self, admin: Option<&RawAdmin>) -> Result<Option<String>, ConfigError> {
        let Some(v) = admin.and_then(|a| a.token_sha256.as_ref()) else {
            return Ok(None);
        };
        let text = v.get_ref().trim();
        let hex = text.strip_prefix("sha256:").unwrap_or(text);
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let why = "expected the SHA-256 of the token as 64 hex digits (`mcp-tunnel auth hash-token` prints it)";
            return Err(self.invalid("admin.token_sha256", v, why));
        }
        Ok(Some(format!("sha256:{}", hex.to_ascii_lowercase())))
    }
}

/// Parses `"250ms"`, `"30s"`, `"5m"`, `"1h"`: a whole number and a unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("expected a duration such as \"30s\", got {text:?}"))?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(format!("unknown unit in {text:?}: use ms, s, m or h")),
    };
    ms.map(Duration::from_millis).ok_or_else(|| format!("duration {text:?} is too large"))
}

/// Lower-cases a hostname pattern and checks it: a DNS name, or `*.` followed by one.
pub fn normalize_host_pattern(raw: &str) -> Result<String, String> {
    let host = raw.trim().trim_end_matches('.').to_ascii_lowercase();
    let name = host.strip_prefix("*.").unwrap_or(&host);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty() && l.len() <= 63 && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if ok {
        Ok(host)
    } else {
        Err(format!("{raw:?} is not a valid hostname (use a DNS name, optionally starting with '*.')"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        for bad in ["", "s", "10", "1.5s", "-1s", "3d", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn host_patterns() {
        assert_eq!(normalize_host_pattern("Tickets.Example.COM.").unwrap(), "tickets.example.com");
        assert_eq!(normalize_host_pattern("*.a.test").unwrap(), "*.a.test");
        for bad in ["", "*.", "a..b", "a b", "a.*.b", "*"] {
            assert!(normalize_host_pattern(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_carry_file_and_line() {
        #[derive(serde::Deserialize)]
        struct Raw {
            #[allow(dead_code)]
            a: u32,
            b: Spanned<String>,
        }
        let src = Source::from_text(Path::new("x.toml"), "a = 1\nb = \"nope\"\n");
        let raw: Raw = src.parse().unwrap();
        let err = src.invalid("b", &raw.b, "bad value");
        assert_eq!(err.to_string(), "x.toml:2: `b`: bad value");
        let err = src.parse::<Raw>().and(Source::from_text(Path::new("y.toml"), "a = \"x\"").parse::<Raw>());
        let msg = err.err().unwrap().to_string();
        assert!(msg.starts_with("y.toml: TOML parse error at line 1"), "{msg}");
    }
}
