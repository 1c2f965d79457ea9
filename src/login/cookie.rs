//! Encrypted cookies (SPEC §9): AES-256-GCM (aws-lc-rs) with a key derived from
//! `cookie_secret` by HKDF-SHA256 (RFC 5869), a random 96-bit nonce per value, and
//! the cookie's name as associated data, so a value sealed for one cookie (the login
//! cookie) never opens as another (the session). The value is
//! `base64url(nonce || ciphertext || tag)`; one over
//! [`COOKIE_CHUNK_BYTES`](crate::defaults::COOKIE_CHUNK_BYTES) is split into
//! `NAME_1`, `NAME_2`, … (at most [`COOKIE_MAX_CHUNKS`](crate::defaults::COOKIE_MAX_CHUNKS)).
//!
//! Guarantees: a changed, truncated, reordered, foreign-key or oversized cookie opens
//! to `None` (no panic, no error detail); sizes are bounded before decoding.

use crate::defaults::{COOKIE_CHUNK_BYTES, COOKIE_MAX_CHUNKS};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{HeaderMap, HeaderValue};

/// HKDF salt: versions the key derivation.
const SALT: &[u8] = b"portcullis cookie key v1";

/// The cookie key.
pub struct CookieKey {
    key: LessSafeKey,
}

impl std::fmt::Debug for CookieKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieKey([redacted])")
    }
}

impl CookieKey {
    /// The key derived from `secret` (HKDF-SHA256 extract and expand).
    pub fn derive(secret: &[u8]) -> Self {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(secret);
        let mut bytes = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's limit (255 * 32): cannot fail.
        if let Ok(okm) = prk.expand(&[b"session cookie".as_slice()], hkdf::HKDF_SHA256) {
            let _ = okm.fill(&mut bytes);
        }
        match UnboundKey::new(&AES_256_GCM, &bytes) {
            Ok(k) => CookieKey {
                key: LessSafeKey::new(k),
            },
            Err(_) => unreachable!("a 32-byte AES-256 key always builds"),
        }
    }

    /// Seals `plain` for cookie `name`: `base64url(nonce || ciphertext || tag)`.
    pub fn seal(&self, name: &str, plain: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        // The system RNG; on failure the nonce stays zero only if aws-lc fails,
        // which it reports by aborting rather than returning.
        let _ = aws_lc_rs::rand::fill(&mut nonce);
        let mut buf = plain.to_vec();
        let sealed = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(name.as_bytes()),
            &mut buf,
        );
        if sealed.is_err() {
            return String::new();
        }
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// Opens a value sealed for `name`; `None` for anything that does not verify.
    pub fn open(&self, name: &str, value: &str) -> Option<Vec<u8>> {
        if value.len() > COOKIE_CHUNK_BYTES * COOKIE_MAX_CHUNKS {
            return None;
        }
        let raw = URL_SAFE_NO_PAD.decode(value).ok()?;
        if raw.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return None;
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut buf = rest.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(name.as_bytes()), &mut buf)
            .ok()?;
        Some(plain.to_vec())
    }
}

/// The value of cookie `name` in the request's `Cookie` headers (first one wins).
pub fn get<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// The whole value of cookie `name`: `NAME` itself, else `NAME_1` + `NAME_2` + … in
/// order, up to the first missing one.
pub fn get_joined(headers: &HeaderMap, name: &str) -> Option<String> {
    if let Some(v) = get(headers, name) {
        return Some(v.to_owned());
    }
    let mut out = String::new();
    for i in 1..=COOKIE_MAX_CHUNKS {
        match get(headers, &format!("{name}_{i}")) {
            Some(v) => out.push_str(v),
            None => break,
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The chunks of the request's cookie `name` present (`NAME`, `NAME_1`, …).
fn present(headers: &HeaderMap, name: &str) -> Vec<String> {
    std::iter::once(name.to_owned())
        .chain((1..=COOKIE_MAX_CHUNKS).map(|i| format!("{name}_{i}")))
        .filter(|n| get(headers, n).is_some())
        .collect()
}

/// Cookie attributes: `Path=/; HttpOnly; SameSite=Lax` (+ `Secure` on TLS).
fn attributes(secure: bool) -> &'static str {
    if secure {
        "Path=/; HttpOnly; SameSite=Lax; Secure"
    } else {
        "Path=/; HttpOnly; SameSite=Lax"
    }
}

/// `Set-Cookie` values writing `value` as cookie `name` (split into `NAME_1`, … over
/// [`COOKIE_CHUNK_BYTES`]) with `Max-Age`, and clearing the request's chunks of the
/// same name that the new value does not overwrite.
pub fn set(
    request: &HeaderMap,
    name: &str,
    value: &str,
    max_age: u64,
    secure: bool,
) -> Vec<HeaderValue> {
    let attrs = attributes(secure);
    let mut names = Vec::new();
    let texts: Vec<String> = if value.len() <= COOKIE_CHUNK_BYTES {
        names.push(name.to_owned());
        vec![format!("{name}={value}; Max-Age={max_age}; {attrs}")]
    } else {
        value
            .as_bytes()
            .chunks(COOKIE_CHUNK_BYTES)
            .enumerate()
            .map(|(i, c)| {
                let n = format!("{name}_{}", i + 1);
                let text = format!(
                    "{n}={}; Max-Age={max_age}; {attrs}",
                    String::from_utf8_lossy(c)
                );
                names.push(n);
                text
            })
            .collect()
    };
    let mut out: Vec<HeaderValue> = texts
        .iter()
        .filter_map(|s| HeaderValue::from_str(s).ok())
        .collect();
    for stale in present(request, name) {
        if !names.contains(&stale) {
            out.extend(clear_one(&stale, secure));
        }
    }
    out
}

/// `Set-Cookie` values clearing cookie `name` and every chunk of it the request sent
/// (`Max-Age=0`); always at least `NAME` itself.
pub fn clear(request: &HeaderMap, name: &str, secure: bool) -> Vec<HeaderValue> {
    let mut names = present(request, name);
    if !names.iter().any(|n| n == name) {
        names.insert(0, name.to_owned());
    }
    names.iter().filter_map(|n| clear_one(n, secure)).collect()
}

fn clear_one(name: &str, secure: bool) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("{name}=; Max-Age=0; {}", attributes(secure))).ok()
}

#[cfg(test)]
mod tests;
