//! Forward authentication behind real ingresses (issue 17, SPEC §8): nginx
//! `auth_request`, Traefik v3 ForwardAuth and Caddy `forward_auth`, each started from
//! the files shipped in `deploy/forward-auth/` (only addresses substituted:
//! `support/ingress.rs`), a recording upstream behind it, and portcullis deciding on
//! its `[forward_auth]` listener with the `headers` convention that the shipped file
//! names. Every ingress runs the same table of cases ([`cases`]): allow with identity,
//! client-sent `X-User` / `X_User` never reaching the upstream on protected, optional
//! and public routes, every §4 denial reaching the client, path tricks judged on the
//! normalized original path, convention isolation (the oauth2-proxy#3506 shape: a
//! client-spoofed `X-Forwarded-Uri` through nginx on an `x-original` listener), and
//! failing closed when portcullis is gone.
//!
//! The Kubernetes-side files (ingress-nginx annotations, the Traefik CRDs, Istio's
//! provider and AuthorizationPolicy) cannot run here: they are validated against the
//! Kubernetes schemas (kubernetes-validate) and Traefik's and Istio's CRD schemas (the
//! @kubernetes-models npm packages), and tied to the files that do run (same identity
//! headers, same middlewares, same decision port).
#![allow(clippy::unwrap_used, clippy::expect_used)]

// The decision-listener harness (tests/forward_auth.rs uses all of it, this suite only
// `Decider::start`).
#[allow(dead_code)]
#[path = "support/forward_auth.rs"]
mod decisions;
#[path = "support/ingress.rs"]
mod ingress;
mod support;

use decisions::Decider;
use ingress::{deploy_dir, Ingress, Kind};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::dpop::verify_assertion;
use support::{claims, mint, now, spawn_upstream, token, Proxy, Reply, Req, Signer, ISS};

/// The identity headers of the shipped proxy.toml, which every ingress file copies
/// (the last one the signed assertion of `[identity.assertion]`, SPEC §10).
const IDENTITY: [&str; 3] = ["X-User", "X-User-Email", "X-Portcullis-Assertion"];

/// The assertion issuer's `issuer` in [`portcullis_body`].
const ASSERT_ISS: &str = "https://portcullis.assert/";

/// A client-sent assertion (unsigned): it must never reach the app.
const FORGED_ASSERTION: &str = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";

// ====================================================================== portcullis

/// The decision config: `[forward_auth]` on port 0 with `convention`, the shipped
/// proxy.toml's `[identity]` and `[identity.assertion]` (ES256 here), the test issuer,
/// and routes (none with an `upstream`: an assertion's `aud` is the route's name) for
/// every case of the table.
fn portcullis_body(convention: &str) -> String {
    let routes = format!(
        r#"
[identity]
header = "X-User"
claim = "sub"
[identity.claims_to_headers]
"X-User-Email" = "email"

[identity.assertion]
header = "X-Portcullis-Assertion"
issuer = "assertions"
ttl = "60s"

[[issuers]]
name = "assertions"
issuer = "{ASSERT_ISS}"
private_key = "assertions.pem"

{issuer}
[[routes]]
name = "public"
path = "/public/**"
access = "public"

[[routes]]
name = "optional"
path = "/optional/**"
access = "optional"

[[routes]]
name = "query"
path = "/query/**"
token_from = ["query:access_token"]

[[routes]]
name = "read-only"
path = "/ro/**"
methods = ["GET"]
access = "public"

[[routes]]
name = "write"
path = "/ro/**"

[[routes]]
name = "admin"
path = "/admin/**"
scopes = ["admin"]

[[routes]]
name = "closed"
path = "/deny/**"
access = "deny"

[[routes]]
name = "app"
path = "/app/**"
"#,
        issuer = support::hs_issuer()
    );
    decisions::config(convention, &routes)
}

/// portcullis deciding with `convention` (its decision listener on port 0).
async fn portcullis(convention: &str) -> Decider {
    let builder = Proxy::builder()
        .binary()
        .file("assertions.pem", &support::p256_key().private_pem);
    Decider::start(builder, &portcullis_body(convention)).await
}

// ====================================================================== the table

/// What the client must get.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Forwarded once, the app seeing this `X-User` (None: no value) and the
    /// matching `X-User-Email`, and no client-sent identity header in any spelling.
    Forwarded(Option<&'static str>),
    Unauthenticated,
    InvalidToken,
    Expired,
    Insufficient,
    Forbidden,
    NotFound,
    BadRequest,
}

