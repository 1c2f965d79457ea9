//! A `CheckRequest`'s `attributes.request.http` read as the original request (SPEC §8
//! gRPC): method, path with its query split at the first `?`, host, headers. Nothing
//! here is trusted: anything missing or unrepresentable is an [`Invalid`], which the
//! service answers INVALID_ARGUMENT (a denial, never an allow).

use super::super::Original;
use crate::deny::{BadRequest, Denial, OriginalError};
use crate::host::HostError;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::envoy::service::auth::v3::CheckRequest;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// Why a `CheckRequest` names no original request we can judge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Invalid {
    /// No `attributes.request.http`.
    NoHttp,
    /// An empty `path`.
    NoPath,
    /// A `path` that is no origin-form request target (RFC 9112 §3.2.1): not starting
    /// with `/`, or with bytes a request line cannot carry (space, control, `#`).
    NotAPath,
    /// An empty or malformed `method`.
    Method,
    /// A `host` that is no header value.
    Host,
    /// A header whose name or value is not one HTTP allows.
    Header,
}

impl Invalid {
    /// The §4 400 it is answered with; the rule it names in the access log.
    pub(super) fn denial(self) -> Denial {
        Denial::BadRequest(match self {
            // No `path`: the request names no original URI.
            Invalid::NoHttp | Invalid::NoPath => BadRequest::Original(OriginalError::MissingUri),
            Invalid::NotAPath => BadRequest::Original(OriginalError::NotAPath),
            Invalid::Method => BadRequest::Original(OriginalError::BadMethod),
            Invalid::Host => BadRequest::Host(HostError::BadChar),
            // A field the HTTP library would refuse in a request head.
            Invalid::Header => BadRequest::Framing,
        })
    }
}

/// The original request, owned (the `CheckRequest` is decoded into owned strings).
#[derive(Debug)]
pub(super) struct Request {
    method: Method,
    host: Option<HeaderValue>,
    path: String,
    query: Option<String>,
    /// The original headers, names lowercased, pseudo-headers left out.
    pub headers: HeaderMap,
    tls: bool,
}

impl Request {
    /// The borrowed view [`super::super::decide`] takes.
    pub(super) fn original(&self) -> Original<'_> {
        Original {
            method: &self.method,
            host: self.host.as_ref(),
            path: &self.path,
            query: self.query.as_deref(),
            headers: &self.headers,
            tls: self.tls,
        }
    }
}

/// Reads the original request out of `check`.
pub(super) fn read(check: &CheckRequest) -> Result<Request, Invalid> {
    let http = check
        .attributes
        .as_ref()
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref())
        .ok_or(Invalid::NoHttp)?;
    if http.path.is_empty() {
        return Err(Invalid::NoPath);
    }
    let (path, query) = path_and_query(&http.path)?;
    let method = Method::from_bytes(http.method.as_bytes()).map_err(|_| Invalid::Method)?;
    let headers = headers(http)?;
    let host = host(http, &headers)?;
    Ok(Request {
        method,
        host,
        path,
        query,
        headers,
        tls: http.scheme.eq_ignore_ascii_case("https"),
    })
}

/// `path` split at its first `?`, when it is an origin-form target: what an HTTP/1.1
/// request line or an HTTP/2 `:path` could carry (the `http` crate's parser), starting
/// with `/`, and parsed whole (a `#` would make the parser drop the rest). The path
/// rules of SPEC §2 (`%2F`, `..` above the root, NUL, ...) are the decision's.
fn path_and_query(raw: &str) -> Result<(String, Option<String>), Invalid> {
    let parsed: http::uri::PathAndQuery = raw.parse().map_err(|_| Invalid::NotAPath)?;
    if !raw.starts_with('/') || parsed.as_str() != raw {
        return Err(Invalid::NotAPath);
    }
    Ok((parsed.path().to_owned(), parsed.query().map(str::to_owned)))
}

/// `headers` (one value per name, Envoy joins repeats), or `header_map` when Envoy
/// sends raw headers (`encode_raw_headers`: repeats kept). Pseudo-headers (`:path`,
/// `:authority`, ...) are no headers: `path` and `host` carry them.
fn headers(http: &HttpRequest) -> Result<HeaderMap, Invalid> {
    let mut out = HeaderMap::new();
    let mut add = |name: &str, value: &[u8]| -> Result<(), Invalid> {
        if name.starts_with(':') {
            return Ok(());
        }
        // HeaderName lowercases; both refuse what HTTP would not carry.
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| Invalid::Header)?;
        let value = HeaderValue::from_bytes(value).map_err(|_| Invalid::Header)?;
        out.append(name, value);
        Ok(())
    };
    for (name, value) in &http.headers {
        add(name, value.as_bytes())?;
    }
    if let Some(raw) = &http.header_map {
        for h in &raw.headers {
            add(&h.key, raw_value(h))?;
        }
    }
    Ok(out)
}

