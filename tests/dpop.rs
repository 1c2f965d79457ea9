//! DPoP sender-constrained tokens on the resource side (SPEC §10, RFC 9449): proofs
//! built by an independent implementation (PyJWT + cryptography,
//! tests/support/dpop.rs), tokens bound with `cnf.jkt`. Every refusal is checked for
//! its status, body and `WWW-Authenticate: DPoP`, and for never reaching the upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::dpop::ClientKey;
use support::*;

const ALGS: &str = "algs=\"ES256 ES384 EdDSA RS256 PS256\"";

struct Setup {
    proxy: Proxy,
    up: Upstream,
    key: ClientKey,
    keys: tempfile::TempDir,
}

fn config(up: &Upstream, state: &str) -> String {
    format!(
        "[upstreams.app]\nurl = \"{}\"\n\n{}\n{state}\n\
         [[routes]]\nname = \"strict\"\npath = \"/strict/**\"\ndpop = \"required\"\nupstream = \"app\"\n\n\
         [[routes]]\nname = \"open\"\npath = \"/open/**\"\naccess = \"optional\"\ndpop = \"required\"\nupstream = \"app\"\n\n\
         [[routes]]\nname = \"any\"\npath = \"/**\"\nupstream = \"app\"\n",
        up.url(),
        hs_issuer()
    )
}

async fn setup() -> Setup {
    let up = spawn_upstream().await;
    let proxy = Proxy::start(&config(&up, "")).await;
    let keys = tempfile::tempdir().unwrap();
    let key = ClientKey::new(keys.path(), "client", "ec");
    Setup {
        proxy,
        up,
        key,
        keys,
    }
}

impl Setup {
    fn htu(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy.addr)
    }

    /// A token bound to `jkt`.
    fn bound(&self, jkt: &str) -> String {
        token("alice", json!({"cnf": {"jkt": jkt}}))
    }

    async fn dpop(&self, path: &str, token: &str, proofs: &[&str]) -> Reply {
        let mut r = Req::get(path).header("Authorization", &format!("DPoP {token}"));
        for p in proofs {
            r = r.header("DPoP", p);
        }
        self.proxy.send(r).await
    }

    /// A refusal of the proof: 401, the §10 challenge, nothing forwarded.
    fn assert_bad_proof(&self, r: &Reply, what: &str) {
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        assert_eq!(
            r.json()["detail"],
            "Could not validate credentials",
            "{what}"
        );
        let www = r.header("www-authenticate").unwrap_or_default();
        assert!(
            www.starts_with("DPoP error=\"invalid_dpop_proof\", error_description=\""),
            "{what}: {www}"
        );
        assert!(www.ends_with(ALGS), "{what}: {www}");
        assert_eq!(self.up.count(), 0, "{what}: forwarded");
    }

    fn assert_bad_token(&self, r: &Reply, what: &str) {
        assert_eq!(r.status, 401, "{what}: {}", r.text());
        let www = r.header("www-authenticate").unwrap_or_default();
        assert!(
            www.starts_with("DPoP error=\"invalid_token\""),
            "{what}: {www}"
        );
        assert!(www.ends_with(ALGS), "{what}: {www}");
        assert_eq!(self.up.count(), 0, "{what}: forwarded");
    }
}

#[tokio::test]
async fn bound_token_with_fresh_proofs_and_the_cache_hit_case() {
    let s = setup().await;
    let tok = s.bound(&s.key.jkt);
    let path = "/strict/items";
    let proofs = s.key.proofs(&[
        json!({"htm": "GET", "htu": s.htu(path), "token": tok}),
        json!({"htm": "GET", "htu": s.htu(path), "token": tok}),
    ]);
    let r = s.dpop(path, &tok, &[&proofs[0]]).await;
    r.assert_status(200);
    assert_eq!(s.up.last().header("x-user"), Some("alice"));
    assert_eq!(s.up.last().header("dpop"), Some(proofs[0].as_str()));
    // The token is in the verified-token cache now: a hit still needs a fresh proof,
    // and the proof's replay check.
    let r = s.dpop(path, &tok, &[&proofs[1]]).await;
    r.assert_status(200);
    assert_eq!(s.up.take().len(), 2);
    let r = s.dpop(path, &tok, &[&proofs[1]]).await;
    s.assert_bad_proof(&r, "cache hit, replayed proof");
    assert!(r.header("www-authenticate").unwrap().contains("replayed"));
    let r = s.dpop(path, &tok, &[]).await;
    s.assert_bad_proof(&r, "cache hit, no proof");
    // The same on a route that does not require DPoP: a bound token always does.
    let p = s.key.proof("GET", &s.htu("/any"), Some(&tok));
    s.dpop("/any", &tok, &[&p]).await.assert_status(200);
    assert_eq!(s.up.take().len(), 1);
    let r = s.dpop("/any", &tok, &[&p]).await;
    s.assert_bad_proof(&r, "replay 1 ms later on another route");
}

