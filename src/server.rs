//! The accept loop: one task per connection, HTTP/1.1 and HTTP/2 on the same
//! listener (hyper-util's auto builder: ALPN over TLS, prior knowledge in plain
//! HTTP), TLS termination, the request-head deadline (`header_timeout`, slowloris
//! guard; it also bounds the wait for the next request on a keep-alive connection)
//! and the head size limit (`max_header_bytes`, 431).

use crate::app::{App, ConnInfo};
use crate::config::Server;
use crate::proxy::handler::UPGRADED;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

fn builder(cfg: &Server) -> auto::Builder<TokioExecutor> {
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
        // CVE-2023-44487 (rapid reset): bound streams reset before being handled.
        .max_pending_accept_reset_streams(Some(50))
        .max_local_error_reset_streams(Some(1024))
        .keep_alive_interval(Some(cfg.idle_timeout))
        .keep_alive_timeout(cfg.header_timeout);
    b
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
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(cfg.max_connections));
    tokio::pin!(shutdown);
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
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let acceptor = acceptor.clone();
        let watcher = graceful.watcher();
        let handshake_timeout = cfg.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => serve_conn(stream, peer, false, app, &builder, watcher).await,
                Some(acc) => {
                    match tokio::time::timeout(handshake_timeout, acc.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            serve_conn(tls, peer, true, app, &builder, watcher).await;
                        }
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    let grace = app.runtime.load().config.server.shutdown_grace;
    tracing::info!(
        open_connections = graceful.count(),
        grace_s = grace.as_secs_f64(),
        "draining"
    );
    let deadline = tokio::time::Instant::now() + grace;
    let conns_done = tokio::time::timeout_at(deadline, graceful.shutdown())
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
    builder: &auto::Builder<TokioExecutor>,
    watcher: Watcher,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (max_head, idle) = {
        let rt = app.runtime.load();
        (
            rt.config.server.max_header_bytes,
            rt.config.server.idle_timeout,
        )
    };
    let (io, verdict) = crate::smuggle::Guard::new(io, max_head);
    let watch = verdict.clone();
    let svc = service_fn(move |req| {
        let rt = app.runtime.load_full();
        let conn = ConnInfo {
            peer,
            tls,
            ambiguous: verdict.ambiguous(),
        };
        crate::proxy::handler::handle(rt, conn, req)
    });
    let conn = watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(io), svc));
    let _open = OpenConnection::new();
    tokio::pin!(conn);
    // idle_timeout: a connection that moved no byte either way for that long is
    // closed (HTTP/1.1 keep-alive is also bounded by header_timeout, see module doc).
    loop {
        let deadline = tokio::time::Instant::from_std(watch.last_io()) + idle;
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep_until(deadline) => {
                if watch.last_io() + idle <= std::time::Instant::now() {
                    tracing::debug!("closing idle connection");
                    return;
                }
            }
        }
    }
}
