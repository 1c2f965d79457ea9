//! Pooled HTTP clients, one per upstream, built at load time with that upstream's
//! connect timeout. A request is answered 502 when the upstream cannot be reached or
//! resets, 504 when it does not answer within `timeout` (SPEC §4).

use crate::config::{Upstream, UpstreamKind};
use crate::deny::Denial;
use crate::tls::TlsError;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::time::Duration;

/// The client type used for upstreams (http and https).
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, Incoming>;

/// Builds the pooled client for one upstream (`None` for the built-in echo).
/// `https://` upstreams are verified against the webpki roots plus the upstream's
/// `ca`, and may negotiate HTTP/2 by ALPN (gRPC passes through then).
pub fn client_for(u: &Upstream) -> Result<Option<UpstreamClient>, TlsError> {
    if u.kind == UpstreamKind::Echo {
        return Ok(None);
    }
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(u.connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let tls = crate::tls::client_config(u.ca.as_deref())?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http);
    Ok(Some(
        Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(https),
    ))
}

/// Sends a request and waits for the response head within `timeout`.
pub async fn send(
    client: &UpstreamClient,
    req: http::Request<Incoming>,
    timeout: Duration,
) -> Result<http::Response<Incoming>, Denial> {
    match tokio::time::timeout(timeout, client.request(req)).await {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) if client_body_failed(&e) => {
            // The client's body broke its own framing mid-stream (a bad chunk size,
            // a missing CRLF): the upstream got a reset, never a complete request,
            // and the fault is the client's: 400, not 502 (issue #9).
            tracing::debug!(error = %e, "client request body failed while forwarding");
            Err(Denial::BadRequest)
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, connect = e.is_connect(), "upstream request failed");
            Err(Denial::BadGateway)
        }
        Err(_) => Err(Denial::GatewayTimeout),
    }
}

/// Whether hyper gave up because the request body (what the client sends) errored.
fn client_body_failed(e: &hyper_util::client::legacy::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.downcast_ref::<hyper::Error>()
            .is_some_and(hyper::Error::is_user)
        {
            return true;
        }
        cause = c.source();
    }
    false
}
