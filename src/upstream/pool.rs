//! The connection pool of one HTTP upstream: hyper `client::conn` senders, HTTP/1.1
//! and HTTP/2 (ALPN on `https://`), without hyper-util's legacy client.
//!
//! The hot path is [`Pool::send`]: lock the upstream's small list, take the newest
//! HTTP/1.1 sender whose connection is idle again (or a clone of the one multiplexed
//! HTTP/2 sender), put it back as soon as the response head is in, and await the
//! response. No pool key is hashed and nothing is spawned per request. A sender goes
//! back right after the head (not at the end of the body): hyper marks it ready
//! again only once the response body has been read to its end, so a checkout skips
//! busy connections, and a connection whose body was dropped early (hyper closes it)
//! or that the upstream closed or reset is dropped when met. Idle senders older than
//! the idle timeout are dropped at checkout (no timer per request); at most `max_idle`
//! HTTP/1.1 senders are kept. A `101 Switching Protocols` answer takes its connection
//! with it (the upgrade owns it). A request that a pooled connection refused before
//! sending a byte (it closed meanwhile) is retried once on a new connection.
//!
//! Connecting (TCP with its timeout, TLS, the HTTP handshake, the connection's task)
//! is a separate boxed future, taken only on a miss, so the request's future stays
//! small.
//!
//! The hot path to a plain-`http://` upstream does not use hyper's client at all: a
//! bodyless `GET` or `HEAD` that does not ask to switch protocols goes through
//! [`crate::h1`] on a pool of its own sockets, written and read from the request's
//! task (issue 20: hyper's client dispatcher, its channel and oneshot were ~10k
//! instructions per request). A pooled socket that fails before the first byte of
//! the answer (the upstream had closed it) is replaced and the request sent once
//! more: `GET` and `HEAD` are idempotent (RFC 9110 §9.2.2).

use crate::h1;
use bytes::Bytes;
use http::header::HOST;
use http::uri::{Authority, Scheme};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use hyper::body::{Body, Incoming};
use hyper::client::conn::{http1, http2, TrySendError};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tower_service::Service;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a request got no response head.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The upstream could not be reached (DNS, TCP, connect timeout, TLS).
    #[error("connect: {0}")]
    Connect(BoxError),
    /// The HTTP exchange failed (handshake, reset, the request body's own error).
    #[error(transparent)]
    Http(#[from] hyper::Error),
    /// Our own HTTP/1.1 client's exchange failed.
    #[error(transparent)]
    Raw(h1::Error),
}

impl Error {
    /// Whether the upstream could not be reached at all.
    pub(crate) fn is_connect(&self) -> bool {
        matches!(self, Error::Connect(_))
    }
}

/// How many idle connections to keep, and for how long.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// HTTP/1.1 senders kept per upstream (busy ones included), and as many of
    /// [`crate::h1`]'s sockets.
    pub max_idle: usize,
    /// An idle sender older than this is dropped at checkout.
    pub idle_timeout: Duration,
    /// TCP connect timeout of [`crate::h1`]'s sockets (the connector has its own).
    pub connect_timeout: Duration,
}

/// Where [`crate::h1`]'s sockets go, and its pool of them (plain `http://` only).
struct Raw {
    host: String,
    port: u16,
    idles: std::sync::Arc<h1::Idles>,
}

