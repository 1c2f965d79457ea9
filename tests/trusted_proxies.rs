//! `[server] trusted_proxies` (SPEC §11) against the real binary: the client address
//! behind a trusted peer is the rightmost untrusted `X-Forwarded-For` entry, used by
//! the login rate limits, the access log's `client` and the `X-Forwarded-For` sent
//! upstream; `X-Forwarded-Proto: https` is believed from such a peer only. Two TCP
//! peers on loopback: 127.0.0.1 (trusted) and 127.0.0.2 (not).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::cookie_client::query_param;
use support::*;

const TRUSTED: [u8; 4] = [127, 0, 0, 1];
const UNTRUSTED: [u8; 4] = [127, 0, 0, 2];
/// Failed logins per client address before 429 (SPEC §5).
const ADDR_MAX_FAILURES: usize = 30;

/// A token endpoint (users.toml with a cheap bcrypt hash: many failures are made)
/// and a protected route to `up`, with `127.0.0.1/32` trusted.
async fn proxy(up: &Upstream) -> Proxy {
    portcullis::install_crypto_providers();
    let pem = portcullis::auth::keys::generate_ed25519_pem().unwrap();
    let hash = bcrypt::hash("secret", 4).unwrap();
    Proxy::builder()
        .binary()
        .server("trusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/8\"]")
        .file("signing.pem", pem)
        .file(
            "users.toml",
            format!("[users.johndoe]\npassword_hash = \"{hash}\"\nscopes = [\"me\"]\n"),
        )
        .start(&format!(
            "[upstreams.app]\nurl = \"{}\"\n\n{}\n\
             [[issuers]]\nname = \"local\"\nissuer = \"https://auth.test\"\n\
             audiences = [\"api\"]\nprivate_key = \"signing.pem\"\nkid = \"k1\"\n\n\
             [token_endpoint]\npath = \"/token\"\nissuer = \"local\"\nusers = \"users.toml\"\n\n\
             [[routes]]\nname = \"api\"\npath = \"/api/**\"\nupstream = \"app\"\n",
            up.url(),
            hs_issuer()
        ))
        .await
}

