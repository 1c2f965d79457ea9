//! An issuer's key source: exactly one of `secret` (HMAC), `public_key`,
//! `private_key` (PEM files, read and parsed here), `jwks_url` or `discovery = true`,
//! and the signing key portcullis mints with when it has a secret or private key.
//!
//! A `private_key` with `generate_key = true` that does not exist yet is not an
//! error: it is recorded for [`crate::config::provision`] to create (at `run` and
//! `token`, never at `check`), and the issuer compiles without a key meanwhile.

use super::Cx;
use crate::auth::issuer::KeySource;
use crate::auth::keys::{self, KeyFamily, SigningKey};
use crate::config::file::RawIssuer;
use crate::config::values::EnvStr;
use crate::config::KeyToGenerate;
use crate::defaults;
use crate::secret::Secret;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use std::ops::Range;
use toml::Spanned;

/// What an issuer's key source gave.
pub(super) struct Material {
    /// Where keys come from.
    pub source: KeySource,
    /// The static verification key.
    pub static_key: Option<(KeyFamily, DecodingKey)>,
    /// Signing material: family, key, public JWK (asymmetric keys).
    signing: Option<(KeyFamily, EncodingKey, Option<serde_json::Value>)>,
    /// The `generate_key` file does not exist yet (its key will be Ed25519).
    pub pending: bool,
}

impl Material {
    /// The static key's family (also of a key still to be generated).
    pub(super) fn family(&self) -> Option<KeyFamily> {
        match &self.static_key {
            Some((f, _)) => Some(*f),
            None if self.pending => Some(KeyFamily::Ed25519),
            None => None,
        }
    }

    /// The key portcullis signs with: the first allowed algorithm of its family.
    pub(super) fn signing_key(
        self,
        algorithms: &[Algorithm],
        kid: Option<&str>,
    ) -> Option<SigningKey> {
        let (family, key, jwk) = self.signing?;
        let alg = if algorithms.is_empty() {
            *family.algorithms().first()?
        } else {
            *algorithms.iter().find(|a| family.allows(**a))?
        };
        let public_jwk = jwk.map(|mut j| {
            if let Some(o) = j.as_object_mut() {
                o.insert("alg".into(), format!("{alg:?}").into());
                o.insert("use".into(), "sig".into());
                if let Some(k) = kid {
                    o.insert("kid".into(), k.into());
                }
            }
            j
        });
        Some(SigningKey {
            alg,
            kid: kid.map(str::to_owned),
            key,
            public_jwk,
        })
    }
}

/// Reads the one key source of `i`; `None` (reported at `span`) unless exactly one.
pub(super) fn material(cx: &mut Cx<'_>, i: &RawIssuer, span: Range<usize>) -> Option<Material> {
    let discovery = i
        .discovery
        .as_ref()
        .map_or(defaults::DISCOVERY, |d| *d.get_ref());
    let sources = [
        i.secret.is_some(),
        i.public_key.is_some(),
        i.private_key.is_some(),
        i.jwks_url.is_some(),
        discovery,
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if sources != 1 {
        cx.rep.at(
            span,
            format!(
                "issuer `{}` needs exactly one of `secret`, `public_key`, `private_key`, `jwks_url` or `discovery = true`",
                &**i.name.get_ref()
            ),
        );
        return None;
    }
    let mut m = Material {
        source: KeySource::Static,
        static_key: None,
        signing: None,
        pending: false,
    };
    if let Some(secret) = &i.secret {
        if secret.get_ref().len() < defaults::SECRET_MIN_BYTES {
            cx.rep.at(
                secret.span(),
                format!(
                    "`secret` must be at least {} bytes (RFC 7518 §3.2: as long as the hash)",
                    defaults::SECRET_MIN_BYTES
                ),
            );
        }
        let b = secret.get_ref().as_bytes();
        m.static_key = Some((KeyFamily::Hmac, DecodingKey::from_secret(b)));
        m.signing = Some((KeyFamily::Hmac, EncodingKey::from_secret(b), None));
    } else if let Some(pk) = &i.public_key {
        let pem = cx.read_file(pk, "public key")?;
        match keys::public_key_from_pem(&pem) {
            Ok(k) => m.static_key = Some(k),
            Err(e) => cx.rep.at(pk.span(), format!("public key: {e}")),
        }
    } else if let Some(pk) = &i.private_key {
        private_key(cx, i, pk, &mut m)?;
    } else if let Some(url) = &i.jwks_url {
        m.source = KeySource::Jwks(Secret::new(url.get_ref().0.clone()));
    } else {
        m.source = KeySource::Discovery;
    }
    Some(m)
}

/// `private_key`: read and parsed, or (`generate_key`, not there yet) recorded to be
/// created.
fn private_key(
    cx: &mut Cx<'_>,
    i: &RawIssuer,
    pk: &Spanned<EnvStr>,
    m: &mut Material,
) -> Option<()> {
    let generate = i.generate_key.unwrap_or(defaults::GENERATE_KEY);
    let path = cx.resolve(pk.get_ref());
    if generate && !path.exists() {
        let note = format!(
            "`{}` does not exist yet: `generate_key` creates it when portcullis starts (or at `portcullis token`)",
            path.display()
        );
        let at = cx.rep.error(pk.span(), note);
        cx.keys_to_generate.push(KeyToGenerate { path, at });
        m.pending = true;
        return Some(());
    }
    let pem = cx.read_file(pk, "private key")?;
    match keys::private_key_from_pem(&pem) {
        Ok(k) => {
            m.static_key = Some((k.family, k.public));
            m.signing = Some((k.family, k.signing, Some(k.jwk)));
        }
        Err(e) => cx.rep.at(pk.span(), format!("private key: {e}")),
    }
    Some(())
}
