//! Route rules (SPEC §2 Routes, §4): scopes, claim rules, deny, no route, optional and
//! public access, method fall-through, host and path patterns, first match wins, and
//! the path-normalization corpus (the matched path is exactly the forwarded path).
//! Requests go over raw TCP so tricky paths reach the proxy byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use support::*;

/// Two upstreams (`a`, `b`) so tests can tell which route matched. No catch-all route.
fn config(a: &Upstream, b: &Upstream) -> String {
    format!(
        r#"
[upstreams.a]
url = "{a}"

[upstreams.b]
url = "{b}"

{issuer}

[[routes]]
name = "public"
path = "/public/**"
access = "public"
upstream = "a"

[[routes]]
name = "admin"
path = "/admin/**"
scopes = ["admin"]
upstream = "a"

[[routes]]
name = "multi"
path = "/multi/**"
scopes = ["read", "write"]
upstream = "a"

[[routes]]
name = "ops"
path = "/ops/**"
claims = {{ groups = ["ops", "sre"] }}
upstream = "a"

[[routes]]
name = "team"
path = "/team/**"
claims = {{ team = "blue" }}
upstream = "a"

[[routes]]
name = "deny"
path = "/deny/**"
access = "deny"
upstream = "a"

[[routes]]
name = "optional"
path = "/opt/**"
access = "optional"
upstream = "a"

[[routes]]
name = "post-to-b"
path = "/m/**"
methods = ["POST", "PUT"]
access = "public"
upstream = "b"

[[routes]]
name = "rest-to-a"
path = "/m/**"
access = "public"
upstream = "a"

[[routes]]
name = "host-exact"
host = "api.example.com"
path = "/h/**"
access = "public"
upstream = "a"

[[routes]]
name = "host-wild"
host = "*.example.com"
path = "/h/**"
access = "public"
upstream = "b"

[[routes]]
name = "literal"
path = "/lit/exact"
access = "public"
upstream = "a"

[[routes]]
name = "star"
path = "/star/*/end"
access = "public"
upstream = "a"

[[routes]]
name = "tree"
path = "/tree/**"
access = "public"
upstream = "a"

[[routes]]
name = "first"
path = "/fm/*/x"
access = "public"
upstream = "a"

[[routes]]
name = "second"
path = "/fm/a/**"
access = "public"
upstream = "b"
"#,
        a = a.url(),
        b = b.url(),
        issuer = hs_issuer()
    )
}

async fn start() -> (Proxy, Upstream, Upstream) {
    let a = spawn_upstream().await;
    let b = spawn_upstream().await;
    let p = Proxy::start(&config(&a, &b)).await;
    (p, a, b)
}

/// Expects the request forwarded to `up` with exactly `path` (and no other upstream hit).
async fn expect_forwarded(p: &Proxy, req: Req, up: &Upstream, other: &Upstream, uri: &str) {
    let what = format!("{} {}", req.method, req.target);
    let (n_up, n_other) = (up.count(), other.count());
    let r = p.send(req).await;
    assert_eq!(r.status, 200, "{what}: body {:?}", r.text());
    assert_eq!(up.count(), n_up + 1, "{what}: expected upstream not hit");
    assert_eq!(other.count(), n_other, "{what}: wrong upstream hit");
    assert_eq!(up.last().uri, uri, "{what}: forwarded target");
}

#[tokio::test]
async fn scopes_from_scope_string_or_scp_array() {
    let (p, a, _b) = start().await;
    for extra in [
        json!({"scope": "admin"}),
        json!({"scope": "read admin write"}),
        json!({"scp": ["read", "admin"]}),
    ] {
        let r = p
            .get("/admin/users", Some(&token("root", extra.clone())))
            .await;
        assert_eq!(r.status, 200, "{extra}: {:?}", r.text());
        assert_eq!(a.last().header_all("x-user"), vec!["root"]);
    }
    let n = a.count();
    for extra in [
        json!({}),
        json!({"scope": "read"}),
        json!({"scope": "administrator"}),
        json!({"scope": ""}),
        json!({"scp": ["read", "write"]}),
        json!({"scp": []}),
    ] {
        p.get("/admin/users", Some(&token("eve", extra)))
            .await
            .assert_insufficient(Some("admin"));
    }
    // Several required scopes: all of them, in any order.
    p.get("/multi", Some(&token("u", json!({"scope": "write read"}))))
        .await
        .assert_status(200);
    let n = n + 1;
    p.get("/multi", Some(&token("u", json!({"scope": "read"}))))
        .await
        .assert_insufficient(Some("read write"));
    p.get("/multi", Some(&token("u", json!({"scp": ["write"]}))))
        .await
        .assert_insufficient(Some("read write"));
    // No token on a scoped route: 401 first, not 403.
    p.get("/admin/users", None).await.assert_unauthenticated();
    assert_eq!(a.count(), n, "a denied request reached the upstream");
}

