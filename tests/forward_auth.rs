//! The forward-auth decision listener (issue 17, SPEC §8) over real sockets: each
//! header convention (`x-forwarded`, `x-original`, `envoy`) judging one table of
//! requests — allowed with every identity header (empty ones on public and optional
//! routes), every §4 denial exactly, path tricks judged on the normalized original
//! path, `query:` tokens from the original URI — and the same table through the inline
//! proxy giving the same answers; every bad input of the issue (missing or repeated
//! URI header, not a path, `%2F`, headers of another convention, a body) a 400;
//! HTTP/1.1 and h2c on one port; decisions in `portcullis_requests_total` and in
//! access lines with `upstream` empty, never a token.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/forward_auth.rs"]
mod decisions;
mod support;

use decisions::{h2c_client, Decider};
use serde_json::json;
use support::dpop::verify_assertion;
use support::*;

const OTHER_SECRET: &str = "not-the-issuer-secret-0123456789abcdef0123456789";

/// Routes for every §4 case, an echo upstream for the inline proxy, and `[admin]`.
fn body(convention: &str) -> String {
    let routes = format!(
        r#"
[admin]
listen = "127.0.0.1:0"

[upstreams.app]
url = "echo:"

[identity]
header = "X-User"
[identity.claims_to_headers]
"X-User-Email" = "email"

{issuer}
# The built-in issuer only for POST /revoke (its own tokens would need users).
[[issuers]]
name = "local"
issuer = "portcullis-local"
secret = "local-issuer-secret-0123456789abcdef0123456789"

[token_endpoint]
issuer = "local"

[[routes]]
name = "public"
path = "/public/**"
access = "public"
upstream = "app"

[[routes]]
name = "optional"
path = "/opt/**"
access = "optional"
upstream = "app"

[[routes]]
name = "closed"
path = "/deny/**"
access = "deny"

[[routes]]
name = "admin"
path = "/admin/**"
scopes = ["admin"]
upstream = "app"

[[routes]]
name = "staff"
path = "/staff/**"
claims = {{ groups = ["ops"] }}
upstream = "app"

[[routes]]
name = "ws"
path = "/ws"
token_from = ["query:access_token"]
upstream = "app"

[[routes]]
name = "decisions-only"
path = "/only/**"

[[routes]]
name = "api"
path = "/api/**"
upstream = "app"
"#,
        issuer = hs_issuer()
    );
    decisions::config(convention, &routes)
}

fn alice() -> String {
    token(
        "alice",
        json!({"email": "alice@example.com", "scope": "read"}),
    )
}

fn root() -> String {
    token("root", json!({"scope": "admin"}))
}

fn ops() -> String {
    token("op", json!({"groups": ["ops"]}))
}

fn expired() -> String {
    token("alice", json!({"iat": now() - 7200, "exp": now() - 3600}))
}

fn forged() -> String {
    let c = claims(ISS, "alice");
    mint("HS256", Signer::Secret(OTHER_SECRET.as_bytes()), &c)
}

/// What a case must get.
#[derive(Clone, Debug, PartialEq)]
enum Want {
    /// 200 with these `X-User` and `X-User-Email` values (`""`: present, empty).
    Allow(&'static str, &'static str),
    /// Status, detail, exact `WWW-Authenticate` (or none).
    Deny(u16, &'static str, Option<&'static str>),
}

use Want::{Allow, Deny};

const NO_TOKEN: Want = Deny(401, "Not authenticated", Some("Bearer"));
const BAD: Want = Deny(400, "Bad Request", None);