/// A response body: hyper's, or [`crate::h1`]'s.
pub(crate) enum UpBody {
    /// From hyper's client.
    Hyper(Incoming),
    /// From our own HTTP/1.1 client.
    Raw(h1::RawBody),
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            UpBody::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            UpBody::Raw(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Hyper(b) => b.is_end_stream(),
            UpBody::Raw(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        match self {
            UpBody::Hyper(b) => b.size_hint(),
            UpBody::Raw(b) => b.size_hint(),
        }
    }
}

/// The pool of one upstream (`scheme://authority`).
pub struct Pool<B> {
    connector: HttpsConnector<HttpConnector>,
    /// `scheme://authority/`, what the connector dials.
    dst: Uri,
    /// The `Host` an HTTP/1.1 request gets when it has none.
    host: HeaderValue,
    limits: Limits,
    slots: Mutex<Slots<B>>,
    raw: Option<Raw>,
}

struct Slots<B> {
    /// LIFO: the newest at the end.
    h1: Vec<Idle<B>>,
    /// The one multiplexed HTTP/2 connection, once ALPN chose it.
    h2: Option<http2::SendRequest<B>>,
}

struct Idle<B> {
    tx: http1::SendRequest<B>,
    since: Instant,
}

enum Sender<B> {
    H1(http1::SendRequest<B>),
    H2(http2::SendRequest<B>),
}

type Connecting<'a, B> = Pin<Box<dyn Future<Output = Result<Sender<B>, Error>> + Send + 'a>>;

impl<B> Pool<B>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    /// A pool dialing `scheme://authority` through `connector`.
    pub(crate) fn new(
        connector: HttpsConnector<HttpConnector>,
        scheme: Scheme,
        authority: Authority,
        limits: Limits,
    ) -> Result<Self, http::Error> {
        let host = match authority.port_u16() {
            Some(p)
                if !(scheme == Scheme::HTTP && p == 80 || scheme == Scheme::HTTPS && p == 443) =>
            {
                HeaderValue::from_str(authority.as_str())?
            }
            _ => HeaderValue::from_str(authority.host())?,
        };
        let raw = (scheme == Scheme::HTTP).then(|| Raw {
            host: authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: authority.port_u16().unwrap_or(80),
            idles: h1::Idles::new(limits.max_idle, limits.idle_timeout),
        });
        let dst = Uri::builder()
            .scheme(scheme)
            .authority(authority)
            .path_and_query("/")
            .build()?;
        Ok(Pool {
            raw,
            connector,
            dst,
            host,
            limits,
            slots: Mutex::new(Slots {
                h1: Vec::new(),
                h2: None,
            }),
        })
    }

    /// Sends `req` (absolute URI) and waits for the response head. `upgrade`: the
    /// request may switch protocols (hyper's client then carries it).
    pub(crate) async fn send(
        &self,
        req: Request<B>,
        upgrade: bool,
    ) -> Result<Response<UpBody>, Error> {
        if let Some(raw) = &self.raw {
            let bodyless = matches!(*req.method(), http::Method::GET | http::Method::HEAD)
                && req.body().is_end_stream();
            if bodyless && !upgrade {
                return self.send_raw(raw, req).await;
            }
        }
        self.send_hyper(req).await.map(|r| r.map(UpBody::Hyper))
    }

    /// A bodyless `GET` or `HEAD` through [`crate::h1`].
    async fn send_raw(&self, raw: &Raw, mut req: Request<B>) -> Result<Response<UpBody>, Error> {
        origin_form(&mut req, &self.host);
        let (parts, _) = req.into_parts();
        let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let head = h1::encode_head(&parts.method, target, &parts.headers);
        let to_head = parts.method == http::Method::HEAD;
        let mut pooled = raw.idles.checkout();
        loop {
            let retry = pooled.is_some();
            let conn = match pooled.take() {
                Some(c) => c,
                None => h1::Conn::connect(&raw.host, raw.port, self.limits.connect_timeout)
                    .await
                    .map_err(|e| Error::Connect(e.into()))?,
            };
            match conn.exchange(&head, to_head, &raw.idles).await {
                Ok(resp) => return Ok(resp.map(UpBody::Raw)),
                Err(h1::Error::Stale(e)) if retry => {
                    tracing::debug!(error = %e, "pooled upstream connection was closed: sending on a new one");
                }
                Err(e) => return Err(Error::Raw(e)),
            }
        }
    }

