//! Keys from identity providers (issue #4), against real servers on loopback:
//! a reconfigurable JWKS server (`support::Idp`: counts fetches, fails on demand, sets
//! Cache-Control), portcullis with its admin listener (in-process; the real binary
//! where a test reads its logs), and a real OpenID Connect provider
//! (`oidc-provider` from npm, run by node).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use support::*;

// ------------------------------------------------------------------ keys, tokens

/// A signing key with its `kid` and `alg`, and its public JWK (kid, alg, use set).
#[derive(Clone)]
struct Key {
    alg: &'static str,
    kid: String,
    key: Arc<TestKey>,
    jwk: Value,
}

fn key(alg: &'static str, kid: &str) -> Key {
    let k = match alg {
        "RS256" => TestKey::rsa(),
        "ES256" => TestKey::p256(),
        "EdDSA" => TestKey::ed25519(),
        other => panic!("no test key for {other}"),
    };
    Key {
        alg,
        kid: kid.into(),
        jwk: k.jwk_with(kid, alg),
        key: Arc::new(k),
    }
}

fn payload(iss: &str, sub: &str) -> Value {
    json!({"iss": iss, "sub": sub, "aud": "api", "iat": now(), "exp": now() + 600})
}

fn token(k: &Key, iss: &str, sub: &str) -> String {
    let header = json!({"alg": k.alg, "typ": "JWT", "kid": k.kid});
    jwt(&header, &payload(iss, sub), Signer::Key(&k.key))
}

/// An HS256 token with `kid`, "signed" with `secret` (key-confusion attempts).
fn hs_token(secret: &[u8], kid: &str, iss: &str, sub: &str) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT", "kid": kid});
    jwt(&header, &payload(iss, sub), Signer::Secret(secret))
}

// ------------------------------------------------------------------ the proxy

/// The proxy with an echo upstream, one protected route, an admin listener and
/// `issuers`, and a client for it.
struct Edge {
    p: Proxy,
    http: reqwest::Client,
}

impl Edge {
    /// In-process.
    async fn start(issuers: &str) -> Edge {
        Self::with(Proxy::builder(), issuers).await
    }

    /// The real binary, for the tests that read its logs.
    async fn binary(issuers: &str) -> Edge {
        Self::with(Proxy::builder().env("RUST_LOG", "info,access=off"), issuers).await
    }

    async fn with(b: ProxyBuilder, issuers: &str) -> Edge {
        let p = b
            .start(&format!(
                "{ADMIN}[upstreams.echo]\nurl = \"echo:\"\n\
                 [[routes]]\npath = \"/**\"\nupstream = \"echo\"\n{issuers}\n"
            ))
            .await;
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(64)
            .build()
            .unwrap();
        Edge { p, http }
    }

    fn log(&self) -> String {
        self.p.logs()
    }

    /// GET / with the token: (status, X-User the upstream saw).
    async fn call(&self, token: &str) -> (u16, Option<String>) {
        let r = self
            .http
            .get(self.p.url("/"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let user = body["headers"]["x-user"].as_str().map(str::to_owned);
        (status, user)
    }

    async fn status(&self, token: &str) -> u16 {
        self.call(token).await.0
    }

    async fn admin(&self, path: &str) -> u16 {
        self.p.admin_get(path).await.map_or(0, |r| r.status)
    }

    async fn wait_ready(&self) {
        self.p.wait_ready().await;
    }
}

// ------------------------------------------------------------------ tests

/// A new key is picked up by the periodic refresh without a restart; a key the IdP
/// stops publishing stops verifying, even for a token the cache had verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_within_one_refresh_and_dropped_key_refused() {
    let (a, b) = (key("RS256", "a"), key("RS256", "b"));
    let idp = Idp::start(vec![a.jwk.clone()]).await;
    let p = Edge::start(&idp.issuer("corp", "https://idp", "refresh_interval = \"1s\"")).await;
    p.wait_ready().await;
    let ta = token(&a, "https://idp", "alice");
    assert_eq!(p.call(&ta).await, (200, Some("alice".into())));
    assert_eq!(p.status(&ta).await, 200, "cached");

    idp.set_keys(vec![a.jwk.clone(), b.jwk.clone()]);
    let n = idp.fetches();
    idp.wait_fetches(n + 1).await; // one scheduled refresh
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        p.call(&token(&b, "https://idp", "bob")).await,
        (200, Some("bob".into()))
    );

    idp.set_keys(vec![b.jwk.clone()]);
    let n = idp.fetches();
    idp.wait_fetches(n + 2).await;
    assert_eq!(p.status(&ta).await, 401, "dropped key still verifies");
    assert_eq!(p.status(&token(&b, "https://idp", "bob")).await, 200);
}