#[tokio::test]
async fn claim_rules_accept_equal_or_contained_values() {
    let (p, a, _b) = start().await;
    for groups in [
        json!("ops"),
        json!("sre"),
        json!(["dev", "sre"]),
        json!(["ops"]),
    ] {
        let r = p
            .get("/ops/x", Some(&token("op", json!({ "groups": groups }))))
            .await;
        assert_eq!(r.status, 200, "groups {groups}: {:?}", r.text());
        assert_eq!(a.last().header_all("x-user"), vec!["op"]);
    }
    let n = a.count();
    for extra in [
        json!({"groups": "dev"}),
        json!({"groups": ["dev", "qa"]}),
        json!({"groups": []}),
        json!({"groups": "ops-team"}),
        json!({}),
        json!({"scope": "ops"}),
    ] {
        p.get("/ops/x", Some(&token("eve", extra)))
            .await
            .assert_insufficient(None);
    }
    assert_eq!(a.count(), n, "a denied request reached the upstream");
}

#[tokio::test]
async fn claim_rule_with_a_single_value() {
    let (p, a, _b) = start().await;
    for team in [json!("blue"), json!(["red", "blue"])] {
        let r = p
            .get("/team/x", Some(&token("tm", json!({ "team": team }))))
            .await;
        assert_eq!(r.status, 200, "team {team}: {:?}", r.text());
        assert_eq!(a.last().header_all("x-user"), vec!["tm"]);
    }
    let n = a.count();
    for extra in [json!({"team": "red"}), json!({"team": ["red"]}), json!({})] {
        p.get("/team/x", Some(&token("eve", extra)))
            .await
            .assert_insufficient(None);
    }
    assert_eq!(a.count(), n, "a denied request reached the upstream");
}

#[tokio::test]
async fn deny_route_and_no_route() {
    let (p, a, b) = start().await;
    let t = token("root", json!({"scope": "admin"}));
    p.get("/deny", None).await.assert_forbidden();
    p.get("/deny/x", Some(&t)).await.assert_forbidden();
    p.send(Req::post("/deny/x", "body").bearer(&t))
        .await
        .assert_forbidden();
    p.get("/nowhere", None).await.assert_not_found();
    p.get("/nowhere", Some(&t)).await.assert_not_found();
    p.get("/", None).await.assert_not_found();
    p.get("/publicity", None).await.assert_not_found();
    assert_eq!(
        a.count() + b.count(),
        0,
        "a denied request reached an upstream"
    );
}

#[tokio::test]
async fn optional_and_public_access() {
    let (p, a, _b) = start().await;
    // Optional: no token is fine, forwarded without identity.
    p.get("/opt/x", None).await.assert_status(200);
    let seen = a.last();
    assert_eq!(seen.uri, "/opt/x");
    assert!(!seen.has_header("x-user"), "{:?}", seen.headers);
    // Valid token: identity forwarded.
    p.get("/opt/x", Some(&token("alice", json!({}))))
        .await
        .assert_status(200);
    assert_eq!(a.last().header_all("x-user"), vec!["alice"]);
    // Invalid or expired token: refused, not downgraded to anonymous.
    let n = a.count();
    p.get("/opt/x", Some("not.a.jwt"))
        .await
        .assert_invalid_token();
    let expired = token("alice", json!({"iat": now() - 600, "exp": now() - 300}));
    p.get("/opt/x", Some(&expired)).await.assert_expired();
    assert_eq!(a.count(), n);

    // Public: no token looked at, even a garbage one.
    p.get("/public/x", None).await.assert_status(200);
    assert!(!a.last().has_header("x-user"));
    p.get("/public/x", Some("garbage")).await.assert_status(200);
    assert!(!a.last().has_header("x-user"));
    p.get("/public/x", Some(&expired)).await.assert_status(200);
    assert!(!a.last().has_header("x-user"));
}

