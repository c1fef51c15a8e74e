//! Reaching the edge: a real mTLS handshake over QUIC (UDP) and over TLS/TCP (the HTTP/2
//! fallback), with the gateway's own dial code and TLS configs. No `Hello` is sent, so
//! the doctor never registers and no client request can land on it; the edge logs the
//! probe as a gateway connection that ended before `Hello`.

use std::time::{Duration, Instant};

use super::{ConfigPaths, Finding};
use crate::config::gateway::{EdgeTarget, TransportMode};
use crate::gateway::dial::{self, Closer};
use crate::gateway::dial_error::DialError;
use crate::protocol::codes;

/// Why a handshake failed, as a user can act on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    Dns(String),
    Refused,
    Timeout(Duration),
    /// The edge's certificate is not signed by the pinned CA.
    UnknownCa(String),
    /// The edge's certificate does not name `server_name`.
    NameMismatch(String),
    /// The edge's certificate is expired or not yet valid.
    EdgeCertDates(String),
    /// The edge refused this gateway's client certificate (a TLS alert).
    ClientCertRejected(String),
    /// The peer does not speak the mcp-tunnel ALPN.
    Alpn,
    Other(String),
}

/// Sorts a dial error into a [`Cause`] by reading its chain.
pub fn classify(err: &DialError) -> Cause {
    match err {
        DialError::Resolve { detail, .. } => Cause::Dns(detail.clone()),
        DialError::Timeout(after) => Cause::Timeout(*after),
        DialError::Handshake(quinn::ConnectionError::TimedOut) => Cause::Timeout(Duration::ZERO),
        DialError::Handshake(quinn::ConnectionError::ConnectionClosed(close)) => {
            // The edge closed with a TLS alert (code 0x100 + alert): it judged our side.
            let code = u64::from(close.error_code);
            match u8::try_from(code.wrapping_sub(0x100)) {
                Ok(alert) if (0x100..0x200).contains(&code) => alert_cause(rustls::AlertDescription::from(alert)),
                _ => Cause::Other(close.to_string()),
            }
        }
        DialError::Tcp(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Cause::Refused,
        DialError::Tcp(e) if e.kind() == std::io::ErrorKind::TimedOut => Cause::Timeout(Duration::ZERO),
        other => match tls_error(other) {
            Some(rustls::Error::AlertReceived(alert)) => alert_cause(*alert),
            Some(tls) => classify_text(&tls.to_string()),
            // QUIC reports our own verification failure as text.
            None => classify_text(&other.to_string()),
        },
    }
}

fn alert_cause(alert: rustls::AlertDescription) -> Cause {
    match alert {
        rustls::AlertDescription::NoApplicationProtocol => Cause::Alpn,
        other => Cause::ClientCertRejected(format!("{other:?}")),
    }
}

fn classify_text(text: &str) -> Cause {
    // BadSignature: an issuer with the pinned CA's name but another key (a regenerated CA).
    if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        Cause::UnknownCa(text.to_owned())
    } else if text.contains("not valid for name") || text.contains("NotValidForName") {
        Cause::NameMismatch(text.to_owned())
    } else if ["Expired", "expired", "NotValidYet", "not valid yet"].iter().any(|w| text.contains(w)) {
        Cause::EdgeCertDates(text.to_owned())
    } else if text.contains("NoApplicationProtocol") || text.contains("no application protocol") {
        Cause::Alpn
    } else {
        Cause::Other(text.to_owned())
    }
}

/// The rustls error under a TCP-side dial error (the variants keep it unexposed as a
/// `source`, so each is opened by hand).
fn tls_error(err: &DialError) -> Option<&rustls::Error> {
    match err {
        DialError::Tls(e) | DialError::Tcp(e) => find_rustls(e),
        DialError::H2(e) => find_rustls(e),
        _ => None,
    }
}

