//! Minting access tokens with a configured issuer's key (`portcullis token`, and
//! later the built-in token endpoint).

use crate::auth::verify::Issuer;
use crate::config::Config;
use jsonwebtoken::Header;
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The issuer that signs: `[token_endpoint] issuer`, else the first that can sign.
pub fn signing_issuer<'a>(config: &'a Config, name: Option<&str>) -> Result<&'a Issuer, String> {
    let found = match name {
        Some(n) => config.issuers.iter().find(|i| i.name == n),
        None => match &config.token_endpoint {
            Some(t) => config.issuers.get(t.issuer),
            None => config.issuers.iter().find(|i| i.signing.is_some()),
        },
    };
    let iss = found.ok_or_else(|| match name {
        Some(n) => format!("no issuer named `{n}`"),
        None => "no issuer with a `secret` or `private_key` to sign with".to_string(),
    })?;
    if iss.signing.is_none() {
        return Err(format!(
            "issuer `{}` has no `secret` or `private_key` to sign with",
            iss.name
        ));
    }
    Ok(iss)
}

/// A random 128-bit id, hex.
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Signs an access token for `sub` with `scope`, valid for `ttl`.
pub fn mint(
    issuer: &Issuer,
    sub: &str,
    scope: Option<&str>,
    ttl: Duration,
    extra: &[(&str, Value)],
) -> Result<String, String> {
    let key = issuer
        .signing
        .as_ref()
        .ok_or_else(|| "issuer cannot sign".to_string())?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut claims = json!({
        "sub": sub,
        "iss": issuer.iss,
        "iat": now,
        "exp": now + ttl.as_secs(),
        "jti": random_id(),
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
    jsonwebtoken::encode(&header, &claims, &key.key).map_err(|e| format!("signing failed: {e}"))
}
