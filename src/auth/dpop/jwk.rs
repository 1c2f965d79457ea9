//! The `jwk` header of a DPoP proof (RFC 9449 §4.2): a public key only, of a family
//! that fits the proof's asymmetric `alg`, and its RFC 7638 SHA-256 thumbprint (the
//! value a bound token's `cnf.jkt` names). Sizes are bounded before decoding; an RSA
//! modulus under 2048 bits is refused; nothing here panics on hostile input.

use super::ProofError;
use crate::auth::claims;
use aws_lc_rs::signature::{self as sig, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

/// JWK members that hold private key material (RFC 7518 §6.2.2, §6.3.2, §6.4; RFC
/// 8037 §2): a proof whose `jwk` has any of them is refused.
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// Smallest RSA modulus accepted, in bytes (2048 bits).
pub const RSA_MIN_BYTES: usize = 256;
/// Largest RSA modulus accepted, in bytes (8192 bits).
pub const RSA_MAX_BYTES: usize = 1024;

/// A proof key: what verifies its signature, and its thumbprint.
pub struct ProofKey {
    kind: Kind,
    /// base64url SHA-256 of the RFC 7638 canonical JWK.
    pub thumbprint: String,
}

enum Kind {
    /// Uncompressed EC point (P-256 or P-384) or Ed25519 public key.
    Raw(Vec<u8>),
    /// RSA modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

fn member<'a>(jwk: &'a Map<String, Value>, name: &str) -> Result<&'a str, ProofError> {
    match jwk.get(name) {
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 2048 => Ok(s.as_str()),
        _ => Err(ProofError::BadJwk),
    }
}

fn decode(s: &str) -> Result<Vec<u8>, ProofError> {
    claims::b64(s).map_err(|_| ProofError::BadJwk)
}

/// The RFC 7638 thumbprint of the required members, given in lexicographic order.
fn thumbprint(members: &[(&str, &str)]) -> String {
    let mut canon = String::with_capacity(256);
    canon.push('{');
    for (i, (k, v)) in members.iter().enumerate() {
        if i > 0 {
            canon.push(',');
        }
        // Member values are base64url or curve names; serialize them as JSON anyway.
        canon.push_str(&format!("\"{k}\":{}", Value::from(*v)));
    }
    canon.push('}');
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canon.as_bytes());
    URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// The public key of a proof's `jwk`, which must fit `alg`.
pub fn parse(jwk: &Value, alg: Algorithm) -> Result<ProofKey, ProofError> {
    let Value::Object(jwk) = jwk else {
        return Err(ProofError::BadJwk);
    };
    if PRIVATE_MEMBERS.iter().any(|m| jwk.contains_key(*m)) {
        return Err(ProofError::PrivateJwk);
    }
    match member(jwk, "kty")? {
        "EC" => ec(jwk, alg),
        "OKP" => okp(jwk, alg),
        "RSA" => rsa(jwk, alg),
        _ => Err(ProofError::BadJwk),
    }
}

fn ec(jwk: &Map<String, Value>, alg: Algorithm) -> Result<ProofKey, ProofError> {
    let crv = member(jwk, "crv")?;
    let len = match (crv, alg) {
        ("P-256", Algorithm::ES256) => 32,
        ("P-384", Algorithm::ES384) => 48,
        _ => return Err(ProofError::BadJwk),
    };
    let (x, y) = (member(jwk, "x")?, member(jwk, "y")?);
    let (xb, yb) = (decode(x)?, decode(y)?);
    if xb.len() != len || yb.len() != len {
        return Err(ProofError::BadJwk);
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(4);
    point.extend_from_slice(&xb);
    point.extend_from_slice(&yb);
    Ok(ProofKey {
        kind: Kind::Raw(point),
        thumbprint: thumbprint(&[("crv", crv), ("kty", "EC"), ("x", x), ("y", y)]),
    })
}

fn okp(jwk: &Map<String, Value>, alg: Algorithm) -> Result<ProofKey, ProofError> {
    let crv = member(jwk, "crv")?;
    if crv != "Ed25519" || alg != Algorithm::EdDSA {
        return Err(ProofError::BadJwk);
    }
    let x = member(jwk, "x")?;
    let xb = decode(x)?;
    if xb.len() != 32 {
        return Err(ProofError::BadJwk);
    }
    Ok(ProofKey {
        kind: Kind::Raw(xb),
        thumbprint: thumbprint(&[("crv", crv), ("kty", "OKP"), ("x", x)]),
    })
}

fn rsa(jwk: &Map<String, Value>, alg: Algorithm) -> Result<ProofKey, ProofError> {
    use Algorithm::*;
    if !matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512) {
        return Err(ProofError::BadJwk);
    }
    let (n, e) = (member(jwk, "n")?, member(jwk, "e")?);
    let (nb, eb) = (decode(n)?, decode(e)?);
    let significant = nb.iter().skip_while(|b| **b == 0).count();
    if significant < RSA_MIN_BYTES {
        return Err(ProofError::WeakKey);
    }
    if significant > RSA_MAX_BYTES || eb.is_empty() || eb.len() > 8 {
        return Err(ProofError::BadJwk);
    }
    Ok(ProofKey {
        kind: Kind::Rsa { n: nb, e: eb },
        thumbprint: thumbprint(&[("e", e), ("kty", "RSA"), ("n", n)]),
    })
}

impl ProofKey {
    /// Whether `signature` (raw bytes) over `message` with `alg` is good ([`parse`]
    /// checked that the key fits `alg`).
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match &self.kind {
            Kind::Raw(bytes) => {
                let algorithm: &'static dyn sig::VerificationAlgorithm = match alg {
                    Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
                    Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
                    Algorithm::EdDSA => &sig::ED25519,
                    _ => return false,
                };
                UnparsedPublicKey::new(algorithm, bytes)
                    .verify(message, signature)
                    .is_ok()
            }
            Kind::Rsa { n, e } => rsa_params(alg).is_some_and(|p| {
                RsaPublicKeyComponents { n, e }
                    .verify(p, message, signature)
                    .is_ok()
            }),
        }
    }
}

fn rsa_params(alg: Algorithm) -> Option<&'static sig::RsaParameters> {
    use Algorithm::*;
    Some(match alg {
        RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
        RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
        RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
        PS256 => &sig::RSA_PSS_2048_8192_SHA256,
        PS384 => &sig::RSA_PSS_2048_8192_SHA384,
        PS512 => &sig::RSA_PSS_2048_8192_SHA512,
        _ => return None,
    })
}

/// The RFC 7638 thumbprint of a public JWK (`kty` EC, OKP or RSA), e.g. the key id
/// of a signing key without `kid`; `None` for another or incomplete JWK.
pub fn jwk_thumbprint(jwk: &Value) -> Option<String> {
    let s = |k: &str| jwk.get(k).and_then(Value::as_str);
    Some(match s("kty")? {
        "EC" => thumbprint(&[
            ("crv", s("crv")?),
            ("kty", "EC"),
            ("x", s("x")?),
            ("y", s("y")?),
        ]),
        "OKP" => thumbprint(&[("crv", s("crv")?), ("kty", "OKP"), ("x", s("x")?)]),
        "RSA" => thumbprint(&[("e", s("e")?), ("kty", "RSA"), ("n", s("n")?)]),
        _ => return None,
    })
}
