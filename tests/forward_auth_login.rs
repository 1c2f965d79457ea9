//! Browser sign-in (SPEC §9) behind the decision listener (SPEC §8): the ingress
//! forwards, portcullis decides, and a `login = true` route sends a browser to the
//! provider through the ingress; the callback and logout arrive as decision requests
//! and are answered by the very login code of the main listener, every `Location`
//! absolute on the original scheme and host (an ingress resolves a relative one
//! against the decision listener's address: traefik/traefik#11313).
//!
//! End to end through a real Traefik v3 running the shipped
//! `deploy/forward-auth/traefik/` files (`support/ingress.rs`), a real OpenID Connect
//! provider (npm `oidc-provider`, [`support::oidc`]) and Debian's headless chromium
//! (`tests/login_support/signin.mjs`, the same page script as tests/login.rs). The
//! decision listener alone (no ingress: the requests Traefik or Envoy would send) for
//! the scheme and host of every redirect, the bad callbacks and the gRPC answers,
//! against the tests' own provider ([`support::craft_idp`]).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[allow(dead_code)]
#[path = "support/forward_auth.rs"]
mod decisions;
#[allow(dead_code)]
#[path = "support/ingress.rs"]
mod ingress;
mod support;

use decisions::Decider;
use ingress::{Ingress, Kind};
use serde_json::{json, Value};
use support::cookie_client::{query_param, sign_in, CookieClient};
use support::craft_idp::{CraftIdp, IdToken};
use support::oidc::{OidcProvider, CLIENT_ID, CLIENT_SECRET};
use support::{spawn_upstream_with, ProxyBuilder, Reply, Req, UpReply, Upstream};

const COOKIE_SECRET: &str = "cookie-secret-for-forward-auth-login-0123456789";

/// The decision config (`headers = convention`): the shipped identity headers,
/// `[login]` at issuer `idp` for `client`, and routes: `/public/**` public, `/**`
/// protected with `login = true` (no upstream: the ingress forwards).
fn body(convention: &str, issuer_toml: &str, client: &str, secret: &str) -> String {
    decisions::config(
        convention,
        &format!(
            "[identity]\nheader = \"X-User\"\nclaim = \"sub\"\n\
             [identity.claims_to_headers]\n\"X-User-Email\" = \"email\"\n\
             {issuer_toml}\n[login]\nissuer = \"idp\"\nclient_id = \"{client}\"\n\
             client_secret = \"{secret}\"\ncookie_secret = \"{COOKIE_SECRET}\"\n\
             scopes = [\"openid\", \"email\", \"profile\"]\n\n\
             [[routes]]\npath = \"/public/**\"\naccess = \"public\"\n\n\
             [[routes]]\npath = \"/**\"\nlogin = true\n"
        ),
    )
}

/// The app behind the ingress: shows the identity headers it received as JSON.
async fn app() -> Upstream {
    spawn_upstream_with(|r| {
        let page = json!({
            "path": r.uri,
            "x-user": r.header("x-user"),
            "x-user-email": r.header("x-user-email"),
        });
        UpReply {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: page.to_string().into(),
        }
    })
    .await
}

/// portcullis deciding for a real Traefik (the shipped files) in front of [`app`],
/// signing in at the real provider with the confidential client.
struct Stack {
    idp: OidcProvider,
    decider: Decider,
    app: Upstream,
    traefik: Ingress,
}

impl Stack {
    async fn start(access_ttl: u64) -> Stack {
        let idp = OidcProvider::start(access_ttl, 0).await;
        let text = body(
            "x-forwarded",
            &idp.issuer_toml("idp"),
            CLIENT_ID,
            CLIENT_SECRET,
        );
        let decider =
            Decider::start(ProxyBuilder::new().env("TEST_PROXY_LOG", "debug"), &text).await;
        let app = app().await;
        let traefik = Ingress::start(Kind::Traefik, app.addr, decider.addr).await;
        Stack {
            idp,
            decider,
            app,
            traefik,
        }
    }

