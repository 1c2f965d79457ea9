//! Request-smuggling guard for HTTP/1.1 connections (RFC 9112 §6.3, §11.2).
//!
//! hyper resolves `Content-Length` + `Transfer-Encoding` by the RFC's rules (chunked
//! wins) and folds equal duplicate `Content-Length`s, which hides from the handler
//! that the client sent an ambiguous message; and it answers heads it cannot parse
//! itself, without our JSON body or `X-Request-Id`. [`Guard`] sits between the socket
//! and hyper and frames every request of the connection itself ([`Framer`]): hyper
//! is handed a head only once the whole head is in and accepted, and body bytes as
//! they are framed. A head that is ambiguous, or one hyper would refuse, never
//! reaches hyper: in its place hyper gets a fixed `GET / HTTP/1.1` with `Connection:
//! close`, and the service answers that one (see [`Verdict::refusal`]) with the SPEC
//! §4 response; then the connection closes. A body that breaks hyper's framing ends
//! the connection's input (hyper fails the request, the handler answers it).
//!
//! Guarantees, for every request of every HTTP/1.1 connection whatever came before
//! it: the framing checks hold; hyper never parses a byte the guard did not frame as
//! the same request; the guard only stops framing (passes bytes through) on HTTP/2
//! connections and once hyper has answered a protocol switch (`101`, or `2xx` to
//! CONNECT), after which hyper parses nothing more as HTTP. After any other answer to
//! a request that asked to upgrade, framing goes on. Cost on the good path: a head
//! that arrives in one read is judged in place (one `httparse` pass, no allocation);
//! bytes are copied aside only when a head is split over reads or while waiting to
//! learn whether a protocol switch happened.

mod chunked;
mod framer;
mod head;
mod verdict;

pub use framer::{Event, Framer, Step};
pub use verdict::{wants_upgrade, Verdict};

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, ReadBuf};

/// Why the guard answers a request head itself (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Ambiguous framing, or a head hyper would answer 400: 400.
    BadRequest,
    /// A head over `max_header_bytes`, or too many fields: 431.
    TooLarge,
    /// A request target hyper would answer 414.
    UriTooLong,
}

impl Refusal {
    pub(crate) fn code(self) -> u8 {
        match self {
            Refusal::BadRequest => 1,
            Refusal::TooLarge => 2,
            Refusal::UriTooLong => 3,
        }
    }
}

/// What hyper is handed in place of a refused head.
pub const STAND_IN: &[u8] = b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Framing every byte.
    Watch,
    /// Passing bytes through (HTTP/2, or after a protocol switch).
    Off,
    /// Handing hyper the stand-in head, this many bytes of it done.
    StandIn(usize),
    /// The stand-in is out; nothing more is read.
    Refused,
    /// A body broke hyper's framing: hyper sees the end of input.
    Eof,
}

/// An IO wrapper that frames HTTP/1.1 requests before hyper reads them.
pub struct Guard<IO> {
    inner: IO,
    mode: Mode,
    framer: Framer,
    /// Bytes read from `inner` that hyper has not had yet, from `start`: the first
    /// `ok` are cleared, the rest is the framer's pending input (a partial head, or
    /// what followed a request it holds after).
    held: Vec<u8>,
    start: usize,
    ok: usize,
    /// The pending input changed since the framer last saw it.
    fresh: bool,
    verdict: Arc<Verdict>,
}

impl<IO> Guard<IO> {
    /// Wraps `inner`. `http1`: frame its requests (else pass bytes through, for
    /// HTTP/2); heads longer than `max_head` bytes are refused (431).
    pub fn new(inner: IO, max_head: usize, http1: bool) -> (Self, Arc<Verdict>) {
        let verdict = Arc::new(Verdict::new());
        let guard = Guard {
            inner,
            mode: if http1 { Mode::Watch } else { Mode::Off },
            framer: Framer::new(max_head),
            held: Vec::new(),
            start: 0,
            ok: 0,
            fresh: false,
            verdict: verdict.clone(),
        };
        (guard, verdict)
    }

    fn pending(&self) -> &[u8] {
        self.held.get(self.start + self.ok..).unwrap_or_default()
    }

    /// Applies a step over the pending input.
    fn apply_held(&mut self, step: Step) {
        self.ok = step.cleared;
        match step.event {
            Event::More | Event::Partial => {}
            Event::Hold => self.fresh = true,
            Event::Refuse(why) => {
                self.held.truncate(self.start + self.ok);
                self.refuse(why);
            }
            Event::Broken => {
                self.held.truncate(self.start + self.ok);
                self.broken();
            }
        }
    }

