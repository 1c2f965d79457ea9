//! The smuggling guard over whole keep-alive connections (SPEC §4, SECURITY.md
//! promise 5). Input: `[flags, cut seed (4 bytes), payload...]`. With `flags & 1`
//! the payload picks up to eight well-framed requests from templates (upgrades,
//! leading empty lines, bare LF, long chunk sizes, extensions, trailers, ...),
//! followed by an ambiguous one (CL+TE, TE+CL, two Content-Lengths); otherwise the
//! payload is raw bytes. Invariants:
//! - nothing panics;
//! - the verdict (the bytes hyper is handed, where input ends, which requests are
//!   refused) is the same however the bytes are cut into reads and whatever hyper's
//!   read size;
//! - the ambiguous request after the templates is always refused, and only it: hyper
//!   gets every earlier request, then the stand-in;
//! - after raw bytes that leave the connection between requests, an ambiguous
//!   request is refused;
//! - hyper itself, fed the raw bytes with no guard, never parses a request the guard
//!   did not frame as the same one (same target, same body), nor more requests,
//!   except where the guard refuses a head hyper would take (ambiguous, too large).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::server::smuggle::{Event, Framer, Guard, Refusal, STAND_IN};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, ReadBuf};

const MAX_HEAD: usize = 4096;

/// A socket returning the given reads, then its end.
struct Script(VecDeque<Vec<u8>>);

impl AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if let Some(mut r) = self.0.pop_front() {
            let k = r.len().min(buf.remaining());
            buf.put_slice(&r[..k]);
            if k < r.len() {
                r.drain(..k);
                self.0.push_front(r);
            }
        }
        Poll::Ready(Ok(()))
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    delivered: Vec<u8>,
    eof: bool,
    refusals: Vec<Option<Refusal>>,
}

/// Cuts `bytes` into reads of lengths drawn from `seed` (1..=max).
fn cuts(bytes: &[u8], seed: u32, max: usize) -> Vec<Vec<u8>> {
    let mut x = seed | 1;
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let n = (x as usize % max.max(1)) + 1;
        let (a, b) = rest.split_at(n.min(rest.len()));
        out.push(a.to_vec());
        rest = b;
    }
    out
}

/// Everything hyper would read through the guard with a `chunk`-byte buffer; each
/// upgrade the guard waits on is answered `switched`.
fn drive(reads: Vec<Vec<u8>>, chunk: usize, switched: bool) -> Outcome {
    let (mut g, v) = Guard::new(Script(reads.into()), MAX_HEAD, true);
    let mut cx = Context::from_waker(Waker::noop());
    let mut delivered = Vec::new();
    let mut space = vec![0u8; chunk];
    let mut answered = None;
    let eof = loop {
        let mut buf = ReadBuf::new(&mut space);
        match Pin::new(&mut g).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => break true,
            Poll::Ready(Ok(())) => delivered.extend_from_slice(buf.filled()),
            Poll::Ready(Err(e)) => panic!("{e}"),
            Poll::Pending => match v.awaiting_upgrade() {
                Some(n) if answered != Some(n) => {
                    answered = Some(n);
                    v.answer_upgrade(n, switched);
                }
                _ => break false,
            },
        }
    };
    Outcome {
        delivered,
        eof,
        refusals: (0..=64).map(|n| v.refusal(n)).collect(),
    }
}

/// The verdict must not depend on the cuts or the read size.
fn same_verdict(bytes: &[u8], seed: u32, switched: bool) -> Outcome {
    let whole = drive(vec![bytes.to_vec()], 8192, switched);
    let cut = drive(
        cuts(bytes, seed, 1 + (seed >> 24) as usize % 64),
        1 + (seed as usize >> 8) % 97,
        switched,
    );
    assert_eq!(whole, cut, "cut differently, judged differently");
    let ones = drive(cuts(bytes, 0, 1), 8192, switched);
    assert_eq!(whole, ones, "one-byte reads judged differently");
    whole
}

