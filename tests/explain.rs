//! `portcullis explain` (SPEC §8) with the binary: what it prints (normalized path,
//! route or why none, access, token sources, scopes and claims, the decision and its
//! reason), its exit codes (0 allowed, 1 denied or invalid, 2 usage), that it never
//! prints the token; and `check` on routes without `upstream` and on `[forward_auth]`
//! (SPEC §2, §8).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use std::path::Path;
use support::*;

fn config() -> String {
    format!(
        r#"
[upstreams.app]
url = "echo:"

[identity]
header = "X-User"

{issuer}
[forward_auth]
listen = "127.0.0.1:0"

[[routes]]
name = "public"
path = "/public/**"
access = "public"
upstream = "app"

[[routes]]
name = "admin"
host = "api.example.com"
path = "/admin/**"
methods = ["GET", "POST"]
scopes = ["admin"]
claims = {{ groups = ["ops", "sre"] }}
upstream = "app"

[[routes]]
name = "ws"
path = "/ws"
token_from = ["query:access_token", "header"]

[[routes]]
name = "api"
path = "/api/**"
upstream = "app"
"#,
        issuer = hs_issuer()
    )
}

fn dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("proxy.toml"), config()).unwrap();
    d
}

async fn explain(dir: &Path, args: &[&str]) -> CliOutput {
    let mut all = vec!["explain", "--config", "proxy.toml"];
    all.extend_from_slice(args);
    cli(&all, dir, &[]).await
}

fn line<'a>(out: &'a CliOutput, key: &str) -> &'a str {
    out.stdout
        .lines()
        .find(|l| l.starts_with(key))
        .unwrap_or_else(|| panic!("no `{key}` line in:\n{}", out.stdout))
}

#[tokio::test]
async fn explains_the_route_and_the_decision() {
    let d = dir();
    let out = explain(d.path(), &["GET", "/public/../api/a/./b"]).await;
    out.assert_code(1);
    assert!(line(&out, "path:").contains("/api/a/b"), "{}", out.stdout);
    assert!(line(&out, "route:").contains("`api`"), "{}", out.stdout);
    assert!(line(&out, "access:").contains("protected"));
    assert!(line(&out, "token from:").contains("header"));
    assert!(line(&out, "decision:").contains("denied 401 Not authenticated"));
    assert!(
        out.stdout.contains("WWW-Authenticate: Bearer"),
        "{}",
        out.stdout
    );

    let t = token("alice", json!({"scope": "read"}));
    let out = explain(d.path(), &["--token", &t, "GET", "/api/x"]).await;
    out.assert_code(0);
    assert!(
        line(&out, "decision:").contains("allowed"),
        "{}",
        out.stdout
    );
    assert!(line(&out, "caller:").contains("alice"));
    assert!(out.stdout.contains("x-user: alice"), "{}", out.stdout);
    assert!(
        !out.stdout.contains(&t) && !out.stderr.contains(&t),
        "the token is printed"
    );

    let out = explain(d.path(), &["GET", "/public/x"]).await;
    out.assert_code(0);
    assert!(line(&out, "access:").contains("public"));
    assert!(line(&out, "decision:").contains("allowed (public)"));
}

