//! Request-smuggling guard for HTTP/1.1 connections (RFC 9112 §6.3, §11.2), which
//! also records when the connection last moved a byte (for `idle_timeout`).
//!
//! hyper resolves `Content-Length` + `Transfer-Encoding` by the RFC's rules (chunked
//! wins, connection closed afterwards) and folds equal duplicate `Content-Length`s,
//! which hides from the handler that the client sent an ambiguous message. This
//! wrapper watches the bytes a client sends, frames each request itself (head,
//! fixed-length or chunked body), and flags a head that carries both framings or
//! several `Content-Length` fields; the handler answers such a request 400 and the
//! connection is closed, so the request never reaches an upstream.
//!
//! It only reads; it never changes a byte. On anything it does not understand (HTTP/2,
//! an upgrade, a head hyper will refuse anyway) it stops watching and passes through.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Shared between the guard, the connection task and the request handler.
#[derive(Debug)]
pub struct Verdict {
    ambiguous: AtomicBool,
    /// Milliseconds since `epoch` of the last byte read or written.
    last_io_ms: AtomicU64,
    epoch: Instant,
}

impl Verdict {
    /// Whether an ambiguously framed request was seen on this connection.
    pub fn ambiguous(&self) -> bool {
        self.ambiguous.load(Ordering::Relaxed)
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_io_ms.store(ms, Ordering::Relaxed);
    }

    /// When the connection last moved a byte either way.
    pub fn last_io(&self) -> Instant {
        self.epoch + Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed))
    }
}

#[derive(Debug)]
enum State {
    /// Collecting a request head.
    Head(Vec<u8>),
    /// Skipping a fixed-length body.
    Fixed(u64),
    /// A chunk-size line.
    ChunkSize(Vec<u8>),
    /// Chunk data, then its CRLF.
    ChunkData(u64),
    /// Trailer lines after the last chunk (the current line so far).
    Trailers(Vec<u8>),
    /// Not watching any more.
    Off,
}

/// An IO wrapper that frames HTTP/1.1 requests as they are read.
pub struct Guard<IO> {
    inner: IO,
    watch: Watch,
}

struct Watch {
    state: State,
    max_head: usize,
    verdict: Arc<Verdict>,
}

impl<IO> Guard<IO> {
    /// Wraps `inner`; heads longer than `max_head` are left to hyper (431).
    pub fn new(inner: IO, max_head: usize) -> (Self, Arc<Verdict>) {
        let verdict = Arc::new(Verdict {
            ambiguous: AtomicBool::new(false),
            last_io_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        });
        (
            Guard {
                inner,
                watch: Watch {
                    state: State::Head(Vec::new()),
                    max_head,
                    verdict: verdict.clone(),
                },
            },
            verdict,
        )
    }
}

