//! The request framer behind [`super::Guard`]: given the bytes a client sends on an
//! HTTP/1.1 connection, in order and cut anywhere, it finds where every request head
//! and body ends exactly as hyper 1.12's server will (RFC 9112 §2.2 leading empty
//! lines, §5 heads via `httparse`, §6.3 body length, §7.1 chunked coding with
//! extensions and trailers, including hyper's limits, read by [`super::chunked`]), and
//! says which bytes hyper may have.
//!
//! Guarantees: only whole heads that [`super::head::check`] accepted are cleared for
//! hyper, never part of one, so a refused head is never seen by hyper; the first head
//! refused, the first body byte hyper's decoder would fail on, or the end of a request
//! hyper may switch protocols after, stops the framer until told what happened. The
//! verdict does not depend on how the bytes were cut into reads. No allocation.

use super::chunked::Chunked;
use super::head::{self, Body};
use super::Refusal;

/// RFC 9112 §2.2 asks a server to ignore "at least one" empty line before a request
/// line; more than this many bytes of them: 400 (hyper would buffer any number).
const MAX_LEAD: usize = 1024;

/// Why [`Framer::step`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Every byte given is cleared; give more.
    More,
    /// The bytes after the cleared ones start a head that is not complete yet: call
    /// again with them, followed by more.
    Partial,
    /// The request that ended at the cleared bytes may switch protocols: say whether
    /// it did ([`Framer::resume`] if not) before giving the bytes after it.
    Hold,
    /// The head after the cleared bytes is refused; nothing after it is read.
    Refuse(Refusal),
    /// The last cleared byte breaks the body's framing (hyper fails on it too);
    /// nothing after it is read.
    Broken,
}

/// The result of [`Framer::step`]: how many leading bytes hyper may have, and why it
/// stopped there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub cleared: usize,
    pub event: Event,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Before a request line, skipping empty lines.
    Lead,
    /// In a head, `scanned` bytes of it searched for its end.
    Head {
        scanned: usize,
    },
    /// A fixed-length body: bytes left.
    Fixed(u64),
    Chunked(Chunked),
    /// After a request hyper may switch protocols on.
    Held,
    /// After a refusal or a broken body.
    Done,
}

/// Frames the requests of one HTTP/1.1 connection.
#[derive(Debug, Clone)]
pub struct Framer {
    state: State,
    max_head: usize,
    /// Empty-line bytes before the current head.
    lead: usize,
    /// Heads cleared so far (the index of the next one).
    heads: u32,
    /// The current request may switch protocols (hyper's `wants_upgrade`).
    hold_after: bool,
}

enum Flow {
    /// Consumed this many bytes (cleared); go on.
    Go(usize),
    /// Consumed (cleared) this many, then stop.
    Stop(usize, Event),
}

impl Framer {
    /// A framer for a new connection; heads longer than `max_head` bytes (leading
    /// empty lines included) are refused as too large.
    pub fn new(max_head: usize) -> Self {
        Framer {
            state: State::Lead,
            max_head,
            lead: 0,
            heads: 0,
            hold_after: false,
        }
    }

    /// The number of heads cleared so far: the index (from 0) of the next one.
    pub fn heads(&self) -> u32 {
        self.heads
    }

    /// While [`Event::Hold`] is in force: the index of the request held after.
    pub fn held(&self) -> Option<u32> {
        matches!(self.state, State::Held).then(|| self.heads.saturating_sub(1))
    }

