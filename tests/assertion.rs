//! The signed identity assertion (SPEC §10): every claim and header of the JWS,
//! verified by an independent implementation (PyJWT, tests/support/dpop.rs) against
//! the proxy's own `GET /.well-known/jwks.json`; reuse per caller and upstream within
//! half the ttl and a new one after; client-sent copies stripped; an assertion
//! replayed as a bearer token refused; `check` refusing the token endpoint's issuer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::dpop::{run, verify_assertion};
use support::*;

const ASSERT_ISS: &str = "https://portcullis.assert/";
const HEADER: &str = "x-portcullis-assertion";

struct Setup {
    proxy: Proxy,
    app: Upstream,
    other: Upstream,
}

fn config(app: &Upstream, other: &Upstream, issuer: &str, ttl: &str) -> String {
    format!(
        "[upstreams.app]\nurl = \"{}\"\naudience = \"orders-api\"\n\n\
         [upstreams.other]\nurl = \"{}\"\n\n\
         [identity]\nheader = \"X-User\"\n[identity.claims_to_headers]\n\"X-User-Email\" = \"email\"\n\"X-User-Groups\" = \"groups\"\n\
         [identity.assertion]\nissuer = \"assert\"\nttl = \"{ttl}\"\n\n\
         {issuer}\n{}\n\
         [[routes]]\nname = \"open\"\npath = \"/public/**\"\naccess = \"public\"\nupstream = \"app\"\n\n\
         [[routes]]\nname = \"maybe\"\npath = \"/maybe/**\"\naccess = \"optional\"\nupstream = \"app\"\n\n\
         [[routes]]\nname = \"other\"\npath = \"/other/**\"\nupstream = \"other\"\n\n\
         [[routes]]\nname = \"app\"\npath = \"/**\"\nupstream = \"app\"\n",
        app.url(),
        other.url(),
        hs_issuer()
    )
}

fn ec_issuer() -> String {
    format!(
        "[[issuers]]\nname = \"assert\"\nissuer = \"{ASSERT_ISS}\"\nprivate_key = \"assert.pem\"\n"
    )
}

async fn setup_with(key: &TestKey, issuer: &str, ttl: &str) -> Setup {
    let app = spawn_upstream().await;
    let other = spawn_upstream().await;
    let proxy = Proxy::builder()
        .file("assert.pem", &key.private_pem)
        .start(&config(&app, &other, issuer, ttl))
        .await;
    Setup { proxy, app, other }
}

async fn assertion_of(s: &Setup, path: &str, tok: &str, up: &Upstream) -> String {
    s.proxy.get(path, Some(tok)).await.assert_status(200);
    let rec = up.take();
    assert_eq!(rec.len(), 1);
    let all = rec[0].header_all(HEADER);
    assert_eq!(all.len(), 1, "one assertion header: {all:?}");
    all[0].to_owned()
}

fn alice() -> String {
    token(
        "alice",
        json!({"email": "alice@example.com", "groups": ["ops", "sre"], "role": "x"}),
    )
}

#[tokio::test]
async fn every_claim_and_header_verified_with_pyjwt_against_the_jwks() {
    let s = setup_with(p256_key(), &ec_issuer(), "60s").await;
    let before = now();
    let a = assertion_of(&s, "/items", &alice(), &s.app).await;
    let after = now();
    let jwks_url = s.proxy.url("/.well-known/jwks.json");
    let v = verify_assertion(&a, &jwks_url, "orders-api", ASSERT_ISS);
    let (h, c) = (&v["header"], &v["claims"]);
    // The kid is the RFC 7638 thumbprint of the published key (computed by Python).
    let jwks: Value = reqwest::get(&jwks_url).await.unwrap().json().await.unwrap();
    let jwk = &jwks["keys"][0];
    let jkt = run(&json!({"op": "thumbprint", "jwk": jwk}))["jkt"].clone();
    assert_eq!(h, &json!({"alg": "ES256", "kid": jkt, "typ": "JWT"}));
    assert_eq!(jwk["kid"], jkt);
    let iat = c["iat"].as_u64().unwrap();
    assert!(
        (before..=after).contains(&iat),
        "iat {iat} not in {before}..={after}"
    );
    assert_eq!(
        c,
        &json!({"iss": ASSERT_ISS, "sub": "alice", "aud": "orders-api", "iat": iat,
            "exp": iat + 60, "email": "alice@example.com", "groups": ["ops", "sre"]})
    );
    // Another upstream: its name is the audience. A caller without an email claim
    // gets no email claim.
    let a = assertion_of(&s, "/other/x", &token("bob", json!({})), &s.other).await;
    let v = verify_assertion(&a, &jwks_url, "other", ASSERT_ISS);
    assert_eq!(v["claims"]["sub"], "bob");
    assert!(v["claims"].get("email").is_none());
}

