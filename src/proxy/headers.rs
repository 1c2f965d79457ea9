//! Header rewriting for the forwarded request and the returned response (SPEC §4):
//! strip client-sent identity headers and routing-override headers (case and `_`/`-`
//! variants) then set ours; remove hop-by-hop headers (RFC 9110 §7.6.1), including
//! those `Connection` names and any `Upgrade` but WebSocket's; join HTTP/2 `cookie`
//! fields; set `X-Forwarded-For` / `-Proto` / `-Host`; `X-Request-Id` ([`super::request_id`]).

use crate::config::Identity;
use http::header::{
    HeaderName, HeaderValue, CONNECTION, COOKIE, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::HeaderMap;
use std::net::IpAddr;

pub use super::request_id::{new_request_id, request_id, X_REQUEST_ID};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static PROXY_AUTHORIZATION: HeaderName = HeaderName::from_static("proxy-authorization");
static PROXY_AUTHENTICATE: HeaderName = HeaderName::from_static("proxy-authenticate");
static HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// Request headers some frameworks route or dispatch by instead of the request line
/// (IIS / Symfony / Laminas `X-Original-URL` and `X-Rewrite-URL`; the method overrides
/// of Express, Rails, Spring, Laravel...), folded: lowercase, `-`. A request that
/// passed the checks of one route must not be handled by the backend as another.
const ROUTING_OVERRIDES: [&str; 5] = [
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Whether `name` (lowercase, as `http` stores it) equals `folded` once every `_` is
/// read as `-` (`folded` is already lowercase with `-`).
fn folds_to(name: &str, folded: &str) -> bool {
    name.len() == folded.len()
        && name
            .bytes()
            .zip(folded.bytes())
            .all(|(a, b)| a == b || (a == b'_' && b == b'-'))
}

/// Removes every client-sent identity header and every routing-override header
/// ([`ROUTING_OVERRIDES`]), whatever its case or `_` spelling, in one pass over the
/// names (nothing is allocated when none is present).
pub fn strip_identity(headers: &mut HeaderMap, identity: &Identity) {
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let k = k.as_str();
            identity.strip.iter().any(|s| folds_to(k, s))
                || ROUTING_OVERRIDES.iter().any(|s| folds_to(k, s))
        })
        .cloned()
        .collect();
    for k in doomed {
        headers.remove(k);
    }
}

/// Removes hop-by-hop headers, and every header the `Connection` header names.
/// With `keep_upgrade` (the message is a WebSocket handshake, which the caller has
/// checked: see [`crate::proxy::upgrade`]) `Connection: upgrade` and
/// `Upgrade: websocket` are set; otherwise every `Upgrade` goes (SPEC §4).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none of these: one pass over the names (comparisons of
    // standard header names are integer compares) instead of nine hashed removals.
    if !keep_upgrade && !headers.keys().any(is_hop_by_hop) {
        return;
    }
    let listed: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .filter(|n| !(keep_upgrade && n == UPGRADE))
        .collect();
    for n in listed {
        headers.remove(n);
    }
    // `TE: trailers` is the one TE value HTTP/2 allows (RFC 9113 §8.2.2); gRPC needs it.
    let te_trailers = headers
        .get(TE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    for n in ALWAYS_HOP_BY_HOP {
        headers.remove(n);
    }
    if te_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
    if keep_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
        // Only the WebSocket token: `Upgrade: websocket, h2c` must not offer h2c.
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
    } else {
        headers.remove(CONNECTION);
        headers.remove(UPGRADE);
    }
}

/// Removed from every forwarded message (`Connection` and `Upgrade` are handled apart).
/// `HTTP2-Settings` belongs to the h2c upgrade (RFC 7540 §3.2.1), which is never passed on.
const ALWAYS_HOP_BY_HOP: [&HeaderName; 8] = [
    &HTTP2_SETTINGS,
    &KEEP_ALIVE,
    &PROXY_CONNECTION,
    &PROXY_AUTHORIZATION,
    &PROXY_AUTHENTICATE,
    &TE,
    &TRAILER,
    &TRANSFER_ENCODING,
];

/// A name [`strip_hop_by_hop`] acts on (`Connection` included, which may list others).
fn is_hop_by_hop(n: &HeaderName) -> bool {
    n == CONNECTION || n == UPGRADE || ALWAYS_HOP_BY_HOP.contains(&n)
}