    fn refuse(&mut self, why: Refusal) {
        self.verdict.refuse(self.framer.heads(), why);
        self.mode = Mode::StandIn(0);
    }

    fn broken(&mut self) {
        self.verdict
            .refuse(self.framer.heads(), Refusal::BadRequest);
        self.mode = Mode::Eof;
    }
}

impl<IO: AsyncRead + Unpin> Guard<IO> {
    /// Reads from the socket into `buf`; `Ok(0)` at its end.
    fn read_inner(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        let before = buf.filled().len();
        Pin::new(&mut self.inner)
            .poll_read(cx, buf)
            .map_ok(|()| buf.filled().len() - before)
    }

    /// Hands hyper cleared bytes that were set aside.
    fn give_cleared(&mut self, buf: &mut ReadBuf<'_>) {
        let k = self.ok.min(buf.remaining());
        buf.put_slice(
            self.held
                .get(self.start..self.start + k)
                .unwrap_or_default(),
        );
        self.start += k;
        self.ok -= k;
        if self.start >= self.held.len() {
            // Give the memory back: an idle connection holds no buffer here.
            self.held = Vec::new();
            self.start = 0;
        }
    }

    /// What a read returns when the guard is not framing; `None` while it is.
    fn not_framing(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Option<Poll<io::Result<()>>> {
        Some(match self.mode {
            Mode::Watch => return None,
            Mode::Off => self.read_inner(cx, buf).map_ok(|_| ()),
            Mode::StandIn(done) => {
                let rest = STAND_IN.get(done..).unwrap_or_default();
                let k = rest.len().min(buf.remaining());
                buf.put_slice(&rest[..k]);
                self.mode = if done + k == STAND_IN.len() {
                    Mode::Refused
                } else {
                    Mode::StandIn(done + k)
                };
                Poll::Ready(Ok(()))
            }
            // hyper closes the connection once it has answered the stand-in.
            Mode::Refused => Poll::Pending,
            Mode::Eof => Poll::Ready(Ok(())),
        })
    }

    /// Frames the pending input again when it changed, else reads more behind it (a
    /// partial head; hyper's buffer as scratch). `Ready(Ok)`: look again.
    fn frame_pending(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.fresh {
            self.fresh = false;
            let pending = self.held.get(self.start..).unwrap_or_default();
            let step = self.framer.step(pending);
            self.apply_held(step);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        if std::task::ready!(self.read_inner(cx, buf))? == 0 {
            self.held = Vec::new();
            self.start = 0;
            self.mode = Mode::Eof;
            return Poll::Ready(Ok(()));
        }
        self.held
            .extend_from_slice(buf.filled().get(before..).unwrap_or_default());
        buf.set_filled(before);
        self.fresh = true;
        Poll::Ready(Ok(()))
    }

    /// With nothing pending: reads into hyper's buffer and frames in place, keeping
    /// what is not cleared aside. `Ready(Ok(true))`: `buf` is ready for hyper.
    fn read_in_place(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<bool>> {
        let before = buf.filled().len();
        if std::task::ready!(self.read_inner(cx, buf))? == 0 {
            return Poll::Ready(Ok(true));
        }
        let new = buf.filled().get(before..).unwrap_or_default();
        let step = self.framer.step(new);
        let keep = before + step.cleared;
        match step.event {
            Event::More => return Poll::Ready(Ok(true)),
            Event::Partial | Event::Hold => {
                self.held = new.get(step.cleared..).unwrap_or_default().to_vec();
                self.start = 0;
                self.fresh = step.event == Event::Hold;
            }
            Event::Refuse(why) => self.refuse(why),
            Event::Broken => self.broken(),
        }
        buf.set_filled(keep);
        Poll::Ready(Ok(step.cleared > 0))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guard<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            // Cleared bytes set aside come first.
            if this.ok > 0 {
                this.give_cleared(buf);
                return Poll::Ready(Ok(()));
            }
            if let Some(r) = this.not_framing(cx, buf) {
                return r;
            }
            if let Some(n) = this.framer.held() {
                match this.verdict.upgrade_answer(n, cx) {
                    None => return Poll::Pending,
                    Some(true) => {
                        this.mode = Mode::Off;
                        this.ok = this.held.len() - this.start;
                        continue;
                    }
                    Some(false) => {
                        this.framer.resume();
                        this.fresh = true;
                    }
                }
            }
            if !this.pending().is_empty() {
                std::task::ready!(this.frame_pending(cx, buf))?;
                continue;
            }
            if std::task::ready!(this.read_in_place(cx, buf))? {
                return Poll::Ready(Ok(()));
            }
        }
    }
}

write_through!(Guard);

#[cfg(test)]
mod tests;