/// Finds a rustls error in an error chain, looking inside `io::Error`s too.
fn find_rustls<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
            if let Some(tls) = find_rustls(inner) {
                return Some(tls);
            }
        }
        if let Some(inner) = e.downcast_ref::<h2::Error>().and_then(h2::Error::get_io).and_then(|io| io.get_ref()) {
            if let Some(tls) = find_rustls(inner) {
                return Some(tls);
            }
        }
        cur = e.source();
    }
    None
}

/// QUIC: the handshake, then the edge's verdict on our certificate. With TLS 1.3 the
/// client finishes first; the edge confirms with HANDSHAKE_DONE or refuses with a close.
async fn probe_quic(edge: &EdgeTarget, client: &quinn::ClientConfig, timeout: Duration) -> Result<Duration, Cause> {
    let started = Instant::now();
    let session = dial::quic(edge, 0, client, timeout).await.map_err(|e| timed(classify(&e), timeout))?;
    let Closer::Quic { conn, endpoint } = &session.closer else {
        return Err(Cause::Other("QUIC dial returned another transport".into()));
    };
    let confirmed = async {
        while conn.stats().frame_rx.handshake_done == 0 {
            if conn.close_reason().is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let left = timeout.saturating_sub(started.elapsed());
    let waited = tokio::time::timeout(left, confirmed).await;
    let took = started.elapsed();
    let outcome = match (waited, conn.close_reason()) {
        (_, Some(reason)) => Err(timed(classify(&DialError::Handshake(reason)), timeout)),
        (Ok(()), None) => Ok(took),
        (Err(_), None) => Err(Cause::Timeout(timeout)),
    };
    conn.close(codes::CLOSE_NORMAL.into(), b"mcp-tunnel doctor");
    let _ = tokio::time::timeout(Duration::from_secs(1), endpoint.wait_idle()).await;
    outcome
}

/// TCP: TLS, then HTTP/2 until the edge's control request, which it sends only after
/// accepting our certificate.
async fn probe_tcp(
    edge: &EdgeTarget,
    tls: &std::sync::Arc<rustls::ClientConfig>,
    timeout: Duration,
) -> Result<Duration, Cause> {
    let started = Instant::now();
    // The probe's own tracker: the connection task ends within a second of the close.
    let tasks = crate::tasks::Tasks::new();
    let session = dial::h2(edge, 0, tls, &tasks, timeout).await.map_err(|e| timed(classify(&e), timeout))?;
    let took = started.elapsed();
    // The connection task sends GOAWAY in the background; the probe does not wait for it.
    session.closer.close_now();
    Ok(took)
}

/// A timeout whose duration the error did not carry is the probe's own.
fn timed(cause: Cause, timeout: Duration) -> Cause {
    match cause {
        Cause::Timeout(d) if d.is_zero() => Cause::Timeout(timeout),
        c => c,
    }
}

/// What the user should do about `cause` on `transport` to `addr`.
fn fix(cause: &Cause, transport: &str, addr: &str, ca: &str) -> String {
    match cause {
        Cause::Dns(_) => format!("check the host in [edge] address ({addr}) and this host's DNS resolver"),
        Cause::Refused => format!(
            "nothing listens on TCP {addr}: check that the edge runs and that [edge] address/tcp_address name its tunnel listener"
        ),
        Cause::Timeout(_) => format!(
            "no answer from {transport} {addr}: check that the edge runs and that firewalls allow outbound {} to that port",
            if transport == "QUIC" { "UDP" } else { "TCP" }
        ),
        Cause::UnknownCa(_) => format!("the edge's certificate is not signed by [edge] ca ({ca}): pin the edge operator's CA"),
        Cause::NameMismatch(_) => {
            "set [edge] server_name to a name the edge's certificate carries (or dial the edge by that name)".into()
        }
        Cause::EdgeCertDates(_) => {
            "the edge's certificate is expired or not yet valid: the edge operator must renew it (or this host's clock is wrong)".into()
        }
        Cause::ClientCertRejected(_) => "use a gateway certificate issued by the edge's tunnel CA and still valid \
             (mcp-tunnel certs issue-gateway); check [edge] cert and key"
            .into(),
        Cause::Alpn => format!("{addr} does not speak the mcp-tunnel protocol: point [edge] address at the edge's tunnel listener, not its public one"),
        Cause::Other(_) => "see docs/troubleshooting.md".into(),
    }
}

fn describe(cause: &Cause) -> String {
    match cause {
        Cause::Dns(d) => format!("DNS lookup failed: {d}"),
        Cause::Refused => "connection refused".into(),
        Cause::Timeout(after) => format!("timed out after {after:?}"),
        Cause::UnknownCa(d) => format!("TLS: unknown CA, the edge's certificate is not signed by the pinned CA ({d})"),
        Cause::NameMismatch(d) => format!("TLS: name mismatch ({d})"),
        Cause::EdgeCertDates(d) => format!("TLS: the edge's certificate is not valid now ({d})"),
        Cause::ClientCertRejected(alert) => {
            format!("TLS: the edge rejected this gateway's client certificate (alert {alert})")
        }
        Cause::Alpn => "TLS: no common application protocol (ALPN)".into(),
        Cause::Other(d) => d.clone(),
    }
}

/// Probes every configured edge address on the configured transports.
pub async fn check(edge: &EdgeTarget, paths: &ConfigPaths, timeout: Duration) -> Vec<Finding> {
    let (quic, h2) = match crate::gateway::tunnel_client_configs(edge) {
        Ok(c) => c,
        Err(e) => {
            return vec![Finding::fail("edge.quic", format!("edge TLS setup: {e}"), "check [edge] cert, key and ca")]
        }
    };
    let ca = paths.edge_ca.as_ref().map_or_else(|| "[edge] ca".to_owned(), |p| p.display().to_string());
    let mut out = Vec::new();
    let mut tcp_done = Vec::new();
    for address in std::iter::once(&edge.address).chain(&edge.addresses) {
        let target = EdgeTarget { address: address.clone(), ..edge.clone() };
        let tcp_addr = target.tcp_address.clone().unwrap_or_else(|| address.clone());
        // With one tcp_address for all edge addresses, probe it once.
        let probe_tcp_here = edge.transport != TransportMode::Quic && !tcp_done.contains(&tcp_addr);
        let (q, t) = tokio::join!(
            async {
                match edge.transport {
                    TransportMode::Http2 => None,
                    _ => {
                        // dial::quic bounds the handshake; this bounds the whole probe.
                        let probe =
                            tokio::time::timeout(timeout.saturating_mul(2), probe_quic(&target, &quic, timeout));
                        Some(probe.await.unwrap_or(Err(Cause::Timeout(timeout))))
                    }
                }
            },
            async {
                match probe_tcp_here {
                    true => Some(probe_tcp(&target, &h2, timeout).await),
                    false => None,
                }
            }
        );
        if probe_tcp_here {
            tcp_done.push(tcp_addr.clone());
        }
        out.extend(verdicts(edge.transport, address, &tcp_addr, q, t, &ca));
    }
    out
}

/// Turns probe results into findings, applying the transport policy: in `auto` mode a
/// QUIC timeout with TCP working is a warning (the gateway falls back), not a failure.
fn verdicts(
    mode: TransportMode,
    addr: &str,
    tcp_addr: &str,
    quic: Option<Result<Duration, Cause>>,
    tcp: Option<Result<Duration, Cause>>,
    ca: &str,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let tcp_ok = matches!(tcp, Some(Ok(_)));
    match quic {
        None => {}
        Some(Ok(took)) => out.push(Finding::ok("edge.quic", format!("edge over QUIC {addr}: mTLS handshake accepted in {took:.0?}"))),
        Some(Err(Cause::Timeout(after))) if tcp_ok && mode == TransportMode::Auto => out.push(Finding::warn(
            "edge.quic",
            format!("edge over QUIC {addr}: timed out after {after:?}, while TCP works: UDP to {addr} looks blocked; the gateway will use the HTTP/2 fallback if transport = auto"),
            format!("allow outbound UDP to {addr} for lower latency, or set transport = \"http2\" to skip the QUIC attempt"),
        )),
        Some(Err(cause)) => out.push(Finding::fail(
            "edge.quic",
            format!("edge over QUIC {addr}: {}", describe(&cause)),
            fix(&cause, "QUIC", addr, ca),
        )),
    }
    match tcp {
        None => {}
        Some(Ok(took)) => out.push(Finding::ok(
            "edge.tcp",
            format!("edge over TCP/TLS (HTTP/2 fallback) {tcp_addr}: mTLS handshake accepted in {took:.0?}"),
        )),
        // In auto mode with QUIC working, a broken fallback only matters if UDP breaks later.
        Some(Err(cause)) if mode == TransportMode::Auto && matches!(out.last(), Some(f) if f.verdict == super::Verdict::Ok) => {
            out.push(Finding::warn(
                "edge.tcp",
                format!("edge over TCP/TLS (HTTP/2 fallback) {tcp_addr}: {}; QUIC works, but there is no fallback if UDP gets blocked", describe(&cause)),
                fix(&cause, "TCP", tcp_addr, ca),
            ))
        }
        Some(Err(cause)) => out.push(Finding::fail(
            "edge.tcp",
            format!("edge over TCP/TLS (HTTP/2 fallback) {tcp_addr}: {}", describe(&cause)),
            fix(&cause, "TCP", tcp_addr, ca),
        )),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Verdict;

    #[test]
    fn rustls_texts_are_sorted() {
        assert!(matches!(classify_text("invalid peer certificate: UnknownIssuer"), Cause::UnknownCa(_)));
        let name = "invalid peer certificate: certificate not valid for name \"edge.test\"; certificate is only valid for localhost";
        assert!(matches!(classify_text(name), Cause::NameMismatch(_)));
        assert!(matches!(
            classify_text("invalid peer certificate: certificate expired: verification time"),
            Cause::EdgeCertDates(_)
        ));
        assert!(matches!(classify_text("something else"), Cause::Other(_)));
        let refused = DialError::Tcp(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(classify(&refused), Cause::Refused);
        let alert = DialError::Tls(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
        ));
        assert_eq!(classify(&alert), Cause::ClientCertRejected("UnknownCA".into()));
    }

    #[test]
    fn auto_mode_warns_when_only_udp_fails() {
        let t = Duration::from_secs(3);
        let blocked =
            verdicts(TransportMode::Auto, "e:1", "e:1", Some(Err(Cause::Timeout(t))), Some(Ok(Duration::ZERO)), "ca");
        assert_eq!(blocked[0].verdict, Verdict::Warn);
        assert!(blocked[0].message.contains("UDP to e:1 looks blocked"), "{}", blocked[0].message);
        let quic_only = verdicts(TransportMode::Quic, "e:1", "e:1", Some(Err(Cause::Timeout(t))), None, "ca");
        assert_eq!(quic_only.len(), 1);
        assert_eq!(quic_only[0].verdict, Verdict::Fail);
        let both =
            verdicts(TransportMode::Auto, "e:1", "e:1", Some(Err(Cause::Timeout(t))), Some(Err(Cause::Refused)), "ca");
        assert!(both.iter().all(|f| f.verdict == Verdict::Fail));
        let no_fallback =
            verdicts(TransportMode::Auto, "e:1", "e:1", Some(Ok(Duration::ZERO)), Some(Err(Cause::Refused)), "ca");
        assert_eq!(no_fallback[1].verdict, Verdict::Warn);
    }
}