#[tokio::test]
async fn rs256_and_eddsa_issuers_with_a_kid() {
    for (key, alg) in [(rsa_key(), "RS256"), (ed25519_key(), "EdDSA")] {
        let issuer = format!("{}kid = \"assert-1\"\n", ec_issuer());
        let s = setup_with(key, &issuer, "60s").await;
        let a = assertion_of(&s, "/x", &alice(), &s.app).await;
        let v = verify_assertion(
            &a,
            &s.proxy.url("/.well-known/jwks.json"),
            "orders-api",
            ASSERT_ISS,
        );
        assert_eq!(
            v["header"],
            json!({"alg": alg, "kid": "assert-1", "typ": "JWT"})
        );
    }
}

#[tokio::test]
async fn reused_within_half_the_ttl_then_signed_again() {
    // 60 s: reused for the same caller and upstream (the same string), not for another
    // caller or another upstream.
    let s = setup_with(p256_key(), &ec_issuer(), "60s").await;
    let tok = alice();
    let first = assertion_of(&s, "/x", &tok, &s.app).await;
    assert_eq!(assertion_of(&s, "/y", &tok, &s.app).await, first);
    assert_ne!(
        assertion_of(&s, "/x", &token("bob", json!({})), &s.app).await,
        first
    );
    assert_ne!(assertion_of(&s, "/other/x", &tok, &s.other).await, first);
    // A token of the same user with other claims is another caller.
    let changed = token("alice", json!({"email": "new@example.com"}));
    assert_ne!(assertion_of(&s, "/x", &changed, &s.app).await, first);
    assert_eq!(assertion_of(&s, "/x", &tok, &s.app).await, first);

    // 2 s: once half of it is gone, a new one (with a later iat).
    let s = setup_with(p256_key(), &ec_issuer(), "2s").await;
    let first = assertion_of(&s, "/x", &tok, &s.app).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let newer = loop {
        let a = assertion_of(&s, "/x", &tok, &s.app).await;
        if a != first {
            break a;
        }
        assert!(Instant::now() < deadline, "never signed again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let iat = |t: &str| jwt_part(t, 1)["iat"].as_u64().unwrap();
    assert!(iat(&newer) > iat(&first));
    assert_eq!(
        jwt_part(&newer, 1)["exp"].as_u64().unwrap(),
        iat(&newer) + 2
    );
}

#[tokio::test]
async fn client_copies_stripped_and_no_assertion_without_identity() {
    let s = setup_with(p256_key(), &ec_issuer(), "60s").await;
    let forged = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.";
    for name in [
        "X-Portcullis-Assertion",
        "x_portcullis_assertion",
        "X-PORTCULLIS_ASSERTION",
    ] {
        for path in ["/public/a", "/maybe/a"] {
            let r = s.proxy.send(Req::get(path).header(name, forged)).await;
            r.assert_status(200);
            let rec = s.app.take();
            let names: Vec<String> = rec[0]
                .headers
                .iter()
                .map(|(k, _)| k.to_ascii_lowercase())
                .collect();
            assert!(
                !names.iter().any(|n| n.replace('_', "-") == HEADER),
                "{name} on {path} reached the upstream: {names:?}"
            );
        }
        let r = s
            .proxy
            .send(Req::get("/x").bearer(&alice()).header(name, forged))
            .await;
        r.assert_status(200);
        let rec = s.app.take();
        let all: Vec<&str> = rec[0]
            .headers
            .iter()
            .filter(|(k, _)| k.to_ascii_lowercase().replace('_', "-") == HEADER)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(all.len(), 1);
        assert_ne!(all[0], forged);
    }
}

#[tokio::test]
async fn an_assertion_replayed_as_a_bearer_token_is_refused() {
    let s = setup_with(p256_key(), &ec_issuer(), "60s").await;
    let a = assertion_of(&s, "/x", &alice(), &s.app).await;
    for path in ["/x", "/other/x", "/maybe/x"] {
        let r = s.proxy.get(path, Some(&a)).await;
        r.assert_invalid_token();
    }
    assert_eq!(s.app.count() + s.other.count(), 0);
}

#[tokio::test]
async fn check_refuses_the_token_endpoint_issuer_as_assertion_issuer() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("assert.pem"), &p256_key().private_pem).unwrap();
    std::fs::write(dir.path().join("users.toml"), "").unwrap();
    let text = format!(
        "[upstreams.app]\nurl = \"echo:\"\n[identity.assertion]\nissuer = \"assert\"\n\n{}\n\
         [token_endpoint]\nissuer = \"assert\"\nusers = \"users.toml\"\n\n\
         [[routes]]\npath = \"/**\"\nupstream = \"app\"\n",
        ec_issuer()
    );
    std::fs::write(dir.path().join("proxy.toml"), &text).unwrap();
    let out = cli(&["check", "--config", "proxy.toml"], dir.path(), &[]).await;
    out.assert_code(1);
    let line = line_of(&text, "issuer = \"assert\"");
    assert!(
        out.stderr.contains(&format!("proxy.toml:{line}:")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("assertion issuer must be another"),
        "{}",
        out.stderr
    );
    // An HMAC issuer cannot sign assertions either.
    let text = format!(
        "[upstreams.app]\nurl = \"echo:\"\n[identity.assertion]\nissuer = \"test\"\n\n{}\n\
         [[routes]]\npath = \"/**\"\nupstream = \"app\"\n",
        hs_issuer()
    );
    std::fs::write(dir.path().join("proxy.toml"), &text).unwrap();
    let out = cli(&["check", "--config", "proxy.toml"], dir.path(), &[]).await;
    out.assert_code(1);
    assert!(
        out.stderr.contains("cannot sign assertions"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn one_jwks_with_the_token_endpoint_key_and_the_assertion_key() {
    let app = spawn_upstream().await;
    let other = spawn_upstream().await;
    let body = format!(
        "[upstreams.app]\nurl = \"{}\"\n[identity.assertion]\nissuer = \"assert\"\n\n{}\n{}\n\
         [[issuers]]\nname = \"local\"\nissuer = \"https://local.test/\"\nprivate_key = \"local.pem\"\nkid = \"local-1\"\n\
         [token_endpoint]\nissuer = \"local\"\nusers = \"users.toml\"\n\n\
         [[routes]]\npath = \"/**\"\nupstream = \"app\"\n",
        app.url(),
        ec_issuer(),
        hs_issuer()
    );
    let proxy = Proxy::builder()
        .file("assert.pem", &p256_key().private_pem)
        .file("local.pem", &ed25519_key().private_pem)
        .file("users.toml", "")
        .start(&body)
        .await;
    let jwks = proxy.get("/.well-known/jwks.json", None).await.json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "{jwks}");
    assert_eq!(kids[0], "local-1");
    let s = Setup { proxy, app, other };
    let a = assertion_of(&s, "/x", &alice(), &s.app).await;
    let v = verify_assertion(
        &a,
        &s.proxy.url("/.well-known/jwks.json"),
        "app",
        ASSERT_ISS,
    );
    assert_eq!(v["header"]["kid"], kids[1]);
}
