//! The JWT kit: keys generated with aws-lc-rs (RSA, P-256, P-384, Ed25519), their PEMs
//! and public JWKs, and compact JWS signed by hand for every algorithm of SPEC §3,
//! from JSON values ([`jwt`], [`mint`], [`token`]) or from raw JSON texts, so duplicate
//! keys and odd spellings survive ([`jws_raw`]). Hostile shapes (`alg: none`, `jku`,
//! `crit`, key confusion) are built from the same pieces.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED, ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::Engine as _;
use serde_json::{json, Value};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The HMAC secret most suites configure for their HS* issuer ([`hs_issuer`]).
pub const SECRET: &str = "integration-test-secret-0123456789abcdef0123456789";
/// The `issuer` value paired with [`SECRET`] in [`hs_issuer`].
pub const ISS: &str = "https://issuer.test/";

// ====================================================================== encoding

/// Seconds since the epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// base64url without padding (JWT segments).
pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

pub fn b64_decode(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap_or_else(|e| panic!("bad base64url {s:?}: {e}"))
}

/// PEM armour with 64-column lines.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

// ====================================================================== keys

pub enum KeyKind {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
    P384(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A generated asymmetric key with its SPKI public PEM and PKCS#8 private PEM.
pub struct TestKey {
    pub kind: KeyKind,
    /// `-----BEGIN PUBLIC KEY-----` (SPKI), what `public_key = "..."` reads.
    pub public_pem: String,
    /// `-----BEGIN PRIVATE KEY-----` (PKCS#8 v1), what `private_key = "..."` reads.
    pub private_pem: String,
}

impl TestKey {
    /// A fresh RSA-2048 key.
    pub fn rsa() -> TestKey {
        let kp = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let private = kp.as_der().unwrap();
        let public = kp.public_key().as_der().unwrap();
        TestKey {
            public_pem: pem("PUBLIC KEY", public.as_ref()),
            private_pem: pem("PRIVATE KEY", private.as_ref()),
            kind: KeyKind::Rsa(kp),
        }
    }

    /// A fresh P-256 key (ES256).
    pub fn p256() -> TestKey {
        Self::ec(false)
    }

    /// A fresh P-384 key (ES384).
    pub fn p384() -> TestKey {
        Self::ec(true)
    }

    fn ec(p384: bool) -> TestKey {
        let alg = if p384 {
            &ECDSA_P384_SHA384_FIXED_SIGNING
        } else {
            &ECDSA_P256_SHA256_FIXED_SIGNING
        };
        let kp = EcdsaKeyPair::generate(alg).unwrap();
        let private = kp.to_pkcs8v1().unwrap();
        let public = kp.public_key().as_der().unwrap();
        TestKey {
            public_pem: pem("PUBLIC KEY", public.as_ref()),
            private_pem: pem("PRIVATE KEY", private.as_ref()),
            kind: if p384 {
                KeyKind::P384(kp)
            } else {
                KeyKind::P256(kp)
            },
        }
    }

    /// A fresh Ed25519 key (EdDSA).
    pub fn ed25519() -> TestKey {
        let kp = Ed25519KeyPair::generate().unwrap();
        let private = kp.to_pkcs8v1().unwrap();
        let public = kp.public_key().as_der().unwrap();
        TestKey {
            public_pem: pem("PUBLIC KEY", public.as_ref()),
            private_pem: pem("PRIVATE KEY", private.as_ref()),
            kind: KeyKind::Ed25519(kp),
        }
    }

    /// Signs `msg` for JWS algorithm `alg` (must suit the key type).
    pub fn sign(&self, alg: &str, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.kind {
            KeyKind::Rsa(kp) => {
                use aws_lc_rs::signature as s;
                let enc: &'static dyn s::RsaEncoding = match alg {
                    "RS256" => &s::RSA_PKCS1_SHA256,
                    "RS384" => &s::RSA_PKCS1_SHA384,
                    "RS512" => &s::RSA_PKCS1_SHA512,
                    "PS256" => &s::RSA_PSS_SHA256,
                    "PS384" => &s::RSA_PSS_SHA384,
                    "PS512" => &s::RSA_PSS_SHA512,
                    other => panic!("RSA key cannot sign {other}"),
                };
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(enc, &rng, msg, &mut sig).unwrap();
                sig
            }
            KeyKind::P256(kp) | KeyKind::P384(kp) => kp.sign(&rng, msg).unwrap().as_ref().to_vec(),
            KeyKind::Ed25519(kp) => kp.sign(msg).as_ref().to_vec(),
        }
    }

    /// Checks a JWS signature made with this key (for tokens minted by the CLI).
    pub fn verify(&self, alg: &str, msg: &[u8], sig: &[u8]) -> bool {
        use aws_lc_rs::signature as s;
        let (params, public): (&'static dyn s::VerificationAlgorithm, &[u8]) = match &self.kind {
            KeyKind::Rsa(kp) => (
                match alg {
                    "RS256" => &s::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &s::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &s::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &s::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &s::RSA_PSS_2048_8192_SHA384,
                    "PS512" => &s::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                },
                kp.public_key().as_ref(),
            ),
            KeyKind::P256(kp) if alg == "ES256" => {
                (&ECDSA_P256_SHA256_FIXED, kp.public_key().as_ref())
            }
            KeyKind::P384(kp) if alg == "ES384" => {
                (&ECDSA_P384_SHA384_FIXED, kp.public_key().as_ref())
            }
            KeyKind::Ed25519(kp) if alg == "EdDSA" => (&s::ED25519, kp.public_key().as_ref()),
            _ => return false,
        };
        s::UnparsedPublicKey::new(params, public)
            .verify(msg, sig)
            .is_ok()
    }

    /// The public key as a JWK (RFC 7517/7518/8037), without `kid`, `alg` or `use`:
    /// what a JWKS publishes, and what hostile embedded-`jwk` headers carry.
    pub fn jwk(&self) -> Value {
        match &self.kind {
            KeyKind::Rsa(kp) => {
                let pk = kp.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64(pk.modulus().big_endian_without_leading_zero()),
                    "e": b64(pk.exponent().big_endian_without_leading_zero()),
                })
            }
            KeyKind::P256(kp) | KeyKind::P384(kp) => {
                // The uncompressed point: 0x04 || x || y.
                let point = kp.public_key().as_ref();
                let (x, y) = point[1..].split_at((point.len() - 1) / 2);
                let crv = if matches!(self.kind, KeyKind::P256(_)) {
                    "P-256"
                } else {
                    "P-384"
                };
                json!({"kty": "EC", "crv": crv, "x": b64(x), "y": b64(y)})
            }
            KeyKind::Ed25519(kp) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(kp.public_key().as_ref())})
            }
        }
    }

    /// [`TestKey::jwk`] with `kid`, `alg` and `"use": "sig"`, as an IdP publishes it.
    pub fn jwk_with(&self, kid: &str, alg: &str) -> Value {
        let mut j = self.jwk();
        j["kid"] = kid.into();
        j["alg"] = alg.into();
        j["use"] = "sig".into();
        j
    }

    /// RSA public key as a JWK (panics for another key type).
    pub fn rsa_jwk(&self) -> Value {
        assert!(matches!(self.kind, KeyKind::Rsa(_)), "not an RSA key");
        self.jwk()
    }
}

