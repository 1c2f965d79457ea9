//! Every refusal portcullis answers itself, and the one place its status, JSON body
//! and `WWW-Authenticate` are decided (SPEC §4 table; RFC 6750 §3 for the challenge).

use crate::auth::dpop::{ProofError, ALGS};
use crate::auth::error::TokenError;
use crate::body::ProxyBody;
use crate::host::HostError;
use crate::path::PathError;
use bytes::Bytes;
use http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

/// A request portcullis answers itself instead of forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// No token where one is required.
    NoToken,
    /// A token that did not verify.
    Invalid(TokenError),
    /// Scopes or claims missing; the route's scopes for the challenge (empty when
    /// only a claim rule failed).
    Insufficient(String),
    /// A `deny` route.
    DenyRoute,
    /// No route matched.
    NoRoute,
    /// Malformed path or request; the rule that fired names it in the access log.
    BadRequest(BadRequest),
    /// A request head over `max_header_bytes` or with too many fields.
    HeaderTooLarge,
    /// A request target longer than the HTTP library accepts.
    UriTooLong,
    /// Upstream refused or reset.
    BadGateway,
    /// Upstream too slow.
    GatewayTimeout,
    /// A dependency (state backend) is down and we fail closed.
    Unavailable,
    /// A browser without token or session on a `login = true` route: `302` to the
    /// provider, with the login cookie (SPEC §9). Every front door answers it as is.
    Login(Box<Redirect>),
    /// A DPoP refusal (SPEC §10), challenged with `WWW-Authenticate: DPoP`.
    Dpop(DpopDenial),
}

/// Why a request that uses or needs DPoP was refused (SPEC §10; RFC 9449 §7.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpopDenial {
    /// No token on a `dpop = "required"` route.
    NoToken,
    /// The proof is missing or invalid (`error="invalid_dpop_proof"`).
    Proof(ProofError),
    /// The token did not verify (`error="invalid_token"`).
    Token(TokenError),
    /// The token and the scheme or route disagree on DPoP (`error="invalid_token"`).
    Binding(&'static str),
}

/// A `302` portcullis answers itself (SPEC §9): where to, and the cookies to set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// `Location`.
    pub location: HeaderValue,
    /// `Set-Cookie` values.
    pub cookies: Vec<HeaderValue>,
}

impl Redirect {
    /// `302`, `Location`, the cookies, `Cache-Control: no-store`, no body.
    pub fn parts(&self) -> (StatusCode, HeaderMap, Bytes) {
        let mut h = HeaderMap::new();
        h.insert(http::header::LOCATION, self.location.clone());
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        for c in &self.cookies {
            h.append(http::header::SET_COOKIE, c.clone());
        }
        (StatusCode::FOUND, h, Bytes::new())
    }

    /// The redirect as a response.
    pub fn response(&self) -> Response<ProxyBody> {
        let (status, headers, _) = self.parts();
        let mut resp = Response::new(ProxyBody::empty());
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        resp
    }
}

/// Which rule refused a request with 400 (SPEC §2 path and host handling, §3, §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadRequest {
    /// The path (SPEC §2 "Path handling").
    Path(PathError),
    /// The host (SPEC §2 "Host handling").
    Host(HostError),
    /// Several `Authorization` headers (SPEC §3).
    DuplicateAuthorization,
    /// `CONNECT` (SPEC §2: no forward proxy).
    Connect,
    /// An ambiguously framed request (SPEC §4 smuggling checks) seen by the handler.
    Smuggling,
    /// A head the connection's smuggling guard refused ([`crate::smuggle`]): ambiguous
    /// framing, or a head the HTTP library would refuse.
    Framing,
    /// The client's request body broke its own framing while forwarded.
    ClientBody,
    /// The rewritten request target could not be built.
    Target,
    /// A sign-in callback that starts no session (SPEC §9): bad or missing state,
    /// an `error` parameter, a refused code, a bad ID token.
    Login,
    /// A forward-auth decision request that names no usable original request
    /// (SPEC §8).
    Original(OriginalError),
}

/// Why a forward-auth decision request names no usable original request (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginalError {
    /// The convention's original-URI header is absent.
    MissingUri,
    /// A header of the convention was sent more than once.
    Repeated,
    /// The original URI is not a path (or, for `X-Original-URL`, not an absolute URL).
    NotAPath,
    /// `X-Original-URI` and `X-Original-URL` name different paths or queries.
    Disagree,
    /// The original method is not an HTTP token.
    BadMethod,
    /// The decision request has a body.
    Body,
}

