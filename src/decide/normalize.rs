//! Phase 1 (SPEC §2 "Path handling", "Host handling", §3): the request refused with
//! 400 naming the rule, or its host and path in the one normalized form that
//! routes match and the upstream is sent.

use super::{HostSource, RequestFacts};
use crate::auth::extract;
use crate::deny::{BadRequest, Denial};
use crate::host::{self, RequestHost};
use http::Method;
use std::borrow::Cow;

/// A request's host and path after normalization.
#[derive(Debug, Clone)]
pub struct Normalized<'a> {
    /// The validated, normalized host (`None`: the request named none).
    pub host: Option<RequestHost>,
    /// The normalized path: what routes match and what is forwarded.
    pub path: Cow<'a, str>,
    /// The query as sent, without the `?`.
    pub query: Option<&'a str>,
}

/// `CONNECT` refused, host validated, one `Authorization` at most, path normalized
/// (in this order: the first rule that fires names the 400).
pub fn normalize<'a>(facts: &RequestFacts<'a>) -> Result<Normalized<'a>, Denial> {
    let bad = |why| Denial::BadRequest(why);
    if facts.method == Method::CONNECT {
        return Err(bad(BadRequest::Connect));
    }
    let host = match facts.host {
        HostSource::Request { version, uri } => host::of_request(version, uri, facts.headers),
        HostSource::Named(v) => v.map(host::of_value).transpose(),
    }
    .map_err(|e| bad(BadRequest::Host(e)))?;
    extract::check_authorization(facts.headers)
        .map_err(|_| bad(BadRequest::DuplicateAuthorization))?;
    let path = crate::path::normalize(facts.path).map_err(|e| bad(BadRequest::Path(e)))?;
    Ok(Normalized {
        host,
        path,
        query: facts.query,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::HostError;
    use crate::path::PathError;
    use http::{HeaderMap, HeaderValue, Uri, Version};

    fn run(method: &Method, uri: &str, headers: &[(&str, &str)]) -> Result<String, &'static str> {
        let uri: Uri = uri.parse().expect("uri");
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        let facts = RequestFacts {
            method,
            host: HostSource::Request {
                version: Version::HTTP_11,
                uri: &uri,
            },
            path: uri.path(),
            query: uri.query(),
            headers: &h,
            tls: false,
            client: std::net::Ipv4Addr::LOCALHOST.into(),
        };
        normalize(&facts)
            .map(|n| {
                let host = n.host.as_ref().map_or("", RequestHost::as_str).to_owned();
                format!("{host} {} {:?}", n.path, n.query)
            })
            .map_err(|d| d.decision())
    }

    #[test]
    fn rules_name_the_400() {
        let h = [("host", "a.example")];
        let get = Method::GET;
        assert_eq!(
            run(&get, "/a/./b/../c?x=1", &h).as_deref(),
            Ok("a.example /a/c Some(\"x=1\")")
        );
        assert_eq!(
            run(&get, "/a?", &h).as_deref(),
            Ok("a.example /a Some(\"\")")
        );
        type Case<'a> = (&'a Method, &'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case<'_>] = &[
            (&Method::CONNECT, "/", &h, "bad_request:connect"),
            (&get, "/", &[], "bad_request:missing_host"),
            (&get, "/", &[("host", "a@b")], "bad_request:bad_host"),
            (
                &get,
                "/",
                &[
                    ("host", "a"),
                    ("authorization", "Bearer x"),
                    ("authorization", "Bearer y"),
                ],
                "bad_request:duplicate_authorization",
            ),
            (&get, "/a%2Fb", &h, "bad_request:encoded_slash"),
            (&get, "/..", &h, "bad_request:dot_dot_above_root"),
        ];
        for (m, uri, headers, want) in cases {
            assert_eq!(run(m, uri, headers), Err(*want), "{uri}");
        }
        assert_eq!(
            BadRequest::Path(PathError::Nul).decision(),
            "bad_request:nul"
        );
        assert_eq!(
            BadRequest::Host(HostError::Disagree).decision(),
            "bad_request:host_disagrees"
        );
    }

    #[test]
    fn named_host() {
        let h = HeaderMap::new();
        let named = HeaderValue::from_static("App.Example.:8443");
        let facts = RequestFacts {
            method: &Method::GET,
            host: HostSource::Named(Some(&named)),
            path: "/x",
            query: None,
            headers: &h,
            tls: true,
            client: std::net::Ipv4Addr::LOCALHOST.into(),
        };
        let n = normalize(&facts).expect("normalized");
        assert_eq!(
            n.host.as_ref().map(RequestHost::as_str),
            Some("app.example:8443")
        );
        assert!(matches!(n.path, Cow::Borrowed("/x")));
    }
}
