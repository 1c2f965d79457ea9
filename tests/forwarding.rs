//! What goes on the wire (SPEC §4): identity headers stripped then set on every route,
//! claims_to_headers, hop-by-hop removal, X-Forwarded-*, X-Request-Id, Authorization
//! forwarding, bodies and upstream responses passed through, the `echo:` upstream.
//! Spoofing requests go over raw TCP so header names reach the proxy byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::*;

fn config(up: &Upstream, identity_extra: &str) -> String {
    format!(
        r#"
[upstreams.app]
url = "{up}"

[upstreams.echo]
url = "echo:"

[identity]
header = "X-User"
claim = "sub"
{identity_extra}

[identity.claims_to_headers]
"X-User-Email" = "email"
"X-User-Scopes" = "scope"

{issuer}

[[routes]]
name = "public"
path = "/pub/**"
access = "public"
upstream = "app"

[[routes]]
name = "optional"
path = "/opt/**"
access = "optional"
upstream = "app"

[[routes]]
name = "echo"
path = "/echo/**"
upstream = "echo"

[[routes]]
name = "protected"
path = "/**"
upstream = "app"
"#,
        up = up.url(),
        issuer = hs_issuer()
    )
}

async fn start() -> (Proxy, Upstream) {
    let up = spawn_upstream().await;
    let p = Proxy::start(&config(&up, "")).await;
    (p, up)
}

fn alice() -> String {
    token(
        "alice",
        json!({"email": "alice@example.com", "scope": "read write"}),
    )
}

/// Every spelling of every identity header a client might try.
fn spoofed(req: Req) -> Req {
    req.header("X-User", "mallory")
        .header("x-user", "mallory2")
        .header("X_User", "mallory3")
        .header("x_user", "mallory4")
        .header("X-USER", "mallory5")
        .header("X-User", "mallory6")
        .header("X-User-Email", "mallory@evil.test")
        .header("x_user_email", "m2@evil.test")
        .header("X-USER-EMAIL", "m3@evil.test")
        .header("X-User-Scopes", "admin")
        .header("x_user_scopes", "admin")
        .header("X-User-Id", "kept-1")
        .header("X-Users", "kept-2")
}

fn identity_like(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('_', "-");
    n == "x-user" || n == "x-user-email" || n == "x-user-scopes"
}

/// The upstream saw exactly `expected` identity headers (lower-case name, value), no
/// other spelling of them, and the non-identity look-alikes untouched. A header for a
/// claim the token lacks may be absent or empty (never the client's value).
fn assert_identity(seen: &Recorded, expected: &[(&str, &str)], what: &str) {
    let mut got: Vec<(String, String)> = seen
        .headers
        .iter()
        .filter(|(k, _)| identity_like(k))
        .filter(|(k, v)| !v.is_empty() || expected.iter().any(|(e, _)| e == k))
        .cloned()
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.sort();
    assert_eq!(got, want, "{what}: identity headers upstream");
    assert_eq!(seen.header_all("x-user-id"), vec!["kept-1"], "{what}");
    assert_eq!(seen.header_all("x-users"), vec!["kept-2"], "{what}");
}

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let (p, up) = start().await;
    let t = alice();
    let full = [
        ("x-user", "alice"),
        ("x-user-email", "alice@example.com"),
        ("x-user-scopes", "read write"),
    ];

    p.send(spoofed(Req::get("/pub/a"))).await.assert_status(200);
    assert_identity(&up.last(), &[], "public, no token");
    p.send(spoofed(Req::get("/pub/a")).bearer(&t))
        .await
        .assert_status(200);
    assert_identity(&up.last(), &[], "public, with token");
    p.send(spoofed(Req::get("/opt/a"))).await.assert_status(200);
    assert_identity(&up.last(), &[], "optional, no token");
    p.send(spoofed(Req::get("/opt/a")).bearer(&t))
        .await
        .assert_status(200);
    assert_identity(&up.last(), &full, "optional, with token");
    p.send(spoofed(Req::get("/prot/a")).bearer(&t))
        .await
        .assert_status(200);
    assert_identity(&up.last(), &full, "protected");

    // A claim the token lacks: its header is absent, not the client's value.
    let bare = token("bob", json!({}));
    p.send(spoofed(Req::get("/prot/b")).bearer(&bare))
        .await
        .assert_status(200);
    assert_identity(
        &up.last(),
        &[("x-user", "bob")],
        "protected, no email/scope",
    );

    // Spoofing alone does not authenticate.
    let n = up.count();
    p.send(spoofed(Req::get("/prot/c")))
        .await
        .assert_unauthenticated();
    assert_eq!(up.count(), n);
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed() {
    let (p, up) = start().await;
    let req = Req::get("/pub/hop")
        .header("Connection", "keep-alive, X-Custom")
        .header("Keep-Alive", "timeout=5, max=100")
        .header("TE", "deflate")
        .header("Trailer", "X-Trailing")
        .header("Upgrade", "h2c")
        .header("Proxy-Authorization", "Basic cHJveHk6c2VjcmV0")
        .header("Proxy-Connection", "keep-alive")
        .header("X-Custom", "hop-only")
        .header("X-Keep", "end-to-end");
    let r = p.send(req).await;
    r.assert_status(200);
    assert_eq!(r.text(), "ok");
    let seen = up.last();
    for h in [
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "x-custom",
    ] {
        assert!(
            !seen.has_header(h),
            "{h} forwarded upstream: {:?}",
            seen.headers
        );
    }
    for v in seen.header_all("connection") {
        assert!(
            !v.to_ascii_lowercase().contains("x-custom"),
            "client Connection forwarded: {v}"
        );
    }
    assert_eq!(seen.header_all("x-keep"), vec!["end-to-end"]);

    // Protected route: Proxy-Authorization is not the bearer token and is dropped too.
    p.send(
        Req::get("/prot/hop")
            .bearer(&alice())
            .header("Proxy-Authorization", "Bearer something"),
    )
    .await
    .assert_status(200);
    assert!(!up.last().has_header("proxy-authorization"));
}

