//! The client behind trusted proxies (SPEC §11 `[server] trusted_proxies`): when the
//! TCP peer is in the list, the client address is the rightmost `X-Forwarded-For`
//! entry that is not itself trusted (the leftmost when all are), and
//! `X-Forwarded-Proto: https` makes the request count as https. From any other peer
//! both headers are ignored here (the peer is the client, the scheme the
//! connection's). [`Client`] feeds the decision's facts, the login limits, the
//! access log and the `X-Forwarded-For` sent upstream ([`super::headers`]).

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

static X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");

/// Who the request is from, as far as portcullis believes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// The effective client address.
    pub addr: IpAddr,
    /// The request counts as https (TLS, or `X-Forwarded-Proto: https` from a
    /// trusted peer).
    pub https: bool,
    /// From a trusted peer: the `X-Forwarded-For` entries as received up to and
    /// including the client's (what goes upstream instead of the whole chain);
    /// `None` from an untrusted peer (SPEC §4: the received value, appended to).
    pub chain: Option<String>,
}

/// The client of a request from `peer` on a connection with or without TLS.
pub fn resolve(trusted: &[IpNet], peer: IpAddr, tls: bool, headers: &http::HeaderMap) -> Client {
    let peer = canonical(peer);
    if !is_trusted(trusted, peer) {
        return Client {
            addr: peer,
            https: tls,
            chain: None,
        };
    }
    let entries: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .collect();
    // Walk from the right (the hop nearest us) while the hops are trusted; stop at
    // the first untrusted address, or at an entry that is no address (the trusted
    // hop that reported it is then the last one believed).
    let (mut addr, mut upto) = (peer, None);
    for (i, e) in entries.iter().enumerate().rev() {
        let Some(a) = parse_entry(e) else { break };
        addr = a;
        upto = Some(i);
        if !is_trusted(trusted, a) {
            break;
        }
    }
    let chain = match upto {
        Some(i) => entries[..=i].join(", "),
        None => addr.to_string(),
    };
    Client {
        addr,
        https: tls || forwarded_https(headers),
        chain: Some(chain),
    }
}

/// The nearest hop's report of its client: the rightmost `X-Forwarded-For` entry,
/// when it is an address. The decision listener (SPEC §8) reads the client this
/// way: its caller is the ingress, which appends the address it saw.
pub fn forwarded(headers: &http::HeaderMap) -> Option<IpAddr> {
    headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .rfind(|e| !e.is_empty())
        .and_then(parse_entry)
}

/// Whether `addr` is in one of the trusted networks.
fn is_trusted(trusted: &[IpNet], addr: IpAddr) -> bool {
    trusted.iter().any(|n| n.contains(&addr))
}

/// An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, a dual-stack listener's peer) as
/// the IPv4 address it is, so `10.0.0.0/8` matches it.
fn canonical(a: IpAddr) -> IpAddr {
    match a {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(a, IpAddr::V4),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` entry: an address, or `ip:port` / `[v6]:port`.
fn parse_entry(e: &str) -> Option<IpAddr> {
    e.parse::<IpAddr>()
        .ok()
        .or_else(|| e.parse::<SocketAddr>().ok().map(|s| s.ip()))
        .map(canonical)
}

/// `X-Forwarded-Proto` names https (its last value: the one the nearest hop set).
fn forwarded_https(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(&X_FORWARDED_PROTO)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .next_back()
        .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderMap, HeaderValue};

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn h(xff: &[&str], proto: Option<&str>) -> HeaderMap {
        let mut m = HeaderMap::new();
        for v in xff {
            m.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        if let Some(p) = proto {
            m.insert("x-forwarded-proto", HeaderValue::from_str(p).unwrap());
        }
        m
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client() {
        let t = nets(&["10.0.0.0/8"]);
        let c = resolve(&t, ip("192.0.2.7"), false, &h(&["1.2.3.4"], Some("https")));
        assert_eq!(c.addr, ip("192.0.2.7"));
        assert!(!c.https);
        assert_eq!(c.chain, None);
        // No list: nobody is trusted.
        let c = resolve(&[], ip("10.0.0.1"), true, &h(&["1.2.3.4"], None));
        assert_eq!((c.addr, c.https), (ip("10.0.0.1"), true));
    }

    #[test]
    fn rightmost_untrusted_entry() {
        let t = nets(&["10.0.0.0/8", "127.0.0.1/32"]);
        let c = resolve(
            &t,
            ip("127.0.0.1"),
            false,
            &h(&["6.6.6.6, 1.2.3.4", "10.1.1.1"], Some("https")),
        );
        assert_eq!(c.addr, ip("1.2.3.4"));
        assert!(c.https);
        assert_eq!(c.chain.as_deref(), Some("6.6.6.6, 1.2.3.4"));
    }

    #[test]
    fn all_trusted_gives_the_leftmost() {
        let t = nets(&["10.0.0.0/8"]);
        let c = resolve(&t, ip("10.0.0.2"), false, &h(&["10.9.9.9, 10.0.0.1"], None));
        assert_eq!(c.addr, ip("10.9.9.9"));
        assert_eq!(c.chain.as_deref(), Some("10.9.9.9"));
        // No header at all: the peer itself.
        let c = resolve(&t, ip("10.0.0.2"), false, &HeaderMap::new());
        assert_eq!(c.addr, ip("10.0.0.2"));
        assert_eq!(c.chain.as_deref(), Some("10.0.0.2"));
    }

    #[test]
    fn garbage_stops_the_walk() {
        let t = nets(&["10.0.0.0/8"]);
        let c = resolve(
            &t,
            ip("10.0.0.2"),
            false,
            &h(&["1.1.1.1, junk, 10.0.0.5"], None),
        );
        assert_eq!(c.addr, ip("10.0.0.5"));
        let c = resolve(&t, ip("10.0.0.2"), false, &h(&["junk"], None));
        assert_eq!(c.addr, ip("10.0.0.2"));
    }

    #[test]
    fn ports_and_mapped_addresses() {
        let t = nets(&["10.0.0.0/8"]);
        let c = resolve(
            &t,
            ip("::ffff:10.0.0.2"),
            false,
            &h(&["[2001:db8::1]:443, 1.2.3.4:5678"], Some("http, https")),
        );
        assert_eq!(c.addr, ip("1.2.3.4"));
        assert!(c.https);
        let c = resolve(&t, ip("10.0.0.2"), false, &h(&[], Some("https, http")));
        assert!(!c.https);
    }

    #[test]
    fn forwarded_is_the_nearest_hop() {
        let mut h = HeaderMap::new();
        assert_eq!(forwarded(&h), None);
        h.append(
            "x-forwarded-for",
            HeaderValue::from_static("198.51.100.7, 10.0.0.1"),
        );
        h.append("x-forwarded-for", HeaderValue::from_static("203.0.113.9"));
        assert_eq!(forwarded(&h), Some("203.0.113.9".parse().unwrap()));
        h.append("x-forwarded-for", HeaderValue::from_static("not-an-ip"));
        assert_eq!(forwarded(&h), None);
    }
}
