//! Criterion benches for issue 19: one DPoP proof verification (ES256, the cost a
//! DPoP request adds on top of its cached token), the identity-assertion lookup on a
//! hot request (a cache hit), and a whole hot decision with and without the
//! assertion (an HS256 token already in the verified-token cache, a public-key
//! assertion issuer), so the assertion's share of a hot request can be read off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue, Method, Version};
use portcullis::app::Runtime;
use portcullis::auth::dpop::{self, Expect};
use portcullis::auth::verify::now_secs;
use portcullis::decide::{self, HostSource, RequestFacts};
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

const SECRET: &str = "bench-secret-0123456789abcdef0123456789abcdef";

fn es256_proof(htu: &str, token: &str) -> String {
    let rng = SystemRandom::new();
    let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let kp = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).unwrap();
    let p = kp.public_key().as_ref();
    let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {
        "kty": "EC", "crv": "P-256", "x": B64.encode(&p[1..33]), "y": B64.encode(&p[33..65])}});
    let claims = serde_json::json!({"htm": "GET", "htu": htu, "iat": now_secs() as u64,
        "jti": "4f2a9c1e-bench", "ath": dpop::ath(token)});
    let msg = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = kp.sign(&rng, msg.as_bytes()).unwrap();
    format!("{msg}.{}", B64.encode(sig.as_ref()))
}

fn hs256(claims: &serde_json::Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), claims, &key).unwrap()
}

fn runtime(assertion: bool, dir: &Path) -> Runtime {
    std::fs::write(
        dir.join("a.pem"),
        portcullis::auth::keys::generate_ed25519_pem().unwrap(),
    )
    .unwrap();
    let extra = if assertion {
        "[identity.assertion]\nissuer = \"assert\"\n\n[[issuers]]\nname = \"assert\"\n\
         issuer = \"https://portcullis.internal/\"\nprivate_key = \"a.pem\"\n"
    } else {
        ""
    };
    let text = format!(
        "[upstreams.app]\nurl = \"http://127.0.0.1:9\"\n[identity.claims_to_headers]\n\"X-User-Email\" = \"email\"\n\
         {extra}\n[[issuers]]\nname = \"t\"\nissuer = \"https://t/\"\nsecret = \"{SECRET}\"\n\
         [[routes]]\npath = \"/**\"\nupstream = \"app\"\n"
    );
    let path = dir.join("proxy.toml");
    let cfg = portcullis::config::load_str(&path, &text).expect("config");
    Runtime::new(cfg).expect("runtime")
}

fn bench(c: &mut Criterion) {
    portcullis::install_crypto_providers();
    let htu = "https://api.example.com/orders/42";
    let token = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
    let proof = es256_proof(htu, token);
    let expect = Expect {
        method: "GET",
        htu,
        access_token: Some(token),
        leeway: Duration::from_secs(30),
    };
    c.bench_function("dpop/proof_verify_es256", |b| {
        b.iter(|| dpop::check(black_box(&proof), &expect, now_secs()).unwrap())
    });

    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let now = now_secs() as u64;
    let tok = hs256(
        &serde_json::json!({"iss": "https://t/", "sub": "alice", "email": "a@example.com",
        "iat": now, "exp": now + 3600}),
    );
    let mut headers = HeaderMap::new();
    headers.insert("host", HeaderValue::from_static("api.example.com"));
    headers.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {tok}")).unwrap(),
    );
    let uri: http::Uri = "/orders/42".parse().unwrap();
    let facts = RequestFacts {
        method: &Method::GET,
        host: HostSource::Request {
            version: Version::HTTP_11,
            uri: &uri,
        },
        path: "/orders/42",
        query: None,
        headers: &headers,
        tls: true,
        client: std::net::Ipv4Addr::LOCALHOST.into(),
    };
    for (name, with) in [
        ("dpop/hot_decision_without_assertion", false),
        ("dpop/hot_decision_with_assertion", true),
    ] {
        let rt = tokio.block_on(async { runtime(with, dir.path()) });
        let engine = rt.engine();
        let run = || async {
            let req = decide::normalize::normalize(&facts).unwrap();
            let d = decide::decide(&engine, &facts, &req).await;
            assert!(d.verdict.is_ok());
            d.verdict.map(|a| a.assertion.is_some()).unwrap()
        };
        assert_eq!(tokio.block_on(run()), with);
        c.bench_function(name, |b| b.iter(|| tokio.block_on(run())));
        if with {
            let a = rt.assertions.as_ref().unwrap();
            let v = rt.verifier.verify(&tok).unwrap();
            let aud: std::sync::Arc<str> = "app".into();
            a.get(&v, &aud).unwrap();
            c.bench_function("dpop/assertion_lookup_hot", |b| {
                b.iter(|| a.get(black_box(&v), &aud).unwrap())
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
