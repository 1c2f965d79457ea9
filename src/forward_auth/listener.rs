//! The decision listener (`[forward_auth] listen`, SPEC §8): plain HTTP/1.1 and h2c
//! (prior knowledge) on one port, hyper-util's auto builder choosing per connection;
//! every request is a decision request ([`super::wire::respond`]).
//!
//! Bounded like the main listener, with its `[server]` settings: the first bytes and
//! every request head within `header_timeout` (slowloris guard), heads over
//! `max_header_bytes` refused by hyper (431), at most `max_connections` open at once
//! (more wait in the kernel's backlog), `h2_max_concurrent_streams` and the rapid-reset
//! bounds on HTTP/2. At shutdown (SPEC §6) it stops accepting with the main listener,
//! asks each connection to finish what is in flight (HTTP/2 GOAWAY, HTTP/1.1 close
//! after the current answer) and waits for them until `shutdown_grace`.

use crate::app::App;
use crate::config::Convention;
use crate::server::accept::Backoff;
use crate::server::{smuggle, sniff};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// Serves `listener` with `convention` (the one `[forward_auth] headers` names at
/// start; a reload's applies to the requests after it) until `shutdown` turns true,
/// then drains. `true` when every connection finished within `shutdown_grace`.
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    convention: Convention,
    mut shutdown: watch::Receiver<bool>,
) -> bool {
    let server = app.runtime.load().config.server.clone();
    let shared = Arc::new(Shared {
        app: app.clone(),
        convention,
        builder: builder(&server),
        header_timeout: server.header_timeout,
        max_head: server.max_header_bytes,
    });
    let slots = Arc::new(Semaphore::new(server.max_connections));
    let graceful = GracefulShutdown::new();
    let mut backoff = Backoff::new("forward_auth");
    loop {
        let permit = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            _ = shutdown.wait_for(|s| *s) => break,
            r = listener.accept() => r,
        };
        let stream = match accepted {
            Ok((s, _)) => {
                backoff.succeeded();
                s
            }
            Err(e) => {
                // Out of fds (EMFILE) the backlog stays readable: back off, log sparingly.
                let wait = backoff.failed(&e);
                tokio::select! {
                    _ = shutdown.wait_for(|s| *s) => break,
                    () = tokio::time::sleep(wait) => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = connection(stream, shared.clone(), graceful.watcher(), shutdown.clone());
        tokio::spawn(async move {
            let _permit = permit;
            conn.await;
        });
    }
    drop(listener);
    let grace = app.runtime.load().config.server.shutdown_grace;
    tracing::info!(
        open_connections = graceful.count(),
        "draining the forward_auth listener"
    );
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => true,
        Err(_) => {
            tracing::warn!("shutdown grace period over: cutting off decisions still in flight");
            false
        }
    }
}

/// The HTTP/1.1 and HTTP/2 settings of the main listener.
fn builder(cfg: &crate::config::Server) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_timeout)
        .max_buf_size(cfg.max_header_bytes.max(8192))
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(cfg.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(cfg.h2_max_concurrent_streams)
        // CVE-2023-44487 (rapid reset).
        .max_pending_accept_reset_streams(Some(50))
        .max_local_error_reset_streams(Some(1024))
        .keep_alive_interval(Some(cfg.idle_timeout))
        .keep_alive_timeout(cfg.header_timeout);
    b
}

/// What every connection of the listener shares.
struct Shared {
    app: Arc<App>,
    convention: Convention,
    builder: auto::Builder<TokioExecutor>,
    header_timeout: std::time::Duration,
    max_head: usize,
}

/// One connection: its first bytes within `header_timeout` (hyper's own timeouts
/// start once it reads a head), HTTP/1.1 requests framed by the main listener's
/// smuggling guard ([`crate::server::smuggle`]: an ambiguous or oversized head gets the
/// SPEC §4 answer with its JSON body, then the connection closes), then served until
/// it ends or drains.
async fn connection(
    stream: TcpStream,
    shared: Arc<Shared>,
    watcher: hyper_util::server::graceful::Watcher,
    mut shutdown: watch::Receiver<bool>,
) {
    // The first head is due within header_timeout of the accept, like on the main
    // listener: the guard hands hyper no partial head, so hyper's own timer cannot
    // see a client that trickles one.
    let due = tokio::time::Instant::now() + shared.header_timeout;
    let first = tokio::select! {
        r = tokio::time::timeout_at(due, sniff::version(stream)) => r,
        _ = shutdown.wait_for(|s| *s) => return,
    };
    let (version, io) = match first {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            return tracing::debug!(error = %e, "decision connection ended before a request")
        }
        Err(_) => return tracing::debug!("no decision request within header_timeout"),
    };
    let (io, verdict) = smuggle::Guard::new(io, shared.max_head, version == sniff::Version::H1);
    let seen = Arc::new(AtomicBool::new(false));
    let svc = {
        let shared = shared.clone();
        let seen = seen.clone();
        service_fn(move |req: http::Request<hyper::body::Incoming>| {
            seen.store(true, Ordering::Relaxed);
            let (shared, verdict) = (shared.clone(), verdict.clone());
            // Boxed: hyper keeps this future's slot for the whole connection.
            Box::pin(async move {
                let n = verdict.next_request();
                if let Some(why) = verdict.refusal(n) {
                    return Ok::<_, Infallible>(super::wire::refused(&shared.app, why));
                }
                // Nothing is ever switched to: the guard goes on framing after it.
                let asked = smuggle::wants_upgrade(&req);
                let resp = super::wire::respond(&shared.app, shared.convention, req).await;
                if asked {
                    verdict.answer_upgrade(n, false);
                }
                Ok(resp)
            })
        })
    };
    let conn = watcher.watch(shared.builder.serve_connection(TokioIo::new(io), svc));
    tokio::pin!(conn);
    // HTTP/2 has no head to trickle before its frames; a client may open a connection
    // ahead of its first call (hyper's keep-alive pings bound it).
    let h1 = version == sniff::Version::H1;
    let ended = tokio::select! {
        r = &mut conn => r,
        () = tokio::time::sleep_until(due), if h1 => {
            if !seen.load(Ordering::Relaxed) {
                return tracing::debug!("first decision request head not complete within header_timeout");
            }
            conn.await
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "decision connection ended with an error");
    }
}
