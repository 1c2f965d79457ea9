//! Unit tests of [`super`] (head, body and pool) against scripted upstreams on loopback sockets: each
//! answers the requests it reads with given bytes (split in pieces where framing
//! across reads matters), and counts the connections it accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use bytes::Bytes;
use http::header::HeaderValue;
use http_body::Body;
use http_body_util::BodyExt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An upstream answering its n-th request (over all connections) with `answers[n]`,
/// each written in the pieces given, and closing a connection after the last
/// answer. Returns its address, the connections accepted and the request heads.
async fn scripted(
    answers: Vec<Vec<&'static [u8]>>,
) -> (SocketAddr, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (accepts, heads) = (Arc::new(AtomicUsize::new(0)), Arc::default());
    let (count, seen): (_, Arc<Mutex<Vec<String>>>) = (accepts.clone(), Arc::clone(&heads));
    tokio::spawn(async move {
        let mut answers = answers.into_iter().peekable();
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            let mut buf = Vec::new();
            loop {
                while let Some(end) = memchr::memmem::find(&buf, b"\r\n\r\n") {
                    let head: Vec<u8> = buf.drain(..end + 4).collect();
                    seen.lock().unwrap().push(String::from_utf8(head).unwrap());
                    let Some(pieces) = answers.next() else { return };
                    for p in pieces {
                        s.write_all(p).await.unwrap();
                        s.flush().await.unwrap();
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                    if answers.peek().is_none() {
                        return; // closes the connection
                    }
                }
                let mut chunk = [0u8; 1024];
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        }
    });
    (addr, accepts, heads)
}

struct Client {
    addr: SocketAddr,
    idles: Arc<Idles>,
}

impl Client {
    fn new(addr: SocketAddr) -> Self {
        Client {
            addr,
            idles: Idles::new(8, Duration::from_secs(60)),
        }
    }

    /// One request (`GET`, or `HEAD` when `head`), from the pool or a new connection.
    async fn send(&self, head: bool) -> Result<Response<RawBody>, Error> {
        let method = if head { Method::HEAD } else { Method::GET };
        let mut h = HeaderMap::new();
        h.insert(http::header::HOST, HeaderValue::from_static("up"));
        let bytes = encode_head(&method, "/p?q=1", &h);
        let conn = match self.idles.checkout() {
            Some(c) => c,
            None => Conn::connect("127.0.0.1", self.addr.port(), Duration::from_secs(5))
                .await
                .unwrap(),
        };
        conn.exchange(&bytes, head, &self.idles).await
    }

    /// One `GET`, its status and body (an error as its text).
    async fn get(&self) -> (u16, Result<Bytes, String>) {
        let resp = self.send(false).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await;
        (
            status,
            body.map(|b| b.to_bytes()).map_err(|e| e.to_string()),
        )
    }
}

#[tokio::test]
async fn a_length_framed_answer_is_read_and_its_connection_reused() {
    let (addr, accepts, heads) = scripted(vec![
        vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\n\r\nhel",
            b"lo",
        ],
        vec![b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok"],
    ])
    .await;
    let c = Client::new(addr);
    let resp = c.send(false).await.unwrap();
    assert_eq!(resp.headers()["x-a"], "1");
    assert_eq!(resp.body().size_hint().exact(), Some(5));
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "hello");
    assert_eq!(c.idles.len(), 1, "read to its end: back in the pool");
    assert_eq!(c.get().await, (201, Ok(Bytes::from("ok"))));
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
    let heads = heads.lock().unwrap().clone();
    assert_eq!(heads[0], "GET /p?q=1 HTTP/1.1\r\nhost: up\r\n\r\n");
}