struct Case {
    name: &'static str,
    req: Req,
    expect: Expect,
}

fn case(name: &'static str, req: Req, expect: Expect) -> Case {
    Case { name, req, expect }
}

/// Client-sent identity headers on every request: exact names and `_` spellings.
fn spoofed(req: Req) -> Req {
    req.header("X-User", "mallory")
        .header("X_User", "mallory")
        .header("x_user", "mallory")
        .header("X-User-Email", "mallory@evil.test")
        .header("X_User_Email", "mallory@evil.test")
        .header("X-User_Email", "mallory@evil.test")
        .header("X-Portcullis-Assertion", FORGED_ASSERTION)
        .header("X_Portcullis_Assertion", FORGED_ASSERTION)
        .header("X-Portcullis_Assertion", FORGED_ASSERTION)
}

fn alice() -> String {
    token("alice", json!({"email": "alice@example.com"}))
}

/// The table every ingress runs.
fn cases() -> Vec<Case> {
    use Expect::*;
    let good = alice();
    let admin = token(
        "root",
        json!({"email": "root@example.com", "scope": "admin"}),
    );
    let forged = mint(
        "HS256",
        Signer::Secret(b"not-the-secret-0123456789abcdef0123456789"),
        &claims(ISS, "alice"),
    );
    let mut old = claims(ISS, "alice");
    old["iat"] = json!(now() - 7200);
    old["exp"] = json!(now() - 3600);
    let expired = mint("HS256", Signer::Secret(support::SECRET.as_bytes()), &old);
    let get = |p: &str| spoofed(Req::get(p));
    vec![
        // Allow with identity; client-sent identity never reaches the app.
        case(
            "protected + token",
            get("/app/a").bearer(&good),
            Forwarded(Some("alice")),
        ),
        case(
            "admin + admin scope",
            get("/admin/x").bearer(&admin),
            Forwarded(Some("root")),
        ),
        case("public", get("/public/a"), Forwarded(None)),
        case(
            "public ignores a token",
            get("/public/a").bearer(&good),
            Forwarded(None),
        ),
        case("optional, no token", get("/optional/a"), Forwarded(None)),
        case(
            "optional + token",
            get("/optional/a").bearer(&good),
            Forwarded(Some("alice")),
        ),
        case(
            "query: token from the original URI",
            get(&format!("/query/a?x=1&access_token={good}")),
            Forwarded(Some("alice")),
        ),
        case("GET on the read-only route", get("/ro/a"), Forwarded(None)),
        // Every §4 denial.
        case("protected, no token", get("/app/a"), Unauthenticated),
        case(
            "forged signature",
            get("/app/a").bearer(&forged),
            InvalidToken,
        ),
        case("expired", get("/app/a").bearer(&expired), Expired),
        case(
            "optional + forged token",
            get("/optional/a").bearer(&forged),
            InvalidToken,
        ),
        case(
            "query route ignores the header",
            get("/query/a").bearer(&good),
            Unauthenticated,
        ),
        case("missing scope", get("/admin/x").bearer(&good), Insufficient),
        case("deny route", get("/deny/x").bearer(&admin), Forbidden),
        case("no route", get("/nowhere"), NotFound),
        case(
            "original method: POST falls through",
            spoofed(Req::post("/ro/a", "")),
            Unauthenticated,
        ),
        // Path tricks: judged on the normalized original path.
        case("/public/../app", get("/public/../app/a"), Unauthenticated),
        case(
            "/public/%2e%2e/app",
            get("/public/%2e%2e/app/a"),
            Unauthenticated,
        ),
        case("/public//../app", get("/public//../app/a"), Unauthenticated),
        case("encoded slash", get("/public/a%2Fb"), BadRequest),
        case("encoded backslash", get("/public/a%5Cb"), BadRequest),
        // Convention isolation: the other convention's headers change nothing.
        case(
            "oauth2-proxy#3506: spoofed X-Forwarded-Uri",
            get("/app/a")
                .header("X-Forwarded-Uri", "/public/a")
                .header("X-Forwarded-Method", "GET")
                .header("X-Forwarded-Host", "public.example.com"),
            Unauthenticated,
        ),
        case(
            "spoofed X-Original-URI / -URL",
            get("/app/a")
                .header("X-Original-URI", "/public/a")
                .header("X-Original-URL", "http://public.example.com/public/a")
                .header("X-Original-Method", "GET"),
            Unauthenticated,
        ),
        case(
            "spoofed headers pointing at a protected path",
            get("/public/a")
                .header("X-Forwarded-Uri", "/app/a")
                .header("X-Original-URI", "/app/a"),
            Forwarded(None),
        ),
    ]
}