    /// `http://<Traefik><path>`: what the browser sees.
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.traefik.addr)
    }

    fn logs(&self) -> String {
        format!(
            "--- portcullis\n{}\n--- traefik\n{}\n--- provider\n{}",
            self.decider.proxy.logs(),
            self.traefik.log(),
            self.idp.log()
        )
    }
}

fn page(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|_| panic!("the app's JSON page: {body}"))
}

// ---------------------------------------------------------------- through Traefik

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_through_traefik_and_logs_out() {
    let s = Stack::start(3600).await;
    let modules = support::browser::node_modules(&[]);
    let out = support::browser::run_script(
        "login_support/signin.mjs",
        &modules,
        &[
            ("START_URL", s.url("/app/page?tab=2")),
            ("APP_ORIGIN", s.url("")),
            ("LOGOUT_URL", s.url("/_portcullis/logout")),
            ("LOGIN", "alice".into()),
        ],
    )
    .await;
    assert_eq!(out["ok"], true, "{out:#}\n{}", s.logs());
    assert!(out["loginPage"]
        .as_str()
        .unwrap()
        .starts_with(&s.idp.issuer));
    assert_eq!(
        out["appUrl"],
        s.url("/app/page?tab=2"),
        "back at the saved path, on Traefik (not on the decision listener)"
    );
    let shown = page(out["appText"].as_str().unwrap());
    assert_eq!(shown["x-user"], "alice", "{shown:#}");
    assert_eq!(shown["x-user-email"], "alice@example.com");
    assert_eq!(shown["path"], "/app/page?tab=2");
    support::browser::assert_session_cookie(&out);
    // Logout through Traefik: the provider's end-session page, then back at `/`,
    // which (no session any more) is the provider's login form again.
    assert!(out["logoutPage"]
        .as_str()
        .unwrap()
        .starts_with(&s.idp.issuer));
    assert_eq!(out["againHasLoginForm"], true, "{out:#}\n{}", s.logs());
    assert_eq!(s.app.last().header("x-user"), Some("alice"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_traefik_xhr_gets_401_and_the_callback_returns_to_traefik() {
    let s = Stack::start(3600).await;
    let c = CookieClient::new();
    let x = c.request(&s.url("/app"), None, false).await;
    assert_eq!(x.status, 401, "an XHR gets the §4 401: {x:?}");
    assert!(x.body.contains("Not authenticated"));
    assert!(x.location.is_none());
    let public = c.request(&s.url("/public/x"), None, true).await;
    assert_eq!(public.status, 200);

    let hops = sign_in(&c, &s.url("/app?x=1&y=2"), "bob").await;
    let first = &hops[0];
    assert_eq!(first.status, 302, "{hops:#?}\n{}", s.logs());
    let auth = first.location.clone().unwrap();
    assert!(
        auth.starts_with(&format!("{}/auth?", s.idp.issuer)),
        "{auth}"
    );
    assert_eq!(
        query_param(&auth, "redirect_uri").unwrap(),
        s.url("/_portcullis/callback"),
        "redirect_uri on the original host (Traefik's X-Forwarded-Host)"
    );
    assert!(first
        .set_cookies
        .iter()
        .any(|c| c.starts_with("portcullis_session_login=") && c.contains("HttpOnly")));
    let back = hops
        .iter()
        .find(|h| h.url.starts_with(&s.url("/_portcullis/callback?")))
        .expect("the callback through Traefik");
    assert_eq!(back.status, 302, "{back:?}\n{}", s.logs());
    assert_eq!(
        back.location.as_deref(),
        Some(s.url("/app?x=1&y=2").as_str()),
        "an absolute Location on Traefik, never the decision listener's address"
    );
    assert!(back
        .set_cookies
        .iter()
        .any(|c| c.starts_with("portcullis_session=") && !c.contains("Max-Age=0")));
    let app = hops.last().unwrap();
    assert_eq!(page(&app.body)["x-user"], "bob");

    // The session authenticates an XHR too; logout through Traefik ends it.
    let again = c.request(&s.url("/app/data"), None, false).await;
    assert_eq!(again.status, 200);
    assert_eq!(page(&again.body)["x-user"], "bob");
    let out = c.request(&s.url("/_portcullis/logout"), None, true).await;
    assert_eq!(out.status, 302);
    assert!(out
        .location
        .as_deref()
        .unwrap()
        .starts_with(&format!("{}/session/end", s.idp.issuer)));
    assert!(out
        .set_cookies
        .iter()
        .any(|c| c.starts_with("portcullis_session=;") && c.contains("Max-Age=0")));
    assert_eq!(c.request(&s.url("/app"), None, false).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refreshed_session_cookie_reaches_the_browser_through_traefik() {
    // Access tokens live 1 s: the next request after 2 s refreshes the session.
    let s = Stack::start(1).await;
    let c = CookieClient::new();
    sign_in(&c, &s.url("/app"), "dave").await;
    let before = c.cookies()["portcullis_session"].clone();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = c.request(&s.url("/app/after"), None, false).await;
    assert_eq!(r.status, 200, "{r:?}\n{}", s.logs());
    assert_eq!(page(&r.body)["x-user"], "dave");
    assert!(
        r.set_cookies
            .iter()
            .any(|c| c.starts_with("portcullis_session=") && !c.contains("Max-Age=0")),
        "the refreshed cookie on the app's response (addAuthCookiesToResponse): {r:?}"
    );
    assert_ne!(c.cookies()["portcullis_session"], before);
    assert_eq!(s.idp.counts().await.0, 1, "one refresh at the provider");
}

// ------------------------------------------------------ the decision listener alone

/// A decision request as Traefik sends it for `method uri` at `proto://host`.
fn asked(method: &str, uri: &str, host: &str, proto: &str) -> Req {
    Req::get("/")
        .header("X-Forwarded-Method", method)
        .header("X-Forwarded-Uri", uri)
        .header("X-Forwarded-Host", host)
        .header("X-Forwarded-Proto", proto)
}

fn navigation(r: Req) -> Req {
    r.header("Accept", "text/html,application/xhtml+xml")
}

/// The `Set-Cookie` of `name` (a value set, or cleared with `cleared`).
fn set_cookie<'a>(r: &'a Reply, name: &str, cleared: bool) -> Option<&'a str> {
    r.header_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")) && c.contains("Max-Age=0") == cleared)
}

/// `NAME=value` of a `Set-Cookie`.
fn pair(set_cookie: &str) -> &str {
    set_cookie.split(';').next().unwrap()
}

/// Starts a sign-in on the decision listener at `https://{host}{uri}`: the provider's
/// (state, nonce) and the login cookie.
async fn begin(d: &Decider, host: &str, uri: &str) -> (String, String, String) {
    let r = d.send(&navigation(asked("GET", uri, host, "https"))).await;
    assert_eq!(r.status, 302, "{r:?}\n{}", d.proxy.logs());
    let loc = r.header("location").unwrap();
    let login = set_cookie(&r, "portcullis_session_login", false).expect("a login cookie");
    assert!(login.contains("Secure"), "https at the ingress: {login}");
    (
        query_param(loc, "state").unwrap(),
        query_param(loc, "nonce").unwrap(),
        pair(login).to_owned(),
    )
}

/// The provider's answer at `https://{host}`: `method` on the callback with `code`
/// and `state`, and the login cookie `login`.
async fn callback(
    d: &Decider,
    method: &str,
    host: &str,
    code: &str,
    state: &str,
    login: &str,
) -> Reply {
    d.send(
        &asked(
            method,
            &format!("/_portcullis/callback?code={code}&state={state}"),
            host,
            "https",
        )
        .header("Cookie", login),
    )
    .await
}

/// The provider `craft-app` (secret `s3cret`) and a decision listener of `builder`
/// signing in with it, the forwarded request read by `convention`.
async fn craft_decider(builder: ProxyBuilder, convention: &str) -> (CraftIdp, Decider) {
    let idp = CraftIdp::start("craft-app").await;
    let d = Decider::start(
        builder,
        &body(convention, &idp.issuer_toml("idp"), "craft-app", "s3cret"),
    )
    .await;
    (idp, d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_redirect_is_absolute_on_the_original_scheme_and_host() {
    let (idp, d) = craft_decider(ProxyBuilder::new(), "x-forwarded").await;
    let host = "app.example:8443";
    let r = d
        .send(&navigation(asked("GET", "/app/x?q=1", host, "https")))
        .await;
    assert_eq!(r.status, 302, "{r:?}\n{}", d.proxy.logs());
    let loc = r.header("location").unwrap();
    assert!(
        loc.starts_with(&format!("{}/authorize?", idp.issuer)),
        "{loc}"
    );
    assert_eq!(
        query_param(loc, "redirect_uri").as_deref(),
        Some("https://app.example:8443/_portcullis/callback")
    );
    // Not a navigation: the §4 401, never a redirect.
    let xhr = d.send(&asked("GET", "/app/x", host, "https")).await;
    xhr.assert_unauthenticated();

    let (state, nonce, login) = begin(&d, host, "/app/x?q=1").await;
    let code = idp.issue_code(&nonce, IdToken::Good);
    let cb = callback(&d, "GET", host, &code, &state, &login).await;
    assert_eq!(cb.status, 302, "{cb:?}\n{}", d.proxy.logs());
    assert_eq!(
        cb.header("location"),
        Some("https://app.example:8443/app/x?q=1")
    );
    assert!(cb.body.is_empty());
    let session = set_cookie(&cb, "portcullis_session", false).expect("a session");
    assert!(session.contains("Secure") && session.contains("HttpOnly"));
    assert!(set_cookie(&cb, "portcullis_session_login", true).is_some());
    let exchange = idp.token_requests().pop().unwrap();
    let form = String::from_utf8_lossy(&exchange.body).into_owned();
    assert!(
        form.contains("app.example%3A8443%2F_portcullis%2Fcallback"),
        "the code exchange names the same redirect_uri: {form}"
    );

    // The session authenticates decisions; logout answers on the original host too
    // (this provider has no end_session_endpoint: back to `/`).
    let ok = d
        .send(&asked("GET", "/app/y", host, "https").header("Cookie", pair(session)))
        .await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.header("x-user"), Some("carol"));
    let out = d
        .send(&asked("POST", "/_portcullis/logout", host, "https").header("Cookie", pair(session)))
        .await;
    assert_eq!(out.status, 302);
    assert_eq!(out.header("location"), Some("https://app.example:8443/"));
    assert!(set_cookie(&out, "portcullis_session", true).is_some());

    // A return path that looks like another host stays a path on this one.
    let (state, nonce, login) = begin(&d, host, "//evil.example/x").await;
    let code = idp.issue_code(&nonce, IdToken::Good);
    let cb = callback(&d, "GET", host, &code, &state, &login).await;
    assert_eq!(cb.status, 302);
    let loc = cb.header("location").unwrap();
    assert!(loc.starts_with("https://app.example:8443/"), "{loc}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_original_url_names_the_scheme_and_host_of_the_redirect() {
    let (_idp, d) = craft_decider(ProxyBuilder::new(), "x-original").await;
    let r = d
        .send(
            &Req::get("/")
                .header("X-Original-Method", "GET")
                .header("X-Original-URL", "https://shop.example/cart?id=7")
                .header("Accept", "text/html"),
        )
        .await;
    assert_eq!(r.status, 302, "{r:?}\n{}", d.proxy.logs());
    assert_eq!(
        query_param(r.header("location").unwrap(), "redirect_uri").as_deref(),
        Some("https://shop.example/_portcullis/callback")
    );
    assert!(set_cookie(&r, "portcullis_session_login", false)
        .unwrap()
        .contains("Secure"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_callbacks_on_the_decision_listener_are_400_without_a_session() {
    // The binary: its access lines and log are read.
    let (idp, d) = craft_decider(ProxyBuilder::new().binary(), "x-forwarded").await;
    let host = "app.example";
    let (state, nonce, login) = begin(&d, host, "/app").await;
    let code = idp.issue_code(&nonce, IdToken::Good);
    let cases = [
        (
            "wrong state",
            format!("code={code}&state=forged"),
            Some(&login),
        ),
        (
            "no login cookie",
            format!("code={code}&state={state}"),
            None,
        ),
        (
            "error parameter",
            format!("error=access_denied&state={state}"),
            Some(&login),
        ),
        (
            "foreign code",
            format!("code=never-issued&state={state}"),
            Some(&login),
        ),
    ];
    for (what, query, cookie) in cases {
        let mut req = navigation(asked(
            "GET",
            &format!("/_portcullis/callback?{query}"),
            host,
            "https",
        ));
        if let Some(c) = cookie {
            req = req.header("Cookie", c);
        }
        let r = d.send(&req).await;
        r.assert_bad_request();
        assert!(r.header("location").is_none(), "{what}: no redirect");
        assert!(
            set_cookie(&r, "portcullis_session", false).is_none(),
            "{what}: no session"
        );
    }
    // The callback is a GET: another method is a 400 too.
    let post = callback(&d, "POST", host, &code, &state, &login).await;
    post.assert_bad_request();
    let line = d
        .access_lines()
        .into_iter()
        .rev()
        .find(|l| l["route"] == "builtin:login_callback")
        .expect("an access line for the callback");
    assert_eq!(line["status"], 400);
    let logs = d.proxy.logs();
    assert!(!logs.contains(&code), "no code in the logs");
    assert!(!logs.contains(pair(&login).split_once('=').unwrap().1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_check_answers_the_sign_in_with_every_cookie_appended() {
    use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
    use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
    use envoy_types::pb::envoy::service::auth::v3::CheckResponse;
    use support::grpc;

    fn redirect(r: &CheckResponse) -> (i32, Vec<(String, String, bool)>) {
        assert_eq!(r.status.as_ref().unwrap().code, grpc::UNAUTHENTICATED);
        let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
            panic!("{r:?}")
        };
        let headers = d
            .headers
            .iter()
            .map(|o| {
                let h = o.header.as_ref().unwrap();
                let append = o.append_action == HeaderAppendAction::AppendIfExistsOrAdd as i32;
                (h.key.clone(), h.value.clone(), append)
            })
            .collect();
        (d.status.as_ref().unwrap().code, headers)
    }
    fn find<'a>(h: &'a [(String, String, bool)], key: &str) -> Vec<&'a (String, String, bool)> {
        h.iter().filter(|(k, _, _)| k == key).collect()
    }

    let (idp, d) = craft_decider(ProxyBuilder::new(), "envoy").await;
    let mut c = grpc::client(d.addr).await;
    let html = [("accept", "text/html")];
    let r = grpc::ask(&mut c, grpc::check("GET", "shop.example", "/cart", &html)).await;
    let (status, headers) = redirect(&r);
    assert_eq!(status, 302);
    let loc = &find(&headers, "location")[0].1;
    assert_eq!(
        query_param(loc, "redirect_uri").as_deref(),
        Some("https://shop.example/_portcullis/callback")
    );
    let login = find(&headers, "set-cookie")
        .into_iter()
        .find(|(_, v, _)| v.starts_with("portcullis_session_login="))
        .expect("the login cookie");
    assert!(login.2, "Set-Cookie appended, not overwritten");
    let (state, nonce) = (
        query_param(loc, "state").unwrap(),
        query_param(loc, "nonce").unwrap(),
    );
    let code = idp.issue_code(&nonce, IdToken::Good);
    let cookie = [("cookie", pair(&login.1))];
    let path = format!("/_portcullis/callback?code={code}&state={state}");
    let r = grpc::ask(&mut c, grpc::check("GET", "shop.example", &path, &cookie)).await;
    let (status, headers) = redirect(&r);
    assert_eq!(status, 302, "{r:?}\n{}", d.proxy.logs());
    assert_eq!(find(&headers, "location")[0].1, "https://shop.example/cart");
    let cookies = find(&headers, "set-cookie");
    assert!(
        cookies.len() >= 2,
        "session and cleared login cookie: {cookies:?}"
    );
    assert!(cookies.iter().all(|(_, _, append)| *append));
}
