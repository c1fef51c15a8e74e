//! A TCP relay in front of the edge's HTTP/2 port that can be switched into a black hole:
//! connections stay open but no byte gets through either way (a partition, not a reset).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Starts the relay towards `target`, initially forwarding. Returns its address and the
/// switch (`true` = forward, `false` = swallow every byte).
pub async fn gate(target: SocketAddr) -> (SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind TCP gate");
    let addr = listener.local_addr().expect("gate addr");
    let open = Arc::new(AtomicBool::new(true));
    let is_open = open.clone();
    tokio::spawn(async move {
        while let Ok((front, _)) = listener.accept().await {
            let Ok(back) = TcpStream::connect(target).await else { continue };
            let (front_rd, front_wr) = front.into_split();
            let (back_rd, back_wr) = back.into_split();
            tokio::spawn(pipe(front_rd, back_wr, is_open.clone()));
            tokio::spawn(pipe(back_rd, front_wr, is_open.clone()));
        }
    });
    (addr, open)
}

/// Copies `from` to `to` while the gate is open; drops what arrives while it is closed.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    open: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 65_536];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        if open.load(Ordering::Relaxed) && to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
}
