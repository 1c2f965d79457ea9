//! The access line's `client`, `user_agent`, `bytes_in`, `bytes_out` (SPEC §11) and
//! `portcullis_requests_total`'s `method` and exact `code` labels, with histogram
//! buckets chosen per histogram, against the real binary; `/metrics` read with a
//! Prometheus text parser (`prometheus-parse`), as tests/admin.rs does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use prometheus_parse::{Scrape, Value as Sample};
use support::*;

const UP_BODY: usize = 70_000;

async fn proxy(up: &Upstream, admin: u16) -> Proxy {
    Proxy::builder().binary().start(&format!(
        "[admin]\nlisten = \"127.0.0.1:{admin}\"\n\n\
         [upstreams.app]\nurl = \"{}\"\n\n{}\n\
         [[routes]]\nname = \"pub\"\npath = \"/pub/**\"\naccess = \"public\"\nupstream = \"app\"\n\n\
         [[routes]]\nname = \"api\"\npath = \"/api/**\"\nupstream = \"app\"\n",
        up.url(),
        hs_issuer()
    ))
    .await
}

async fn scrape(admin: u16) -> Scrape {
    let text = http_client()
        .get(format!("http://127.0.0.1:{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn counter(s: &Scrape, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for x in s
        .samples
        .iter()
        .filter(|x| x.metric == "portcullis_requests_total")
    {
        if labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)) {
            let Sample::Counter(n) = x.value else {
                panic!("not a counter: {x:?}")
            };
            found = Some(found.unwrap_or(0.0) + n);
        }
    }
    found
}

/// The finite bucket bounds of histogram `name`.
fn bounds(s: &Scrape, name: &str) -> Vec<f64> {
    let x = s
        .samples
        .iter()
        .find(|x| x.metric == name)
        .unwrap_or_else(|| panic!("no {name}"));
    let Sample::Histogram(h) = &x.value else {
        panic!("{name} is not a histogram: {x:?}")
    };
    h.iter()
        .map(|b| b.less_than)
        .filter(|b| b.is_finite())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_line_fields_and_request_labels() {
    let body = vec![b'x'; UP_BODY];
    let up = spawn_upstream_with(move |_| UpReply {
        status: 201,
        headers: vec![],
        body: body.clone().into(),
    })
    .await;
    let admin = free_port();
    let p = proxy(&up, admin).await;
    let t = token("alice", serde_json::json!({}));
    let sent = "a".repeat(1234);
    let r = p
        .send(
            Req::post("/api/upload", sent.clone())
                .bearer(&t)
                .header("User-Agent", "curl/8.5.0 (portcullis test)"),
        )
        .await;
    r.assert_status(201);
    assert_eq!(r.body.len(), UP_BODY);
    p.send(Req::new("PROPFIND", "/pub/x"))
        .await
        .assert_status(201);
    p.send(Req::new("DELETE", "/api/x"))
        .await
        .assert_status(401);

    // The line of the upload, written once its body was sent.
    let mut line = None;
    for _ in 0..100 {
        line = p
            .log_lines()
            .into_iter()
            .find(|l| l["path"] == "/api/upload");
        if line.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let line = line.unwrap_or_else(|| panic!("no access line: {}", p.logs()));
    assert_eq!(line["client"], "127.0.0.1", "{line}");
    assert_eq!(line["user_agent"], "curl/8.5.0 (portcullis test)", "{line}");
    assert_eq!(line["bytes_in"], 1234, "{line}");
    assert_eq!(line["bytes_out"], UP_BODY, "{line}");
    assert_eq!(line["status"], 201, "{line}");
    let denied = p
        .log_lines()
        .into_iter()
        .find(|l| l["method"] == "DELETE")
        .unwrap();
    assert_eq!(denied["user_agent"], "", "{denied}");
    assert!(denied["bytes_out"].as_u64().unwrap() > 0, "{denied}");

    let m = scrape(admin).await;
    let n = |l: &[(&str, &str)]| counter(&m, l);
    let upload = [("route", "api"), ("method", "POST"), ("code", "201")];
    assert_eq!(n(&upload), Some(1.0));
    assert_eq!(
        n(&[("route", "api"), ("status", "2xx"), ("method", "POST")]),
        Some(1.0)
    );
    assert_eq!(
        n(&[("route", "pub"), ("method", "OTHER"), ("code", "201")]),
        Some(1.0)
    );
    let denial = [("route", "api"), ("method", "DELETE"), ("code", "401")];
    assert_eq!(n(&denial), Some(1.0));
    assert_eq!(
        n(&[("method", "PROPFIND")]),
        None,
        "methods are a fixed set"
    );

    // Buckets per histogram: verification in microseconds, upstreams up to seconds.
    let verify = bounds(&m, "portcullis_verify_seconds");
    let upstream = bounds(&m, "portcullis_upstream_seconds");
    assert!(verify[0] <= 0.000_005, "{verify:?}");
    assert!(*verify.last().unwrap() <= 0.01, "{verify:?}");
    assert!(upstream[0] >= 0.001, "{upstream:?}");
    assert!(*upstream.last().unwrap() >= 10.0, "{upstream:?}");
}
