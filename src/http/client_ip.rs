//! Who the client is: the TCP peer, unless the peer is one of `server.trusted_proxies`; then the
//! right-most `X-Forwarded-For` address that is not a trusted proxy (the one the nearest trusted
//! proxy saw connect), or the left-most when every hop is trusted.
//!
//! Right-most, not left-most: a client writes whatever it likes at the left of the header and
//! each proxy appends what it saw, so only the addresses added by trusted proxies can be
//! believed. With no trusted proxies (the default) the header is never read.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::HeaderMap;

use crate::config::TrustedProxies;

/// The client address for a request from `peer` with these headers. `None` only when actix
/// knows no peer (a test request without one).
pub fn client_ip(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    let peer = peer?.ip().to_canonical();
    if trusted.is_empty() || !trusted.contains(peer) {
        return Some(peer);
    }
    // Several X-Forwarded-For headers are one list, in order (RFC 9110, 5.3).
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        // An entry that is no address stops the walk: the last address believed is the client.
        let Some(ip) = parse_hop(hop) else {
            break;
        };
        client = ip;
        if !trusted.contains(ip) {
            break;
        }
    }
    Some(client)
}

/// `203.0.113.7`, `2001:db8::1`, or either with a port (`203.0.113.7:5123`, `[2001:db8::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn resolve(peer: &str, forwarded: &[&str], trusted: &[&str]) -> String {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append(
                HeaderName::from_static("x-forwarded-for"),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let trusted = TrustedProxies::parse(trusted.iter().copied()).unwrap();
        let peer = SocketAddr::new(peer.parse().unwrap(), 4000);
        client_ip(Some(peer), &headers, &trusted)
            .unwrap()
            .to_string()
    }

    #[test]
    fn the_header_is_ignored_unless_the_peer_is_trusted() {
        assert_eq!(
            resolve("198.51.100.1", &["203.0.113.7"], &[]),
            "198.51.100.1"
        );
        assert_eq!(
            resolve("198.51.100.1", &["203.0.113.7"], &["10.0.0.0/8"]),
            "198.51.100.1"
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let trusted = ["10.0.0.0/8", "127.0.0.1"];
        assert_eq!(
            resolve("10.0.0.2", &["203.0.113.7"], &trusted),
            "203.0.113.7"
        );
        // A forged left part does not matter: the proxy appended what it saw.
        assert_eq!(
            resolve("10.0.0.2", &["1.1.1.1, 203.0.113.7"], &trusted),
            "203.0.113.7"
        );
        // Two trusted proxies in a row; several headers form one list.
        assert_eq!(
            resolve("127.0.0.1", &["6.6.6.6, 203.0.113.7", "10.1.2.3"], &trusted),
            "203.0.113.7"
        );
        // Every hop trusted: the left-most.
        assert_eq!(
            resolve("10.0.0.2", &["10.9.9.9, 10.0.0.3"], &trusted),
            "10.9.9.9"
        );
        // No header: the proxy itself.
        assert_eq!(resolve("10.0.0.2", &[], &trusted), "10.0.0.2");
        // Ports and IPv6 are understood; IPv4-mapped peers count as IPv4.
        assert_eq!(
            resolve("::ffff:10.0.0.2", &["[2001:db8::5]:443"], &trusted),
            "2001:db8::5"
        );
        assert_eq!(
            resolve("10.0.0.2", &["203.0.113.7:5123"], &trusted),
            "203.0.113.7"
        );
        // Garbage stops the walk at the last address believed.
        assert_eq!(
            resolve("10.0.0.2", &["203.0.113.7, nonsense, 10.0.0.3"], &trusted),
            "10.0.0.3"
        );
    }
}
