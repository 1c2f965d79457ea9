//! DPoP proofs (RFC 9449, SPEC §10): [`check`] verifies one `DPoP` header against
//! the request it came with — `typ: dpop+jwt`, an asymmetric `alg`, a public-only
//! `jwk` ([`jwk`]), the signature by that key, `htm`, `htu` ([`htu`], normalized per
//! RFC 9449 §4.3), `iat` within [`IAT_WINDOW`] plus the issuer's leeway, `ath`, and a
//! `jti` — and yields the key's RFC 7638 thumbprint. It is pure: the `jti` replay
//! check needs the `[state]` backend and is done by the caller with [`replay_key`]
//! and [`replay_window`], on every request (a cached token still needs a fresh proof).
//!
//! Guarantees: the proof's size is capped before anything is decoded; header members
//! `jku`, `x5u`, `x5c`, `kid` are never used; errors carry fixed descriptions only.

pub mod htu;
pub mod jwk;
pub mod replay;

use crate::auth::claims::{self, numeric_date};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::HeaderName;
use http::HeaderMap;
use jsonwebtoken::Algorithm;
use serde_json::Value;
use std::str::FromStr;
use std::time::Duration;

/// The `DPoP` request header (RFC 9449 §4.1).
pub static DPOP: HeaderName = HeaderName::from_static("dpop");

/// How far a proof's `iat` may be from now, before the issuer's leeway (SPEC §10).
pub const IAT_WINDOW: Duration = Duration::from_secs(60);
/// Largest proof accepted, in bytes (an RSA-8192 `jwk` fits with room to spare).
pub const MAX_PROOF_LEN: usize = 8 * 1024;
/// Longest `jti` accepted.
pub const MAX_JTI_LEN: usize = 256;
/// The algorithms a proof may use, as `WWW-Authenticate: DPoP algs="..."` lists them.
pub const ALGS: &str = "ES256 ES384 EdDSA RS256 PS256";

/// Why a proof was refused (each a fixed `error_description`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// No `DPoP` header where one is needed.
    #[error("missing DPoP proof")]
    Missing,
    /// More than one `DPoP` header.
    #[error("more than one DPoP proof")]
    Several,
    /// Not a compact JWS of JSON, or over the size cap.
    #[error("malformed DPoP proof")]
    Malformed,
    /// `typ` is not `dpop+jwt`.
    #[error("DPoP proof typ must be dpop+jwt")]
    Typ,
    /// `alg` is not an asymmetric algorithm we verify.
    #[error("DPoP proof algorithm not allowed")]
    Alg,
    /// `jwk` missing, malformed, or not fitting `alg`.
    #[error("DPoP proof jwk invalid")]
    BadJwk,
    /// `jwk` holds private key members.
    #[error("DPoP proof jwk holds a private key")]
    PrivateJwk,
    /// An RSA key under 2048 bits.
    #[error("DPoP proof key too weak")]
    WeakKey,
    /// The signature does not verify with `jwk`.
    #[error("DPoP proof signature invalid")]
    Signature,
    /// `htm` is not the request method.
    #[error("DPoP proof htm mismatch")]
    Htm,
    /// `htu` is not the request URI.
    #[error("DPoP proof htu mismatch")]
    Htu,
    /// `iat` missing or outside the window.
    #[error("DPoP proof iat outside the acceptance window")]
    Iat,
    /// `jti` missing or too long.
    #[error("DPoP proof jti missing")]
    Jti,
    /// `ath` missing or not the hash of the access token.
    #[error("DPoP proof ath mismatch")]
    Ath,
    /// The proof's key is not the one the token is bound to.
    #[error("DPoP proof key does not match the token binding")]
    Binding,
    /// The `jti` was seen before within the window.
    #[error("DPoP proof replayed")]
    Replayed,
    /// `crit` names extensions we do not implement.
    #[error("DPoP proof has unsupported critical header")]
    Crit,
}

/// What a proof must match.
pub struct Expect<'a> {
    /// The request method.
    pub method: &'a str,
    /// The request URI, from [`htu::expected`].
    pub htu: &'a str,
    /// The access token the proof must be bound to (`ath`); `None` at the token
    /// endpoint, where there is none yet.
    pub access_token: Option<&'a str>,
    /// The issuer's clock skew tolerance, added to [`IAT_WINDOW`].
    pub leeway: Duration,
}

