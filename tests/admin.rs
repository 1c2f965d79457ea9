//! Admin listener (issue #6): /healthz, /readyz (also while draining), /metrics
//! counters that move with traffic and reloads, /config without secrets, and the
//! status page rendered by a real headless browser (Debian's chromium).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::Duration;
use support::*;

fn admin_config(up: std::net::SocketAddr) -> String {
    format!(
        "{ADMIN}\
         [upstreams.app]\nurl = \"http://{up}\"\n\
         [[routes]]\nname = \"status-health\"\npath = \"/health\"\naccess = \"public\"\nupstream = \"app\"\n\
         [[routes]]\nname = \"orders-api\"\npath = \"/orders/**\"\nscopes = [\"orders\"]\nupstream = \"app\"\n\
         [[routes]]\nname = \"blocked\"\npath = \"/internal/**\"\naccess = \"deny\"\n\
         [[routes]]\nname = \"slowpoke\"\npath = \"/wait/**\"\naccess = \"public\"\nupstream = \"app\"\n{}",
        hs_issuer()
    )
}

async fn get(url: &str) -> (u16, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_endpoints_and_metrics_move() {
    let up = spawn_streaming_upstream().await.addr;
    // The binary: the test counts requests in the process-wide metrics, reloads on
    // SIGHUP and drains on SIGTERM.
    let mut p = Proxy::builder().binary().start(&admin_config(up)).await;
    let a = p.admin_url("");
    // The admin listener comes up with the proxy; give it a moment.
    let mut ok = false;
    for _ in 0..100 {
        if reqwest::get(format!("{a}/healthz")).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ok, "admin listener not up: {}", p.logs());
    assert_eq!(get(&format!("{a}/healthz")).await.0, 200);
    assert_eq!(get(&format!("{a}/readyz")).await.0, 200);

    let base = format!("http://{}", p.addr);
    let c = reqwest::Client::new();
    for _ in 0..3 {
        assert_eq!(
            c.get(format!("{base}/health"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    assert_eq!(
        c.get(format!("{base}/orders/1"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let auth = format!("Bearer {}", token("alice", serde_json::json!({})));
    let r = c
        .get(format!("{base}/orders/1"))
        .header("authorization", &auth)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(
        c.get(format!("{base}/internal/x"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    let (st, m) = get(&format!("{a}/metrics")).await;
    assert_eq!(st, 200);
    assert_eq!(
        metric(
            &m,
            "portcullis_requests_total{route=\"status-health\",status=\"2xx\",decision=\"public\"}"
        ),
        3.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "portcullis_requests_total{route=\"orders-api\",status=\"4xx\",decision=\"denied_no_token\"}"),
        1.0
    );
    assert_eq!(
        metric(&m, "portcullis_requests_total{route=\"orders-api\",status=\"4xx\",decision=\"denied_insufficient_scope\"}"),
        1.0
    );
    assert!(metric(&m, "portcullis_verify_seconds_count") >= 1.0, "{m}");
    assert!(
        metric(&m, "portcullis_upstream_seconds_count") >= 3.0,
        "{m}"
    );
    assert!(
        metric(&m, "portcullis_token_cache_misses_total") >= 1.0,
        "{m}"
    );

    // An invalid reload is counted and the old config keeps serving.
    p.rewrite_server("lisen = 1", &admin_config(up));
    p.signal("HUP");
    let mut failed = 0.0;
    for _ in 0..100 {
        failed = metric(
            &get(&format!("{a}/metrics")).await.1,
            "portcullis_reloads_total{result=\"error\"}",
        );
        if failed >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(failed, 1.0);
    assert_eq!(
        c.get(format!("{base}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // /config: the running config, secret redacted.
    let (st, cfg) = get(&format!("{a}/config")).await;
    assert_eq!(st, 200);
    let v: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    assert_eq!(v["routes"][1]["name"], "orders-api");
    assert!(!cfg.contains(SECRET), "secret in /config: {cfg}");

    // Draining: readiness goes 503 at once.
    let slow = {
        let url = format!("{base}/wait/delay/1500");
        tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status().as_u16()) })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    p.signal("TERM");
    let mut draining = false;
    for _ in 0..40 {
        match reqwest::get(format!("{a}/readyz")).await {
            Ok(r) if r.status() == 503 => {
                draining = true;
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
    assert!(draining, "readyz did not turn 503 while draining");
    assert_eq!(
        slow.await.unwrap().unwrap(),
        200,
        "in-flight request cut off by the drain"
    );
    let st = p.wait_exit(Duration::from_secs(15)).await;
    assert_eq!(st.and_then(|s| s.code()), Some(0));
}

fn chromium() -> String {
    let bin = std::env::var("PORTCULLIS_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = Command::new(&bin)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "`{bin}` not found: run ./scripts/test-all.sh (it installs Debian's chromium)"
    );
    bin
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_renders_in_a_real_browser_without_secrets() {
    let bin = chromium();
    let up = spawn_streaming_upstream().await.addr;
    let p = Proxy::start(&admin_config(up)).await;
    let a = p.admin_url("/");
    for _ in 0..100 {
        if reqwest::get(&a).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let c = reqwest::Client::new();
    let _ = c
        .get(format!("http://{}/health", p.addr))
        .send()
        .await
        .unwrap();
    let _ = c
        .get(format!("http://{}/orders/1", p.addr))
        .header(
            "authorization",
            format!("Bearer {}", token("alice", serde_json::json!({}))),
        )
        .send()
        .await
        .unwrap();

    let profile = tempfile::tempdir().unwrap();
    let shot = p.dir.path().join("status.png");
    let common_flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1200,900",
    ];
    let dom = tokio::task::spawn_blocking({
        let (bin, a) = (bin.clone(), a.clone());
        let profile = profile.path().to_path_buf();
        move || {
            Command::new(bin)
                .args(common_flags)
                .arg(format!("--user-data-dir={}", profile.display()))
                .arg("--dump-dom")
                .arg(a)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        dom.status.success(),
        "{}",
        String::from_utf8_lossy(&dom.stderr)
    );
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    for want in [
        "portcullis",
        "status-health",
        "orders-api",
        "/orders/**",
        "blocked",
        "deny",
        "test",
        "Verified-token cache",
        "ready",
    ] {
        assert!(dom.contains(want), "rendered page lacks {want:?}: {dom}");
    }
    assert!(!dom.contains(SECRET), "secret rendered on the status page");
    assert!(
        !dom.contains("<script"),
        "the status page must not need script"
    );

    let out = tokio::task::spawn_blocking({
        let shot = shot.clone();
        let profile = tempfile::tempdir().unwrap();
        move || {
            let r = Command::new(bin)
                .args(common_flags)
                .arg(format!("--user-data-dir={}", profile.path().display()))
                .arg(format!("--screenshot={}", shot.display()))
                .arg(a)
                .output()
                .unwrap();
            drop(profile);
            r
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot too small"
    );
    if let Ok(dir) = std::env::var("PORTCULLIS_SCREENSHOT_DIR") {
        std::fs::copy(&shot, std::path::Path::new(&dir).join("status.png")).unwrap();
    }
}
