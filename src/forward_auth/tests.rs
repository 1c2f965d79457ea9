//! [`super::decide`] on a real runtime: the answer each §4 case gets, and the
//! identity headers (each present, with a value or none).

use super::{decide, Answer, Decided, Original};
use crate::app::Runtime;
use http::{HeaderMap, HeaderValue, Method};
use std::path::Path;
use std::time::Duration;

const CONFIG: &str = r#"
[upstreams.app]
url = "echo:"

[identity]
header = "X-User"
[identity.claims_to_headers]
"X-User-Email" = "email"
"X-User-Scopes" = "scope"

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
name = "optional"
path = "/opt/**"
access = "optional"
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
name = "rest"
path = "/api/**"
upstream = "app"
"#;

/// The runtime of `config`, a test config read as `/nonexistent/proxy.toml` (the
/// gRPC tests build theirs with it too).
pub(super) fn runtime_of(config: &str) -> Runtime {
    runtime_in(Path::new("/nonexistent"), config)
}

/// The runtime of `config` read as `dir/proxy.toml` (its files relative to `dir`).
fn runtime_in(dir: &Path, config: &str) -> Runtime {
    let cfg =
        crate::config::load_str(&dir.join("proxy.toml"), config).unwrap_or_else(|e| panic!("{e}"));
    Runtime::new(cfg).expect("runtime")
}

fn runtime() -> Runtime {
    runtime_of(CONFIG)
}

/// A token for `alice` (with an `email` claim) by the config's first issuer.
pub(super) fn token(rt: &Runtime, scope: Option<&str>) -> String {
    let iss = &rt.config.issuers[0];
    let email = ("email", serde_json::json!("alice@example.com"));
    crate::mint::mint(iss, "alice", scope, Duration::from_secs(60), &[email]).expect("mint")
}

struct Ask<'a> {
    method: Method,
    host: Option<&'a str>,
    path: &'a str,
    query: Option<&'a str>,
    bearer: Option<&'a str>,
}

impl<'a> Ask<'a> {
    fn get(path: &'a str) -> Self {
        Ask {
            method: Method::GET,
            host: Some("app.example.com"),
            path,
            query: None,
            bearer: None,
        }
    }

    async fn on(&self, rt: &Runtime) -> Decided {
        let mut headers = HeaderMap::new();
        if let Some(t) = self.bearer {
            let v = HeaderValue::from_str(&format!("Bearer {t}")).expect("value");
            headers.insert(http::header::AUTHORIZATION, v);
        }
        let host = self.host.map(|h| HeaderValue::from_str(h).expect("host"));
        let original = Original {
            method: &self.method,
            host: host.as_ref(),
            path: self.path,
            query: self.query,
            headers: &headers,
            tls: true,
        };
        decide(rt, &original, HeaderValue::from_static("rid-1")).await
    }
}

fn identity(d: &Decided) -> Vec<(String, Option<String>)> {
    let Answer::Allow { identity, .. } = &d.answer else {
        panic!("denied: {:?}", d.answer);
    };
    identity
        .iter()
        .map(|(n, v)| {
            let v = v.as_ref().map(|v| v.to_str().expect("ascii").to_owned());
            (n.as_str().to_owned(), v)
        })
        .collect()
}

fn denial(d: &Decided) -> (u16, String, Option<String>) {
    let Answer::Deny {
        status,
        headers,
        body,
    } = &d.answer
    else {
        panic!("allowed: {:?}", d.answer);
    };
    assert_eq!(headers[http::header::CONTENT_TYPE], "application/json");
    assert!(!headers.contains_key(http::header::CONNECTION));
    let www = headers
        .get(http::header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().expect("ascii").to_owned());
    let body = String::from_utf8(body.to_vec()).expect("utf-8");
    (status.as_u16(), body, www)
}

#[tokio::test]
async fn allowed_with_every_identity_header() {
    let rt = runtime();
    let t = token(&rt, Some("read write"));
    let d = Ask {
        bearer: Some(&t),
        ..Ask::get("/api/orders")
    }
    .on(&rt)
    .await;
    assert_eq!(d.status(), 200);
    assert_eq!(d.request_id, "rid-1");
    let want = |email: Option<&str>, scopes: Option<&str>| {
        vec![
            ("x-user".to_owned(), Some("alice".to_owned())),
            ("x-user-email".to_owned(), email.map(str::to_owned)),
            ("x-user-scopes".to_owned(), scopes.map(str::to_owned)),
        ]
    };
    assert_eq!(
        identity(&d),
        want(Some("alice@example.com"), Some("read write"))
    );
    // Public and tokenless optional routes: every header present, none with a value.
    let none = vec![
        ("x-user".to_owned(), None),
        ("x-user-email".to_owned(), None),
        ("x-user-scopes".to_owned(), None),
    ];
    assert_eq!(identity(&Ask::get("/public/x").on(&rt).await), none);
    assert_eq!(identity(&Ask::get("/opt/x").on(&rt).await), none);
    // A public route looks at no token, even a valid one.
    let public = Ask {
        bearer: Some(&t),
        ..Ask::get("/public/x")
    };
    assert_eq!(identity(&public.on(&rt).await), none);
    // `query:` tokens come from the original query.
    let q = format!("a=1&access_token={t}");
    let ws = Ask {
        query: Some(&q),
        ..Ask::get("/ws")
    };
    assert_eq!(identity(&ws.on(&rt).await)[0].1.as_deref(), Some("alice"));
}

