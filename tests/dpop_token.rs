//! DPoP at the built-in token endpoint (SPEC §10 and §5): a `/token` request with a
//! valid proof (PyJWT, tests/support/dpop.rs) gets a `cnf.jkt`-bound access token and
//! `token_type: DPoP`; its refresh family is bound to the key; an invalid proof is 400
//! `invalid_dpop_proof`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::dpop::ClientKey;
use support::*;

/// The tutorial's hash of "secret" (bcrypt, cost 12).
const JOHN_HASH: &str = "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW";

struct Setup {
    proxy: Proxy,
    up: Upstream,
    keys: tempfile::TempDir,
    key: ClientKey,
}

async fn setup() -> Setup {
    let up = spawn_upstream().await;
    let body = format!(
        "[upstreams.app]\nurl = \"{}\"\n\n\
         [[issuers]]\nname = \"local\"\nissuer = \"https://local.test/\"\nprivate_key = \"signing.pem\"\n\n\
         [token_endpoint]\nissuer = \"local\"\nusers = \"users.toml\"\n\n\
         [[routes]]\npath = \"/**\"\nupstream = \"app\"\n",
        up.url()
    );
    let proxy = Proxy::builder()
        .file("signing.pem", &p256_key().private_pem)
        .file(
            "users.toml",
            format!("[users.johndoe]\npassword_hash = \"{JOHN_HASH}\"\nscopes = [\"me\"]\n"),
        )
        .start(&body)
        .await;
    let keys = tempfile::tempdir().unwrap();
    let key = ClientKey::new(keys.path(), "client", "ec");
    Setup {
        proxy,
        up,
        keys,
        key,
    }
}

impl Setup {
    fn htu(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy.addr)
    }

    async fn token(&self, form: &str, proof: Option<&str>) -> Reply {
        let mut r = Req::post("/token", form.as_bytes().to_vec())
            .header("Content-Type", "application/x-www-form-urlencoded");
        if let Some(p) = proof {
            r = r.header("DPoP", p);
        }
        self.proxy.send(r).await
    }

    fn token_proof(&self, key: &ClientKey) -> String {
        key.proof("POST", &self.htu("/token"), None)
    }
}

const LOGIN: &str = "grant_type=password&username=johndoe&password=secret";

fn refresh_form(body: &Value) -> String {
    format!(
        "grant_type=refresh_token&refresh_token={}",
        body["refresh_token"].as_str().unwrap()
    )
}

#[tokio::test]
async fn a_proof_at_the_token_endpoint_binds_the_tokens() {
    let s = setup().await;
    let r = s.token(LOGIN, Some(&s.token_proof(&s.key))).await;
    r.assert_status(200);
    let body = r.json();
    assert_eq!(body["token_type"], "DPoP");
    let at = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(jwt_part(&at, 1)["cnf"], json!({"jkt": s.key.jkt}));
    // Used with a proof by the key: forwarded; as a bearer token: refused.
    let p = s.key.proof("GET", &s.htu("/me"), Some(&at));
    let r = s
        .proxy
        .send(
            Req::get("/me")
                .header("Authorization", &format!("DPoP {at}"))
                .header("DPoP", &p),
        )
        .await;
    r.assert_status(200);
    assert_eq!(s.up.take()[0].header("x-user"), Some("johndoe"));
    s.proxy.get("/me", Some(&at)).await.assert_status(401);
    assert_eq!(s.up.count(), 0);

    // The discovery document names the proof algorithms (RFC 9449 §5.1).
    let d = s
        .proxy
        .get("/.well-known/openid-configuration", None)
        .await
        .json();
    assert_eq!(
        d["dpop_signing_alg_values_supported"],
        json!(["ES256", "ES384", "EdDSA", "RS256", "PS256"])
    );
    // Refresh with a proof by the same key: a new bound pair.
    let r = s
        .token(&refresh_form(&body), Some(&s.token_proof(&s.key)))
        .await;
    r.assert_status(200);
    let second = r.json();
    assert_eq!(second["token_type"], "DPoP");
    let at2 = second["access_token"].as_str().unwrap();
    assert_eq!(jwt_part(at2, 1)["cnf"], json!({"jkt": s.key.jkt}));
    // Refresh without a proof: 400 invalid_grant.
    let r = s.token(&refresh_form(&second), None).await;
    r.assert_status(400);
    assert_eq!(
        r.json(),
        json!({"detail": "Invalid refresh token", "error": "invalid_grant"})
    );
}

#[tokio::test]
async fn a_refresh_with_another_key_is_refused() {
    let s = setup().await;
    let body = s.token(LOGIN, Some(&s.token_proof(&s.key))).await.json();
    let thief = ClientKey::new(s.keys.path(), "thief", "ec");
    let r = s
        .token(&refresh_form(&body), Some(&s.token_proof(&thief)))
        .await;
    r.assert_status(400);
    assert_eq!(r.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn an_invalid_proof_at_the_token_endpoint_is_400() {
    let s = setup().await;
    let htu = s.htu("/token");
    let replayed = s.token_proof(&s.key);
    s.token(LOGIN, Some(&replayed)).await.assert_status(200);
    let bad = s.key.proofs(&[
        json!({"htm": "GET", "htu": htu}),
        json!({"htm": "POST", "htu": s.htu("/other")}),
        json!({"htm": "POST", "htu": htu, "iat": 3600}),
        json!({"htm": "POST", "htu": htu, "header": {"typ": "JWT"}}),
        json!({"htm": "POST", "htu": htu, "private_jwk": true}),
    ]);
    let mut cases: Vec<(&str, String)> = vec![
        ("htm GET", bad[0].clone()),
        ("another URL", bad[1].clone()),
        ("iat far future", bad[2].clone()),
        ("typ JWT", bad[3].clone()),
        ("private jwk", bad[4].clone()),
        ("garbage", "not-a-proof".into()),
    ];
    cases.push(("replayed", replayed));
    for (what, proof) in cases {
        let r = s.token(LOGIN, Some(&proof)).await;
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        assert_eq!(
            r.json(),
            json!({"detail": "Invalid DPoP proof", "error": "invalid_dpop_proof"}),
            "{what}"
        );
    }
    // Without a proof: a plain bearer token, as before.
    let r = s.token(LOGIN, None).await;
    r.assert_status(200);
    let body = r.json();
    assert_eq!(body["token_type"], "bearer");
    assert!(jwt_part(body["access_token"].as_str().unwrap(), 1)
        .get("cnf")
        .is_none());
}
