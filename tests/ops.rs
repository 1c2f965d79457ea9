//! Operations (issue #6): reload on SIGHUP and on file change, invalid reloads keep
//! serving, certificate swap, graceful drain on SIGTERM, and logs that never carry
//! a token. Signals go to the real child process; the file-watch reload runs
//! in-process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::*;

fn only_api(up: std::net::SocketAddr) -> String {
    format!(
        "[upstreams.app]\nurl = \"http://{up}\"\n[[routes]]\nname = \"api\"\npath = \"/api/**\"\nupstream = \"app\"\n\
         [[routes]]\nname = \"health\"\npath = \"/health\"\naccess = \"public\"\nupstream = \"app\"\n{}",
        hs_issuer()
    )
}

fn alice() -> String {
    token("alice", serde_json::json!({}))
}

/// Requests `/api/x` with a token in a loop until `stop`; counts failures.
fn request_loop(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    fails: Arc<AtomicUsize>,
    oks: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let c = reqwest::Client::new();
        let auth = format!("Bearer {}", alice());
        while !stop.load(Ordering::SeqCst) {
            match c
                .get(format!("http://{addr}/api/x"))
                .header("authorization", &auth)
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => {
                    oks.fetch_add(1, Ordering::SeqCst);
                }
                _ => {
                    fails.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reload_adds_a_route_and_a_bad_config_keeps_serving() {
    let up = spawn_streaming_upstream().await.addr;
    let p = Proxy::builder().binary().start(&only_api(up)).await;
    let c = reqwest::Client::new();
    let new_url = format!("http://{}/new", p.addr);
    assert_eq!(c.get(&new_url).send().await.unwrap().status(), 404);

    let stop = Arc::new(AtomicBool::new(false));
    let (fails, oks) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let looper = request_loop(p.addr, stop.clone(), fails.clone(), oks.clone());

    // A valid new config with one more route: served after SIGHUP.
    let body = only_api(up)
        + "[[routes]]\nname = \"new\"\npath = \"/new\"\naccess = \"public\"\nupstream = \"app\"\n";
    p.rewrite(&body);
    p.signal("HUP");
    let mut ok = false;
    for _ in 0..100 {
        if c.get(&new_url).send().await.unwrap().status() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "route not added by reload: {}", p.logs());

    // An invalid config: logged with its position, the old one keeps serving.
    p.rewrite_server("lisen = \"typo\"", &body);
    p.signal("HUP");
    assert!(
        eventually(Duration::from_secs(10), || async {
            p.logs().contains("reload failed")
        })
        .await,
        "no reload failure logged: {}",
        p.logs()
    );
    let log = p.logs();
    assert!(
        log.contains("proxy.toml:3:1"),
        "error position missing: {log}"
    );
    assert_eq!(c.get(&new_url).send().await.unwrap().status(), 200);

    for _ in 0..3 {
        p.rewrite(&only_api(up));
        p.signal("HUP");
        tokio::time::sleep(Duration::from_millis(100)).await;
        p.rewrite(&body);
        p.signal("HUP");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.store(true, Ordering::SeqCst);
    looper.await.unwrap();
    assert!(oks.load(Ordering::SeqCst) > 10);
    assert_eq!(
        fails.load(Ordering::SeqCst),
        0,
        "requests failed during reloads"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_watch_reloads_without_a_signal() {
    let up = spawn_streaming_upstream().await.addr;
    let p = Proxy::builder()
        .server("watch = true")
        .start(&only_api(up))
        .await;
    let c = reqwest::Client::new();
    let url = format!("http://{}/new", p.addr);
    assert_eq!(c.get(&url).send().await.unwrap().status(), 404);
    let body = only_api(up)
        + "[[routes]]\nname = \"new\"\npath = \"/new\"\naccess = \"public\"\nupstream = \"app\"\n";
    p.rewrite(&body);
    let mut ok = false;
    for _ in 0..200 {
        if c.get(&url).send().await.unwrap().status() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "file change not picked up: {}", p.logs());
}

/// The certificate the server presents for `localhost`.
async fn presented_cn(addr: std::net::SocketAddr, ca_pem: &str) -> String {
    let tls = tls_connect(addr, ca_pem, "localhost", &[]).await;
    let der = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    // The leaf's serial is enough to tell two certificates apart.
    format!("{:x?}", &der.as_ref()[..64])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_the_certificate_for_the_next_handshake() {
    let up = spawn_streaming_upstream().await.addr;
    let pki = Pki::new();
    let p = Proxy::builder()
        .binary()
        .tls(&pki, &["localhost"])
        .start(&only_api(up))
        .await;
    let (c, k) = (p.dir.path().join("tls.crt"), p.dir.path().join("tls.key"));
    let before = presented_cn(p.addr, &pki.ca_pem).await;

    let stop = Arc::new(AtomicBool::new(false));
    let fails = Arc::new(AtomicUsize::new(0));
    let oks = Arc::new(AtomicUsize::new(0));
    let client = pki.client(false);
    let addr = p.addr;
    let (s2, f2, o2) = (stop.clone(), fails.clone(), oks.clone());
    let looper = tokio::spawn(async move {
        let auth = format!("Bearer {}", alice());
        while !s2.load(Ordering::SeqCst) {
            let r = client
                .get(format!("https://localhost:{}/api/x", addr.port()))
                .header("authorization", &auth)
                .send()
                .await;
            match r {
                Ok(r) if r.status() == 200 => o2.fetch_add(1, Ordering::SeqCst),
                _ => f2.fetch_add(1, Ordering::SeqCst),
            };
        }
    });
    // New certificate and key written over the old files (as a Secret update would).
    let (nc, nk) = pki.leaf(p.dir.path(), "tls-new", &["localhost"]);
    std::fs::rename(&nk, &k).unwrap();
    std::fs::rename(&nc, &c).unwrap();
    p.signal("HUP");
    let mut after = before.clone();
    for _ in 0..100 {
        after = presented_cn(p.addr, &pki.ca_pem).await;
        if after != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    looper.await.unwrap();
    assert_ne!(
        after, before,
        "the next handshake still presents the old certificate"
    );
    assert!(oks.load(Ordering::SeqCst) > 0);
    assert_eq!(
        fails.load(Ordering::SeqCst),
        0,
        "requests failed during the certificate swap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits_zero() {
    let up = spawn_streaming_upstream().await.addr;
    let mut p = Proxy::builder()
        .binary()
        .server("shutdown_grace = \"10s\"")
        .start(&only_api(up))
        .await;
    let addr = p.addr;
    let slow = tokio::spawn(async move {
        reqwest::Client::new()
            .get(format!("http://{addr}/api/delay/1500"))
            .header("authorization", format!("Bearer {}", alice()))
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.signal("TERM");
    // New connections are refused once the listener is closed.
    let refused = eventually(Duration::from_secs(5), || async {
        std::net::TcpStream::connect(addr).is_err()
    })
    .await;
    assert!(refused, "listener still accepting after SIGTERM");
    assert_eq!(
        slow.await.unwrap().unwrap(),
        200,
        "in-flight request was cut off"
    );
    let st = (p.wait_exit(Duration::from_secs(15)).await, p.logs());
    assert_eq!(st.0.and_then(|s| s.code()), Some(0), "{}", st.1);
    // The token used above never appears in a log line.
    assert!(!st.1.contains(&alice()[..40]));
    assert!(
        !st.1.contains("eyJ"),
        "a JWT-looking string was logged: {}",
        st.1
    );
    assert!(
        st.1.contains("\"decision\":\"allowed\""),
        "no access log line: {}",
        st.1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_one_when_the_grace_period_cuts_requests_off() {
    let up = spawn_streaming_upstream().await.addr;
    let mut p = Proxy::builder()
        .env("RUST_LOG", "debug")
        .server("shutdown_grace = \"500ms\"")
        .start(&only_api(up))
        .await;
    let addr = p.addr;
    let slow = tokio::spawn(async move {
        reqwest::Client::new()
            .get(format!("http://{addr}/api/delay/5000"))
            .header("authorization", format!("Bearer {}", alice()))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.signal("TERM");
    let st = (p.wait_exit(Duration::from_secs(15)).await, p.logs());
    assert_eq!(st.0.and_then(|s| s.code()), Some(1), "{}", st.1);
    assert!(
        slow.await.unwrap().is_err(),
        "the cut-off request cannot have succeeded"
    );
}

/// Drain closes idle connections at once (one that never sent a byte, one idle between
/// keep-alive requests) and lets an HTTP/2 stream in flight finish: with those idle
/// connections still open, the process exits 0 well inside the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_connections_and_finishes_http2_streams() {
    use std::io::{Read, Write};
    let up = spawn_streaming_upstream().await.addr;
    let mut p = Proxy::builder()
        .binary()
        .server("shutdown_grace = \"4s\"")
        .start(&only_api(up))
        .await;
    let addr = p.addr;
    // Connected, silent: still waiting for its first byte.
    let mut silent = std::net::TcpStream::connect(addr).unwrap();
    // One request answered, then idle on keep-alive.
    let mut kept = std::net::TcpStream::connect(addr).unwrap();
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    kept.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // HTTP/2 with prior knowledge, a stream in flight when the signal arrives.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let slow = tokio::spawn(async move {
        h2.get(format!("http://{addr}/api/delay/1500"))
            .header("authorization", format!("Bearer {}", alice()))
            .send()
            .await
            .map(|r| (r.version(), r.status().as_u16()))
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    p.signal("TERM");
    assert_eq!(
        slow.await.unwrap().unwrap(),
        (reqwest::Version::HTTP_2, 200),
        "in-flight HTTP/2 stream was cut off"
    );
    let st = (p.wait_exit(Duration::from_secs(15)).await, p.logs());
    assert_eq!(st.0.and_then(|s| s.code()), Some(0), "{}", st.1);
    // Both idle connections were closed by the proxy, not left to the grace period.
    for c in [&mut silent, &mut kept] {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut rest = Vec::new();
        assert!(c.read_to_end(&mut rest).is_ok(), "connection not closed");
    }
}
