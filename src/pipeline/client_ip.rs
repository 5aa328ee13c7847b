//! The client's IP (SPEC §3.2): the peer, or the right-most untrusted `X-Forwarded-For` entry
//! when the peer is a trusted proxy.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// The proxies whose `X-Forwarded-For` is believed (`trusted_proxies`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Trusts the given networks.
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    /// Whether `ip` belongs to a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client IP of a request from `peer` with `headers`.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.resolve(peer, headers).0
    }

    /// The client IP of a request from `peer` with `headers`, and whether `peer` is a trusted
    /// proxy.
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> (IpAddr, bool) {
        let peer = canonical(peer);
        if self.0.is_empty() || !self.contains(peer) {
            return (peer, false);
        }
        (self.walk_chain(peer, headers), true)
    }

    fn walk_chain(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer;
        // Walk the chain from the right: the first address that is not a trusted proxy is the
        // client; garbage ends the walk (what is left of it cannot be believed).
        for value in headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(text) = value.to_str() else {
                return client;
            };
            for entry in text.rsplit(',') {
                match entry.trim().parse::<IpAddr>() {
                    Ok(ip) => {
                        let ip = canonical(ip);
                        client = ip;
                        if !self.contains(ip) {
                            return ip;
                        }
                    }
                    Err(_) => return client,
                }
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses as IPv4, so that `10.0.0.0/8` matches `::ffff:10.1.2.3`.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().expect("net")]);
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
        assert_eq!(
            trusted.client_ip(ip("192.0.2.1"), &headers),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn trusted_peer_yields_rightmost_untrusted_entry() {
        let trusted = TrustedProxies::new(vec!["10.0.0.0/8".parse().expect("net")]);
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("6.6.6.6, 203.0.113.9, 10.0.0.2"),
        );
        assert_eq!(
            trusted.client_ip(ip("10.0.0.1"), &headers),
            ip("203.0.113.9")
        );
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("junk, 10.0.0.2"),
        );
        assert_eq!(trusted.client_ip(ip("10.0.0.1"), &headers), ip("10.0.0.2"));
        assert_eq!(
            trusted.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }
}