/// The app must have seen exactly one request carrying `user` (None: no value) as its
/// identity, with a valid assertion for it (PyJWT against `jwks`; `aud` the route's
/// name, which in this table is the first segment of the path) or none, and no
/// identity header in a `_` spelling.
fn assert_identity(
    kind: Kind,
    name: &str,
    seen: &[support::Recorded],
    user: Option<&str>,
    jwks: &str,
) {
    assert_eq!(
        seen.len(),
        1,
        "{kind:?} [{name}]: forwarded {} times",
        seen.len()
    );
    let r = &seen[0];
    let email = user.map(|u| format!("{u}@example.com"));
    for (header, want) in [("x-user", user), ("x-user-email", email.as_deref())] {
        let got: Vec<&str> = r.header_all(header);
        match want {
            Some(v) => assert_eq!(got, vec![v], "{kind:?} [{name}]: {header} at the app"),
            None => assert!(
                got.iter().all(|v| v.is_empty()),
                "{kind:?} [{name}]: {header} at the app should have no value: {got:?}"
            ),
        }
    }
    let assertion: Vec<&str> = r.header_all("x-portcullis-assertion");
    match user {
        Some(u) => {
            assert_eq!(assertion.len(), 1, "{kind:?} [{name}]: {assertion:?}");
            let route = r.uri.trim_start_matches('/').split(['/', '?']).next();
            let v = verify_assertion(assertion[0], jwks, route.unwrap(), ASSERT_ISS);
            assert_eq!(v["claims"]["sub"], u, "{kind:?} [{name}]");
        }
        None => assert!(
            assertion.iter().all(|v| v.is_empty()),
            "{kind:?} [{name}]: an assertion without identity: {assertion:?}"
        ),
    }
    let folded: Vec<&(String, String)> = r
        .headers
        .iter()
        .filter(|(k, _)| k.contains('_'))
        .filter(|(k, _)| {
            IDENTITY
                .iter()
                .any(|i| k.replace('_', "-").eq_ignore_ascii_case(i))
        })
        .collect();
    assert!(
        folded.is_empty(),
        "{kind:?} [{name}]: a `_` spelling of an identity header reached the app: {folded:?}"
    );
}

/// A denial as the client saw it. Traefik and Caddy hand portcullis's answer over
/// unchanged; so does nginx through `@portcullis_denied` (deploy/forward-auth/nginx).
fn assert_denial(reply: &Reply, expect: Expect) {
    match expect {
        Expect::Unauthenticated => reply.assert_unauthenticated(),
        Expect::InvalidToken => reply.assert_invalid_token(),
        Expect::Expired => reply.assert_expired(),
        Expect::Insufficient => reply.assert_insufficient(Some("admin")),
        Expect::Forbidden => reply.assert_forbidden(),
        Expect::NotFound => reply.assert_not_found(),
        Expect::BadRequest => reply.assert_bad_request(),
        Expect::Forwarded(_) => unreachable!(),
    };
}

/// The `[forward_auth] headers` convention a shipped file says it pairs with.
fn convention_of(rel: &str) -> String {
    let text = std::fs::read_to_string(deploy_dir().join(rel)).unwrap();
    let found: BTreeSet<String> = text
        .match_indices("headers = \"")
        .filter_map(|(i, m)| text[i + m.len()..].split('"').next())
        .map(String::from)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "deploy/forward-auth/{rel} must name exactly one [forward_auth] headers convention: {found:?}"
    );
    found.into_iter().next().unwrap()
}

