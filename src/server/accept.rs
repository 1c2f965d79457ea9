//! The accept loop ([`serve`]): one task per connection (TLS handshake within
//! `header_timeout`, then `conn.rs`), at most `max_connections` open at once
//! (beyond that, new clients wait in the kernel's backlog), and at shutdown the
//! listener closed and the connections drained (`drain.rs`).
//!
//! What an accept loop does when `accept()` fails (here and on the admin listener).
//! An error about one connection (reset
//! or aborted before we took it) is skipped at once. Anything else, in practice running
//! out of file descriptors (EMFILE, ENFILE) or kernel memory (ENOBUFS, ENOMEM), does not
//! clear by retrying at once: the pending connection stays in the backlog, the listener
//! stays readable, and a plain retry spins. [`Backoff`] waits 10 ms after the first such
//! error, doubling up to 1 s, starts over after the next success, and lets at most one
//! log line a second through, carrying how many errors it did not log. Every error is
//! counted in `portcullis_accept_errors_total{listener}`.

use super::conn::{self, serve_conn};
use super::drain::Drain;
use crate::app::App;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

const FIRST: Duration = Duration::from_millis(10);
const MAX: Duration = Duration::from_secs(1);
const LOG_EVERY: Duration = Duration::from_secs(1);

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
    let builders = Arc::new(conn::builders(&cfg));
    let acceptor = tls.map(TlsAcceptor::from);
    let drain = Drain::new(cfg.max_connections);
    tokio::pin!(shutdown);
    let mut backoff = Backoff::new("main");
    loop {
        // At max_connections, stop accepting until a connection ends: new clients wait
        // in the kernel's backlog instead of taking memory here.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            p = drain.slot() => match p {
                Some(p) => p,
                None => break,
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
        let builders = builders.clone();
        let acceptor = acceptor.clone();
        let signal = drain.signal();
        let upgrades = drain.upgrades().clone();
        let handshake_timeout = cfg.header_timeout;
        // Plain and TLS connections are separate tasks: a task is allocated at the size
        // of its future, and a plain one need not carry rustls' state.
        match acceptor {
            None => {
                tokio::spawn(async move {
                    let _permit = permit;
                    serve_conn(stream, peer, false, app, &builders, signal, upgrades).await;
                });
            }
            Some(acc) => {
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(handshake_timeout, acc.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            serve_conn(tls, peer, true, app, &builders, signal, upgrades).await;
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
    drain.finish(grace).await
}

/// Accept-error state of one listener.
pub struct Backoff {
    listener: &'static str,
    delay: Duration,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl Backoff {
    /// For the listener named `listener` in logs and metrics (`main`, `admin`).
    pub fn new(listener: &'static str) -> Self {
        Backoff {
            listener,
            delay: Duration::ZERO,
            last_log: None,
            suppressed: 0,
        }
    }

    /// After a successful accept: the next failure waits the shortest delay again.
    pub fn succeeded(&mut self) {
        self.delay = Duration::ZERO;
    }

    /// Logs `e` (at most once a second) and returns how long to wait before accepting
    /// again.
    pub fn failed(&mut self, e: &io::Error) -> Duration {
        metrics::counter!("portcullis_accept_errors_total", "listener" => self.listener)
            .increment(1);
        if matches!(
            e.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionRefused
        ) {
            tracing::debug!(listener = self.listener, error = %e, "connection lost before accept");
            return Duration::ZERO;
        }
        let (wait, log) = self.step(Instant::now());
        if let Some(suppressed) = log {
            tracing::warn!(
                listener = self.listener,
                error = %e,
                suppressed,
                retry_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
                "accept failed"
            );
        }
        wait
    }

    /// One more failure at `now`: the wait before the next accept, and `Some(errors not
    /// logged since the last line)` when this one is to be logged.
    fn step(&mut self, now: Instant) -> (Duration, Option<u64>) {
        self.delay = if self.delay.is_zero() {
            FIRST
        } else {
            (self.delay * 2).min(MAX)
        };
        if self
            .last_log
            .is_none_or(|t| now.duration_since(t) >= LOG_EVERY)
        {
            self.last_log = Some(now);
            (self.delay, Some(std::mem::take(&mut self.suppressed)))
        } else {
            self.suppressed += 1;
            (self.delay, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Backoff;
    use std::time::Duration;
    use tokio::time::Instant;

    #[test]
    fn backs_off_and_logs_once_a_second() {
        let mut b = Backoff::new("main");
        let mut now = Instant::now();
        let mut waits = Vec::new();
        let mut logged = Vec::new();
        // Ten seconds of a limit that does not clear, retried as told.
        let end = now + Duration::from_secs(10);
        while now < end {
            let (wait, log) = b.step(now);
            waits.push(wait.as_millis());
            if let Some(s) = log {
                logged.push(s);
            }
            now += wait;
        }
        assert_eq!(
            waits[..9],
            [10, 20, 40, 80, 160, 320, 640, 1000, 1000],
            "{waits:?}"
        );
        assert!(waits[9..].iter().all(|w| *w == 1000), "{waits:?}");
        // One line a second at most, the first at once; none of the errors is lost.
        assert!(logged.len() <= 11, "{logged:?}");
        assert_eq!(logged[0], 0);
        assert!(logged[1] > 0, "{logged:?}");
        let accounted = logged.len() as u64 + logged.iter().sum::<u64>() + b.suppressed;
        assert_eq!(accounted, waits.len() as u64);
    }

    #[test]
    fn a_success_starts_the_back_off_over() {
        let mut b = Backoff::new("main");
        let now = Instant::now();
        for _ in 0..5 {
            b.step(now);
        }
        b.succeeded();
        assert_eq!(b.step(now).0, Duration::from_millis(10));
        // Still within the second: not logged, counted for the next line.
        assert_eq!(b.step(now).1, None);
        assert_eq!(b.step(now + Duration::from_secs(1)).1, Some(6));
    }

    #[test]
    fn per_connection_errors_do_not_wait() {
        let mut b = Backoff::new("main");
        let e = std::io::Error::from(std::io::ErrorKind::ConnectionAborted);
        assert_eq!(b.failed(&e), Duration::ZERO);
        let e = std::io::Error::from_raw_os_error(24); // EMFILE
        assert_eq!(b.failed(&e), Duration::from_millis(10));
        assert_eq!(b.failed(&e), Duration::from_millis(20));
    }
}
