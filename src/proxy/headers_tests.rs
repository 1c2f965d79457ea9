//! Unit tests of [`super`]: the header rewrite rules (SPEC §4).

use super::*;

#[test]
fn our_cookies_stay_here() {
    let mut h = HeaderMap::new();
    h.append(
        COOKIE,
        HeaderValue::from_static("a=1; s=x; s_1=y; s_login=z"),
    );
    h.append(COOKIE, HeaderValue::from_static("s_2=w"));
    h.append(COOKIE, HeaderValue::from_static("sx=keep; b=2"));
    strip_cookies(&mut h, "s");
    let left: Vec<&str> = h
        .get_all(COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(left, ["a=1", "sx=keep; b=2"]);
}

fn identity() -> Identity {
    Identity {
        header: HeaderName::from_static("x-user"),
        claim: "sub".into(),
        forward_authorization: true,
        claims_to_headers: vec![(HeaderName::from_static("x-user-email"), "email".into())],
        strip: vec!["x-user".into(), "x-user-email".into()],
        assertion: None,
    }
}

/// The names left of `names` after [`strip_identity`], sorted.
fn left_after_strip(names: &[&str]) -> Vec<String> {
    let mut h = HeaderMap::new();
    for n in names {
        h.append(
            HeaderName::from_bytes(n.as_bytes()).expect("n"),
            HeaderValue::from_static("v"),
        );
    }
    strip_identity(&mut h, &identity());
    let mut left: Vec<String> = h.keys().map(|k| k.as_str().to_owned()).collect();
    left.sort_unstable();
    left
}

#[test]
fn identity_variants_are_stripped() {
    let left = left_after_strip(&[
        "x-user",
        "x_user",
        "x-user-email",
        "x_user_email",
        "x-user_email",
        "x-users",
        "x-other",
    ]);
    assert_eq!(left, vec!["x-other", "x-users"]);
}

#[test]
fn routing_overrides_are_stripped() {
    let left = left_after_strip(&[
        "x-original-url",
        "x_original_url",
        "x-rewrite-url",
        "x-http-method-override",
        "x_http_method_override",
        "x-http-method",
        "x-method-override",
        "x_method-override",
        "x-original-url-hint",
        "x-http-methods",
    ]);
    assert_eq!(left, vec!["x-http-methods", "x-original-url-hint"]);
}

#[test]
fn upgrade_is_websocket_or_nothing() {
    let mut h = HeaderMap::new();
    h.insert(
        CONNECTION,
        HeaderValue::from_static("Upgrade, HTTP2-Settings"),
    );
    h.insert(UPGRADE, HeaderValue::from_static("h2c"));
    h.insert(
        "http2-settings",
        HeaderValue::from_static("AAMAAABkAAQCAAAAAAIAAAAA"),
    );
    strip_hop_by_hop(&mut h, false);
    assert!(h.is_empty(), "{h:?}");
    // HTTP2-Settings is removed even when `Connection` does not name it.
    h.insert(
        "http2-settings",
        HeaderValue::from_static("AAMAAABkAAQCAAAAAAIAAAAA"),
    );
    strip_hop_by_hop(&mut h, false);
    assert!(h.is_empty(), "{h:?}");
    h.insert(CONNECTION, HeaderValue::from_static("keep-alive, Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket, h2c"));
    strip_hop_by_hop(&mut h, true);
    assert_eq!(h[CONNECTION], "upgrade");
    assert_eq!(h.get_all(UPGRADE).iter().collect::<Vec<_>>(), ["websocket"]);
}

#[test]
fn cookies_are_joined() {
    let mut h = HeaderMap::new();
    h.append(COOKIE, HeaderValue::from_static("a=1"));
    join_cookies(&mut h);
    assert_eq!(h.get_all(COOKIE).iter().collect::<Vec<_>>(), ["a=1"]);
    h.append(COOKIE, HeaderValue::from_static(""));
    h.append(COOKIE, HeaderValue::from_static("b=2; c=3"));
    join_cookies(&mut h);
    assert_eq!(
        h.get_all(COOKIE).iter().collect::<Vec<_>>(),
        ["a=1; b=2; c=3"]
    );
}

#[test]
fn hop_by_hop() {
    let mut h = HeaderMap::new();
    h.insert(CONNECTION, HeaderValue::from_static("keep-alive, X-Custom"));
    h.insert("x-custom", HeaderValue::from_static("1"));
    h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    h.insert(TE, HeaderValue::from_static("gzip"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
    h.insert("x-keep", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h, false);
    let left: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
    assert_eq!(left, vec!["x-keep"]);
}

#[test]
fn forwarded() {
    let mut h = HeaderMap::new();
    h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4"));
    h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
    h.insert(
        "forwarded",
        HeaderValue::from_static("for=10.0.0.1;proto=https"),
    );
    let ip = "127.0.0.1".parse().expect("ip");
    let peer = peer_value(ip);
    let host = HeaderValue::from_static("a.example:8080");
    let mut trusted = h.clone();
    let client = super::super::client::resolve(&[], ip, false, &h);
    set_forwarded(&mut h, &peer, &client, Some(&host));
    assert_eq!(h["x-forwarded-for"], "1.2.3.4, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "a.example:8080");
    assert!(!h.contains_key("forwarded"));
    // From a trusted proxy: the chain up to the client, and its scheme.
    let nets = ["127.0.0.0/8".parse().expect("cidr")];
    let client = super::super::client::resolve(&nets, ip, false, &trusted);
    set_forwarded(&mut trusted, &peer, &client, Some(&host));
    assert_eq!(trusted["x-forwarded-for"], "1.2.3.4");
    assert_eq!(trusted["x-forwarded-proto"], "https");
    assert!(!trusted.contains_key("forwarded"));
}
