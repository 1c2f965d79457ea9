//! An answer's body ([`RawBody`]): `Content-Length`, chunked (RFC 9112 §7.1, trailers
//! handed on) or until the upstream closes, read from the connection's buffer as it
//! is polled; at its end the connection goes back to its pool.

use super::{Conn, Error, Idles, MAX_HEADERS, MAX_LINE};
use bytes::{Buf, Bytes, BytesMut};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::sync::Weak;
use std::task::{ready, Context, Poll};

/// How the rest of the answer's body is delimited.
#[derive(Debug)]
pub(super) enum Framing {
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
pub(super) enum Chunk {
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
    /// The body of an answer on `conn`, at its end at once when it has none.
    pub(super) fn new(conn: Box<Conn>, framing: Framing, reuse: bool, home: Weak<Idles>) -> Self {
        let mut body = RawBody {
            conn: Some(conn),
            framing,
            reuse,
            home,
        };
        if matches!(body.framing, Framing::Length(0)) {
            body.finish();
        }
        body
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