impl BadRequest {
    /// `bad_request:<rule>`, the access log's `decision`.
    pub fn decision(self) -> &'static str {
        match self {
            BadRequest::Path(e) => match e {
                PathError::NotAbsolute => "bad_request:path_not_origin_form",
                PathError::EncodedSeparator => "bad_request:encoded_slash",
                PathError::Backslash => "bad_request:backslash",
                PathError::Nul => "bad_request:nul",
                PathError::AboveRoot => "bad_request:dot_dot_above_root",
                PathError::NotUtf8 => "bad_request:path_not_utf8",
                PathError::BadEscape => "bad_request:bad_escape",
                PathError::DotParams => "bad_request:dot_segment_params",
                PathError::TooLong => "bad_request:path_too_long",
            },
            BadRequest::Host(e) => match e {
                HostError::Missing => "bad_request:missing_host",
                HostError::Several => "bad_request:several_hosts",
                HostError::Disagree => "bad_request:host_disagrees",
                _ => "bad_request:bad_host",
            },
            BadRequest::DuplicateAuthorization => "bad_request:duplicate_authorization",
            BadRequest::Connect => "bad_request:connect",
            BadRequest::Smuggling => "bad_request:smuggling",
            BadRequest::Framing => "bad_request:framing",
            BadRequest::ClientBody => "bad_request:client_body",
            BadRequest::Target => "bad_request:target",
            BadRequest::Original(e) => match e {
                OriginalError::MissingUri => "bad_request:missing_original_uri",
                OriginalError::Repeated => "bad_request:repeated_original_header",
                OriginalError::NotAPath => "bad_request:original_uri_not_a_path",
                OriginalError::Disagree => "bad_request:original_uri_disagrees",
                OriginalError::BadMethod => "bad_request:original_method",
                OriginalError::Body => "bad_request:decision_body",
            },
            BadRequest::Login => "bad_request:login_callback",
        }
    }
}