async fn run_table(kind: Kind, file: &str, convention: &str) {
    assert_eq!(convention_of(file), convention, "{file}");
    let app = spawn_upstream().await;
    let decider = portcullis(convention).await;
    let ingress = Ingress::start(kind, app.addr, decider.addr).await;
    let jwks = decider.proxy.url("/.well-known/jwks.json");
    app.take();
    for c in cases() {
        let reply = ingress.send(&c.req).await;
        let seen = app.take();
        let context = format!(
            "{kind:?} [{}]: {} {:?}\n--- ingress log\n{}\n{}",
            c.name,
            reply.status,
            reply.text(),
            ingress.log(),
            decider.proxy.logs()
        );
        match c.expect {
            Expect::Forwarded(user) => {
                assert_eq!(reply.status, 200, "{context}");
                assert_identity(kind, c.name, &seen, user, &jwks);
                // The ingress forwards the request that was decided, as sent.
                assert_eq!(
                    (seen[0].method.as_str(), seen[0].uri.as_str()),
                    (c.req.method.as_str(), c.req.target.as_str()),
                    "{context}"
                );
            }
            denial => {
                assert!(seen.is_empty(), "{context}\nforwarded: {seen:?}");
                eprintln!("{kind:?} [{}]: {}", c.name, reply.status);
                assert_denial(&reply, denial);
            }
        }
    }
    // portcullis gone: the ingress fails closed, even on a public route.
    drop(decider);
    let reply = ingress.send(&spoofed(Req::get("/public/a"))).await;
    assert!(
        reply.status >= 500,
        "{kind:?}: without portcullis, {} {:?}",
        reply.status,
        reply.text()
    );
    assert!(
        app.take().is_empty(),
        "{kind:?}: forwarded without a decision"
    );
}

#[tokio::test]
async fn nginx_auth_request_runs_the_table() {
    run_table(Kind::Nginx, "nginx/portcullis.conf", "x-original").await;
}

#[tokio::test]
async fn traefik_forward_auth_runs_the_table() {
    run_table(Kind::Traefik, "traefik/dynamic.yml", "x-forwarded").await;
}

#[tokio::test]
async fn caddy_forward_auth_runs_the_table() {
    run_table(Kind::Caddy, "caddy/Caddyfile", "x-forwarded").await;
}

// ====================================================================== manifests

fn tool(name: &str) -> PathBuf {
    let bin = std::env::var_os("PORTCULLIS_DEPLOY_TOOLS").map_or_else(
        || {
            let home = std::env::var_os("HOME").expect("HOME is set");
            Path::new(&home).join(".cache/portcullis-deploy-tools/bin")
        },
        PathBuf::from,
    );
    let path = bin.join(name);
    assert!(
        path.is_file(),
        "`{name}` not found at {}: run ./scripts/test-all.sh (deploy tools venv) or set \
         PORTCULLIS_DEPLOY_TOOLS",
        path.display()
    );
    path
}

