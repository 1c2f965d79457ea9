//! Envoy / Istio ext_authz over gRPC (SPEC §8, issue 17): a real gRPC client (tonic,
//! with the `envoy-types` messages) calls `envoy.service.auth.v3.Authorization/Check`
//! over h2c on the proxy's `[forward_auth]` listener, which serves the `envoy` HTTP
//! convention on the same port. Envoy itself cannot be installed here; the client sends
//! the `CheckRequest` Envoy sends (method, path with query, host, lowercased headers with
//! the pseudo-headers among them).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/forward_auth.rs"]
mod decisions;
mod support;

use decisions::{h2c_client, Decider};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use serde_json::{json, Value};
use support::dpop::verify_assertion;
use support::grpc::{self, allowed, ask, check, denied};
use support::*;
use tonic::transport::Channel;

const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// A proxy with the decision listener (`envoy` convention, port 0) and an admin
/// listener; routes without `upstream` (decisions only).
async fn decider() -> Decider {
    let body = format!(
        r#"
[admin]
listen = "127.0.0.1:0"

[identity]
header = "X-User"
[identity.claims_to_headers]
"X-User-Email" = "email"
"X-User-Groups" = "groups"

{issuer}

[[routes]]
name = "public"
path = "/public/**"
access = "public"

[[routes]]
name = "optional"
path = "/opt/**"
access = "optional"

[[routes]]
name = "deny"
path = "/deny/**"
access = "deny"

[[routes]]
name = "admin"
host = "api.example.com"
path = "/admin/**"
scopes = ["admin"]

[[routes]]
name = "ws"
path = "/ws"
token_from = ["query:access_token"]

[[routes]]
name = "lookalike"
path = "/envoy.service.auth.v3.Authorization/**"

[[routes]]
name = "api"
path = "/api/**"
"#,
        issuer = hs_issuer()
    );
    Decider::start(
        Proxy::builder().binary(),
        &decisions::config("envoy", &body),
    )
    .await
}

fn alice() -> String {
    token(
        "alice",
        json!({"email": "alice@example.com", "scope": "read"}),
    )
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
}

const IDENTITY: [&str; 3] = ["x-user", "x-user-email", "x-user-groups"];

#[tokio::test]
async fn allowed_sets_identity_and_removes_the_rest() {
    let d = decider().await;
    let mut c = grpc::client(d.addr).await;
    let b = bearer(&alice());
    // The client's own identity headers ride along in the CheckRequest, as Envoy sends
    // every request header: they never come back as the answer's values.
    let spoofed = [
        ("authorization", b.as_str()),
        ("x-user", "eve"),
        ("x-user-email", "eve@example.com"),
        ("x-user-groups", "admins"),
    ];
    let r = ask(
        &mut c,
        check("GET", "app.example.com", "/api/orders", &spoofed),
    )
    .await;
    let (set, removed) = allowed(&r);
    assert_eq!(
        set,
        pairs(&[("x-user", "alice"), ("x-user-email", "alice@example.com")])
    );
    assert_eq!(removed, ["x-user-groups"], "no `groups` claim: removed");
    // Public route, optional route without token: every identity header removed.
    for path in ["/public/x", "/opt/x"] {
        let mut h = spoofed.to_vec();
        if path == "/opt/x" {
            h.remove(0);
        }
        let (set, removed) = allowed(&ask(&mut c, check("GET", "h.test", path, &h)).await);
        assert!(set.is_empty(), "{path}: {set:?}");
        assert_eq!(removed, IDENTITY, "{path}");
    }
    // Optional route with a token: the caller's identity.
    let r = ask(&mut c, check("GET", "h.test", "/opt/x", &spoofed)).await;
    assert_eq!(allowed(&r).0[0], ("x-user".into(), "alice".into()));
    // The scope rule holds with the right scope and host (case and trailing dot folded).
    let admin = token("root", json!({"scope": "admin"}));
    let ab = bearer(&admin);
    let r = ask(
        &mut c,
        check(
            "GET",
            "API.example.com.",
            "/admin/users",
            &[("authorization", &ab)],
        ),
    )
    .await;
    assert_eq!(allowed(&r).0, pairs(&[("x-user", "root")]));
}

#[tokio::test]
async fn query_token_source_reads_the_paths_query() {
    let d = decider().await;
    let mut c = grpc::client(d.addr).await;
    let t = alice();
    let r = ask(
        &mut c,
        check(
            "GET",
            "h.test",
            &format!("/ws?room=1&access_token={t}"),
            &[],
        ),
    )
    .await;
    assert_eq!(allowed(&r).0[0], ("x-user".into(), "alice".into()));
    // The route reads only `query:access_token`: a header token is no token there.
    let b = bearer(&t);
    let r = ask(
        &mut c,
        check("GET", "h.test", "/ws", &[("authorization", &b)]),
    )
    .await;
    let no = denied(&r);
    assert_eq!((no.code, no.status), (grpc::UNAUTHENTICATED, 401));
    // Nor is the token of another query parameter.
    let r = ask(&mut c, check("GET", "h.test", &format!("/ws?t={t}"), &[])).await;
    assert_eq!(denied(&r).status, 401);
}