/// Reads parameters from the payload.
struct Params<'a>(&'a [u8]);

impl Params<'_> {
    fn byte(&mut self) -> u8 {
        let (b, rest) = self.0.split_first().map_or((0, &[][..]), |(b, r)| (*b, r));
        self.0 = rest;
        b
    }
    fn text(&mut self, max: usize) -> String {
        let n = self.byte() as usize % (max + 1);
        (0..n)
            .map(|_| char::from(b'a' + self.byte() % 26))
            .collect()
    }
}

/// One well-framed request from a template; `p` is its path.
fn innocent(p: &mut Params<'_>, path: &str) -> Vec<u8> {
    let h = "Host: localhost\r\n";
    match p.byte() % 10 {
        0 => format!("GET {path} HTTP/1.1\r\n{h}\r\n").into_bytes(),
        1 => {
            let body = p.text(40);
            let zeros = "0".repeat(p.byte() as usize % 4);
            format!(
                "POST {path} HTTP/1.1\r\n{h}Content-Length: {zeros}{}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }
        2 => {
            let mut s = format!("POST {path} HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n");
            for _ in 0..p.byte() % 4 {
                let data = p.text(20);
                if data.is_empty() {
                    continue;
                }
                let zeros = "0".repeat(p.byte() as usize % 20);
                let hex = if p.byte() % 2 == 0 {
                    format!("{:x}", data.len())
                } else {
                    format!("{:X}", data.len())
                };
                let ext = match p.byte() % 4 {
                    0 => String::new(),
                    1 => format!(";{}", p.text(10)),
                    2 => format!(" \t;{}=\"{} x\"", p.text(5), p.text(5)),
                    _ => "  ".into(),
                };
                s += &format!("{zeros}{hex}{ext}\r\n{data}\r\n");
            }
            s += &"0".repeat(1 + p.byte() as usize % 20);
            s += "\r\n";
            for _ in 0..p.byte() % 3 {
                s += &format!("X-{}: {}\r\n", p.text(6), p.text(10));
            }
            s += "\r\n";
            s.into_bytes()
        }
        3 => {
            let up = ["websocket", "h2c", "foo", "TLS/1.2"][p.byte() as usize % 4];
            let body = if p.byte() % 2 == 0 {
                String::new()
            } else {
                p.text(8)
            };
            format!(
                "GET {path} HTTP/1.1\r\n{h}Connection: Upgrade\r\nUpgrade: {up}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }
        4 => {
            let lead: String = (0..p.byte() % 6)
                .map(|i| if i % 2 == 0 { "\r\n" } else { "\n" })
                .collect();
            format!("{lead}GET {path} HTTP/1.1\r\n{h}\r\n").into_bytes()
        }
        5 => format!("GET {path} HTTP/1.1\nHost: localhost\nX-A: b\r\n\n").into_bytes(),
        6 => format!("CONNECT localhost:443 HTTP/1.1\r\n{h}\r\n").into_bytes(),
        7 => format!("GET {path} HTTP/1.0\r\n{h}Connection: keep-alive\r\n\r\n").into_bytes(),
        8 => {
            let body = p.text(10);
            format!("PUT {path} HTTP/1.1\r\n{h}Expect: 100-continue\r\nContent-Length: {}\r\n\r\n{body}", body.len())
                .into_bytes()
        }
        _ => format!("OPTIONS * HTTP/1.1\r\n{h}X-Pad: {}\r\n\r\n", p.text(30)).into_bytes(),
    }
}

/// An ambiguously framed request hiding another.
fn smuggler(which: u8) -> Vec<u8> {
    let sm = "GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let z = format!("0\r\n\r\n{sm}");
    match which % 7 {
        0 => format!("POST /bad HTTP/1.1\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{z}", z.len()),
        1 => format!("POST /bad HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{z}"),
        2 => format!("POST /bad HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello{sm}"),
        3 => format!("POST /bad HTTP/1.1\r\ncontent-length: 5\r\nCONTENT-LENGTH: 50\r\n\r\nhello{sm}"),
        4 => format!("POST /bad HTTP/1.1\ntransfer-encoding: chunked\ncontent-length: 0\n\n{z}"),
        5 => format!("\r\nPOST /bad HTTP/1.1\r\nContent-Length: 0\r\nTransfer-Encoding: gzip, chunked\r\n\r\n{z}"),
        _ => format!("POST /bad HTTP/1.0\r\nContent-Length: 5\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello{sm}"),
    }
    .into_bytes()
}

fn structured(flags: u8, seed: u32, payload: &[u8]) {
    let mut p = Params(payload);
    let n = (p.byte() % 9) as u32;
    let mut before = Vec::new();
    for k in 0..n {
        before.extend(innocent(&mut p, &format!("/ok/{k}")));
    }
    let bad = smuggler(flags >> 1);
    let bytes = [&before[..], &bad].concat();
    let out = same_verdict(&bytes, seed, false);
    // Empty lines before the ambiguous request line are harmless and passed on.
    let lead = bad
        .iter()
        .take_while(|b| matches!(b, b'\r' | b'\n'))
        .count();
    assert_eq!(
        out.delivered,
        [&before[..], &bad[..lead], STAND_IN].concat(),
        "hyper was not handed exactly the good requests, then the stand-in"
    );
    assert_eq!(
        out.refusals[n as usize],
        Some(Refusal::BadRequest),
        "the ambiguous request #{n} was not refused"
    );
    if n > 0 {
        assert_eq!(
            out.refusals[n as usize - 1],
            None,
            "a good request was refused"
        );
    }
}

fn raw(flags: u8, seed: u32, payload: &[u8]) {
    same_verdict(payload, seed, flags & 2 != 0);
    // Between requests after arbitrary bytes: the next ambiguous request is refused.
    let mut f = Framer::new(MAX_HEAD);
    let mut at = 0;
    let ended = loop {
        let s = f.step(&payload[at..]);
        at += s.cleared;
        match s.event {
            Event::Hold => f.resume(),
            e => break e,
        }
    };
    if ended == Event::More && f.at_boundary() {
        let bad = smuggler(flags >> 2);
        let lead = bad
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        let s = f.step(&bad);
        assert_eq!(
            (s.cleared, s.event),
            (lead, Event::Refuse(Refusal::BadRequest))
        );
    }
    if payload.len() <= 2048 {
        against_hyper(payload);
    }
}

/// A request as seen by the framer or by hyper: target, and body (decoded) if read.
type Seen = (String, Option<Vec<u8>>);

/// The requests the framer clears in `bytes`, with their bodies (`None`: the body
/// did not end), and how framing ended. Requests that may switch protocols are
/// taken not to (hyper's test server answers 200).
fn framer_requests(bytes: &[u8]) -> (Vec<Seen>, Event) {
    let mut f = Framer::new(MAX_HEAD);
    let mut out = Vec::<Seen>::new();
    // Where the current message starts, where its head ended, how far is cleared.
    let (mut start, mut head_end, mut cleared) = (0usize, None, 0usize);
    let mut last = Event::More;
    // One byte at a time, to see where each head and each message ends.
    for end in 1..=bytes.len() {
        let heads = f.heads();
        let s = f.step(&bytes[cleared..end]);
        cleared += s.cleared;
        last = s.event;
        if f.heads() > heads {
            head_end = Some(cleared);
        }
        match s.event {
            Event::Refuse(_) | Event::Broken => break,
            Event::Hold => f.resume(),
            _ => {}
        }
        if f.at_boundary() {
            if let Some(he) = head_end.take() {
                let head = &bytes[start..he];
                out.push((target(head), Some(decode(head, &bytes[he..cleared]))));
            }
            start = cleared;
        }
    }
    if let Some(he) = head_end {
        out.push((target(&bytes[start..he]), None));
    }
    (out, last)
}

fn target(head: &[u8]) -> String {
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut fields);
    let _ = req.parse(head);
    // As hyper shows it (`Uri` display adds the `/` of an absolute-form target).
    let t = req.path.unwrap_or("");
    http::Uri::try_from(t).map_or_else(|_| t.to_string(), |u| u.to_string())
}

/// The body bytes hyper would yield for a framed message body.
fn decode(head: &[u8], raw: &[u8]) -> Vec<u8> {
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut fields);
    let _ = req.parse(head);
    if !req
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"))
    {
        return raw.to_vec();
    }
    let mut out = Vec::new();
    let mut rest = raw;
    loop {
        let line_end = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
        let size_txt: Vec<u8> = rest[..line_end]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .copied()
            .collect();
        let size = u64::from_str_radix(std::str::from_utf8(&size_txt).unwrap_or("0"), 16)
            .unwrap_or(0) as usize;
        rest = rest.get(line_end + 1..).unwrap_or_default();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&rest[..size.min(rest.len())]);
        rest = rest.get(size + 2..).unwrap_or_default();
    }
}

/// What hyper's server, with no guard, makes of `bytes`.
fn hyper_requests(bytes: &[u8]) -> Vec<Seen> {
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    let rt = RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    });
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    let bytes = bytes.to_vec();
    rt.block_on(async move {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let log = log.clone();
            async move {
                let i = {
                    let mut l = log.lock().unwrap();
                    l.push((req.uri().to_string(), None));
                    l.len() - 1
                };
                let body = req.into_body().collect().await.ok();
                log.lock().unwrap()[i].1 = body.map(|b| b.to_bytes().to_vec());
                Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Empty::<
                    bytes::Bytes,
                >::new()))
            }
        });
        let conn = hyper::server::conn::http1::Builder::new()
            .half_close(true)
            .max_buf_size(1 << 16)
            .serve_connection(hyper_util::rt::TokioIo::new(server), svc);
        let talk = async move {
            let _ = client.write_all(&bytes).await;
            let _ = client.shutdown().await;
            let mut sink = Vec::new();
            let _ = client.read_to_end(&mut sink).await;
        };
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            tokio::join!(conn, talk)
        })
        .await;
    });
    let out = seen.lock().unwrap().clone();
    out
}