fn run_ok(cmd: &mut Command, stdin: Option<&[u8]>, what: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot run {cmd:?}: {e}"));
    let input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        std::io::Write::write_all(&mut { input }, bytes).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The YAML documents of a shipped file, as JSON (the deploy venv's PyYAML).
fn docs(rel: &str) -> Vec<Value> {
    let text = std::fs::read(deploy_dir().join(rel)).unwrap();
    let script = "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)";
    let out = run_ok(
        Command::new(tool("python")).args(["-c", script]),
        Some(&text),
        &format!("YAML of {rel}"),
    );
    match serde_json::from_slice(&out.stdout).unwrap() {
        Value::Array(v) => v,
        other => panic!("{rel}: not a list of documents: {other}"),
    }
}

fn doc<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in {docs:?}"))
}

fn names(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn identity() -> BTreeSet<String> {
    IDENTITY.iter().map(|s| s.to_string()).collect()
}

/// Every spelling of `name` with at least one `-` written `_`.
fn underscore_spellings(name: &str) -> BTreeSet<String> {
    let dashes: Vec<usize> = name.match_indices('-').map(|(i, _)| i).collect();
    (1..1u32 << dashes.len())
        .map(|mask| {
            let mut s = name.as_bytes().to_vec();
            for (bit, &i) in dashes.iter().enumerate() {
                if mask & (1 << bit) != 0 {
                    s[i] = b'_';
                }
            }
            String::from_utf8(s).unwrap()
        })
        .collect()
}

/// The shipped proxy.toml's identity headers are the ones the ingress files copy, and
/// its decision listener port is the one the cluster files call.
#[test]
fn shipped_proxy_toml_matches_the_ingress_files() {
    let text = std::fs::read_to_string(deploy_dir().join("proxy.toml")).unwrap();
    let cfg: toml::Table = text.parse().unwrap();
    let mut headers = BTreeSet::from([cfg["identity"]["header"].as_str().unwrap().to_string()]);
    headers.extend(
        cfg["identity"]["claims_to_headers"]
            .as_table()
            .unwrap()
            .keys()
            .cloned(),
    );
    headers.insert(
        cfg["identity"]["assertion"]["header"]
            .as_str()
            .unwrap()
            .to_string(),
    );
    assert_eq!(headers, identity());
    let listen = cfg["forward_auth"]["listen"].as_str().unwrap();
    assert!(listen.ends_with(":9000"), "{listen}");
    for r in cfg["routes"].as_array().unwrap() {
        assert!(
            r.get("upstream").is_none(),
            "a decision-only route has no upstream: {r}"
        );
    }
}

#[test]
fn nginx_and_caddy_copy_and_strip_every_identity_header() {
    let nginx = std::fs::read_to_string(deploy_dir().join("nginx/portcullis.conf")).unwrap();
    let caddy = std::fs::read_to_string(deploy_dir().join("caddy/Caddyfile")).unwrap();
    for h in IDENTITY {
        let var = h.to_ascii_lowercase().replace('-', "_");
        assert!(
            nginx.contains(&format!("$upstream_http_{var};"))
                && nginx.contains(&format!("proxy_set_header {h} $portcullis_")),
            "nginx/portcullis.conf does not copy {h}"
        );
        assert!(
            caddy.contains(&format!("request_header -{h}\n")),
            "Caddyfile strips {h}"
        );
    }
    assert!(
        nginx.contains("underscores_in_headers off;")
            && nginx.contains("ignore_invalid_headers on;")
    );
    assert!(
        caddy.contains("request_header -*_*\n"),
        "Caddyfile drops `_` header names"
    );
    let copy = caddy
        .lines()
        .find_map(|l| l.trim().strip_prefix("copy_headers "))
        .expect("Caddyfile copy_headers");
    let copied: BTreeSet<String> = copy.split_whitespace().map(String::from).collect();
    assert_eq!(copied, identity(), "Caddyfile copy_headers");
}

/// The Traefik CRDs are the file-provider middlewares the table runs, and strip every
/// `_` spelling of every identity header.
#[test]
fn traefik_crds_are_the_tested_middlewares() {
    let dynamic = &docs("traefik/dynamic.yml")[0]["http"];
    let crds = docs("traefik/middleware.yaml");
    let file_fa = &dynamic["middlewares"]["portcullis"]["forwardAuth"];
    let crd_fa = &doc(&crds, "Middleware", "portcullis")["spec"]["forwardAuth"];
    assert_eq!(names(&file_fa["authResponseHeaders"]), identity());
    let strip = |v: &Value| v.clone();
    let mut a = strip(file_fa);
    let mut b = strip(crd_fa);
    a["address"] = Value::Null;
    b["address"] = Value::Null;
    assert_eq!(a, b, "forwardAuth: file provider vs CRD (address aside)");
    assert!(crd_fa["address"].as_str().unwrap().ends_with(":9000/"));
    let file_strip = &dynamic["middlewares"]["portcullis-strip"];
    let crd_strip = &doc(&crds, "Middleware", "portcullis-strip")["spec"];
    assert_eq!(
        file_strip, crd_strip,
        "portcullis-strip: file provider vs CRD"
    );
    let stripped: BTreeSet<String> = file_strip["headers"]["customRequestHeaders"]
        .as_object()
        .unwrap()
        .iter()
        .inspect(|(_, v)| assert_eq!(**v, json!(""), "an empty value deletes"))
        .map(|(k, _)| k.clone())
        .collect();
    let want: BTreeSet<String> = IDENTITY
        .iter()
        .flat_map(|h| underscore_spellings(h))
        .collect();
    assert_eq!(
        stripped, want,
        "every `_` spelling of every identity header"
    );
    for router in ["app", "portcullis-login"] {
        assert_eq!(
            dynamic["routers"][router]["middlewares"],
            json!(["portcullis-strip", "portcullis"]),
            "{router}: strip first, then decide"
        );
    }
    // [login] (SPEC §9): a refreshed session's cookie, and each of its chunks, rides
    // on the app's response (tests/forward_auth_login.rs runs it).
    let mut cookies = BTreeSet::from(["portcullis_session".to_string()]);
    cookies.extend((1..=8).map(|i| format!("portcullis_session_{i}")));
    assert_eq!(names(&file_fa["addAuthCookiesToResponse"]), cookies);
    let route = &doc(&crds, "IngressRoute", "orders")["spec"]["routes"][0]["middlewares"];
    assert_eq!(
        *route,
        json!([{"name": "portcullis-strip"}, {"name": "portcullis"}])
    );
}

/// ingress-nginx copies every identity header from the decision, keeps `_` header
/// names dropped, and calls the decision Service's port.
#[test]
fn ingress_nginx_annotations_copy_every_identity_header() {
    let docs = docs("ingress-nginx/ingress.yaml");
    let ann = &doc(&docs, "Ingress", "orders")["metadata"]["annotations"];
    let copied: BTreeSet<String> = ann["nginx.ingress.kubernetes.io/auth-response-headers"]
        .as_str()
        .unwrap()
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    assert_eq!(copied, identity());
    let url = ann["nginx.ingress.kubernetes.io/auth-url"]
        .as_str()
        .unwrap();
    assert_eq!(url, service_url("http", "/"));
    let cm = &doc(&docs, "ConfigMap", "ingress-nginx-controller")["data"];
    assert_eq!(cm["enable-underscores-in-headers"], "false");
    assert_eq!(cm["ignore-invalid-headers"], "true");
}

/// `SCHEME://portcullis-forward-auth.NS.svc.cluster.local:PORT` + `suffix`, from the
/// shipped Service.
fn service_url(scheme: &str, suffix: &str) -> String {
    let (host, port) = service_host_port();
    format!("{scheme}://{host}:{port}{suffix}")
}

fn service_host_port() -> (String, u64) {
    let docs = docs("kubernetes/service.yaml");
    let svc = doc(&docs, "Service", "portcullis-forward-auth");
    let ns = svc["metadata"]["namespace"].as_str().unwrap();
    let port = svc["spec"]["ports"][0]["port"].as_u64().unwrap();
    (
        format!("portcullis-forward-auth.{ns}.svc.cluster.local"),
        port,
    )
}

/// Istio: the provider the AuthorizationPolicy names is the mesh config's gRPC
/// ext_authz provider, pointing at the decision Service, failing closed. meshConfig is
/// not covered by any CRD schema (IstioOperator's `spec` is free-form in Istio's CRD),
/// so its provider entry is checked here against the fields of Istio's
/// `MeshConfig.ExtensionProvider.EnvoyExternalAuthorizationGrpcProvider`.
#[test]
fn istio_policy_uses_the_grpc_provider() {
    let mesh = docs("istio/mesh-config.yaml");
    let providers = &doc(&mesh, "IstioOperator", "portcullis-ext-authz")["spec"]["meshConfig"]
        ["extensionProviders"];
    let policies = docs("istio/authorization-policy.yaml");
    let policy = &doc(&policies, "AuthorizationPolicy", "portcullis")["spec"];
    assert_eq!(policy["action"], "CUSTOM");
    assert_eq!(policy["rules"], json!([{}]), "every request is decided");
    let name = policy["provider"]["name"].as_str().unwrap();
    let provider = providers
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no extension provider {name:?}: {providers}"));
    let keys: Vec<&String> = provider.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        ["envoyExtAuthzGrpc", "name"],
        "one gRPC ext_authz provider"
    );
    let grpc = provider["envoyExtAuthzGrpc"].as_object().unwrap();
    const FIELDS: [&str; 8] = [
        "service",
        "port",
        "timeout",
        "pathPrefix",
        "failOpen",
        "clearRouteCache",
        "statusOnError",
        "includeRequestBodyInCheck",
    ];
    for k in grpc.keys() {
        assert!(
            FIELDS.contains(&k.as_str()),
            "envoyExtAuthzGrpc has no field {k:?}"
        );
    }
    let (host, port) = service_host_port();
    assert_eq!(grpc["service"], host.as_str());
    assert_eq!(grpc["port"], port);
    assert_eq!(grpc["failOpen"], false, "fail closed");
    let filter = &doc(
        &policies,
        "EnvoyFilter",
        "portcullis-drop-underscore-headers",
    )["spec"];
    let patch = &filter["configPatches"][0]["patch"]["value"]["typed_config"];
    assert_eq!(
        patch["common_http_protocol_options"]["headers_with_underscores_action"],
        "DROP_HEADER"
    );
    assert_eq!(
        filter["workloadSelector"]["labels"],
        policy["selector"]["matchLabels"]
    );
}

/// The ingress-nginx Ingress and ConfigMap and the decision Service against the
/// Kubernetes schemas (kubernetes-validate --strict: unknown fields are errors).
#[test]
fn kubernetes_manifests_validate() {
    for v in ["1.30.0", "1.37.0"] {
        let out = run_ok(
            Command::new(tool("kubernetes-validate"))
                .args(["--strict", "--kubernetes-version", v])
                .arg(deploy_dir().join("ingress-nginx/ingress.yaml"))
                .arg(deploy_dir().join("kubernetes/service.yaml")),
            None,
            &format!("kubernetes-validate --strict -k {v}"),
        );
        let log = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            log.matches(" passed for resource ").count(),
            3,
            "{v}:\n{log}"
        );
    }
}

