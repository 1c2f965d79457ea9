//! Parsing a JWK set (SPEC §3) into verification keys. A key's family (and so the
//! algorithms it may verify) comes from the JWK itself (`kty`/`crv`), narrowed by its
//! `alg`; never from a token header. `kty: oct`, `use: enc`, encryption algorithms
//! and unsupported curves are skipped with a log line, never an error for the set.

use super::fetch::JwksError;
use crate::auth::keys::{KeyFamily, VerifyKey};
use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// Parses a JWK set. Each key is parsed on its own, so one odd key does not make
/// the set unusable; only a document that is not `{"keys": [...]}` is an error.
pub fn parse_jwks(url: &str, body: &[u8]) -> Result<Vec<(Jwk, VerifyKey)>, JwksError> {
    let doc: Value = serde_json::from_slice(body)
        .map_err(|_| JwksError::Invalid(url.to_owned(), "not a JSON document"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or_else(|| JwksError::Invalid(url.to_owned(), "no `keys` array"))?;
    let mut out = Vec::with_capacity(keys.len());
    for (i, raw) in keys.iter().enumerate() {
        let kid = raw.get("kid").and_then(Value::as_str).unwrap_or("");
        let parsed = serde_json::from_value::<Jwk>(raw.clone())
            .map_err(|_| "not a valid JWK")
            .and_then(|jwk| key_from_jwk(&jwk).map(|k| (jwk, k)));
        match parsed {
            Ok(k) => out.push(k),
            Err(why) => tracing::info!(url, index = i, kid, reason = why, "JWKS key skipped"),
        }
    }
    Ok(out)
}

/// Builds a verification key from one JWK: family from `kty`/`crv`, checked sizes,
/// `use`/`key_ops`/`alg` honoured. `Err` is the reason it is skipped.
pub fn key_from_jwk(jwk: &Jwk) -> Result<VerifyKey, &'static str> {
    let c = &jwk.common;
    match &c.public_key_use {
        None | Some(PublicKeyUse::Signature) => {}
        Some(PublicKeyUse::Encryption) => return Err("`use` is `enc`"),
        Some(_) => return Err("`use` is not `sig`"),
    }
    if let Some(ops) = &c.key_operations {
        if !ops.iter().any(|o| matches!(o, KeyOperations::Verify)) {
            return Err("`key_ops` does not allow `verify`");
        }
    }
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim_end_matches('='))
            .map_err(|_| "bad base64url")
    };
    let family = match &jwk.algorithm {
        AlgorithmParameters::OctetKey(_) => {
            return Err("`kty: oct` keys are never trusted from a JWKS")
        }
        AlgorithmParameters::RSA(p) => {
            let n = b64(&p.n)?;
            let bits = n.iter().skip_while(|b| **b == 0).count() * 8;
            if !(2048..=8192).contains(&bits) || b64(&p.e)?.is_empty() {
                return Err("RSA modulus outside 2048..8192 bits");
            }
            KeyFamily::Rsa
        }
        AlgorithmParameters::EllipticCurve(p) => {
            let (family, len) = match p.curve {
                EllipticCurve::P256 => (KeyFamily::EcP256, 32),
                EllipticCurve::P384 => (KeyFamily::EcP384, 48),
                _ => return Err("unsupported EC curve (P-256 and P-384 are)"),
            };
            if b64(&p.x)?.len() != len || b64(&p.y)?.len() != len {
                return Err("EC coordinates of the wrong size");
            }
            family
        }
        AlgorithmParameters::OctetKeyPair(p) => {
            if p.curve != EllipticCurve::Ed25519 {
                return Err("unsupported OKP curve (Ed25519 is)");
            }
            if b64(&p.x)?.len() != 32 {
                return Err("Ed25519 key of the wrong size");
            }
            KeyFamily::Ed25519
        }
        _ => return Err("unsupported key type"),
    };
    let alg = match c.key_algorithm {
        None => None,
        Some(a) => {
            let alg = signing_alg(a).ok_or("`alg` is not a signature algorithm we support")?;
            if !family.allows(alg) {
                return Err("`alg` does not fit the key type");
            }
            Some(alg)
        }
    };
    let key = match &jwk.algorithm {
        // As DER, so the key is parsed once rather than on every verification.
        AlgorithmParameters::RSA(p) => {
            crate::auth::keys::rsa_from_components(&b64(&p.n)?, &b64(&p.e)?)
                .map_err(|_| "unusable key material")?
        }
        _ => DecodingKey::from_jwk(jwk).map_err(|_| "unusable key material")?,
    };
    Ok(VerifyKey::new(c.key_id.clone(), family, alg, key))
}