/// The IdP going down changes nothing for known keys, and readiness holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_down_keeps_last_good_keys() {
    let a = key("ES256", "a");
    let idp = Idp::start(vec![a.jwk.clone()]).await;
    let p = Edge::binary(&idp.issuer("corp", "https://idp", "refresh_interval = \"1s\"")).await;
    p.wait_ready().await;
    idp.set_fail(true);
    let n = idp.fetches();
    idp.wait_fetches(n + 2).await; // two failed fetches
    let fresh = token(&a, "https://idp", "carol"); // not in the cache yet
    assert_eq!(p.call(&fresh).await, (200, Some("carol".into())));
    assert_eq!(p.admin("/readyz").await, 200);
    assert_eq!(p.admin("/healthz").await, 200);
    // An unknown kid while the IdP is down is a plain 401, not an error page.
    let stranger = key("ES256", "zz");
    assert_eq!(p.status(&token(&stranger, "https://idp", "eve")).await, 401);
    assert!(
        p.log().contains("keeping the last good keys"),
        "{}",
        p.log()
    );
}

/// A flood of random `kid`s causes at most a handful of JWKS fetches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kid_flood_is_rate_limited() {
    let a = key("ES256", "a");
    let idp = Idp::start(vec![a.jwk.clone()]).await;
    let p = Arc::new(Edge::start(&idp.issuer("corp", "https://idp", "")).await);
    p.wait_ready().await;
    // Past the 10 s window of the start-up fetch, so the flood may cause one fetch.
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let start = idp.fetches();
    let attacker = key("ES256", "x");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..500 {
        let mut k = attacker.clone();
        k.kid = format!("random-{i}-{}", now());
        let (p, t) = (p.clone(), token(&k, "https://idp", "mallory"));
        tasks.spawn(async move { p.status(&t).await });
    }
    while let Some(st) = tasks.join_next().await {
        assert_eq!(st.unwrap(), 401);
    }
    let used = idp.fetches() - start;
    assert!(
        (1..=2).contains(&used),
        "{used} JWKS fetches for 500 random kids (one single-flight re-fetch expected)"
    );
    assert_eq!(p.status(&token(&a, "https://idp", "alice")).await, 200);
}

/// `discovery = true` finds the JWKS through `{issuer}/.well-known/openid-configuration`
/// (the issuer's trailing `/` is not doubled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_the_jwks() {
    let a = key("EdDSA", "ed");
    let idp = Idp::start(vec![a.jwk.clone()]).await;
    let iss = format!("{}/", idp.base());
    let p = Edge::start(&format!(
        "[[issuers]]\nname = \"oidc\"\nissuer = \"{iss}\"\ndiscovery = true\naudiences = [\"api\"]\n"
    )).await;
    p.wait_ready().await;
    assert_eq!(
        p.call(&token(&a, &iss, "dora")).await,
        (200, Some("dora".into()))
    );
    assert_eq!(idp.fetches(), 1);
}

/// Two issuers with different algorithms, each chosen by `iss`; neither's key
/// verifies the other's tokens, and the RSA key is never an HMAC secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_issuers_different_algorithms() {
    let (rs, ed) = (key("RS256", "rs"), key("EdDSA", "ed"));
    let (idp1, idp2) = (
        Idp::start(vec![rs.jwk.clone()]).await,
        Idp::start(vec![ed.jwk.clone()]).await,
    );
    let p = Edge::start(&format!(
        "{}{}",
        idp1.issuer("one", "https://one", "algorithms = [\"RS256\"]"),
        idp2.issuer("two", "https://two", "algorithms = [\"EdDSA\"]"),
    ))
    .await;
    p.wait_ready().await;
    assert_eq!(
        p.call(&token(&rs, "https://one", "u1")).await,
        (200, Some("u1".into()))
    );
    assert_eq!(
        p.call(&token(&ed, "https://two", "u2")).await,
        (200, Some("u2".into()))
    );
    assert_eq!(p.status(&token(&ed, "https://one", "x")).await, 401);
    assert_eq!(p.status(&token(&rs, "https://two", "x")).await, 401);
    // alg confusion: HS256 "signed" with the RSA public key's modulus as the secret.
    let n = rs.jwk["n"].as_str().unwrap();
    let hs = hs_token(n.as_bytes(), "rs", "https://one", "x");
    assert_eq!(p.status(&hs).await, 401);
}