#[tokio::test]
async fn hop_by_hop_response_headers_are_removed() {
    let up = spawn_upstream_with(|_| UpReply {
        status: 200,
        headers: vec![
            ("connection".into(), "x-resp-hop".into()),
            ("x-resp-hop".into(), "secret".into()),
            ("keep-alive".into(), "timeout=99".into()),
            ("x-resp-keep".into(), "yes".into()),
        ],
        body: "ok".into(),
    })
    .await;
    let p = Proxy::start(&config(&up, "")).await;
    let r = p.get("/pub/x", None).await;
    r.assert_status(200);
    assert!(
        !r.headers.iter().any(|(k, _)| k == "x-resp-hop"),
        "{:?}",
        r.headers
    );
    assert!(
        !r.headers.iter().any(|(k, _)| k == "keep-alive"),
        "{:?}",
        r.headers
    );
    assert_eq!(r.header_all("x-resp-keep"), vec!["yes"]);
}

#[tokio::test]
async fn x_forwarded_headers() {
    let (p, up) = start().await;
    let t = alice();
    // Client-sent values: For is appended to, Proto and Host are overwritten.
    p.send(
        Req::get("/prot/xf")
            .host("app.test:8080")
            .bearer(&t)
            .header("X-Forwarded-For", "1.2.3.4")
            .header("X-Forwarded-Proto", "https")
            .header("X-Forwarded-Host", "evil.test"),
    )
    .await
    .assert_status(200);
    let seen = up.last();
    assert_eq!(
        seen.header_all("x-forwarded-for"),
        vec!["1.2.3.4, 127.0.0.1"]
    );
    assert_eq!(seen.header_all("x-forwarded-proto"), vec!["http"]);
    assert_eq!(seen.header_all("x-forwarded-host"), vec!["app.test:8080"]);

    // Without client values, on a public route.
    p.send(Req::get("/pub/xf").host("svc.internal"))
        .await
        .assert_status(200);
    let seen = up.last();
    assert_eq!(seen.header_all("x-forwarded-for"), vec!["127.0.0.1"]);
    assert_eq!(seen.header_all("x-forwarded-proto"), vec!["http"]);
    assert_eq!(seen.header_all("x-forwarded-host"), vec!["svc.internal"]);
}

/// An HTTP/1.0 request may come without `Host`: the upstream then gets its own
/// `host:port`, as the upstream client sets it (the pool's authority never shows).
#[tokio::test]
async fn host_of_a_request_without_one_is_the_upstreams() {
    let (p, up) = start().await;
    p.raw(b"GET /pub/nohost HTTP/1.0\r\n\r\n")
        .await
        .assert_status(200);
    let seen = up.last();
    let url = up.url();
    let want = url.trim_start_matches("http://").trim_end_matches('/');
    assert_eq!(seen.header_all("host"), vec![want]);
}