/// The Traefik CRDs and the Istio resources against Traefik's and Istio's CRD schemas
/// (the @kubernetes-models npm packages, installed into target/k8s-models): each
/// model's schema validator, and TypeScript's excess-property check against the
/// model's interface, so that an unknown or misspelt field fails too
/// (tests/forward_auth_support/crds.mjs; IstioOperator's `spec` is free-form there).
#[test]
fn custom_resources_validate_against_their_crd_schemas() {
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/k8s-models");
    assert!(
        models
            .join("node_modules/@kubernetes-models/istio")
            .is_dir()
            && models
                .join("node_modules/@kubernetes-models/traefik")
                .is_dir(),
        "{} lacks @kubernetes-models/istio and /traefik: run ./scripts/test-all.sh",
        models.display()
    );
    let mut all = Vec::new();
    for rel in [
        "traefik/middleware.yaml",
        "istio/mesh-config.yaml",
        "istio/authorization-policy.yaml",
    ] {
        all.extend(docs(rel));
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/forward_auth_support/crds.mjs");
    let input = serde_json::to_vec(&all).unwrap();
    let out = run_ok(
        Command::new("node").arg(&script).arg(&models),
        Some(&input),
        "CRD schema validation",
    );
    let log = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        log.lines().filter(|l| l.starts_with("ok ")).count(),
        all.len(),
        "{log}"
    );
    // The validator refuses what a schema forbids and a misspelt field: it validates.
    let mut bad_action = doc(&all, "AuthorizationPolicy", "portcullis").clone();
    bad_action["spec"]["action"] = json!("CUSTOMISE");
    let mut misspelt = doc(&all, "Middleware", "portcullis").clone();
    let fa = misspelt["spec"]["forwardAuth"].as_object_mut().unwrap();
    let headers = fa.remove("authResponseHeaders").unwrap();
    fa.insert("authResponseHeader".into(), headers);
    for bad in [bad_action, misspelt] {
        let mut child = Command::new("node")
            .arg(&script)
            .arg(&models)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let input = serde_json::to_vec(&[&bad]).unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), &input).unwrap();
        assert!(!child.wait().unwrap().success(), "must be refused: {bad}");
    }
}