#[tokio::test]
async fn each_proof_defect_alone_is_refused() {
    let s = setup().await;
    let tok = s.bound(&s.key.jkt);
    let path = "/strict/x";
    let htu = s.htu(path);
    let other = s.keys.path().join("other.pem");
    let huge_n = "A".repeat(9000);
    let cases: Vec<(&str, Value)> = vec![
        ("typ JWT", json!({"header": {"typ": "JWT"}})),
        ("typ missing", json!({"drop_header": ["typ"]})),
        ("alg HS256", json!({"header": {"alg": "HS256"}})),
        ("alg none", json!({"header": {"alg": "none"}})),
        ("jwk missing", json!({"drop_header": ["jwk"]})),
        ("jwk with private key", json!({"private_jwk": true})),
        ("signature by another key", json!({"sign_with": other})),
        ("htm POST for a GET", json!({"htm": "POST"})),
        (
            "proof for another URL",
            json!({"htu": s.htu("/strict/other")}),
        ),
        (
            "proof for another host",
            json!({"htu": format!("http://evil.test{path}")}),
        ),
        (
            "proof for https",
            json!({"htu": htu.replace("http:", "https:")}),
        ),
        ("iat far in the future", json!({"iat": 3600})),
        ("iat an hour old", json!({"iat": -3600})),
        ("iat missing", json!({"drop_claims": ["iat"]})),
        ("jti missing", json!({"drop_claims": ["jti"]})),
        (
            "ath of another token",
            json!({"token": "another.token.here"}),
        ),
        ("ath missing", json!({"token": null})),
        ("crit header", json!({"header": {"crit": ["x"]}})),
        (
            "huge jwk",
            json!({"jwk": {"kty": "RSA", "e": "AQAB", "n": huge_n}}),
        ),
        (
            "malformed jwk",
            json!({"jwk": {"kty": "EC", "crv": "P-256", "x": "!!", "y": 7}}),
        ),
        (
            "jwk of an unknown type",
            json!({"jwk": {"kty": "oct", "kid": "x"}}),
        ),
        ("jwk not an object", json!({"jwk": "key"})),
    ];
    // One proof per defect, all built in one run of the Python helper.
    let specs: Vec<Value> = cases
        .iter()
        .map(|(_, spec)| {
            let mut spec = spec.clone();
            let o = spec.as_object_mut().unwrap();
            o.entry("htm").or_insert("GET".into());
            o.entry("htu").or_insert(htu.clone().into());
            o.entry("token").or_insert(tok.clone().into());
            spec
        })
        .collect();
    let proofs = s.key.proofs(&specs);
    for ((what, _), proof) in cases.iter().zip(&proofs) {
        let r = s.dpop(path, &tok, &[proof]).await;
        s.assert_bad_proof(&r, what);
    }
    // Not a JWT at all, and two DPoP headers (each proof valid alone).
    s.assert_bad_proof(&s.dpop(path, &tok, &["garbage"]).await, "garbage proof");
    let two = s.key.proofs(&[
        json!({"htm": "GET", "htu": htu, "token": tok}),
        json!({"htm": "GET", "htu": htu, "token": tok}),
    ]);
    s.assert_bad_proof(
        &s.dpop(path, &tok, &[&two[0], &two[1]]).await,
        "two DPoP headers",
    );
    // A valid proof by a key other than the one the token is bound to.
    let stranger = ClientKey::new(s.keys.path(), "stranger", "ec");
    let p = stranger.proof("GET", &htu, Some(&tok));
    s.assert_bad_proof(&s.dpop(path, &tok, &[&p]).await, "key not the bound one");
    // After all that, the client's real proof still works (nothing was remembered),
    // and `htu` is compared after RFC 9449 §4.3 normalization: scheme and host case,
    // query and fragment ignored, the path as routes see it.
    let upper = format!("HTTP://{}/strict/./x?page=2#top", s.proxy.addr);
    let p = s.key.proof("GET", &upper, Some(&tok));
    s.dpop(path, &tok, &[&p]).await.assert_status(200);
}

#[tokio::test]
async fn weak_and_other_key_types() {
    let s = setup().await;
    let path = "/strict/k";
    for kind in ["ec384", "ed", "rsa"] {
        let k = ClientKey::new(s.keys.path(), kind, kind);
        let tok = s.bound(&k.jkt);
        let p = k.proof("GET", &s.htu(path), Some(&tok));
        s.dpop(path, &tok, &[&p]).await.assert_status(200);
        assert_eq!(s.up.take().len(), 1, "{kind}");
    }
    let weak = ClientKey::new(s.keys.path(), "weak", "rsa1024");
    let tok = s.bound(&weak.jkt);
    let p = weak.proof("GET", &s.htu(path), Some(&tok));
    let r = s.dpop(path, &tok, &[&p]).await;
    s.assert_bad_proof(&r, "RSA 1024");
    assert!(r.header("www-authenticate").unwrap().contains("too weak"));
}

