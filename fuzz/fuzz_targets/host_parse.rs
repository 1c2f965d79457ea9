//! Host validation and normalization (SPEC §2 "Host handling"). Invariants, for any
//! input bytes `raw`:
//! - `parse` never panics;
//! - an accepted host is non-empty ASCII with no upper case, no byte of
//!   `@ / \ ? # , % ;` and no whitespace or control byte; its name is non-empty,
//!   neither starts nor ends with `.`, has no empty label; what follows the name is
//!   nothing or `:` and 1–5 digits at most 65535;
//! - normalizing is idempotent (`parse(h.as_str())` is `h`, borrowed), and `parse`
//!   borrows exactly when `raw` was already normal;
//! - spelling variants a virtual host would fold together (upper case, the trailing
//!   dot) normalize to the same host, so they match the same routes;
//! - `of_request` with `raw` as the only `Host` field agrees with `parse`.
#![no_main]

use http::{HeaderMap, HeaderValue, Uri, Version};
use libfuzzer_sys::fuzz_target;
use portcullis::host::{of_request, parse};

fuzz_target!(|raw: &[u8]| {
    let Ok(h) = parse(raw) else {
        if let Ok(v) = HeaderValue::from_bytes(raw) {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::HOST, v);
            let r = of_request(Version::HTTP_11, &Uri::from_static("/"), &headers);
            assert!(
                r.is_err(),
                "of_request accepted what parse refused: {raw:?}"
            );
        }
        return;
    };
    let s = h.as_str();
    let name = h.name();
    assert!(!s.is_empty() && s.is_ascii(), "{raw:?} -> {s:?}");
    assert!(
        !s.bytes().any(|b| b.is_ascii_uppercase()
            || b.is_ascii_whitespace()
            || b.is_ascii_control()
            || b"@/\\?#,%;".contains(&b)),
        "{raw:?} -> {s:?}"
    );
    assert!(
        !name.is_empty() && s.starts_with(name),
        "{raw:?} -> {s:?} / {name:?}"
    );
    if !name.starts_with('[') {
        assert!(
            !name.ends_with('.') && !name.starts_with('.'),
            "{raw:?} -> {name:?}"
        );
        assert!(
            name.split('.').all(|l| !l.is_empty()),
            "{raw:?} -> {name:?}"
        );
        assert!(!name.contains([':', '[', ']']), "{raw:?} -> {name:?}");
    }
    let rest = &s[name.len()..];
    if let Some(port) = rest.strip_prefix(':') {
        assert!((1..=5).contains(&port.len()), "{raw:?} -> {s:?}");
        assert!(
            port.parse::<u32>().is_ok_and(|p| p <= 65535),
            "{raw:?} -> {s:?}"
        );
        assert_eq!(h.port(), Some(port));
    } else {
        assert!(rest.is_empty(), "{raw:?} -> {s:?}");
        assert_eq!(h.port(), None);
    }
    assert_eq!(h.is_borrowed(), raw == s.as_bytes(), "{raw:?} -> {s:?}");

    let again = parse(s.as_bytes()).expect("a normalized host parses");
    assert_eq!(again, h, "not idempotent for {raw:?}");
    assert!(again.is_borrowed(), "{raw:?}");

    let upper_raw = raw.to_ascii_uppercase();
    let upper = parse(&upper_raw).expect("upper case of an accepted host");
    assert_eq!(upper.as_str(), s, "{raw:?}");
    if !name.starts_with('[') {
        let dotted = format!("{name}.{rest}");
        assert_eq!(
            parse(dotted.as_bytes()).map(|d| d.as_str().to_owned()),
            Ok(s.to_owned())
        );
    }

    let mut headers = HeaderMap::new();
    headers.insert(
        http::header::HOST,
        HeaderValue::from_bytes(raw).expect("ASCII value"),
    );
    let r = of_request(Version::HTTP_11, &Uri::from_static("/"), &headers)
        .expect("of_request accepts what parse accepts")
        .expect("a host");
    assert_eq!((r.as_str(), r.name()), (s, name));
});
