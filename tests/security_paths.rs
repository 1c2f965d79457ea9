//! Path-normalization corpus (issue #9, SECURITY.md "Paths"): request targets sent
//! byte for byte over raw TCP to portcullis, each with an explicit expectation.
//!
//! Routes: `/admin/**` protected (no token is ever sent, so reaching it means 401),
//! `/secret` (exact) and `/vault/**` deny, everything else public. A forwarded case
//! names the path the upstream must receive, and the **differential check** holds for
//! every forwarded case: the path the recording upstream received equals
//! `portcullis::path::normalize` of the path that was sent — the path the route
//! matcher saw — so proxy and backend never disagree about which path was authorized.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;

#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Forwarded; the upstream receives this path.
    Fwd(&'static str),
    /// Answered with this status; the upstream sees nothing.
    Code(u16),
}
use Expect::{Code, Fwd};

/// (method, request target, expectation, why).
const CORPUS: &[(&str, &str, Expect, &str)] = &[
    // Plain and dot segments.
    ("GET", "/a", Fwd("/a"), "control"),
    ("GET", "/a/b/../c", Fwd("/a/c"), "dot-dot resolved"),
    ("GET", "/a/./b", Fwd("/a/b"), "dot resolved"),
    ("GET", "//a//b", Fwd("/a/b"), "slashes collapsed"),
    ("GET", "/admin", Code(401), "protected prefix, exact"),
    (
        "GET",
        "/admin/",
        Code(401),
        "protected prefix, trailing slash",
    ),
    ("GET", "//admin", Code(401), "double slash before protected"),
    ("GET", "///admin///", Code(401), "many slashes"),
    ("GET", "/./admin", Code(401), "dot before protected"),
    ("GET", "/x/../admin", Code(401), "traversal into protected"),
    (
        "GET",
        "/admin/../public",
        Fwd("/public"),
        "traversal out of protected",
    ),
    (
        "GET",
        "/admin/%2e%2e/public",
        Fwd("/public"),
        "encoded traversal out",
    ),
    ("GET", "/a/b/../../../admin", Code(400), "above the root"),
    ("GET", "/..", Code(400), "above the root at once"),
    (
        "GET",
        "/admin/x.",
        Code(401),
        "trailing dot in last segment",
    ),
    (
        "GET",
        "/admin.",
        Fwd("/admin."),
        "trailing dot: another segment",
    ),
    (
        "GET",
        "/admin./x",
        Fwd("/admin./x"),
        "trailing dot: another segment",
    ),
    (
        "GET",
        "/admin..",
        Fwd("/admin.."),
        "two trailing dots: literal",
    ),
    ("GET", "/admin%2e", Fwd("/admin."), "encoded trailing dot"),
    // Percent-encoding of unreserved characters, mixed case escapes.
    ("GET", "/%61", Fwd("/a"), "encoded unreserved decoded"),
    (
        "GET",
        "/%61dmin/x",
        Code(401),
        "encoded letter into protected",
    ),
    ("GET", "/ad%6din", Code(401), "encoded letter mid-segment"),
    (
        "GET",
        "/%61%64%6D%69%6e",
        Code(401),
        "fully encoded, mixed case",
    ),
    (
        "GET",
        "/%41dmin",
        Fwd("/Admin"),
        "routes are case-sensitive",
    ),
    ("GET", "/ADMIN", Fwd("/ADMIN"), "routes are case-sensitive"),
    ("GET", "/%2e/a", Fwd("/a"), "encoded dot segment"),
    ("GET", "/x/%2e%2e/admin", Code(401), "encoded dot-dot"),
    (
        "GET",
        "/x/%2E%2e/admin",
        Code(401),
        "encoded dot-dot, mixed case",
    ),
    ("GET", "/x/.%2e/admin", Code(401), "half-encoded dot-dot"),
    ("GET", "/x/%2e./admin", Code(401), "half-encoded dot-dot"),
    (
        "GET",
        "/%2E%2E/a",
        Code(400),
        "encoded dot-dot above the root",
    ),
    ("GET", "/%7euser", Fwd("/~user"), "tilde, lower-case escape"),
    ("GET", "/%7Euser", Fwd("/~user"), "tilde, upper-case escape"),
    ("GET", "/%2d%5f", Fwd("/-_"), "hyphen and underscore"),
    ("GET", "/a%2Eb", Fwd("/a.b"), "encoded dot inside a segment"),
    // Double encoding: decoded once only, the rest kept as sent.
    (
        "GET",
        "/%252e%252e/admin",
        Fwd("/%252e%252e/admin"),
        "double-encoded dots",
    ),
    (
        "GET",
        "/x/%252e%252e/admin",
        Fwd("/x/%252e%252e/admin"),
        "double-encoded traversal",
    ),
    (
        "GET",
        "/%2561dmin",
        Fwd("/%2561dmin"),
        "double-encoded letter",
    ),
    (
        "GET",
        "/x%252fadmin",
        Fwd("/x%252fadmin"),
        "double-encoded slash",
    ),
    // Encoded separators, NUL, malformed escapes.
    ("GET", "/admin%2f", Code(400), "encoded slash"),
    ("GET", "/admin%2Fx", Code(400), "encoded slash, upper case"),
    ("GET", "/x/..%2fadmin", Code(400), "encoded slash traversal"),
    ("GET", "/%2e%2e%2fadmin", Code(400), "encoded dot-dot-slash"),
    ("GET", "/x%5c..%5cadmin", Code(400), "encoded backslash"),
    (
        "GET",
        "/x%5C..%5Cadmin",
        Code(400),
        "encoded backslash, upper case",
    ),
    ("GET", "/x\\..\\admin", Code(400), "raw backslash"),
    ("GET", "/admin%00", Code(400), "encoded NUL"),
    ("GET", "/%00/admin", Code(400), "encoded NUL first"),
    ("GET", "/%", Code(400), "lone percent"),
    ("GET", "/%4", Code(400), "truncated escape"),
    ("GET", "/%zz", Code(400), "non-hex escape"),
    ("GET", "/%%32%65", Code(400), "percent-percent"),
    ("GET", "/%u0061dmin", Code(400), "IIS %u escape"),
    // Not UTF-8 once decoded: overlong forms, surrogates, out of range, truncated.
    ("GET", "/%c0%ae%c0%ae/admin", Code(400), "overlong dots"),
    ("GET", "/%c0%af", Code(400), "overlong slash"),
    ("GET", "/%e0%80%ae", Code(400), "3-byte overlong dot"),
    ("GET", "/%f0%80%80%ae", Code(400), "4-byte overlong dot"),
    ("GET", "/%c1%9c", Code(400), "overlong backslash"),
    ("GET", "/%ff", Code(400), "0xFF"),
    ("GET", "/%ed%a0%80", Code(400), "UTF-16 surrogate"),
    ("GET", "/%f4%90%80%80", Code(400), "above U+10FFFF"),
    ("GET", "/%e2%82", Code(400), "truncated sequence"),
    (
        "GET",
        "/caf%C3%A9",
        Fwd("/caf%C3%A9"),
        "UTF-8 escape kept as sent",
    ),
    (
        "GET",
        "/caf%c3%a9",
        Fwd("/caf%c3%a9"),
        "lower-case UTF-8 escape kept as sent",
    ),
    // Reserved characters stay encoded.
    ("GET", "/admin%20", Fwd("/admin%20"), "encoded space"),
    ("GET", "/admin%09", Fwd("/admin%09"), "encoded tab"),
    ("GET", "/%23", Fwd("/%23"), "encoded #"),
    ("GET", "/a%3fb", Fwd("/a%3fb"), "encoded ?"),
    // `;` path parameters: literal, except on dot-segments (refused).
    (
        "GET",
        "/admin;x",
        Fwd("/admin;x"),
        "params: another segment (see SECURITY.md)",
    ),
    (
        "GET",
        "/admin;/x",
        Fwd("/admin;/x"),
        "params: another segment",
    ),
    ("GET", "/a;b/c", Fwd("/a;b/c"), "params kept"),
    ("GET", "/x/..;/admin", Code(400), "Tomcat ..; traversal"),
    (
        "GET",
        "/x/..;jsessionid=1/admin",
        Code(400),
        "..; with a value",
    ),
    ("GET", "/x/.;/admin", Code(400), "dot with params"),
    ("GET", "/x/%2e%2e;/admin", Code(400), "encoded ..;"),
    ("GET", "/x/..%3b/admin", Code(400), "..%3b"),
    (
        "GET",
        "/x/...;/admin",
        Fwd("/x/...;/admin"),
        "three dots are a name",
    ),
    // Queries and fragments: never part of the matched path.
    ("GET", "/a?b=/../admin", Fwd("/a"), "traversal in the query"),
    ("GET", "/secret?x=1", Code(403), "query on a denied path"),
    (
        "GET",
        "/secret#frag",
        Code(403),
        "fragment on a denied path",
    ),
    ("GET", "/a#/../admin", Fwd("/a"), "traversal in a fragment"),
    // Deny routes.
    ("GET", "/secret", Code(403), "deny, exact"),
    (
        "GET",
        "/secret/",
        Fwd("/secret/"),
        "exact pattern: trailing slash is another path",
    ),
    ("GET", "/vault", Code(403), "deny prefix"),
    ("GET", "/vault/", Code(403), "deny prefix, slash"),
    ("GET", "/vault/.", Code(403), "deny prefix, dot"),
    ("GET", "/vault/x/..", Code(403), "deny prefix, dot-dot"),
    ("GET", "/x/../vault/k", Code(403), "traversal into deny"),
    ("GET", "/Vault", Fwd("/Vault"), "case differs"),
    // Absolute-form (RFC 9112 §3.2.2), authority-form, asterisk-form.
    ("GET", "http://localhost/a", Fwd("/a"), "absolute-form"),
    (
        "GET",
        "http://localhost:80/a",
        Code(400),
        "absolute-form with a port the Host lacks: they differ (SPEC §2)",
    ),
    (
        "GET",
        "http://localhost/x/../admin",
        Code(401),
        "absolute-form traversal",
    ),
    (
        "GET",
        "http://evil.example/admin",
        Code(400),
        "absolute-form, Host names another host (SPEC §2)",
    ),
    (
        "GET",
        "http://localhost/%2e%2e/admin",
        Code(400),
        "absolute-form above the root",
    ),
    (
        "GET",
        "http://localhost//admin",
        Code(401),
        "absolute-form double slash",
    ),
    ("GET", "localhost:443", Code(400), "authority-form on GET"),
    (
        "CONNECT",
        "localhost:443",
        Code(400),
        "authority-form CONNECT",
    ),
    ("OPTIONS", "*", Code(400), "asterisk-form"),
    ("GET", "*", Code(400), "asterisk on GET"),
    ("GET", "a/b", Code(400), "relative target"),
    ("GET", "../admin", Code(400), "relative traversal"),
];

