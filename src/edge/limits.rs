//! Admission caps: a total and a per-source count, each held by a guard for as long as
//! the connection it admitted needs the slot. One source cannot take every slot, so
//! others are still served while it is at its cap.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    #[error("total cap reached")]
    Total,
    #[error("per-source cap reached")]
    Source,
}

/// A total cap and a per-source cap.
#[derive(Debug)]
pub struct Gate {
    total: Arc<Semaphore>,
    per_source: usize,
    sources: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One admitted connection's slot; released on drop.
#[derive(Debug)]
pub struct Pass {
    _total: OwnedSemaphorePermit,
    source: IpAddr,
    sources: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Gate {
    pub fn new(total: usize, per_source: usize) -> Self {
        Self { total: Arc::new(Semaphore::new(total)), per_source, sources: Arc::default() }
    }

    /// Takes a slot for a connection from `ip`, or says which cap is full.
    pub fn try_enter(&self, ip: IpAddr) -> Result<Pass, Full> {
        let source = source_key(ip);
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        let n = sources.get(&source).copied().unwrap_or(0);
        if n >= self.per_source {
            return Err(Full::Source);
        }
        let permit = self.total.clone().try_acquire_owned().map_err(|_| Full::Total)?;
        sources.insert(source, n + 1);
        Ok(Pass { _total: permit, source, sources: self.sources.clone() })
    }
}

impl Drop for Pass {
    fn drop(&mut self) {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        match sources.get_mut(&self.source) {
            Some(n) if *n > 1 => *n -= 1,
            // Forget idle sources, so the map holds only sources with open connections.
            _ => {
                sources.remove(&self.source);
            }
        }
    }
}

/// What counts as one source: an IPv4 address, or an IPv6 /64 (one host usually holds a
/// whole /64, so counting single v6 addresses would be no cap at all).
fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_and_slots_come_back() {
        let gate = Gate::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let (a1, _a2) = (gate.try_enter(a).unwrap(), gate.try_enter(a).unwrap());
        assert_eq!(gate.try_enter(a).unwrap_err(), Full::Source);
        let b1 = gate.try_enter(b).unwrap();
        assert_eq!(gate.try_enter(b).unwrap_err(), Full::Total);
        drop(a1);
        let _a3 = gate.try_enter(a).unwrap();
        drop(b1);
        assert!(gate.try_enter(b).is_ok());
    }

    #[test]
    fn v6_counts_per_64_and_mapped_v4_as_v4() {
        let gate = Gate::new(10, 1);
        let _p = gate.try_enter("2001:db8::1".parse().unwrap()).unwrap();
        assert_eq!(gate.try_enter("2001:db8::ffff:2".parse().unwrap()).unwrap_err(), Full::Source);
        assert!(gate.try_enter("2001:db8:0:1::1".parse().unwrap()).is_ok());
        let _q = gate.try_enter("192.0.2.1".parse().unwrap()).unwrap();
        assert_eq!(gate.try_enter("::ffff:192.0.2.1".parse().unwrap()).unwrap_err(), Full::Source);
    }
}
