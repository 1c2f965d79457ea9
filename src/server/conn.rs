//! One connection, accepted: the version sniffed ([`super::sniff`]), the IO watched for
//! `idle_timeout` ([`super::idle`]) and framed by the smuggling guard
//! ([`super::smuggle`]), then served by hyper's HTTP/1.1 or HTTP/2 builder with
//! [`crate::proxy::handler`] per request, until it ends, idles out or drains. The
//! request-head deadline (`header_timeout`, slowloris guard; it also bounds the wait for
//! the next request on a keep-alive connection) and the head size limit
//! (`max_header_bytes`, 431) are set here. On HTTP/1.1 the head deadline is the
//! connection's, kept by [`drive`] from [`idle::Activity`] (the previous response's
//! end, the next head's arrival), not a timer hyper arms per request (issue 20).

use super::sniff::{self, Version};
use super::{idle, smuggle};
use crate::app::{App, ConnInfo};
use crate::body::{Ended, ProxyBody};
use crate::config::Server;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

/// The HTTP/1.1 and HTTP/2 connection settings, built once per listener.
pub(super) struct Builders {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

pub(super) fn builders(cfg: &Server) -> Builders {
    let mut h1 = http1::Builder::new();
    // No per-request head timer: `drive` keeps `header_timeout` per connection.
    h1.timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_buf_size(cfg.max_header_bytes.max(8192))
        .keep_alive(true);
    let mut h2 = http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(cfg.h2_max_concurrent_streams)
        // CVE-2023-44487 (rapid reset): bound streams reset before being handled.
        .max_pending_accept_reset_streams(Some(50))
        .max_local_error_reset_streams(Some(1024))
        .keep_alive_interval(Some(cfg.idle_timeout))
        .keep_alive_timeout(cfg.header_timeout);
    Builders { h1, h2 }
}

/// Keeps `portcullis_open_connections` right however a connection ends.
struct OpenConnection;

impl OpenConnection {
    fn new() -> Self {
        crate::metrics::open_connections().increment(1.0);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        crate::metrics::open_connections().decrement(1.0);
    }
}

/// Serves one accepted connection (`io`, TLS already terminated when `tls`) to its end.
pub(super) async fn serve_conn<IO>(
    io: IO,
    peer: SocketAddr,
    tls: bool,
    app: Arc<App>,
    builders: &Builders,
    mut drain: watch::Receiver<bool>,
    upgrades: TaskTracker,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (max_head, idle, header_timeout) = {
        let rt = app.runtime.load();
        let s = &rt.config.server;
        (s.max_header_bytes, s.idle_timeout, s.header_timeout)
    };
    let _open = OpenConnection::new();
    let accepted = tokio::time::Instant::now();
    let Some((version, io)) = sniff(io, header_timeout, &mut drain).await else {
        return;
    };
    let (io, activity) = idle::Watched::new(io);
    // HTTP/1.1 requests are framed by the smuggling guard before hyper reads them.
    let (io, verdict) = smuggle::Guard::new(io, max_head, version == Version::H1);
    let base = ConnInfo {
        peer,
        peer_ip: crate::proxy::headers::peer_value(peer.ip()),
        tls,
        ambiguous: false,
        upgrades: None,
    };
    let seen = activity.clone();
    // HTTP/1.1: each response's end starts the wait for the next head.
    let ends = (version == Version::H1).then(|| activity.clone() as Arc<dyn Ended>);
    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        seen.request_seen();
        respond(&app, &verdict, (&base, ends.as_ref()), &upgrades, req)
    });
    let io = TokioIo::new(io);
    match version {
        Version::H1 => {
            let conn = builders.h1.serve_connection(io, svc).with_upgrades();
            // hyper's header_read_timeout starts once the sniff is done; the first head
            // is also due within header_timeout of the accept, so a client that sends
            // its first byte late does not get the allowance twice.
            let first = Some(accepted + header_timeout);
            let heads = Heads {
                first,
                next: Some(header_timeout),
            };
            drive(
                conn,
                |c| c.graceful_shutdown(),
                drain,
                &activity,
                idle,
                heads,
            )
            .await;
        }
        Version::H2 => {
            // Boxed: the task is sized for HTTP/1.1, the common case, and an HTTP/2
            // connection's larger state lives on the heap instead of in every task.
            let conn = builders.h2.serve_connection(io, svc);
            let heads = Heads {
                first: None,
                next: None,
            };
            Box::pin(drive(
                conn,
                |c| c.graceful_shutdown(),
                drain,
                &activity,
                idle,
                heads,
            ))
            .await;
        }
    }
}

/// The version from the first bytes, which are due within `header_timeout` like the
/// rest of the head; `None` when the connection ends, times out or drains first.
async fn sniff<IO: AsyncRead + Unpin>(
    io: IO,
    header_timeout: std::time::Duration,
    drain: &mut watch::Receiver<bool>,
) -> Option<(Version, sniff::Prefixed<IO>)> {
    let sniffed = tokio::select! {
        r = tokio::time::timeout(header_timeout, sniff::version(io)) => r,
        _ = drain.wait_for(|d| *d) => return None,
    };
    match sniffed {
        Ok(Ok(x)) => Some(x),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "connection ended before a request");
            None
        }
        Err(_) => {
            tracing::debug!("no request within header_timeout");
            None
        }
    }
}

