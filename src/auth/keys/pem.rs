//! Static keys from the config (SPEC §2 `[[issuers]]` `secret`, `public_key`,
//! `private_key`): PEM public keys, PEM private keys with their public JWK, the
//! [`SigningKey`] the built-in issuer signs with, and a generated Ed25519 key for the
//! demo config. Errors say what was expected; key material is never in them.

use super::rsa::rsa_from_components;
use super::KeyFamily;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};

/// A key portcullis signs with (the built-in issuer and `portcullis token`).
#[derive(Clone)]
pub struct SigningKey {
    /// Algorithm used to sign.
    pub alg: Algorithm,
    /// Key id put in the token header.
    pub kid: Option<String>,
    /// The private key or secret.
    pub key: EncodingKey,
    /// Public components as a JWK (asymmetric keys only), for `/.well-known/jwks.json`.
    pub public_jwk: Option<serde_json::Value>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Parses a PEM public key (SubjectPublicKeyInfo, or PKCS#1 `RSA PUBLIC KEY`).
pub fn public_key_from_pem(pem: &[u8]) -> Result<(KeyFamily, DecodingKey), String> {
    if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
        return Ok((KeyFamily::Rsa, k));
    }
    if let Ok(k) = DecodingKey::from_ec_pem(pem) {
        let family = ec_family(k.try_get_as_bytes().map(<[u8]>::len).unwrap_or(0))?;
        return Ok((family, k));
    }
    if let Ok(k) = DecodingKey::from_ed_pem(pem) {
        return Ok((KeyFamily::Ed25519, k));
    }
    if SubjectPublicKeyInfoDer::from_pem_slice(pem).is_ok() {
        return Err("unsupported public key type (use RSA, EC P-256/P-384 or Ed25519)".into());
    }
    Err("not a PEM public key (expected `-----BEGIN PUBLIC KEY-----`)".into())
}

fn ec_family(point_len: usize) -> Result<KeyFamily, String> {
    match point_len {
        65 => Ok(KeyFamily::EcP256),
        97 => Ok(KeyFamily::EcP384),
        _ => Err("unsupported EC curve (use P-256 or P-384)".into()),
    }
}

/// A parsed private key: its family, a verification key and signing material.
pub struct PrivateKey {
    /// Key family.
    pub family: KeyFamily,
    /// The matching public key.
    pub public: DecodingKey,
    /// Signing key.
    pub signing: EncodingKey,
    /// Public JWK members (without `kid`, `alg`, `use`).
    pub jwk: serde_json::Value,
}

/// Parses a PEM private key: PKCS#8 (RSA, EC P-256/P-384, Ed25519) or PKCS#1 RSA.
pub fn private_key_from_pem(pem: &[u8]) -> Result<PrivateKey, String> {
    use aws_lc_rs::signature::{
        EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
        ECDSA_P384_SHA384_FIXED_SIGNING,
    };
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use base64::Engine;

    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
        "not a PEM private key (expected `-----BEGIN PRIVATE KEY-----`)".to_string()
    })?;
    let rsa = |kp: RsaKeyPair| -> Result<PrivateKey, String> {
        let public = kp.public_key();
        let comps = aws_lc_rs::signature::RsaPublicKeyComponents::<Vec<u8>>::from(public);
        Ok(PrivateKey {
            family: KeyFamily::Rsa,
            public: rsa_from_components(&comps.n, &comps.e)?,
            signing: EncodingKey::from_rsa_pem(pem).map_err(|e| format!("RSA key: {e}"))?,
            jwk: serde_json::json!({"kty": "RSA", "n": B64.encode(&comps.n), "e": B64.encode(&comps.e)}),
        })
    };
    match der {
        PrivateKeyDer::Pkcs1(k) => rsa(RsaKeyPair::from_der(k.secret_pkcs1_der())
            .map_err(|e| format!("invalid RSA private key: {e}"))?),
        PrivateKeyDer::Sec1(_) => Err("EC private keys must be PKCS#8 \
             (convert with `openssl pkcs8 -topk8 -nocrypt -in key.pem`)"
            .into()),
        PrivateKeyDer::Pkcs8(k) => {
            let d = k.secret_pkcs8_der();
            for (alg, family, crv) in [
                (&ECDSA_P256_SHA256_FIXED_SIGNING, KeyFamily::EcP256, "P-256"),
                (&ECDSA_P384_SHA384_FIXED_SIGNING, KeyFamily::EcP384, "P-384"),
            ] {
                if let Ok(kp) = EcdsaKeyPair::from_pkcs8(alg, d) {
                    let point = kp.public_key().as_ref();
                    let half = (point.len().saturating_sub(1)) / 2;
                    let (x, y) = point.get(1..).unwrap_or_default().split_at(half);
                    return Ok(PrivateKey {
                        family,
                        public: DecodingKey::from_ec_der(point),
                        signing: EncodingKey::from_ec_der(d),
                        jwk: serde_json::json!({"kty": "EC", "crv": crv, "x": B64.encode(x), "y": B64.encode(y)}),
                    });
                }
            }
            if let Ok(kp) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(d) {
                let public = kp.public_key().as_ref();
                return Ok(PrivateKey {
                    family: KeyFamily::Ed25519,
                    public: DecodingKey::from_ed_der(public),
                    signing: EncodingKey::from_ed_der(d),
                    jwk: serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(public)}),
                });
            }
            if let Ok(kp) = RsaKeyPair::from_pkcs8(d) {
                return rsa(kp);
            }
            Err("unsupported private key type (use RSA, EC P-256/P-384 or Ed25519)".into())
        }
        _ => Err("unsupported private key encoding".into()),
    }
}

/// Generates a fresh Ed25519 private key as PKCS#8 PEM (for the demo config).
pub fn generate_ed25519_pem() -> Result<String, String> {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let doc = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| "could not generate a key".to_string())?;
    let b64 = STANDARD.encode(doc.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips() {
        crate::install_crypto_providers();
        let pem = generate_ed25519_pem().expect("generate");
        let k = private_key_from_pem(pem.as_bytes()).expect("parse");
        assert_eq!(k.family, KeyFamily::Ed25519);
        let msg = b"a.b";
        let sig = jsonwebtoken::crypto::sign(msg, &k.signing, Algorithm::EdDSA).expect("sign");
        assert!(
            jsonwebtoken::crypto::verify(&sig, msg, &k.public, Algorithm::EdDSA).expect("verify")
        );
    }
}
