//! Transport (issue #3): TLS termination with generated certificates, SNI, HTTP/2,
//! WebSocket, streaming of large bodies with bounded memory, 502/504, 431,
//! slowloris, request smuggling. On loopback, in-process; the memory-bound tests run
//! the real binary (its RSS is the process's).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;

use futures_util::{SinkExt, StreamExt};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// `up` behind a WebSocket route (`/ws`, token also from the query) and a protected
/// catch-all, the HS256 issuer, and `extra_upstream` lines for `[upstreams.app]`.
fn routes(up: SocketAddr, extra_upstream: &str) -> String {
    format!(
        "[upstreams.app]\nurl = \"http://{up}\"\n{extra_upstream}\n\
         [[routes]]\nname = \"ws\"\npath = \"/ws\"\ntoken_from = [\"header\", \"query:access_token\"]\nupstream = \"app\"\n\
         [[routes]]\nname = \"all\"\npath = \"/**\"\nupstream = \"app\"\n{}",
        hs_issuer()
    )
}

/// A streaming upstream behind [`routes`], with `server` lines for `[server]`.
async fn streaming_proxy(server: &str) -> (Upstream, Proxy) {
    let up = spawn_streaming_upstream().await;
    let p = Proxy::builder()
        .server(server)
        .start(&routes(up.addr, ""))
        .await;
    (up, p)
}

