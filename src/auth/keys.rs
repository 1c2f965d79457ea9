//! Verification keys: what family each key is, which algorithms it may verify,
//! and loading static keys (HMAC secrets, PEM public keys, PEM private keys).
//!
//! The algorithm a key may verify is decided by the key's own family, never by the
//! token header: an RSA public key can never be used as an HMAC secret.

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, UnparsedPublicKey};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, SubjectPublicKeyInfoDer};
use std::sync::{Arc, OnceLock};

/// The kind of key, which fixes the algorithms it may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFamily {
    /// HMAC shared secret.
    Hmac,
    /// RSA public key.
    Rsa,
    /// EC P-256.
    EcP256,
    /// EC P-384.
    EcP384,
    /// Ed25519.
    Ed25519,
}

impl KeyFamily {
    /// The algorithms this family can verify.
    pub fn algorithms(self) -> &'static [Algorithm] {
        use Algorithm::*;
        match self {
            KeyFamily::Hmac => &[HS256, HS384, HS512],
            KeyFamily::Rsa => &[RS256, RS384, RS512, PS256, PS384, PS512],
            KeyFamily::EcP256 => &[ES256],
            KeyFamily::EcP384 => &[ES384],
            KeyFamily::Ed25519 => &[EdDSA],
        }
    }

    /// Whether this family can verify `alg`.
    pub fn allows(self, alg: Algorithm) -> bool {
        self.algorithms().contains(&alg)
    }

    /// Short name for status pages and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyFamily::Hmac => "oct",
            KeyFamily::Rsa => "RSA",
            KeyFamily::EcP256 => "EC P-256",
            KeyFamily::EcP384 => "EC P-384",
            KeyFamily::Ed25519 => "OKP Ed25519",
        }
    }
}

/// One verification key.
#[derive(Clone)]
pub struct VerifyKey {
    /// Key id, if the key has one.
    pub kid: Option<String>,
    /// Key family.
    pub family: KeyFamily,
    /// Algorithm the key declares (JWK `alg`), which then is the only one it verifies.
    pub alg: Option<Algorithm>,
    /// The key material.
    pub key: DecodingKey,
    /// The public key parsed for aws-lc, once per algorithm, on first use.
    parsed: ParsedKeys,
}

/// Public keys as aws-lc's parsed `EVP_PKEY` (for RSA with its Montgomery context):
/// building one costs about a tenth of an RSA verification, paid once per key and
/// algorithm instead of on every cold verification.
#[derive(Default)]
struct ParsedKeys([OnceLock<Option<ParsedPublicKey>>; 9]);

impl Clone for ParsedKeys {
    fn clone(&self) -> Self {
        Self::default()
    }
}

/// The aws-lc algorithm jsonwebtoken verifies `alg` with (the same parameters, so
/// the result is the same), and its slot in [`ParsedKeys`]. `None` for HMAC.
fn aws_lc_alg(alg: Algorithm) -> Option<(usize, &'static dyn sig::VerificationAlgorithm)> {
    use Algorithm::*;
    Some(match alg {
        RS256 => (0, &sig::RSA_PKCS1_2048_8192_SHA256),
        RS384 => (1, &sig::RSA_PKCS1_2048_8192_SHA384),
        RS512 => (2, &sig::RSA_PKCS1_2048_8192_SHA512),
        PS256 => (3, &sig::RSA_PSS_2048_8192_SHA256),
        PS384 => (4, &sig::RSA_PSS_2048_8192_SHA384),
        PS512 => (5, &sig::RSA_PSS_2048_8192_SHA512),
        ES256 => (6, &sig::ECDSA_P256_SHA256_FIXED),
        ES384 => (7, &sig::ECDSA_P384_SHA384_FIXED),
        EdDSA => (8, &sig::ED25519),
        _ => return None,
    })
}

/// An RSA verification key from its modulus and exponent (big-endian), held as DER
/// so that it can be parsed once (see [`ParsedKeys`]).
pub fn rsa_from_components(n: &[u8], e: &[u8]) -> Result<DecodingKey, String> {
    if n.len() > 2048 || e.len() > 64 {
        return Err("RSA key too large".into());
    }
    Ok(DecodingKey::from_rsa_der(&rsa_public_key_der(n, e)))
}