#[tokio::test]
async fn methods_fall_through_to_later_routes() {
    let (p, a, b) = start().await;
    expect_forwarded(&p, Req::post("/m/x", "hi"), &b, &a, "/m/x").await;
    assert_eq!(b.last().method, "POST");
    assert_eq!(&b.last().body[..], b"hi");
    expect_forwarded(&p, Req::new("PUT", "/m/x"), &b, &a, "/m/x").await;
    expect_forwarded(&p, Req::get("/m/x"), &a, &b, "/m/x").await;
    expect_forwarded(&p, Req::new("DELETE", "/m/y"), &a, &b, "/m/y").await;
    assert_eq!(a.last().method, "DELETE");
}

#[tokio::test]
async fn host_exact_and_wildcard() {
    let (p, a, b) = start().await;
    for host in [
        "api.example.com",
        "API.Example.COM",
        "api.example.com:8443",
        "Api.Example.Com:1",
    ] {
        expect_forwarded(&p, Req::get("/h/x").host(host), &a, &b, "/h/x").await;
    }
    for host in [
        "a.example.com",
        "a.b.example.com",
        "A.EXAMPLE.COM",
        "x.example.com:8080",
    ] {
        expect_forwarded(&p, Req::get("/h/x").host(host), &b, &a, "/h/x").await;
    }
    for host in [
        "example.com",
        "example.com:80",
        "evilexample.com",
        "api.example.com.evil.org",
        "example.org",
        "127.0.0.1",
    ] {
        p.send(Req::get("/h/x").host(host)).await.assert_not_found();
    }
    assert_eq!(a.count(), 4);
    assert_eq!(b.count(), 4);
}

#[tokio::test]
async fn path_patterns() {
    let (p, a, b) = start().await;
    // Literal: exact and case-sensitive.
    expect_forwarded(&p, Req::get("/lit/exact"), &a, &b, "/lit/exact").await;
    expect_forwarded(&p, Req::get("/lit/exact?q=1"), &a, &b, "/lit/exact?q=1").await;
    for miss in ["/lit/Exact", "/lit/exact/more", "/lit", "/lit/exactly"] {
        p.get(miss, None).await.assert_not_found();
    }
    // `*`: exactly one segment.
    expect_forwarded(&p, Req::get("/star/a/end"), &a, &b, "/star/a/end").await;
    expect_forwarded(
        &p,
        Req::get("/star/any-thing/end"),
        &a,
        &b,
        "/star/any-thing/end",
    )
    .await;
    for miss in ["/star/end", "/star/a/b/end", "/star/a/end/x"] {
        p.get(miss, None).await.assert_not_found();
    }
    // Trailing `/**`: zero or more segments.
    for path in ["/tree", "/tree/", "/tree/a", "/tree/a/b/c"] {
        expect_forwarded(&p, Req::get(path), &a, &b, path).await;
    }
    for miss in ["/treex", "/tre", "/xtree/a"] {
        p.get(miss, None).await.assert_not_found();
    }
    // First match in file order wins.
    expect_forwarded(&p, Req::get("/fm/a/x"), &a, &b, "/fm/a/x").await;
    expect_forwarded(&p, Req::get("/fm/z/x"), &a, &b, "/fm/z/x").await;
    expect_forwarded(&p, Req::get("/fm/a/y"), &b, &a, "/fm/a/y").await;
    expect_forwarded(&p, Req::get("/fm/a"), &b, &a, "/fm/a").await;
}