/// Alice's `GET /x` on `s`, and its 200.
fn first_request(s: &mut TcpStream, auth: &str) {
    s.write_all(
        format!("GET /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auth}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

/// How long after [`first_request`]'s 200, on a fresh connection to `addr` that
/// sends nothing more, the proxy closes it; EOF is expected on `what`.
fn eof_after_first_request(addr: SocketAddr, auth: &str, what: &str) -> Duration {
    let mut s = TcpStream::connect(addr).unwrap();
    first_request(&mut s, auth);
    let start = Instant::now();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "expected EOF on {what}");
    start.elapsed()
}

fn alice() -> String {
    token("alice", serde_json::json!({}))
}

/// What the proxy answered to `req` on a fresh connection, as received.
fn raw_text(addr: SocketAddr, req: &[u8]) -> String {
    exchange(addr, req, Duration::from_millis(500)).raw
}

// ---------------------------------------------------------------- TLS, SNI, HTTP/2

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_sni_and_http2() {
    let up = spawn_streaming_upstream().await;
    let up = up.addr;
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (c1, k1) = pki.leaf(dir.path(), "default", &["localhost"]);
    let (c2, k2) = pki.leaf(dir.path(), "admin", &["admin.example.com"]);
    let tls = format!(
        "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n[[server.tls.sni]]\nhosts = [\"admin.example.com\"]\ncert = \"{}\"\nkey = \"{}\"\n",
        c1.display(),
        k1.display(),
        c2.display(),
        k2.display()
    );
    let p = Proxy::builder()
        .server(&tls)
        .in_dir(dir)
        .start(&routes(up, ""))
        .await;
    let port = p.addr.port();
    let auth = format!("Bearer {}", alice());

    // HTTP/1.1 over TLS, verified against the test CA.
    let r = pki
        .client(false)
        .get(format!("https://localhost:{port}/x"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", p.logs()));
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), reqwest::Version::HTTP_11);

    // HTTP/2 by ALPN on the same listener.
    let r = pki
        .client(true)
        .get(format!("https://localhost:{port}/x"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    // A denial over HTTP/2 keeps the SPEC body.
    let r = pki
        .client(true)
        .get(format!("https://localhost:{port}/x"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.text().await.unwrap(),
        r#"{"detail": "Not authenticated"}"#
    );

    // SNI: the admin name gets the admin certificate (verification would fail otherwise).
    let r = pki
        .builder(false)
        .resolve("admin.example.com", p.addr)
        .build()
        .unwrap()
        .get(format!("https://admin.example.com:{port}/x"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // ...and a name no certificate covers fails verification (the default cert is served).
    let err = pki
        .builder(false)
        .resolve("other.example.com", p.addr)
        .build()
        .unwrap()
        .get(format!("https://other.example.com:{port}/x"))
        .send()
        .await;
    assert!(
        err.is_err(),
        "default certificate must not cover other.example.com"
    );
}

#[tokio::test]
async fn tls_config_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let (c1, _) = pki.leaf(dir.path(), "a", &["localhost"]);
    let (_, k2) = pki.leaf(dir.path(), "b", &["localhost"]);
    for (cert, key, want) in [
        (c1.clone(), dir.path().join("missing.key"), "missing.key"),
        (c1.clone(), k2.clone(), "b.key"),
    ] {
        let cfg = format!(
            "[server]\nlisten = \"{LISTEN}\"\n[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n\
             [upstreams.e]\nurl = \"echo:\"\n[[routes]]\npath = \"/**\"\naccess = \"public\"\nupstream = \"e\"\n",
            cert.display(),
            key.display()
        );
        let path = dir.path().join("tls.toml");
        std::fs::write(&path, cfg).unwrap();
        let out = cli(&["--config", path.to_str().unwrap()], dir.path(), &[]).await;
        assert!(out.code.is_some_and(|c| c != 0), "{out:?}");
        let text = out.stderr + &out.stdout;
        assert!(text.contains(want), "error should name {want}: {text}");
    }
}

// ---------------------------------------------------------------- WebSocket

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_is_authorized_then_spliced() {
    use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
    let up = spawn_ws_echo().await;
    let p = Proxy::builder().start(&routes(up, "")).await;
    let base = format!("ws://{}/ws", p.addr);

    // No token: the upgrade is refused with the normal 401.
    match tokio_tungstenite::connect_async(base.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 401);
            let body = resp.body().clone().unwrap_or_default();
            assert_eq!(
                String::from_utf8_lossy(&body),
                r#"{"detail": "Not authenticated"}"#
            );
        }
        other => panic!("expected 401, got {other:?}"),
    }
    // A bad token: 401 too.
    let bad = format!("{base}?access_token=not.a.token");
    assert!(matches!(
        tokio_tungstenite::connect_async(bad.as_str()).await,
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) if r.status() == 401
    ));

    // Token in the query (browsers cannot set headers on WebSocket): messages echo.
    let url = format!("{base}?access_token={}", alice());
    let (mut ws, resp) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..20 {
        let msg = format!("hello {i}");
        ws.send(Message::text(msg.clone())).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(got.into_text().unwrap().as_str(), msg);
    }
    let big = vec![7u8; 1 << 20];
    ws.send(Message::binary(big.clone())).await.unwrap();
    let got = ws.next().await.unwrap().unwrap();
    assert_eq!(got.into_data().as_ref(), big.as_slice());
    ws.close(None).await.unwrap();

    // Token in the Authorization header works the same.
    let mut req = base.as_str().into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        format!("Bearer {}", token("bob", serde_json::json!({})))
            .parse()
            .unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    ws.send(Message::text("x")).await.unwrap();
    assert_eq!(
        ws.next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "x"
    );
}

/// A spliced WebSocket through the proxy started with `server_extra`, one message
/// echoed.
async fn open_websocket(
    server_extra: &str,
) -> (
    Proxy,
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) {
    let up = spawn_ws_echo().await;
    // The binary: the tests send SIGTERM, read the exit code and the drain's log line.
    let p = Proxy::builder()
        .server(server_extra)
        .env("RUST_LOG", "info")
        .start(&routes(up, ""))
        .await;
    let url = format!("ws://{}/ws?access_token={}", p.addr, alice());
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    echo(&mut ws, "before").await;
    (p, ws)
}

async fn echo(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    msg: &str,
) {
    use tokio_tungstenite::tungstenite::Message;
    ws.send(Message::text(msg)).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.into_text().unwrap().as_str(), msg);
}

/// SPEC §6: the drain waits for spliced WebSockets as for requests in flight. After
/// SIGTERM the listener closes, the open WebSocket keeps working, and once the
/// client closes it the process exits 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drain_waits_for_an_open_websocket() {
    let (mut p, mut ws) = open_websocket("shutdown_grace = \"30s\"").await;
    p.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(p.addr).is_ok() {
        assert!(
            Instant::now() < deadline,
            "listener still accepting after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    echo(&mut ws, "while draining").await;
    ws.close(None).await.unwrap();
    drop(ws);
    let st = (p.wait_exit(Duration::from_secs(20)).await, p.logs());
    assert_eq!(st.0.and_then(|s| s.code()), Some(0), "{}", st.1);
    assert!(st.1.contains("drained"), "{}", st.1);
}

/// SPEC §6: a WebSocket still open when `shutdown_grace` is over is cut off, and the
/// exit code says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_cuts_off_a_websocket_open_past_the_grace_period() {
    let (mut p, _ws) = open_websocket("shutdown_grace = \"300ms\"").await;
    p.signal("TERM");
    let st = (p.wait_exit(Duration::from_secs(20)).await, p.logs());
    assert_eq!(st.0.and_then(|s| s.code()), Some(1), "{}", st.1);
    assert!(st.1.contains("\"upgraded_open\":1"), "{}", st.1);
}

// ---------------------------------------------------------------- streaming

fn sha256_hex(ctx: aws_lc_rs::digest::Context) -> String {
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_with_bounded_memory() {
    const MIB: u64 = 256;
    let up = spawn_streaming_upstream().await;
    let up = up.addr;
    let p = Proxy::builder().binary().start(&routes(up, "")).await;
    let client = reqwest::Client::builder().http1_only().build().unwrap();
    let auth = format!("Bearer {}", alice());
    // Warm up so the baseline includes the runtime's steady state.
    let r = client
        .get(format!("http://{}/x", p.addr))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let base_rss = p.rss_kib();

    // Upload: 256 MiB streamed from a generator; the upstream hashes what it receives.
    let mut expect = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for i in 0..MIB * 16 {
        expect.update(&chunk(i));
    }
    let expect = sha256_hex(expect);
    let stream =
        futures_util::stream::iter((0..MIB * 16).map(|i| Ok::<_, std::io::Error>(chunk(i))));
    let r = client
        .post(format!("http://{}/upload", p.addr))
        .header("authorization", &auth)
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), format!("{} {expect}", MIB << 20));

    // Download: 256 MiB from the upstream, hashed as it arrives.
    let r = client
        .get(format!("http://{}/download/{MIB}", p.addr))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut got = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut n = 0u64;
    let mut s = r.bytes_stream();
    while let Some(b) = s.next().await {
        let b = b.unwrap();
        n += b.len() as u64;
        got.update(&b);
    }
    assert_eq!(n, MIB << 20);
    assert_eq!(sha256_hex(got), expect);

    let growth_mib = p.peak_rss_kib().saturating_sub(base_rss) / 1024;
    assert!(
        growth_mib < 32,
        "proxy peak RSS grew by {growth_mib} MiB for {MIB} MiB bodies"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_does_not_make_the_proxy_buffer() {
    let up = spawn_streaming_upstream().await;
    let up = up.addr;
    let p = Proxy::builder().binary().start(&routes(up, "")).await;
    let base_rss = p.rss_kib();
    // Ask for 512 MiB and read nothing for a while: back-pressure must stop the
    // proxy from pulling the upstream's body into memory.
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let req = format!(
        "GET /download/512 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        alice()
    );
    tokio::io::AsyncWriteExt::write_all(&mut s, req.as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let growth_mib = p.peak_rss_kib().saturating_sub(base_rss) / 1024;
    assert!(
        growth_mib < 32,
        "proxy buffered {growth_mib} MiB for a reader that reads nothing"
    );
}

// ---------------------------------------------------------------- failures and limits

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_get_spec_bodies() {
    let up = spawn_streaming_upstream().await;
    let up = up.addr;
    let closed_port = closed_port();
    let closed = closed_port.addr;
    let extra = format!(
        "[upstreams.dead]\nurl = \"http://{closed}\"\n[upstreams.slowpoke]\nurl = \"http://{up}\"\ntimeout = \"500ms\"\n\
         [[routes]]\nname = \"dead\"\npath = \"/dead/**\"\naccess = \"public\"\nupstream = \"dead\"\n\
         [[routes]]\nname = \"slow\"\npath = \"/slow\"\naccess = \"public\"\nupstream = \"slowpoke\"\n"
    );
    let p = Proxy::builder().start(&(extra + &routes(up, ""))).await;
    let c = reqwest::Client::new();
    let r = c
        .get(format!("http://{}/dead/x", p.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(r.headers().contains_key("x-request-id"));
    assert_eq!(r.text().await.unwrap(), r#"{"detail": "Bad Gateway"}"#);
    let r = c
        .get(format!("http://{}/slow", p.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504);
    assert_eq!(r.text().await.unwrap(), r#"{"detail": "Gateway Timeout"}"#);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_head_gets_431() {
    let (hits, p) = streaming_proxy("max_header_bytes = 8192").await;
    let addr = p.addr;
    let out = tokio::task::spawn_blocking(move || {
        let big = "a".repeat(10_000);
        raw_text(
            addr,
            format!("GET /x HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes(),
        )
    })
    .await
    .unwrap();
    assert!(out.starts_with("HTTP/1.1 431"), "{out}");
    assert_eq!(hits.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_is_disconnected_after_header_timeout() {
    let (hits, p) = streaming_proxy("header_timeout = \"1s\"").await;
    let addr = p.addr;
    let closed = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(250)))
            .unwrap();
        let head = b"GET /x HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        let start = Instant::now();
        // One byte every 250 ms, forever; stop when the proxy hangs up.
        for i in 0.. {
            let b = if i < head.len() { head[i] } else { b'a' };
            if s.write_all(&[b]).is_err() {
                return Some(start.elapsed());
            }
            let mut buf = [0u8; 512];
            match s.read(&mut buf) {
                Ok(0) => return Some(start.elapsed()),
                Ok(_) => return Some(start.elapsed()), // a 408 or similar, then close
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return Some(start.elapsed()),
            }
            if start.elapsed() > Duration::from_secs(30) {
                return None;
            }
        }
        None
    })
    .await
    .unwrap();
    assert!(
        closed.is_some(),
        "a byte-per-250ms client was never disconnected"
    );
    assert_eq!(hits.count(), 0);
}

/// The first head is due within header_timeout of the connect, however late its first
/// byte: the version sniff and hyper's own head timer do not add up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_first_byte_does_not_extend_header_timeout() {
    let (hits, p) = streaming_proxy("header_timeout = \"2s\"").await;
    let addr = p.addr;
    let closed_after = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        std::thread::sleep(Duration::from_millis(1800));
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        // Then a byte every 100 ms; without the connection-level deadline hyper would
        // allow until ~3.8 s.
        for b in b"GET /x HTTP/1.1\r\nHost: x\r\nX-Slow: "
            .iter()
            .chain([b'a'; 200].iter())
        {
            if s.write_all(&[*b]).is_err() {
                return start.elapsed();
            }
            let mut buf = [0u8; 64];
            match s.read(&mut buf) {
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                _ => return start.elapsed(),
            }
        }
        start.elapsed()
    })
    .await
    .unwrap();
    assert!(
        closed_after < Duration::from_millis(3300),
        "first head allowed {closed_after:?} with header_timeout = 2s"
    );
    assert_eq!(hits.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_shapes_get_400_and_never_reach_the_upstream() {
    let hits = spawn_streaming_upstream().await;
    let up = hits.addr;
    let p = Proxy::builder().start(&routes(up, "")).await;
    let addr = p.addr;
    let auth = alice();
    let cases = [
        // CL.TE
        format!("POST /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auth}\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"),
        // TE.CL
        format!("POST /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auth}\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n"),
        // duplicate, differing Content-Length
        format!("POST /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auth}\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"),
        // duplicate, equal Content-Length
        format!("POST /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auth}\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
        // obfuscated transfer coding
        format!("POST /x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auth}\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
    ];
    for c in cases {
        let shown = c.replace(&auth, "TOKEN");
        let out = tokio::task::spawn_blocking(move || raw_text(addr, c.as_bytes()))
            .await
            .unwrap();
        assert!(out.starts_with("HTTP/1.1 400"), "{shown}\n=> {out}");
    }
    assert_eq!(hits.count(), 0, "a smuggling shape reached the upstream");
}

/// Every later head of a keep-alive connection is due within header_timeout of the
/// previous response too (the connection's deadline, not only the first head's): a
/// slow second head is cut although its bytes keep the connection from idling out,
/// and so is a silent wait for one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn later_heads_are_due_within_header_timeout() {
    let (hits, p) = streaming_proxy("header_timeout = \"1s\"\nidle_timeout = \"60s\"").await;
    let addr = p.addr;
    let auth = alice();
    let (slow, silent) = tokio::task::spawn_blocking(move || {
        // A second head one byte every 250 ms.
        let mut s = TcpStream::connect(addr).unwrap();
        first_request(&mut s, &auth);
        s.set_read_timeout(Some(Duration::from_millis(250)))
            .unwrap();
        let start = Instant::now();
        let head = b"GET /x HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        let mut slow = None;
        for i in 0..120 {
            let b = head.get(i).copied().unwrap_or(b'a');
            let mut buf = [0u8; 512];
            let gone = s.write_all(&[b]).is_err()
                || match s.read(&mut buf) {
                    Err(e) => !matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ),
                    Ok(_) => true,
                };
            if gone {
                slow = Some(start.elapsed());
                break;
            }
        }
        // No second head at all.
        let silent = eof_after_first_request(addr, &auth, "a connection that sent no next head");
        (slow, silent)
    })
    .await
    .unwrap();
    let slow = slow.expect("a byte-per-250ms second head was never disconnected");
    assert!(
        slow < Duration::from_secs(10),
        "slow second head allowed {slow:?}"
    );
    assert!(
        silent < Duration::from_secs(10),
        "silent wait allowed {silent:?}"
    );
    assert_eq!(hits.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connection_is_closed() {
    let (_up, p) = streaming_proxy("idle_timeout = \"1s\"\nheader_timeout = \"30s\"").await;
    let addr = p.addr;
    let auth = alice();
    let waited = tokio::task::spawn_blocking(move || {
        // Keep-alive: the connection stays open until idle_timeout, then EOF.
        eof_after_first_request(addr, &auth, "an idle connection")
    })
    .await
    .unwrap();
    assert!(
        waited < Duration::from_secs(15),
        "idle connection closed only after {waited:?}"
    );
}