/// `host`, else the `:authority` or `host` header; none at all is `None` (the
/// decision answers it as SPEC §2 host handling says).
fn host(http: &HttpRequest, headers: &HeaderMap) -> Result<Option<HeaderValue>, Invalid> {
    let named = if http.host.is_empty() {
        let authority = http.headers.get(":authority").map(String::as_bytes);
        let raw = http.header_map.as_ref().and_then(|m| {
            let h = m.headers.iter().find(|h| h.key == ":authority")?;
            Some(raw_value(h))
        });
        authority.or(raw)
    } else {
        Some(http.host.as_bytes())
    };
    match named {
        Some(v) => HeaderValue::from_bytes(v)
            .map(Some)
            .map_err(|_| Invalid::Host),
        None => Ok(headers.get(http::header::HOST).cloned()),
    }
}

/// A raw header's value: `raw_value`, or `value` from an older Envoy.
fn raw_value(h: &envoy_types::pb::envoy::config::core::v3::HeaderValue) -> &[u8] {
    if h.raw_value.is_empty() {
        h.value.as_bytes()
    } else {
        &h.raw_value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::{HeaderMap as RawMap, HeaderValue as Raw};
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::Request as Req;
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;

    fn check(http: HttpRequest) -> CheckRequest {
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Req {
                    http: Some(http),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    fn http(method: &str, path: &str, host: &str) -> HttpRequest {
        HttpRequest {
            method: method.into(),
            path: path.into(),
            host: host.into(),
            ..Default::default()
        }
    }

    #[test]
    fn reads_method_path_query_host_scheme() {
        let mut h = http("POST", "/a/b?x=1?y=2", "app.example.com");
        h.scheme = "HTTPS".into();
        h.headers.insert("Authorization".into(), "Bearer t".into());
        h.headers.insert(":path".into(), "/elsewhere".into());
        let r = read(&check(h)).unwrap();
        let o = r.original();
        assert_eq!(o.method, Method::POST);
        assert_eq!((o.path, o.query), ("/a/b", Some("x=1?y=2")));
        assert_eq!(o.host.unwrap(), "app.example.com");
        assert!(o.tls);
        assert_eq!(o.headers["authorization"], "Bearer t");
        assert_eq!(o.headers.len(), 1, "pseudo-headers are no headers");
        let r = read(&check(http("GET", "/", "h"))).unwrap();
        assert_eq!(r.original().query, None);
        assert!(!r.original().tls);
    }

    #[test]
    fn host_falls_back_to_authority_then_host_header() {
        let mut h = http("GET", "/", "");
        h.headers.insert(":authority".into(), "a.example".into());
        h.headers.insert("host".into(), "b.example".into());
        assert_eq!(
            read(&check(h)).unwrap().original().host.unwrap(),
            "a.example"
        );
        let mut h = http("GET", "/", "");
        h.headers.insert("host".into(), "b.example".into());
        assert_eq!(
            read(&check(h)).unwrap().original().host.unwrap(),
            "b.example"
        );
        assert!(read(&check(http("GET", "/", ""))).unwrap().host.is_none());
    }

    #[test]
    fn raw_header_map_keeps_repeats() {
        let mut h = http("GET", "/", "h");
        let raw = |k: &str, v: &str| Raw {
            key: k.into(),
            raw_value: v.as_bytes().to_vec(),
            ..Default::default()
        };
        h.header_map = Some(RawMap {
            headers: vec![raw("authorization", "a"), raw("authorization", "b")],
        });
        let r = read(&check(h)).unwrap();
        assert_eq!(r.headers.get_all("authorization").iter().count(), 2);
    }

    #[test]
    fn invalid_requests() {
        assert_eq!(read(&CheckRequest::default()).unwrap_err(), Invalid::NoHttp);
        let no_http = CheckRequest {
            attributes: Some(AttributeContext::default()),
        };
        assert_eq!(read(&no_http).unwrap_err(), Invalid::NoHttp);
        assert_eq!(
            read(&check(http("GET", "", "h"))).unwrap_err(),
            Invalid::NoPath
        );
        for not_a_path in [
            "*",
            "a/b",
            "http://h/a",
            "/a b",
            "/a#f",
            "/a\tb",
            "/a\u{7f}",
        ] {
            assert_eq!(
                read(&check(http("GET", not_a_path, "h"))).unwrap_err(),
                Invalid::NotAPath,
                "{not_a_path:?}"
            );
        }
        // The §2 path rules are the decision's, not the reader's.
        assert!(read(&check(http("GET", "/a%2Fb/../..", "h"))).is_ok());
        assert_eq!(
            read(&check(http("", "/", "h"))).unwrap_err(),
            Invalid::Method
        );
        assert_eq!(
            read(&check(http("G T", "/", "h"))).unwrap_err(),
            Invalid::Method
        );
        assert_eq!(
            read(&check(http("GET", "/", "a\nb"))).unwrap_err(),
            Invalid::Host
        );
        let mut h = http("GET", "/", "h");
        h.headers.insert("x-a".into(), "v\r\nx-user: eve".into());
        assert_eq!(read(&check(h)).unwrap_err(), Invalid::Header);
        let mut h = http("GET", "/", "h");
        h.headers.insert("bad name".into(), "v".into());
        assert_eq!(read(&check(h)).unwrap_err(), Invalid::Header);
    }
}