#[tokio::test]
async fn path_tricks_are_normalized_before_matching() {
    let (p, a, b) = start().await;
    let admin = token("root", json!({"scope": "admin"}));

    // Resolved onto /admin: the admin rule applies (no token -> 401, never public).
    for (raw, normalized) in [
        ("/public/../admin", "/admin"),
        ("/public/../admin/x", "/admin/x"),
        ("/public/%2e%2e/admin", "/admin"),
        ("/public/%2E%2E/admin", "/admin"),
        ("/public/.%2e/admin/x", "/admin/x"),
        ("/public/./../admin", "/admin"),
        ("/%61dmin/x", "/admin/x"),
        ("/%61%64%6D%69%6E/x", "/admin/x"),
        ("//admin", "/admin"),
        ("//admin//x", "/admin/x"),
        ("/public/x/../../admin", "/admin"),
    ] {
        let n = a.count();
        p.get(raw, None).await.assert_unauthenticated();
        assert_eq!(a.count(), n, "{raw} reached the upstream without a token");
        p.get(raw, Some(&token("eve", json!({"scope": "read"}))))
            .await
            .assert_insufficient(Some("admin"));
        // With the right token, forwarded as exactly the normalized path.
        expect_forwarded(&p, Req::get(raw).bearer(&admin), &a, &b, normalized).await;
    }

    // Refused outright.
    for raw in [
        "/public/..%2Fadmin",
        "/public/..%2fadmin",
        "/public%2Fx",
        "/public/%2F",
        "/public/%5C..%5Cadmin",
        "/public/%5c",
        "/public/%00",
        "/public/a%00b",
        "/../admin",
        "/public/../../admin",
        "/..",
        "/public/%ff",
        "/public/%c3%28",
    ] {
        let n = a.count();
        let r = p.get(raw, None).await;
        if r.status != 400 {
            panic!("{raw}: expected 400, got {} {:?}", r.status, r.text());
        }
        r.assert_bad_request();
        p.get(raw, Some(&admin)).await.assert_bad_request();
        assert_eq!(a.count(), n, "{raw} reached the upstream");
    }

    // Normalized and forwarded on the public route, exactly as matched; escapes
    // of reserved or other characters kept as sent.
    for (raw, forwarded) in [
        ("/public/./x", "/public/x"),
        ("/public/%2e/x", "/public/x"),
        ("/public/a/%2E%2e/b", "/public/b"),
        ("/public//x", "/public/x"),
        ("/public/a/../b", "/public/b"),
        ("/public/%7Euser", "/public/~user"),
        ("/public/%41b", "/public/Ab"),
        ("/public/a%20b", "/public/a%20b"),
        ("/public/a%3fb", "/public/a%3fb"),
        ("/public/a%3Fb?q=%2F", "/public/a%3Fb?q=%2F"),
        ("/public/%C3%A9t%C3%A9", "/public/%C3%A9t%C3%A9"),
        ("/public/x?next=/../admin", "/public/x?next=/../admin"),
    ] {
        expect_forwarded(&p, Req::get(raw), &a, &b, forwarded).await;
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let (p, _a, _b) = start().await;
    for r in [
        p.get("/public/x", None).await,
        p.get("/admin", None).await,
        p.get("/deny", None).await,
        p.get("/nowhere", None).await,
        p.get("/public/%2F", None).await,
        p.get("/admin", Some("bad")).await,
    ] {
        let id = r.header_all("x-request-id");
        assert_eq!(id.len(), 1, "status {}: {:?}", r.status, r.headers);
        assert!(!id[0].is_empty());
    }
    // A client-sent id is echoed on denials too.
    let r = p
        .send(Req::get("/nowhere").header("X-Request-Id", "trace-404-abc"))
        .await;
    r.assert_not_found();
    assert_eq!(r.header_all("x-request-id"), vec!["trace-404-abc"]);
    let r = p
        .send(Req::get("/admin").header("X-Request-Id", "trace-401-abc"))
        .await;
    r.assert_unauthenticated();
    assert_eq!(r.header_all("x-request-id"), vec!["trace-401-abc"]);
}

/// A 400 keeps SPEC §4's body, and its access line names the rule that fired.
#[tokio::test]
async fn bad_request_access_line_names_the_rule() {
    let (a, b) = (spawn_upstream().await, spawn_upstream().await);
    // The binary: the test reads its access log.
    let p = Proxy::builder().binary().start(&config(&a, &b)).await;
    let cases = [
        (
            Req::get("/public/a%2Fb").header("X-Request-Id", "rule-1"),
            "bad_request:encoded_slash",
        ),
        (Req::get("/public/../.."), "bad_request:dot_dot_above_root"),
        (
            Req::get("/public/x")
                .header("X-Request-Id", "rule-3")
                .header("Authorization", "Bearer a")
                .header("Authorization", "Bearer b"),
            "bad_request:duplicate_authorization",
        ),
        (Req::new("CONNECT", "/public/x"), "bad_request:connect"),
    ];
    for (req, rule) in cases {
        let n = a.count();
        let r = p.send(req).await;
        r.assert_bad_request();
        assert_eq!(a.count(), n, "{rule}: reached the upstream");
        let id = r.header("x-request-id").unwrap().to_owned();
        let line = p
            .wait_log_line(&format!("access line for {id}"), |l| {
                l["request_id"] == id.as_str() && l.get("decision").is_some()
            })
            .await;
        assert_eq!(line["decision"], rule, "{line}");
        assert_eq!(line["status"], 400, "{line}");
    }
}