/// `(method, original path and query, bearer token, answer)`.
fn table() -> Vec<(&'static str, String, Option<String>, Want)> {
    let s = |p: &str| p.to_owned();
    vec![
        (
            "GET",
            s("/api/items"),
            Some(alice()),
            Allow("alice", "alice@example.com"),
        ),
        (
            "POST",
            s("/api/items?x=1"),
            Some(alice()),
            Allow("alice", "alice@example.com"),
        ),
        ("GET", s("/api/items"), None, NO_TOKEN),
        (
            "GET",
            s("/api/items"),
            Some(expired()),
            Deny(
                401,
                "Token has expired",
                Some("Bearer error=\"invalid_token\", error_description=\"token expired\""),
            ),
        ),
        (
            "GET",
            s("/api/items"),
            Some(forged()),
            Deny(401, "Could not validate credentials", None),
        ),
        (
            "GET",
            s("/api/items"),
            Some("not.a.jwt".into()),
            Deny(401, "Could not validate credentials", None),
        ),
        (
            "GET",
            s("/admin/users"),
            Some(alice()),
            Deny(
                403,
                "Not enough permissions",
                Some("Bearer error=\"insufficient_scope\", scope=\"admin\""),
            ),
        ),
        ("GET", s("/admin/users"), Some(root()), Allow("root", "")),
        (
            "GET",
            s("/staff/x"),
            Some(alice()),
            Deny(
                403,
                "Not enough permissions",
                Some("Bearer error=\"insufficient_scope\""),
            ),
        ),
        ("GET", s("/staff/x"), Some(ops()), Allow("op", "")),
        (
            "GET",
            s("/deny/x"),
            Some(root()),
            Deny(403, "Forbidden", None),
        ),
        (
            "GET",
            s("/nowhere"),
            Some(alice()),
            Deny(404, "Not Found", None),
        ),
        ("GET", s("/public/x"), None, Allow("", "")),
        // A public route looks at no token: identity headers stay empty.
        ("GET", s("/public/x"), Some(alice()), Allow("", "")),
        ("GET", s("/opt/x"), None, Allow("", "")),
        (
            "GET",
            s("/opt/x"),
            Some(alice()),
            Allow("alice", "alice@example.com"),
        ),
        (
            "GET",
            s("/opt/x"),
            Some(forged()),
            Deny(401, "Could not validate credentials", None),
        ),
        // Path tricks are judged on the normalized path.
        ("GET", s("/public/../admin/users"), None, NO_TOKEN),
        (
            "GET",
            s("/public/%2e%2e/admin/users"),
            Some(alice()),
            Deny(
                403,
                "Not enough permissions",
                Some("Bearer error=\"insufficient_scope\", scope=\"admin\""),
            ),
        ),
        ("GET", s("//api//items"), None, NO_TOKEN),
        ("GET", s("/api/a%2Fb"), Some(alice()), BAD),
        ("GET", s("/api/a%5Cb"), Some(alice()), BAD),
        ("GET", s("/../api/x"), Some(alice()), BAD),
        // `query:` tokens come from the original URI.
        (
            "GET",
            format!("/ws?access_token={}", alice()),
            None,
            Allow("alice", "alice@example.com"),
        ),
        ("GET", s("/ws?other=1"), Some(alice()), NO_TOKEN),
    ]
}

/// The decision request naming the original `method path` under `convention`.
fn ask(convention: &str, method: &str, path: &str, bearer: Option<&str>) -> Req {
    let mut r = match convention {
        "x-forwarded" => Req::get("/auth")
            .header("X-Forwarded-Method", method)
            .header("X-Forwarded-Uri", path)
            .header("X-Forwarded-Host", "app.example.com")
            .header("X-Forwarded-Proto", "https"),
        "x-original" => Req::get("/auth")
            .header("X-Original-Method", method)
            .header("X-Original-URI", path),
        "envoy" => Req::new(method, path).host("app.example.com"),
        other => panic!("{other}"),
    };
    if let Some(t) = bearer {
        r = r.bearer(t);
    }
    r
}

