//! Route `cors` (SPEC §11) against the real binary: preflights answered by portcullis
//! without a token for listed origins (204 with the CORS headers and `Vary: Origin`),
//! 403 without CORS headers for others; actual responses to a listed origin, denials
//! included, carry `Access-Control-Allow-Origin`, `Vary` and `-Allow-Credentials`;
//! without `cors` an `OPTIONS` is judged like any other request. One end-to-end case
//! with headless Chromium: a page on another origin fetch()es a protected route.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;

const APP: &str = "http://app.example.test:3000";

fn config(up: &Upstream, origins: &str) -> String {
    format!(
        "[upstreams.app]\nurl = \"{}\"\n\n{}\n\
         [[routes]]\nname = \"api\"\npath = \"/api/**\"\nupstream = \"app\"\n\
         cors = {{ origins = [{origins}], methods = [\"GET\", \"POST\"], \
         headers = [\"Authorization\", \"Content-Type\", \"X-Trace\"], credentials = true, max_age = \"10m\" }}\n\n\
         [[routes]]\nname = \"writes\"\npath = \"/writes/**\"\nmethods = [\"PUT\"]\nupstream = \"app\"\n\
         cors = {{ origins = [\"*\"] }}\n\n\
         [[routes]]\nname = \"other\"\npath = \"/other/**\"\nupstream = \"app\"\n\
         cors = {{ origins = [\"https://elsewhere.example\"] }}\n\n\
         [[routes]]\nname = \"plain\"\npath = \"/plain/**\"\nupstream = \"app\"\n",
        up.url(),
        hs_issuer()
    )
}

fn preflight(path: &str, origin: &str, method: &str) -> Req {
    Req::new("OPTIONS", path)
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header("Access-Control-Request-Headers", "authorization")
}

fn cors_headers(r: &Reply) -> Vec<&(String, String)> {
    r.headers
        .iter()
        .filter(|(k, _)| k.starts_with("access-control-"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflights_are_answered_without_a_token() {
    let up = spawn_upstream().await;
    let p = Proxy::builder()
        .binary()
        .start(&config(&up, &format!("\"{APP}\"")))
        .await;
    let r = p.send(preflight("/api/items", APP, "POST")).await;
    r.assert_status(204);
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("Authorization, Content-Type, X-Trace")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header_all("vary"), vec!["Origin"]);
    assert_eq!(up.count(), 0, "a preflight never reaches the upstream");

    // An unlisted origin: 403 without CORS headers.
    let r = p
        .send(preflight("/api/items", "https://evil.example", "GET"))
        .await;
    r.assert_status(403);
    assert!(cors_headers(&r).is_empty(), "{:?}", r.headers);

    // Matched on the method it announces: a PUT-only route answers its preflight;
    // `*` echoes the origin and sets no credentials.
    let r = p
        .send(preflight("/writes/1", "https://any.example", "PUT"))
        .await;
    r.assert_status(204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://any.example")
    );
    assert_eq!(
        r.header("access-control-allow-methods"),
        Some("GET, HEAD, POST")
    );
    assert_eq!(r.header("access-control-allow-credentials"), None);

    // Without `cors`, an OPTIONS is judged like any other request: 401.
    p.send(preflight("/plain/x", APP, "GET"))
        .await
        .assert_unauthenticated();
    // And an OPTIONS that is no preflight (no Access-Control-Request-Method) too.
    p.send(Req::new("OPTIONS", "/api/items").header("Origin", APP))
        .await
        .assert_unauthenticated();
    let m = p.log_lines();
    assert!(
        m.iter()
            .any(|l| l["route"] == "api" && l["decision"] == "cors_preflight"),
        "{}",
        p.logs()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actual_responses_to_listed_origins_get_cors_headers() {
    let up = spawn_upstream_with(|_| UpReply {
        status: 200,
        headers: vec![
            ("vary".into(), "Accept-Encoding".into()),
            ("access-control-allow-origin".into(), "*".into()),
        ],
        body: "ok".into(),
    })
    .await;
    let p = Proxy::builder()
        .binary()
        .start(&config(&up, &format!("\"{APP}\"")))
        .await;
    let t = token("alice", serde_json::json!({}));
    let r = p
        .send(Req::get("/api/items").bearer(&t).header("Origin", APP))
        .await;
    r.assert_status(200);
    assert_eq!(r.header_all("access-control-allow-origin"), vec![APP]);
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header_all("vary"), vec!["Accept-Encoding", "Origin"]);
    // A denial to a listed origin: the browser app can read the 401.
    let r = p.send(Req::get("/api/items").header("Origin", APP)).await;
    r.assert_unauthenticated();
    assert_eq!(r.header("access-control-allow-origin"), Some(APP));
    assert_eq!(r.header_all("vary"), vec!["Origin"]);
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    // An unlisted origin gets none of ours (the upstream's own header passes).
    let r = p
        .send(
            Req::get("/api/items")
                .bearer(&t)
                .header("Origin", "https://evil.example"),
        )
        .await;
    assert_eq!(r.header_all("access-control-allow-origin"), vec!["*"]);
    assert_eq!(r.header("access-control-allow-credentials"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_page_on_another_origin_calls_a_protected_route() {
    let modules = support::browser::node_modules(&[]);
    let page = spawn_upstream_with(|_| UpReply {
        status: 200,
        headers: vec![("content-type".into(), "text/html".into())],
        body: "<!doctype html><title>app</title><p>app</p>".into(),
    })
    .await;
    let api = spawn_upstream_with(|r| UpReply {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: format!("{{\"user\":\"{}\"}}", r.header("x-user").unwrap_or("")).into(),
    })
    .await;
    let origin = page.url();
    let p = Proxy::builder()
        .binary()
        .start(&format!(
            "[identity]\nheader = \"X-User\"\nclaim = \"sub\"\n\n{}",
            config(&api, &format!("\"{origin}\""))
        ))
        .await;
    let t = token("alice", serde_json::json!({}));
    let v = support::browser::run_script(
        "cors_support/fetch.mjs",
        &modules,
        &[
            ("PAGE_URL", format!("{origin}/")),
            ("API_URL", p.base_url()),
            ("TOKEN", t),
        ],
    )
    .await;
    assert_eq!(v["failure"], serde_json::Value::Null, "{v}");
    assert_eq!(v["allowed"]["status"], 200, "{v}\n{}", p.logs());
    assert_eq!(v["allowed"]["body"], "{\"user\":\"alice\"}", "{v}");
    assert!(
        v["unlisted"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("Failed to fetch")),
        "{v}"
    );
    // Chromium's own preflight was answered by portcullis, the GET reached the API.
    let lines = p.log_lines();
    assert!(
        lines
            .iter()
            .any(|l| l["route"] == "api" && l["method"] == "OPTIONS" && l["status"] == 204),
        "{}",
        p.logs()
    );
    assert_eq!(
        api.count(),
        1,
        "only the actual request reaches the upstream"
    );
}