#[tokio::test]
async fn every_denial_carries_code_status_headers_body() {
    let d = decider().await;
    let mut c = grpc::client(d.addr).await;
    let reader = bearer(&alice());
    let expired = bearer(&token(
        "alice",
        json!({"exp": now() - 3600, "iat": now() - 7200}),
    ));
    let forged = bearer(&mint(
        "HS256",
        Signer::Secret(b"another-secret-0123456789abcdef0123456789"),
        &claims(ISS, "alice"),
    ));
    let invalid = "Bearer error=\"invalid_token\"";
    let cases = [
        Denial::new("/api/x", None, 401, "Not authenticated", Some("Bearer")),
        Denial::new(
            "/api/x",
            Some("Bearer not.a.token"),
            401,
            "Could not validate credentials",
            Some(invalid),
        ),
        Denial::new(
            "/api/x",
            Some(&forged),
            401,
            "Could not validate credentials",
            Some(invalid),
        ),
        Denial::new(
            "/api/x",
            Some(&expired),
            401,
            "Token has expired",
            Some("Bearer error=\"invalid_token\", error_description=\"token expired\""),
        ),
        Denial {
            host: "api.example.com",
            ..Denial::new(
                "/admin/users",
                Some(&reader),
                403,
                "Not enough permissions",
                Some("Bearer error=\"insufficient_scope\", scope=\"admin\""),
            )
        },
        Denial::new("/deny/x", Some(&reader), 403, "Forbidden", None),
        // The admin route is host-scoped: on another host no route matches.
        Denial {
            host: "other.example.com",
            ..Denial::new("/admin/users", Some(&reader), 404, "Not Found", None)
        },
        Denial::new("/nowhere", None, 404, "Not Found", None),
        Denial::new("/api/a%2Fb", Some(&reader), 400, "Bad Request", None),
        // Judged on the normalized path: this is /api/x, not a public one.
        Denial::new(
            "/public/%2e%2e/api/x",
            None,
            401,
            "Not authenticated",
            Some("Bearer"),
        ),
    ];
    for want in cases {
        want.check(&mut c).await;
    }
}

/// One expected denial: the request (host, path, Authorization) and the answer.
struct Denial<'a> {
    host: &'a str,
    path: &'a str,
    authorization: Option<&'a str>,
    status: i32,
    detail: &'a str,
    /// A prefix of the expected `WWW-Authenticate`, or none sent.
    www: Option<&'a str>,
}

impl<'a> Denial<'a> {
    fn new(
        path: &'a str,
        authorization: Option<&'a str>,
        status: i32,
        detail: &'a str,
        www: Option<&'a str>,
    ) -> Self {
        Denial {
            host: "h.test",
            path,
            authorization,
            status,
            detail,
            www,
        }
    }

    /// SPEC §8: 401 -> UNAUTHENTICATED, 403 -> PERMISSION_DENIED, 400 ->
    /// INVALID_ARGUMENT, 404 -> NOT_FOUND.
    fn code(&self) -> i32 {
        match self.status {
            401 => grpc::UNAUTHENTICATED,
            403 => grpc::PERMISSION_DENIED,
            400 => grpc::INVALID_ARGUMENT,
            404 => grpc::NOT_FOUND,
            s => panic!("no SPEC code for {s}"),
        }
    }

    async fn check(&self, c: &mut AuthorizationClient<Channel>) {
        let mut h = vec![("x-request-id", "grpc-rid-7")];
        if let Some(a) = self.authorization {
            h.push(("authorization", a));
        }
        let r = ask(c, check("GET", self.host, self.path, &h)).await;
        let no = denied(&r);
        let case = format!("{}{}: {no:?}", self.host, self.path);
        assert_eq!((no.code, no.status), (self.code(), self.status), "{case}");
        let body: Value = serde_json::from_str(&no.body).expect("JSON body");
        assert_eq!(body, json!({ "detail": self.detail }), "{case}");
        let www = no.header("www-authenticate");
        match self.www {
            Some(w) => assert!(www.is_some_and(|v| v.starts_with(w)), "{case}"),
            None => assert_eq!(www, None, "{case}"),
        }
        assert_eq!(no.header("x-request-id"), Some("grpc-rid-7"), "{case}");
    }
}