#[tokio::test]
async fn request_id_kept_when_valid_else_generated() {
    let (p, up) = start().await;
    // Valid: echoed to the client and forwarded unchanged.
    let max = "a".repeat(128);
    for id in ["abc-123", "Trace_ID.42:x/y=z", max.as_str()] {
        let r = p
            .send(Req::get("/pub/rid").header("X-Request-Id", id))
            .await;
        r.assert_status(200);
        assert_eq!(r.header_all("x-request-id"), vec![id]);
        assert_eq!(up.last().header_all("x-request-id"), vec![id]);
    }
    // Too long or not visible ASCII: replaced by a generated one, same both ways.
    let long = "b".repeat(129);
    let mut generated = Vec::new();
    for id in [long.as_str(), "has space", ""] {
        let r = p
            .send(Req::get("/pub/rid").header("X-Request-Id", id))
            .await;
        r.assert_status(200);
        let got = r.header_all("x-request-id");
        assert_eq!(got.len(), 1, "{:?}", r.headers);
        let got = got[0].to_string();
        assert_ne!(got, id);
        assert!(!got.is_empty() && got.len() <= 128, "{got:?}");
        assert!(got.bytes().all(|b| (0x21..=0x7e).contains(&b)), "{got:?}");
        assert_eq!(up.last().header_all("x-request-id"), vec![got.as_str()]);
        generated.push(got);
    }
    // None sent: generated, unique per request.
    for _ in 0..2 {
        let r = p.get("/pub/rid", None).await;
        let got = r.header("x-request-id").unwrap().to_string();
        assert_eq!(up.last().header_all("x-request-id"), vec![got.as_str()]);
        generated.push(got);
    }
    let mut uniq = generated.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), generated.len(), "ids reused: {generated:?}");
    // On a denial too.
    let r = p
        .send(Req::get("/prot/x").header("X-Request-Id", "deny-id-1"))
        .await;
    r.assert_unauthenticated();
    assert_eq!(r.header_all("x-request-id"), vec!["deny-id-1"]);
}

#[tokio::test]
async fn authorization_forwarded_by_default() {
    let (p, up) = start().await;
    let t = alice();
    p.get("/prot/auth", Some(&t)).await.assert_status(200);
    assert_eq!(
        up.last().header_all("authorization"),
        vec![format!("Bearer {t}").as_str()]
    );
}

#[tokio::test]
async fn authorization_removed_when_forward_authorization_is_false() {
    let up = spawn_upstream().await;
    let p = Proxy::start(&config(&up, "forward_authorization = false")).await;
    let t = alice();
    p.get("/prot/auth", Some(&t)).await.assert_status(200);
    let seen = up.last();
    assert!(!seen.has_header("authorization"), "{:?}", seen.headers);
    assert_eq!(seen.header_all("x-user"), vec!["alice"]);
    p.get("/opt/auth", Some(&t)).await.assert_status(200);
    assert!(!up.last().has_header("authorization"));
}

#[tokio::test]
async fn request_bodies_pass_through() {
    let (p, up) = start().await;
    let t = alice();
    // 1 MiB with Content-Length.
    let body = pseudo_random(1 << 20, 7);
    let r = p
        .send(
            Req::post("/prot/upload?x=1", body.clone())
                .bearer(&t)
                .header("Content-Type", "application/octet-stream"),
        )
        .await;
    r.assert_status(200);
    let seen = up.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.uri, "/prot/upload?x=1");
    assert_eq!(seen.body.len(), body.len());
    assert!(seen.body[..] == body[..], "body bytes differ");
    assert_eq!(
        seen.header_all("content-type"),
        vec!["application/octet-stream"]
    );

    // Chunked.
    let mut req = Req::new("PUT", "/prot/chunked")
        .bearer(&t)
        .header("Transfer-Encoding", "chunked");
    req.body = b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n".to_vec();
    p.send(req).await.assert_status(200);
    let seen = up.last();
    assert_eq!(seen.method, "PUT");
    assert_eq!(&seen.body[..], b"hello, world");
}

/// A chunked body that breaks its own framing after the head went upstream is the
/// client's fault: 400, not 502 (the upstream got a reset, never a whole request).
#[tokio::test]
async fn a_request_body_that_breaks_its_framing_is_400() {
    let (p, _up) = start().await;
    let mut req = Req::new("PUT", "/prot/chunked")
        .bearer(&alice())
        .header("Transfer-Encoding", "chunked");
    req.body = b"5\r\nhello\r\nzz\r\n, world\r\n0\r\n\r\n".to_vec();
    p.send(req).await.assert_status(400);
}

