//! Resource bounds under hostile load (issue #9, SECURITY.md "Resource exhaustion"),
//! on loopback with bounded counts and bounded waits (no timing assertions): idle
//! connection floods against a low `max_connections`, half-open TLS handshakes,
//! header floods, HTTP/2 rapid reset (CVE-2023-44487) and CONTINUATION floods
//! (CVE-2024-27316 class). After each attack a well-behaved client is still
//! answered, and the proxy's resident memory stays bounded (so those run the real
//! binary: its RSS is the process's; the header floods run in-process).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Memory the proxy may grow by during an attack (generous: debug build, allocator
/// arenas per worker thread); unbounded per-connection growth would blow far past it.
const RSS_BUDGET_KIB: u64 = 96 * 1024;

fn body(up: SocketAddr) -> String {
    format!(
        "[upstreams.app]\nurl = \"http://{up}\"\n{}\
         [[routes]]\nname = \"all\"\npath = \"/**\"\nupstream = \"app\"\n",
        hs_issuer()
    )
}

/// One well-behaved HTTP/1.1 request with a valid token; its status (0 if the
/// connection failed). Bounded by `limit`.
async fn good_request(addr: SocketAddr, limit: Duration) -> u16 {
    let req = format!(
        "GET /good HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        token("alice", serde_json::json!({}))
    );
    let attempt = async {
        // A connect may sit in a full backlog (SYN retried): keep trying.
        let mut s = loop {
            match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await {
                Ok(Ok(s)) => break s,
                _ => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        s.write_all(req.as_bytes()).await.ok()?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.ok()?;
        let text = String::from_utf8_lossy(&out);
        text.split(' ').nth(1)?.parse::<u16>().ok()
    };
    tokio::time::timeout(limit, attempt)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

fn assert_rss_bounded(p: &Proxy, baseline: u64, what: &str) {
    let now = p.rss_kib();
    assert!(
        now < baseline + RSS_BUDGET_KIB,
        "{what}: RSS grew from {baseline} KiB to {now} KiB"
    );
}

/// Reads until EOF / error (the proxy cut the connection) or `limit`.
async fn cut_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_flood() {
    let rec = spawn_upstream().await;
    let up = rec.addr;
    let p = Proxy::builder()
        .binary()
        .server("max_connections = 256\nheader_timeout = \"1s\"\nidle_timeout = \"2s\"\n")
        .start(&body(up))
        .await;
    assert_eq!(good_request(p.addr, Duration::from_secs(30)).await, 200);
    let baseline = p.rss_kib();

    // 2000 connections that never send a byte.
    let mut tasks = Vec::new();
    for _ in 0..2000 {
        let addr = p.addr;
        tasks.push(tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(addr))
                .await
                .ok()
                .and_then(Result::ok)
        }));
    }
    let mut idle = Vec::new();
    for t in tasks {
        if let Some(s) = t.await.unwrap() {
            idle.push(s);
        }
    }
    assert!(
        idle.len() >= 1000,
        "only {} idle connections opened",
        idle.len()
    );
    eprintln!(
        "idle flood: {} connections open, RSS {} KiB (baseline {baseline})",
        idle.len(),
        p.rss_kib()
    );
    assert_rss_bounded(&p, baseline, "idle flood");

    // A well-behaved client is served once idle ones are cut (header_timeout).
    let status = good_request(p.addr, Duration::from_secs(90)).await;
    assert_eq!(status, 200, "good client starved\n{}", p.logs());
    // The idle connections were cut, not kept forever.
    let mut cut = 0;
    for s in idle.iter_mut().take(50) {
        if cut_within(s, Duration::from_secs(30)).await {
            cut += 1;
        }
    }
    assert_eq!(cut, 50, "idle connections are not cut");
    assert_rss_bounded(&p, baseline, "idle flood");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_tls_handshakes() {
    let rec = spawn_upstream().await;
    let up = rec.addr;
    let pki = Pki::new();
    let p = Proxy::builder()
        .binary()
        .server("max_connections = 512\nheader_timeout = \"1s\"")
        .tls(&pki, &["localhost"])
        .start(&body(up))
        .await;
    let url = format!("https://localhost:{}/good", p.addr.port());
    let client = pki.client(false);
    let auth = format!("Bearer {}", token("alice", serde_json::json!({})));
    let ok = client
        .get(&url)
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let baseline = p.rss_kib();

    // 300 silent connections and 300 that stop inside a ClientHello.
    let mut attackers = Vec::new();
    for i in 0..600 {
        let Ok(Ok(mut s)) =
            tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(p.addr)).await
        else {
            continue;
        };
        if i % 2 == 1 {
            // TLS record header announcing 512 bytes of handshake, then 6 of them.
            let _ = s
                .write_all(&[
                    0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
                ])
                .await;
        }
        attackers.push(s);
    }
    assert!(attackers.len() >= 500, "{}", attackers.len());
    let ok = tokio::time::timeout(
        Duration::from_secs(60),
        client.get(&url).header("authorization", &auth).send(),
    )
    .await
    .expect("good TLS client starved")
    .unwrap();
    assert_eq!(ok.status(), 200);
    // Every half-open handshake is cut after header_timeout.
    for (i, s) in attackers.iter_mut().enumerate().step_by(20) {
        assert!(
            cut_within(s, Duration::from_secs(30)).await,
            "half-open handshake #{i} was not cut"
        );
    }
    assert_rss_bounded(&p, baseline, "half-open TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_floods_get_431() {
    let rec = spawn_upstream().await;
    let up = rec.addr;
    let p = Proxy::builder()
        .server("max_header_bytes = 16384\n")
        .start(&body(up))
        .await;
    let addr = p.addr;
    let tok = token("alice", serde_json::json!({}));
    let outcomes = tokio::task::spawn_blocking(move || {
        let auth = format!("Authorization: Bearer {tok}\r\n");
        let mut out = Vec::new();
        // (what, extra header lines, allowed statuses)
        let big_one = format!("X-Big: {}\r\n", "a".repeat(20_000));
        let many_small: String = (0..1000).map(|i| format!("X-H{i}: v\r\n")).collect();
        let up_to_limit: String = (0..90)
            .map(|i| format!("X-F{i}: {}\r\n", "b".repeat(150)))
            .collect();
        let over_limit: String = (0..200)
            .map(|i| format!("X-F{i}: {}\r\n", "b".repeat(150)))
            .collect();
        let cookies: String = (0..400)
            .map(|i| format!("Cookie: c{i}={}\r\n", "z".repeat(60)))
            .collect();
        for (what, extra, ok) in [
            ("one 20 KB header", big_one, &[431][..]),
            ("1000 tiny headers", many_small, &[431][..]),
            (
                "90 headers, 14 KB, under the limit",
                up_to_limit,
                &[200, 431][..],
            ),
            ("200 headers, 30 KB", over_limit, &[431][..]),
            ("400 Cookie headers", cookies, &[431][..]),
        ] {
            let req = format!(
                "GET /flood HTTP/1.1\r\nHost: localhost\r\n{auth}{extra}Connection: close\r\n\r\n"
            );
            let ex = exchange(addr, req.as_bytes(), Duration::from_millis(500));
            out.push((what, ex.first_status(), ok));
        }
        out
    })
    .await
    .unwrap();
    for (what, status, ok) in &outcomes {
        assert!(ok.contains(status), "{what}: {status}");
    }
    // Only an under-the-limit request may have been forwarded.
    let forwarded = outcomes.iter().filter(|(_, s, _)| *s == 200).count();
    assert_eq!(rec.count(), forwarded);
    assert_eq!(good_request(p.addr, Duration::from_secs(30)).await, 200);
}

// ---------------------------------------------------------------- HTTP/2 raw frames

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK for `GET http://localhost/rr` from static-table entries and literals.
fn get_block() -> Vec<u8> {
    let mut b = vec![0x82, 0x86]; // :method GET, :scheme http
    b.extend_from_slice(&[0x04, 0x03]); // :path, literal without indexing, 3 bytes
    b.extend_from_slice(b"/rr");
    b.extend_from_slice(&[0x01, 0x09]); // :authority, literal, 9 bytes
    b.extend_from_slice(b"localhost");
    b
}

/// Opens a raw h2c connection (prior knowledge) and sends the preface and SETTINGS.
async fn h2_raw(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(PREFACE).await.unwrap();
    s.write_all(&frame(0x4, 0, 0, &[])).await.unwrap();
    s
}

/// Drains the connection until the proxy closes it or `limit`; whether a GOAWAY
/// frame type byte was seen at a frame boundary is not parsed: closing is what counts.
async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    cut_within(s, limit).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_rapid_reset() {
    let rec = spawn_upstream().await;
    let up = rec.addr;
    let p = Proxy::builder()
        .binary()
        .server("h2_max_concurrent_streams = 100\n")
        .start(&body(up))
        .await;
    assert_eq!(good_request(p.addr, Duration::from_secs(30)).await, 200);
    let baseline = p.rss_kib();
    let block = get_block();
    let mut closed = 0;
    for _ in 0..4 {
        let mut s = h2_raw(p.addr).await;
        // 20 000 streams opened and reset at once, in one burst.
        let mut burst = Vec::new();
        for i in 0..20_000u32 {
            let id = 2 * i + 1;
            burst.extend(frame(0x1, 0x5, id, &block)); // HEADERS, END_STREAM|END_HEADERS
            burst.extend(frame(0x3, 0, id, &8u32.to_be_bytes())); // RST_STREAM CANCEL
        }
        let _ = s.write_all(&burst).await; // the proxy may hang up mid-way
        if closed_within(&mut s, Duration::from_secs(30)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, 4, "rapid-reset connections are not closed");
    eprintln!(
        "rapid reset: {} of 80000 reset streams reached the upstream",
        rec.count()
    );
    // The resets did not turn into 80 000 upstream requests.
    assert!(rec.count() < 20_000, "{} upstream requests", rec.count());
    assert_eq!(good_request(p.addr, Duration::from_secs(60)).await, 200);
    assert_rss_bounded(&p, baseline, "rapid reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_continuation_flood() {
    let rec = spawn_upstream().await;
    let up = rec.addr;
    let p = Proxy::builder().binary().start(&body(up)).await;
    assert_eq!(good_request(p.addr, Duration::from_secs(30)).await, 200);
    let baseline = p.rss_kib();
    // Each CONTINUATION carries 16 KiB of valid HPACK: `x-a: bbbb...` literals.
    let mut chunk = Vec::new();
    while chunk.len() < 16_000 {
        chunk.extend_from_slice(&[0x00, 0x03]);
        chunk.extend_from_slice(b"x-a");
        chunk.push(100);
        chunk.extend_from_slice(&[b'b'; 100]);
    }
    for conn in 0..3 {
        let mut s = h2_raw(p.addr).await;
        // HEADERS without END_HEADERS, then up to 64 MiB of CONTINUATION.
        s.write_all(&frame(0x1, 0x1, 1, &get_block()))
            .await
            .unwrap();
        let cont = frame(0x9, 0, 1, &chunk);
        let mut sent = 0usize;
        let mut refused = false;
        while sent < 64 << 20 {
            match tokio::time::timeout(Duration::from_secs(10), s.write_all(&cont)).await {
                Ok(Ok(())) => sent += cont.len(),
                _ => {
                    refused = true;
                    break;
                }
            }
        }
        eprintln!(
            "CONTINUATION flood #{conn}: {sent} bytes accepted before the cut, RSS {} KiB",
            p.rss_kib()
        );
        assert!(
            refused || closed_within(&mut s, Duration::from_secs(30)).await,
            "connection {conn}: 64 MiB of CONTINUATION accepted and the connection kept open"
        );
        assert_rss_bounded(&p, baseline, "CONTINUATION flood");
    }
    assert_eq!(rec.with_prefix("/rr").len(), 0);
    assert_eq!(good_request(p.addr, Duration::from_secs(60)).await, 200);
    assert_rss_bounded(&p, baseline, "CONTINUATION flood");
}