/// DER of a PKCS#1 `RSAPublicKey` (SEQUENCE { modulus INTEGER, exponent INTEGER })
/// from big-endian unsigned `n` and `e`.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn len(out: &mut Vec<u8>, n: usize) {
        match n {
            0..=0x7f => out.push(n as u8),
            0x80..=0xff => out.extend([0x81, n as u8]),
            _ => out.extend([0x82, (n >> 8) as u8, n as u8]),
        }
    }
    fn int(out: &mut Vec<u8>, v: &[u8]) {
        let v = match v.iter().position(|&b| b != 0) {
            Some(i) => &v[i..],
            None => &[0u8][..],
        };
        let pad = v[0] & 0x80 != 0;
        out.push(0x02);
        len(out, v.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
    }
    let mut body = Vec::with_capacity(n.len() + e.len() + 8);
    int(&mut body, n);
    int(&mut body, e);
    let mut out = Vec::with_capacity(body.len() + 4);
    out.push(0x30);
    len(&mut out, body.len());
    out.extend_from_slice(&body);
    out
}

impl VerifyKey {
    /// A key; `alg`, when set, is the only algorithm it verifies.
    pub fn new(
        kid: Option<String>,
        family: KeyFamily,
        alg: Option<Algorithm>,
        key: DecodingKey,
    ) -> Self {
        VerifyKey {
            kid,
            family,
            alg,
            key,
            parsed: ParsedKeys::default(),
        }
    }