    /// Sends `req` through hyper's client.
    async fn send_hyper(&self, req: Request<B>) -> Result<Response<Incoming>, Error> {
        let req = match self.checkout() {
            Some(tx) => match self.send_on(tx, req).await {
                Ok(resp) => return Ok(resp),
                Err(mut e) => match e.take_message() {
                    // Refused before a byte went out: the connection closed while idle.
                    Some(req) => req,
                    None => return Err(e.into_error().into()),
                },
            },
            None => req,
        };
        let tx = self.connect().await?;
        self.send_on(tx, req)
            .await
            .map_err(|e| e.into_error().into())
    }

    /// The newest usable sender, dropping closed and expired ones on the way.
    fn checkout(&self) -> Option<Sender<B>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h2) = &slots.h2 {
            if h2.is_ready() {
                return Some(Sender::H2(h2.clone()));
            }
            slots.h2 = None;
        }
        let now = Instant::now();
        let mut i = slots.h1.len();
        while i > 0 {
            i -= 1;
            let idle = &slots.h1[i];
            if idle.tx.is_closed() || now.duration_since(idle.since) >= self.limits.idle_timeout {
                slots.h1.swap_remove(i);
            } else if idle.tx.is_ready() {
                return Some(Sender::H1(slots.h1.swap_remove(i).tx));
            }
        }
        None
    }

    /// Keeps an HTTP/1.1 sender for a later request (unless the pool is full).
    fn checkin(&self, tx: http1::SendRequest<B>) {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if slots.h1.len() < self.limits.max_idle {
            slots.h1.push(Idle {
                tx,
                since: Instant::now(),
            });
        }
    }

    async fn send_on(
        &self,
        tx: Sender<B>,
        mut req: Request<B>,
    ) -> Result<Response<Incoming>, TrySendError<Request<B>>> {
        match tx {
            Sender::H1(mut tx) => {
                origin_form(&mut req, &self.host);
                let resp = tx.try_send_request(req).await?;
                if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
                    self.checkin(tx);
                }
                Ok(resp)
            }
            Sender::H2(mut tx) => tx.try_send_request(req).await,
        }
    }

    /// A new connection (boxed: only a miss pays for its future).
    fn connect(&self) -> Connecting<'_, B> {
        Box::pin(async move {
            let mut connector = self.connector.clone();
            std::future::poll_fn(|cx| connector.poll_ready(cx))
                .await
                .map_err(Error::Connect)?;
            let io = connector
                .call(self.dst.clone())
                .await
                .map_err(Error::Connect)?;
            if io.connected().is_negotiated_h2() {
                let (tx, conn) = http2::Builder::new(TokioExecutor::new())
                    .timer(TokioTimer::new())
                    .handshake(io)
                    .await?;
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(error = %e, "upstream HTTP/2 connection ended");
                    }
                });
                let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
                if !slots.h2.as_ref().is_some_and(http2::SendRequest::is_ready) {
                    slots.h2 = Some(tx.clone());
                }
                Ok(Sender::H2(tx))
            } else {
                let (tx, conn) = http1::Builder::new().handshake(io).await?;
                tokio::spawn(async move {
                    if let Err(e) = conn.with_upgrades().await {
                        tracing::debug!(error = %e, "upstream connection ended");
                    }
                });
                Ok(Sender::H1(tx))
            }
        })
    }

    #[cfg(test)]
    fn idle_len(&self) -> usize {
        let raw = self.raw.as_ref().map_or(0, |r| r.idles.len());
        raw + self.slots.lock().map(|s| s.h1.len()).unwrap_or_default()
    }
}

/// HTTP/1.1 sends the path only (`/p?q`, or `authority` for `CONNECT`) and a `Host`.
fn origin_form<B>(req: &mut Request<B>, host: &HeaderValue) {
    if !req.headers().contains_key(HOST) {
        req.headers_mut().insert(HOST, host.clone());
    }
    let uri = std::mem::take(req.uri_mut());
    let mut parts = uri.into_parts();
    parts.scheme = None;
    if req.method() == http::Method::CONNECT {
        parts.path_and_query = None;
    } else {
        parts.authority = None;
    }
    *req.uri_mut() = Uri::from_parts(parts).unwrap_or_default();
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
