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
//! This module names nothing else of the crate: `body` and `upstream` both use it.

use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll, Waker};
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
                let body = RawBody {
                    conn: Some(self),
                    framing,
                    reuse,
                    home: Arc::downgrade(home),
                };
                return Ok(Response::from_parts(parts, body.finish_if_empty()));
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

    /// The answer's head when the buffer holds all of it (interim 1xx heads are
    /// consumed), with its framing and whether the connection may be reused.
    #[allow(clippy::type_complexity)]
    fn parse_head(
        &mut self,
        to_head: bool,
    ) -> Result<Option<(http::response::Parts, Framing, bool)>, Error> {
        loop {
            // (name start, end, value start, end) per field: offsets into the head.
            let mut fields = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
            let base = self.buf.as_ptr() as usize;
            let mut hs = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
            let mut r = httparse::Response::new(&mut []);
            let parsed = httparse::ParserConfig::default()
                .parse_response_with_uninit_headers(&mut r, &self.buf, &mut hs);
            let n = match parsed {
                Ok(httparse::Status::Complete(n)) => n,
                Ok(httparse::Status::Partial) => return Ok(None),
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(Error::Invalid("too many header fields"))
                }
                Err(_) => return Err(Error::Invalid("malformed answer head")),
            };
            let code = r.code.unwrap_or(0);
            let status = StatusCode::from_u16(code).map_err(|_| Error::Invalid("bad status"))?;
            if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
                self.buf.advance(n);
                continue;
            }
            let version = match r.version {
                Some(1) => Version::HTTP_11,
                _ => Version::HTTP_10,
            };
            let reason = r.reason.filter(|r| Some(*r) != status.canonical_reason());
            let reason = reason.and_then(|r| hyper::ext::ReasonPhrase::try_from(r.as_bytes()).ok());
            let count = r.headers.len();
            let offset = |p: *const u8| (p as usize - base) as u32; // < MAX_HEAD + a read
            for (f, h) in fields.iter_mut().zip(r.headers.iter()) {
                let (name, value) = (offset(h.name.as_ptr()), offset(h.value.as_ptr()));
                *f = (
                    name,
                    name + h.name.len() as u32,
                    value,
                    value + h.value.len() as u32,
                );
            }
            let head = self.buf.split_to(n).freeze();
            // Room for what the proxy adds on the way back (request id, security
            // headers, CORS): growing a header map rehashes it each time.
            let mut headers = HeaderMap::with_capacity(count + 16);
            let mut frame = FramingFacts::default();
            for &(ns, ne, vs, ve) in &fields[..count] {
                let (ns, ne, vs, ve) = (ns as usize, ne as usize, vs as usize, ve as usize);
                let name = HeaderName::from_bytes(&head[ns..ne])
                    .map_err(|_| Error::Invalid("bad header name"))?;
                let value = HeaderValue::from_maybe_shared(head.slice(vs..ve))
                    .map_err(|_| Error::Invalid("bad header value"))?;
                frame.see(&name, &value)?;
                headers.append(name, value);
            }
            let (framing, reuse) = frame.decide(to_head, status, version)?;
            let mut parts = Response::new(()).into_parts().0;
            parts.status = status;
            parts.version = version;
            parts.headers = headers;
            if let Some(reason) = reason {
                parts.extensions.insert(reason);
            }
            return Ok(Some((parts, framing, reuse)));
        }
    }
}

/// What the framing headers of an answer said.
#[derive(Default)]
struct FramingFacts {
    transfer_encoding: bool,
    chunked_last: bool,
    content_length: Option<u64>,
    close: bool,
}