/// Serves one request of a connection: the stand-in for a head the guard refused gets
/// the refusal, every other request the handler (with `upgrades` when it may switch
/// protocols).
fn respond(
    app: &App,
    verdict: &Arc<smuggle::Verdict>,
    (base, ends): (&ConnInfo, Option<&Arc<dyn Ended>>),
    upgrades: &TaskTracker,
    req: hyper::Request<hyper::body::Incoming>,
) -> Pin<Box<impl Future<Output = Result<hyper::Response<ProxyBody>, Infallible>> + Send>> {
    let rt = app.runtime.load_full();
    let n = verdict.next_request();
    let refused = verdict.refusal(n);
    let may_switch = smuggle::wants_upgrade(&req);
    let conn = ConnInfo {
        ambiguous: refused.is_some(),
        upgrades: may_switch.then(|| upgrades.clone()),
        ..base.clone()
    };
    // The guard holds what follows a request hyper may switch protocols on
    // until it knows whether it did.
    let upgrade = may_switch.then(|| (verdict.clone(), req.method() == hyper::Method::CONNECT));
    let ends = ends.cloned();
    // Boxed per request: hyper keeps the slot for this future allocated for the
    // whole connection, so an idle keep-alive connection holds a pointer instead of
    // the handler's whole state machine (about 2.6 KiB).
    Box::pin(async move {
        if let Some(why) = refused {
            return Ok(refusal(&rt, why));
        }
        let mut resp = crate::proxy::handler::handle(rt, conn, req).await?;
        if let Some(to) = ends {
            resp = resp.map(|b| b.on_end(to));
        }
        if let Some((verdict, connect)) = upgrade {
            let s = resp.status();
            let switched =
                s == hyper::StatusCode::SWITCHING_PROTOCOLS || (connect && s.is_success());
            verdict.answer_upgrade(n, switched);
        }
        Ok::<_, Infallible>(resp)
    })
}

/// The answer to a head the smuggling guard refused (hyper was handed a stand-in
/// request instead): SPEC §4 JSON body, a fresh `X-Request-Id`, `Connection: close`.
fn refusal(rt: &crate::app::Runtime, why: smuggle::Refusal) -> hyper::Response<ProxyBody> {
    use crate::deny::{BadRequest, Denial};
    let d = match why {
        smuggle::Refusal::BadRequest => Denial::BadRequest(BadRequest::Framing),
        smuggle::Refusal::TooLarge => Denial::HeaderTooLarge,
        smuggle::Refusal::UriTooLong => Denial::UriTooLong,
    };
    let mut resp = d.response();
    let rid = crate::proxy::headers::new_request_id();
    rt.counters
        .record(None, None, resp.status().as_u16(), d.decision());
    if crate::telemetry::access_enabled() {
        crate::telemetry::AccessLine {
            request_id: &rid,
            method: "",
            client: None,
            path: "",
            route: "",
            status: resp.status().as_u16(),
            decision: d.decision(),
            user: "",
            upstream: "",
            user_agent: "",
            bytes_in: 0,
            bytes_out: http_body::Body::size_hint(resp.body()).exact().unwrap_or(0),
            started: None,
        }
        .write();
    }
    resp.headers_mut()
        .insert(crate::proxy::headers::X_REQUEST_ID.clone(), rid);
    resp
}

/// The request-head deadlines of a connection.
struct Heads {
    /// By when `activity` must show a request was received, else the connection is
    /// closed.
    first: Option<tokio::time::Instant>,
    /// HTTP/1.1: every later head is due within this of the previous response's end
    /// (`header_timeout`: slowloris, and the wait for the next keep-alive request).
    next: Option<std::time::Duration>,
}

/// Runs a connection to its end, closing it once it has moved no byte either way for
/// `idle`, or when a request head is late ([`Heads`]).
/// When `drain` turns true, `shutdown` asks the connection to finish what is in
/// flight and close (HTTP/2 GOAWAY, HTTP/1.1 close after the current response).
async fn drive<C, E>(
    conn: C,
    shutdown: impl Fn(Pin<&mut C>),
    mut drain: watch::Receiver<bool>,
    activity: &idle::Activity,
    idle: std::time::Duration,
    Heads { mut first, next }: Heads,
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let mut deadline = tokio::time::Instant::from_std(activity.last_io()) + idle;
        if let Some(by) = first {
            if activity.has_request() {
                first = None;
            } else {
                deadline = deadline.min(by);
            }
        }
        if let (Some(within), None) = (next, first) {
            // While a request is in flight, look again within `header_timeout`: the
            // wait for the next head may start any moment, and no timer is moved
            // per request.
            let since = activity
                .waiting_since()
                .unwrap_or_else(std::time::Instant::now);
            deadline = deadline.min(tokio::time::Instant::from_std(since) + within);
        }
        tokio::select! {
            _ = drain.wait_for(|d| *d), if !draining => {
                draining = true;
                shutdown(conn.as_mut());
            }
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(deadline) => {
                if let Some(by) = first {
                    if !activity.has_request() && by <= tokio::time::Instant::now() {
                        tracing::debug!("first request head not complete within header_timeout");
                        return;
                    }
                }
                if let (Some(within), Some(since)) = (next, activity.waiting_since()) {
                    if since + within <= std::time::Instant::now() {
                        tracing::debug!("request head not complete within header_timeout");
                        return;
                    }
                }
                if activity.last_io() + idle <= std::time::Instant::now() {
                    tracing::debug!("closing idle connection");
                    return;
                }
            }
        }
    }
}