impl Denial {
    /// HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Denial::NoToken | Denial::Invalid(_) | Denial::Dpop(_) => StatusCode::UNAUTHORIZED,
            Denial::Insufficient(_) | Denial::DenyRoute => StatusCode::FORBIDDEN,
            Denial::NoRoute => StatusCode::NOT_FOUND,
            Denial::BadRequest(_) => StatusCode::BAD_REQUEST,
            Denial::HeaderTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Denial::UriTooLong => StatusCode::URI_TOO_LONG,
            Denial::BadGateway => StatusCode::BAD_GATEWAY,
            Denial::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            Denial::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Denial::Login(_) => StatusCode::FOUND,
        }
    }

    /// The `detail` of the JSON body.
    pub fn detail(&self) -> &'static str {
        match self {
            Denial::NoToken => "Not authenticated",
            Denial::Invalid(TokenError::Expired) => "Token has expired",
            Denial::Invalid(TokenError::Revoked) => "Token has been revoked",
            Denial::Invalid(_) => "Could not validate credentials",
            Denial::Insufficient(_) => "Not enough permissions",
            Denial::DenyRoute => "Forbidden",
            Denial::NoRoute => "Not Found",
            Denial::BadRequest(_) => "Bad Request",
            Denial::HeaderTooLarge => "Request Header Fields Too Large",
            Denial::UriTooLong => "URI Too Long",
            Denial::BadGateway => "Bad Gateway",
            Denial::GatewayTimeout => "Gateway Timeout",
            Denial::Unavailable => "Service Unavailable",
            Denial::Login(_) => "Found",
            Denial::Dpop(DpopDenial::NoToken) => "Not authenticated",
            Denial::Dpop(DpopDenial::Token(e)) => Denial::Invalid(*e).detail(),
            Denial::Dpop(_) => "Could not validate credentials",
        }
    }

    /// The decision label for the access log. A 400 names its rule
    /// (`bad_request:encoded_slash`); metrics keep the part before `:`
    /// ([`crate::metrics::RouteCounters::record`]) to bound cardinality.
    pub fn decision(&self) -> &'static str {
        match self {
            Denial::NoToken => "denied_no_token",
            Denial::Invalid(TokenError::Expired) => "denied_expired",
            Denial::Invalid(TokenError::Revoked) => "denied_revoked",
            Denial::Invalid(_) => "denied_invalid_token",
            Denial::Insufficient(_) => "denied_insufficient_scope",
            Denial::DenyRoute => "denied_route",
            Denial::NoRoute => "no_route",
            Denial::BadRequest(why) => why.decision(),
            Denial::HeaderTooLarge => "bad_request:header_too_large",
            Denial::UriTooLong => "bad_request:uri_too_long",
            Denial::BadGateway => "upstream_error",
            Denial::GatewayTimeout => "upstream_timeout",
            Denial::Unavailable => "unavailable",
            Denial::Login(_) => "login_redirect",
            Denial::Dpop(DpopDenial::NoToken) => "denied_no_token",
            Denial::Dpop(DpopDenial::Proof(_)) => "denied_dpop_proof",
            Denial::Dpop(DpopDenial::Token(e)) => Denial::Invalid(*e).decision(),
            Denial::Dpop(DpopDenial::Binding(_)) => "denied_invalid_token",
        }
    }

    fn challenge(&self) -> Option<HeaderValue> {
        let s = match self {
            Denial::NoToken => return Some(HeaderValue::from_static("Bearer")),
            Denial::Invalid(e) => {
                format!("Bearer error=\"invalid_token\", error_description=\"{e}\"")
            }
            Denial::Insufficient(scope) if scope.is_empty() => {
                return Some(HeaderValue::from_static(
                    "Bearer error=\"insufficient_scope\"",
                ))
            }
            Denial::Insufficient(scope) => {
                format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"")
            }
            Denial::Dpop(d) => {
                let (error, why) = match d {
                    DpopDenial::NoToken => {
                        return HeaderValue::from_str(&format!("DPoP algs=\"{ALGS}\"")).ok()
                    }
                    DpopDenial::Proof(e) => ("invalid_dpop_proof", e.to_string()),
                    DpopDenial::Token(e) => ("invalid_token", e.to_string()),
                    DpopDenial::Binding(why) => ("invalid_token", (*why).to_owned()),
                };
                format!("DPoP error=\"{error}\", error_description=\"{why}\", algs=\"{ALGS}\"")
            }
            _ => return None,
        };
        HeaderValue::from_str(&s).ok()
    }

    /// The §4 answer apart from the wire: status, `Content-Type` and
    /// `WWW-Authenticate`, and the JSON body (no hop-by-hop header: a forward-auth
    /// front door hands these to an ingress as they are).
    pub fn parts(&self) -> (StatusCode, HeaderMap, Bytes) {
        if let Denial::Login(r) = self {
            return r.parts();
        }
        let body = format!("{{\"detail\": \"{}\"}}", self.detail());
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(c) = self.challenge() {
            h.insert(WWW_AUTHENTICATE, c);
        }
        (self.status(), h, Bytes::from(body))
    }

    /// The response.
    pub fn response(&self) -> Response<ProxyBody> {
        let (status, headers, body) = self.parts();
        let mut r = Response::new(ProxyBody::full(body));
        *r.status_mut() = status;
        *r.headers_mut() = headers;
        if matches!(
            self,
            Denial::BadRequest(_) | Denial::HeaderTooLarge | Denial::UriTooLong
        ) {
            // A malformed request may have left the connection's framing in doubt.
            r.headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            (Denial::NoToken, 401, "Not authenticated", Some("Bearer")),
            (
                Denial::Invalid(TokenError::Expired),
                401,
                "Token has expired",
                Some("Bearer error=\"invalid_token\", error_description=\"token expired\""),
            ),
            (
                Denial::Invalid(TokenError::BadSignature),
                401,
                "Could not validate credentials",
                Some("Bearer error=\"invalid_token\", error_description=\"signature verification failed\""),
            ),
            (
                Denial::Insufficient("admin write".into()),
                403,
                "Not enough permissions",
                Some("Bearer error=\"insufficient_scope\", scope=\"admin write\""),
            ),
            (Denial::Insufficient(String::new()), 403, "Not enough permissions", Some("Bearer error=\"insufficient_scope\"")),
            (Denial::DenyRoute, 403, "Forbidden", None),
            (Denial::NoRoute, 404, "Not Found", None),
            (
                Denial::BadRequest(BadRequest::Connect),
                400,
                "Bad Request",
                None,
            ),
            (Denial::HeaderTooLarge, 431, "Request Header Fields Too Large", None),
            (Denial::UriTooLong, 414, "URI Too Long", None),
            (Denial::BadGateway, 502, "Bad Gateway", None),
            (Denial::GatewayTimeout, 504, "Gateway Timeout", None),
            (
                Denial::Dpop(DpopDenial::NoToken),
                401,
                "Not authenticated",
                Some("DPoP algs=\"ES256 ES384 EdDSA RS256 PS256\""),
            ),
            (
                Denial::Dpop(DpopDenial::Proof(ProofError::Replayed)),
                401,
                "Could not validate credentials",
                Some("DPoP error=\"invalid_dpop_proof\", error_description=\"DPoP proof replayed\", algs=\"ES256 ES384 EdDSA RS256 PS256\""),
            ),
            (
                Denial::Dpop(DpopDenial::Token(TokenError::Expired)),
                401,
                "Token has expired",
                Some("DPoP error=\"invalid_token\", error_description=\"token expired\", algs=\"ES256 ES384 EdDSA RS256 PS256\""),
            ),
        ];
        for (d, status, detail, challenge) in cases {
            let r = d.response();
            assert_eq!(r.status().as_u16(), status);
            assert_eq!(d.detail(), detail);
            assert_eq!(
                r.headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok()),
                challenge
            );
            assert_eq!(r.headers()[CONTENT_TYPE], "application/json");
        }
    }
}
