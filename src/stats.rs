//! Counters, certificate-expiry gauges, a byte-counting stream wrapper, and the Prometheus
//! text rendering they are exported with. Incrementing a counter is one atomic add; it
//! never blocks the data path.

use std::io;
use std::pin::Pin;
use std::sync::atomic::AtomicI64;
use std::task::{Context, Poll};

use prometheus_client::metrics::counter::Counter as PromCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rustls::pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A metric's label set: `(name, value)` pairs. Values are fixed words, config names or
/// numbers, never payloads or client-chosen strings.
pub type Labels = Vec<(String, String)>;

/// A label set from string pairs.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// A monotonically increasing counter, exportable to Prometheus.
#[derive(Debug, Default, Clone)]
pub struct Counter(PromCounter);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.inc();
    }
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.inc_by(n);
    }
    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.get()
    }
    /// Registers this counter (name without the `_total` suffix, which is added).
    pub fn register(&self, registry: &mut Registry, name: &str, help: &str) {
        registry.register(name, help, self.0.clone());
    }
}

/// A handle on one labelled child of a counter family (shares its value).
impl From<PromCounter> for Counter {
    fn from(c: PromCounter) -> Self {
        Self(c)
    }
}

/// `certificate_expiry_timestamp_seconds{certificate}`: when each named certificate (or
/// chain, or CA bundle) stops being usable.
#[derive(Debug, Default, Clone)]
pub struct CertExpiry(Family<Labels, Gauge<i64, AtomicI64>>);

impl CertExpiry {
    /// Sets `name` to the earliest notAfter (Unix seconds) among `certs`: a chain or a CA
    /// bundle breaks when its first certificate expires. Unparsable certificates are
    /// skipped (the config loader has already rejected those).
    pub fn set(&self, name: &str, certs: &[CertificateDer<'_>]) {
        let earliest = certs
            .iter()
            .filter_map(|c| x509_parser::parse_x509_certificate(c).ok())
            .map(|(_, parsed)| parsed.validity().not_after.timestamp())
            .min();
        if let Some(t) = earliest {
            self.0.get_or_create(&labels(&[("certificate", name)])).set(t);
        }
    }

    /// The value for `name`, if set.
    pub fn get(&self, name: &str) -> Option<i64> {
        self.0.get(&labels(&[("certificate", name)])).map(|g| g.get())
    }

    /// Registers the gauge family in `registry`.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "Certificate notAfter (Unix time); the earliest of a chain or CA bundle",
            self.0.clone(),
        );
    }
}

/// A byte stream that adds the bytes read from it to `read` and the bytes written to it
/// to `written` as they move, so long-lived streams (SSE) show up before they end.
#[derive(Debug)]
pub struct Metered<S> {
    inner: S,
    read: Counter,
    written: Counter,
}

impl<S> Metered<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, read: Counter, written: Counter) -> Self {
        Self { inner, read, written }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.read.add((buf.filled().len() - before) as u64);
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            this.written.add(n as u64);
        }
        r
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Renders a registry in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn metered_counts_each_direction_as_bytes_move() {
        let (a, mut b) = tokio::io::duplex(64);
        let (read, written) = (Counter::default(), Counter::default());
        let mut m = Metered::new(a, read.clone(), written.clone());
        m.write_all(b"hello").await.unwrap();
        assert_eq!((read.get(), written.get()), (0, 5));
        b.write_all(b"abc").await.unwrap();
        let mut buf = [0u8; 3];
        m.read_exact(&mut buf).await.unwrap();
        assert_eq!((read.get(), written.get()), (3, 5));
    }

    #[test]
    fn cert_expiry_takes_the_earliest_of_a_bundle() {
        let make = |year| {
            let mut p = rcgen::CertificateParams::new(vec!["a.test".into()]).unwrap();
            p.not_after = rcgen::date_time_ymd(year, 1, 1);
            p.self_signed(&rcgen::KeyPair::generate().unwrap()).unwrap().der().clone()
        };
        let expiry = CertExpiry::default();
        expiry.set("ca", &[make(2040), make(2031)]);
        assert_eq!(expiry.get("ca"), Some(1_924_992_000)); // 2031-01-01T00:00:00Z
        expiry.set("none", &[]);
        assert_eq!(expiry.get("none"), None);
    }
}
