//! RFC 9728 OAuth protected-resource metadata for routes that authenticate at the gateway.
//!
//! MCP clients find the authorization server through this document: the 401 challenge
//! names its URL (`resource_metadata`), and clients that ignore the challenge try the
//! well-known URL built by path insertion (RFC 9728 §3.1):
//! resource `https://host/mcp` → `https://host/.well-known/oauth-protected-resource/mcp`.

use serde_json::{json, Value};

/// The well-known path segment of RFC 9728 §3.
pub const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// The metadata document for `resource`. `authorization_servers` and `scopes_supported`
/// are left out when empty (both are optional; a static-token route has no
/// authorization server to name).
pub fn protected_resource_metadata(resource: &str, authorization_servers: &[String], scopes: &[String]) -> Value {
    let mut doc = json!({
        "resource": resource,
        "bearer_methods_supported": ["header"],
    });
    if !authorization_servers.is_empty() {
        doc["authorization_servers"] = json!(authorization_servers);
    }
    if !scopes.is_empty() {
        doc["scopes_supported"] = json!(scopes);
    }
    doc
}

/// The resource identifier of a route: `https://<host><path_prefix>`.
pub fn resource_url(host: &str, path_prefix: Option<&str>) -> String {
    format!("https://{}{}", normalize_host(host), normalize_prefix(path_prefix))
}

/// The path the gateway serves the route's metadata at: `/.well-known/oauth-protected-resource<prefix>`.
/// The proxy must answer it before prefix routing, since it lies outside the route's prefix.
pub fn metadata_path(path_prefix: Option<&str>) -> String {
    format!("{WELL_KNOWN}{}", normalize_prefix(path_prefix))
}

/// The metadata URL for the route at `host` (optionally `host:port`) and `path_prefix`,
/// for the challenge's `resource_metadata` parameter.
pub fn metadata_url(host: &str, path_prefix: Option<&str>) -> String {
    format!("https://{}{}", normalize_host(host), metadata_path(path_prefix))
}

/// Lower-case host without a trailing dot (host names are case-insensitive; clients
/// compare the URLs as strings).
fn normalize_host(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// `""` for no prefix or `/`; otherwise one leading `/` and no trailing `/` (RFC 9728 §3.1
/// removes a terminating slash before insertion).
fn normalize_prefix(prefix: Option<&str>) -> String {
    let p = prefix.unwrap_or("").trim().trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("/{p}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_url_inserts_the_well_known_path_before_the_resource_path() {
        assert_eq!(metadata_url("host", Some("/mcp")), "https://host/.well-known/oauth-protected-resource/mcp");
        assert_eq!(
            metadata_url("Tickets.Example.com", Some("/team/a/mcp/")),
            "https://tickets.example.com/.well-known/oauth-protected-resource/team/a/mcp"
        );
        assert_eq!(metadata_url("host:8443", None), "https://host:8443/.well-known/oauth-protected-resource");
        assert_eq!(metadata_url("host", Some("/")), "https://host/.well-known/oauth-protected-resource");
        assert_eq!(metadata_url("host", Some("mcp")), "https://host/.well-known/oauth-protected-resource/mcp");
        assert_eq!(metadata_path(Some("/mcp")), "/.well-known/oauth-protected-resource/mcp");
        assert_eq!(resource_url("host", Some("/mcp")), "https://host/mcp");
        assert_eq!(resource_url("host", None), "https://host");
    }

    #[test]
    fn metadata_document_fields() {
        let doc = protected_resource_metadata(
            "https://host/mcp",
            &["https://idp.example.com".to_owned()],
            &["mcp:read".to_owned(), "mcp:write".to_owned()],
        );
        assert_eq!(
            doc,
            json!({
                "resource": "https://host/mcp",
                "authorization_servers": ["https://idp.example.com"],
                "bearer_methods_supported": ["header"],
                "scopes_supported": ["mcp:read", "mcp:write"],
            })
        );
        let bare = protected_resource_metadata("https://host/mcp", &[], &[]);
        assert_eq!(bare, json!({"resource": "https://host/mcp", "bearer_methods_supported": ["header"]}));
    }
}
