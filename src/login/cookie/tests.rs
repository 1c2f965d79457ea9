//! Sealed cookies: round trip, and every way a cookie can be wrong opens to `None`.

use super::*;
use http::header::COOKIE;

fn key() -> CookieKey {
    CookieKey::derive(b"0123456789abcdef0123456789abcdef")
}

fn request(cookies: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    let line = cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    h.insert(COOKIE, HeaderValue::from_str(&line).unwrap());
    h
}

/// The `name=value` pairs of `Set-Cookie` values, as a browser would send them back.
fn sent_back(set: &[HeaderValue]) -> Vec<(String, String)> {
    set.iter()
        .filter_map(|v| {
            let s = v.to_str().unwrap();
            let first = s.split(';').next().unwrap();
            let (k, v) = first.split_once('=').unwrap();
            (!s.contains("Max-Age=0")).then(|| (k.to_owned(), v.to_owned()))
        })
        .collect()
}

#[test]
fn seal_open_round_trip_and_names_bind() {
    let k = key();
    let v = k.seal("s", b"hello");
    assert_eq!(k.open("s", &v).as_deref(), Some(&b"hello"[..]));
    assert_eq!(k.open("s_login", &v), None, "sealed for another cookie");
    assert_ne!(k.seal("s", b"hello"), v, "a fresh nonce every time");
}

#[test]
fn tampered_truncated_foreign_and_junk_open_to_none() {
    let k = key();
    let v = k.seal("s", b"{\"user\":\"alice\"}");
    let mut bytes = URL_SAFE_NO_PAD.decode(&v).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    assert_eq!(
        k.open("s", &URL_SAFE_NO_PAD.encode(&bytes)),
        None,
        "tampered"
    );
    bytes[last] ^= 1;
    bytes[NONCE_LEN + 2] ^= 0x80;
    assert_eq!(
        k.open("s", &URL_SAFE_NO_PAD.encode(&bytes)),
        None,
        "tampered body"
    );
    assert_eq!(k.open("s", &v[..v.len() - 4]), None, "truncated");
    let other = CookieKey::derive(b"another secret of at least 32 bytes!!");
    assert_eq!(other.open("s", &v), None, "foreign key");
    for junk in ["", "x", "!!!!", &"A".repeat(100_000)] {
        assert_eq!(k.open("s", junk), None);
    }
}

#[test]
fn large_values_split_and_join_in_order_only() {
    let k = key();
    let big = vec![b'x'; 9000];
    let sealed = k.seal("s", &big);
    let set = set(&HeaderMap::new(), "s", &sealed, 60, false);
    assert!(set.len() >= 3, "split into chunks: {}", set.len());
    for v in &set {
        assert!(v.len() < 4000, "each Set-Cookie under the header limits");
        assert!(v.to_str().unwrap().contains("HttpOnly; SameSite=Lax"));
    }
    let back = sent_back(&set);
    assert_eq!(back[0].0, "s_1");
    let pairs: Vec<(&str, &str)> = back.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
    let joined = get_joined(&request(&pairs), "s").unwrap();
    assert_eq!(k.open("s", &joined).unwrap(), big);
    // Reordered chunks: the values swapped between the names.
    let mut swapped = pairs.clone();
    let (a, b) = (swapped[0].1, swapped[1].1);
    swapped[0].1 = b;
    swapped[1].1 = a;
    let joined = get_joined(&request(&swapped), "s").unwrap();
    assert_eq!(k.open("s", &joined), None);
    // A missing middle chunk.
    let gap = [pairs[0], pairs[2]];
    let joined = get_joined(&request(&gap), "s").unwrap();
    assert_eq!(k.open("s", &joined), None);
}

#[test]
fn rewriting_smaller_clears_stale_chunks_and_secure_on_tls() {
    let req = request(&[("s_1", "a"), ("s_2", "b"), ("s_3", "c")]);
    let set = set(&req, "s", "small", 60, true);
    let text: Vec<&str> = set.iter().map(|v| v.to_str().unwrap()).collect();
    assert!(text[0].starts_with("s=small; Max-Age=60; Path=/; HttpOnly; SameSite=Lax; Secure"));
    for n in ["s_1=;", "s_2=;", "s_3=;"] {
        assert!(
            text.iter()
                .any(|t| t.starts_with(n) && t.contains("Max-Age=0")),
            "{n} cleared: {text:?}"
        );
    }
    let cleared = clear(&request(&[("s", "v"), ("s_1", "w")]), "s", false);
    assert_eq!(cleared.len(), 2);
    assert!(cleared
        .iter()
        .all(|c| c.to_str().unwrap().contains("Max-Age=0")));
    assert_eq!(clear(&HeaderMap::new(), "s", false).len(), 1);
}

#[test]
fn cookie_lookup() {
    let h = request(&[("a", "1"), ("s", "2"), ("s_x", "3")]);
    assert_eq!(get(&h, "s"), Some("2"));
    assert_eq!(get(&h, "b"), None);
    assert_eq!(get_joined(&h, "s").as_deref(), Some("2"));
}
