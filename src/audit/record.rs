//! One audit record: what the gateway saw of one request/response pair, as one JSON object
//! on one line. Fields the gateway did not observe are left `None` and omitted from the
//! JSON, so every key present carries information. Payloads never appear here except
//! `arguments`, which the caller redacts before building the record.

use std::time::SystemTime;

use serde::{Serialize, Serializer};
use time::format_description::well_known::iso8601::{Config, EncodedConfig, Iso8601, TimePrecision};
use time::OffsetDateTime;

pub use super::values::{Action, Approval, Auth, Decision, Direction, Event, Outcome, Pin};

/// One line of the audit trail. Build it with `..Default::default()` and set what is known.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AuditRecord {
    /// When the gateway finished with the exchange: RFC 3339, UTC, milliseconds
    /// (`2025-06-01T12:00:00.123Z`). Left `None`, the writer fills in the moment
    /// [`Auditor::record`](super::Auditor::record) was called.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// What kind of record this is: see [`Event`]. Always present.
    pub event: Event,
    /// The gateway's tunnel id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<String>,
    /// The tunnel connection slot the request arrived on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<u32>,
    /// The tunnel stream id (one per client TLS connection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<u64>,
    /// The client's address as reported by the edge (`ip:port`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    /// The TLS server name the client asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// The name of the route that matched; absent when none did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// The upstream the request was sent to (as configured, without credentials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// The HTTP method (`POST`, `GET`, `DELETE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_method: Option<String>,
    /// The HTTP status sent to the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// `server_to_client` for a message the server sent toward the client (a refused
    /// `sampling/createMessage`); absent for the client's own requests: see [`Direction`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// The JSON-RPC method (`tools/call`, `initialize`, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jsonrpc_method: Option<String>,
    /// The JSON-RPC request id, as sent (number or string); absent for notifications.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jsonrpc_id: Option<serde_json::Value>,
    /// The tool name of a `tools/call`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The resource URI of a `resources/read`, `resources/subscribe` or `resources/unsubscribe`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_uri: Option<String>,
    /// The prompt name of a `prompts/get`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    /// A hash of the request's `Mcp-Session-Id` ([`session_hash`]), never the id itself:
    /// the id is a bearer capability, and the trail is read by more people than hold one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The MCP protocol version (`MCP-Protocol-Version` header or the negotiated version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub protocol_version: Option<String>,
    /// The W3C trace id from the request's `traceparent`, for joining with traces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Who called, when the route authenticates: the token's configured name or the JWT subject.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// How the caller was authenticated: see [`Auth`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<Auth>,
    /// Whether the gateway let the request through: see [`Decision`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// Why the gateway refused or failed the request, as a fixed machine code
    /// (`tool_denied`, `auth_failed`, `body_too_large`, `upstream_timeout`, …).
    // A string, not an enum here: each stage's own typed error owns its codes
    // (`AuthError::reason`, `InspectError`, `mcp::policy`, `Refusal::reason`, upstream kinds),
    // and one list of them all here would tie this sink to every stage above it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
    /// The JSON-RPC error code of the response, when it was an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jsonrpc_error: Option<i64>,
    /// Milliseconds from the request's arrival to the end of the response, rounded to
    /// three decimals (microseconds).
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "millis_3")]
    pub latency_ms: Option<f64>,
    /// Request body bytes received from the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_in: Option<u64>,
    /// Response body bytes sent to the client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_out: Option<u64>,
    /// The request's `params.arguments`, ALREADY REDACTED by the caller: the writer
    /// writes this value as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arguments: Option<serde_json::Value>,
    /// How the exchange ended: see [`Outcome`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// The approval state of a `tools/call`: see [`Approval`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// The id of the approval request the call waited on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Who approved or denied the call (`uid:1000 via socket`, `admin token via http`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// How long the call waited for a decision, in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "millis_3")]
    pub approval_wait_ms: Option<f64>,
    /// The fingerprint of the called tool's definition (the tool schema version).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_fingerprint: Option<String>,
    /// How the called tool's definition compares with its pin: see [`Pin`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pin: Option<Pin>,
    /// For `control` records: the operation (`kill`, `resume`, `approve`, `deny`, `pin`, …):
    /// see [`Action`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// For `control` records: who acted (`uid:0 via socket`, `admin token via http`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Free text an operator gave with the action (a kill or deny reason).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl AuditRecord {
    /// A record of kind `event` with every other field unset.
    pub fn new(event: Event) -> Self {
        Self { event, ..Self::default() }
    }
}

/// Hex digits of SHA-256 kept by [`session_hash`] (64 bits: enough to join records of
/// one session, far too few to matter as a guess of a 256-bit id).
const SESSION_HASH_HEX: usize = 16;

/// How audit and approval records name a session: the first 16 hex digits of the
/// SHA-256 of its `Mcp-Session-Id`.
pub fn session_hash(id: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, id.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect::<String>()[..SESSION_HASH_HEX].to_owned()
}

