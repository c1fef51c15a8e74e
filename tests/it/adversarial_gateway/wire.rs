//! Attacks in raw bytes on the wire: slow bodies, spoofed forwarding headers, and early
//! refusals that must reach real clients (httpx, curl) over both HTTP versions.

use super::*;

/// A raw HTTP/1.1 connection through the edge (inner TLS), for bytes no client library sends.
async fn raw_tls(stack: &Stack, route: &str) -> TlsStream<TcpStream> {
    http::tls(stack.public, &format!("{route}.{DOMAIN}"), &stack.inner_ca()).await.expect("inner TLS")
}

/// Reads until the status line arrives (or the peer closes), within `limit`.
async fn status_line(conn: &mut TlsStream<TcpStream>, limit: Duration) -> Option<String> {
    let mut buf = Vec::new();
    let read = async {
        let mut chunk = [0u8; 1024];
        while !buf.windows(2).any(|w| w == b"\r\n") {
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()?;
    String::from_utf8_lossy(&buf).lines().next().map(str::to_owned)
}

/// Item 4: slow bodies. Clients that declare a body and trickle it hold no concurrency
/// slot (a normal client is served at once) and are answered 408 at `body_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_bodies_hold_no_slot_and_get_408_at_the_deadline() {
    let rec = Recorder::start().await;
    let routes = format!(
        "[[routes]]\nhost = \"rec\"\nupstream = \"{}\"\n[routes.limits]\nmax_concurrent = 2\nbody_timeout = \"2s\"\n",
        rec.url()
    );
    let stack = Stack::start(&routes).await;
    let host = format!("rec.{DOMAIN}");
    let mut slow = Vec::new();
    for _ in 0..6 {
        let mut conn = raw_tls(&stack, "rec").await;
        let head = format!(
            "POST /mcp HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\ncontent-length: 100000\r\n\r\n{{"
        );
        conn.write_all(head.as_bytes()).await.expect("write");
        conn.flush().await.expect("flush");
        slow.push(conn);
    }
    let started = Instant::now();
    // Six bodies in progress on a two-slot route: the normal client is still served.
    let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
    for _ in 0..3 {
        let resp = send(&stack, "rec", http::mcp_post(&host, ping)).await;
        assert_eq!(resp.status(), 200, "{}", text(&resp));
    }
    assert!(started.elapsed() < Duration::from_secs(2), "normal clients waited for the slow bodies");
    // One more byte per connection does not extend the deadline.
    for conn in &mut slow {
        conn.write_all(b" ").await.expect("write");
    }
    for conn in &mut slow {
        let line = status_line(conn, Duration::from_secs(10)).await;
        assert_eq!(line.as_deref(), Some("HTTP/1.1 408 Request Timeout"));
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1900) && waited < Duration::from_secs(6), "408 after {waited:?}");
    assert_eq!(rec.seen().len(), 3, "only the complete requests went upstream");
}

