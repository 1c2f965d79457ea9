//! Upstream handles ([`Target`]): one per `[upstreams.NAME]`, built at load time with
//! its connection [`pool`] and connect timeout; a route holds its upstream's handle
//! (the decision yields it, no index to look up). A request is answered 502 when the
//! upstream cannot be reached or resets, 504 when it does not answer within
//! `timeout` (SPEC §4). Below the front doors and the decision, which both use it.

use crate::body::ReqBody;
use crate::config::{Upstream, UpstreamKind};
use crate::deny::{BadRequest, Denial};
use crate::tls_client::TlsError;
pub(crate) use pool::UpBody;
use std::time::Duration;

pub(crate) mod pool;

/// The client type used for upstreams (http and https): their connection pool.
pub(crate) type UpstreamClient = pool::Pool<ReqBody>;

/// An upstream as the request path uses it: where to send, how long to wait, and
/// (for HTTP) its pooled client. Built once per config; a route's decision holds one.
pub struct Target {
    /// Config name (access log).
    pub name: String,
    /// Response deadline.
    pub timeout: Duration,
    /// Where requests go.
    pub kind: TargetKind,
}

/// The built-in echo, or an HTTP(S) upstream with its client.
// One per upstream, built at load time behind an `Arc`: the size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum TargetKind {
    /// The built-in echo upstream.
    Echo,
    /// HTTP or HTTPS.
    Http {
        /// The upstream's connection pool.
        client: UpstreamClient,
        /// `http` or `https`.
        scheme: http::uri::Scheme,
        /// `host:port`.
        authority: http::uri::Authority,
        /// Path prefix prepended to forwarded paths (`""` for none).
        prefix: String,
    },
}

impl Target {
    /// The target of one compiled upstream (fails on an unusable `ca`).
    pub fn new(u: &Upstream) -> Result<Self, TlsError> {
        let kind = match &u.kind {
            UpstreamKind::Echo => TargetKind::Echo,
            UpstreamKind::Http {
                scheme,
                authority,
                prefix,
            } => TargetKind::Http {
                client: client_for(u, scheme, authority)?,
                scheme: scheme.clone(),
                authority: authority.clone(),
                prefix: prefix.clone(),
            },
        };
        Ok(Target {
            name: u.name.clone(),
            timeout: u.timeout,
            kind,
        })
    }

    /// The path prefix prepended to forwarded paths.
    pub fn prefix(&self) -> &str {
        match &self.kind {
            TargetKind::Http { prefix, .. } => prefix,
            TargetKind::Echo => "",
        }
    }
}

/// Builds the connection pool for one HTTP upstream: idle connections live 90 s, at
/// most 256 per upstream. `https://` upstreams are verified against the webpki roots
/// plus the upstream's `ca`, and may negotiate HTTP/2 by ALPN (gRPC passes then).
fn client_for(
    u: &Upstream,
    scheme: &http::uri::Scheme,
    authority: &http::uri::Authority,
) -> Result<UpstreamClient, TlsError> {
    let https = crate::tls_client::https_connector(u.connect_timeout, u.ca.as_deref(), true)?;
    let limits = pool::Limits {
        max_idle: 256,
        idle_timeout: Duration::from_secs(90),
        connect_timeout: u.connect_timeout,
    };
    pool::Pool::new(https, scheme.clone(), authority.clone(), limits).map_err(|e| TlsError {
        path: u.name.clone(),
        message: format!("upstream address: {e}"),
    })
}

/// Sends a request to `target` and waits for the response head within its
/// `timeout` (the pool sets `Host` on a request without one, as the upstream's
/// `host:port`). `upgrade`: the request may switch protocols.
pub(crate) fn send<'a>(
    client: &'a UpstreamClient,
    req: http::Request<ReqBody>,
    target: &Target,
    upgrade: bool,
) -> impl std::future::Future<Output = Result<http::Response<UpBody>, Denial>> + Send + 'a {
    // Boxed: the pool's future (request, sender, its send) is large and the handler
    // moves the pending send into the future that awaits it (issue 20: bytes moved).
    let (timeout, pending) = (target.timeout, Box::pin(client.send(req, upgrade)));
    async move { answer(tokio::time::timeout(timeout, pending).await) }
}

/// The pool's answer (or the timeout's) as a response or a denial.
fn answer(
    r: Result<Result<http::Response<UpBody>, pool::Error>, tokio::time::error::Elapsed>,
) -> Result<http::Response<UpBody>, Denial> {
    match r {
        Ok(Ok(resp)) => Ok(resp),
        Ok(Err(e)) if client_body_failed(&e) => {
            // The client's body broke its own framing mid-stream (a bad chunk size,
            // a missing CRLF): the upstream got a reset, never a complete request,
            // and the fault is the client's: 400, not 502 (issue #9).
            tracing::debug!(error = %e, "client request body failed while forwarding");
            Err(Denial::BadRequest(BadRequest::ClientBody))
        }
        Ok(Err(e)) => {
            tracing::debug!(error = %e, connect = e.is_connect(), "upstream request failed");
            Err(Denial::BadGateway)
        }
        Err(_) => Err(Denial::GatewayTimeout),
    }
}

/// Whether hyper gave up because the request body (what the client sends) errored.
fn client_body_failed(e: &pool::Error) -> bool {
    let pool::Error::Http(e) = e else {
        return false;
    };
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
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
