//! One complete HTTP/1.1 request head, judged the way hyper 1.12's server will parse
//! it (`proto/h1/role.rs`, same `httparse` with the same default configuration), plus
//! the framing portcullis refuses although hyper accepts it (RFC 9112 §6.3: several
//! `Content-Length` fields, `Content-Length` with `Transfer-Encoding`).
//!
//! Guarantee: a head this accepts, hyper parses without error and frames its body
//! exactly as [`Framing`] says; a head hyper would answer itself (400, 414, 431) or
//! treat as ambiguous is refused here with the same status. No allocation, except
//! to validate a request target that is not a plain origin-form path (rare).

use super::Refusal;

/// hyper's default `max_headers` (`DEFAULT_MAX_HEADERS`): one more is 431.
const MAX_HEADERS: usize = 100;
/// hyper's `MAX_URI_LEN`: a longer request target is 414.
const MAX_URI_LEN: usize = u16::MAX as usize - 1;
/// hyper refuses (431) a field name this long or longer (`record_header_indices`).
const MAX_NAME_LEN: usize = 1 << 16;
/// The largest body length hyper represents (`DecodedLength::MAX_LEN`).
const MAX_BODY_LEN: u64 = u64::MAX - 2;

/// How the body after an accepted head is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Body {
    None,
    Fixed(u64),
    Chunked,
}

/// What an accepted head means for the bytes after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Framing {
    pub body: Body,
    /// hyper prepares a protocol switch for this request (`wants_upgrade`): an
    /// `Upgrade` field on HTTP/1.1, or the CONNECT method.
    pub upgrade: bool,
}

/// Judges `head`, which must be exactly one head: the request line through the empty
/// line that ends it (no leading empty lines).
pub(super) fn check(head: &[u8]) -> Result<Framing, Refusal> {
    // Uninitialized, as hyper's own parse has it: initializing 100 fields would cost
    // more than parsing a typical head (issue 20).
    let mut fields =
        [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    match req.parse_with_uninit_headers(head, &mut fields) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Err(httparse::Error::TooManyHeaders) => return Err(Refusal::TooLarge),
        _ => return Err(Refusal::BadRequest),
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(Refusal::BadRequest);
    };
    if http::Method::from_bytes(method.as_bytes()).is_err() {
        return Err(Refusal::BadRequest);
    }
    if target.len() > MAX_URI_LEN {
        return Err(Refusal::UriTooLong);
    }
    if !target_ok(target) {
        return Err(Refusal::BadRequest);
    }
    let http11 = version == 1;
    let mut upgrade = method == "CONNECT";
    let (mut lengths, mut length) = (0u32, None);
    let (mut te, mut chunked) = (false, false);
    for f in req.headers.iter() {
        if f.name.len() >= MAX_NAME_LEN {
            return Err(Refusal::TooLarge);
        }
        if f.name.eq_ignore_ascii_case("content-length") {
            lengths += 1;
            length = Some(digits(f.value).ok_or(Refusal::BadRequest)?);
        } else if f.name.eq_ignore_ascii_case("transfer-encoding") {
            if !http11 {
                return Err(Refusal::BadRequest); // RFC 9112 §6.1: not in HTTP/1.0
            }
            te = true;
            chunked = chunked_last(f.value);
        } else if f.name.eq_ignore_ascii_case("upgrade") {
            upgrade = http11;
        }
    }
    // Ambiguous framing (RFC 9112 §6.3, §11.2): hyper would pick one reading.
    if lengths > 1 || (lengths > 0 && te) {
        return Err(Refusal::BadRequest);
    }
    let body = match (te, length) {
        (true, _) if chunked => Body::Chunked,
        (true, _) => return Err(Refusal::BadRequest), // chunked is not the final coding
        (false, None | Some(0)) => Body::None,
        (false, Some(n)) if n > MAX_BODY_LEN => return Err(Refusal::BadRequest),
        (false, Some(n)) => Body::Fixed(n),
    };
    Ok(Framing { body, upgrade })
}

