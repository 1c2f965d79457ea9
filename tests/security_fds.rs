//! File-descriptor exhaustion (issue #14): at the open-files limit the accept loop
//! backs off and logs about once a second (with a count of the errors it did not log)
//! instead of ~100 lines a second, and serves again once connections close; at start
//! the soft `RLIMIT_NOFILE` is raised to the hard limit and the default
//! `max_connections` fits it. The real binary runs under `sh`'s `ulimit`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::*;
use tokio::net::TcpStream;

/// The fds the default `max_connections` leaves for everything but client connections
/// (and halves the rest: each client connection may hold an upstream one).
const RESERVE: u64 = 64;

fn config(up: &Upstream) -> String {
    format!(
        "{ADMIN}\
         [upstreams.app]\nurl = \"{}\"\n\
         [[routes]]\nname = \"health\"\npath = \"/health\"\naccess = \"public\"\nupstream = \"app\"\n",
        up.url()
    )
}

/// The running config from the admin listener, once it answers.
async fn running_config(p: &Proxy) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Ok(r) = http_client().get(p.admin_url("/config")).send().await {
            assert_eq!(r.status(), 200);
            return r.json().await.unwrap();
        }
        assert!(Instant::now() < deadline, "admin not up: {}", p.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The proxy's log lines (JSON) whose message is `accept failed`.
fn accept_failures(p: &Proxy) -> Vec<Value> {
    p.log_lines()
        .into_iter()
        .filter(|l| l["message"] == "accept failed")
        .collect()
}

/// This process's hard `RLIMIT_NOFILE` (the proxy inherits it).
fn hard_nofile() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let hard = line.split_whitespace().nth(4).unwrap();
    hard.parse().unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fd_exhaustion_backs_off_logs_sparingly_and_recovers() {
    let up = spawn_upstream().await;
    // 128 fds, max_connections far above: accept() meets EMFILE before the semaphore.
    let p = Proxy::builder()
        .nofile(64, 128)
        .server("max_connections = 1000\nheader_timeout = \"60s\"")
        .start(&config(&up))
        .await;
    assert_eq!(running_config(&p).await["server"]["max_connections"], 1000);
    let warned = p
        .log_lines()
        .into_iter()
        .find(|l| l["level"] == "WARN" && l["max_connections"] == 1000);
    assert!(
        warned.is_some_and(|l| l["open_files_limit"] == 128),
        "no start-up warning that max_connections exceeds the fd limit: {}",
        p.logs()
    );
    p.get("/health", None).await.assert_status(200);

    // More connections than fds (the rest wait in the listen backlog); they stay open
    // and silent while we watch the log (header_timeout is a minute).
    let mut held = Vec::new();
    for _ in 0..200 {
        held.push(TcpStream::connect(p.addr).await.unwrap());
    }
    let deadline = Instant::now() + TIMEOUT;
    while accept_failures(&p).is_empty() {
        assert!(Instant::now() < deadline, "no accept failure: {}", p.logs());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let start = Instant::now();
    let before = accept_failures(&p).len();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let lines = accept_failures(&p);
    let secs = start.elapsed().as_secs() + 1;
    let logged = lines.len() - before;
    eprintln!("{logged} accept-failure lines in about {secs} s");
    assert!(
        logged as u64 <= 3 * secs,
        "{logged} accept-failure lines in {secs} s: {:?}",
        &lines[..lines.len().min(10)]
    );
    let last = lines.last().unwrap();
    assert_eq!(last["level"], "WARN", "{last}");
    assert!(
        last["error"]
            .as_str()
            .unwrap()
            .contains("Too many open files"),
        "{last}"
    );
    assert!(
        lines.iter().any(|l| l["suppressed"].as_u64() > Some(0)),
        "no line counts the errors it did not log: {lines:?}"
    );

    // Once the clients go away the proxy serves again.
    drop(held);
    p.get("/health", None).await.assert_status(200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_max_connections_follows_the_open_files_limit() {
    let up = spawn_upstream().await;
    // Started with soft 64 / hard 128: the soft limit is raised to 128, and the
    // default leaves 64 fds in reserve and one upstream fd per client connection.
    let p = Proxy::builder().nofile(64, 128).start(&config(&up)).await;
    let cfg = running_config(&p).await;
    assert_eq!(
        cfg["server"]["max_connections"],
        (128 - RESERVE) / 2,
        "{cfg}"
    );
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", p.pid())).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    assert_eq!(
        line.split_whitespace().skip(3).take(2).collect::<Vec<_>>(),
        ["128", "128"],
        "soft limit not raised to the hard one: {line}"
    );
    drop(p);

    // Under this process's own limit: the configured default unless the fds are fewer.
    let p = Proxy::builder().binary().start(&config(&up)).await;
    let want = 25_000.min(hard_nofile().saturating_sub(RESERVE) / 2);
    let cfg = running_config(&p).await;
    assert_eq!(cfg["server"]["max_connections"], want, "{cfg}");
}
