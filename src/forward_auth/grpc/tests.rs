//! The `Check` service on a real runtime: what each decision becomes in a
//! `CheckResponse` (SPEC §8 gRPC) and the `CheckRequest`s that name no judgeable
//! request. The wire (dispatch, failed RPCs, a real client) is in `serve_tests.rs`.

use super::*;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::Request as Req;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use std::collections::BTreeMap;

const CONFIG: &str = r#"
[upstreams.app]
url = "echo:"

[identity]
header = "X-User"
[identity.claims_to_headers]
"X-User-Email" = "email"
"X-User-Groups" = "groups"

[server]
header_timeout = "1s"

[[issuers]]
name = "local"
issuer = "portcullis"
secret = "unit-test-secret-0123456789abcdef0123456789"

[[routes]]
name = "public"
path = "/public/**"
access = "public"
upstream = "app"

[[routes]]
name = "deny"
path = "/deny/**"
access = "deny"

[[routes]]
name = "admin"
host = "api.example.com"
path = "/admin/**"
scopes = ["admin"]
upstream = "app"

[[routes]]
name = "ws"
path = "/ws"
token_from = ["query:access_token"]
upstream = "app"

[[routes]]
name = "api"
path = "/api/**"
upstream = "app"
"#;

pub(super) use crate::forward_auth::tests::token;

pub(super) fn runtime() -> Arc<Runtime> {
    Arc::new(crate::forward_auth::tests::runtime_of(CONFIG))
}

