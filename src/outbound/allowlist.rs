//! Which upstream addresses the gateway may connect to. Checked on the *resolved*
//! address at connect time, so a DNS name cannot smuggle a request to cloud metadata
//! (169.254.169.254) or the public internet.

use std::net::IpAddr;

use ipnet::IpNet;

/// A list of networks; an address is allowed when any contains it.
#[derive(Debug, Clone)]
pub struct AllowList {
    nets: Vec<IpNet>,
}

/// The default: loopback, RFC 1918 and IPv6 unique-local. Link-local (cloud metadata)
/// and public addresses are refused unless an operator lists them.
pub const DEFAULT_NETWORKS: &[&str] =
    &["127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"];

impl AllowList {
    /// An explicit list.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self { nets }
    }

    /// [`DEFAULT_NETWORKS`].
    pub fn default_private() -> Self {
        Self { nets: DEFAULT_NETWORKS.iter().filter_map(|n| n.parse().ok()).collect() }
    }

    /// Whether a resolved address may be connected to.
    pub fn allows(&self, addr: IpAddr) -> bool {
        // An IPv4-mapped IPv6 address is judged as the IPv4 address it carries.
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        self.nets.iter().any(|n| n.contains(&addr))
    }

    /// The configured networks, for logs and `doctor`.
    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_allow_private_and_refuse_the_rest() {
        let a = AllowList::default_private();
        assert_eq!(a.networks().len(), DEFAULT_NETWORKS.len());
        for ok in ["127.0.0.1", "10.1.2.3", "172.31.0.1", "192.168.1.1", "::1", "fd00::1", "::ffff:10.0.0.1"] {
            assert!(a.allows(ok.parse().unwrap()), "{ok}");
        }
        for no in
            ["169.254.169.254", "fe80::1", "8.8.8.8", "172.32.0.1", "2001:db8::1", "::ffff:169.254.169.254", "0.0.0.0"]
        {
            assert!(!a.allows(no.parse().unwrap()), "{no}");
        }
    }

    #[test]
    fn explicit_list_replaces_defaults() {
        let a = AllowList::new(vec!["169.254.0.0/16".parse().unwrap()]);
        assert!(a.allows("169.254.1.1".parse().unwrap()));
        assert!(!a.allows("127.0.0.1".parse().unwrap()));
    }
}
