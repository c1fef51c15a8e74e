//! Why a connection to the edge failed, worded for an operator: a TLS alert from the edge
//! reads the same whether it arrived during the handshake or just after it.

use std::time::Duration;

use crate::protocol::FrameError;

/// Why one connection attempt or connection ended.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("cannot resolve edge address {address}: {detail}")]
    Resolve { address: String, detail: String },
    #[error("cannot open a local UDP socket: {0}")]
    Bind(std::io::Error),
    #[error("cannot start QUIC connection: {0}")]
    Connect(#[from] quinn::ConnectError),
    #[error("QUIC/TLS handshake with the edge failed: {}", describe_close(.0))]
    Handshake(#[from] quinn::ConnectionError),
    #[error("TCP connect to the edge failed: {0}")]
    Tcp(std::io::Error),
    #[error("TLS handshake with the edge failed: {0}")]
    Tls(std::io::Error),
    #[error("HTTP/2: {0}")]
    H2(#[from] h2::Error),
    #[error("edge did not answer within {0:?}")]
    Timeout(Duration),
    #[error("control stream: {0}")]
    Control(#[from] FrameError),
    #[error("edge rejected the tunnel: {0}")]
    Rejected(String),
    #[error("edge answered Hello with {0}")]
    Unexpected(String),
    #[error("edge closed the connection: {0}")]
    Closed(String),
}

impl DialError {
    /// A fixed word for the `tunnel_dial_errors_total{kind}` metric.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Resolve { .. } => "resolve",
            Self::Bind(_) => "bind",
            Self::Connect(_) | Self::Tcp(_) => "connect",
            Self::Handshake(_) | Self::Tls(_) => "handshake",
            Self::H2(_) => "http2",
            Self::Timeout(_) => "timeout",
            Self::Control(_) | Self::Unexpected(_) => "protocol",
            Self::Rejected(_) => "rejected",
            Self::Closed(_) => "closed",
        }
    }

    /// Failures that say "UDP does not get through", as opposed to a refusal.
    pub(super) fn udp_looks_blocked(&self) -> bool {
        matches!(
            self,
            Self::Timeout(_)
                | Self::Bind(_)
                | Self::Handshake(quinn::ConnectionError::TimedOut | quinn::ConnectionError::Reset)
        )
    }
}

/// Explains a connection close, naming the TLS alert when the edge sent one. With TLS 1.3
/// client auth the edge judges our certificate around the end of our handshake, so its
/// verdict can arrive either as a handshake failure or as the first close.
pub fn describe_close(err: &quinn::ConnectionError) -> String {
    use rustls::AlertDescription as A;
    if let quinn::ConnectionError::ConnectionClosed(close) = err {
        let code = u64::from(close.error_code);
        if (0x100..0x200).contains(&code) {
            let alert = A::from((code - 0x100) as u8);
            let about_our_certificate = matches!(
                alert,
                A::BadCertificate
                    | A::UnsupportedCertificate
                    | A::CertificateRevoked
                    | A::CertificateExpired
                    | A::CertificateUnknown
                    | A::UnknownCA
                    | A::DecryptError
                    | A::AccessDenied
                    | A::CertificateRequired
            );
            return if about_our_certificate {
                format!(
                    "TLS alert {alert:?}: the edge refused this gateway's client certificate \
                     (is it issued by the edge's tunnel CA and still valid?)"
                )
            } else {
                format!("TLS alert {alert:?} from the edge")
            };
        }
    }
    err.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer_alert(alert: u8) -> quinn::ConnectionError {
        quinn::ConnectionError::ConnectionClosed(quinn::ConnectionClose {
            error_code: quinn::TransportErrorCode::crypto(alert),
            frame_type: None,
            reason: bytes::Bytes::from_static(b"invalid peer certificate"),
        })
    }

    #[test]
    fn a_certificate_alert_from_the_edge_reads_the_same_during_and_after_the_handshake() {
        // 51 = decrypt_error (a certificate signed by another CA of the same name),
        // 48 = unknown_ca.
        for alert in [51, 48, 42] {
            let during = DialError::Handshake(peer_alert(alert)).to_string();
            let after = DialError::Closed(describe_close(&peer_alert(alert))).to_string();
            for text in [&during, &after] {
                assert!(text.contains("refused this gateway's client certificate"), "{text}");
            }
        }
        let other = DialError::Handshake(peer_alert(120)).to_string();
        assert!(other.contains("NoApplicationProtocol") && !other.contains("certificate"), "{other}");
    }
}
