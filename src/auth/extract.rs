//! Finding the bearer token in a request, in the route's `token_from` order
//! (SPEC §3): `Authorization: Bearer` (scheme case-insensitive, RFC 6750 §2.1) or
//! `Authorization: DPoP` (RFC 9449 §7.1, SPEC §10), a query parameter (RFC 6750
//! §2.3) or a cookie.

use crate::routes::TokenSource;
use http::header::{AUTHORIZATION, COOKIE};
use http::HeaderMap;
use percent_encoding::percent_decode_str;
use std::borrow::Cow;

/// The request is malformed as far as credentials go (e.g. two `Authorization` headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadCredentials;

/// Checks the `Authorization` header is not repeated (SPEC §3: several -> 400).
pub fn check_authorization(headers: &HeaderMap) -> Result<(), BadCredentials> {
    let mut it = headers.get_all(AUTHORIZATION).iter();
    it.next();
    if it.next().is_some() {
        return Err(BadCredentials);
    }
    Ok(())
}

/// The first token found in `sources` order, or `None`.
pub fn find_token<'a>(
    sources: &[TokenSource],
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Option<Cow<'a, str>> {
    find(sources, headers, query).map(|p| p.token)
}

/// A token as presented: where it came from decides how it may be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presented<'a> {
    /// The token.
    pub token: Cow<'a, str>,
    /// It came as `Authorization: DPoP` (a proof must come with it).
    pub dpop_scheme: bool,
}

/// The first token found in `sources` order, with its scheme, or `None`.
pub fn find<'a>(
    sources: &[TokenSource],
    headers: &'a HeaderMap,
    query: Option<&'a str>,
) -> Option<Presented<'a>> {
    let plain = |token| Presented {
        token,
        dpop_scheme: false,
    };
    sources.iter().find_map(|s| match s {
        TokenSource::Header => authorization(headers).map(|(token, dpop_scheme)| Presented {
            token: Cow::Borrowed(token),
            dpop_scheme,
        }),
        TokenSource::Query(name) => query.and_then(|q| query_param(q, name)).map(plain),
        TokenSource::Cookie(name) => cookie(headers, name).map(|t| plain(Cow::Borrowed(t))),
    })
}

/// `Authorization: Bearer <token>` or `DPoP <token>`: the token and whether the
/// scheme was DPoP.
fn authorization(headers: &HeaderMap) -> Option<(&str, bool)> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim_start().split_once(' ')?;
    let dpop = if scheme.eq_ignore_ascii_case("bearer") {
        false
    } else if scheme.eq_ignore_ascii_case("dpop") {
        true
    } else {
        return None;
    };
    let t = rest.trim();
    (!t.is_empty()).then_some((t, dpop))
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if k != name || v.is_empty() {
            return None;
        }
        let v = percent_decode_str(v).decode_utf8().ok()?;
        (!v.is_empty()).then_some(v)
    })
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            let v = v.trim().trim_matches('"');
            (k.trim() == name && !v.is_empty()).then_some(v)
        })
}

/// The query without the parameters named by the route's `query:` sources
/// (the token never reaches the upstream). Returns `None` when nothing is left.
pub fn strip_query<'a>(query: Option<&'a str>, sources: &[TokenSource]) -> Option<Cow<'a, str>> {
    let q = query?;
    let names: Vec<&str> = sources
        .iter()
        .filter_map(|s| match s {
            TokenSource::Query(n) => Some(n.as_str()),
            _ => None,
        })
        .collect();
    if names.is_empty() {
        return Some(Cow::Borrowed(q));
    }
    let is_token = |pair: &str| {
        let k = pair.split_once('=').map_or(pair, |(k, _)| k);
        names.contains(&k)
    };
    if !q.split('&').any(is_token) {
        return Some(Cow::Borrowed(q));
    }
    let kept: Vec<&str> = q.split('&').filter(|p| !is_token(p)).collect();
    (!kept.is_empty()).then(|| Cow::Owned(kept.join("&")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn hdrs(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn bearer_forms() {
        let all = [TokenSource::Header];
        for (v, want) in [
            ("Bearer abc", Some("abc")),
            ("bearer abc", Some("abc")),
            ("BEARER  abc ", Some("abc")),
            ("Basic abc", None),
            ("DPoP abc", Some("abc")),
            ("Bearer", None),
            ("Bearer ", None),
        ] {
            let h = hdrs(&[("authorization", v)]);
            assert_eq!(find_token(&all, &h, None).as_deref(), want, "{v}");
        }
        let two = hdrs(&[("authorization", "Bearer a"), ("authorization", "Bearer b")]);
        assert_eq!(check_authorization(&two), Err(BadCredentials));
    }

    #[test]
    fn query_and_cookie() {
        let src = [
            TokenSource::Header,
            TokenSource::Query("access_token".into()),
            TokenSource::Cookie("at".into()),
        ];
        let h = hdrs(&[("cookie", "x=1; at=tok3")]);
        assert_eq!(
            find_token(&src, &h, Some("a=1&access_token=t%2B2")).as_deref(),
            Some("t+2")
        );
        assert_eq!(find_token(&src, &h, Some("a=1")).as_deref(), Some("tok3"));
        assert_eq!(
            find_token(&src, &HeaderMap::new(), Some("access_token=")),
            None
        );
    }

    #[test]
    fn query_stripping() {
        let src = [TokenSource::Query("access_token".into())];
        assert_eq!(
            strip_query(Some("a=1&access_token=x&b=2"), &src).as_deref(),
            Some("a=1&b=2")
        );
        assert_eq!(strip_query(Some("access_token=x"), &src), None);
        assert_eq!(strip_query(Some("access_token"), &src), None);
        assert_eq!(strip_query(Some("a=1"), &src).as_deref(), Some("a=1"));
        assert_eq!(strip_query(None, &src), None);
        assert_eq!(
            strip_query(Some("access_token=x"), &[]).as_deref(),
            Some("access_token=x")
        );
    }
}