fn against_hyper(bytes: &[u8]) {
    let (framed, last) = framer_requests(bytes);
    let parsed = hyper_requests(bytes);
    let may_take_more = matches!(last, Event::Refuse(Refusal::BadRequest | Refusal::TooLarge));
    for (i, (t, body)) in parsed.iter().enumerate() {
        let Some((ft, fbody)) = framed.get(i) else {
            // hyper parsed a request the framer did not clear: only the refused,
            // ambiguous (or, with hyper's larger limit, too large) head, which hyper
            // never sees behind the guard (nor anything after it).
            assert!(
                may_take_more && i == framed.len(),
                "hyper parsed request #{i} {t:?} the guard never cleared: {parsed:?} vs {framed:?}"
            );
            break;
        };
        assert_eq!(
            t, ft,
            "request #{i}: hyper and the guard disagree on the target"
        );
        if let (Some(b), Some(fb)) = (body, fbody) {
            assert_eq!(
                b, fb,
                "request #{i}: hyper and the guard disagree on the body"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (seed, payload) = if rest.len() >= 4 {
        let (s, p) = rest.split_at(4);
        (u32::from_le_bytes([s[0], s[1], s[2], s[3]]), p)
    } else {
        (0, rest)
    };
    if payload.len() > 8192 {
        return;
    }
    if flags & 1 == 1 {
        structured(flags, seed, payload);
    } else {
        raw(flags, seed, payload);
    }
});
