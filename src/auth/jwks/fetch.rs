//! Fetching JWKS and discovery documents (SPEC §3): bounded to [`MAX_BODY`] bytes and
//! [`FETCH_TIMEOUT`] end to end, no redirects, `Cache-Control: max-age` read; a
//! discovery document must name the configured issuer (OIDC Discovery §4.3). Errors
//! name URLs and statuses, never document content.

use crate::tls_client::TlsError;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde_json::Value;
use std::time::Duration;

/// Largest JWKS or discovery document accepted.
pub const MAX_BODY: usize = 256 * 1024;
/// Deadline for one fetch (connect, response and body).
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// TCP connect deadline within a fetch.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a fetch failed. Messages name URLs and statuses, never document content.
#[derive(Debug, Clone, thiserror::Error)]
pub enum JwksError {
    /// Connection, TLS or protocol failure.
    #[error("request to {0} failed: {1}")]
    Http(String, String),
    /// A status other than 200.
    #[error("{0} answered HTTP {1}")]
    Status(String, u16),
    /// The body is over [`MAX_BODY`].
    #[error("{0}: document larger than {MAX_BODY} bytes")]
    TooLarge(String),
    /// No answer within [`FETCH_TIMEOUT`].
    #[error("{0}: no answer within {FETCH_TIMEOUT:?}")]
    Timeout(String),
    /// Not a JWK set / discovery document.
    #[error("{0}: {1}")]
    Invalid(String, &'static str),
}

/// The HTTP(S) client used for JWKS and discovery fetches.
pub type FetchClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Builds a fetch client trusting the webpki roots plus `ca`.
pub fn client(ca: Option<&std::path::Path>) -> Result<FetchClient, TlsError> {
    let https = crate::tls_client::https_connector(CONNECT_TIMEOUT, ca, false)?;
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https))
}

/// A fetched document and the `Cache-Control: max-age` it came with.
pub(super) struct Fetched {
    pub(super) body: Bytes,
    pub(super) max_age: Option<Duration>,
}

/// GETs `url`: 200 and a body of at most [`MAX_BODY`] bytes within [`FETCH_TIMEOUT`].
pub(super) async fn get(client: &FetchClient, url: &str) -> Result<Fetched, JwksError> {
    let fail = |e: &dyn std::fmt::Display| JwksError::Http(url.to_owned(), e.to_string());
    let uri: http::Uri = url.parse().map_err(|e| fail(&e))?;
    let req = http::Request::get(uri)
        .header(http::header::ACCEPT, "application/json")
        .header(
            http::header::USER_AGENT,
            concat!("portcullis/", env!("CARGO_PKG_VERSION")),
        )
        .body(Empty::new())
        .map_err(|e| fail(&e))?;
    let work = async {
        let resp = client.request(req).await.map_err(|e| fail(&e))?;
        if resp.status() != http::StatusCode::OK {
            return Err(JwksError::Status(url.to_owned(), resp.status().as_u16()));
        }
        let max_age = resp
            .headers()
            .get_all(http::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(max_age);
        let body = Limited::new(resp.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    JwksError::TooLarge(url.to_owned())
                } else {
                    fail(&e)
                }
            })?
            .to_bytes();
        Ok(Fetched { body, max_age })
    };
    tokio::time::timeout(FETCH_TIMEOUT, work)
        .await
        .map_err(|_| JwksError::Timeout(url.to_owned()))?
}

/// `max-age=N` from one `Cache-Control` value (RFC 9111 §5.2.2.1).
pub(super) fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|d| {
        let (name, v) = d.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        v.trim()
            .trim_matches('"')
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
    })
}

/// The discovery URL of an issuer (OIDC Discovery §4): a trailing `/` of the
/// issuer is not doubled.
pub fn discovery_url(issuer: &str) -> String {
    format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    )
}

/// Reads `jwks_uri` from a discovery document, checking it is for `issuer`
/// (OIDC Discovery §4.3; a trailing `/` difference is tolerated).
pub(super) fn jwks_uri(url: &str, issuer: &str, body: &[u8]) -> Result<String, JwksError> {
    let bad = |m| JwksError::Invalid(url.to_owned(), m);
    let doc: Value = serde_json::from_slice(body).map_err(|_| bad("not a JSON document"))?;
    let named = doc
        .get("issuer")
        .and_then(Value::as_str)
        .ok_or(bad("no `issuer`"))?;
    if named.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(bad("`issuer` does not match the configured issuer"));
    }
    let uri = doc
        .get("jwks_uri")
        .and_then(Value::as_str)
        .ok_or(bad("no `jwks_uri`"))?;
    if !(uri.starts_with("https://") || uri.starts_with("http://")) {
        return Err(bad("`jwks_uri` is not an http(s) URL"));
    }
    Ok(uri.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_urls() {
        assert_eq!(
            discovery_url("https://idp.example/"),
            "https://idp.example/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://idp.example/realms/x"),
            "https://idp.example/realms/x/.well-known/openid-configuration"
        );
        let doc = br#"{"issuer": "https://idp.example/", "jwks_uri": "https://idp.example/keys"}"#;
        assert_eq!(
            jwks_uri("u", "https://idp.example", doc).ok().as_deref(),
            Some("https://idp.example/keys")
        );
        assert!(jwks_uri("u", "https://other.example", doc).is_err());
        let doc = br#"{"issuer": "i", "jwks_uri": "file:///etc/passwd"}"#;
        assert!(jwks_uri("u", "i", doc).is_err());
    }
}