#[tokio::test]
async fn chunked_answers_across_reads_with_extensions_and_trailers() {
    let (addr, accepts, _) = scripted(vec![
        vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5;ext=1\r\nhe",
            b"llo\r\n6\r",
            b"\n world\r\n0\r\nX-Trailer: t\r\n",
            b"\r\n",
        ],
        vec![b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"],
    ])
    .await;
    let c = Client::new(addr);
    let resp = c.send(false).await.unwrap();
    let collected = resp.into_body().collect().await.unwrap();
    assert_eq!(collected.trailers().unwrap()["x-trailer"], "t");
    assert_eq!(collected.to_bytes(), "hello world");
    assert_eq!(c.get().await, (200, Ok(Bytes::from("ok"))));
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn bodyless_answers_interim_heads_and_head_requests() {
    let (addr, accepts, _) = scripted(vec![
        vec![
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
        ],
        // A HEAD answer names the length of a body it does not carry.
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"],
        vec![b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"],
        vec![b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"],
    ])
    .await;
    let c = Client::new(addr);
    let r = c.send(false).await.unwrap();
    assert_eq!(r.status(), 204);
    assert!(r.body().is_end_stream());
    drop(r);
    assert_eq!(c.idles.len(), 1, "a bodyless answer is at its end at once");
    let r = c.send(true).await.unwrap();
    assert_eq!((r.status().as_u16(), r.body().is_end_stream()), (200, true));
    assert_eq!(r.headers()["content-length"], "100");
    drop(r);
    assert_eq!(c.get().await, (304, Ok(Bytes::new())));
    assert_eq!(c.get().await, (200, Ok(Bytes::new())));
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn close_http10_and_unframed_answers_are_not_reused() {
    let (addr, accepts, _) = scripted(vec![
        vec![b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\na"],
        vec![b"HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nb"],
        // No length: the body runs to the end of the connection.
        vec![b"HTTP/1.1 200 OK\r\n\r\nuntil", b" close"],
    ])
    .await;
    let c = Client::new(addr);
    assert_eq!(c.get().await, (200, Ok(Bytes::from("a"))));
    assert_eq!(c.idles.len(), 0);
    assert_eq!(c.get().await, (200, Ok(Bytes::from("b"))));
    assert_eq!(c.idles.len(), 0);
    let resp = c.send(false).await.unwrap();
    let mut body = resp.into_body();
    let mut got = Vec::new();
    // The scripted upstream closes after its last answer.
    while let Some(f) = body.frame().await {
        got.extend_from_slice(&f.unwrap().into_data().unwrap());
    }
    assert_eq!(got, b"until close");
    assert_eq!((c.idles.len(), accepts.load(Ordering::SeqCst)), (0, 3));
}

#[tokio::test]
async fn ambiguous_or_broken_framing_is_an_error() {
    for (answer, why) in [
        (
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"[..],
            "Transfer-Encoding with Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            "differing Content-Length values",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 3x\r\n\r\n",
            "bad Content-Length",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "bad Content-Length",
        ),
        (b"HTTP/1.1 2000 OK\r\n\r\n", "malformed answer head"),
        (
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            "malformed answer head",
        ),
    ] {
        let (addr, _, _) = scripted(vec![vec![answer]]).await;
        let err = Client::new(addr).send(false).await.unwrap_err();
        assert!(
            matches!(err, Error::Invalid(w) if w == why),
            "{why}: {err:?}"
        );
    }
    for (answer, why) in [
        (
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            "bad chunk size",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX",
            "missing CRLF after chunk data",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
            "connection closed inside the answer body",
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            "connection closed inside a chunked body",
        ),
    ] {
        let (addr, _, _) = scripted(vec![vec![answer]]).await;
        let c = Client::new(addr);
        let (status, body) = c.get().await;
        assert_eq!(status, 200);
        assert!(
            body.as_ref().is_err_and(|e| e.contains(why)),
            "{why}: {body:?}"
        );
        assert_eq!(c.idles.len(), 0, "{why}: a broken connection is not kept");
    }
}

#[tokio::test]
async fn bytes_after_the_answer_keep_the_connection_out() {
    let (addr, _, _) = scripted(vec![vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n\r\n",
    ]])
    .await;
    let c = Client::new(addr);
    assert_eq!(c.get().await, (200, Ok(Bytes::from("ok"))));
    assert_eq!(
        c.idles.len(),
        0,
        "an unasked-for answer follows: never reused"
    );
}

#[tokio::test]
async fn a_head_too_large_or_cut_is_an_error_and_a_closed_socket_is_stale() {
    let big: &'static [u8] = Box::leak(
        [&b"HTTP/1.1 200 OK\r\nX: "[..], &vec![b'a'; MAX_HEAD + 10]]
            .concat()
            .into_boxed_slice(),
    );
    let (addr, _, _) = scripted(vec![vec![big]]).await;
    let err = Client::new(addr).send(false).await.unwrap_err();
    assert!(
        matches!(err, Error::Invalid("answer head too large")),
        "{err:?}"
    );
    let (addr, _, _) = scripted(vec![vec![b"HTTP/1.1 200 OK\r\nX: 1\r\n"]]).await;
    let err = Client::new(addr).send(false).await.unwrap_err();
    assert!(matches!(
        err,
        Error::Invalid("connection closed inside the answer head")
    ));
    // An upstream that closes without a byte: the request may be sent again.
    let (addr, _, _) = scripted(vec![]).await;
    let err = Client::new(addr).send(false).await.unwrap_err();
    assert!(matches!(err, Error::Stale(_)), "{err:?}");
}

#[tokio::test]
async fn an_idle_connection_the_upstream_closed_is_not_checked_out() {
    let (addr, accepts, _) =
        scripted(vec![vec![b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"]]).await;
    let c = Client::new(addr);
    assert_eq!(c.get().await, (200, Ok(Bytes::from("a"))));
    assert_eq!(c.idles.len(), 1);
    // The script is over: the upstream closes; the runtime sees the socket readable.
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let conn = c.idles.checkout();
        match conn {
            None => break,
            Some(conn) => c.idles.checkin(conn),
        }
    }
    assert!(
        c.idles.checkout().is_none(),
        "the closed connection was dropped"
    );
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
}

#[test]
fn request_heads_are_written_in_origin_form() {
    let mut h = HeaderMap::new();
    h.insert(http::header::HOST, HeaderValue::from_static("up:8080"));
    h.append("x-user", HeaderValue::from_static("alice"));
    h.append("accept", HeaderValue::from_static("a"));
    h.append("accept", HeaderValue::from_static("b"));
    let head = encode_head(&Method::HEAD, "/a/b?c", &h);
    assert_eq!(
        String::from_utf8(head).unwrap(),
        "HEAD /a/b?c HTTP/1.1\r\nhost: up:8080\r\nx-user: alice\r\naccept: a\r\naccept: b\r\n\r\n"
    );
}