fn check(reply: &Reply, want: &Want, what: &str) {
    assert!(
        reply.header("x-request-id").is_some_and(|v| !v.is_empty()),
        "{what}: no X-Request-Id: {reply:?}"
    );
    match want {
        Allow(user, email) => {
            assert_eq!(reply.status, 200, "{what}: {reply:?}");
            assert!(reply.body.is_empty(), "{what}: allowed with a body");
            // Every identity header, present even when empty.
            assert_eq!(reply.header_all("x-user"), vec![*user], "{what}: {reply:?}");
            assert_eq!(reply.header_all("x-user-email"), vec![*email], "{what}");
        }
        Deny(status, detail, www) => {
            reply.assert_denied(*status, detail);
            match www {
                Some(w) if w.ends_with('"') || *w == "Bearer" => {
                    reply.assert_www(w);
                }
                Some(prefix) => {
                    reply.assert_www_prefix(prefix);
                }
                None if *status == 401 => {
                    reply.assert_www_prefix("Bearer error=\"invalid_token\"");
                }
                None => {
                    reply.assert_no_www();
                }
            }
            assert!(
                reply.header("x-user").is_none(),
                "{what}: identity on a denial"
            );
        }
    }
}

async fn runs_the_table(convention: &str) {
    let d = Decider::start(Proxy::builder(), &body(convention)).await;
    for (method, path, bearer, want) in table() {
        let what = format!("{convention} {method} {path}");
        let reply = d
            .send(&ask(convention, method, &path, bearer.as_deref()))
            .await;
        check(&reply, &want, &what);
    }
    // A route without upstream is decided here (and 404 on the main listener).
    let reply = d
        .send(&ask(convention, "GET", "/only/x", Some(&alice())))
        .await;
    check(
        &reply,
        &Allow("alice", "alice@example.com"),
        "decisions-only",
    );
    d.proxy
        .get("/only/x", Some(&alice()))
        .await
        .assert_not_found();
    // Revoked: the §4 row, after /revoke on the main listener.
    let t = token("alice", json!({"jti": "revoke-me"}));
    let revoke = Req::post("/revoke", format!("token={t}"))
        .header("Content-Type", "application/x-www-form-urlencoded");
    d.proxy.send(revoke).await.assert_status(200);
    let reply = d.send(&ask(convention, "GET", "/api/x", Some(&t))).await;
    reply.assert_denied(401, "Token has been revoked");
}

#[tokio::test]
async fn x_forwarded_runs_the_table() {
    runs_the_table("x-forwarded").await;
}

#[tokio::test]
async fn x_original_runs_the_table() {
    runs_the_table("x-original").await;
}

#[tokio::test]
async fn envoy_runs_the_table() {
    runs_the_table("envoy").await;
}

