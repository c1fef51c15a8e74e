//! Regenerates the seed corpora in `fuzz/corpus/{frame_decode,sni_peek}/`:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example gen_corpus
//! ```
//!
//! Frames come from `frame::encode` (plus hand-made broken ones); ClientHellos from a real
//! rustls client (fresh, resumed, 0-RTT, TLS 1.2/1.3 only, ALPN, fragmented, IP address)
//! and, when the `openssl` binary is installed, from `openssl s_client`. ClientHellos carry
//! random bytes, so regenerating changes the files; commit only when seeds are missing.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mcp_tunnel::edge::sni::parse_sni;
use mcp_tunnel::pki::{self, PkiOptions};
use mcp_tunnel::protocol::{Control, Open, RejectCode, MAX_FRAME_LEN};
use mcp_tunnel::tls::{configs, provider};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, ServerConfig, ServerConnection, SupportedProtocolVersion};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    frames(&root.join("frame_decode"));
    hellos(&root.join("sni_peek"));
}

fn save(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    println!("{:>6} bytes  {}", bytes.len(), path.display());
}

fn raw_frame(json: &[u8]) -> Vec<u8> {
    let mut out = (json.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(json);
    out
}

fn frames(dir: &Path) {
    let enc = |m: &dyn erased::Ser| m.encode();
    let open4 = Open {
        stream_id: 7,
        sni: "tickets.mcp.acme.example".into(),
        client_addr: "203.0.113.9:51234".parse().unwrap(),
    };
    let open6 = Open { stream_id: u64::MAX, sni: "a.test".into(), client_addr: "[2001:db8::1]:443".parse().unwrap() };
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("control_hello", enc(&Control::Hello { protocol: 1, gateway_version: "0.1.0".into(), connection_index: 0 })),
        (
            "control_welcome",
            enc(&Control::Welcome {
                tunnel_id: "acme".into(),
                hostnames: vec!["*.mcp.acme.example".into(), "mcp.acme.example".into(), "exact.other.test".into()],
                connection_id: 42,
            }),
        ),
        (
            "control_reject_unknown_tunnel",
            enc(&Control::Reject { code: RejectCode::UnknownTunnel, reason: "no tunnel 'x'".into() }),
        ),
        (
            "control_reject_unsupported_version",
            enc(&Control::Reject { code: RejectCode::UnsupportedVersion, reason: "protocol 2".into() }),
        ),
        ("control_reject_bad_hello", enc(&Control::Reject { code: RejectCode::BadHello, reason: String::new() })),
        ("control_reject_other", enc(&Control::Reject { code: RejectCode::Other, reason: "other".into() })),
        ("control_drain", enc(&Control::Drain { grace_ms: 30_000 })),
        ("control_unknown", enc(&Control::Unknown)),
        ("control_future_type", raw_frame(br#"{"type":"from_the_future","x":[1,{"y":null}],"z":1.5e3}"#)),
        (
            "control_reject_future_code_extra_fields",
            raw_frame(br#"{"reason":"x","extra":{"a":[]},"type":"reject","code":"new_reason"}"#),
        ),
        (
            "control_escapes",
            raw_frame(br#"{"type":"hello","protocol":1,"gateway_version":"\u00e9\ud83d\ude00\n\"\\\/","connection_index":4294967295}"#),
        ),
        ("open_v4", enc(&open4)),
        ("open_v6", enc(&open6)),
        ("open_then_raw_tls", [enc(&open4), vec![0x16, 3, 1, 0, 5, 1, 0, 0, 1, 0]].concat()),
        ("two_frames", [enc(&Control::Drain { grace_ms: 1 }), enc(&Control::Unknown)].concat()),
        ("truncated_body", enc(&open4)[..20].to_vec()),
        ("truncated_header", vec![0, 0, 1]),
        ("oversized", [(MAX_FRAME_LEN as u32 + 1).to_be_bytes().to_vec(), b"{}".to_vec()].concat()),
        ("max_length_prefix", vec![0xff, 0xff, 0xff, 0xff, b'{']),
        ("empty_body", vec![0, 0, 0, 0]),
        ("malformed_json", raw_frame(b"{\"type\":\"hello\",\"protocol\":-1,")),
        ("wrong_types", raw_frame(br#"{"stream_id":"7","sni":1,"client_addr":"not an address"}"#)),
    ];
    for (name, bytes) in seeds {
        save(dir, name, &bytes);
    }
}

/// `Control` and `Open` behind one object type, so the seed table stays a table.
mod erased {
    pub trait Ser {
        fn encode(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Ser for T {
        fn encode(&self) -> Vec<u8> {
            mcp_tunnel::protocol::frame::encode(self, mcp_tunnel::protocol::MAX_FRAME_LEN).unwrap()
        }
    }
}

fn client_config(
    ca: &CertificateDer<'static>,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(configs::roots(std::slice::from_ref(ca), "CA").unwrap())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.enable_early_data = true;
    Arc::new(config)
}

fn first_flight(config: &Arc<ClientConfig>, name: &str, early: Option<&[u8]>) -> Vec<u8> {
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let mut conn = ClientConnection::new(config.clone(), name).unwrap();
    if let (Some(data), Some(mut ed)) = (early, conn.early_data()) {
        ed.write_all(data).unwrap();
    }
    let mut out = Vec::new();
    while conn.wants_write() {
        conn.write_tls(&mut out).unwrap();
    }
    out
}

/// A full in-memory handshake (and the session tickets after it), so the client's
/// resumption store holds a session for `name`.
fn handshake(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>, name: &str) {
    let mut c = ClientConnection::new(client.clone(), ServerName::try_from(name.to_owned()).unwrap()).unwrap();
    let mut s = ServerConnection::new(server.clone()).unwrap();
    for _ in 0..20 {
        let mut buf = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut buf).unwrap();
        }
        s.read_tls(&mut &buf[..]).unwrap();
        s.process_new_packets().unwrap();
        let mut buf = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut buf).unwrap();
        }
        c.read_tls(&mut &buf[..]).unwrap();
        c.process_new_packets().unwrap();
        if !c.is_handshaking() && !s.is_handshaking() && !s.wants_write() && !c.wants_write() {
            return;
        }
    }
    panic!("in-memory handshake did not finish");
}

/// Re-frames the handshake bytes of a single-record ClientHello into records of at most
/// `size` bytes.
fn fragment(hello: &[u8], size: usize) -> Vec<u8> {
    let len = u16::from_be_bytes([hello[3], hello[4]]) as usize;
    let body = &hello[5..5 + len];
    let mut out = Vec::new();
    for piece in body.chunks(size) {
        out.extend_from_slice(&[0x16, hello[1], hello[2]]);
        out.extend_from_slice(&(piece.len() as u16).to_be_bytes());
        out.extend_from_slice(piece);
    }
    out.extend_from_slice(&hello[5 + len..]);
    out
}

fn hellos(dir: &Path) {
    let pki = pki::generate(&PkiOptions {
        tunnel_id: "acme".into(),
        tunnel_domain: "mcp.acme.example".into(),
        edge_names: vec!["edge.test".into()],
    })
    .unwrap();
    let ca = pki.inner_ca.cert_der.clone();
    let identity = pki.inner_server.identity("generated");
    let server = |versions: &[&'static SupportedProtocolVersion]| {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(versions)
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(identity.chain.clone(), identity.key.der())
            .unwrap();
        config.max_early_data_size = 4096;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Arc::new(config)
    };
    let both = rustls::DEFAULT_VERSIONS;
    let tls12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
    let tls13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let alpn: &[&[u8]] = &[b"h2", b"http/1.1"];
    let host = "tickets.mcp.acme.example";

    save(dir, "rustls_plain", &first_flight(&client_config(&ca, both, &[]), "a.test", None));
    save(
        dir,
        "rustls_mixed_case_alpn",
        &first_flight(&client_config(&ca, both, alpn), "Tickets.MCP.Acme.Example", None),
    );
    save(dir, "rustls_tls13_only", &first_flight(&client_config(&ca, tls13, alpn), host, None));
    save(dir, "rustls_tls12_only", &first_flight(&client_config(&ca, tls12, &[]), host, None));
    let long = format!("{}.{}.{}.{}", "a".repeat(63), "b".repeat(63), "c".repeat(63), "d".repeat(61));
    assert_eq!(long.len(), 253);
    save(dir, "rustls_long_name", &first_flight(&client_config(&ca, both, &[]), &long, None));
    save(dir, "rustls_ip_no_sni", &first_flight(&client_config(&ca, both, alpn), "192.0.2.1", None));

    // Resumption: TLS 1.3 PSK (with 0-RTT data right behind the hello) and TLS 1.2.
    let client13 = client_config(&ca, tls13, alpn);
    handshake(&client13, &server(tls13), host);
    let resumed = first_flight(&client13, host, Some(b"GET /mcp HTTP/1.1\r\nHost: tickets\r\n\r\n"));
    save(dir, "rustls_tls13_psk_early_data", &resumed);
    let client12 = client_config(&ca, tls12, &[]);
    handshake(&client12, &server(tls12), host);
    save(dir, "rustls_tls12_resumption", &first_flight(&client12, host, None));

    let plain = first_flight(&client_config(&ca, both, alpn), host, None);
    save(dir, "rustls_fragmented_3_records", &fragment(&plain, plain.len().div_ceil(3)));
    save(dir, "rustls_fragmented_16_byte_records", &fragment(&plain, 16));
    let mut trailing = plain.clone();
    trailing.extend_from_slice(&[0x14, 3, 3, 0, 1, 1, 0x17, 3, 3, 0, 3, 1, 2, 3]);
    save(dir, "rustls_then_ccs_and_data", &trailing);
    save(dir, "rustls_truncated", &plain[..plain.len() / 2]);
    let mut server_hello = plain.clone();
    server_hello[5] = 2; // handshake type ServerHello
    save(dir, "not_a_client_hello", &server_hello);
    save(dir, "not_tls_http", b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n");
    save(dir, "alert_record", &[21, 3, 3, 0, 2, 2, 40]);

    for (name, args) in [
        ("openssl_alpn", &["-servername", "openssl.example.com", "-alpn", "h2,http/1.1"][..]),
        ("openssl_tls12", &["-servername", "Legacy.Example.COM", "-tls1_2"][..]),
    ] {
        match openssl_hello(args) {
            Some(hello) => save(dir, name, &hello),
            None => println!("skipped {name}: no openssl binary or no ClientHello"),
        }
    }
}

/// Captures the ClientHello `openssl s_client` sends to a local listener.
fn openssl_hello(args: &[&str]) -> Option<Vec<u8>> {
    let listener = TcpListener::bind("127.0.0.1:0").ok()?;
    let addr = listener.local_addr().ok()?;
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let (mut sock, _) = listener.accept().ok()?;
    sock.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(5);
    let result = loop {
        if Instant::now() > deadline {
            break None;
        }
        match sock.read(&mut chunk) {
            Ok(0) | Err(_) => break None,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
        }
        match parse_sni(&bytes) {
            Ok(Some(_)) => break Some(bytes),
            Ok(None) => continue,
            Err(e) => {
                eprintln!("openssl hello did not parse: {e}");
                break None;
            }
        }
    };
    drop(sock);
    let _ = child.kill();
    let _ = child.wait();
    result
}