impl Watch {
    fn observe(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let state = std::mem::replace(&mut self.state, State::Off);
            let (next, used) = match state {
                State::Off => return,
                State::Head(acc) if acc.is_empty() => {
                    // The common case: a whole head in one read; parse it in place.
                    match find(data, b"\r\n\r\n") {
                        Some(i) => (self.head(&data[..i + 4]), i + 4),
                        None if data.len() > self.max_head => (State::Off, data.len()),
                        None => (State::Head(data.to_vec()), data.len()),
                    }
                }
                State::Head(mut acc) => {
                    let start = acc.len().saturating_sub(3);
                    acc.extend_from_slice(data);
                    match find(&acc[start..], b"\r\n\r\n") {
                        None if acc.len() > self.max_head => (State::Off, data.len()),
                        None => (State::Head(acc), data.len()),
                        Some(i) => {
                            let end = start + i + 4;
                            let used = data.len() - (acc.len() - end);
                            (self.head(&acc[..end]), used)
                        }
                    }
                }
                State::Fixed(n) => {
                    let k = n.min(data.len() as u64);
                    let rest = n - k;
                    let next = if rest == 0 {
                        State::Head(Vec::new())
                    } else {
                        State::Fixed(rest)
                    };
                    (next, k as usize)
                }
                State::ChunkSize(mut line) => match data.iter().position(|b| *b == b'\n') {
                    None if line.len() + data.len() > 1024 => (State::Off, data.len()),
                    None => {
                        line.extend_from_slice(data);
                        (State::ChunkSize(line), data.len())
                    }
                    Some(i) => {
                        line.extend_from_slice(&data[..i]);
                        (chunk_size(&line), i + 1)
                    }
                },
                State::ChunkData(n) => {
                    let k = n.min(data.len() as u64);
                    let rest = n - k;
                    let next = if rest == 0 {
                        State::ChunkSize(Vec::new())
                    } else {
                        State::ChunkData(rest)
                    };
                    (next, k as usize)
                }
                State::Trailers(mut line) => match data.iter().position(|b| *b == b'\n') {
                    None if line.len() + data.len() > self.max_head => (State::Off, data.len()),
                    None => {
                        line.extend_from_slice(data);
                        (State::Trailers(line), data.len())
                    }
                    Some(i) => {
                        line.extend_from_slice(&data[..i]);
                        let blank = line.iter().all(|b| *b == b'\r');
                        let next = if blank {
                            State::Head(Vec::new())
                        } else {
                            State::Trailers(Vec::new())
                        };
                        (next, i + 1)
                    }
                },
            };
            self.state = next;
            data = data.get(used..).unwrap_or_default();
        }
    }

    /// Decides what follows a complete head.
    fn head(&self, head: &[u8]) -> State {
        let mut headers = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(head) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return State::Off, // hyper refuses it, or it is not HTTP/1
        }
        let (mut cl, mut te, mut len, mut upgrade) = (0, 0, None, false);
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                cl += 1;
                len = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                te += 1;
            } else if h.name.eq_ignore_ascii_case("upgrade") {
                upgrade = true;
            }
        }
        if cl > 1 || (cl > 0 && te > 0) {
            self.verdict.ambiguous.store(true, Ordering::Relaxed);
            return State::Off; // hyper closes the connection after this request
        }
        if upgrade || req.method == Some("CONNECT") {
            return State::Off;
        }
        if te > 0 {
            return State::ChunkSize(Vec::new());
        }
        match (cl, len) {
            (0, _) | (_, Some(0)) => State::Head(Vec::new()),
            (_, Some(n)) => State::Fixed(n),
            (_, None) => State::Off,
        }
    }
}

fn chunk_size(line: &[u8]) -> State {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let hex = line.split(|b| *b == b';').next().unwrap_or_default();
    let hex = std::str::from_utf8(hex).unwrap_or("").trim();
    if hex.is_empty() || hex.len() > 15 {
        return State::Off; // hyper refuses it
    }
    match u64::from_str_radix(hex, 16) {
        Ok(0) => State::Trailers(Vec::new()),
        Ok(n) => State::ChunkData(n + 2), // data, then CRLF
        Err(_) => State::Off,
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guard<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = r {
            this.watch.verdict.touch();
            if !matches!(this.watch.state, State::Off) {
                this.watch
                    .observe(buf.filled().get(before..).unwrap_or_default());
            }
        }
        r
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guard<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, b)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(_)) = r {
            self.watch.verdict.touch();
        }
        r
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]]) -> bool {
        let (mut g, v) = Guard::new((), 65536);
        for c in chunks {
            g.watch.observe(c);
        }
        v.ambiguous()
    }

    #[test]
    fn flags_ambiguous_framing_anywhere_on_the_connection() {
        assert!(run(&[
            b"POST / HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        ]));
        assert!(run(&[
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n"
        ]));
        assert!(run(&[
            b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
        ]));
        // Split across reads, after a keep-alive request with a fixed body.
        assert!(run(&[
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab",
            b"cdePOST / HTTP/1.1\r\nContent-",
            b"Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ]));
        // After a chunked body with trailers.
        assert!(run(&[
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
            b"GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
        ]));
    }

    #[test]
    fn ordinary_traffic_is_not_flagged() {
        assert!(!run(&[
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n"
        ]));
        // Header-looking bytes inside a body are body.
        assert!(!run(&[
            b"POST / HTTP/1.1\r\nContent-Length: 52\r\n\r\n",
            b"X\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ]));
        assert!(!run(&[b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nContent-Length: \r\n0\r\n\r\n"]));
        // HTTP/2 prior knowledge is not watched.
        assert!(!run(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"]));
    }
}