/// One decision code: every case gets the same status, body and challenge from the
/// inline proxy as from the decision listener, and the same caller.
#[tokio::test]
async fn inline_and_decision_listener_agree() {
    let d = Decider::start(Proxy::builder(), &body("x-forwarded")).await;
    for (method, path, bearer, _) in table() {
        let mut inline = Req::new(method, &path);
        if let Some(t) = &bearer {
            inline = inline.bearer(t);
        }
        let a = d.proxy.send(inline).await;
        let b = d
            .send(&ask("x-forwarded", method, &path, bearer.as_deref()))
            .await;
        let what = format!("{method} {path}");
        assert_eq!(a.status, b.status, "{what}: inline {a:?} decision {b:?}");
        assert_eq!(
            a.header_all("www-authenticate"),
            b.header_all("www-authenticate"),
            "{what}"
        );
        if a.status == 200 {
            let seen = a.json()["headers"]["x-user"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            assert_eq!(seen, b.header("x-user").unwrap(), "{what}: caller");
        } else {
            assert_eq!(a.body, b.body, "{what}");
            assert_eq!(a.header("content-type"), b.header("content-type"), "{what}");
        }
    }
}

#[tokio::test]
async fn bad_input_is_a_400() {
    let d = Decider::start(Proxy::builder().binary(), &body("x-forwarded")).await;
    let t = alice();
    let base = || Req::get("/auth").bearer(&t);
    let cases = [
        ("no X-Forwarded-Uri", base()),
        (
            "repeated X-Forwarded-Uri",
            base()
                .header("X-Forwarded-Uri", "/api/a")
                .header("X-Forwarded-Uri", "/api/a"),
        ),
        (
            "repeated X-Forwarded-Host",
            base()
                .header("X-Forwarded-Uri", "/api/a")
                .header("X-Forwarded-Host", "a")
                .header("X-Forwarded-Host", "b"),
        ),
        (
            "repeated X-Forwarded-Method",
            base()
                .header("X-Forwarded-Uri", "/api/a")
                .header("X-Forwarded-Method", "GET")
                .header("X-Forwarded-Method", "POST"),
        ),
        ("not a path", base().header("X-Forwarded-Uri", "api/a")),
        (
            "absolute URL",
            base().header("X-Forwarded-Uri", "http://app/api/a"),
        ),
        ("asterisk", base().header("X-Forwarded-Uri", "*")),
        ("%2F", base().header("X-Forwarded-Uri", "/api/a%2Fb")),
        (
            "bad method",
            base()
                .header("X-Forwarded-Uri", "/api/a")
                .header("X-Forwarded-Method", "G(T"),
        ),
        (
            "bad host",
            base()
                .header("X-Forwarded-Uri", "/api/a")
                .header("X-Forwarded-Host", "user@app"),
        ),
        // Another convention's headers do not stand in for this one's.
        ("x-original only", base().header("X-Original-URI", "/api/a")),
        (
            "a body",
            Req::post("/auth", "x")
                .bearer(&t)
                .header("X-Forwarded-Uri", "/api/a"),
        ),
        (
            "a chunked body",
            Req::post("/auth", "1\r\nx\r\n0\r\n\r\n")
                .bearer(&t)
                .header("Transfer-Encoding", "chunked")
                .header("X-Forwarded-Uri", "/api/a"),
        ),
    ];
    for (what, req) in cases {
        let reply = d.send(&req).await;
        reply.assert_bad_request();
        assert!(reply.header("x-user").is_none(), "{what}");
        if what.contains("body") {
            assert_eq!(
                reply.header("connection"),
                Some("close"),
                "{what}: the body is never read"
            );
        }
    }
    // An empty body announced as such is no body.
    let ok = Req::post("/auth", "")
        .bearer(&t)
        .header("X-Forwarded-Uri", "/api/a");
    d.send(&ok).await.assert_status(200);
    // Headers of another convention are ignored when this one's are there.
    let r = Req::get("/auth")
        .header("X-Forwarded-Uri", "/admin/users")
        .header("X-Original-URI", "/public/x")
        .header("X-Original-URL", "http://app/public/x");
    d.send(&r).await.assert_unauthenticated();
    let reasons: Vec<String> = d
        .access_lines()
        .iter()
        .filter_map(|l| l["decision"].as_str().map(str::to_owned))
        .collect();
    for want in [
        "bad_request:missing_original_uri",
        "bad_request:repeated_original_header",
        "bad_request:original_uri_not_a_path",
        "bad_request:encoded_slash",
        "bad_request:original_method",
        "bad_request:decision_body",
    ] {
        assert!(
            reasons.iter().any(|r| r == want),
            "no access line {want}: {reasons:?}"
        );
    }
}

/// The oauth2-proxy#3506 shape: on an `x-original` listener a client-sent
/// `X-Forwarded-Uri` (or `-Method`, `-Host`) changes nothing; `X-Original-URL` is
/// read, and must agree with `X-Original-URI`.
#[tokio::test]
async fn x_original_ignores_x_forwarded() {
    let d = Decider::start(Proxy::builder(), &body("x-original")).await;
    let spoofed = Req::get("/auth")
        .header("X-Original-URI", "/admin/users")
        .header("X-Forwarded-Uri", "/public/x")
        .header("X-Forwarded-Method", "OPTIONS")
        .header("X-Forwarded-Host", "public.example");
    d.send(&spoofed).await.assert_unauthenticated();
    let url = Req::get("/auth").header("X-Original-URL", "https://app.example.com/public/x?a=1");
    check(&d.send(&url).await, &Allow("", ""), "X-Original-URL");
    let both = Req::get("/auth")
        .header("X-Original-URI", "/public/x")
        .header("X-Original-URL", "https://app.example.com/admin/users");
    d.send(&both).await.assert_bad_request();
    let agree = Req::get("/auth")
        .header("X-Original-URI", "/public/x?a=1")
        .header("X-Original-URL", "https://app.example.com/public/x?a=1");
    d.send(&agree).await.assert_status(200);
    let not_absolute = Req::get("/auth").header("X-Original-URL", "/public/x");
    d.send(&not_absolute).await.assert_bad_request();
}

/// HTTP/1.1 and h2c on one port: an h2c decision (prior knowledge, as Envoy and Istio
/// connect) is the same decision; a body over h2c is refused too.
#[tokio::test]
async fn h2c_on_the_same_port() {
    let d = Decider::start(Proxy::builder(), &body("envoy")).await;
    let c = h2c_client();
    let r = c
        .get(d.url("/api/items?x=1"))
        .bearer_auth(alice())
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-user"], "alice");
    assert_eq!(r.headers()["x-user-email"], "alice@example.com");
    assert!(r.headers().contains_key("x-request-id"));
    let r = c.get(d.url("/public/x")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-user"], "");
    let r = c.get(d.url("/admin/users")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        json!({"detail": "Not authenticated"})
    );
    let r = c
        .post(d.url("/api/items"))
        .bearer_auth(alice())
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // And HTTP/1.1 on the same port.
    d.send(&ask("envoy", "GET", "/api/items", Some(&alice())))
        .await
        .assert_status(200);
}

/// Decisions are counted in `portcullis_requests_total` and logged as access lines
/// with `upstream` empty; no token appears in either.
#[tokio::test]
async fn decisions_are_counted_and_logged() {
    let d = Decider::start(Proxy::builder().binary(), &body("x-forwarded")).await;
    let t = alice();
    let id = "fa-request-0001";
    let r = d
        .send(&ask("x-forwarded", "GET", "/api/items", Some(&t)).header("X-Request-Id", id))
        .await;
    assert_eq!(r.header("x-request-id"), Some(id));
    d.send(&ask("x-forwarded", "GET", "/admin/users", None))
        .await
        .assert_unauthenticated();
    d.send(&ask(
        "x-forwarded",
        "GET",
        &format!("/ws?access_token={t}"),
        None,
    ))
    .await
    .assert_status(200);
    let m = d.metrics().await;
    for want in [
        "portcullis_requests_total{route=\"api\",status=\"2xx\",decision=\"allowed\",method=\"GET\",code=\"200\"} 1",
        "portcullis_requests_total{route=\"admin\",status=\"4xx\",decision=\"denied_no_token\",method=\"GET\",code=\"401\"} 1",
        "portcullis_requests_total{route=\"ws\",status=\"2xx\",decision=\"allowed\",method=\"GET\",code=\"200\"} 1",
    ] {
        assert!(m.contains(want), "metrics lack {want}:\n{m}");
    }
    let lines = d.access_lines();
    let line = lines
        .iter()
        .find(|l| l["request_id"] == id)
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/api/items");
    assert_eq!(line["route"], "api");
    assert_eq!(line["status"], 200);
    assert_eq!(line["decision"], "allowed");
    assert_eq!(line["user"], "alice");
    assert_eq!(line["upstream"], "");
    let logs = d.proxy.logs();
    let signature = t.rsplit('.').next().unwrap();
    assert!(!logs.contains(signature), "a token in the logs");
    assert!(!m.contains(signature), "a token in the metrics");
}

/// Reads until the peer closes (or `TIMEOUT`): whether it closed.
async fn closes(s: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let read_to_end = async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(TIMEOUT, read_to_end).await.is_ok()
}

/// The slowloris guard of the main listener holds here too: a connection that sends
/// nothing, or a head that never ends, is closed after `header_timeout`.
#[tokio::test]
async fn header_timeout_closes_silent_connections() {
    use tokio::io::AsyncWriteExt;
    let builder = Proxy::builder().server("header_timeout = \"1s\"");
    let d = Decider::start(builder, &body("x-forwarded")).await;
    let mut silent = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    assert!(closes(&mut silent).await, "a silent connection stays open");
    let mut slow = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    slow.write_all(b"GET /auth HTTP/1.1\r\nHost: a\r\nX-Forwarded-Uri: /api/x\r\n")
        .await
        .unwrap();
    assert!(closes(&mut slow).await, "an unfinished head stays open");
}

/// SIGTERM (SPEC §6): the decision listener stops accepting and its open connections
/// are closed (an idle keep-alive one, one that sent nothing yet), so the drain ends
/// in time: exit 0, not the grace period cutting it off.
#[tokio::test]
async fn shutdown_drains_the_decision_listener() {
    use tokio::io::AsyncWriteExt;
    let builder = Proxy::builder().binary().server("shutdown_grace = \"20s\"");
    let mut d = Decider::start(builder, &body("x-forwarded")).await;
    let mut kept = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    let req = ask("x-forwarded", "GET", "/public/x", None).header("Connection", "keep-alive");
    kept.write_all(&req.to_bytes("decide")).await.unwrap();
    read_response(&mut kept).await.unwrap().assert_status(200);
    let mut silent = tokio::net::TcpStream::connect(d.addr).await.unwrap();
    d.proxy.signal("TERM");
    let status = d
        .proxy
        .wait_exit(TIMEOUT)
        .await
        .expect("exits after SIGTERM");
    assert!(
        status.success(),
        "drain cut off: {status}\n{}",
        d.proxy.logs()
    );
    assert!(closes(&mut kept).await);
    assert!(closes(&mut silent).await);
    assert!(
        tokio::net::TcpStream::connect(d.addr).await.is_err(),
        "still accepting"
    );
}

/// A reload (SIGHUP) applies to the next decision: the routes and the `headers`
/// convention of the new config (the listener itself stays where it is).
#[tokio::test]
async fn a_reload_applies_to_the_next_decision() {
    let d = Decider::start(Proxy::builder().binary(), &body("x-forwarded")).await;
    let nginx = Req::get("/auth").header("X-Original-URI", "/public/x");
    d.send(&nginx).await.assert_bad_request();
    d.proxy.rewrite(&body("x-original"));
    d.proxy.signal("HUP");
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let r = d.send(&nginx).await;
        if r.status == 200 {
            break;
        }
        r.assert_bad_request();
        assert!(
            std::time::Instant::now() < deadline,
            "not reloaded\n{}",
            d.proxy.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The other convention's headers are now the ignored ones.
    let traefik = Req::get("/auth").header("X-Forwarded-Uri", "/public/x");
    d.send(&traefik).await.assert_bad_request();
}

/// The main listener's smuggling guard frames every HTTP/1.1 request here too: an
/// ambiguous or oversized head gets the SPEC §4 JSON answer (not the HTTP library's
/// bare one) and the connection closes; nothing after it is served.
#[tokio::test]
async fn framing_refusals_are_spec_answers() {
    let d = Decider::start(Proxy::builder(), &body("x-forwarded")).await;
    let head = "GET /auth HTTP/1.1\r\nHost: a\r\nX-Forwarded-Uri: /public/x\r\n";
    let next = "GET /auth HTTP/1.1\r\nHost: a\r\nX-Forwarded-Uri: /public/x\r\n\r\n";
    let smuggled = [
        format!("{head}Content-Length: 0\r\nContent-Length: 5\r\n\r\n{next}"),
        format!("{head}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{next}"),
        format!("{head}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n{next}"),
    ];
    for raw in &smuggled {
        let mut s = tokio::net::TcpStream::connect(d.addr).await.unwrap();
        use tokio::io::AsyncWriteExt;
        s.write_all(raw.as_bytes()).await.unwrap();
        let r = read_response(&mut s).await.unwrap();
        r.assert_bad_request();
        assert_eq!(r.header("connection"), Some("close"), "{raw:?}");
        assert!(closes(&mut s).await, "served on after {raw:?}");
    }
    let big = format!("{head}X-Big: {}\r\n\r\n", "a".repeat(70_000));
    d.raw(big.as_bytes())
        .await
        .assert_denied(431, "Request Header Fields Too Large");
}

const ASSERT_ISS: &str = "https://portcullis.assert/";
const ASSERTION: &str = "x-portcullis-assertion";

/// [`body`]'s routes (with and without an upstream) and `[identity.assertion]`
/// (ES256, 60 s).
fn assertion_body(convention: &str) -> String {
    body(convention)
        + &format!(
            "\n[identity.assertion]\nissuer = \"assert\"\nttl = \"60s\"\n\n\
             [[issuers]]\nname = \"assert\"\nissuer = \"{ASSERT_ISS}\"\nprivate_key = \"assert.pem\"\n"
        )
}

/// SPEC §8 + §10: an allowed decision with a caller carries the signed assertion
/// (verified by PyJWT against the main listener's `/.well-known/jwks.json`; `aud` the
/// upstream's name, or the route's name for a route without upstream); a public
/// route and an optional route without token carry the header empty, so that the
/// ingress overwrites a client-sent copy; a denial carries none.
#[tokio::test]
async fn allowed_carries_the_signed_assertion() {
    let builder = Proxy::builder().file("assert.pem", &p256_key().private_pem);
    let d = Decider::start(builder, &assertion_body("x-forwarded")).await;
    let jwks = d.proxy.url("/.well-known/jwks.json");
    let copy = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    for (path, aud) in [("/api/items", "app"), ("/only/x", "decisions-only")] {
        let before = now();
        let req = ask("x-forwarded", "GET", path, Some(&alice())).header(ASSERTION, copy);
        let reply = d.send(&req).await;
        reply.assert_status(200);
        let all = reply.header_all(ASSERTION);
        assert_eq!(all.len(), 1, "{path}: {reply:?}");
        let v = verify_assertion(all[0], &jwks, aud, ASSERT_ISS);
        let c = &v["claims"];
        assert_eq!(c["sub"], "alice", "{path}");
        assert_eq!(c["aud"], aud, "{path}");
        assert_eq!(c["email"], "alice@example.com", "{path}");
        let iat = c["iat"].as_u64().unwrap();
        assert!(iat >= before, "{path}: iat {iat} before {before}");
        assert_eq!(c["exp"].as_u64(), Some(iat + 60), "{path}: exp = iat + ttl");
        assert_eq!(reply.header("x-user"), Some("alice"));
    }
    // The optional route with a token: the upstream's audience.
    let reply = d
        .send(&ask("x-forwarded", "GET", "/opt/x", Some(&alice())))
        .await;
    verify_assertion(reply.header(ASSERTION).unwrap(), &jwks, "app", ASSERT_ISS);
    // No identity: present and empty (a client-sent copy is overwritten).
    for (path, bearer) in [("/public/x", Some(alice())), ("/opt/x", None)] {
        let req = ask("x-forwarded", "GET", path, bearer.as_deref()).header(ASSERTION, copy);
        let reply = d.send(&req).await;
        reply.assert_status(200);
        assert_eq!(reply.header_all(ASSERTION), vec![""], "{path}: {reply:?}");
    }
    // Denied: no identity header at all.
    for (path, bearer) in [("/api/x", None), ("/api/x", Some(forged()))] {
        let reply = d
            .send(&ask("x-forwarded", "GET", path, bearer.as_deref()).header(ASSERTION, copy))
            .await;
        assert_eq!(reply.status, 401);
        assert!(reply.header(ASSERTION).is_none(), "{reply:?}");
    }
    // The same over h2c.
    let r = h2c_client()
        .get(d.url("/auth"))
        .header("X-Forwarded-Uri", "/only/y")
        .bearer_auth(alice())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let a = r.headers()[ASSERTION].to_str().unwrap();
    verify_assertion(a, &jwks, "decisions-only", ASSERT_ISS);
}
