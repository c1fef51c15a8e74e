//! A UDP relay in front of the edge's QUIC port that can be switched between dropping
//! every datagram (a firewall blocking UDP) and forwarding them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;

/// Starts the relay towards `target`, initially blocking. Returns its address and the
/// switch (`true` = forward).
pub async fn gate(target: SocketAddr) -> (SocketAddr, Arc<AtomicBool>) {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind gate"));
    let addr = front.local_addr().expect("gate addr");
    let open = Arc::new(AtomicBool::new(false));
    let is_open = open.clone();
    tokio::spawn(async move {
        let mut backs: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = front.recv_from(&mut buf).await {
            if !is_open.load(Ordering::Relaxed) {
                continue;
            }
            let back = match backs.get(&from) {
                Some(b) => b.clone(),
                None => {
                    let Ok(b) = UdpSocket::bind("127.0.0.1:0").await else { continue };
                    let b = Arc::new(b);
                    if b.connect(target).await.is_err() {
                        continue;
                    }
                    // Replies from the edge go back to this client through the front socket.
                    let (reply, front, gate_open) = (b.clone(), front.clone(), is_open.clone());
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 65_536];
                        while let Ok(n) = reply.recv(&mut buf).await {
                            if gate_open.load(Ordering::Relaxed) {
                                let _ = front.send_to(&buf[..n], from).await;
                            }
                        }
                    });
                    backs.insert(from, b.clone());
                    b
                }
            };
            let _ = back.send(&buf[..n]).await;
        }
    });
    (addr, open)
}