    /// Whether `signature` (base64url, as in the token) over `message` with `alg` is
    /// good; a signature or key that cannot be used at all is not. The caller has
    /// checked [`VerifyKey::allows`].
    pub fn verify_signature(&self, alg: Algorithm, message: &[u8], signature: &str) -> bool {
        let Some((slot, algorithm)) = aws_lc_alg(alg) else {
            return jsonwebtoken::crypto::verify(signature, message, &self.key, alg)
                .unwrap_or(false);
        };
        let Some(cell) = self.parsed.0.get(slot) else {
            return false;
        };
        let parsed = cell.get_or_init(|| {
            let bytes = self.key.try_get_as_bytes().ok()?;
            UnparsedPublicKey::new(algorithm, bytes).parse().ok()
        });
        let Some(parsed) = parsed.as_ref() else {
            return false;
        };
        let Ok(raw) = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(signature) else {
            return false;
        };
        parsed.verify_sig(message, &raw).is_ok()
    }
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyKey {
    /// Whether this key may verify a token signed with `alg`.
    pub fn allows(&self, alg: Algorithm) -> bool {
        self.family.allows(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

/// An issuer's current keys.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    /// The keys.
    pub keys: Vec<Arc<VerifyKey>>,
}

/// Result of looking a key up.
pub enum Lookup<'a> {
    /// Found.
    Found(&'a Arc<VerifyKey>),
    /// A `kid` that is not in the set.
    UnknownKid,
    /// No `kid` and more than one key: ambiguous.
    Ambiguous,
}

impl KeySet {
    /// Finds the key for a token's `kid` (SPEC §3): by id, or the only key when the
    /// token has none. A token with a kid also matches a single key that has no kid.
    pub fn find(&self, kid: Option<&str>) -> Lookup<'_> {
        match kid {
            Some(kid) => {
                if let Some(k) = self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)) {
                    return Lookup::Found(k);
                }
                match self.keys.as_slice() {
                    [only] if only.kid.is_none() => Lookup::Found(only),
                    _ => Lookup::UnknownKid,
                }
            }
            None => match self.keys.as_slice() {
                [only] => Lookup::Found(only),
                [] => Lookup::UnknownKid,
                _ => Lookup::Ambiguous,
            },
        }
    }
}

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
    fn families_fix_algorithms() {
        assert!(KeyFamily::Rsa.allows(Algorithm::PS512));
        assert!(!KeyFamily::Rsa.allows(Algorithm::HS256));
        assert!(!KeyFamily::Hmac.allows(Algorithm::RS256));
        assert!(KeyFamily::EcP256.allows(Algorithm::ES256));
        assert!(!KeyFamily::EcP256.allows(Algorithm::ES384));
        assert!(KeyFamily::Ed25519.allows(Algorithm::EdDSA));
    }

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

    #[test]
    fn rsa_der_from_components_matches_aws_lc() {
        use aws_lc_rs::signature::{KeyPair, RsaKeyPair, RsaPublicKeyComponents};
        // Small values: leading zeros dropped, a high bit gets a 0x00 pad.
        assert_eq!(
            rsa_public_key_der(&[0, 0x80, 1], &[1, 0, 1]),
            [0x30, 0x0a, 0x02, 0x03, 0x00, 0x80, 0x01, 0x02, 0x03, 0x01, 0x00, 0x01]
        );
        let kp = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("generate");
        let comps = RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key());
        assert_eq!(
            rsa_public_key_der(&comps.n, &comps.e),
            kp.public_key().as_ref(),
            "PKCS#1 RSAPublicKey DER"
        );
    }

    #[test]
    fn verify_signature_with_parsed_keys() {
        use aws_lc_rs::signature::{KeyPair, RsaKeyPair, RsaPublicKeyComponents};
        use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
        crate::install_crypto_providers();
        let kp = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).expect("generate");
        let comps = RsaPublicKeyComponents::<Vec<u8>>::from(kp.public_key());
        let key = VerifyKey::new(
            None,
            KeyFamily::Rsa,
            None,
            rsa_from_components(&comps.n, &comps.e).expect("key"),
        );
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let msg = b"header.payload";
        for (alg, pad) in [
            (
                Algorithm::RS256,
                &sig::RSA_PKCS1_SHA256 as &dyn sig::RsaEncoding,
            ),
            (Algorithm::PS512, &sig::RSA_PSS_SHA512),
        ] {
            let mut s = vec![0; kp.public_modulus_len()];
            kp.sign(pad, &rng, msg, &mut s).expect("sign");
            let good = B64.encode(&s);
            // Twice: the second call uses the key parsed by the first.
            assert!(key.verify_signature(alg, msg, &good));
            assert!(key.verify_signature(alg, msg, &good));
            assert!(!key.verify_signature(alg, b"header.other", &good));
            s[10] ^= 1;
            assert!(!key.verify_signature(alg, msg, &B64.encode(&s)));
            assert!(!key.verify_signature(alg, msg, "not base64!"));
        }
        // A signature made for RS256 does not pass as PS256 (distinct parsed slots).
        let mut s = vec![0; kp.public_modulus_len()];
        kp.sign(&sig::RSA_PKCS1_SHA256, &rng, msg, &mut s)
            .expect("sign");
        assert!(!key.verify_signature(Algorithm::PS256, msg, &B64.encode(&s)));
        // Ed25519 and HMAC (the latter still through jsonwebtoken).
        let pem = generate_ed25519_pem().expect("generate");
        let k = private_key_from_pem(pem.as_bytes()).expect("parse");
        let ed = VerifyKey::new(None, KeyFamily::Ed25519, None, k.public.clone());
        let s = jsonwebtoken::crypto::sign(msg, &k.signing, Algorithm::EdDSA).expect("sign");
        assert!(ed.verify_signature(Algorithm::EdDSA, msg, &s));
        assert!(!ed.verify_signature(Algorithm::EdDSA, b"x.y", &s));
        let secret = EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef");
        let hs = VerifyKey::new(
            None,
            KeyFamily::Hmac,
            None,
            DecodingKey::from_secret(b"0123456789abcdef0123456789abcdef"),
        );
        let s = jsonwebtoken::crypto::sign(msg, &secret, Algorithm::HS256).expect("sign");
        assert!(hs.verify_signature(Algorithm::HS256, msg, &s));
        assert!(!hs.verify_signature(Algorithm::HS256, b"x.y", &s));
    }

    #[test]
    fn lookup_by_kid() {
        let key = |kid: Option<&str>| {
            Arc::new(VerifyKey::new(
                kid.map(str::to_owned),
                KeyFamily::Hmac,
                None,
                DecodingKey::from_secret(b"x"),
            ))
        };
        let one = KeySet {
            keys: vec![key(None)],
        };
        assert!(matches!(one.find(None), Lookup::Found(_)));
        assert!(matches!(one.find(Some("k")), Lookup::Found(_)));
        let two = KeySet {
            keys: vec![key(Some("a")), key(Some("b"))],
        };
        assert!(matches!(two.find(Some("b")), Lookup::Found(k) if k.kid.as_deref() == Some("b")));
        assert!(matches!(two.find(Some("c")), Lookup::UnknownKid));
        assert!(matches!(two.find(None), Lookup::Ambiguous));
        let named = KeySet {
            keys: vec![key(Some("a"))],
        };
        assert!(matches!(named.find(Some("zz")), Lookup::UnknownKid));
        assert!(matches!(named.find(None), Lookup::Found(_)));
    }
}
