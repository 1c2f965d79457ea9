//! Every response of the built-in endpoints, decided here and nowhere else
//! (SPEC §5): the token response (RFC 6749 §5.1), its errors (RFC 6749 §5.2, with
//! FastAPI's `detail` beside the OAuth2 `error`), revocation (RFC 7009 §2.2), and the
//! JWKS / discovery documents. Token responses carry `Cache-Control: no-store`, and
//! so does a document built from the request's Host.

use crate::body::ProxyBody;
use http::header::{
    ALLOW, CACHE_CONTROL, CONNECTION, CONTENT_TYPE, PRAGMA, RETRY_AFTER, WWW_AUTHENTICATE,
};
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;
use std::time::Duration;

/// A successful token response.
#[derive(Serialize)]
pub struct TokenBody {
    /// The signed JWT.
    pub access_token: String,
    /// `bearer`, or `DPoP` for a token bound to the request's proof key (SPEC §10).
    pub token_type: &'static str,
    /// Access token lifetime in seconds.
    pub expires_in: u64,
    /// The new opaque refresh token.
    pub refresh_token: String,
    /// Granted scopes, space-separated.
    pub scope: String,
}

/// A refusal by the token or revocation endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantError {
    /// Malformed request (missing field, bad body): 400 `invalid_request`.
    InvalidRequest(&'static str),
    /// Wrong username or password: 401 `invalid_grant`, `WWW-Authenticate: Bearer`.
    BadCredentials,
    /// Disabled user: 400 `invalid_grant`.
    InactiveUser,
    /// Unknown, expired, revoked or reused refresh token: 400 `invalid_grant`.
    InvalidRefresh,
    /// A `grant_type` other than `password` and `refresh_token`.
    UnsupportedGrant,
    /// Too many failed logins: 429 with `Retry-After` (seconds).
    RateLimited(Duration),
    /// The client address has its most password checks in flight: 429 with
    /// `Retry-After: 1`.
    Busy,
    /// The state backend or the hashing pool is unavailable: 503.
    Unavailable,
    /// An invalid `DPoP` proof (SPEC §10): 400 `invalid_dpop_proof`.
    InvalidDpopProof,
}

