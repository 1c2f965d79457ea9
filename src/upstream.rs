//! Upstream handles ([`Target`]): one per `[upstreams.NAME]`, built at load time with
//! its pooled HTTP client and connect timeout; a route holds its upstream's handle
//! (the decision yields it, no index to look up). A request is answered 502 when the
//! upstream cannot be reached or resets, 504 when it does not answer within
//! `timeout` (SPEC §4). Below the front doors and the decision, which both use it.

use crate::body::ReqBody;
use crate::config::{Upstream, UpstreamKind};
use crate::deny::{BadRequest, Denial};
use crate::tls_client::TlsError;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::sync::Arc;
use std::time::Duration;

/// The client type used for upstreams (http and https).
pub(crate) type UpstreamClient = Client<Fixed, ReqBody>;

/// The authority the requests to an `http://` upstream carry to its client: each
/// upstream has a client of its own, whose connector dials the upstream whatever the
/// request's authority says ([`Fixed`]), and the client's pool hashes the authority of
/// every request twice or three times, byte by byte (issue 20: ~1.7k instructions per
/// request for `127.0.0.1:8080`). It never reaches the wire: HTTP/1.1 requests go out
/// in origin form, with the `Host` the proxy sets ([`Target::host`] when the client
/// sent none). `https://` upstreams keep their own (HTTP/2 sends it as `:authority`).
const POOL_AUTHORITY: &str = "u";

/// A connector that dials one upstream, whatever the URI it is asked for. Behind
/// one `Arc`: the client clones its connector into every request's (lazy) connect
/// future, so a clone is one reference count and the future stays small.
#[derive(Clone)]
pub struct Fixed(Arc<FixedTo>);

struct FixedTo {
    inner: HttpsConnector<HttpConnector>,
    to: http::Uri,
}

type Inner = HttpsConnector<HttpConnector>;

impl tower_service::Service<http::Uri> for Fixed {
    type Response = <Inner as tower_service::Service<http::Uri>>::Response;
    type Error = <Inner as tower_service::Service<http::Uri>>::Error;
    type Future = <Inner as tower_service::Service<http::Uri>>::Future;

    /// Always ready, as hyper-util's `HttpConnector` with its `GaiResolver` (and
    /// so hyper-rustls's connector over it) is.
    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, _asked: http::Uri) -> Self::Future {
        self.0.inner.clone().call(self.0.to.clone())
    }
}

/// An upstream as the request path uses it: where to send, how long to wait, and
/// (for HTTP) its pooled client. Built once per config; a route's decision holds one.
pub struct Target {
    /// Config name (access log).
    pub name: String,
    /// Response deadline.
    pub timeout: Duration,
    /// The `Host` of a request that came without one (HTTP/1.0): the upstream's
    /// host, and its port unless the scheme's default (what the client would set).
    pub host: Option<http::HeaderValue>,
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
        /// The pooled client.
        client: UpstreamClient,
        /// `http` or `https`.
        scheme: http::uri::Scheme,
        /// `host:port`, or for `http://` the placeholder the client pools by
        /// ([`POOL_AUTHORITY`]).
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
                authority: if *scheme == http::uri::Scheme::HTTP {
                    http::uri::Authority::from_static(POOL_AUTHORITY)
                } else {
                    authority.clone()
                },
                prefix: prefix.clone(),
            },
        };
        let host = match &u.kind {
            UpstreamKind::Http {
                scheme, authority, ..
            } => default_host(scheme, authority),
            UpstreamKind::Echo => None,
        };
        Ok(Target {
            name: u.name.clone(),
            timeout: u.timeout,
            host,
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

/// Builds the pooled client for one HTTP upstream.
/// `https://` upstreams are verified against the webpki roots plus the upstream's
/// `ca`, and may negotiate HTTP/2 by ALPN (gRPC passes through then).
fn client_for(
    u: &Upstream,
    scheme: &http::uri::Scheme,
    authority: &http::uri::Authority,
) -> Result<UpstreamClient, TlsError> {
    let inner = crate::tls_client::https_connector(u.connect_timeout, u.ca.as_deref(), true)?;
    let to = http::Uri::builder()
        .scheme(scheme.clone())
        .authority(authority.clone())
        .path_and_query("/")
        .build()
        .map_err(|e| TlsError {
            path: String::new(),
            message: e.to_string(),
        })?;
    let https = Fixed(Arc::new(FixedTo { inner, to }));
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(256)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https))
}

/// The `Host` hyper-util's client sets on a request without one: the URI's host,
/// with its port unless it is the scheme's default.
fn default_host(
    scheme: &http::uri::Scheme,
    authority: &http::uri::Authority,
) -> Option<http::HeaderValue> {
    let default = if *scheme == http::uri::Scheme::HTTPS {
        443
    } else {
        80
    };
    let value = match authority.port_u16() {
        Some(p) if p != default => format!("{}:{p}", authority.host()),
        _ => authority.host().to_owned(),
    };
    http::HeaderValue::from_str(&value).ok()
}

/// Sends a request to `target` and waits for the response head within its
/// `timeout`. A request without `Host` gets [`Target::host`] (what the client would
/// set from the URI, which names the pool, not the upstream). The request goes to the
/// client (which boxes it) before the future is returned, so the future holds the
/// client's response future, not the request (issue 20).
pub(crate) fn send(
    client: &UpstreamClient,
    mut req: http::Request<ReqBody>,
    target: &Target,
) -> impl std::future::Future<Output = Result<http::Response<Incoming>, Denial>> + Send + 'static {
    if let Some(h) = &target.host {
        req.headers_mut()
            .entry(http::header::HOST)
            .or_insert_with(|| h.clone());
    }
    let (pending, timeout) = (client.request(req), target.timeout);
    async move { answer(tokio::time::timeout(timeout, pending).await) }
}

/// The client's answer (or the timeout's) as a response or a denial.
fn answer(
    r: Result<
        Result<http::Response<Incoming>, hyper_util::client::legacy::Error>,
        tokio::time::error::Elapsed,
    >,
) -> Result<http::Response<Incoming>, Denial> {
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
