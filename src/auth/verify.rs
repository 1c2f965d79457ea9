//! Token verification (SPEC §3): issuer chosen by exact `iss` before any key work,
//! key by `kid`, algorithm checked against the issuer allow-list *and* the key's
//! family, signature, then claims (exp required; nbf, iat, aud; identity claim).
//! `jku`, `x5u`, `jwk` and `x5c` are never read; `alg: none` is never accepted.

use super::cache::TokenCache;
use super::claims::{self, numeric_date};
use super::error::TokenError;
use super::issuer::{Issuer, TrustedIssuer, Verified};
use super::jwks::JwksSet;
use super::keys::{Lookup, VerifyKey};
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Verifies tokens against the configured issuers, with the verified-token cache.
pub struct Verifier {
    /// The issuers in config order, with the keys each verifies with now.
    pub issuers: Vec<Arc<TrustedIssuer>>,
    by_iss: HashMap<String, Arc<TrustedIssuer>>,
    identity_claim: String,
    /// The verified-token cache (SPEC §3); shared with the JWKS refresh, which
    /// evicts tokens verified by a key that left its issuer's set.
    pub cache: Arc<TokenCache>,
    /// JWKS / discovery key sources, one per issuer that fetches its keys.
    pub jwks: JwksSet,
}

/// Seconds since the epoch.
pub fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Verifier {
    /// Builds a verifier; `cache_entries` 0 turns the cache off. JWKS issuers start
    /// without keys: [`JwksSet::start`] fetches them (fails on an unusable `ca`).
    pub fn new(
        issuers: Vec<Arc<Issuer>>,
        identity_claim: String,
        cache_entries: u64,
    ) -> Result<Self, crate::tls_client::TlsError> {
        let issuers: Vec<Arc<TrustedIssuer>> = issuers
            .into_iter()
            .map(|i| Arc::new(TrustedIssuer::new(i)))
            .collect();
        let by_iss = issuers
            .iter()
            .map(|i| (i.config.iss.clone(), i.clone()))
            .collect();
        let cache = Arc::new(TokenCache::new(cache_entries));
        let jwks = JwksSet::new(&issuers, &cache)?;
        Ok(Verifier {
            issuers,
            by_iss,
            identity_claim,
            cache,
            jwks,
        })
    }

    /// [`Verifier::verify`], plus the JWKS slow path: on an unknown `kid` for a JWKS
    /// issuer, wait for a (rate-limited, single-flight) re-fetch and try once more.
    pub async fn verify_async(&self, token: &str) -> Result<Arc<Verified>, TokenError> {
        match self.verify(token) {
            Err(TokenError::UnknownKid) => {
                let source = self.issuer_of(token).and_then(|i| self.jwks.source_for(i));
                match source {
                    // Boxed: rare (a new key), and the fetch's state would otherwise
                    // size every request's future (issue 20).
                    Some(s) if Box::pin(s.refresh_for_unknown_kid()).await => self.verify(token),
                    _ => Err(TokenError::UnknownKid),
                }
            }
            other => other,
        }
    }

    /// The configured issuer a token claims (payload not verified: routing only).
    fn issuer_of(&self, token: &str) -> Option<&Arc<TrustedIssuer>> {
        let parts = claims::split(token).ok()?;
        let claims = claims::json_object(parts.payload).ok()?;
        let iss = claims.get("iss")?.as_str()?;
        self.by_iss.get(iss)
    }

    /// Verifies a token, from the cache when it was verified before.
    pub fn verify(&self, token: &str) -> Result<Arc<Verified>, TokenError> {
        let now = now_secs();
        let digest = self.cache.enabled().then(|| TokenCache::key(token));
        if let Some(d) = &digest {
            if let Some(v) = self.cache.get(d) {
                // The cache never keeps an entry past exp, but its clock is coarse;
                // check again, and check the key is still published.
                if (v.valid_until() as f64) < now {
                    return Err(TokenError::Expired);
                }
                if v.issuer.publishes(&v.key) {
                    return Ok(v);
                }
                self.cache.remove(d);
            }
        }
        let v = Arc::new(self.verify_uncached(token, now)?);
        if let Some(d) = digest {
            let ttl = (v.valid_until() as f64 - now).max(0.0);
            self.cache
                .insert(d, v.clone(), Duration::from_secs_f64(ttl));
        }
        Ok(v)
    }

    /// Full verification, no cache.
    pub fn verify_uncached(&self, token: &str, now: f64) -> Result<Verified, TokenError> {
        self.verify_for(token, now, None)
    }

    /// An OpenID Connect ID token of `issuer` (SPEC §9, OIDC Core §3.1.3.7): as any
    /// token (signature with the issuer's keys, `exp`, `nbf`, `iat`, the identity
    /// claim), but `aud` must contain `client_id` (not the issuer's `audiences`). An
    /// unknown `kid` waits for the issuer's rate-limited re-fetch. Never cached.
    pub async fn verify_id_token(
        &self,
        token: &str,
        issuer: &Arc<TrustedIssuer>,
        client_id: &str,
    ) -> Result<Verified, TokenError> {
        let aud = [client_id.to_owned()];
        let mut v = self.verify_for(token, now_secs(), Some(&aud));
        if v.as_ref().err() == Some(&TokenError::UnknownKid) {
            if let Some(s) = self.jwks.source_for(issuer) {
                if s.refresh_for_unknown_kid().await {
                    v = self.verify_for(token, now_secs(), Some(&aud));
                }
            }
        }
        let v = v?;
        if !Arc::ptr_eq(&v.issuer, issuer) {
            return Err(TokenError::UnknownIssuer);
        }
        Ok(v)
    }

    /// Full verification; `audiences` replaces the issuer's when set.
    fn verify_for(
        &self,
        token: &str,
        now: f64,
        audiences: Option<&[String]>,
    ) -> Result<Verified, TokenError> {
        let parts = claims::split(token)?;
        // jsonwebtoken decodes the signature leniently (padding, non-zero trailing
        // bits), which would let one signature be spelled several ways. Insist on
        // the canonical base64url form, as for the header and payload (issue #9).
        claims::b64(parts.signature)?;
        let header = claims::json_object(parts.header)?;
        let alg = match header.get("alg") {
            Some(Value::String(a)) => Algorithm::from_str(a).map_err(|_| TokenError::AlgRefused)?,
            _ => return Err(TokenError::Malformed),
        };
        if header.contains_key("crit") {
            // We implement no JWS extensions, so any `crit` entry is unknown (RFC 7515 §4.1.11).
            return Err(TokenError::Crit);
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(k)) => Some(k.as_str()),
            Some(_) => return Err(TokenError::Malformed),
        };
        let claims = claims::json_object(parts.payload)?;
        let iss = match claims.get("iss") {
            Some(Value::String(s)) => s,
            _ => return Err(TokenError::UnknownIssuer),
        };
        let issuer = self.by_iss.get(iss).ok_or(TokenError::UnknownIssuer)?;
        if !issuer.config.allows(alg) {
            return Err(TokenError::AlgRefused);
        }
        let keys = issuer.keys_guard();
        let key = match keys.find(kid) {
            Lookup::Found(k) => k.clone(),
            Lookup::UnknownKid | Lookup::Ambiguous => return Err(TokenError::UnknownKid),
        };
        if !key.allows(alg) {
            return Err(TokenError::AlgRefused);
        }
        if !key.verify_signature(alg, parts.message.as_bytes(), parts.signature) {
            return Err(TokenError::BadSignature);
        }
        let audiences = audiences.unwrap_or(&issuer.config.audiences);
        self.check_claims(issuer, key, claims, (now, audiences))
    }

    fn check_claims(
        &self,
        trusted: &Arc<TrustedIssuer>,
        key: Arc<VerifyKey>,
        claims: Map<String, Value>,
        (now, audiences): (f64, &[String]),
    ) -> Result<Verified, TokenError> {
        let issuer: &Issuer = &trusted.config;
        let leeway = issuer.leeway.as_secs_f64();
        let exp = numeric_date(claims.get("exp"))
            .map_err(|_| TokenError::MissingExp)?
            .ok_or(TokenError::MissingExp)?;
        if exp + leeway < now {
            return Err(TokenError::Expired);
        }
        if let Some(nbf) = numeric_date(claims.get("nbf"))? {
            if nbf > now + leeway {
                return Err(TokenError::NotYetValid);
            }
        }
        if let Some(iat) = numeric_date(claims.get("iat"))? {
            if iat > now + leeway {
                return Err(TokenError::IssuedInFuture);
            }
        }
        if !audiences.is_empty() {
            let ok = match claims.get("aud") {
                Some(Value::String(a)) => audiences.iter().any(|x| x == a),
                Some(Value::Array(list)) => list
                    .iter()
                    .filter_map(Value::as_str)
                    .any(|a| audiences.iter().any(|x| x == a)),
                _ => false,
            };
            if !ok {
                return Err(TokenError::BadAudience);
            }
        }
        let identity = match claims.get(&self.identity_claim) {
            Some(Value::String(s)) if !s.trim().is_empty() && !s.chars().any(char::is_control) => {
                s.clone()
            }
            _ => return Err(TokenError::NoIdentity),
        };
        let jti = claims.get("jti").and_then(Value::as_str).map(str::to_owned);
        let revocation_key = jti
            .as_deref()
            .map(|j| crate::auth::revocation::key(&trusted.config.iss, j));
        Ok(Verified {
            issuer: trusted.clone(),
            key,
            // exp can be a float far outside i64; clamp (an absurd exp is still "later").
            exp: exp.floor().clamp(i64::MIN as f64, i64::MAX as f64) as i64,
            identity_value: http::HeaderValue::from_bytes(identity.as_bytes()).ok(),
            identity,
            scopes: claims::scopes(&claims),
            claims,
            jti,
            revocation_key,
        })
    }
}
