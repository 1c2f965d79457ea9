//! Browser sign-in (SPEC §9) end to end, against a real OpenID Connect provider (npm
//! `oidc-provider`, tests/login_support/provider.mjs) and the real `portcullis`
//! binary; the whole sign-in also in Debian's headless chromium
//! (tests/login_support/signin.mjs). The HTTP-level cases use a cookie-jar client
//! ([`support::cookie_client`]). The callback's bad-ID-token cases need tokens a real
//! provider never mints: they run against the tests' own small provider
//! ([`support::craft_idp`]: a real HTTP server with discovery, JWKS and a token
//! endpoint answering crafted, really signed ID tokens).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use support::cookie_client::{query_param, CookieClient, Hop};
use support::craft_idp::{CraftIdp, IdToken};
use support::oidc::{OidcProvider, CLIENT_ID, CLIENT_SECRET, PUBLIC_ID};
use support::{Proxy, ProxyBuilder};

const COOKIE_SECRET: &str = "cookie-secret-for-the-login-tests-0123456789";

/// `[login]` for `client` (with `secret` unless public) plus `extra` lines, an echo
/// upstream, and routes: `/api/**` protected, `/open/**` optional, `/admin/**` needing
/// scope `admin`, `/staff/**` needing `groups = staff`, `/**` protected.
fn config(issuer_toml: &str, client: &str, secret: Option<&str>, extra: &str) -> String {
    let secret = secret.map_or(String::new(), |s| format!("client_secret = \"{s}\"\n"));
    format!(
        "[upstreams.app]\nurl = \"echo:\"\n[identity]\n[identity.claims_to_headers]\n\"X-User-Email\" = \"email\"\n\
         {issuer_toml}\n[login]\nissuer = \"idp\"\nclient_id = \"{client}\"\n{secret}\
         cookie_secret = \"{COOKIE_SECRET}\"\nscopes = [\"openid\", \"email\", \"profile\"]\n{extra}\n\
         [[routes]]\npath = \"/open/**\"\naccess = \"optional\"\nlogin = true\nupstream = \"app\"\n\
         [[routes]]\npath = \"/admin/**\"\nscopes = [\"admin\"]\nlogin = true\nupstream = \"app\"\n\
         [[routes]]\npath = \"/staff/**\"\nclaims = {{ groups = \"staff\" }}\nlogin = true\nupstream = \"app\"\n\
         [[routes]]\npath = \"/**\"\nlogin = true\nupstream = \"app\"\n"
    )
}

async fn proxy(text: &str) -> Proxy {
    ProxyBuilder::new()
        .env("TEST_PROXY_LOG", "debug")
        .start(text)
        .await
}

/// Signs in as `user` starting at `path` ([`support::cookie_client::sign_in`]).
async fn sign_in(c: &CookieClient, p: &Proxy, path: &str, user: &str) -> Vec<Hop> {
    support::cookie_client::sign_in(c, &p.url(path), user).await
}

/// The echo upstream's view of the request (its JSON body).
fn echoed(hop: &Hop) -> Value {
    serde_json::from_str(&hop.body).unwrap_or_else(|_| panic!("echo JSON: {}", hop.body))
}

fn header<'a>(echo: &'a Value, name: &str) -> Option<&'a str> {
    let h = &echo["headers"];
    h.get(name)
        .or_else(|| h.get(name.to_ascii_lowercase()))
        .and_then(|v| v.as_str().or_else(|| v.get(0).and_then(Value::as_str)))
}

async fn xhr(c: &CookieClient, url: &str) -> Hop {
    c.request(url, None, false).await
}

