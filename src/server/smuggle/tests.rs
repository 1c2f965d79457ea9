//! The guard as hyper sees it: a scripted socket under it, reads of a given size
//! over it, the verdict beside it.

use super::*;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::Waker;
use std::time::Duration;

/// A socket that returns `reads` one by one, then its end.
struct Script(VecDeque<Vec<u8>>);

impl AsyncRead for Script {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
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

/// Reads everything hyper would get with a `chunk`-byte buffer; an upgrade waited
/// on is answered `switched`. Returns the bytes and whether input ended (EOF) as
/// opposed to stopping (after a refusal).
fn drive(
    reads: &[&[u8]],
    http1: bool,
    chunk: usize,
    switched: bool,
) -> (Vec<u8>, bool, Arc<Verdict>, Guard<Script>) {
    let script = Script(reads.iter().map(|r| r.to_vec()).collect());
    let (mut g, v) = Guard::new(script, 1024, http1);
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    let mut space = vec![0u8; chunk];
    let eof = loop {
        let mut buf = ReadBuf::new(&mut space);
        match Pin::new(&mut g).poll_read(&mut cx, &mut buf) {
            Poll::Ready(Ok(())) if buf.filled().is_empty() => break true,
            Poll::Ready(Ok(())) => out.extend_from_slice(buf.filled()),
            Poll::Ready(Err(e)) => panic!("{e}"),
            Poll::Pending => match v.awaiting_upgrade() {
                Some(n) if v.upgrade.lock().unwrap().answer.is_none() => {
                    v.answer_upgrade(n, switched);
                }
                _ => break false,
            },
        }
    };
    (out, eof, v, g)
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
const CLTE: &[u8] =
    b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";

#[test]
fn a_refused_head_is_replaced_by_the_stand_in() {
    for chunk in [1, 7, 64, 8192] {
        let (out, eof, v, _) = drive(&[GET, &CLTE[..20], &CLTE[20..]], true, chunk, false);
        assert_eq!(out, [GET, STAND_IN].concat(), "buffer of {chunk}");
        assert!(!eof);
        assert_eq!(v.refusal(0), None);
        assert_eq!(v.refusal(1), Some(Refusal::BadRequest));
        assert_eq!(v.refusal(2), Some(Refusal::BadRequest));
    }
}

#[test]
fn a_head_split_over_reads_reaches_hyper_whole_and_frees_its_buffer() {
    let reads: Vec<&[u8]> = GET.chunks(3).collect();
    let (out, eof, v, g) = drive(&reads, true, 8192, false);
    assert_eq!((out.as_slice(), eof), (GET, true));
    assert_eq!(v.refusal(0), None);
    assert_eq!(g.held.capacity(), 0);
}

#[test]
fn after_an_upgrade_answered_without_a_switch_framing_goes_on() {
    let up = b"GET / HTTP/1.1\r\nUpgrade: h2c\r\nConnection: upgrade\r\n\r\n";
    let (out, _, v, _) = drive(&[&[&up[..], CLTE].concat()], true, 8192, false);
    assert_eq!(out, [&up[..], STAND_IN].concat());
    assert_eq!(v.refusal(1), Some(Refusal::BadRequest));
}

#[test]
fn after_a_switch_bytes_pass_through() {
    let up = b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n";
    let frames = b"\x81\x05helloPOST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
    let (out, eof, v, _) = drive(
        &[&[&up[..], &frames[..9]].concat(), &frames[9..]],
        true,
        16,
        true,
    );
    assert_eq!(out, [&up[..], &frames[..]].concat());
    assert!(eof);
    assert_eq!(v.refusal(1), None);
}

#[test]
fn http2_is_passed_through() {
    let (out, eof, v, _) = drive(
        &[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", CLTE],
        false,
        8192,
        false,
    );
    assert_eq!(
        out,
        [&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..], CLTE].concat()
    );
    assert!(eof);
    assert_eq!(v.refusal(0), None);
}

#[test]
fn a_broken_body_ends_the_input_after_the_bad_byte() {
    let head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
    let (out, eof, v, _) = drive(
        &[&[&head[..], b"5\nhello\r\n0\r\n\r\n", GET].concat()],
        true,
        8192,
        false,
    );
    assert_eq!(out, [&head[..], b"5\n"].concat());
    assert!(eof);
    assert_eq!(v.refusal(0), None);
    assert_eq!(v.refusal(1), Some(Refusal::BadRequest));
}

#[test]
fn an_oversized_head_is_refused_as_too_large() {
    let big = [&b"GET / HTTP/1.1\r\nX: "[..], &[b'a'; 2000]].concat();
    let (out, _, v, _) = drive(&[GET, &big[..500], &big[500..]], true, 8192, false);
    assert_eq!(out, [GET, STAND_IN].concat());
    assert_eq!(v.refusal(1), Some(Refusal::TooLarge));
}

/// What hyper's server makes of `bytes` on one connection, with no guard: every
/// request it calls the service for (its target, and its body or `None` when reading
/// the body failed). Every request is answered 200; half-close is allowed so the end
/// of input does not cut off the last answer.
async fn hyper_reads(bytes: &[u8]) -> Vec<(String, Option<Vec<u8>>)> {
    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client, server) = tokio::io::duplex(1 << 16);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
        let log = log.clone();
        async move {
            let target = req.uri().to_string();
            let i = {
                let mut l = log.lock().unwrap();
                l.push((target, None));
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
        .serve_connection(hyper_util::rt::TokioIo::new(server), svc);
    let bytes = bytes.to_vec();
    let talk = async move {
        let _ = client.write_all(&bytes).await;
        let _ = client.shutdown().await;
        let mut sink = Vec::new();
        let _ = client.read_to_end(&mut sink).await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(5), async { tokio::join!(conn, talk) }).await;
    let out = seen.lock().unwrap().clone();
    out
}

/// The framer against hyper itself: every request the framer clears, hyper parses as
/// the same request with the same body; where the framer stops, hyper does too
/// (fails the head or the body), except for the ambiguous heads only portcullis
/// refuses.
#[tokio::test]
async fn the_framer_agrees_with_hyper() {
    let many: String = (0..101).map(|i| format!("X-{i}: v\r\n")).collect();
    let corpus: Vec<Vec<u8>> = [
        &b"GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\n\r\n"[..],
        b"\r\n\r\nGET /a HTTP/1.1\r\n\r\n\nGET /b HTTP/1.1\r\n\r\n",
        b"GET /a HTTP/1.1\nHost: a\n\nGET /b HTTP/1.1\r\nX: y\n\r\n",
        b"POST /a HTTP/1.1\r\nContent-Length: 0005\r\n\r\nhelloGET /b HTTP/1.1\r\n\r\n",
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;a=\"b c\"\r\nhello\r\n00000000000000000000\r\nX-T: 1\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000000005 \t;x\r\nhello\r\n0\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
        b"GET /a HTTP/1.1\r\nUpgrade: h2c\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
        b"POST /a HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n",
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        b"POST /a HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhelloGET /smuggled HTTP/1.1\r\n\r\n",
        b"GET /a HTTP/1.1\r\nX-A : b\r\n\r\n",
        b"GET /a HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n",
        b"GET /a HTTP/1.1\r\nX-A: b\rc\r\n\r\n",
        b"\rGET /a HTTP/1.1\r\n\r\n",
        b"GET /a HTTP/1.2\r\n\r\n",
        b"G(T /a HTTP/1.1\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\n\r\n",
        b"GET /a{b}|c HTTP/1.1\r\n\r\n",
        b"GET http://h/a HTTP/1.1\r\n\r\nOPTIONS * HTTP/1.1\r\n\r\n",
        b"POST /a HTTP/1.1\r\nContent-Length: +5\r\n\r\nhello",
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX0\r\n\r\nGET /b HTTP/1.1\r\n\r\n",
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nx",
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n",
        b"POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\rb\r\n\r\n",
        &format!("GET /a HTTP/1.1\r\n{many}\r\n").into_bytes(),
        &format!("GET /a HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(2000)).into_bytes(),
    ]
    .iter()
    .map(|b| b.to_vec())
    .collect();
    for bytes in &corpus {
        let what = String::from_utf8_lossy(bytes);
        let mut f = Framer::new(1024);
        let mut at = 0;
        let mut bodies_ok = true;
        let event = loop {
            let s = f.step(&bytes[at..]);
            at += s.cleared;
            match s.event {
                Event::Hold => f.resume(),
                e => break e,
            }
        };
        let heads = f.heads() as usize;
        let seen = hyper_reads(bytes).await;
        let ok = |k: usize| seen.iter().take(k).all(|(_, b)| b.is_some());
        match event {
            Event::More | Event::Partial | Event::Hold => {
                assert_eq!(seen.len(), heads, "{what}: {seen:?}");
                bodies_ok &= ok(heads);
            }
            Event::Refuse(why) => {
                assert!(seen.len() >= heads, "{what}: {seen:?}");
                bodies_ok &= ok(heads);
                // hyper taking a head the framer refused: only an ambiguous one, or
                // one over our size limit (hyper's own is set no lower in serve_conn).
                if seen.len() > heads {
                    assert!(
                        why == Refusal::TooLarge || what.contains("Content-Length"),
                        "{what}: hyper took {seen:?}"
                    );
                }
            }
            Event::Broken => {
                assert_eq!(seen.len(), heads, "{what}: {seen:?}");
                bodies_ok &= ok(heads - 1);
                assert_eq!(seen[heads - 1].1, None, "{what}: hyper read the body");
            }
        }
        assert!(bodies_ok, "{what}: a body hyper failed on: {seen:?}");
    }
}
