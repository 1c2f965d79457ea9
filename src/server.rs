//! The accept loop: one task per connection, HTTP/1.1 and HTTP/2 on the same
//! listener (the version is sniffed from the first bytes, see [`crate::sniff`]: the
//! preface ALPN `h2` clients send, or prior knowledge in plain HTTP), TLS termination, the request-head deadline (`header_timeout`, slowloris
//! guard; it also bounds the wait for the next request on a keep-alive connection)
//! and the head size limit (`max_header_bytes`, 431).

use crate::app::{App, ConnInfo};
use crate::config::Server;
use crate::proxy::handler::UPGRADED;
use crate::sniff::Version;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// The HTTP/1.1 and HTTP/2 connection settings, built once per listener.
struct Builders {
    h1: http1::Builder,
    h2: http2::Builder<TokioExecutor>,
}

fn builder(cfg: &Server) -> Builders {
    let mut h1 = http1::Builder::new();
    h1.timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout)
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

/// Serves `listener` until `shutdown` resolves, then stops accepting (the listener is
/// closed, new connections are refused) and gives open connections, upgraded ones
/// included, until `[server] shutdown_grace` to finish. Returns `true` when everything
/// finished in time, `false` when the grace period cut connections off.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> bool {
    let cfg = app.runtime.load().config.server.clone();
    let builder = Arc::new(builder(&cfg));
    let acceptor = tls.map(TlsAcceptor::from);
    // Every open connection holds a permit; `drain` tells them to finish up.
    let slots = Arc::new(tokio::sync::Semaphore::new(cfg.max_connections));
    let (drain_tx, drain) = watch::channel(false);
    tokio::pin!(shutdown);
    let mut backoff = crate::accept::Backoff::new("main");
    loop {
        // At max_connections, stop accepting until a connection ends: new clients wait
        // in the kernel's backlog instead of taking memory here.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(x) => {
                    backoff.succeeded();
                    x
                }
                Err(e) => {
                    // Out of fds (EMFILE) the backlog stays readable: back off, log sparingly.
                    let wait = backoff.failed(&e);
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(wait) => continue,
                    }
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let acceptor = acceptor.clone();
        let drain = drain.clone();
        let handshake_timeout = cfg.header_timeout;
        // Plain and TLS connections are separate tasks: a task is allocated at the size
        // of its future, and a plain one need not carry rustls' state.
        match acceptor {
            None => {
                tokio::spawn(async move {
                    let _permit = permit;
                    serve_conn(stream, peer, false, app, &builder, drain).await;
                });
            }
            Some(acc) => {
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(handshake_timeout, acc.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            serve_conn(tls, peer, true, app, &builder, drain).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                });
            }
        }
    }
    drop(listener);
    let grace = app.runtime.load().config.server.shutdown_grace;
    tracing::info!(
        open_connections = cfg.max_connections - slots.available_permits(),
        grace_s = grace.as_secs_f64(),
        "draining"
    );
    drain_tx.send_replace(true);
    let deadline = tokio::time::Instant::now() + grace;
    let all = u32::try_from(cfg.max_connections).unwrap_or(u32::MAX);
    let conns_done = tokio::time::timeout_at(deadline, slots.acquire_many(all))
        .await
        .is_ok();
    let upgrades_done = tokio::time::timeout_at(deadline, async {
        while UPGRADED.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .is_ok();
    if conns_done && upgrades_done {
        tracing::info!("drained");
        true
    } else {
        tracing::warn!(
            upgraded_open = UPGRADED.load(Ordering::SeqCst),
            "shutdown grace period over: cutting off requests still in flight"
        );
        false
    }
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

async fn serve_conn<IO>(
    io: IO,
    peer: SocketAddr,
    tls: bool,
    app: Arc<App>,
    builders: &Builders,
    mut drain: watch::Receiver<bool>,
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
    // The first bytes are due within header_timeout like the rest of the head.
    let sniffed = tokio::select! {
        r = tokio::time::timeout(header_timeout, crate::sniff::version(io)) => r,
        _ = drain.wait_for(|d| *d) => return,
    };
    let (version, io) = match sniffed {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "connection ended before a request");
            return;
        }
        Err(_) => {
            tracing::debug!("no request within header_timeout");
            return;
        }
    };
    // HTTP/1.1 requests are framed by the smuggling guard before hyper reads them.
    let (io, verdict) = crate::smuggle::Guard::new(io, max_head, version == Version::H1);
    let watch = verdict.clone();
    let peer_ip = crate::proxy::headers::peer_value(peer.ip());
    let served = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = served.clone();
    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        seen.store(true, Ordering::Relaxed);
        let rt = app.runtime.load_full();
        let n = verdict.next_request();
        let refused = verdict.refusal(n);
        let conn = ConnInfo {
            peer,
            peer_ip: peer_ip.clone(),
            tls,
            ambiguous: refused.is_some(),
        };
        // The guard holds what follows a request hyper may switch protocols on
        // until it knows whether it did.
        let upgrade = crate::smuggle::wants_upgrade(&req)
            .then(|| (verdict.clone(), req.method() == hyper::Method::CONNECT));
        // Boxed per request: hyper keeps the slot for this future allocated for the
        // whole connection, so an idle keep-alive connection holds a pointer instead of
        // the handler's whole state machine (about 2.6 KiB).
        Box::pin(async move {
            if let Some(why) = refused {
                return Ok(refusal(&rt, why));
            }
            let resp = crate::proxy::handler::handle(rt, conn, req).await?;
            if let Some((verdict, connect)) = upgrade {
                let s = resp.status();
                let switched =
                    s == hyper::StatusCode::SWITCHING_PROTOCOLS || (connect && s.is_success());
                verdict.answer_upgrade(n, switched);
            }
            Ok::<_, std::convert::Infallible>(resp)
        })
    });
    let io = TokioIo::new(io);
    match version {
        Version::H1 => {
            let conn = builders.h1.serve_connection(io, svc).with_upgrades();
            // hyper's header_read_timeout starts once the sniff is done; the first head
            // is also due within header_timeout of the accept, so a client that sends
            // its first byte late does not get the allowance twice.
            let first = Some((accepted + header_timeout, &*served));
            drive(conn, |c| c.graceful_shutdown(), drain, &watch, idle, first).await;
        }
        Version::H2 => {
            // Boxed: the task is sized for HTTP/1.1, the common case, and an HTTP/2
            // connection's larger state lives on the heap instead of in every task.
            let conn = builders.h2.serve_connection(io, svc);
            Box::pin(drive(
                conn,
                |c| c.graceful_shutdown(),
                drain,
                &watch,
                idle,
                None,
            ))
            .await;
        }
    }
}

