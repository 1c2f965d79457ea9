//! Header rewriting (SPEC §4). Input: lines `name: value` (arbitrary bytes; lines
//! that are not a valid header are skipped). After `strip_identity` and
//! `strip_hop_by_hop`:
//! - no header folds (case, `_` for `-`) to an identity header or a routing-override
//!   header (`X-Original-URL`, `X-Rewrite-URL`, the method overrides);
//! - no hop-by-hop header survives (`te: trailers` alone may), nor any header a
//!   `Connection` value named;
//! - every other header survives untouched.
#![no_main]

use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis::config::Identity;
use portcullis::proxy::headers::{strip_hop_by_hop, strip_identity};

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

fn folded(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

const ROUTING: &[&str] = &[
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

const HOP: &[&str] = &[
    "connection",
    "http2-settings",
    "keep-alive",
    "proxy-connection",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fuzz_target!(|data: &[u8]| {
    let mut h = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) else {
            continue;
        };
        h.append(n, v);
    }
    let before = h.clone();
    let named: Vec<String> = h
        .get_all("connection")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    let id = identity();
    strip_identity(&mut h, &id);
    strip_hop_by_hop(&mut h, false);
    for (k, v) in &h {
        let name = k.as_str();
        assert!(
            !id.strip.iter().any(|s| folded(name) == *s),
            "identity header {name} survived"
        );
        assert!(
            !ROUTING.contains(&folded(name).as_str()),
            "routing-override header {name} survived"
        );
        if name == "te" {
            assert_eq!(v, "trailers");
            continue;
        }
        assert!(!HOP.contains(&name), "hop-by-hop {name} survived");
        assert!(
            !named.iter().any(|n| n == name),
            "Connection-named {name} survived"
        );
    }
    // Nothing else was touched.
    for (k, v) in &before {
        let name = k.as_str();
        let doomed = id.strip.iter().any(|s| folded(name) == *s)
            || ROUTING.contains(&folded(name).as_str())
            || HOP.contains(&name)
            || named.iter().any(|n| n == name);
        if !doomed {
            assert!(h.get_all(k).iter().any(|x| x == v), "{name} lost");
        }
    }
});
