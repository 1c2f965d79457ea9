//! `application/x-www-form-urlencoded` for the few places login needs it: the token
//! request body, the authorization and logout URLs, and the callback's query
//! (WHATWG URL §5; `+` is a space when reading).

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Everything but the unreserved characters of RFC 3986 §2.3 is escaped.
const ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `v` escaped for a query or form value.
pub fn escape(v: &str) -> String {
    utf8_percent_encode(v, ESCAPE).to_string()
}

/// `k1=v1&k2=v2`, escaped.
pub fn encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (k, v) in pairs {
        if !out.is_empty() {
            out.push('&');
        }
        out.push_str(&escape(k));
        out.push('=');
        out.push_str(&escape(v));
    }
    out
}

/// The value of the first `name` parameter of `query`, decoded; `None` when absent
/// or not UTF-8.
pub fn param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = k.replace('+', " ");
        if percent_decode_str(&k).decode_utf8().ok()? != name {
            return None;
        }
        let v = v.replace('+', " ");
        percent_decode_str(&v)
            .decode_utf8()
            .ok()
            .map(|c| c.into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let q = encode(&[("redirect_uri", "http://h:1/cb?x=1&y"), ("s", "a b+c")]);
        assert_eq!(
            q,
            "redirect_uri=http%3A%2F%2Fh%3A1%2Fcb%3Fx%3D1%26y&s=a%20b%2Bc"
        );
        assert_eq!(
            param(Some(&q), "redirect_uri").as_deref(),
            Some("http://h:1/cb?x=1&y")
        );
        assert_eq!(param(Some(&q), "s").as_deref(), Some("a b+c"));
        assert_eq!(param(Some("a=1+2&b"), "a").as_deref(), Some("1 2"));
        assert_eq!(param(Some("a=1&b"), "b").as_deref(), Some(""));
        assert_eq!(param(Some("a=%ff"), "a"), None);
        assert_eq!(param(None, "a"), None);
    }
}