/// The answer to a head the smuggling guard refused (hyper was handed a stand-in
/// request instead): SPEC §4 JSON body, a fresh `X-Request-Id`, `Connection: close`.
fn refusal(
    rt: &crate::app::Runtime,
    why: crate::smuggle::Refusal,
) -> hyper::Response<crate::body::ProxyBody> {
    use crate::deny::{BadRequest, Denial};
    let d = match why {
        crate::smuggle::Refusal::BadRequest => Denial::BadRequest(BadRequest::Framing),
        crate::smuggle::Refusal::TooLarge => Denial::HeaderTooLarge,
        crate::smuggle::Refusal::UriTooLong => Denial::UriTooLong,
    };
    let mut resp = d.response();
    let rid = crate::proxy::headers::new_request_id();
    rt.counters
        .record(None, resp.status().as_u16(), d.decision());
    if tracing::enabled!(target: "access", tracing::Level::INFO) {
        tracing::info!(
            target: "access",
            request_id = rid.to_str().unwrap_or(""),
            method = "",
            path = "",
            route = "",
            status = resp.status().as_u16(),
            decision = d.decision(),
            user = "",
            upstream = "",
            duration_ms = 0.0,
        );
    }
    resp.headers_mut()
        .insert(crate::proxy::headers::X_REQUEST_ID.clone(), rid);
    resp
}

/// Runs a connection to its end, closing it once it has moved no byte either way for
/// `idle` (HTTP/1.1 keep-alive is also bounded by header_timeout, see module doc).
/// When `drain` turns true, `shutdown` asks the connection to finish what is in
/// flight and close (HTTP/2 GOAWAY, HTTP/1.1 close after the current response).
/// `first`: a deadline by which the flag must show a request was received, else the
/// connection is closed.
async fn drive<C, E>(
    conn: C,
    shutdown: impl Fn(Pin<&mut C>),
    mut drain: watch::Receiver<bool>,
    watch: &crate::smuggle::Verdict,
    idle: std::time::Duration,
    mut first: Option<(tokio::time::Instant, &std::sync::atomic::AtomicBool)>,
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        let mut deadline = tokio::time::Instant::from_std(watch.last_io()) + idle;
        if let Some((by, served)) = first {
            if served.load(Ordering::Relaxed) {
                first = None;
            } else {
                deadline = deadline.min(by);
            }
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
                if let Some((by, served)) = first {
                    if !served.load(Ordering::Relaxed) && by <= tokio::time::Instant::now() {
                        tracing::debug!("first request head not complete within header_timeout");
                        return;
                    }
                }
                if watch.last_io() + idle <= std::time::Instant::now() {
                    tracing::debug!("closing idle connection");
                    return;
                }
            }
        }
    }
}
