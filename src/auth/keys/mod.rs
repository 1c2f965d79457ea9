//! Verification keys: what family each key is, which algorithms it may verify,
//! and the set an issuer verifies with ([`KeySet`]). Loading static keys (HMAC
//! secrets, PEM public keys, PEM private keys) is in [`pem`]; RSA keys from JWK
//! components in [`rsa`].
//!
//! The algorithm a key may verify is decided by the key's own family, never by the
//! token header: an RSA public key can never be used as an HMAC secret.

pub mod pem;
pub mod rsa;

pub use pem::{
    generate_ed25519_pem, private_key_from_pem, public_key_from_pem, PrivateKey, SigningKey,
};
pub use rsa::rsa_from_components;

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, UnparsedPublicKey};
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
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

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::EncodingKey;

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
