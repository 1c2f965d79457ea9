//! The OpenID Connect provider as a client sees it (SPEC §9): its discovery document
//! (fetched on first need, kept for [`METADATA_TTL`], fetched again after a failure)
//! naming `authorization_endpoint`, `token_endpoint` and `end_session_endpoint`, and
//! token requests (code exchange, refresh) with `client_secret_basic` or as a public
//! client (RFC 6749 §2.3.1, §4.1.3, §6; RFC 7636 §4.5).
//!
//! Guarantees: every call is bounded by [`CALL_TIMEOUT`] and [`MAX_BODY`] bytes; no
//! redirect is followed; errors name the URL and status, never a code or token.

use crate::auth::jwks::fetch::discovery_url;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use serde::Deserialize;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// Deadline of one call to the provider.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer read from the provider.
pub const MAX_BODY: usize = 256 * 1024;
/// How long a fetched discovery document is used.
pub const METADATA_TTL: Duration = Duration::from_secs(600);

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// Not reachable, or not in time, or no usable answer (502).
    #[error("provider unreachable: {0}")]
    Unreachable(String),
    /// The provider refused (a 4xx answer to a token request: bad code, refused refresh).
    #[error("provider refused the request ({0})")]
    Refused(u16),
}

/// The endpoints of the provider's discovery document.
#[derive(Debug, Clone, Deserialize)]
pub struct Metadata {
    /// `issuer`.
    pub issuer: String,
    /// `authorization_endpoint`.
    pub authorization_endpoint: String,
    /// `token_endpoint`.
    pub token_endpoint: String,
    /// `end_session_endpoint` (RP-initiated logout), when the provider has one.
    #[serde(default)]
    pub end_session_endpoint: Option<String>,
}

/// A token endpoint answer (RFC 6749 §5.1, OIDC Core §3.1.3.3).
#[derive(Clone, Deserialize)]
pub struct Tokens {
    /// `access_token`.
    pub access_token: Option<String>,
    /// `id_token`.
    pub id_token: Option<String>,
    /// `refresh_token`.
    pub refresh_token: Option<String>,
    /// `expires_in` (seconds).
    pub expires_in: Option<u64>,
    /// `scope`.
    pub scope: Option<String>,
}

type HttpClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The provider of `[login] issuer`.
pub struct Provider {
    iss: String,
    client: HttpClient,
    metadata: Mutex<Option<(Metadata, Instant)>>,
    /// Serializes discovery fetches.
    fetching: tokio::sync::Mutex<()>,
}

impl Provider {
    /// The provider at issuer URL `iss`, trusting the webpki roots plus `ca`.
    pub fn new(
        iss: &str,
        ca: Option<&std::path::Path>,
    ) -> Result<Self, crate::tls_client::TlsError> {
        let https = crate::tls_client::https_connector(Duration::from_secs(5), ca, false)?;
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https);
        Ok(Provider {
            iss: iss.to_owned(),
            client,
            metadata: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    fn cached(&self) -> Option<Metadata> {
        let m = self.metadata.lock().ok()?;
        m.as_ref()
            .filter(|(_, at)| at.elapsed() < METADATA_TTL)
            .map(|(m, _)| m.clone())
    }

    /// The discovery document (fetched on first need).
    pub async fn metadata(&self) -> Result<Metadata, ProviderError> {
        if let Some(m) = self.cached() {
            return Ok(m);
        }
        let _one = self.fetching.lock().await;
        if let Some(m) = self.cached() {
            return Ok(m);
        }
        let url = discovery_url(&self.iss);
        let req = http::Request::get(&url)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| ProviderError::Unreachable(e.to_string()))?;
        let (status, body) = self.call(&url, req).await?;
        if status != 200 {
            return Err(ProviderError::Unreachable(format!(
                "{url} answered {status}"
            )));
        }
        let m: Metadata = serde_json::from_slice(&body)
            .map_err(|_| ProviderError::Unreachable(format!("{url}: not a discovery document")))?;
        if m.issuer.trim_end_matches('/') != self.iss.trim_end_matches('/') {
            return Err(ProviderError::Unreachable(format!(
                "{url}: `issuer` does not match the configured issuer"
            )));
        }
        if let Ok(mut c) = self.metadata.lock() {
            *c = Some((m.clone(), Instant::now()));
        }
        Ok(m)
    }

    /// POSTs `form` to the token endpoint as client `client_id` (HTTP Basic with a
    /// secret, else `client_id` in the form).
    pub async fn token(
        &self,
        client_id: &str,
        secret: Option<&str>,
        form: &[(&str, &str)],
    ) -> Result<Tokens, ProviderError> {
        let m = self.metadata().await?;
        let mut body = super::form::encode(form);
        let mut req = http::Request::post(&m.token_endpoint)
            .header(http::header::ACCEPT, "application/json")
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        match secret {
            Some(s) => {
                // RFC 6749 §2.3.1: both parts form-urlencoded before Basic encoding.
                let enc = super::form::escape;
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    enc(client_id),
                    enc(s)
                ));
                req = req.header(http::header::AUTHORIZATION, format!("Basic {basic}"));
            }
            None => {
                body.push_str("&client_id=");
                body.push_str(&super::form::escape(client_id));
            }
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| ProviderError::Unreachable(e.to_string()))?;
        let (status, body) = self.call(&m.token_endpoint, req).await?;
        match status {
            200 => serde_json::from_slice(&body).map_err(|_| {
                ProviderError::Unreachable(format!("{}: not a token response", m.token_endpoint))
            }),
            400..=499 => Err(ProviderError::Refused(status)),
            s => Err(ProviderError::Unreachable(format!(
                "{} answered {s}",
                m.token_endpoint
            ))),
        }
    }

    async fn call(
        &self,
        url: &str,
        req: http::Request<Full<Bytes>>,
    ) -> Result<(u16, Bytes), ProviderError> {
        let fail = |e: &dyn std::fmt::Display| ProviderError::Unreachable(format!("{url}: {e}"));
        let work = async {
            let resp = self.client.request(req).await.map_err(|e| fail(&e))?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), MAX_BODY)
                .collect()
                .await
                .map_err(|e| fail(&e))?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(CALL_TIMEOUT, work)
            .await
            .map_err(|_| ProviderError::Unreachable(format!("{url}: no answer in time")))?
    }
}