/// The README's "Behind an existing ingress" blocks are excerpts of the shipped files
/// (the ones the tests above run and validate), so the README cannot drift from them.
#[test]
fn readme_ingress_blocks_are_the_shipped_files() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme
        .find("\n## Behind an existing ingress\n")
        .expect("README.md: section `Behind an existing ingress`");
    let section = &readme[start + 1..];
    let section = section[3..]
        .find("\n## ")
        .map_or(section, |end| &section[..end + 3]);
    let files: Vec<(String, String)> = [
        "nginx/portcullis.conf",
        "ingress-nginx/ingress.yaml",
        "traefik/dynamic.yml",
        "caddy/Caddyfile",
        "istio/mesh-config.yaml",
        "istio/authorization-policy.yaml",
    ]
    .iter()
    .map(|rel| {
        (
            rel.to_string(),
            std::fs::read_to_string(deploy_dir().join(rel)).unwrap(),
        )
    })
    .collect();
    let mut blocks = 0;
    let mut rest = section;
    while let Some(open) = rest.find("\n```") {
        let after = &rest[open + 4..];
        let (lang, body) = after.split_once('\n').unwrap();
        let close = body.find("\n```").expect("an unclosed block");
        let text = &body[..=close];
        rest = &body[close + 4..];
        if !["nginx", "yaml", "caddyfile"].contains(&lang) {
            continue;
        }
        blocks += 1;
        assert!(
            files.iter().any(|(_, f)| f.contains(text)),
            "README.md ```{lang} block is not an excerpt of a deploy/forward-auth/ file:\n{text}"
        );
    }
    assert_eq!(blocks, 6, "one block per ingress (two for Istio)");
}