#[tokio::test]
async fn upstream_responses_pass_back() {
    let up = spawn_upstream_with(|req| match req.path.as_str() {
        "/prot/created" => UpReply {
            status: 201,
            headers: vec![
                ("content-type".into(), "application/vnd.test+json".into()),
                ("x-up".into(), "yes".into()),
                ("set-cookie".into(), "a=1; Path=/".into()),
                ("set-cookie".into(), "b=2; Path=/".into()),
                ("cache-control".into(), "no-store".into()),
            ],
            body: r#"{"id": 7}"#.into(),
        },
        "/prot/missing" => UpReply {
            status: 404,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: "upstream says no".into(),
        },
        "/prot/teapot" => UpReply {
            status: 418,
            headers: vec![],
            body: vec![0u8, 159, 146, 150, 255].into(),
        },
        _ => UpReply::ok(),
    })
    .await;
    let p = Proxy::start(&config(&up, "")).await;
    let t = alice();

    let r = p.get("/prot/created", Some(&t)).await;
    r.assert_status(201);
    assert_eq!(
        r.header_all("content-type"),
        vec!["application/vnd.test+json"]
    );
    assert_eq!(r.header_all("x-up"), vec!["yes"]);
    assert_eq!(
        r.header_all("set-cookie"),
        vec!["a=1; Path=/", "b=2; Path=/"]
    );
    assert_eq!(r.header_all("cache-control"), vec!["no-store"]);
    assert_eq!(r.text(), r#"{"id": 7}"#);
    assert!(r.header("x-request-id").is_some());

    // An upstream 404 is the upstream's, not the proxy's "Not Found".
    let r = p.get("/prot/missing", Some(&t)).await;
    r.assert_status(404);
    assert_eq!(r.text(), "upstream says no");
    assert_eq!(r.header_all("content-type"), vec!["text/plain"]);

    let r = p.get("/prot/teapot", Some(&t)).await;
    r.assert_status(418);
    assert_eq!(r.body, vec![0u8, 159, 146, 150, 255]);
}

#[tokio::test]
async fn echo_upstream_describes_the_forwarded_request() {
    let (p, _up) = start().await;
    let t = alice();
    let r = p
        .send(
            Req::get("/echo/a/b?x=1&y=2")
                .bearer(&t)
                .host("echo.test:81")
                .header("X-Thing", "one")
                .header("X-Dup", "v1")
                .header("X-Dup", "v2")
                .header("X-User", "mallory")
                .header("X-Forwarded-For", "9.9.9.9")
                .header("X-Request-Id", "echo-req-1"),
        )
        .await;
    r.assert_status(200);
    assert!(r
        .header("content-type")
        .unwrap_or_default()
        .starts_with("application/json"));
    let j = r.json();
    assert_eq!(j["method"], "GET");
    assert_eq!(j["path"], "/echo/a/b");
    assert_eq!(j["query"], "x=1&y=2");
    assert_eq!(j["uri"], "/echo/a/b?x=1&y=2");
    assert_eq!(j["version"], "HTTP/1.1");
    assert_eq!(j["body"], "");
    let h = &j["headers"];
    assert_eq!(h["x-user"], "alice", "{h}");
    assert_eq!(h["x-user-email"], "alice@example.com");
    assert_eq!(h["x-user-scopes"], "read write");
    assert_eq!(h["x-thing"], "one");
    assert_eq!(h["x-dup"], json!(["v1", "v2"]));
    assert_eq!(h["x-forwarded-for"], "9.9.9.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "echo.test:81");
    assert_eq!(h["x-request-id"], "echo-req-1");
    for (k, _) in h.as_object().unwrap() {
        assert_eq!(k, &k.to_ascii_lowercase(), "header names lower-case");
    }

    // POST with a body, no query.
    let r = p
        .send(Req::post("/echo/post", "hello body").bearer(&t))
        .await;
    r.assert_status(200);
    let j = r.json();
    assert_eq!(j["method"], "POST");
    assert_eq!(j["path"], "/echo/post");
    assert_eq!(j["query"], serde_json::Value::Null);
    assert_eq!(j["uri"], "/echo/post");
    assert_eq!(j["body"], "hello body");

    // Still behind auth.
    p.get("/echo/a", None).await.assert_unauthenticated();
}