impl FramingFacts {
    fn see(&mut self, name: &HeaderName, value: &HeaderValue) -> Result<(), Error> {
        let text = || {
            value
                .to_str()
                .map_err(|_| Error::Invalid("bad framing header"))
        };
        if name == http::header::TRANSFER_ENCODING {
            self.transfer_encoding = true;
            let last = text()?.rsplit(',').next().unwrap_or_default();
            self.chunked_last = last.trim().eq_ignore_ascii_case("chunked");
        } else if name == http::header::CONTENT_LENGTH {
            for v in text()?.split(',') {
                let v = v.trim();
                if v.is_empty() || v.len() > 19 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::Invalid("bad Content-Length"));
                }
                let n: u64 = v
                    .parse()
                    .map_err(|_| Error::Invalid("bad Content-Length"))?;
                if self.content_length.is_some_and(|m| m != n) {
                    return Err(Error::Invalid("differing Content-Length values"));
                }
                self.content_length = Some(n);
            }
        } else if name == http::header::CONNECTION {
            self.close |= text()?
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("close"));
        }
        Ok(())
    }

    /// RFC 9112 §6.3: the framing, and whether the connection may carry another
    /// request after it.
    fn decide(
        self,
        to_head: bool,
        status: StatusCode,
        version: Version,
    ) -> Result<(Framing, bool), Error> {
        if self.transfer_encoding && self.content_length.is_some() {
            return Err(Error::Invalid("Transfer-Encoding with Content-Length"));
        }
        let reuse = version == Version::HTTP_11 && !self.close;
        let no_body = to_head
            || status.is_informational()
            || status == StatusCode::NO_CONTENT
            || status == StatusCode::NOT_MODIFIED;
        Ok(if status == StatusCode::SWITCHING_PROTOCOLS {
            (Framing::Length(0), false) // never asked for: the caller refuses it
        } else if no_body {
            (Framing::Length(0), reuse)
        } else if self.transfer_encoding {
            if self.chunked_last {
                (Framing::Chunked(Chunk::Size), reuse)
            } else {
                (Framing::Close, false)
            }
        } else if let Some(n) = self.content_length {
            (Framing::Length(n), reuse)
        } else {
            (Framing::Close, false)
        })
    }
}

/// How the rest of the answer's body is delimited.
#[derive(Debug)]
enum Framing {
    /// This many bytes still to come (0: done).
    Length(u64),
    /// Chunked, in this state.
    Chunked(Chunk),
    /// Until the upstream closes.
    Close,
    /// Read to its end.
    Done,
}

#[derive(Debug)]
enum Chunk {
    /// A chunk-size line is next.
    Size,
    /// This many data bytes of the chunk still to come.
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    /// The trailer section (after the last chunk).
    Trailers,
    /// The trailers were handed on: the body is at its end.
    Ended,
}

/// An answer's body, read from its connection as it is polled; at its end the
/// connection goes back to its pool (see the module doc).
pub(crate) struct RawBody {
    conn: Option<Box<Conn>>,
    framing: Framing,
    reuse: bool,
    home: Weak<Idles>,
}

impl std::fmt::Debug for RawBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawBody")
            .field("framing", &self.framing)
            .finish_non_exhaustive()
    }
}

impl RawBody {
    fn finish_if_empty(mut self) -> Self {
        if matches!(self.framing, Framing::Length(0)) {
            self.finish();
        }
        self
    }

    /// The end of the body: the connection goes home when it may and nothing
    /// follows the answer.
    fn finish(&mut self) {
        self.framing = Framing::Done;
        if let (Some(conn), Some(home)) = (self.conn.take(), self.home.upgrade()) {
            if self.reuse && conn.buf.is_empty() {
                home.checkin(conn);
            }
        }
    }

    fn fail(&mut self, why: &'static str) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        self.framing = Framing::Done;
        self.conn = None;
        Poll::Ready(Some(Err(Error::Invalid(why))))
    }

    /// Reads more into the connection's buffer: `Ok(false)` at end of stream.
    fn poll_more(&mut self, cx: &mut Context<'_>) -> Poll<Result<bool, Error>> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        match ready!(conn.poll_fill(cx)) {
            Ok(n) => Poll::Ready(Ok(n > 0)),
            Err(e) => {
                self.conn = None;
                self.framing = Framing::Done;
                Poll::Ready(Err(Error::Io(e)))
            }
        }
    }

    fn buffered(&mut self) -> Option<&mut BytesMut> {
        self.conn
            .as_mut()
            .map(|c| &mut c.buf)
            .filter(|b| !b.is_empty())
    }
}

