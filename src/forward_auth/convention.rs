//! Reading the original request out of a decision request, by the listener's one
//! header convention (SPEC §8). Only that convention's headers are read: the headers
//! of another convention are ignored, whatever they say.
//!
//! | convention | method | URI (required) | host | https |
//! |---|---|---|---|---|
//! | `x-forwarded` | `X-Forwarded-Method` | `X-Forwarded-Uri` (path and query) | `X-Forwarded-Host` | `X-Forwarded-Proto` `https` / `wss` |
//! | `x-original` | `X-Original-Method` | `X-Original-URI` (path and query) or `X-Original-URL` (absolute) | the URL's authority | the URL's scheme |
//! | `envoy` | the decision request's | the decision request's path and query | the decision request's | no |
//!
//! A method header that is absent means the decision request's own method; a host
//! that is not named means the decision request's (`:authority`, else `Host`, with the
//! SPEC §2 host rules). Refused with 400 (never guessed at): a missing URI, any
//! convention header sent twice, a URI that is not a path (or, for `X-Original-URL`,
//! not an absolute `http(s)` URL), `X-Original-URI` and `X-Original-URL` naming
//! different paths or queries, a method that is not an HTTP token. The path itself is
//! then judged by the decision's normalization, like any request's.

use crate::config::Convention;
use crate::deny::{BadRequest, Denial, OriginalError};
use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};
use std::borrow::Cow;

static X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");

/// The decision request as received.
#[derive(Debug, Clone, Copy)]
pub struct Asking<'a> {
    /// Its method.
    pub method: &'a Method,
    /// Its version (`Host` is required on HTTP/1.1).
    pub version: Version,
    /// Its request target.
    pub uri: &'a Uri,
    /// Its headers.
    pub headers: &'a HeaderMap,
}

/// The original request a decision request names (owned where it had to be parsed).
#[derive(Debug, Clone)]
pub struct Named<'a> {
    /// The original method.
    pub method: Cow<'a, Method>,
    /// The original host, not yet normalized (`None`: none named and the decision
    /// request has none either).
    pub host: Option<Cow<'a, HeaderValue>>,
    /// The original path as sent.
    pub path: Cow<'a, str>,
    /// The original query, without `?`.
    pub query: Option<Cow<'a, str>>,
    /// The original scheme was https.
    pub tls: bool,
}

impl Named<'_> {
    /// As [`super::decide`] takes it; `headers` are the decision request's (token
    /// sources).
    pub fn original<'s>(&'s self, headers: &'s HeaderMap) -> super::Original<'s> {
        super::Original {
            method: &self.method,
            host: self.host.as_deref(),
            path: &self.path,
            query: self.query.as_deref(),
            headers,
            tls: self.tls,
        }
    }
}

fn bad(e: OriginalError) -> Denial {
    Denial::BadRequest(BadRequest::Original(e))
}

/// The original request of `asking` under `convention`, or the §4 400 that refuses it.
pub fn read<'a>(convention: Convention, asking: &Asking<'a>) -> Result<Named<'a>, Denial> {
    match convention {
        Convention::XForwarded => x_forwarded(asking),
        Convention::XOriginal => x_original(asking),
        Convention::Envoy => Ok(Named {
            method: Cow::Borrowed(asking.method),
            host: own_host(asking)?,
            path: Cow::Borrowed(asking.uri.path()),
            query: asking.uri.query().map(Cow::Borrowed),
            tls: false,
        }),
    }
}

fn x_forwarded<'a>(asking: &Asking<'a>) -> Result<Named<'a>, Denial> {
    let h = asking.headers;
    let method = method(asking, &X_FORWARDED_METHOD)?;
    let uri = one(h, &X_FORWARDED_URI)?.ok_or(bad(OriginalError::MissingUri))?;
    let (path, query) = path_and_query(uri)?;
    let host = match one(h, &X_FORWARDED_HOST)? {
        Some(v) => Some(Cow::Borrowed(v)),
        None => own_host(asking)?,
    };
    let tls = one(h, &X_FORWARDED_PROTO)?.is_some_and(|p| {
        p.as_bytes().eq_ignore_ascii_case(b"https") || p.as_bytes().eq_ignore_ascii_case(b"wss")
    });
    Ok(Named {
        method,
        host,
        path: Cow::Borrowed(path),
        query: query.map(Cow::Borrowed),
        tls,
    })
}

