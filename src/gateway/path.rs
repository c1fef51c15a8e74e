//! Request paths in one canonical form, made once before routing, so the router and the
//! upstream judge the same bytes (RFC 3986 §6.2.2).
//!
//! - Percent-encoded *unreserved* characters (`A-Z a-z 0-9 - . _ ~`) are decoded:
//!   `/mcp/%61dmin` is `/mcp/admin`, and is routed (and forwarded) as that.
//! - Other percent-encodings are kept, with upper-case hex (`%2f` → `%2F` is then refused).
//! - Anything an upstream could read as a different path than the router did is refused
//!   rather than guessed at: dot segments (also once decoded), empty segments (`//`), `;`
//!   path parameters, encoded `/` or `\`, a raw `\`, encoded control bytes.

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with /")]
    NotAbsolute,
    #[error("dot segments are not allowed in paths")]
    DotSegment,
    #[error("empty path segments (//) are not allowed")]
    EmptySegment,
    #[error("';' path parameters are not allowed")]
    Parameter,
    #[error("encoded separators are not allowed in paths")]
    EncodedSeparator,
    #[error("malformed percent-encoding in the path")]
    BadEscape,
    #[error("the path has bytes that must be percent-encoded")]
    BadByte,
}

/// The canonical form of `path` (no query), or why it is refused.
pub fn normalize(path: &str) -> Result<String, PathError> {
    if !path.starts_with('/') {
        // `*` (OPTIONS) and absolute-form targets carry no routable path.
        return Err(PathError::NotAbsolute);
    }
    let mut out = String::with_capacity(path.len());
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
                let value = hex_value(hex[0]).zip(hex_value(hex[1])).map(|(h, l)| h << 4 | l);
                let value = value.ok_or(PathError::BadEscape)?;
                if is_unreserved(value) {
                    out.push(char::from(value));
                } else if value == b'/' || value == b'\\' || value < 0x20 || value == 0x7f {
                    return Err(PathError::EncodedSeparator);
                } else {
                    out.push('%');
                    out.push(char::from(b"0123456789ABCDEF"[usize::from(value >> 4)]));
                    out.push(char::from(b"0123456789ABCDEF"[usize::from(value & 0xf)]));
                }
                i += 3;
            }
            b';' => return Err(PathError::Parameter),
            b'\\' => return Err(PathError::EncodedSeparator),
            // An http::Uri never holds these; refusing keeps `out` byte-for-byte ASCII.
            _ if !b.is_ascii_graphic() => return Err(PathError::BadByte),
            _ => {
                out.push(char::from(b));
                i += 1;
            }
        }
    }
    // Segment checks run on the decoded form, so `%2e%2e` counts as `..`.
    let segments: Vec<&str> = out[1..].split('/').collect();
    let last = segments.len() - 1;
    for (n, seg) in segments.iter().enumerate() {
        if *seg == "." || *seg == ".." {
            return Err(PathError::DotSegment);
        }
        // A trailing slash (`/mcp/`) is an empty last segment, and fine; `//` is not.
        if seg.is_empty() && n != last {
            return Err(PathError::EmptySegment);
        }
    }
    Ok(out)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_pass_unchanged() {
        for ok in ["/", "/mcp", "/mcp/", "/a.b/c..d", "/.well-known/oauth-protected-resource", "/x%20y", "/~u/a-b_c"] {
            assert_eq!(normalize(ok).as_deref(), Ok(ok), "{ok}");
        }
    }

    #[test]
    fn unreserved_escapes_are_decoded_and_others_upper_cased() {
        assert_eq!(normalize("/mcp/%61dmin/x").as_deref(), Ok("/mcp/admin/x"));
        assert_eq!(normalize("/%4D%43%50").as_deref(), Ok("/MCP"));
        assert_eq!(normalize("/a%7e").as_deref(), Ok("/a~"));
        assert_eq!(normalize("/x%2ay").as_deref(), Ok("/x%2Ay"));
    }

    #[test]
    fn ambiguous_paths_are_refused() {
        let cases = [
            ("/pub/../secret", PathError::DotSegment),
            ("/pub/..", PathError::DotSegment),
            ("/./x", PathError::DotSegment),
            ("/pub/%2e%2e/secret", PathError::DotSegment),
            ("/pub/%2E./x", PathError::DotSegment),
            ("/mcp/%2e", PathError::DotSegment),
            ("/a%2Fb", PathError::EncodedSeparator),
            ("/a%2fb", PathError::EncodedSeparator),
            ("/a%5Cb", PathError::EncodedSeparator),
            ("/a\\b", PathError::EncodedSeparator),
            ("/a%00b", PathError::EncodedSeparator),
            ("//mcp/admin", PathError::EmptySegment),
            ("/mcp//admin", PathError::EmptySegment),
            ("/mcp;x=1/admin", PathError::Parameter),
            ("/mcp/admin;", PathError::Parameter),
            ("/a%4", PathError::BadEscape),
            ("/a%zz", PathError::BadEscape),
            ("/a%", PathError::BadEscape),
            ("*", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
        ];
        for (path, want) in cases {
            assert_eq!(normalize(path), Err(want.clone()), "{path}");
        }
    }

    #[test]
    fn non_ascii_bytes_never_panic() {
        // hyper hands over only valid URI bytes, but the function must not trust that.
        assert_eq!(normalize("/é"), Err(PathError::BadByte));
        assert_eq!(normalize("/a b"), Err(PathError::BadByte));
        assert_eq!(normalize("/%C3%A9").as_deref(), Ok("/%C3%A9"));
    }
}