// ------------------------------------------------------------ the real provider

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_signs_in_sees_its_identity_and_logs_out() {
    let idp = OidcProvider::start(3600, 0).await;
    let p = proxy(&config(
        &idp.issuer_toml("idp"),
        CLIENT_ID,
        Some(CLIENT_SECRET),
        "",
    ))
    .await;
    let modules = support::browser::node_modules(&[]);
    let out = support::browser::run_script(
        "login_support/signin.mjs",
        &modules,
        &[
            ("START_URL", p.url("/app/page?tab=2")),
            ("APP_ORIGIN", p.base_url()),
            ("LOGOUT_URL", p.url("/_portcullis/logout")),
            ("LOGIN", "alice".into()),
        ],
    )
    .await;
    assert_eq!(out["ok"], true, "{out:#}\n{}\n{}", p.logs(), idp.log());
    assert!(out["loginPage"].as_str().unwrap().starts_with(&idp.issuer));
    assert_eq!(
        out["appUrl"],
        p.url("/app/page?tab=2"),
        "back at the saved path"
    );
    let page: Value = serde_json::from_str(out["appText"].as_str().unwrap()).unwrap();
    assert_eq!(header(&page, "x-user"), Some("alice"), "{page:#}");
    assert_eq!(header(&page, "x-user-email"), Some("alice@example.com"));
    let session = support::browser::assert_session_cookie(&out);
    assert_eq!(session["secure"], false, "no Secure without TLS");
    assert!(out["logoutPage"].as_str().unwrap().starts_with(&idp.issuer));
    // The provider's session ended too: back at `/` (post_logout_redirect_uri, a
    // login route), the browser is sent to the provider's login form again.
    assert!(
        out["afterLogout"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/interaction/", idp.issuer)),
        "{out:#}"
    );
    assert_eq!(out["againHasLoginForm"], true, "{out:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_client_signs_in_and_the_upstream_gets_the_access_token() {
    let idp = OidcProvider::start(3600, 0).await;
    let up = support::spawn_upstream().await;
    let p = proxy(
        &config(&idp.issuer_toml("idp"), PUBLIC_ID, None, "")
            .replace("url = \"echo:\"", &format!("url = \"{}\"", up.url())),
    )
    .await;
    let c = CookieClient::new();
    let hops = sign_in(&c, &p, "/app?x=1&y=2", "bob").await;
    let first = &hops[0];
    assert_eq!(first.status, 302);
    let auth = first.location.clone().unwrap();
    for k in [
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "nonce",
        "code_challenge",
    ] {
        assert!(query_param(&auth, k).is_some(), "{k} in {auth}");
    }
    assert_eq!(query_param(&auth, "response_type").as_deref(), Some("code"));
    assert_eq!(
        query_param(&auth, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(&auth, "redirect_uri").unwrap(),
        p.url("/_portcullis/callback")
    );
    let login_cookie = first
        .set_cookies
        .iter()
        .find(|s| s.starts_with("portcullis_session_login="))
        .expect("a login cookie");
    assert!(login_cookie.contains("Max-Age=600") && login_cookie.contains("HttpOnly"));
    let app = hops.last().unwrap();
    assert_eq!(app.url, p.url("/app?x=1&y=2"));
    let seen = up.last();
    assert_eq!(seen.uri, "/app?x=1&y=2");
    let cookies = seen.header("cookie").unwrap_or_default();
    assert!(
        !cookies.contains("portcullis_session"),
        "our cookies stay here: {cookies}"
    );
    assert_eq!(seen.header("x-user"), Some("bob"));
    assert_eq!(seen.header("x-user-email"), Some("bob@example.com"));
    let bearer = seen
        .header("authorization")
        .expect("the session's access token");
    assert!(
        bearer.starts_with("Bearer ") && bearer.len() > 20,
        "{bearer}"
    );
    // The callback cleared the login cookie.
    assert!(!c.cookies().contains_key("portcullis_session_login"));
    // Claims and scopes from the session: groups = staff passes, scope admin does not.
    assert_eq!(xhr(&c, &p.url("/staff/x")).await.status, 200);
    let denied = xhr(&c, &p.url("/admin/x")).await;
    assert_eq!(denied.status, 403, "{denied:?}");
    // A bearer token, when sent, is judged alone (an invalid one is 401 despite the session).
    let r = support::http_client()
        .get(p.url("/app"))
        .header("cookie", c.cookie_header())
        .header("authorization", "Bearer not-a-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_browser_navigations_are_redirected() {
    let idp = OidcProvider::start(3600, 0).await;
    let p = proxy(&config(
        &idp.issuer_toml("idp"),
        CLIENT_ID,
        Some(CLIENT_SECRET),
        "",
    ))
    .await;
    let c = CookieClient::new();
    let r = xhr(&c, &p.url("/app")).await;
    assert_eq!(r.status, 401, "an XHR gets the §4 401, never a login page");
    assert!(r.body.contains("Not authenticated"));
    let post = c.request(&p.url("/app"), Some("a=1"), true).await;
    assert_eq!(post.status, 401, "a POST is no navigation");
    let nav = c.request(&p.url("/app"), None, true).await;
    assert_eq!(nav.status, 302);
    assert!(nav
        .location
        .unwrap()
        .starts_with(&format!("{}/auth", idp.issuer)));
    let open = xhr(&c, &p.url("/open/x")).await;
    assert_eq!(open.status, 200, "optional: no session is fine");
    assert_eq!(header(&echoed(&open), "x-user"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_at_refresh_time_share_one_refresh() {
    // Access tokens live 1 s; each token request takes 300 ms at the provider.
    let idp = OidcProvider::start(1, 300).await;
    let p = proxy(&config(
        &idp.issuer_toml("idp"),
        CLIENT_ID,
        Some(CLIENT_SECRET),
        "",
    ))
    .await;
    let c = CookieClient::new();
    sign_in(&c, &p, "/app", "dave").await;
    assert_eq!(idp.counts().await.0, 0);
    let old = c.cookie_header();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let http = support::http_client();
    let calls = (0..8).map(|_| http.get(p.url("/app")).header("cookie", old.clone()).send());
    let answers = futures_util::future::join_all(calls).await;
    let mut renewed = 0;
    for a in answers {
        let a = a.unwrap();
        assert_eq!(a.status(), 200, "nobody is logged out");
        renewed += usize::from(a.headers().get("set-cookie").is_some());
        let echo: Value = a.json().await.unwrap();
        assert_eq!(header(&echo, "x-user"), Some("dave"));
    }
    assert_eq!(renewed, 8, "each response carries the refreshed cookie");
    assert_eq!(
        idp.counts().await.0,
        1,
        "exactly one refresh at the provider"
    );
    // A late request with the cookie from before the refresh is not logged out either.
    let late = http
        .get(p.url("/app"))
        .header("cookie", old)
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 200);
    assert_eq!(idp.counts().await.0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_refresh_ends_the_session() {
    let idp = OidcProvider::start(1, 0).await;
    let p = proxy(&config(
        &idp.issuer_toml("idp"),
        CLIENT_ID,
        Some(CLIENT_SECRET),
        "",
    ))
    .await;
    let c = CookieClient::new();
    sign_in(&c, &p, "/app", "erin").await;
    idp.refuse_tokens().await;
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let r = c.request(&p.url("/app"), None, true).await;
    assert_eq!(r.status, 302, "a fresh login");
    assert!(r
        .set_cookies
        .iter()
        .any(|s| s.starts_with("portcullis_session=;") && s.contains("Max-Age=0")));
    assert_eq!(xhr(&c, &p.url("/app")).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_kills_every_copy_of_a_state_session() {
    let idp = OidcProvider::start(3600, 0).await;
    let p = proxy(&config(
        &idp.issuer_toml("idp"),
        CLIENT_ID,
        Some(CLIENT_SECRET),
        "session_store = \"state\"",
    ))
    .await;
    let c = CookieClient::new();
    sign_in(&c, &p, "/app", "frank").await;
    let copied = c.cookie_header();
    let value = c.cookies()["portcullis_session"].clone();
    assert!(
        value.len() < 200,
        "only a sealed id in the cookie: {}",
        value.len()
    );
    let out = c.request(&p.url("/_portcullis/logout"), None, true).await;
    assert_eq!(out.status, 302);
    let to = out.location.unwrap();
    assert!(
        to.starts_with(&format!("{}/session/end", idp.issuer)),
        "{to}"
    );
    assert!(query_param(&to, "id_token_hint").is_some());
    assert_eq!(
        query_param(&to, "post_logout_redirect_uri").unwrap(),
        p.url("/")
    );
    assert!(out
        .set_cookies
        .iter()
        .any(|s| s.starts_with("portcullis_session=;") && s.contains("Max-Age=0")));
    let r = support::http_client()
        .get(p.url("/app"))
        .header("cookie", copied)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the copied cookie is dead");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_ttl_is_absolute_and_large_id_tokens_are_split() {
    let idp = OidcProvider::start(3600, 0).await;
    let p = proxy(&config(
        &idp.issuer_toml("idp"),
        CLIENT_ID,
        Some(CLIENT_SECRET),
        "session_ttl = \"3s\"",
    ))
    .await;
    let c = CookieClient::new();
    let hops = sign_in(&c, &p, "/app", "big-gina").await;
    let set: Vec<&String> = hops
        .iter()
        .flat_map(|h| &h.set_cookies)
        .filter(|s| {
            s.starts_with("portcullis_session_1=") || s.starts_with("portcullis_session_2=")
        })
        .collect();
    assert_eq!(set.len(), 2, "a 6 KB claim splits the session: {hops:#?}");
    assert!(set.iter().all(|s| s.len() < 4000));
    assert!(!c.cookies().contains_key("portcullis_session"));
    let ok = xhr(&c, &p.url("/app")).await;
    assert_eq!(ok.status, 200);
    assert_eq!(header(&echoed(&ok), "x-user"), Some("big-gina"));
    tokio::time::sleep(std::time::Duration::from_millis(3100)).await;
    assert_eq!(
        xhr(&c, &p.url("/app")).await.status,
        401,
        "past session_ttl"
    );
}

// ------------------------------------------------------------ bad input

/// Starts a sign-in at the crafted provider: (state, nonce) of the redirect.
async fn begin(c: &CookieClient, p: &Proxy, path: &str) -> (String, String) {
    let r = c.request(&p.url(path), None, true).await;
    assert_eq!(r.status, 302, "{r:?}\n{}", p.logs());
    let loc = r.location.unwrap();
    (
        query_param(&loc, "state").unwrap(),
        query_param(&loc, "nonce").unwrap(),
    )
}

async fn callback(c: &CookieClient, p: &Proxy, query: &str) -> Hop {
    c.request(
        &p.url(&format!("/_portcullis/callback?{query}")),
        None,
        true,
    )
    .await
}

fn no_session(h: &Hop) -> bool {
    !h.set_cookies
        .iter()
        .any(|s| s.starts_with("portcullis_session=") && !s.contains("Max-Age=0"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_callbacks_start_no_session() {
    let idp = CraftIdp::start("craft-app").await;
    let p = proxy(&config(
        &idp.issuer_toml("idp"),
        "craft-app",
        Some("s3cret"),
        "",
    ))
    .await;

    // The good case first: it works, and the code exchange was what SPEC §9 says.
    let c = CookieClient::new();
    let (state, nonce) = begin(&c, &p, "/app/x?q=1").await;
    let code = idp.issue_code(&nonce, IdToken::Good);
    let ok = callback(&c, &p, &format!("code={code}&state={state}")).await;
    assert_eq!(ok.status, 302, "{ok:?}\n{}", p.logs());
    assert_eq!(ok.location.as_deref(), Some("/app/x?q=1"));
    assert!(!no_session(&ok));
    let req = idp.token_requests().pop().unwrap();
    let body = String::from_utf8_lossy(&req.body).into_owned();
    assert!(body.contains("grant_type=authorization_code") && body.contains("code_verifier="));
    assert!(req.header("authorization").unwrap().starts_with("Basic "));
    // Replaying the same callback (same state, same login cookie copy): refused.
    let replay = CookieClient::new();
    let (state, nonce) = begin(&replay, &p, "/app").await;
    let login = replay.cookies()["portcullis_session_login"].clone();
    let code = idp.issue_code(&nonce, IdToken::Good);
    assert_eq!(
        callback(&replay, &p, &format!("code={code}&state={state}"))
            .await
            .status,
        302
    );
    replay.set("portcullis_session_login", Some(&login));
    let again = callback(&replay, &p, &format!("code={code}&state={state}")).await;
    assert_eq!(again.status, 400, "reused state / replayed code");

    type Query = fn(&str, &str) -> String;
    let cases: Vec<(&str, IdToken, Query)> = vec![
        ("wrong state", IdToken::Good, |code, _| {
            format!("code={code}&state=forged")
        }),
        ("missing state", IdToken::Good, |code, _| {
            format!("code={code}")
        }),
        ("error parameter", IdToken::Good, |_, s| {
            format!("error=access_denied&state={s}")
        }),
        ("foreign code", IdToken::Good, |_, s| {
            format!("code=never-issued&state={s}")
        }),
        ("wrong nonce", IdToken::WrongNonce, |code, s| {
            format!("code={code}&state={s}")
        }),
        ("wrong aud", IdToken::WrongAud, |code, s| {
            format!("code={code}&state={s}")
        }),
        ("wrong iss", IdToken::WrongIss, |code, s| {
            format!("code={code}&state={s}")
        }),
        ("bad signature", IdToken::BadSignature, |code, s| {
            format!("code={code}&state={s}")
        }),
        ("no id token", IdToken::Missing, |code, s| {
            format!("code={code}&state={s}")
        }),
    ];
    for (what, shape, query) in cases {
        let c = CookieClient::new();
        let (state, nonce) = begin(&c, &p, "/app").await;
        let code = idp.issue_code(&nonce, shape);
        let r = callback(&c, &p, &query(&code, &state)).await;
        assert_eq!(r.status, 400, "{what}: {r:?}");
        assert!(r.body.contains("Bad Request"), "{what}");
        assert!(no_session(&r), "{what}: no session");
        assert_eq!(xhr(&c, &p.url("/app")).await.status, 401, "{what}");
    }
    // No login cookie at all.
    let c = CookieClient::new();
    let (state, nonce) = begin(&c, &p, "/app").await;
    c.set("portcullis_session_login", None);
    let code = idp.issue_code(&nonce, IdToken::Good);
    assert_eq!(
        callback(&c, &p, &format!("code={code}&state={state}"))
            .await
            .status,
        400
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn return_paths_never_leave_this_host() {
    let idp = CraftIdp::start("craft-app").await;
    let p = proxy(&config(&idp.issuer_toml("idp"), "craft-app", None, "")).await;
    for (path, back) in [
        ("//evil.example", "/evil.example"),
        ("//evil.example/x?y", "/evil.example/x?y"),
    ] {
        let c = CookieClient::new();
        let (state, nonce) = begin(&c, &p, path).await;
        let code = idp.issue_code(&nonce, IdToken::Good);
        let r = callback(&c, &p, &format!("code={code}&state={state}")).await;
        assert_eq!(r.status, 302);
        assert_eq!(r.location.as_deref(), Some(back), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_cookies_are_no_session() {
    let idp = CraftIdp::start("craft-app").await;
    let p = proxy(&config(&idp.issuer_toml("idp"), "craft-app", None, "")).await;
    let c = CookieClient::new();
    let (state, nonce) = begin(&c, &p, "/app").await;
    let code = idp.issue_code(&nonce, IdToken::Good);
    assert_eq!(
        callback(&c, &p, &format!("code={code}&state={state}"))
            .await
            .status,
        302
    );
    assert_eq!(xhr(&c, &p.url("/app")).await.status, 200);
    let good = c.cookies()["portcullis_session"].clone();
    let mut flipped = good.clone().into_bytes();
    let i = flipped.len() / 2;
    flipped[i] = if flipped[i] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    // A session sealed by another deployment's key.
    let other = proxy(
        &config(&idp.issuer_toml("idp"), "craft-app", None, "").replace(
            COOKIE_SECRET,
            "another-deployments-cookie-secret-0123456789",
        ),
    )
    .await;
    let o = CookieClient::new();
    let (state, nonce) = begin(&o, &other, "/app").await;
    let code = idp.issue_code(&nonce, IdToken::Good);
    assert_eq!(
        callback(&o, &other, &format!("code={code}&state={state}"))
            .await
            .status,
        302
    );
    let foreign = o.cookies()["portcullis_session"].clone();
    let half = good.len() / 2;
    for (what, cookies) in [
        ("tampered", vec![("portcullis_session", flipped.as_str())]),
        (
            "truncated",
            vec![("portcullis_session", &good[..good.len() - 10])],
        ),
        (
            "foreign key",
            vec![("portcullis_session", foreign.as_str())],
        ),
        (
            "reordered chunks",
            vec![
                ("portcullis_session_1", &good[half..]),
                ("portcullis_session_2", &good[..half]),
            ],
        ),
        ("login cookie as session", vec![("portcullis_session", "x")]),
    ] {
        let c = CookieClient::new();
        for (k, v) in &cookies {
            c.set(k, Some(v));
        }
        assert_eq!(xhr(&c, &p.url("/app")).await.status, 401, "{what}");
        assert_eq!(
            c.request(&p.url("/app"), None, true).await.status,
            302,
            "{what}: a fresh login"
        );
    }
    // In order, the same halves are the session (chunks join).
    let c = CookieClient::new();
    c.set("portcullis_session_1", Some(&good[..half]));
    c.set("portcullis_session_2", Some(&good[half..]));
    assert_eq!(xhr(&c, &p.url("/app")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_provider_is_502_on_the_callback() {
    let idp = CraftIdp::start("craft-app").await;
    idp.set_token_endpoint(&format!("http://127.0.0.1:{}/token", support::free_port()));
    let p = proxy(&config(&idp.issuer_toml("idp"), "craft-app", None, "")).await;
    let c = CookieClient::new();
    let (state, nonce) = begin(&c, &p, "/app").await;
    let code = idp.issue_code(&nonce, IdToken::Good);
    let r = callback(&c, &p, &format!("code={code}&state={state}")).await;
    assert_eq!(r.status, 502);
    assert!(no_session(&r));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_code_cookie_or_token_in_the_logs() {
    let idp = OidcProvider::start(1, 0).await;
    let up = support::spawn_upstream().await;
    let p = proxy(
        &config(&idp.issuer_toml("idp"), CLIENT_ID, Some(CLIENT_SECRET), "")
            .replace("url = \"echo:\"", &format!("url = \"{}\"", up.url())),
    )
    .await;
    let c = CookieClient::new();
    let hops = sign_in(&c, &p, "/app", "hank").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(xhr(&c, &p.url("/app")).await.status, 200, "refreshed");
    let logs = p.logs();
    let mut secrets: Vec<String> = c.cookies().into_values().filter(|v| v.len() > 8).collect();
    secrets.push(CLIENT_SECRET.into());
    secrets.push(COOKIE_SECRET.into());
    for h in &hops {
        if let Some(l) = &h.location {
            for k in ["code", "state", "nonce", "code_challenge"] {
                if let Some(v) = query_param(l, k) {
                    secrets.push(v);
                }
            }
        }
    }
    for r in up.requests() {
        secrets.push(r.header("authorization").unwrap()[7..].to_owned());
    }
    assert!(secrets.len() > 5);
    for s in secrets {
        assert!(!logs.contains(&s), "a secret in the logs: {s}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_are_secure_on_tls() {
    let idp = CraftIdp::start("craft-app").await;
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let p = ProxyBuilder::new()
        .file("tls.crt", cert.cert.pem())
        .file("tls.key", cert.signing_key.serialize_pem())
        .server("[server.tls]\ncert = \"tls.crt\"\nkey = \"tls.key\"")
        .start(&config(&idp.issuer_toml("idp"), "craft-app", None, ""))
        .await;
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", p.addr.port());
    let c = CookieClient::with(http);
    let r = c.request(&format!("{base}/app"), None, true).await;
    assert_eq!(r.status, 302, "{r:?}");
    let loc = r.location.unwrap();
    assert_eq!(
        query_param(&loc, "redirect_uri").unwrap(),
        format!("{base}/_portcullis/callback"),
        "https when the main listener has TLS"
    );
    assert!(
        r.set_cookies.iter().all(|s| s.ends_with("; Secure")),
        "{:?}",
        r.set_cookies
    );
    let (state, nonce) = (
        query_param(&loc, "state").unwrap(),
        query_param(&loc, "nonce").unwrap(),
    );
    let code = idp.issue_code(&nonce, IdToken::Good);
    let cb = c
        .request(
            &format!("{base}/_portcullis/callback?code={code}&state={state}"),
            None,
            true,
        )
        .await;
    assert_eq!(cb.status, 302, "{cb:?}");
    let session = cb
        .set_cookies
        .iter()
        .find(|s| s.starts_with("portcullis_session="))
        .expect("a session cookie");
    assert!(
        session.contains("Path=/; HttpOnly; SameSite=Lax; Secure"),
        "{session}"
    );
    assert_eq!(
        c.request(&format!("{base}/app"), None, false).await.status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_session_is_shared_by_replicas_and_logout_ends_it_on_all() {
    let redis = support::redis::Redis::start();
    let idp = OidcProvider::start(3600, 0).await;
    let text = format!(
        "{}\n[state]\nbackend = \"redis\"\nurl = \"{}\"\n",
        config(
            &idp.issuer_toml("idp"),
            CLIENT_ID,
            Some(CLIENT_SECRET),
            "session_store = \"state\""
        ),
        redis.url()
    );
    let a = proxy(&text).await;
    let b = proxy(&text).await;
    let c = CookieClient::new();
    sign_in(&c, &a, "/app", "ivy").await;
    let copied = c.cookie_header();
    let on_b = |cookie: String| {
        let url = b.url("/app");
        async move {
            support::http_client()
                .get(url)
                .header("cookie", cookie)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(
        on_b(copied.clone()).await,
        200,
        "the other replica knows the session"
    );
    let out = c.request(&a.url("/_portcullis/logout"), None, true).await;
    assert_eq!(out.status, 302);
    assert_eq!(on_b(copied).await, 401, "logged out on every replica");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_url_is_used_and_logout_without_end_session_goes_home() {
    let idp = CraftIdp::start("craft-app").await;
    let ext = "https://app.example.com/_portcullis/callback";
    let p = proxy(&config(
        &idp.issuer_toml("idp"),
        "craft-app",
        None,
        &format!("redirect_url = \"{ext}\""),
    ))
    .await;
    let c = CookieClient::new();
    let r = c.request(&p.url("/app"), None, true).await;
    assert_eq!(
        query_param(&r.location.unwrap(), "redirect_uri").as_deref(),
        Some(ext)
    );
    let (state, nonce) = begin(&c, &p, "/app").await;
    let code = idp.issue_code(&nonce, IdToken::Good);
    assert_eq!(
        callback(&c, &p, &format!("code={code}&state={state}"))
            .await
            .status,
        302
    );
    let body = String::from_utf8_lossy(&idp.token_requests().pop().unwrap().body).into_owned();
    assert!(
        body.contains("redirect_uri=https%3A%2F%2Fapp.example.com"),
        "{body}"
    );
    assert!(
        body.contains("client_id=craft-app"),
        "a public client names itself: {body}"
    );
    // This provider has no end_session_endpoint: logout clears the cookie and goes to `/`.
    let out = c.request(&p.url("/_portcullis/logout"), None, true).await;
    assert_eq!((out.status, out.location.as_deref()), (302, Some("/")));
    assert!(out
        .set_cookies
        .iter()
        .any(|s| s.starts_with("portcullis_session=;") && s.contains("Max-Age=0")));
    assert_eq!(xhr(&c, &p.url("/app")).await.status, 401);
}