/// RFC 9113 §8.2.3: an HTTP/2 client may split `cookie` into several fields; they
/// are joined with `; ` into the one `Cookie` HTTP/1.1 allows (RFC 6265 §5.4).
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut it = headers.get_all(COOKIE).iter();
    if it.next().is_none() || it.next().is_none() {
        return;
    }
    let mut joined = Vec::new();
    for v in headers.get_all(COOKIE) {
        if v.is_empty() {
            continue;
        }
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(v.as_bytes());
    }
    // Valid field values joined by "; " are a valid field value.
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(COOKIE, v);
    }
}

/// Removes portcullis's own cookies (`[login] cookie_name`, its chunks `NAME_1`, …
/// and the login cookie `NAME_login`) from what the upstream gets: they are of no use
/// to it, and a split session must not push the upstream's header limits (SPEC §9).
pub fn strip_cookies(headers: &mut HeaderMap, name: &str) {
    let ours = |pair: &str| {
        let n = pair.split_once('=').map_or(pair, |(n, _)| n).trim();
        n == name || n.strip_prefix(name).is_some_and(|r| r.starts_with('_'))
    };
    let values: Vec<HeaderValue> = headers.get_all(COOKIE).iter().cloned().collect();
    if !values
        .iter()
        .any(|v| v.to_str().is_ok_and(|t| t.split(';').any(ours)))
    {
        return;
    }
    headers.remove(COOKIE);
    for v in values {
        let Ok(text) = v.to_str() else {
            headers.append(COOKIE, v);
            continue;
        };
        let kept: Vec<&str> = text
            .split(';')
            .map(str::trim)
            .filter(|p| !ours(p))
            .collect();
        if kept.iter().any(|p| !p.is_empty()) {
            if let Ok(v) = HeaderValue::from_str(&kept.join("; ")) {
                headers.append(COOKIE, v);
            }
        }
    }
}

/// Appends the peer to `X-Forwarded-For` and sets `X-Forwarded-Proto` / `-Host`.
/// A client-sent RFC 7239 `Forwarded` is removed: it carries the same facts we
/// overwrite in `X-Forwarded-*`, and backends that prefer it (Spring's
/// `ForwardedHeaderFilter`, for one) would otherwise read the client's word.
/// `peer` is the TCP peer's address as a header value ([`peer_value`], made once per
/// connection). From a trusted proxy (SPEC §11, `client.chain` set) `X-Forwarded-For`
/// is instead the received chain up to the client address, which is its last entry;
/// `X-Forwarded-Proto` is the scheme the request counts as.
pub fn set_forwarded(
    headers: &mut HeaderMap,
    peer: &HeaderValue,
    client: &super::client::Client,
    host: Option<&HeaderValue>,
) {
    headers.remove(http::header::FORWARDED);
    let tls = client.https;
    if let Some(chain) = &client.chain {
        match HeaderValue::from_str(chain) {
            Ok(v) => headers.insert(X_FORWARDED_FOR.clone(), v),
            Err(_) => headers.insert(X_FORWARDED_FOR.clone(), peer_value(client.addr)),
        };
        set_proto_host(headers, tls, host);
        return;
    }
    let mut xff = String::new();
    for v in headers.get_all(&X_FORWARDED_FOR) {
        if let Ok(s) = v.to_str() {
            let s = s.trim();
            if !s.is_empty() {
                xff.push_str(s);
                xff.push_str(", ");
            }
        }
    }
    if xff.is_empty() {
        headers.insert(X_FORWARDED_FOR.clone(), peer.clone());
    } else {
        xff.push_str(peer.to_str().unwrap_or_default());
        if let Ok(v) = HeaderValue::from_str(&xff) {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
    }
    set_proto_host(headers, tls, host);
}

/// `X-Forwarded-Proto` and `X-Forwarded-Host` (removed without a host).
fn set_proto_host(headers: &mut HeaderMap, tls: bool, host: Option<&HeaderValue>) {
    headers.insert(
        X_FORWARDED_PROTO.clone(),
        HeaderValue::from_static(if tls { "https" } else { "http" }),
    );
    match host {
        Some(v) => {
            headers.insert(X_FORWARDED_HOST.clone(), v.clone());
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// The client's IP address as an `X-Forwarded-For` element.
pub fn peer_value(peer: IpAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.to_string()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

#[cfg(test)]
#[path = "headers_tests.rs"]
mod tests;
