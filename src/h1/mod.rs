//! An HTTP/1.1 client of our own for the hot path to a plain-`http://` upstream
//! (issue 20): a bodyless `GET` or `HEAD` written straight from the request's parts
//! onto a pooled socket, from the request's own task, and the answer read back with
//! httparse: no connection task, no channel, no oneshot. The upstream pool
//! ([`crate::upstream`]) sends everything else (request bodies, upgrades, `https://`,
//! HTTP/2) through hyper.
//!
//! What it guarantees, RFC 9112 throughout:
//! - The answer's framing is decided once from its head (§6.3): no body for a `HEAD`,
//!   a 1xx, 204 or 304; chunked when `Transfer-Encoding` ends in `chunked`; else
//!   `Content-Length`; else until the upstream closes. Interim 1xx answers (but 101)
//!   are skipped (RFC 9110 §15.2).
//! - Anything ambiguous is an error (the request is answered 502) and the
//!   connection is closed, never reused: `Transfer-Encoding` with `Content-Length`
//!   (§6.1, response smuggling), differing `Content-Length` values, a bad chunk size,
//!   a missing CRLF, a head over [`MAX_HEAD`] bytes (408 KiB) or [`MAX_HEADERS`] fields, bytes
//!   after the answer, an end of stream inside it.
//! - A connection goes back to its pool only once its answer was read to the end, on
//!   HTTP/1.1 without `Connection: close`. [`RawBody`] does that when it ends; dropped
//!   early, it closes the connection.
//! - Nothing is buffered beyond what one read returns: body bytes are handed on as
//!   they arrive (the read buffer's own bytes, no copy).
//!
//! Split by concern: [`head`] parses an answer head and decides its framing, [`body`]
//! reads the body that follows. This module names nothing else of the crate: `body`
//! and `upstream` both use it.

use bytes::BytesMut;
use http::header::HeaderMap;
use http::{Method, Response};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Longest answer head read, in bytes: hyper's client default (8 KiB + 100 × 4 KiB),
/// so an upstream hyper accepted is accepted here too.
pub(crate) const MAX_HEAD: usize = 8192 + 4096 * 100;
/// Most header fields in an answer head (hyper's default is 100).
pub(crate) const MAX_HEADERS: usize = 100;
/// Longest chunk-size line (with extensions) or trailer block.
const MAX_LINE: usize = 4096;

/// Why an exchange failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The connection failed before a byte of the answer came (a pooled connection
    /// the upstream had closed): the request may be sent again on a new one.
    #[error("connection closed before the answer: {0}")]
    Stale(std::io::Error),
    /// The socket failed during the answer.
    #[error("upstream connection: {0}")]
    Io(#[from] std::io::Error),
    /// The answer broke HTTP/1.1 (see the module doc).
    #[error("invalid answer from the upstream: {0}")]
    Invalid(&'static str),
}

/// One connection to the upstream: its socket and read buffer.
pub(crate) struct Conn {
    io: TcpStream,
    buf: BytesMut,
}

/// An idle connection in its pool.
struct Idle {
    conn: Box<Conn>,
    since: Instant,
}

/// The idle connections of one upstream (newest at the back) and their limits.
pub(crate) struct Idles {
    conns: Mutex<VecDeque<Idle>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl Idles {
    /// An empty pool keeping at most `max_idle`, each for at most `idle_timeout`.
    pub(crate) fn new(max_idle: usize, idle_timeout: Duration) -> Arc<Self> {
        Arc::new(Idles {
            conns: Mutex::new(VecDeque::new()),
            max_idle,
            idle_timeout,
        })
    }

    /// The newest idle connection still open, dropping expired and closed ones.
    pub(crate) fn checkout(&self) -> Option<Box<Conn>> {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        while let Some(idle) = conns.pop_back() {
            if now.duration_since(idle.since) < self.idle_timeout && idle.conn.quiet() {
                return Some(idle.conn);
            }
        }
        None
    }

    /// Keeps a connection whose answer was read to its end; on the way, the oldest
    /// one goes if it expired or the upstream closed it (so idle sockets do not sit
    /// half-closed for long while requests come).
    fn checkin(&self, conn: Box<Conn>) {
        let mut conns = self.conns.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if conns
            .front()
            .is_some_and(|o| now.duration_since(o.since) >= self.idle_timeout || !o.conn.quiet())
        {
            conns.pop_front();
        }
        if conns.len() < self.max_idle {
            conns.push_back(Idle { conn, since: now });
        }
    }

    /// How many connections are idle.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.conns.lock().map(|c| c.len()).unwrap_or_default()
    }
}

impl Conn {
    /// A new connection to `host:port` (resolved), with Nagle off, within `timeout`.
    pub(crate) async fn connect(
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> std::io::Result<Box<Conn>> {
        let io = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timeout"))??;
        io.set_nodelay(true)?;
        Ok(Box::new(Conn {
            io,
            buf: BytesMut::with_capacity(8 * 1024),
        }))
    }

    /// Nothing arrived while idle (no close, no reset, no stray bytes), as far as
    /// the runtime has seen: no system call, no task to wake.
    fn quiet(&self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.buf.is_empty() && self.io.poll_read_ready(&mut cx).is_pending()
    }

    /// Writes `head` (a bodyless request) and reads the answer's head. `to_head`: the
    /// request was a `HEAD` (its answer has no body whatever it says).
    pub(crate) async fn exchange(
        mut self: Box<Self>,
        head: &[u8],
        to_head: bool,
        home: &Arc<Idles>,
    ) -> Result<Response<RawBody>, Error> {
        self.io.write_all(head).await.map_err(Error::Stale)?;
        let mut first = true;
        loop {
            if let Some(parsed) = self.parse_head(to_head)? {
                let (parts, framing, reuse) = parsed;
                let body = RawBody::new(self, framing, reuse, Arc::downgrade(home));
                return Ok(Response::from_parts(parts, body));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(Error::Invalid("answer head too large"));
            }
            let n = match std::future::poll_fn(|cx| self.poll_fill(cx)).await {
                Ok(n) => n,
                Err(e) if first => return Err(Error::Stale(e)),
                Err(e) => return Err(Error::Io(e)),
            };
            if n == 0 {
                return Err(if first && self.buf.is_empty() {
                    Error::Stale(std::io::ErrorKind::UnexpectedEof.into())
                } else {
                    Error::Invalid("connection closed inside the answer head")
                });
            }
            first = false;
        }
    }

    /// Reads what the socket has into the buffer (0: end of stream).
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < 1024 {
            self.buf.reserve(8 * 1024);
        }
        // tokio's read (unlike `try_read_buf`) clears the socket's readiness when a
        // read returns less than asked: the socket is drained, and [`Conn::quiet`]
        // then sees a later close without a system call.
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.buf)
    }
}

/// The head of a bodyless request in origin form: `METHOD path HTTP/1.1`, then the
/// fields as they are (names in lowercase, as hyper writes them).
pub(crate) fn encode_head(method: &Method, target: &str, headers: &HeaderMap) -> Vec<u8> {
    let mut size = method.as_str().len() + target.len() + 14;
    for (n, v) in headers {
        size += n.as_str().len() + v.len() + 4;
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (n, v) in headers {
        out.extend_from_slice(n.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

mod body;
mod head;

pub(crate) use body::RawBody;

#[cfg(test)]
mod tests;