#[tokio::test]
async fn denials_are_the_spec_table() {
    let rt = runtime();
    let t = token(&rt, Some("read"));
    let d = Ask::get("/api/x").on(&rt).await;
    assert_eq!(
        denial(&d),
        (
            401,
            r#"{"detail": "Not authenticated"}"#.into(),
            Some("Bearer".into())
        )
    );
    let bad = Ask {
        bearer: Some("not.a.token"),
        ..Ask::get("/api/x")
    };
    let (status, body, www) = denial(&bad.on(&rt).await);
    assert_eq!(status, 401);
    assert_eq!(body, r#"{"detail": "Could not validate credentials"}"#);
    assert!(www.is_some_and(|w| w.starts_with("Bearer error=\"invalid_token\"")));
    let admin = Ask {
        host: Some("API.example.com."),
        bearer: Some(&t),
        ..Ask::get("/admin/users")
    };
    assert_eq!(
        denial(&admin.on(&rt).await),
        (
            403,
            r#"{"detail": "Not enough permissions"}"#.into(),
            Some("Bearer error=\"insufficient_scope\", scope=\"admin\"".into())
        )
    );
    // The host rule: the admin route does not match another host.
    let other = Ask {
        bearer: Some(&t),
        ..Ask::get("/admin/users")
    };
    assert_eq!(denial(&other.on(&rt).await).0, 404);
    let forbidden = (403, r#"{"detail": "Forbidden"}"#.to_owned(), None);
    assert_eq!(denial(&Ask::get("/deny/x").on(&rt).await), forbidden);
    let not_found = (404, r#"{"detail": "Not Found"}"#.to_owned(), None);
    assert_eq!(denial(&Ask::get("/nowhere").on(&rt).await), not_found);
    let bad_request = (400, r#"{"detail": "Bad Request"}"#.to_owned(), None);
    assert_eq!(denial(&Ask::get("/api/a%2Fb").on(&rt).await), bad_request);
    let no_host = Ask {
        host: None,
        ..Ask::get("/public/x")
    };
    assert_eq!(
        no_host.on(&rt).await.status(),
        200,
        "no host is no host rule"
    );
    let bad_host = Ask {
        host: Some("a@b"),
        ..Ask::get("/public/x")
    };
    assert_eq!(denial(&bad_host.on(&rt).await), bad_request);
}

#[tokio::test]
async fn judged_on_the_normalized_path() {
    let rt = runtime();
    // `/public/../api/x` is `/api/x`: protected, whatever the raw prefix says.
    let d = Ask::get("/public/../api/x").on(&rt).await;
    assert_eq!(denial(&d).0, 401);
    let d = Ask::get("/public/%2e%2e/api/x").on(&rt).await;
    assert_eq!(denial(&d).0, 401);
    let d = Ask::get("//public//x").on(&rt).await;
    assert_eq!(d.status(), 200);
}

/// With `[identity.assertion]` the answer carries the assertion header last: the
/// caller's assertion (`aud` the upstream's audience, or the route's name for a route
/// without upstream, SPEC §10), reused for the same caller and audience; `None` on a
/// public route and an optional route without token.
#[tokio::test]
async fn the_assertion_header_is_an_identity_header() {
    crate::install_crypto_providers();
    let dir = tempfile::tempdir().expect("dir");
    let pem = crate::auth::keys::generate_ed25519_pem().expect("key");
    std::fs::write(dir.path().join("a.pem"), pem).expect("write");
    let config = CONFIG.replacen(
        "url = \"echo:\"\n",
        "url = \"echo:\"\naudience = \"orders-api\"\n",
        1,
    ) + "[forward_auth]\nlisten = \"127.0.0.1:0\"\n\
           [identity.assertion]\nissuer = \"a\"\nttl = \"30s\"\n\
           [[issuers]]\nname = \"a\"\nissuer = \"https://assert/\"\nprivate_key = \"a.pem\"\n\
           [[routes]]\nname = \"bare\"\npath = \"/bare/**\"\n";
    let rt = runtime_in(dir.path(), &config);
    let t = token(&rt, Some("read"));
    let aud_of = |d: &Decided| {
        let all = identity(d);
        let (name, value) = all.last().expect("headers").clone();
        assert_eq!(name, "x-portcullis-assertion");
        let v = value.expect("an assertion");
        let payload = v.split('.').nth(1).expect("payload").to_owned();
        let c = crate::auth::claims::json_object(&payload).expect("claims");
        assert_eq!(
            (&c["iss"], &c["sub"]),
            (&"https://assert/".into(), &"alice".into())
        );
        assert_eq!(c["exp"].as_u64(), c["iat"].as_u64().map(|i| i + 30));
        (c["aud"].as_str().expect("aud").to_owned(), v)
    };
    let api = Ask {
        bearer: Some(&t),
        ..Ask::get("/api/x")
    };
    let (aud, first) = aud_of(&api.on(&rt).await);
    assert_eq!(aud, "orders-api");
    assert_eq!(aud_of(&api.on(&rt).await).1, first, "reused");
    let bare = Ask {
        bearer: Some(&t),
        ..Ask::get("/bare/x")
    };
    assert_eq!(aud_of(&bare.on(&rt).await).0, "bare");
    for path in ["/public/x", "/opt/x"] {
        let all = identity(&Ask::get(path).on(&rt).await);
        assert_eq!(
            all.last(),
            Some(&("x-portcullis-assertion".to_owned(), None)),
            "{path}"
        );
    }
}