/// A failed login (unknown user `user`) from `peer` claiming `xff`.
async fn fail_login(p: &Proxy, peer: [u8; 4], xff: &str, user: &str) -> u16 {
    let body = format!("grant_type=password&username={user}&password=wrong");
    let req = Req::post("/token", body)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Forwarded-For", xff);
    p.send_from(peer, req).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_xff_from_an_untrusted_peer_changes_nothing_on_the_login_limit() {
    let up = spawn_upstream().await;
    let p = proxy(&up).await;
    // Every attempt claims another client; all count against the peer.
    for i in 0..ADDR_MAX_FAILURES {
        let st = fail_login(&p, UNTRUSTED, &format!("198.51.100.{i}"), &format!("u{i}")).await;
        assert_eq!(st, 401, "failure {i}");
    }
    let st = fail_login(&p, UNTRUSTED, "198.51.100.200", "fresh").await;
    assert_eq!(st, 429, "{}", p.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_peer_the_limit_counts_per_client() {
    let up = spawn_upstream().await;
    let p = proxy(&up).await;
    // Client 203.0.113.1 behind two trusted hops (10.1.2.3, then the peer).
    let chain = "6.6.6.6, 203.0.113.1, 10.1.2.3";
    for i in 0..ADDR_MAX_FAILURES {
        assert_eq!(fail_login(&p, TRUSTED, chain, &format!("u{i}")).await, 401);
    }
    assert_eq!(fail_login(&p, TRUSTED, chain, "fresh").await, 429);
    // The same peer for another client is not limited, nor is the limited client's
    // forged left-hand entry what counted.
    assert_eq!(fail_login(&p, TRUSTED, "203.0.113.2", "fresh").await, 401);
    assert_eq!(fail_login(&p, TRUSTED, "6.6.6.6", "fresh").await, 401);
    // The access log names the client, not the peer.
    let clients: Vec<String> = p
        .log_lines()
        .into_iter()
        .filter(|l| l["route"] == "builtin:token")
        .map(|l| l["client"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(clients.iter().any(|c| c == "203.0.113.1"), "{clients:?}");
    assert!(clients.iter().any(|c| c == "203.0.113.2"), "{clients:?}");
    assert!(!clients.iter().any(|c| c == "127.0.0.1"), "{clients:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_sees_the_client_and_the_scheme() {
    let up = spawn_upstream().await;
    let p = proxy(&up).await;
    let t = token("alice", serde_json::json!({}));
    let req = |xff: &str| {
        Req::get("/api/x")
            .bearer(&t)
            .header("X-Forwarded-For", xff)
            .header("X-Forwarded-Proto", "https")
    };
    // Trusted peer: the chain up to the client, whose scheme was https.
    p.send_from(TRUSTED, req("6.6.6.6, 203.0.113.9, 10.0.0.7"))
        .await
        .assert_status(200);
    let seen = up.last();
    assert_eq!(
        seen.header_all("x-forwarded-for"),
        vec!["6.6.6.6, 203.0.113.9"]
    );
    assert_eq!(seen.header_all("x-forwarded-proto"), vec!["https"]);
    // Untrusted peer: SPEC §4 as without the setting (appended, scheme of the
    // connection).
    p.send_from(UNTRUSTED, req("203.0.113.9"))
        .await
        .assert_status(200);
    let seen = up.last();
    assert_eq!(
        seen.header_all("x-forwarded-for"),
        vec!["203.0.113.9, 127.0.0.2"]
    );
    assert_eq!(seen.header_all("x-forwarded-proto"), vec!["http"]);
    let clients: Vec<String> = p
        .log_lines()
        .into_iter()
        .filter(|l| l["route"] == "api")
        .map(|l| l["client"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(clients, vec!["203.0.113.9", "127.0.0.2"], "{}", p.logs());
}

/// The sign-in proxy of [`forwarded_https_makes_sign_in_https`]: one `login = true`
/// route, the tests' own provider, only 127.0.0.1 trusted.
async fn login_proxy(idp: &support::craft_idp::CraftIdp) -> Proxy {
    Proxy::builder()
        .server("trusted_proxies = [\"127.0.0.1/32\"]")
        .start(&format!(
            "[upstreams.app]\nurl = \"echo:\"\n{}\n\
             [login]\nissuer = \"idp\"\nclient_id = \"craft-app\"\nclient_secret = \"s3cret\"\n\
             cookie_secret = \"cookie-secret-for-the-trusted-proxy-tests-0123\"\n\n\
             [[routes]]\nname = \"app\"\npath = \"/**\"\nlogin = true\nupstream = \"app\"\n",
            idp.issuer_toml("idp")
        ))
        .await
}

/// A browser navigation claiming https.
fn navigation(target: &str) -> Req {
    Req::get(target)
        .header("Accept", "text/html")
        .header("X-Forwarded-Proto", "https")
}

/// The `Set-Cookie` header for `name` in `r`.
fn set_cookie<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.header_all("set-cookie")
        .into_iter()
        .find(|c| c.starts_with(&format!("{name}=")))
}

/// SPEC §11: `X-Forwarded-Proto: https` from a trusted peer makes the request count as
/// https for §9 sign-in — the `redirect_uri` sent to the provider, the code exchange
/// at the callback, the cookies' `Secure` — and from any other peer it is not believed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_https_makes_sign_in_https() {
    let idp = support::craft_idp::CraftIdp::start("craft-app").await;
    let p = login_proxy(&idp).await;
    let host = p.addr.to_string();

    // Untrusted peer: the claim is ignored, the scheme is the connection's (http).
    let r = p.send_from(UNTRUSTED, navigation("/app/x")).await;
    assert_eq!(r.status, 302, "{r:?}");
    let loc = r.header("location").unwrap().to_owned();
    let redirect = query_param(&loc, "redirect_uri").unwrap();
    assert_eq!(redirect, format!("http://{host}/_portcullis/callback"));
    let login = set_cookie(&r, "portcullis_session_login").expect("login cookie");
    assert!(!login.contains("Secure"), "{login}");

    // Trusted peer: https everywhere.
    let r = p.send_from(TRUSTED, navigation("/app/x")).await;
    assert_eq!(r.status, 302, "{r:?}");
    let loc = r.header("location").unwrap().to_owned();
    let redirect = query_param(&loc, "redirect_uri").unwrap();
    assert_eq!(redirect, format!("https://{host}/_portcullis/callback"));
    let login = set_cookie(&r, "portcullis_session_login").expect("login cookie");
    assert!(login.contains("Secure"), "{login}");
    let (state, nonce) = (
        query_param(&loc, "state").unwrap(),
        query_param(&loc, "nonce").unwrap(),
    );
    let code = idp.issue_code(&nonce, support::craft_idp::IdToken::Good);
    let jar = login.split(';').next().unwrap().to_owned();
    let cb = p
        .send_from(
            TRUSTED,
            navigation(&format!("/_portcullis/callback?code={code}&state={state}"))
                .header("Cookie", &jar),
        )
        .await;
    assert_eq!(cb.status, 302, "{cb:?}");
    let session = set_cookie(&cb, "portcullis_session").expect("session cookie");
    assert!(session.contains("Secure"), "{session}");
    // The code was redeemed with the same https redirect_uri (else the provider refuses).
    let exchange = idp.token_requests().pop().expect("a code exchange");
    let body = String::from_utf8_lossy(&exchange.body).into_owned();
    let sent = form_param(&body, "redirect_uri").unwrap();
    assert_eq!(
        sent,
        format!("https://{host}/_portcullis/callback"),
        "{body}"
    );
}

/// The value of `name` in an `application/x-www-form-urlencoded` body.
fn form_param(body: &str, name: &str) -> Option<String> {
    query_param(&format!("http://x/?{body}"), name)
}