/// A verified proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The RFC 7638 SHA-256 thumbprint of the proof key (base64url).
    pub jkt: String,
    /// The proof's `jti` (for the replay check).
    pub jti: String,
}

/// The one `DPoP` header of a request: `Ok(None)` without one, an error for several.
pub fn header(headers: &HeaderMap) -> Result<Option<&str>, ProofError> {
    let mut all = headers.get_all(&DPOP).iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(ProofError::Several);
    }
    first
        .map(|v| v.to_str().map_err(|_| ProofError::Malformed))
        .transpose()
}

/// base64url(SHA-256(token)), the `ath` of a proof for `token` (RFC 9449 §4.2).
pub fn ath(token: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// Verifies `proof` against `expect` at `now` (seconds since the epoch).
pub fn check(proof: &str, expect: &Expect<'_>, now: f64) -> Result<Checked, ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::Malformed);
    }
    let parts = claims::split(proof).map_err(|_| ProofError::Malformed)?;
    let header = claims::json_object(parts.header).map_err(|_| ProofError::Malformed)?;
    let payload = claims::json_object(parts.payload).map_err(|_| ProofError::Malformed)?;
    let signature = claims::b64(parts.signature).map_err(|_| ProofError::Malformed)?;
    match header.get("typ").and_then(Value::as_str) {
        Some(t) if t.eq_ignore_ascii_case("dpop+jwt") => {}
        _ => return Err(ProofError::Typ),
    }
    let alg = header
        .get("alg")
        .and_then(Value::as_str)
        .and_then(|a| Algorithm::from_str(a).ok())
        .filter(|a| !matches!(a, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512))
        .ok_or(ProofError::Alg)?;
    if header.contains_key("crit") {
        return Err(ProofError::Crit);
    }
    let key = jwk::parse(header.get("jwk").ok_or(ProofError::BadJwk)?, alg)?;
    if !key.verify(alg, parts.message.as_bytes(), &signature) {
        return Err(ProofError::Signature);
    }
    let text = |name: &str| payload.get(name).and_then(Value::as_str);
    if text("htm") != Some(expect.method) {
        return Err(ProofError::Htm);
    }
    if text("htu").and_then(htu::normalize).as_deref() != Some(expect.htu) {
        return Err(ProofError::Htu);
    }
    let iat = numeric_date(payload.get("iat"))
        .ok()
        .flatten()
        .ok_or(ProofError::Iat)?;
    let window = (IAT_WINDOW + expect.leeway).as_secs_f64();
    if (iat - now).abs() > window {
        return Err(ProofError::Iat);
    }
    let jti = text("jti")
        .filter(|j| !j.is_empty() && j.len() <= MAX_JTI_LEN)
        .ok_or(ProofError::Jti)?;
    if let Some(token) = expect.access_token {
        if text("ath") != Some(ath(token).as_str()) {
            return Err(ProofError::Ath);
        }
    }
    Ok(Checked {
        jkt: key.thumbprint,
        jti: jti.to_owned(),
    })
}

/// The `[state]` counter key remembering a proof (key and `jti`, hashed: bounded in
/// size whatever the client sent).
pub fn replay_key(c: &Checked) -> String {
    let mut input = String::with_capacity(c.jkt.len() + c.jti.len() + 1);
    input.push_str(&c.jkt);
    input.push(' ');
    input.push_str(&c.jti);
    format!("dpop-jti:{}", ath(&input))
}

/// How long a `jti` is remembered: the whole time a proof with it can be accepted
/// (`iat` ± the window, so twice the window).
pub fn replay_window(leeway: Duration) -> Duration {
    (IAT_WINDOW + leeway) * 2
}

/// The `cnf.jkt` a token is bound to, if any (RFC 9449 §6.1).
/// A `jkt` that is not a string binds to no key at all (`""` matches no thumbprint).
pub fn bound_jkt(claims: &serde_json::Map<String, Value>) -> Option<&str> {
    match claims.get("cnf")?.get("jkt")? {
        Value::String(s) => Some(s),
        _ => Some(""),
    }
}

#[cfg(test)]
mod tests;
