//! The peers the tunnel is compared with, as configured by the bench: nginx as a
//! TLS-terminating reverse proxy (the TLS floor, and the inner-TLS terminator behind
//! rathole), and rathole with its TLS transport. `scripts/install-bench-peers.sh`
//! installs both; a missing one is skipped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// nginx, from PATH or Debian's location.
pub fn find_nginx() -> Option<PathBuf> {
    find_in_path("nginx").or_else(|| Some(PathBuf::from("/usr/sbin/nginx")).filter(|p| p.exists()))
}

/// rathole: `$BENCH_RATHOLE`, then where the install script puts it, then PATH.
pub fn find_rathole() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BENCH_RATHOLE").map(PathBuf::from).filter(|p| p.exists()) {
        return Some(p);
    }
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("BENCH_PEERS_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        dirs.push(PathBuf::from(d).join("bench-peers"));
    }
    // The bench runs from <target>/release/examples/bench.
    if let Some(target) = std::env::current_exe().ok().and_then(|e| Some(e.parent()?.parent()?.parent()?.to_owned())) {
        dirs.push(target.join("bench-peers"));
    }
    dirs.push(PathBuf::from("target/bench-peers"));
    dirs.into_iter().map(|d| d.join("bin/rathole")).find(|p| p.exists()).or_else(|| find_in_path("rathole"))
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(name)).find(|p| p.is_file())
}

/// nginx config: TLS 1.3 on `listen` with the inner certificate, proxying to `upstream`
/// over kept-alive HTTP/1.1, no buffering (SSE), everything under `dir`.
pub fn nginx_conf(dir: &Path, listen: SocketAddr, upstream: SocketAddr, cert: &Path, key: &Path) -> String {
    let d = dir.display();
    format!(
        r#"# Written by examples/bench.
daemon off;
master_process on;
worker_processes 2;
worker_rlimit_nofile 65536;
pid {d}/nginx.pid;
error_log {d}/nginx-error.log warn;
events {{ worker_connections 30000; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    upstream mcp {{
        server {upstream};
        keepalive 512;
    }}
    server {{
        listen {listen} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.3;
        keepalive_requests 10000000;
        keepalive_timeout 600s;
        location / {{
            proxy_pass http://mcp;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 600s;
        }}
    }}
}}
"#,
        cert = cert.display(),
        key = key.display(),
    )
}

/// rathole server (the edge's place): TLS transport on `control`, the public service on
/// `public`.
pub fn rathole_server(control: SocketAddr, public: SocketAddr, pkcs12: &Path) -> String {
    format!(
        r#"[server]
bind_addr = "{control}"
[server.transport]
type = "tls"
[server.transport.tls]
pkcs12 = "{p12}"
pkcs12_password = "bench"
[server.services.mcp]
token = "bench-token"
bind_addr = "{public}"
nodelay = true
"#,
        p12 = pkcs12.display()
    )
}

/// rathole client (the connector's place): dials `control` over TLS trusting `ca`,
/// forwards the service to `local` (nginx terminating the inner TLS).
pub fn rathole_client(control: SocketAddr, local: SocketAddr, ca: &Path) -> String {
    format!(
        r#"[client]
remote_addr = "{control}"
[client.transport]
type = "tls"
[client.transport.tls]
trusted_root = "{ca}"
hostname = "localhost"
[client.services.mcp]
token = "bench-token"
local_addr = "{local}"
nodelay = true
"#,
        ca = ca.display()
    )
}

/// PKCS#12 bundle of the edge certificate and key (rathole's native-tls server wants
/// one), made with the openssl CLI.
pub fn pkcs12(cert: &Path, key: &Path, out: &Path) -> Result<(), String> {
    let status = std::process::Command::new("openssl")
        .args(["pkcs12", "-export", "-passout", "pass:bench", "-out"])
        .arg(out)
        .arg("-inkey")
        .arg(key)
        .arg("-in")
        .arg(cert)
        .status()
        .map_err(|e| format!("openssl: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("openssl pkcs12 failed: {status}"))
    }
}