fn x_original<'a>(asking: &Asking<'a>) -> Result<Named<'a>, Denial> {
    let h = asking.headers;
    let method = method(asking, &X_ORIGINAL_METHOD)?;
    let uri = one(h, &X_ORIGINAL_URI)?.map(path_and_query).transpose()?;
    let url = one(h, &X_ORIGINAL_URL)?.map(absolute).transpose()?;
    match (uri, url) {
        (None, None) => Err(bad(OriginalError::MissingUri)),
        (Some((path, query)), None) => Ok(Named {
            method,
            host: own_host(asking)?,
            path: Cow::Borrowed(path),
            query: query.map(Cow::Borrowed),
            tls: false,
        }),
        (uri, Some(url)) => {
            if let Some((path, query)) = uri {
                if path != url.path || query != url.query.as_deref() {
                    return Err(bad(OriginalError::Disagree));
                }
            }
            Ok(Named {
                method,
                host: Some(Cow::Owned(url.authority)),
                path: Cow::Owned(url.path),
                query: url.query.map(Cow::Owned),
                tls: url.tls,
            })
        }
    }
}

/// The one value of `name`: `None` when absent, 400 when sent more than once.
fn one<'a>(h: &'a HeaderMap, name: &HeaderName) -> Result<Option<&'a HeaderValue>, Denial> {
    let mut all = h.get_all(name).iter();
    match (all.next(), all.next()) {
        (v, None) => Ok(v),
        _ => Err(bad(OriginalError::Repeated)),
    }
}

/// The convention's method header, else the decision request's method.
fn method<'a>(asking: &Asking<'a>, name: &HeaderName) -> Result<Cow<'a, Method>, Denial> {
    match one(asking.headers, name)? {
        None => Ok(Cow::Borrowed(asking.method)),
        Some(v) => Method::from_bytes(v.as_bytes())
            .map(Cow::Owned)
            .map_err(|_| bad(OriginalError::BadMethod)),
    }
}

/// The decision request's own host: `:authority` (HTTP/2) or `Host`, validated with
/// the SPEC §2 rules (it is the original host when the convention names none).
fn own_host<'a>(asking: &Asking<'a>) -> Result<Option<Cow<'a, HeaderValue>>, Denial> {
    crate::host::of_request(asking.version, asking.uri, asking.headers)
        .map_err(|e| Denial::BadRequest(BadRequest::Host(e)))?;
    if let Some(a) = asking.uri.authority() {
        let v = HeaderValue::from_str(a.as_str())
            .map_err(|_| Denial::BadRequest(BadRequest::Host(crate::host::HostError::BadChar)))?;
        return Ok(Some(Cow::Owned(v)));
    }
    Ok(asking.headers.get(HOST).map(Cow::Borrowed))
}

/// An origin-form target (`/path?query`), split at the first `?`: visible ASCII
/// only (what a request line may carry), no fragment.
fn path_and_query(v: &HeaderValue) -> Result<(&str, Option<&str>), Denial> {
    let s = v.to_str().map_err(|_| bad(OriginalError::NotAPath))?;
    if !s.starts_with('/') || s.bytes().any(|b| !(0x21..=0x7e).contains(&b) || b == b'#') {
        return Err(bad(OriginalError::NotAPath));
    }
    Ok(match s.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (s, None),
    })
}

/// `X-Original-URL`, parsed.
struct Url {
    authority: HeaderValue,
    path: String,
    query: Option<String>,
    tls: bool,
}

/// An absolute `http://` or `https://` URL with an authority; its path (`/` when
/// empty) and query.
fn absolute(v: &HeaderValue) -> Result<Url, Denial> {
    let not = || bad(OriginalError::NotAPath);
    let s = v.to_str().map_err(|_| not())?;
    if s.bytes().any(|b| !(0x21..=0x7e).contains(&b) || b == b'#') {
        return Err(not());
    }
    let uri: Uri = s.parse().map_err(|_| not())?;
    let tls = match uri.scheme_str() {
        Some(sc) if sc.eq_ignore_ascii_case("https") => true,
        Some(sc) if sc.eq_ignore_ascii_case("http") => false,
        _ => return Err(not()),
    };
    let authority = uri
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        .ok_or_else(not)?;
    // `http://h?q` has no path: the path is `/`, as a client would request it.
    let path = match uri.path() {
        "" => "/".to_owned(),
        p => p.to_owned(),
    };
    Ok(Url {
        authority,
        path,
        query: uri.query().map(str::to_owned),
        tls,
    })
}

#[cfg(test)]
#[path = "convention_tests.rs"]
mod tests;
