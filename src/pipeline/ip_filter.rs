//! `ip_filter` (SPEC §3.2): allow and deny lists of client networks; deny wins; 403.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{ErrorKind, GatewayError};

/// The compiled `ip_filter` step.
#[derive(Debug, Clone, Default)]
pub struct IpFilter {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl IpFilter {
    /// A filter admitting `allow` (everyone when empty) except `deny`.
    pub fn new(allow: Vec<IpNet>, deny: Vec<IpNet>) -> Self {
        Self { allow, deny }
    }

    /// Whether `ip` (the resolved client IP) may pass.
    pub fn admits(&self, ip: IpAddr) -> bool {
        let ip = super::client_ip::canonical(ip);
        if self.deny.iter().any(|net| net.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|net| net.contains(&ip))
    }

    /// `Ok` when `ip` may pass, else the 403.
    pub fn check(&self, ip: IpAddr) -> Result<(), GatewayError> {
        if self.admits(ip) {
            Ok(())
        } else {
            Err(GatewayError::new(
                ErrorKind::Forbidden,
                "requests from this address are not allowed",
            )
            .with_cause(format!("ip_filter refused {ip}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("net")).collect()
    }

    #[test]
    fn deny_wins_over_allow() {
        let filter = IpFilter::new(nets(&["203.0.113.0/24"]), nets(&["203.0.113.7/32"]));
        assert!(filter.admits("203.0.113.8".parse().expect("ip")));
        assert!(!filter.admits("203.0.113.7".parse().expect("ip")));
        assert!(!filter.admits("198.51.100.1".parse().expect("ip")));
        assert!(filter.admits("::ffff:203.0.113.9".parse().expect("ip")));
    }

    #[test]
    fn empty_allow_admits_all_but_denied() {
        let filter = IpFilter::new(vec![], nets(&["10.0.0.0/8"]));
        assert!(filter.admits("192.0.2.1".parse().expect("ip")));
        assert!(!filter.admits("10.1.2.3".parse().expect("ip")));
    }
}