/// The path component of a request target, as the proxy parses it.
fn sent_path(target: &str) -> &str {
    let rest = match target.find("://") {
        Some(i) => {
            let after = &target[i + 3..];
            after.find('/').map_or("/", |j| &after[j..])
        }
        None => target,
    };
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

/// The target with `c=N` added to the query (before any fragment).
fn tagged(target: &str, n: usize) -> String {
    if !target.contains('/') {
        return target.to_owned();
    }
    let (main, frag) = target.split_at(target.find('#').unwrap_or(target.len()));
    let sep = if main.contains('?') { '&' } else { '?' };
    format!("{main}{sep}c={n}{frag}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_corpus_and_differential() {
    assert!(CORPUS.len() >= 60, "{}", CORPUS.len());
    let rec = spawn_upstream().await;
    let up = rec.addr;
    let body = format!(
        "[upstreams.app]\nurl = \"http://{up}\"\n\
         [[routes]]\nname = \"admin\"\npath = \"/admin/**\"\nupstream = \"app\"\n\
         [[routes]]\nname = \"secret\"\npath = \"/secret\"\naccess = \"deny\"\n\
         [[routes]]\nname = \"vault\"\npath = \"/vault/**\"\naccess = \"deny\"\n\
         [[routes]]\nname = \"public\"\npath = \"/**\"\naccess = \"public\"\nupstream = \"app\"\n{}",
        hs_issuer()
    );
    let proxy = Proxy::builder().start(&body).await;
    let addr = proxy.addr;
    let results = tokio::task::spawn_blocking(move || {
        CORPUS
            .iter()
            .enumerate()
            .map(|(n, (method, target, _, _))| {
                let req = format!(
                    "{method} {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                    tagged(target, n)
                );
                exchange(addr, req.as_bytes(), std::time::Duration::from_millis(500))
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();

    let seen = rec.requests();
    let mut failures = Vec::new();
    let mut forwarded = 0;
    for (n, ((method, target, expect, why), ex)) in CORPUS.iter().zip(&results).enumerate() {
        let tag = format!("c={n}");
        let hits: Vec<&Recorded> = seen
            .iter()
            .filter(|s| {
                s.query
                    .as_deref()
                    .is_some_and(|q| q.split('&').any(|p| p == tag))
            })
            .collect();
        let status = ex.first_status();
        let problem = match *expect {
            Code(code) if status != code || !hits.is_empty() => Some(format!(
                "expected {code} and no upstream request, got {status} and {} upstream request(s)",
                hits.len()
            )),
            Code(_) => None,
            Fwd(path) => {
                forwarded += 1;
                // The differential check: upstream path == what the matcher saw.
                let matcher = portcullis::path::normalize(sent_path(target))
                    .map(|p| p.into_owned())
                    .map_err(|e| e.to_string());
                match hits.as_slice() {
                    [one] if status == 200 && one.path == path && matcher.as_deref() == Ok(path) => {
                        None
                    }
                    _ => Some(format!(
                        "expected 200 forwarding {path:?}; got {status}, upstream saw {:?}, matcher saw {matcher:?}",
                        hits.iter().map(|s| &s.path).collect::<Vec<_>>()
                    )),
                }
            }
        };
        if let Some(p) = problem {
            failures.push(format!("#{n} {method} {target} ({why}): {p}"));
        }
    }
    // Nothing reached the upstream that the table did not allow.
    let tagged_total = seen.iter().filter(|s| s.query.is_some()).count();
    assert_eq!(
        tagged_total, forwarded,
        "unexpected upstream requests: {seen:#?}"
    );
    let admin = portcullis::routes::PathPattern::parse("/admin/**").unwrap();
    let vault = portcullis::routes::PathPattern::parse("/vault/**").unwrap();
    for s in &seen {
        assert!(
            !admin.matches(&s.path) && !vault.matches(&s.path) && s.path != "/secret",
            "a protected or denied path reached the upstream without a token: {s:?}"
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CORPUS.len(),
        failures.join("\n")
    );
}

/// Over-long paths are refused before any work (`MAX_PATH_LEN`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_path_is_refused() {
    let rec = spawn_upstream().await;
    let up = rec.addr;
    let body = format!(
        "[upstreams.app]\nurl = \"http://{up}\"\n\
         [[routes]]\nname = \"public\"\npath = \"/**\"\naccess = \"public\"\nupstream = \"app\"\n{}",
        hs_issuer()
    );
    let proxy = Proxy::builder().start(&body).await;
    let long = format!("/{}", "a/".repeat(portcullis::path::MAX_PATH_LEN / 2 + 1));
    let addr = proxy.addr;
    let ex = tokio::task::spawn_blocking(move || get(addr, &long, ""))
        .await
        .unwrap();
    assert!(matches!(ex.first_status(), 400 | 414 | 431), "{}", ex.raw);
    assert_eq!(rec.count(), 0);
}