impl GrantError {
    /// Status, `detail` and OAuth2 `error`.
    pub fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        match self {
            GrantError::InvalidRequest(d) => (StatusCode::BAD_REQUEST, d, "invalid_request"),
            GrantError::BadCredentials => (
                StatusCode::UNAUTHORIZED,
                "Incorrect username or password",
                "invalid_grant",
            ),
            GrantError::InactiveUser => (StatusCode::BAD_REQUEST, "Inactive user", "invalid_grant"),
            GrantError::InvalidRefresh => (
                StatusCode::BAD_REQUEST,
                "Invalid refresh token",
                "invalid_grant",
            ),
            GrantError::UnsupportedGrant => (
                StatusCode::BAD_REQUEST,
                "Unsupported grant type",
                "unsupported_grant_type",
            ),
            GrantError::RateLimited(_) => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many failed login attempts, try again later",
                "temporarily_unavailable",
            ),
            GrantError::Busy => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many logins in progress from this address, try again later",
                "temporarily_unavailable",
            ),
            GrantError::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "temporarily_unavailable",
            ),
            GrantError::InvalidDpopProof => (
                StatusCode::BAD_REQUEST,
                "Invalid DPoP proof",
                "invalid_dpop_proof",
            ),
        }
    }

    /// The decision label for the access log.
    pub fn decision(&self) -> &'static str {
        match self {
            GrantError::InvalidRequest(_) => "token_bad_request",
            GrantError::BadCredentials => "login_failed",
            GrantError::InactiveUser => "login_inactive",
            GrantError::InvalidRefresh => "refresh_rejected",
            GrantError::UnsupportedGrant => "token_unsupported_grant",
            GrantError::RateLimited(_) => "login_rate_limited",
            GrantError::Busy => "login_busy",
            GrantError::Unavailable => "unavailable",
            GrantError::InvalidDpopProof => "token_dpop_rejected",
        }
    }

    /// The `portcullis_logins_total` result of a password grant refused so.
    pub fn login(&self) -> crate::metrics::Login {
        use crate::metrics::Login;
        match self {
            GrantError::BadCredentials => Login::Failed,
            GrantError::InactiveUser => Login::Inactive,
            GrantError::RateLimited(_) => Login::RateLimited,
            GrantError::Busy => Login::Busy,
            GrantError::Unavailable => Login::Unavailable,
            GrantError::InvalidRequest(_)
            | GrantError::InvalidDpopProof
            | GrantError::InvalidRefresh
            | GrantError::UnsupportedGrant => Login::BadRequest,
        }
    }

    /// The response. `close`: the request body may be left unread.
    pub fn response(&self, close: bool) -> Response<ProxyBody> {
        let (status, detail, error) = self.parts();
        let body = serde_json::json!({"detail": detail, "error": error}).to_string();
        let mut r = json(status, body);
        no_store(&mut r);
        let h = r.headers_mut();
        match self {
            GrantError::BadCredentials => {
                h.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            GrantError::RateLimited(d) => {
                // Round up: a client retrying after this many seconds is not refused.
                let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
                h.insert(RETRY_AFTER, HeaderValue::from(secs.max(1)));
            }
            GrantError::Busy => {
                h.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            _ => {}
        }
        if close {
            h.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        r
    }
}

fn json(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// RFC 6749 §5.1: token responses must not be cached.
fn no_store(r: &mut Response<ProxyBody>) {
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
}

/// 200 with the token response.
pub fn token(body: &TokenBody) -> Response<ProxyBody> {
    let text = serde_json::to_string(body).unwrap_or_default();
    let mut r = json(StatusCode::OK, text);
    no_store(&mut r);
    r
}

/// RFC 7009 §2.2: 200 whether or not the token was known.
pub fn revoked() -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::empty());
    no_store(&mut r);
    r
}

/// A public JSON document (JWKS, discovery), cacheable for five minutes.
pub fn document(body: String) -> Response<ProxyBody> {
    let mut r = json(StatusCode::OK, body);
    r.headers_mut().insert(
        CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

/// A public JSON document built from the request (the discovery document on the
/// request's Host): `no-store`, so a shared cache never hands one host's URLs to
/// another (SPEC §5).
pub fn per_request_document(body: String) -> Response<ProxyBody> {
    let mut r = json(StatusCode::OK, body);
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// 405 for a built-in path asked with another method.
pub fn method_not_allowed(allow: &'static str) -> Response<ProxyBody> {
    let mut r = json(
        StatusCode::METHOD_NOT_ALLOWED,
        r#"{"detail": "Method Not Allowed"}"#.to_owned(),
    );
    r.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            (
                GrantError::BadCredentials,
                401,
                "Incorrect username or password",
                "invalid_grant",
            ),
            (
                GrantError::InactiveUser,
                400,
                "Inactive user",
                "invalid_grant",
            ),
            (
                GrantError::InvalidRefresh,
                400,
                "Invalid refresh token",
                "invalid_grant",
            ),
            (
                GrantError::UnsupportedGrant,
                400,
                "Unsupported grant type",
                "unsupported_grant_type",
            ),
            (
                GrantError::InvalidRequest("Missing username"),
                400,
                "Missing username",
                "invalid_request",
            ),
        ];
        for (e, status, detail, error) in cases {
            let r = e.response(false);
            assert_eq!(r.status().as_u16(), status);
            assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
            assert_eq!(e.parts().1, detail);
            assert_eq!(e.parts().2, error);
            assert_eq!(
                r.headers().contains_key(WWW_AUTHENTICATE),
                e == GrantError::BadCredentials
            );
        }
        let r = GrantError::RateLimited(Duration::from_millis(1500)).response(false);
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[RETRY_AFTER], "2");
        let r = GrantError::Busy.response(false);
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()[RETRY_AFTER], "1");
        assert_eq!(r.headers()[CACHE_CONTROL], "no-store");
        assert_eq!(GrantError::Busy.parts().2, "temporarily_unavailable");
    }
}