impl Body for RawBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        loop {
            match this.framing {
                Framing::Done => return Poll::Ready(None),
                Framing::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                Framing::Length(left) => {
                    if let Some(buf) = this.buffered() {
                        let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                        let data = buf.split_to(take).freeze();
                        this.framing = Framing::Length(left - take as u64);
                        if left == take as u64 {
                            this.finish();
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    if !ready!(this.poll_more(cx))? {
                        return this.fail("connection closed inside the answer body");
                    }
                }
                Framing::Close => {
                    if let Some(buf) = this.buffered() {
                        let data = buf.split().freeze();
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    if !ready!(this.poll_more(cx))? {
                        this.framing = Framing::Done;
                        this.conn = None;
                        return Poll::Ready(None);
                    }
                }
                Framing::Chunked(ref mut state) => {
                    let Some(conn) = this.conn.as_mut() else {
                        return this.fail("connection lost inside a chunked body");
                    };
                    match step(state, &mut conn.buf) {
                        Ok(Step::Frame(f)) => return Poll::Ready(Some(Ok(f))),
                        Ok(Step::Again) => continue,
                        Ok(Step::End) => {
                            this.finish();
                            return Poll::Ready(None);
                        }
                        Ok(Step::More) => {
                            if !ready!(this.poll_more(cx))? {
                                return this.fail("connection closed inside a chunked body");
                            }
                        }
                        Err(why) => return this.fail(why),
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.framing, Framing::Done | Framing::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

/// One step of the chunked decoder over what is buffered.
enum Step {
    /// A data or trailers frame.
    Frame(Frame<Bytes>),
    /// The state moved on; step again.
    Again,
    /// The buffer holds too little: read more.
    More,
    /// The last chunk and the trailers are in.
    End,
}

/// RFC 9112 §7.1: `chunk-size [ chunk-ext ] CRLF chunk-data CRLF`, ending with a
/// zero size, trailer fields and a CRLF.
fn step(state: &mut Chunk, buf: &mut BytesMut) -> Result<Step, &'static str> {
    match *state {
        Chunk::Size => {
            let (used, size) = match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete(done)) => done,
                Ok(httparse::Status::Partial) if buf.len() <= MAX_LINE => return Ok(Step::More),
                _ => return Err("bad chunk size"),
            };
            buf.advance(used);
            *state = if size == 0 {
                Chunk::Trailers
            } else {
                Chunk::Data(size)
            };
            Ok(Step::Again)
        }
        Chunk::Data(left) => {
            if buf.is_empty() {
                return Ok(Step::More);
            }
            let take = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            let data = buf.split_to(take).freeze();
            *state = if left == take as u64 {
                Chunk::DataEnd
            } else {
                Chunk::Data(left - take as u64)
            };
            Ok(Step::Frame(Frame::data(data)))
        }
        Chunk::DataEnd => {
            if buf.len() < 2 {
                return Ok(Step::More);
            }
            if &buf[..2] != b"\r\n" {
                return Err("missing CRLF after chunk data");
            }
            buf.advance(2);
            *state = Chunk::Size;
            Ok(Step::Again)
        }
        Chunk::Trailers => {
            if buf.starts_with(b"\r\n") {
                buf.advance(2);
                return Ok(Step::End);
            }
            let mut hs = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let (n, map) = match httparse::parse_headers(buf, &mut hs) {
                Ok(httparse::Status::Complete((n, fields))) => {
                    let mut map = HeaderMap::with_capacity(fields.len());
                    for f in fields.iter() {
                        let name = HeaderName::from_bytes(f.name.as_bytes())
                            .map_err(|_| "bad trailer name")?;
                        let value =
                            HeaderValue::from_bytes(f.value).map_err(|_| "bad trailer value")?;
                        map.append(name, value);
                    }
                    (n, map)
                }
                Ok(httparse::Status::Partial) if buf.len() <= MAX_LINE => return Ok(Step::More),
                _ => return Err("bad trailer section"),
            };
            buf.advance(n);
            if map.is_empty() {
                return Ok(Step::End);
            }
            *state = Chunk::Ended; // the trailers are the body's last frame
            Ok(Step::Frame(Frame::trailers(map)))
        }
        Chunk::Ended => Ok(Step::End),
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

#[cfg(test)]
#[path = "h1_tests.rs"]
mod tests;