/// RSA-2048 key the suites configure as a trusted issuer key (one per test binary).
pub fn rsa_key() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(TestKey::rsa)
}

/// A second RSA key nobody trusts (the attacker's).
pub fn attacker_rsa_key() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(TestKey::rsa)
}

pub fn p256_key() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(TestKey::p256)
}

pub fn p384_key() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(TestKey::p384)
}

pub fn ed25519_key() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(TestKey::ed25519)
}

// ====================================================================== tokens

/// What signs a token.
#[derive(Clone, Copy)]
pub enum Signer<'a> {
    /// HMAC (HS256/384/512) with these bytes as the key.
    Secret(&'a [u8]),
    Key(&'a TestKey),
    /// Empty signature segment (`alg: none`).
    Unsigned,
}

pub fn hmac(alg: &str, secret: &[u8], msg: &[u8]) -> Vec<u8> {
    use aws_lc_rs::hmac;
    let a = match alg {
        "HS256" => hmac::HMAC_SHA256,
        "HS384" => hmac::HMAC_SHA384,
        "HS512" => hmac::HMAC_SHA512,
        // Any other alg with a secret: sign with SHA-256 (for hostile tokens).
        _ => hmac::HMAC_SHA256,
    };
    hmac::sign(&hmac::Key::new(a, secret), msg)
        .as_ref()
        .to_vec()
}

/// `b64(header).b64(payload)` from raw JSON texts (so duplicate keys survive).
pub fn signing_input(header: &str, payload: &str) -> String {
    format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()))
}

/// A compact JWS over raw JSON texts, signed for `alg` by `signer`
/// (`Signer::Secret` always uses HMAC).
pub fn jws_raw(header: &str, payload: &str, alg: &str, signer: Signer<'_>) -> String {
    let input = signing_input(header, payload);
    let sig = match signer {
        Signer::Secret(s) => hmac(alg, s, input.as_bytes()),
        Signer::Key(k) => k.sign(alg, input.as_bytes()),
        Signer::Unsigned => Vec::new(),
    };
    format!("{input}.{}", b64(&sig))
}

/// Builds a compact JWS from header and claims JSON. The header's `alg` decides the
/// signature algorithm.
pub fn jwt(header: &Value, claims: &Value, signer: Signer<'_>) -> String {
    let alg = header["alg"].as_str().unwrap_or("none").to_string();
    jws_raw(&header.to_string(), &claims.to_string(), &alg, signer)
}

/// A token with header `{"alg": alg, "typ": "JWT"}`.
pub fn mint(alg: &str, signer: Signer<'_>, claims: &Value) -> String {
    jwt(&json!({"alg": alg, "typ": "JWT"}), claims, signer)
}

/// Claims valid for ten minutes: `iss`, `sub`, `iat`, `exp`.
pub fn claims(iss: &str, sub: &str) -> Value {
    let t = now();
    json!({"iss": iss, "sub": sub, "iat": t, "exp": t + 600})
}

/// HS256 token for [`ISS`] / [`SECRET`] with `extra` merged into [`claims`].
pub fn token(sub: &str, extra: Value) -> String {
    let mut c = claims(ISS, sub);
    if let Value::Object(m) = extra {
        for (k, v) in m {
            c[k] = v;
        }
    }
    mint("HS256", Signer::Secret(SECRET.as_bytes()), &c)
}

/// The `[[issuers]]` block matching [`token`].
pub fn hs_issuer() -> String {
    format!("[[issuers]]\nname = \"test\"\nissuer = \"{ISS}\"\nsecret = \"{SECRET}\"\n")
}

/// Decodes segment `idx` (0 header, 1 claims) of a compact JWS as JSON.
pub fn jwt_part(token: &str, idx: usize) -> Value {
    let seg = token
        .split('.')
        .nth(idx)
        .unwrap_or_else(|| panic!("token {token:?} has no segment {idx}"));
    serde_json::from_slice(&b64_decode(seg)).unwrap()
}