#[tokio::test]
async fn unjudgeable_check_requests_are_invalid_argument() {
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
    use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest};
    let d = decider().await;
    let mut c = grpc::client(d.addr).await;
    let b = bearer(&alice());
    let auth = [("authorization", b.as_str())];
    let mut cases = vec![
        ("no attributes".to_owned(), CheckRequest::default()),
        (
            "no attributes.request.http".to_owned(),
            CheckRequest {
                attributes: Some(AttributeContext::default()),
            },
        ),
        (
            "empty http".to_owned(),
            grpc::with_http(HttpRequest::default()),
        ),
        (
            "no method".to_owned(),
            check("", "h.test", "/public/x", &auth),
        ),
        (
            "bad method".to_owned(),
            check("G T", "h.test", "/public/x", &auth),
        ),
        (
            "bad host".to_owned(),
            check("GET", "a@b", "/public/x", &auth),
        ),
        (
            "host with a path".to_owned(),
            check("GET", "h.test/x", "/public/x", &auth),
        ),
        (
            "CR LF in a header".to_owned(),
            check("GET", "h.test", "/public/x", &[("x-a", "v\r\nx-user: eve")]),
        ),
    ];
    for path in [
        "",
        "*",
        "public/x",
        "http://h.test/public/x",
        "/public/a b",
        "/public/a#b",
        "/public/a%2Fb",
        "/public/a%2fb",
        "/public/a%5Cb",
        "/public/a\\b",
        "/public/%00",
        "/../public/x",
        "/public/%ff",
    ] {
        cases.push((
            format!("path {path:?}"),
            check("GET", "h.test", path, &auth),
        ));
    }
    for (what, req) in cases {
        let r = ask(&mut c, req).await;
        let no = denied(&r);
        assert_eq!(
            (no.code, no.status),
            (grpc::INVALID_ARGUMENT, 400),
            "{what}: {no:?}"
        );
        assert_eq!(no.body, r#"{"detail": "Bad Request"}"#, "{what}");
        assert_eq!(no.header("www-authenticate"), None, "{what}");
    }
    // The listener is still there and still decides.
    let r = ask(&mut c, check("GET", "h.test", "/api/x", &auth)).await;
    assert_eq!(allowed(&r).0[0].1, "alice");
}

#[tokio::test]
async fn http_and_grpc_decisions_share_the_listener() {
    let d = decider().await;
    let t = alice();
    let mut c = grpc::client(d.addr).await;
    let b = bearer(&t);
    let r = ask(
        &mut c,
        check("GET", "h.test", "/api/x", &[("authorization", &b)]),
    )
    .await;
    assert_eq!(allowed(&r).0[0].1, "alice");
    // The `envoy` HTTP convention over HTTP/1.1: the decision request is the original.
    let ok = d.send(&Req::get("/api/x").host("h.test").bearer(&t)).await;
    ok.assert_status(200);
    assert_eq!(ok.header("x-user"), Some("alice"));
    assert_eq!(ok.header("x-user-groups"), Some(""));
    assert!(ok.body.is_empty());
    let no = d.send(&Req::get("/api/x").host("h.test")).await;
    no.assert_denied(401, "Not authenticated");
    assert_eq!(no.header("www-authenticate"), Some("Bearer"));
    // ... and over h2c, interleaved with more gRPC on its own connection.
    let h2c = h2c_client();
    let r = h2c
        .get(d.url("/api/x"))
        .bearer_auth(&t)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-user"], "alice");
    let r = ask(&mut c, check("GET", "h.test", "/api/x", &[])).await;
    assert_eq!(denied(&r).status, 401);
    // The main listener serves no decisions: these routes have no upstream (404).
    d.proxy.get("/api/x", Some(&t)).await.assert_not_found();
}

#[tokio::test]
async fn grpc_lookalikes_are_decided_by_the_http_convention() {
    let d = decider().await;
    let t = alice();
    // Envoy's HTTP ext_authz relays an original `POST /envoy...Check` with its gRPC
    // content type: over HTTP/1.1 it is an original request like any other (the
    // `lookalike` route is protected), never a gRPC answer with HTTP 200.
    let post = |bearer: Option<&str>| {
        let mut r = Req::new("POST", CHECK_PATH)
            .host("h.test")
            .header("content-type", "application/grpc")
            .header("content-length", "0");
        if let Some(t) = bearer {
            r = r.bearer(t);
        }
        r
    };
    let no = d.send(&post(None)).await;
    no.assert_denied(401, "Not authenticated");
    let ok = d.send(&post(Some(&t))).await;
    ok.assert_status(200);
    assert_eq!(ok.header("x-user"), Some("alice"));
    // Over h2c, a gRPC content type on any other path is an HTTP decision too.
    let h2c = h2c_client();
    for path in ["/api/x", "/envoy.service.auth.v2.Authorization/Check"] {
        let r = h2c
            .post(d.url(path))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        assert!(r.headers().get("grpc-status").is_none(), "{path}");
        assert_eq!(status, if path == "/api/x" { 401 } else { 404 }, "{path}");
        let body: Value = r.json().await.unwrap();
        assert!(body["detail"].is_string(), "{path}: {body}");
    }
}

