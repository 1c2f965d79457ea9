//! `X-Request-Id` (SPEC §4): the client's kept when it is at most 128 visible ASCII
//! characters, else a fresh one; returned on every response, denials included.

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

/// `X-Request-Id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The client's `X-Request-Id` if it is 1–128 visible ASCII characters, else a new one.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    let mut it = headers.get_all(&X_REQUEST_ID).iter();
    if let (Some(v), None) = (it.next(), it.next()) {
        let b = v.as_bytes();
        if !b.is_empty() && b.len() <= 128 && b.iter().all(|c| (0x21..=0x7e).contains(c)) {
            return v.clone();
        }
    }
    new_request_id()
}

/// A fresh random request id (32 hex characters). Request ids are for correlation,
/// not secrets: a per-thread wyrand generator seeded from the OS keeps this off the
/// CSPRNG (which costs more than the rest of the header work).
pub fn new_request_id() -> HeaderValue {
    use std::cell::Cell;
    use std::hash::{BuildHasher, Hasher};
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            let mut h = std::hash::RandomState::new().build_hasher();
            h.write_u64(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
            );
            h.finish()
        });
    }
    let next = || {
        STATE.with(|s| {
            let x = s.get().wrapping_add(0xa076_1d64_78bd_642f);
            s.set(x);
            let t = u128::from(x) * u128::from(x ^ 0xe703_7ed1_a0b4_28db);
            ((t >> 64) ^ t) as u64
        })
    };
    let (a, b) = (next(), next());
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&a.to_be_bytes());
    bytes[8..].copy_from_slice(&b.to_be_bytes());
    let mut s = [0u8; 32];
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, x) in bytes.iter().enumerate() {
        s[2 * i] = HEX[(x >> 4) as usize];
        s[2 * i + 1] = HEX[(x & 15) as usize];
    }
    HeaderValue::from_bytes(&s).unwrap_or_else(|_| HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids() {
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(request_id(&h), "abc-123");
        h.insert(
            &X_REQUEST_ID,
            HeaderValue::from_str(&"a".repeat(129)).expect("v"),
        );
        assert_eq!(request_id(&h).len(), 32);
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("has space"));
        assert_eq!(request_id(&h).len(), 32);
        assert_ne!(new_request_id(), new_request_id());
    }
}
