//! Minting access tokens with a configured issuer's key (`portcullis token` and the
//! built-in token endpoint sign with the same key, so their tokens are alike). Which
//! issuer `portcullis token` signs with is chosen in [`crate::cli::signing_issuer`].

use crate::auth::issuer::Issuer;
use jsonwebtoken::Header;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A random 128-bit id, hex.
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A signed access token and the claims the issuer keeps track of.
#[derive(Debug)]
pub struct Minted {
    /// The compact JWS.
    pub token: String,
    /// Its `jti`.
    pub jti: String,
    /// Its `exp` (Unix seconds).
    pub exp: u64,
}

/// Signs an access token for `sub` with `scope`, valid for `ttl`.
pub fn mint(
    issuer: &Issuer,
    sub: &str,
    scope: Option<&str>,
    ttl: Duration,
    extra: &[(&str, Value)],
) -> Result<String, String> {
    mint_token(issuer, sub, scope, ttl, extra).map(|m| m.token)
}

/// Signs an access token: `sub`, `iss`, `aud` (the issuer's first audience, if any),
/// `iat`, `exp`, `jti`, `scope` when given, then `extra` claims (e.g. `email`, `name`).
pub fn mint_token(
    issuer: &Issuer,
    sub: &str,
    scope: Option<&str>,
    ttl: Duration,
    extra: &[(&str, Value)],
) -> Result<Minted, String> {
    let key = issuer
        .signing
        .as_ref()
        .ok_or_else(|| "issuer cannot sign".to_string())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let jti = random_id();
    let exp = now.saturating_add(ttl.as_secs());
    let mut claims = json!({
        "sub": sub,
        "iss": issuer.iss,
        "iat": now,
        "exp": exp,
        "jti": jti,
    });
    if let Some(o) = claims.as_object_mut() {
        if let Some(aud) = issuer.audiences.first() {
            o.insert("aud".into(), aud.clone().into());
        }
        if let Some(s) = scope {
            o.insert("scope".into(), s.into());
        }
        for (k, v) in extra {
            o.insert((*k).into(), v.clone());
        }
    }
    let mut header = Header::new(key.alg);
    header.kid = key.kid.clone();
    let token = jsonwebtoken::encode(&header, &claims, &key.key)
        .map_err(|e| format!("signing failed: {e}"))?;
    Ok(Minted { token, jti, exp })
}
