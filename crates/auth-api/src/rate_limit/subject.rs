//! Whose hits a counter counts: a client address, counted the way an attacker cannot cheaply multiply it, or a
//! user name.

use std::net::IpAddr;

/// A client address or a user name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// A client address (normalised: see [`counted_address`]).
    Ip(IpAddr),
    /// A user name.
    User(&'a str),
}

impl Subject<'_> {
    /// The counter key: `ip:1.2.3.4`, `ip:2001:db8:1:2::/64`, `user:alice`.
    pub fn key(self) -> String {
        match self {
            Subject::Ip(ip) => format!("ip:{}", counted_address(ip)),
            Subject::User(name) => format!("user:{name}"),
        }
    }
}

/// The address a hit is counted against: IPv4 as is, an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) as its IPv4
/// address, any other IPv6 address as its /64, the block one subscriber or host is normally given (every address
/// in it would otherwise be a fresh quota).
pub fn counted_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{}/64", std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_counted_as_an_attacker_cannot_multiply_them() {
        let counted = |ip: &str| counted_address(ip.parse().unwrap());
        assert_eq!(counted("127.0.0.1"), "127.0.0.1");
        assert_eq!(counted("::ffff:127.0.0.1"), "127.0.0.1");
        assert_eq!(counted("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(counted("2001:db8:1:2:ffff:1:2:3"), "2001:db8:1:2::/64");
        assert_ne!(counted("2001:db8:1:3::1"), counted("2001:db8:1:2::1"));
        assert_eq!(counted("::1"), "::/64");
        assert_eq!(Subject::User("alice").key(), "user:alice");
        assert_eq!(Subject::Ip("10.0.0.1".parse().unwrap()).key(), "ip:10.0.0.1");
    }
}