/// Item 10: client-sent forwarding headers are replaced, not passed or extended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarding_headers_are_replaced() {
    let rec = Recorder::start().await;
    let stack = Stack::start(&format!("[[routes]]\nhost = \"rec\"\nupstream = \"{}\"\n", rec.url())).await;
    let host = format!("rec.{DOMAIN}");
    let mut req = http::mcp_post(&host, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#);
    for (name, value) in [
        ("forwarded", "for=10.9.9.9;proto=http"),
        ("x-real-ip", "10.9.9.9"),
        ("x-forwarded-for", "10.9.9.9"),
        ("x-forwarded-host", "admin.internal"),
        ("x-forwarded-proto", "http"),
    ] {
        req.headers_mut().append(name, value.parse().expect("header"));
    }
    assert_eq!(send(&stack, "rec", req).await.status(), 200);
    let seen = rec.seen();
    let h = &seen[0].headers;
    let all = |name: &str| h.get_all(name).iter().map(|v| v.to_str().unwrap_or("?").to_owned()).collect::<Vec<_>>();
    assert_eq!(all("x-real-ip"), ["127.0.0.1"]);
    assert_eq!(all("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(all("x-forwarded-host"), std::slice::from_ref(&host));
    assert_eq!(all("x-forwarded-proto"), ["https"]);
    assert_eq!(all("forwarded"), [format!("for=127.0.0.1;proto=https;host=\"{host}\"")]);
    assert!(!format!("{h:?}").contains("10.9.9.9"), "{h:?}");
}

/// `raw_post.py` (httpx2, the SDK's HTTP client) against `url`: its JSON line.
async fn httpx_post(stack: &Stack, url: &str, size: usize, headers: &[&str]) -> Value {
    let host = url.split("://").nth(1).and_then(|r| r.split(':').next()).expect("host");
    let mut cmd = tokio::process::Command::new(common::python::python());
    cmd.arg(common::python::root().join("tests/py/raw_post.py"))
        .args(["--url", url, "--ca"])
        .arg(stack.inner_ca_path())
        .args(["--resolve", &format!("{host}=127.0.0.1"), "--size", &size.to_string()]);
    for h in headers {
        cmd.args(["--header", h]);
    }
    let out = tokio::time::timeout(Duration::from_secs(60), cmd.kill_on_drop(true).output())
        .await
        .expect("raw_post.py within 60 s")
        .expect("run raw_post.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("raw_post.py printed no JSON: {stdout} {}", String::from_utf8_lossy(&out.stderr)))
}

/// `curl` over `version` (`--http1.1` or `--http2`): (HTTP status, body).
async fn curl_post(
    stack: &Stack,
    url: &str,
    version: &str,
    body: &std::path::Path,
    headers: &[&str],
) -> (String, String) {
    let host = url.split("://").nth(1).and_then(|r| r.split(':').next()).expect("host");
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-sS", version, "--max-time", "30", "--cacert"])
        .arg(stack.inner_ca_path())
        .args(["--resolve", &format!("{host}:{}:127.0.0.1", stack.public.port())])
        .args(["-H", "content-type: application/json", "-o", "-", "-w", "\n%{http_code}", "--data-binary"])
        .arg(format!("@{}", body.display()));
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(url).kill_on_drop(true).output().await.expect("run curl");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    // curl 7.88 over HTTP/2 may stop its upload once it has the error status, ending the
    // stream short of its Content-Length; h2 must then reset it as malformed, and curl
    // reports that (exit 92) after it received the status. The refusal reached the client;
    // any other failure, or exit 92 without a status, fails the test.
    let short_upload = version == "--http2" && out.status.code() == Some(92) && stderr.contains("PROTOCOL_ERROR");
    assert!(out.status.success() || (short_upload && code != "000"), "curl {version} {url} failed: {stderr} {stdout}");
    (code.to_owned(), body.to_owned())
}

/// Item 9: an answer given before the body is read (413, 401, 404) reaches clients that
/// send the whole body first: httpx2 (the SDK's client) and curl over HTTP/1.1 and HTTP/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn early_refusals_reach_httpx_and_curl_over_both_http_versions() {
    if std::process::Command::new("curl").arg("--version").output().is_err() {
        panic!("curl is required by this test (Debian package curl)");
    }
    let rec = Recorder::start().await;
    let token = mcp_tunnel::auth::generate_token().expect("token");
    let hash = mcp_tunnel::auth::hash_token(&token);
    let routes = format!(
        "[[routes]]\nhost = \"rec\"\nupstream = \"{0}\"\n\
         [[routes]]\nhost = \"login\"\nupstream = \"{0}\"\n\
         [routes.auth]\nmode = \"bearer\"\ntokens = [{{ name = \"ci\", hash = \"{hash}\" }}]\n",
        rec.url()
    );
    let stack = Stack::start(&routes).await;
    let port = stack.public.port();
    let big = 20 << 20;
    let file = stack.dir.path().join("big.json");
    std::fs::write(&file, vec![b'x'; big]).expect("write body");
    let cases = [
        (format!("https://rec.{DOMAIN}:{port}/mcp"), 413, "body_too_large"),
        (format!("https://login.{DOMAIN}:{port}/mcp"), 401, "missing_token"),
        (format!("https://nothing.{DOMAIN}:{port}/mcp"), 404, "no_route"),
    ];
    for (url, status, code) in &cases {
        let out = httpx_post(&stack, url, big, &[]).await;
        assert_eq!(out["status"], *status, "httpx2 {url}: {out}");
        assert_eq!(out["body"]["error"], *code, "{url}: {out}");
        for version in ["--http1.1", "--http2"] {
            let (got, body) = curl_post(&stack, url, version, &file, &[]).await;
            assert_eq!(got, status.to_string(), "curl {version} {url}: {body}");
        }
    }
    // The normal client, on the same connection kinds, still gets through.
    let small = stack.dir.path().join("ping.json");
    std::fs::write(&small, r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#).expect("write");
    for version in ["--http1.1", "--http2"] {
        let auth = format!("authorization: Bearer {token}");
        let (got, body) = curl_post(&stack, &cases[1].0, version, &small, &[&auth]).await;
        assert_eq!(got, "200", "{version}: {body}");
    }
    assert_eq!(rec.seen().len(), 2, "only the two authenticated pings went upstream");
}
