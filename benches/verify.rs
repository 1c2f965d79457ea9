//! Token verification cost (issue #4): per algorithm cold (a full check: parse,
//! signature, claims; what a first sight of a token costs) and hot (a verified-token
//! cache hit: SHA-256 of the token and a lookup).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use portcullis::auth::issuer::{Issuer, KeySource};
use portcullis::auth::keys::{KeyFamily, KeySet, VerifyKey};
use portcullis::auth::verify::{now_secs, Verifier};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
}

/// A key pair of `alg`'s family: (verification key, family, signing key).
fn keypair(alg: Algorithm) -> (DecodingKey, KeyFamily, EncodingKey) {
    use aws_lc_rs::encoding::AsDer;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let der: Vec<u8> = match alg {
        Algorithm::HS256 => {
            let s = b"a-benchmark-secret-of-32-bytes-or-more!";
            return (
                DecodingKey::from_secret(s),
                KeyFamily::Hmac,
                EncodingKey::from_secret(s),
            );
        }
        Algorithm::RS256 => aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .unwrap()
            .as_der()
            .unwrap()
            .as_ref()
            .to_vec(),
        Algorithm::ES256 => aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap()
        .as_ref()
        .to_vec(),
        Algorithm::EdDSA => aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .unwrap()
            .as_ref()
            .to_vec(),
        other => panic!("no bench key for {other:?}"),
    };
    let k = portcullis::auth::keys::private_key_from_pem(pem(&der).as_bytes()).unwrap();
    (k.public, k.family, k.signing)
}

fn bench(c: &mut Criterion) {
    portcullis::install_crypto_providers();
    let algs = [
        Algorithm::RS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
        Algorithm::HS256,
    ];
    let mut issuers = Vec::new();
    let mut tokens = Vec::new();
    for alg in algs {
        let (public, family, signing) = keypair(alg);
        let iss = format!("https://{alg:?}.example");
        issuers.push(Arc::new(Issuer {
            name: format!("{alg:?}"),
            iss: iss.clone(),
            audiences: vec!["api".into()],
            algorithms: vec![alg],
            leeway: Duration::from_secs(30),
            static_keys: Arc::new(KeySet {
                keys: vec![Arc::new(VerifyKey::new(
                    Some("k1".into()),
                    family,
                    Some(alg),
                    public,
                ))],
            }),
            source: KeySource::Static,
            refresh_interval: Duration::from_secs(600),
            ca: None,
            signing: None,
        }));
        let mut h = Header::new(alg);
        h.kid = Some("k1".into());
        let now = now_secs() as u64;
        let claims = serde_json::json!({
            "iss": iss, "sub": "alice", "aud": "api", "iat": now, "exp": now + 3600,
            "scope": "items:read items:write", "jti": "0123456789abcdef",
        });
        tokens.push((alg, jsonwebtoken::encode(&h, &claims, &signing).unwrap()));
    }
    let verifier = Verifier::new(issuers, "sub".into(), 100_000).unwrap();

    let mut cold = c.benchmark_group("verify/cold");
    for (alg, t) in &tokens {
        cold.bench_function(format!("{alg:?}"), |b| {
            b.iter(|| verifier.verify_uncached(black_box(t), now_secs()).unwrap());
        });
    }
    cold.finish();

    let mut hot = c.benchmark_group("verify/hot");
    for (alg, t) in &tokens {
        verifier.verify(t).unwrap();
        hot.bench_function(format!("{alg:?}"), |b| {
            b.iter(|| verifier.verify(black_box(t)).unwrap());
        });
    }
    hot.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