/// `use: enc` keys and `kty: oct` keys in a remote set never verify anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enc_and_oct_keys_are_ignored() {
    let sig = key("RS256", "sig");
    let mut enc = key("RS256", "enc");
    enc.jwk["use"] = "enc".into();
    let secret = "an-hmac-secret-in-a-jwks-is-never-trusted";
    let oct = json!({"kty": "oct", "kid": "oct", "k": b64(secret.as_bytes())});
    let idp = Idp::start(vec![enc.jwk.clone(), oct, sig.jwk.clone()]).await;
    let p = Edge::binary(&idp.issuer("corp", "https://idp", "")).await;
    p.wait_ready().await;
    assert_eq!(p.status(&token(&sig, "https://idp", "ok")).await, 200);
    assert_eq!(p.status(&token(&enc, "https://idp", "x")).await, 401);
    let hs = hs_token(secret.as_bytes(), "oct", "https://idp", "x");
    assert_eq!(p.status(&hs).await, 401);
    assert!(p.log().contains("JWKS key skipped"), "{}", p.log());
}

/// `/readyz` is 503 until the first successful fetch, then 200; `/healthz` is 200
/// throughout; tokens are refused (fail closed) while there are no keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_first_fetch() {
    let a = key("ES256", "a");
    let idp = Idp::start(vec![a.jwk.clone()]).await;
    idp.set_fail(true);
    let p = Edge::start(&idp.issuer("corp", "https://idp", "")).await;
    idp.wait_fetches(1).await;
    assert_eq!(p.admin("/readyz").await, 503);
    assert_eq!(p.admin("/healthz").await, 200);
    assert_eq!(p.admin("/nope").await, 404);
    assert_eq!(p.status(&token(&a, "https://idp", "x")).await, 401);
    idp.set_fail(false);
    p.wait_ready().await; // retried with back-off (1 s, 2 s, ...)
    assert_eq!(p.status(&token(&a, "https://idp", "x")).await, 200);
}

/// `Cache-Control: max-age` shortens the refresh interval, but not below 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_is_bounded() {
    let a = key("ES256", "a");
    let idp = Idp::start(vec![a.jwk.clone()]).await;
    idp.set_cache_control("public, max-age=0");
    let p = Edge::start(&idp.issuer("corp", "https://idp", "refresh_interval = \"10m\"")).await;
    p.wait_ready().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        idp.fetches(),
        1,
        "max-age=0 must not make portcullis poll the IdP"
    );
}

/// An https JWKS is trusted through the issuer's `ca`; without it (webpki roots
/// only) the fetch fails and the issuer never becomes ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_jwks_with_configured_ca() {
    let a = key("ES256", "a");
    let (idp, ca_pem) = Idp::start_tls(vec![a.jwk.clone()]).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("idp-ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let trusted = format!("ca = \"{}\"", ca.display());
    let p = Edge::start(&idp.issuer("corp", "https://idp", &trusted)).await;
    p.wait_ready().await;
    assert_eq!(p.status(&token(&a, "https://idp", "tls")).await, 200);

    let untrusted = Edge::binary(&idp.issuer("corp", "https://idp", "")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(untrusted.admin("/readyz").await, 503);
    assert_eq!(
        untrusted.status(&token(&a, "https://idp", "tls")).await,
        401
    );
    assert!(
        untrusted.log().contains("JWKS fetch failed"),
        "{}",
        untrusted.log()
    );
}

// ------------------------------------------------------------------ a real IdP

/// portcullis verifies JWT access tokens of `oidc-provider` (client_credentials,
/// resource indicator -> RS256 JWT) found through discovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifies_tokens_from_a_real_oidc_provider() {
    let (client_id, secret, resource) = (
        "orders-service",
        "s3cret-for-tests-only-0123456789",
        "urn:portcullis:api",
    );
    let provider = OidcProvider::start(client_id, secret, resource).await;
    let issuer = &provider.issuer;
    let http = reqwest::Client::new();
    let p = Edge::start(&format!(
        "[[issuers]]\nname = \"oidc\"\nissuer = \"{issuer}\"\ndiscovery = true\n\
         audiences = [\"{resource}\"]\nalgorithms = [\"RS256\"]\n"
    ))
    .await;
    p.wait_ready().await;
    let resp: Value = http
        .post(format!("{issuer}/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "api:read"),
            ("resource", resource),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = resp["access_token"].as_str().expect("an access token");
    assert_eq!(access.split('.').count(), 3, "a JWT access token");
    assert_eq!(p.call(access).await, (200, Some(client_id.into())));
    assert_eq!(p.status(&format!("{access}x")).await, 401);
}