/// Converts a duration to the `latency_ms` value.
pub fn millis(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// RFC 3339 with exactly three fractional digits; `Z` for UTC.
const TIME_FORMAT: EncodedConfig =
    Config::DEFAULT.set_time_precision(TimePrecision::Second { decimal_digits: core::num::NonZeroU8::new(3) }).encode();

/// Formats `at` as the `time` field. `None` only for a clock outside years 0..=9999.
pub fn format_time(at: SystemTime) -> Option<String> {
    OffsetDateTime::from(at).format(&Iso8601::<TIME_FORMAT>).ok()
}

/// Rounds to three decimals so the JSON reads `12.345`, not `12.345000000000001`: the
/// nearest f64 to n/1000 prints as n/1000 in serde_json's shortest round-trip form.
fn millis_3<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(ms) => s.serialize_f64((ms * 1000.0).round() / 1000.0),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn session_hash_is_short_sha256() {
        // SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(session_hash("abc"), "ba7816bf8f01cfea");
    }

    #[test]
    fn unset_fields_are_absent() {
        let rec = AuditRecord {
            tunnel: Some("acme".into()),
            http_status: Some(200),
            decision: Some(Decision::Allow),
            ..AuditRecord::new(Event::Mcp)
        };
        let v: Value = serde_json::to_value(&rec).unwrap();
        assert_eq!(v, json!({"event": "mcp", "tunnel": "acme", "http_status": 200, "decision": "allow"}));
    }

    #[test]
    fn every_field_serializes_under_its_documented_name() {
        let rec = AuditRecord {
            time: Some("2025-06-01T12:00:00.123Z".into()),
            event: Event::Mcp,
            tunnel: Some("t".into()),
            connection: Some(1),
            stream: Some(2),
            client_addr: Some("192.0.2.1:5000".into()),
            sni: Some("mcp.example.com".into()),
            route: Some("r".into()),
            upstream: Some("http://10.0.0.5:8080/mcp".into()),
            http_method: Some("POST".into()),
            http_status: Some(200),
            direction: Some(Direction::ServerToClient),
            jsonrpc_method: Some("tools/call".into()),
            jsonrpc_id: Some(json!(7)),
            tool: Some("search".into()),
            resource_uri: Some("file:///x".into()),
            prompt: Some("p".into()),
            session_id: Some("s".into()),
            protocol_version: Some("2025-11-25".into()),
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            identity: Some("alice".into()),
            auth: Some(Auth::Jwt),
            decision: Some(Decision::Deny),
            reason: Some("tool_denied"),
            jsonrpc_error: Some(-32600),
            latency_ms: Some(1.5),
            bytes_in: Some(10),
            bytes_out: Some(20),
            arguments: Some(json!({"q": "[redacted]"})),
            outcome: Some(Outcome::Complete),
            approval: Some(Approval::Approved),
            approval_id: Some("a1".into()),
            approver: Some("uid:0 via socket".into()),
            approval_wait_ms: Some(2.0),
            tool_fingerprint: Some("sha256:00".into()),
            pin: Some(Pin::Pinned),
            action: Some(Action::Approve),
            actor: Some("uid:0 via socket".into()),
            note: Some("ok".into()),
        };
        let v: Value = serde_json::to_value(&rec).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut expected = vec![
            "time",
            "event",
            "tunnel",
            "connection",
            "stream",
            "client_addr",
            "sni",
            "route",
            "upstream",
            "http_method",
            "http_status",
            "direction",
            "jsonrpc_method",
            "jsonrpc_id",
            "tool",
            "resource_uri",
            "prompt",
            "session_id",
            "protocol_version",
            "trace_id",
            "identity",
            "auth",
            "decision",
            "reason",
            "jsonrpc_error",
            "latency_ms",
            "bytes_in",
            "bytes_out",
            "arguments",
            "outcome",
            "approval",
            "approval_id",
            "approver",
            "approval_wait_ms",
            "tool_fingerprint",
            "pin",
            "action",
            "actor",
            "note",
        ];
        let mut got = keys.clone();
        got.sort_unstable();
        expected.sort_unstable();
        assert_eq!(got, expected);
        assert_eq!(v["jsonrpc_error"], json!(-32600));
        assert_eq!(v["arguments"], json!({"q": "[redacted]"}));
    }

    /// The enum fields write the very bytes the string constants they replaced wrote.
    #[test]
    fn enum_fields_write_the_old_words() {
        let rec = AuditRecord {
            direction: Some(Direction::ServerToClient),
            auth: Some(Auth::Bearer),
            decision: Some(Decision::Deny),
            reason: Some("method_denied"),
            outcome: Some(Outcome::Aborted),
            approval: Some(Approval::NotRequired),
            pin: Some(Pin::Unpinned),
            action: Some(Action::ApprovalsDeny),
            ..AuditRecord::new(Event::Control)
        };
        let want = concat!(
            r#"{"event":"control","direction":"server_to_client","auth":"bearer","decision":"deny","#,
            r#""reason":"method_denied","outcome":"aborted","approval":"not_required","pin":"unpinned","#,
            r#""action":"approvals.deny"}"#
        );
        assert_eq!(serde_json::to_string(&rec).unwrap(), want);
    }

    #[test]
    fn latency_has_three_decimals() {
        let rec = AuditRecord { latency_ms: Some(12.345_000_000_000_1), ..AuditRecord::new(Event::Http) };
        assert_eq!(serde_json::to_string(&rec).unwrap(), r#"{"event":"http","latency_ms":12.345}"#);
        let rec =
            AuditRecord { latency_ms: Some(millis(Duration::from_nanos(1_234_567))), ..AuditRecord::new(Event::Http) };
        assert_eq!(serde_json::to_value(&rec).unwrap()["latency_ms"], json!(1.235));
    }

    #[test]
    fn time_is_rfc3339_utc_with_milliseconds() {
        let at = UNIX_EPOCH + Duration::from_millis(1_748_779_200_123) + Duration::from_nanos(999);
        assert_eq!(format_time(at).unwrap(), "2025-06-01T12:00:00.123Z");
        assert_eq!(format_time(UNIX_EPOCH).unwrap(), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn hostile_strings_stay_on_one_line() {
        let rec = AuditRecord { tool: Some("a\nb\r\"c\u{2028}".into()), ..AuditRecord::new(Event::Mcp) };
        let line = serde_json::to_string(&rec).unwrap();
        assert!(!line.contains('\n') && !line.contains('\r'));
        let back: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(back["tool"], json!("a\nb\r\"c\u{2028}"));
    }
}