    /// Between requests with nothing pending (for checks and fuzzing).
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Lead) && self.lead == 0
    }

    /// After [`Event::Hold`]: the request did not switch protocols, so what follows
    /// is the next request.
    pub fn resume(&mut self) {
        if matches!(self.state, State::Held) {
            self.state = State::Lead;
        }
    }

    /// Frames `data`, which starts where the previous call's cleared bytes ended (so
    /// after [`Event::Partial`] it starts with the bytes that were not cleared).
    pub fn step(&mut self, data: &[u8]) -> Step {
        let mut i = 0;
        loop {
            let rest = data.get(i..).unwrap_or_default();
            let flow = match &mut self.state {
                State::Held => Flow::Stop(0, Event::Hold),
                State::Done => Flow::Stop(0, Event::Broken),
                _ if rest.is_empty() => Flow::Stop(0, Event::More),
                State::Lead => self.lead(rest),
                State::Head { scanned } => {
                    let scanned = *scanned;
                    self.head(rest, scanned)
                }
                State::Fixed(left) => {
                    let k = (*left).min(rest.len() as u64);
                    *left -= k;
                    if *left == 0 {
                        self.state = self.message_end();
                    }
                    Flow::Go(usize::try_from(k).unwrap_or(rest.len()))
                }
                State::Chunked(c) => match c.feed(rest) {
                    (k, Some(true)) => {
                        self.state = self.message_end();
                        Flow::Go(k)
                    }
                    (k, Some(false)) => Flow::Go(k),
                    (k, None) => {
                        self.state = State::Done;
                        Flow::Stop(k, Event::Broken)
                    }
                },
            };
            match flow {
                Flow::Go(k) => i += k,
                Flow::Stop(k, event) => {
                    return Step {
                        cleared: i + k,
                        event,
                    }
                }
            }
        }
    }

    fn message_end(&mut self) -> State {
        if std::mem::take(&mut self.hold_after) {
            State::Held
        } else {
            State::Lead
        }
    }

    fn refuse(&mut self, why: Refusal) -> Flow {
        self.state = State::Done;
        Flow::Stop(0, Event::Refuse(why))
    }

    /// Empty lines (`CRLF` or a bare `LF`, as httparse skips them) before a request
    /// line; a CR not followed by LF is refused, as hyper would, and so is more than
    /// [`MAX_LEAD`] bytes of them (none past the limit is cleared).
    fn lead(&mut self, rest: &[u8]) -> Flow {
        let mut k = 0;
        loop {
            let unit = match rest.get(k) {
                None => return Flow::Go(k),
                Some(b'\n') => 1,
                Some(b'\r') => match rest.get(k + 1) {
                    Some(b'\n') => 2,
                    Some(_) => {
                        self.state = State::Done;
                        return Flow::Stop(k, Event::Refuse(Refusal::BadRequest));
                    }
                    None => return Flow::Stop(k, Event::Partial),
                },
                Some(_) => {
                    self.state = State::Head { scanned: 0 };
                    return Flow::Go(k);
                }
            };
            if self.lead + unit > MAX_LEAD {
                self.state = State::Done;
                return Flow::Stop(k, Event::Refuse(Refusal::BadRequest));
            }
            self.lead += unit;
            k += unit;
        }
    }

    /// A head from its first byte; `scanned` bytes were searched before.
    fn head(&mut self, rest: &[u8], scanned: usize) -> Flow {
        let Some(end) = head_end(rest, scanned.saturating_sub(2)) else {
            if self.lead + rest.len() > self.max_head {
                return self.refuse(Refusal::TooLarge);
            }
            self.state = State::Head {
                scanned: rest.len(),
            };
            return Flow::Stop(0, Event::Partial);
        };
        if self.lead + end > self.max_head {
            return self.refuse(Refusal::TooLarge);
        }
        let framing = match head::check(rest.get(..end).unwrap_or_default()) {
            Ok(f) => f,
            Err(why) => return self.refuse(why),
        };
        self.heads = self.heads.saturating_add(1);
        self.lead = 0;
        self.hold_after = framing.upgrade;
        self.state = match framing.body {
            Body::None => self.message_end(),
            Body::Fixed(n) => State::Fixed(n),
            Body::Chunked => State::Chunked(Chunked::default()),
        };
        Flow::Go(end)
    }
}

/// The end of a head that starts with a non-empty line: just past the first line
/// ending followed by an empty line (`\n\n` or `\n\r\n`, which covers every mix of
/// CRLF and bare LF httparse accepts), searching from `from`.
fn head_end(h: &[u8], from: usize) -> Option<usize> {
    memchr::memchr_iter(b'\n', h.get(from..)?)
        .map(|p| p + from)
        .find_map(|p| match h.get(p + 1..p + 3) {
            Some([b'\n', _]) => Some(p + 2),
            Some(b"\r\n") => Some(p + 3),
            None if h.get(p + 1) == Some(&b'\n') => Some(p + 2),
            _ => None,
        })
}

#[cfg(test)]
mod tests;