#[tokio::test]
async fn scheme_binding_and_required_routes() {
    let s = setup().await;
    let bound = s.bound(&s.key.jkt);
    let plain = token("bob", json!({}));
    // A bound token as a bearer token: refused, whatever the route.
    for path in ["/strict/a", "/any"] {
        let r = s.proxy.get(path, Some(&bound)).await;
        s.assert_bad_token(&r, "bound token as Bearer");
        let p = s.key.proof("GET", &s.htu(path), Some(&bound));
        let r = s
            .proxy
            .send(Req::get(path).bearer(&bound).header("DPoP", &p))
            .await;
        s.assert_bad_token(&r, "bound token as Bearer with a proof");
    }
    // An unbound token with the DPoP scheme, even with a valid proof.
    let p = s.key.proof("GET", &s.htu("/any"), Some(&plain));
    s.assert_bad_token(
        &s.dpop("/any", &plain, &[&p]).await,
        "unbound token, DPoP scheme",
    );
    // dpop = "required": an unbound bearer token is refused, no token is 401 with
    // the DPoP challenge; an optional route lets the anonymous through.
    let r = s.proxy.get("/strict/a", Some(&plain)).await;
    s.assert_bad_token(&r, "unbound token on a required route");
    let r = s.proxy.get("/strict/a", None).await;
    r.assert_denied(401, "Not authenticated");
    assert_eq!(
        r.header("www-authenticate"),
        Some(format!("DPoP {ALGS}").as_str())
    );
    assert_eq!(s.up.count(), 0);
    s.proxy.get("/open/a", None).await.assert_status(200);
    assert!(!s.up.take()[0].has_header("x-user"));
    // An unbound bearer token elsewhere is fine (DPoP is per token), and a stray
    // DPoP header beside it changes nothing.
    s.proxy.get("/any", Some(&plain)).await.assert_status(200);
    let r = s
        .proxy
        .send(Req::get("/any").bearer(&plain).header("DPoP", "x"))
        .await;
    r.assert_status(200);
    // An expired bound token with the DPoP scheme: the DPoP challenge, token error.
    let mut c = claims(ISS, "alice");
    c["exp"] = json!(now() - 3600);
    c["cnf"] = json!({"jkt": s.key.jkt});
    let expired = mint("HS256", Signer::Secret(SECRET.as_bytes()), &c);
    s.up.take();
    let p = s.key.proof("GET", &s.htu("/any"), Some(&expired));
    let r = s.dpop("/any", &expired, &[&p]).await;
    r.assert_denied(401, "Token has expired");
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .starts_with("DPoP error=\"invalid_token\", error_description=\"token expired\""));
    assert_eq!(s.up.count(), 0);
}

#[tokio::test]
async fn replay_to_a_second_replica_sharing_redis() {
    let redis = support::redis::Redis::start();
    let up = spawn_upstream().await;
    let state = format!("[state]\nbackend = \"redis\"\nurl = \"{}\"\n", redis.url());
    let a = Proxy::start(&config(&up, &state)).await;
    let b = Proxy::start(&config(&up, &state)).await;
    let keys = tempfile::tempdir().unwrap();
    let key = ClientKey::new(keys.path(), "client", "ec");
    let tok = token("alice", json!({"cnf": {"jkt": key.jkt}}));
    // Both replicas answer on 127.0.0.1, with the same Host: one htu fits both.
    let host = "portcullis.test";
    let p = key.proof("GET", &format!("http://{host}/strict/x"), Some(&tok));
    let req = Req::get("/strict/x")
        .host(host)
        .header("Authorization", &format!("DPoP {tok}"))
        .header("DPoP", &p);
    a.send(req.clone()).await.assert_status(200);
    assert_eq!(up.take().len(), 1);
    let r = b.send(req).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.header("www-authenticate").unwrap().contains("replayed"));
    assert_eq!(up.count(), 0);
}

/// SPEC §11 + §10: behind a trusted proxy that says `X-Forwarded-Proto: https`, the
/// proof's `htu` is the https URL the client used; from an untrusted peer the same
/// header is not believed and that proof is refused (its `htu` names another scheme).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htu_follows_the_scheme_a_trusted_proxy_reports() {
    let up = spawn_upstream().await;
    let proxy = Proxy::builder()
        .server("trusted_proxies = [\"127.0.0.1/32\"]")
        .start(&config(&up, ""))
        .await;
    let keys = tempfile::tempdir().unwrap();
    let key = ClientKey::new(keys.path(), "client", "ec");
    let tok = token("alice", json!({"cnf": {"jkt": key.jkt}}));
    let path = "/strict/items";
    let https = format!("https://{}{path}", proxy.addr);
    let proofs = key.proofs(&[
        json!({"htm": "GET", "htu": https, "token": tok}),
        json!({"htm": "GET", "htu": https, "token": tok}),
    ]);
    let req = |proof: &str| {
        Req::get(path)
            .header("Authorization", &format!("DPoP {tok}"))
            .header("DPoP", proof)
            .header("X-Forwarded-Proto", "https")
    };
    let r = proxy.send_from([127, 0, 0, 1], req(&proofs[0])).await;
    r.assert_status(200);
    assert_eq!(up.take().len(), 1);
    let r = proxy.send_from([127, 0, 0, 2], req(&proofs[1])).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let www = r.header("www-authenticate").unwrap_or_default();
    assert!(www.contains("invalid_dpop_proof"), "{www}");
    assert_eq!(up.count(), 0, "forwarded");
}
