//! A recording TCP relay in front of the edge's public port: it captures exactly the
//! bytes the edge receives from and sends to a client, in each direction.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Captured bytes: (client → edge, edge → client).
pub type Capture = Arc<Mutex<(Vec<u8>, Vec<u8>)>>;

/// Starts the relay; returns its address and the capture.
pub async fn start(target: SocketAddr) -> (SocketAddr, Capture) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind tap");
    let addr = listener.local_addr().expect("tap addr");
    let capture: Capture = Arc::default();
    let cap = capture.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(edge) = TcpStream::connect(target).await else { continue };
            let (cr, cw) = client.into_split();
            let (er, ew) = edge.into_split();
            tokio::spawn(pump(cr, ew, cap.clone(), true));
            tokio::spawn(pump(er, cw, cap.clone(), false));
        }
    });
    (addr, capture)
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cap: Capture,
    up: bool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        {
            let mut c = cap.lock().expect("capture lock");
            if up { &mut c.0 } else { &mut c.1 }.extend_from_slice(&buf[..n]);
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

/// Whether `needle` occurs anywhere in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}