#[tokio::test]
async fn scopes_claims_and_reasons() {
    let d = dir();
    let t = token("alice", json!({"scope": "read"}));
    let host = ["--host", "api.example.com"];
    let out = explain(
        d.path(),
        &[&host[..], &["--token", &t, "GET", "/admin/users"]].concat(),
    )
    .await;
    out.assert_code(1);
    assert!(line(&out, "route:").contains("`admin`"));
    assert!(line(&out, "route:").contains("methods GET, POST"));
    assert!(line(&out, "scopes:").contains("admin"));
    assert!(line(&out, "claims:").contains("groups"), "{}", out.stdout);
    assert!(line(&out, "decision:").contains("denied 403 Not enough permissions"));
    assert!(out.stdout.contains("scope=\"admin\""), "{}", out.stdout);

    let good = token("root", json!({"scope": "admin", "groups": ["sre"]}));
    let out = explain(
        d.path(),
        &[&host[..], &["--token", &good, "POST", "/admin/users"]].concat(),
    )
    .await;
    out.assert_code(0);

    let expired = token("alice", json!({"iat": now() - 7200, "exp": now() - 3600}));
    let out = explain(d.path(), &["--token", &expired, "GET", "/api/x"]).await;
    out.assert_code(1);
    assert!(
        line(&out, "decision:").contains("Token has expired"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("token expired"));

    // A `query:` source first: the token is judged as sent there.
    let out = explain(d.path(), &["--token", &t, "GET", "/ws"]).await;
    out.assert_code(0);
    assert!(line(&out, "token from:").contains("query:access_token, header"));
    assert!(
        line(&out, "upstream:").contains("[forward_auth]"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn why_no_route_matches() {
    let d = dir();
    // The admin route matches the path, not the host (none given) nor the method.
    let out = explain(d.path(), &["DELETE", "/admin/users"]).await;
    out.assert_code(1);
    assert!(line(&out, "route:").contains("none"));
    let why = out
        .stdout
        .lines()
        .find(|l| l.contains("`admin`"))
        .unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(
        why.contains("host api.example.com") && why.contains("methods GET, POST"),
        "{why}"
    );
    assert!(line(&out, "decision:").contains("denied 404 Not Found"));

    let out = explain(d.path(), &["GET", "/api/a%2Fb"]).await;
    out.assert_code(1);
    assert!(
        line(&out, "decision:").contains("denied 400 Bad Request (bad_request:encoded_slash)"),
        "{}",
        out.stdout
    );
}

#[tokio::test]
async fn usage_errors_exit_2() {
    let d = dir();
    explain(d.path(), &["GET"]).await.assert_code(2);
    explain(d.path(), &["G(T", "/api"]).await.assert_code(2);
    explain(d.path(), &["--host", "a\u{1}b", "GET", "/api"])
        .await
        .assert_code(2);
    // An invalid config is exit 1, as for `check`.
    std::fs::write(d.path().join("proxy.toml"), "[server]\nlisten = 1\n").unwrap();
    explain(d.path(), &["GET", "/api"]).await.assert_code(1);
}

/// SPEC §2: a route without `upstream` is an error unless `[forward_auth]` is
/// configured; an unknown convention is refused naming the three.
#[tokio::test]
async fn check_routes_without_upstream() {
    let d = tempfile::tempdir().unwrap();
    let routes = "[[routes]]\nname = \"only\"\npath = \"/only/**\"\n";
    let write = |text: &str| std::fs::write(d.path().join("proxy.toml"), text).unwrap();
    let check = || cli(&["check", "--config", "proxy.toml"], d.path(), &[]);

    write(routes);
    let out = check().await;
    out.assert_code(1);
    let e = assert_error_at(&out.stderr, "proxy.toml", &[1]);
    assert!(
        e.contains("needs `upstream`") && e.contains("[forward_auth]"),
        "{e}"
    );

    write(&format!(
        "[forward_auth]\nlisten = \"127.0.0.1:9000\"\nheaders = \"x-original\"\n{routes}"
    ));
    let out = check().await;
    out.assert_code(0);
    assert!(out.stdout.contains("only"), "{}", out.stdout);

    write(&format!(
        "[forward_auth]\nheaders = \"x-forwarded-for\"\n{routes}"
    ));
    let out = check().await;
    out.assert_code(1);
    let e = assert_error_at(&out.stderr, "proxy.toml", &[2]);
    assert!(e.contains("x-forwarded, x-original, envoy"), "{e}");
    // The route is no second error: it may be meant for the listener.
    assert!(!out.stderr.contains("needs `upstream`"), "{}", out.stderr);

    write(&format!(
        "[forward_auth]\nlisten = \"nowhere\"\nbogus = 1\n{routes}"
    ));
    let out = check().await;
    out.assert_code(1);
    assert!(out.stderr.contains("bogus"), "{}", out.stderr);
}
