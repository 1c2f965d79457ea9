//! Path normalization + route matching (SPEC §2). Invariants, for any input `p`:
//! - `normalize` never panics; an `Ok(n)` starts with `/`, has no `//`, no `.` or
//!   `..` segment, no escape of an unreserved character, and `normalize(n) == n`;
//! - a route match never depends on an encoding that normalizes away: percent-
//!   encoding unreserved characters of `p` (and adding `./` or `//`) gives the same
//!   normalization, hence the same route;
//! - a `..;` / `.;` dot-segment with parameters never survives normalization.
#![no_main]

use http::Method;
use libfuzzer_sys::fuzz_target;
use portcullis::path::{normalize, segments};
use portcullis::routes::RouteTable;
use std::sync::OnceLock;

const CONFIG: &str = r#"
[upstreams.app]
url = "echo:"
[[issuers]]
name = "t"
issuer = "t"
secret = "fuzz-secret-fuzz-secret-fuzz-secret-0123"
[[routes]]
name = "admin"
path = "/admin/**"
upstream = "app"
[[routes]]
name = "item"
path = "/api/*/items/**"
access = "optional"
upstream = "app"
[[routes]]
name = "exact"
path = "/health"
access = "public"
upstream = "app"
[[routes]]
name = "deny"
path = "/internal/**"
access = "deny"
[[routes]]
name = "rest"
path = "/**"
access = "public"
upstream = "app"
"#;

fn table() -> &'static RouteTable {
    static T: OnceLock<RouteTable> = OnceLock::new();
    T.get_or_init(|| {
        portcullis::config::load_str(std::path::Path::new("/fuzz/proxy.toml"), CONFIG)
            .expect("fuzz config")
            .routes
    })
}

fn route(path: &str) -> Option<usize> {
    table().find(None, &Method::GET, path).map(|(i, _)| i)
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `p` with the unreserved characters the `mask` selects (never the leading `/`,
/// never the hex digits of an existing escape) percent-encoded in alternating case.
fn reencode(p: &str, mask: &[u8]) -> String {
    let mut out = String::with_capacity(p.len() * 3);
    let mut in_escape = 0u8;
    for (i, b) in p.bytes().enumerate() {
        let pick = mask.get(i % mask.len().max(1)).copied().unwrap_or(0) & 1 == 1;
        if b == b'%' {
            in_escape = 3;
        }
        let escaped = in_escape > 0;
        in_escape = in_escape.saturating_sub(1);
        if i > 0 && !escaped && is_unreserved(b) && pick {
            if i % 2 == 0 {
                out.push_str(&format!("%{b:02X}"));
            } else {
                out.push_str(&format!("%{b:02x}"));
            }
        } else {
            out.push(char::from(b));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Ok(p) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(n) = normalize(p) else {
        return;
    };
    assert!(n.starts_with('/'), "{p:?} -> {n:?}");
    assert!(!n.contains("//"), "{p:?} -> {n:?}");
    assert!(
        segments(&n).all(|s| s != "." && s != ".."),
        "{p:?} -> {n:?}"
    );
    assert!(
        segments(&n).all(|s| !(s.starts_with(".;") || s.starts_with("..;"))),
        "{p:?} -> {n:?}"
    );
    assert!(n.len() <= p.len());
    let again = normalize(&n).expect("a normalized path normalizes");
    assert_eq!(again, n, "not idempotent for {p:?}");
    let r = route(&n);

    // Re-encoding unreserved characters must not change the result or the route.
    // Only ASCII paths: re-encoding bytes of a multi-byte char is not a str.
    if p.is_ascii() {
        let variant = reencode(p, data);
        if variant.len() <= portcullis::path::MAX_PATH_LEN {
            let vn = normalize(&variant).expect("re-encoded variant of a valid path");
            assert_eq!(vn, n, "{p:?} vs {variant:?}");
            assert_eq!(route(&vn), r);
        }
        // Inserting `./` or doubling a slash is also invisible.
        let dotted = p.replacen('/', "/./", 1);
        if dotted.len() <= portcullis::path::MAX_PATH_LEN {
            if let Ok(dn) = normalize(&dotted) {
                assert_eq!(route(&dn), r, "{p:?} vs {dotted:?}");
            }
        }
    }
});