/// What Envoy sends: method, path with query, host, lowercased headers with the
/// pseudo-headers among them.
pub(super) fn check(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> CheckRequest {
    let mut http = HttpRequest {
        method: method.into(),
        path: path.into(),
        host: host.into(),
        scheme: "https".into(),
        ..Default::default()
    };
    for (k, v) in [(":authority", host), (":path", path), (":method", method)] {
        http.headers.insert(k.into(), v.into());
    }
    for (k, v) in headers {
        http.headers.insert(k.to_ascii_lowercase(), (*v).into());
    }
    with_http(Some(http))
}

fn with_http(http: Option<HttpRequest>) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Req {
                http,
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

pub(super) fn get(path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    check("GET", "app.example.com", path, headers)
}

async fn ask(rt: &Arc<Runtime>, req: CheckRequest) -> CheckResponse {
    let svc = Check { rt: rt.clone() };
    match svc.check(tonic::Request::new(req)).await {
        Ok(r) => r.into_inner(),
        Err(s) => panic!("a Check RPC never fails: {s:?}"),
    }
}

/// `(headers set, headers removed)` of an allow; every set is an overwrite.
pub(super) fn allowed(r: &CheckResponse) -> (Vec<(String, String)>, Vec<String>) {
    assert_eq!(r.status.as_ref().map(|s| s.code), Some(0), "{r:?}");
    let Some(HttpResponse::OkResponse(ok)) = &r.http_response else {
        panic!("allowed without ok_response: {r:?}");
    };
    let set = ok
        .headers
        .iter()
        .map(|o| {
            #[allow(deprecated)]
            let append = o.append;
            assert_eq!(append.map(|b| b.value), Some(false), "{o:?}");
            assert_eq!(o.append_action, 2, "OVERWRITE_IF_EXISTS_OR_ADD: {o:?}");
            let h = o.header.as_ref().expect("header");
            (h.key.clone(), h.value.clone())
        })
        .collect();
    (set, ok.headers_to_remove.clone())
}

/// `(grpc code, HTTP status, headers, body)` of a denial.
pub(super) fn denied(r: &CheckResponse) -> (i32, i32, BTreeMap<String, String>, String) {
    let code = r.status.as_ref().map_or(0, |s| s.code);
    let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
        panic!("denied without denied_response: {r:?}");
    };
    let headers: BTreeMap<String, String> = d
        .headers
        .iter()
        .map(|o| {
            let h = o.header.as_ref().expect("header");
            (h.key.clone(), h.value.clone())
        })
        .collect();
    assert_eq!(headers["content-type"], "application/json");
    assert!(headers.contains_key("x-request-id"), "{headers:?}");
    let status = d.status.as_ref().map_or(0, |s| s.code);
    (code, status, headers, d.body.clone())
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
}

#[tokio::test]
async fn allow_sets_identity_and_removes_the_rest() {
    let rt = runtime();
    let t = token(&rt, Some("read"));
    let bearer = format!("Bearer {t}");
    // Client-sent identity headers in the CheckRequest are never the answer's values.
    let spoofed = [
        ("authorization", bearer.as_str()),
        ("x-user", "eve"),
        ("x-user-groups", "admins"),
    ];
    let (set, removed) = allowed(&ask(&rt, get("/api/orders", &spoofed)).await);
    assert_eq!(
        set,
        pairs(&[("x-user", "alice"), ("x-user-email", "alice@example.com")])
    );
    assert_eq!(removed, ["x-user-groups"], "no `groups` claim: removed");
    // Public route: no token looked at, every identity header removed.
    let all = ["x-user", "x-user-email", "x-user-groups"];
    let (set, removed) = allowed(&ask(&rt, get("/public/x", &spoofed)).await);
    assert!(set.is_empty(), "{set:?}");
    assert_eq!(removed, all);
    // `query:` token sources read the query of `path`.
    let ws = format!("/ws?a=1&access_token={t}");
    let (set, _) = allowed(&ask(&rt, get(&ws, &[("x-user", "eve")])).await);
    assert_eq!(set[0], ("x-user".into(), "alice".into()));
    // ... and only there: the same token in a header does not count for `/ws`.
    assert_eq!(denied(&ask(&rt, get("/ws", &spoofed)).await).0, 16);
}

#[tokio::test]
async fn denials_carry_code_status_headers_body() {
    let rt = runtime();
    let t = token(&rt, Some("read"));
    let bearer = format!("Bearer {t}");
    let (code, status, h, body) = denied(&ask(&rt, get("/api/x", &[])).await);
    assert_eq!((code, status), (16, 401));
    assert_eq!(h["www-authenticate"], "Bearer");
    assert_eq!(body, r#"{"detail": "Not authenticated"}"#);
    let bad = [("authorization", "Bearer not.a.token")];
    let (code, status, h, body) = denied(&ask(&rt, get("/api/x", &bad)).await);
    assert_eq!((code, status), (16, 401));
    assert!(h["www-authenticate"].starts_with("Bearer error=\"invalid_token\""));
    assert_eq!(body, r#"{"detail": "Could not validate credentials"}"#);
    let admin = check(
        "GET",
        "API.example.com.",
        "/admin/users",
        &[("authorization", &bearer)],
    );
    let (code, status, h, body) = denied(&ask(&rt, admin).await);
    assert_eq!((code, status), (7, 403));
    assert_eq!(
        h["www-authenticate"],
        r#"Bearer error="insufficient_scope", scope="admin""#
    );
    assert_eq!(body, r#"{"detail": "Not enough permissions"}"#);
    let (code, status, h, body) = denied(&ask(&rt, get("/deny/x", &[])).await);
    assert_eq!((code, status), (7, 403));
    assert!(!h.contains_key("www-authenticate"));
    assert_eq!(body, r#"{"detail": "Forbidden"}"#);
    let (code, status, _, body) = denied(&ask(&rt, get("/nowhere", &[])).await);
    assert_eq!((code, status), (5, 404));
    assert_eq!(body, r#"{"detail": "Not Found"}"#);
    // Judged on the normalized path: `/public/../api/x` is `/api/x`.
    let d = denied(&ask(&rt, get("/public/%2e%2e/api/x", &[])).await);
    assert_eq!((d.0, d.1), (16, 401));
}

#[tokio::test]
async fn unjudgeable_requests_are_invalid_argument() {
    let rt = runtime();
    let t = token(&rt, None);
    let bearer = format!("Bearer {t}");
    let auth = [("authorization", bearer.as_str())];
    let no_http = CheckRequest {
        attributes: Some(AttributeContext::default()),
    };
    let mut cases = vec![
        ("no attributes", CheckRequest::default()),
        ("no request.http", no_http),
        ("empty http", with_http(Some(HttpRequest::default()))),
        ("no method", check("", "h", "/public/x", &auth)),
        ("bad method", check("G T", "h", "/public/x", &auth)),
        ("bad host", check("GET", "a@b", "/public/x", &auth)),
    ];
    for path in [
        "",
        "*",
        "public/x",
        "http://app.example.com/public/x",
        "/public/a b",
        "/public/a#b",
        "/public/a%2Fb",
        "/public/a%5cb",
        "/public/%00",
        "/../public/x",
    ] {
        cases.push(("path", get(path, &auth)));
    }
    cases.push((
        "CR LF in a header",
        get("/public/x", &[("x-a", "v\r\nx-user: eve")]),
    ));
    cases.push((
        "two Authorization",
        check_with_raw(&[("authorization", &bearer), ("authorization", &bearer)]),
    ));
    for (what, req) in cases {
        let (code, status, h, body) = denied(&ask(&rt, req).await);
        assert_eq!((code, status), (3, 400), "{what}");
        assert!(!h.contains_key("www-authenticate"), "{what}");
        assert_eq!(body, r#"{"detail": "Bad Request"}"#, "{what}");
    }
}

/// A CheckRequest with Envoy's raw `header_map` (repeats kept) for `/api/x`.
fn check_with_raw(headers: &[(&str, &str)]) -> CheckRequest {
    use envoy_types::pb::envoy::config::core::v3::{HeaderMap as RawMap, HeaderValue as Raw};
    let raw = headers
        .iter()
        .map(|(k, v)| Raw {
            key: (*k).into(),
            raw_value: v.as_bytes().to_vec(),
            ..Default::default()
        })
        .collect();
    with_http(Some(HttpRequest {
        method: "GET".into(),
        path: "/api/x".into(),
        host: "app.example.com".into(),
        header_map: Some(RawMap { headers: raw }),
        ..Default::default()
    }))
}

#[tokio::test]
async fn request_id_is_the_originals_or_envoys() {
    let rt = runtime();
    let rid = |r: &CheckResponse| denied(r).2["x-request-id"].clone();
    let sent = get("/api/x", &[("x-request-id", "from-client")]);
    assert_eq!(rid(&ask(&rt, sent).await), "from-client");
    let mut envoy = get("/api/x", &[]);
    if let Some(http) = envoy
        .attributes
        .as_mut()
        .and_then(|a| a.request.as_mut())
        .and_then(|r| r.http.as_mut())
    {
        http.id = "envoy-id-1".into();
    }
    assert_eq!(rid(&ask(&rt, envoy).await), "envoy-id-1");
    let fresh = rid(&ask(&rt, get("/api/x", &[])).await);
    assert!(!fresh.is_empty());
    // Not a §4 request id (over 128 characters): a fresh one, not the client's.
    let long = "x".repeat(129);
    assert_ne!(
        rid(&ask(&rt, get("/api/x", &[("x-request-id", &long)])).await),
        long
    );
}