fn signing_alg(a: KeyAlgorithm) -> Option<Algorithm> {
    use Algorithm as A;
    use KeyAlgorithm as K;
    Some(match a {
        K::RS256 => A::RS256,
        K::RS384 => A::RS384,
        K::RS512 => A::RS512,
        K::PS256 => A::PS256,
        K::PS384 => A::PS384,
        K::PS512 => A::PS512,
        K::ES256 => A::ES256,
        K::ES384 => A::ES384,
        K::EdDSA => A::EdDSA,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Vec<(Jwk, VerifyKey)> {
        parse_jwks("test", v.to_string().as_bytes()).expect("set")
    }

    fn ec_p256() -> Value {
        crate::install_crypto_providers();
        let k = crate::auth::keys::private_key_from_pem(
            ec_pem(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING).as_bytes(),
        )
        .expect("key");
        k.jwk
    }

    fn ec_pem(alg: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm) -> String {
        use base64::Engine;
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let doc = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(alg, &rng).expect("gen");
        let b64 = base64::engine::general_purpose::STANDARD.encode(doc.as_ref());
        format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n")
    }

    fn with(mut v: Value, extra: Value) -> Value {
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        v
    }

    #[test]
    fn family_from_the_key_and_alg_honoured() {
        let ec = ec_p256();
        let set = parse(json!({"keys": [
            with(ec.clone(), json!({"kid": "a", "use": "sig", "alg": "ES256"})),
            with(ec.clone(), json!({"kid": "b"})),
        ]}));
        assert_eq!(set.len(), 2);
        assert_eq!(set[0].1.family, KeyFamily::EcP256);
        assert_eq!(set[0].1.alg, Some(Algorithm::ES256));
        assert_eq!(set[0].1.kid.as_deref(), Some("a"));
        assert_eq!(set[1].1.alg, None);
    }

    #[test]
    fn skips_without_failing_the_set() {
        let ec = ec_p256();
        let set = parse(json!({"keys": [
            with(ec.clone(), json!({"kid": "enc", "use": "enc"})),
            with(ec.clone(), json!({"kid": "wrong-alg", "alg": "RS256"})),
            with(ec.clone(), json!({"kid": "enc-alg", "alg": "RSA-OAEP"})),
            with(ec.clone(), json!({"kid": "ops", "key_ops": ["encrypt"]})),
            {"kty": "oct", "k": "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0", "kid": "hmac"},
            {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA", "kid": "p521"},
            {"kty": "OKP", "crv": "X25519", "x": "AA", "kid": "x"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "tiny"},
            {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "kid": "short"},
            {"kty": "weird", "kid": 7},
            "not an object",
            with(ec, json!({"kid": "good"})),
        ]}));
        let kids: Vec<_> = set.iter().map(|(_, k)| k.kid.clone()).collect();
        assert_eq!(kids, vec![Some("good".to_owned())]);
    }

    #[test]
    fn not_a_set_is_an_error() {
        assert!(parse_jwks("u", b"<html>").is_err());
        assert!(parse_jwks("u", b"{\"nokeys\": 1}").is_err());
        assert!(parse_jwks("u", b"{\"keys\": []}").is_ok_and(|s| s.is_empty()));
    }
}