#[tokio::test]
async fn grpc_decisions_are_counted_and_logged_without_the_token() {
    let d = decider().await;
    let t = alice();
    let b = bearer(&t);
    let mut c = grpc::client(d.addr).await;
    let h = [
        ("authorization", b.as_str()),
        ("x-request-id", "grpc-rid-42"),
    ];
    allowed(&ask(&mut c, check("GET", "h.test", "/api/x", &h)).await);
    denied(
        &ask(
            &mut c,
            check(
                "GET",
                "h.test",
                "/api/y",
                &[("x-request-id", "grpc-rid-43")],
            ),
        )
        .await,
    );
    let metrics = d.metrics().await;
    for want in [
        r#"portcullis_requests_total{route="api",status="2xx",decision="allowed",method="GET",code="200"} 1"#,
        r#"portcullis_requests_total{route="api",status="4xx",decision="denied_no_token",method="GET",code="401"} 1"#,
    ] {
        assert!(metrics.contains(want), "{want} in\n{metrics}");
    }
    assert!(!d.proxy.logs().contains(&t), "the token is never logged");
    let lines = d.access_lines();
    for (rid, status, user) in [("grpc-rid-42", 200, "alice"), ("grpc-rid-43", 401, "")] {
        let line = lines
            .iter()
            .find(|l| l["request_id"] == rid)
            .unwrap_or_else(|| panic!("no access line for {rid} in {lines:?}"));
        assert_eq!(line["upstream"], "", "{line}");
        assert_eq!(line["route"], "api", "{line}");
        assert_eq!(line["method"], "GET", "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["user"], user, "{line}");
    }
}

/// SPEC §8 + §10 over gRPC: with `[identity.assertion]`, `ok_response.headers` carries
/// the signed assertion (PyJWT verifies it against the main listener's JWKS: `aud` the
/// route's name, no upstream here), overwriting a client-sent copy; a public route
/// and an optional route without token list it in `headers_to_remove`; a denial
/// carries none.
#[tokio::test]
async fn ok_response_carries_the_signed_assertion() {
    const ASSERT_ISS: &str = "https://portcullis.assert/";
    const ASSERTION: &str = "x-portcullis-assertion";
    let body = format!(
        "[identity]\nheader = \"X-User\"\n\
         [identity.assertion]\nissuer = \"assert\"\nttl = \"45s\"\n\n\
         [[issuers]]\nname = \"assert\"\nissuer = \"{ASSERT_ISS}\"\nprivate_key = \"assert.pem\"\n\n\
         {}\n\
         [[routes]]\nname = \"public\"\npath = \"/public/**\"\naccess = \"public\"\n\n\
         [[routes]]\nname = \"optional\"\npath = \"/opt/**\"\naccess = \"optional\"\n\n\
         [[routes]]\nname = \"api\"\npath = \"/api/**\"\n",
        hs_issuer()
    );
    let builder = Proxy::builder().file("assert.pem", &ed25519_key().private_pem);
    let d = Decider::start(builder, &decisions::config("envoy", &body)).await;
    let jwks = d.proxy.url("/.well-known/jwks.json");
    let mut c = grpc::client(d.addr).await;
    let b = bearer(&alice());
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    let sent = [("authorization", b.as_str()), (ASSERTION, forged)];
    for path in ["/api/x", "/opt/x"] {
        let (set, removed) = allowed(&ask(&mut c, check("GET", "h.test", path, &sent)).await);
        assert!(removed.is_empty(), "{path}: {removed:?}");
        let names: Vec<&str> = set.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["x-user", ASSERTION], "{path}");
        let a = &set[1].1;
        assert_ne!(a, forged);
        let aud = if path == "/api/x" { "api" } else { "optional" };
        let v = verify_assertion(a, &jwks, aud, ASSERT_ISS);
        assert_eq!(v["claims"]["sub"], "alice");
        let iat = v["claims"]["iat"].as_u64().unwrap();
        assert_eq!(v["claims"]["exp"].as_u64(), Some(iat + 45));
        assert_eq!(v["header"]["alg"], "EdDSA");
    }
    for (path, h) in [("/public/x", &sent[..]), ("/opt/x", &sent[1..])] {
        let (set, removed) = allowed(&ask(&mut c, check("GET", "h.test", path, h)).await);
        assert!(set.is_empty(), "{path}: {set:?}");
        assert_eq!(removed, ["x-user", ASSERTION], "{path}");
    }
    let no = denied(&ask(&mut c, check("GET", "h.test", "/api/x", &sent[1..])).await);
    assert_eq!((no.code, no.status), (grpc::UNAUTHENTICATED, 401));
    assert!(no.header(ASSERTION).is_none(), "{no:?}");
}