/// hyper's `from_digits`: one or more ASCII digits, no sign, no list, no overflow.
fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, b| {
        if b.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

/// hyper's `is_chunked_`: the field is visible ASCII and its last coding is `chunked`.
fn chunked_last(v: &[u8]) -> bool {
    if !v.iter().all(|b| *b == b'\t' || (0x20..0x7f).contains(b)) {
        return false;
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.rsplit(',').next())
        .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"))
}

/// Whether `http::Uri` (which hyper builds from the target) accepts `t`. An
/// origin-form path of unreserved, sub-delim and `:@/?%` bytes always parses and is
/// checked in place; anything else is handed to `http::Uri` itself.
fn target_ok(t: &str) -> bool {
    let plain = t.starts_with('/')
        && t.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                        | b':'
                        | b'@'
                        | b'/'
                        | b'?'
                        | b'%'
                )
        });
    plain || http::Uri::try_from(t).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(h: &str) -> Result<Framing, Refusal> {
        check(h.as_bytes())
    }

    fn body(h: &str) -> Body {
        judge(h)
            .map(|f| f.body)
            .unwrap_or_else(|r| panic!("{h:?}: {r:?}"))
    }

    #[test]
    fn framing() {
        assert_eq!(body("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Body::None);
        assert_eq!(body("GET / HTTP/1.1\nHost: a\n\n"), Body::None);
        assert_eq!(
            body("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            Body::None
        );
        assert_eq!(
            body("POST / HTTP/1.1\r\nContent-Length: 007\r\n\r\n"),
            Body::Fixed(7)
        );
        assert_eq!(
            body("POST / HTTP/1.1\r\nContent-Length:  7 \r\n\r\n"),
            Body::Fixed(7)
        );
        for te in [
            "chunked",
            "CHUNKED",
            "gzip, chunked",
            " chunked ",
            "x,chunked",
        ] {
            let h = format!("POST / HTTP/1.1\r\nTransfer-Encoding: {te}\r\n\r\n");
            assert_eq!(body(&h), Body::Chunked, "{te}");
        }
        // The last Transfer-Encoding field decides, as in hyper.
        assert_eq!(
            body(
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
            ),
            Body::Chunked
        );
    }

    #[test]
    fn upgrade_as_hyper_sees_it() {
        let up = |h: &str| judge(h).unwrap().upgrade;
        assert!(up("GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"));
        assert!(up("GET / HTTP/1.1\r\nupgrade: h2c\r\n\r\n"));
        assert!(up("CONNECT a:443 HTTP/1.1\r\n\r\n"));
        assert!(up("CONNECT a:443 HTTP/1.0\r\n\r\n"));
        assert!(!up("CONNECT a:443 HTTP/1.0\r\nUpgrade: x\r\n\r\n"));
        assert!(!up("GET / HTTP/1.0\r\nUpgrade: websocket\r\n\r\n"));
        assert!(!up("GET / HTTP/1.1\r\nConnection: upgrade\r\n\r\n"));
        assert!(!up("connect a:443 HTTP/1.1\r\n\r\n"));
    }

    #[test]
    fn refusals() {
        use Refusal::*;
        let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
        let long_name = format!("{}: v\r\n", "n".repeat(MAX_NAME_LEN));
        for (h, want) in [
            (
                "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
                BadRequest,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
                BadRequest,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: x\r\n\r\n",
                BadRequest,
            ),
            ("POST / HTTP/1.1\r\nContent-Length: +1\r\n\r\n", BadRequest),
            (
                "POST / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n",
                BadRequest,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                BadRequest,
            ),
            (
                "POST / HTTP/1.1\r\nContent-Length: 18446744073709551614\r\n\r\n",
                BadRequest,
            ),
            ("POST / HTTP/1.1\r\nContent-Length: \r\n\r\n", BadRequest),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
                BadRequest,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
                BadRequest,
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: \"chunked\"\r\n\r\n",
                BadRequest,
            ),
            (
                "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
                BadRequest,
            ),
            ("GET / HTTP/1.1\r\nX-A : b\r\n\r\n", BadRequest),
            ("GET / HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n", BadRequest),
            ("GET / HTTP/1.1\r\nX-A: b\rc\r\n\r\n", BadRequest),
            ("GET / HTTP/1.1\r\nX-A\0: b\r\n\r\n", BadRequest),
            ("GET / HTTP/1.2\r\n\r\n", BadRequest),
            ("GET / HTTP/2.0\r\n\r\n", BadRequest),
            ("G(T / HTTP/1.1\r\n\r\n", BadRequest),
            ("GET  / HTTP/1.1\r\n\r\n", BadRequest),
            ("GET / HTTP/1.1\r\n", BadRequest),
            (&*format!("GET / HTTP/1.1\r\n{many}\r\n"), TooLarge),
            (&*format!("GET / HTTP/1.1\r\n{long_name}\r\n"), TooLarge),
            (
                &*format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_LEN)),
                UriTooLong,
            ),
        ] {
            assert_eq!(judge(h), Err(want), "{h:?}");
        }
        let obs_text = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\xff\r\n\r\n";
        assert_eq!(check(obs_text), Err(BadRequest));
        // UTF-8 in the path is accepted (http::Uri takes it); other high bytes are not.
        assert!(judge("GET /\u{e9} HTTP/1.1\r\n\r\n").is_ok());
        assert!(judge("GET /a#b HTTP/1.1\r\n\r\n").is_ok());
        assert_eq!(check(b"GET /\xff HTTP/1.1\r\n\r\n"), Err(BadRequest));
        let hundred: String = (0..100).map(|i| format!("X-{i}: v\r\n")).collect();
        assert!(judge(&format!("GET / HTTP/1.1\r\n{hundred}\r\n")).is_ok());
        let longest = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_LEN - 1));
        assert!(judge(&longest).is_ok());
    }

    #[test]
    fn targets_agree_with_http_uri() {
        for t in [
            "/",
            "*",
            "/a?b=c&d",
            "/%2e%2E/x",
            "/a;b/c@d:e",
            "http://a.example/x",
            "http://[::1]:8080/",
            "a.example:443",
            "/a\"b",
            "/{x}",
            "/a|b",
            "/a^b",
            "/a`b",
            "/a\\b",
            "/a[b]",
            "//x",
            "/?a?b",
            "/a<b",
        ] {
            assert_eq!(target_ok(t), http::Uri::try_from(t).is_ok(), "{t}");
        }
        // Every string over the in-place alphabet parses.
        let alphabet = b"az09-._~!$&'()*+,;=:@/?%";
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..5000 {
            let mut t = String::from("/");
            for _ in 0..(x % 24) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                t.push(char::from(alphabet[(x % alphabet.len() as u64) as usize]));
            }
            assert!(http::Uri::try_from(t.as_str()).is_ok(), "{t}");
        }
    }
}
