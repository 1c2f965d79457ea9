//! Admin listener (issue #6): /healthz, /readyz (also while draining), /metrics
//! counters that move with traffic and reloads, /config without secrets, and the
//! status page rendered by a real headless browser (Debian's chromium).
//!
//! Issue 16 point 4: `/metrics` read by a real Prometheus text-format parser (the
//! `prometheus-parse` crate): every family has `# HELP` and `# TYPE`, logins are
//! counted by result, built-in endpoints have their own `route`; and the status page,
//! driven in Chromium by playwright-core (tests/support/browser.rs,
//! tests/admin_support/status_page.mjs), shows the token endpoint, each route's
//! `token_from`, the HMAC key's algorithms, and counters that survive a reload and
//! agree with `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use prometheus_parse::{LineInfo, Scrape, Value as Sample};
use serde_json::{json, Value};
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
            "portcullis_requests_total{route=\"status-health\",status=\"2xx\",decision=\"public\""
        ),
        3.0,
        "{m}"
    );
    assert_eq!(
        metric(&m, "portcullis_requests_total{route=\"orders-api\",status=\"4xx\",decision=\"denied_no_token\""),
        1.0
    );
    assert_eq!(
        metric(&m, "portcullis_requests_total{route=\"orders-api\",status=\"4xx\",decision=\"denied_insufficient_scope\""),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_renders_in_a_real_browser_without_secrets() {
    let bin = browser::chromium();
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

// ---------------------------------------------------------------- issue 16 point 4

/// johndoe (password `secret`) and alice (same password, disabled), at bcrypt's
/// lowest cost so that a lockout's five failures take milliseconds.
fn users_toml() -> String {
    let h = bcrypt::hash("secret", 4).unwrap();
    format!(
        "[users.johndoe]\npassword_hash = \"{h}\"\n\
         [users.alice]\npassword_hash = \"{h}\"\ndisabled = true\n"
    )
}

/// A token endpoint on the harness's HS256 issuer `test`, a public, a protected (token
/// from the header or a cookie) and a deny route, no catch-all; `first` goes before
/// them (for the reload).
fn login_config(up: std::net::SocketAddr, first: &str) -> String {
    format!(
        "{ADMIN}\
         [upstreams.app]\nurl = \"http://{up}\"\n\
         [token_endpoint]\npath = \"/token\"\nissuer = \"test\"\nusers = \"users.toml\"\n{first}\
         [[routes]]\nname = \"status-health\"\npath = \"/health\"\naccess = \"public\"\nupstream = \"app\"\n\
         [[routes]]\nname = \"orders-api\"\npath = \"/orders/**\"\nscopes = [\"orders\"]\n\
         token_from = [\"header\", \"cookie:session\"]\nupstream = \"app\"\n\
         [[routes]]\nname = \"blocked\"\npath = \"/internal/**\"\naccess = \"deny\"\n{}",
        hs_issuer()
    )
}

/// The proxy with [`login_config`] (the binary: the tests count logins and requests in
/// the process-wide metrics, and reload on SIGHUP), its admin base URL.
async fn start_login_proxy(up: std::net::SocketAddr) -> (Proxy, String) {
    let p = Proxy::builder()
        .file("users.toml", users_toml())
        .binary()
        .start(&login_config(up, ""))
        .await;
    let a = p.admin_url("");
    (p, a)
}

async fn try_login(c: &reqwest::Client, base: &str, form: &[(&str, &str)]) -> u16 {
    post_form(c, &format!("{base}/token"), form).await.0
}

/// Logins of every kind (1 ok, 5 failed, 1 lockout, 1 inactive, 1 bad request: 9 on
/// `/token`), 3 public requests, 2 denied on `orders-api`, 1 matching no route.
async fn traffic(base: &str) {
    let c = reqwest::Client::new();
    let good = [("username", "johndoe"), ("password", "secret")];
    assert_eq!(try_login(&c, base, &good).await, 200);
    let wrong = [("username", "mallory"), ("password", "guess")];
    for _ in 0..5 {
        assert_eq!(try_login(&c, base, &wrong).await, 401);
    }
    assert_eq!(try_login(&c, base, &wrong).await, 429, "the lockout");
    let disabled = [("username", "alice"), ("password", "secret")];
    assert_eq!(try_login(&c, base, &disabled).await, 400);
    assert_eq!(try_login(&c, base, &[("username", "johndoe")]).await, 400);
    for _ in 0..3 {
        let r = c.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = c.get(format!("{base}/orders/1")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{base}/orders/1"))
        // johndoe: a token of the token endpoint's issuer passes only for an
        // enabled user of users.toml (SPEC §5).
        .header("cookie", format!("session={}", token("johndoe", json!({}))))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a cookie token without the scope");
    let r = c.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(r.status(), 404);
}

/// `/metrics` through the Prometheus text-format parser. Every line must be one the
/// format knows; every sample's family must have `# HELP` and `# TYPE`.
async fn scrape(admin: &str) -> Scrape {
    let (st, text) = get(&format!("{admin}/metrics")).await;
    assert_eq!(st, 200);
    for line in text.lines() {
        assert_ne!(
            LineInfo::parse(line),
            LineInfo::Ignored,
            "not Prometheus text format: {line:?}"
        );
    }
    let s = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let histograms: Vec<String> = s
        .samples
        .iter()
        .filter(|x| matches!(x.value, Sample::Histogram(_)))
        .map(|x| x.metric.clone())
        .collect();
    for x in &s.samples {
        // A histogram's `_sum` and `_count` belong to it (the parser keeps them apart).
        let family = histograms
            .iter()
            .find(|h| x.metric == format!("{h}_sum") || x.metric == format!("{h}_count"));
        let family = family.unwrap_or(&x.metric);
        assert!(
            s.docs.contains_key(family),
            "no # HELP for {family}:\n{text}"
        );
        if *family == x.metric {
            assert!(
                !matches!(x.value, Sample::Untyped(_)),
                "no # TYPE for {family}:\n{text}"
            );
        }
    }
    s
}

/// The sum of the counter samples of `metric` whose labels include `labels`.
fn counter(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for x in s.samples.iter().filter(|x| x.metric == metric) {
        if labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)) {
            let Sample::Counter(n) = x.value else {
                panic!("{metric} is not a counter: {x:?}")
            };
            found = Some(found.unwrap_or(0.0) + n);
        }
    }
    found
}

const LOGIN_RESULTS: [&str; 7] = [
    "ok",
    "failed",
    "inactive",
    "rate_limited",
    "busy",
    "bad_request",
    "unavailable",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_with_help_and_type_and_count_logins() {
    let up = spawn_streaming_upstream().await.addr;
    let (p, admin) = start_login_proxy(up).await;
    let before = scrape(&admin).await;
    for r in LOGIN_RESULTS {
        assert_eq!(
            counter(&before, "portcullis_logins_total", &[("result", r)]),
            Some(0.0),
            "every login result is exported from the start: {r}"
        );
    }
    traffic(&format!("http://{}", p.addr)).await;
    let after = scrape(&admin).await;
    let logins = |r| counter(&after, "portcullis_logins_total", &[("result", r)]);
    assert_eq!(logins("ok"), Some(1.0));
    assert_eq!(logins("failed"), Some(5.0));
    assert_eq!(logins("rate_limited"), Some(1.0));
    assert_eq!(logins("inactive"), Some(1.0));
    assert_eq!(logins("bad_request"), Some(1.0));
    assert_eq!(logins("busy"), Some(0.0));
    let requests = |labels: &[(&str, &str)]| counter(&after, "portcullis_requests_total", labels);
    assert_eq!(
        requests(&[("route", "builtin:token"), ("decision", "token_endpoint")]),
        Some(9.0),
        "the token endpoint has its own route label"
    );
    assert_eq!(
        requests(&[("route", "")]),
        Some(1.0),
        "only the unmatched request has route=\"\""
    );
    assert_eq!(
        requests(&[("route", "orders-api"), ("status", "4xx")]),
        Some(2.0)
    );
    // Every exported family is documented in the README's metrics table.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for family in after.docs.keys() {
        assert!(
            readme.contains(&format!("| `{family}` |")),
            "{family} is not a row of the README's metrics table"
        );
    }
}

/// The status page in Chromium, as JSON (see tests/admin_support/status_page.mjs).
async fn status_page(admin: &str) -> Value {
    let modules = browser::node_modules(&[]);
    let v = browser::run_script(
        "admin_support/status_page.mjs",
        &modules,
        &[("STATUS_URL", format!("{admin}/"))],
    )
    .await;
    assert!(v["error"].is_null(), "{v}");
    assert_eq!(v["status"], 200, "{v}");
    v
}

fn route_row<'a>(page: &'a Value, name: &str) -> &'a Value {
    page["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("no route row {name}: {page}"))
}

/// What the page shows that must be true whatever happened since: the token
/// endpoint's counts, the token sources, the HMAC key's algorithms, and counts that
/// equal `/metrics`.
fn assert_page(page: &Value, m: &Scrape) {
    for id in ["routes", "token-endpoint", "issuers", "cache"] {
        assert_eq!(page["visible"][id], true, "section {id} not shown: {page}");
    }
    assert_eq!(page["scripts"], 0, "the status page must not need script");
    assert!(!page["body"].as_str().unwrap().contains(SECRET));
    assert_eq!(page["loginsOk"], 1, "{page}");
    assert_eq!(page["lockouts"], 1, "{page}");
    assert_eq!(
        page["logins"],
        json!({"ok": 1, "failed": 5, "inactive": 1, "rate_limited": 1, "busy": 0,
               "bad_request": 1, "unavailable": 0})
    );
    assert_eq!(page["builtins"]["builtin:token"], 9, "{page}");
    assert_eq!(page["builtins"]["builtin:revoke"], 0, "{page}");
    assert_eq!(page["signing"], "HS256, no kid");
    assert_eq!(
        page["unmatched"], 1,
        "logins are not 'matching no route': {page}"
    );
    assert_eq!(
        route_row(page, "orders-api")["tokenFrom"],
        "header, cookie:session"
    );
    assert_eq!(route_row(page, "status-health")["tokenFrom"], "-");
    assert_eq!(route_row(page, "blocked")["tokenFrom"], "-");
    let issuer = &page["issuers"][0];
    assert_eq!(issuer["name"], "test");
    assert_eq!(issuer["keys"], "no kid (HMAC: HS256 HS384 HS512)", "{page}");
    assert_eq!(issuer["algorithms"], "HS256 HS384 HS512", "{page}");
    // The page's counts are /metrics' counts.
    for row in page["routes"].as_array().unwrap() {
        let name = row["name"].as_str().unwrap();
        let total = counter(m, "portcullis_requests_total", &[("route", name)]).unwrap_or(0.0);
        assert_eq!(
            row["requests"].as_f64(),
            Some(total),
            "route {name}: {page}"
        );
    }
    for r in LOGIN_RESULTS {
        let n = counter(m, "portcullis_logins_total", &[("result", r)]);
        assert_eq!(page["logins"][r].as_f64(), n, "logins {r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_page_shows_token_endpoint_and_keeps_counts_across_reload() {
    let up = spawn_streaming_upstream().await.addr;
    let (p, admin) = start_login_proxy(up).await;
    traffic(&format!("http://{}", p.addr)).await;
    let page = status_page(&admin).await;
    assert_page(&page, &scrape(&admin).await);
    assert_eq!(route_row(&page, "status-health")["requests"], 3);
    assert_eq!(route_row(&page, "orders-api")["requests"], 2);
    assert_eq!(route_row(&page, "orders-api")["denied"], 2);

    // A reload with a new route in front: every row moves down one place, and the
    // counts follow the route names, as /metrics' series do.
    let first = "[[routes]]\nname = \"fresh\"\npath = \"/fresh\"\naccess = \"public\"\nupstream = \"app\"\n";
    p.rewrite(&login_config(up, first));
    p.signal("HUP");
    let mut reloaded = false;
    for _ in 0..100 {
        let m = scrape(&admin).await;
        if counter(&m, "portcullis_reloads_total", &[("result", "ok")]) == Some(1.0) {
            reloaded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reloaded, "reload not counted: {}", p.logs());
    let r = reqwest::get(format!("http://{}/health", p.addr))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    let page = status_page(&admin).await;
    assert_page(&page, &scrape(&admin).await);
    assert!(
        page["lastReload"].as_str().unwrap().ends_with(" ok"),
        "{page}"
    );
    assert_eq!(route_row(&page, "fresh")["requests"], 0);
    assert_eq!(route_row(&page, "status-health")["requests"], 4, "{page}");
    assert_eq!(route_row(&page, "orders-api")["requests"], 2, "{page}");
    assert_eq!(route_row(&page, "orders-api")["denied"], 2, "{page}");
}
