//! Who the client is, for rate limits and security logs: the TCP peer, or, behind `TRUSTED_PROXY_HOPS` proxies
//! (a load balancer, an ingress), the address the outermost of them saw, read from `X-Forwarded-For`.
//!
//! Each proxy appends the address of the peer it saw, so with N trusted proxies the client is the N-th entry from
//! the right; entries further left were written by the client and prove nothing. A header with fewer entries than
//! that, or an unreadable one, counts as the peer itself (the request did not come through the proxies).

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

/// The client's address as described in the module docs.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_hops: u8) -> IpAddr {
    if trusted_hops == 0 {
        return peer;
    }
    let mut entries: Vec<&str> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else { return peer };
        entries.extend(value.split(',').map(str::trim));
    }
    let hops = usize::from(trusted_hops);
    if entries.len() < hops {
        return peer;
    }
    parse(entries[entries.len() - hops]).unwrap_or(peer)
}

fn parse(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| entry.strip_prefix('[').and_then(|e| e.strip_suffix(']')).and_then(|e| e.parse().ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    #[test]
    fn picks_the_entry_the_trusted_proxies_wrote() {
        let peer: IpAddr = "10.0.0.9".parse().unwrap();
        let spoofed = headers(&["6.6.6.6, 203.0.113.7"]);
        assert_eq!(client_ip(peer, &spoofed, 0), peer, "no trusted proxy: the header is ignored");
        assert_eq!(client_ip(peer, &spoofed, 1), "203.0.113.7".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(peer, &spoofed, 2), "6.6.6.6".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(peer, &spoofed, 3), peer, "fewer entries than proxies");
        let split = headers(&["6.6.6.6", "203.0.113.7:4711"]);
        assert_eq!(client_ip(peer, &split, 1), "203.0.113.7".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(peer, &headers(&["[2001:db8::1]"]), 1), "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(client_ip(peer, &headers(&["unknown"]), 1), peer);
        assert_eq!(client_ip(peer, &HeaderMap::new(), 1), peer);
    }
}
