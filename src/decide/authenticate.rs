//! Phase 3 (SPEC §2 `access`, §3): the route's access rule, its token sources in
//! `token_from` order, verification (cache, then keys: an unknown `kid` of a JWKS
//! issuer may wait for one rate-limited re-fetch), revocation, and for the built-in
//! issuer's tokens the account (SPEC §5: its `sub` a user enabled in the users file
//! of the running config), and the DPoP binding with a fresh proof ([`super::dpop`],
//! SPEC §10), all four on cache hits too.

use super::{Engine, Normalized, RequestFacts};
use crate::auth::error::TokenError;
use crate::auth::extract;
use crate::auth::issuer::{Issuer, Verified};
use crate::auth::revocation::Refused;
use crate::config::users::Users;
use crate::deny::{Denial, DpopDenial};
use crate::routes::{Access, Route};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// The verified caller; `None` when the route needs no token and none was sent.
pub async fn authenticate(
    engine: &Engine<'_>,
    route: &Route,
    facts: &RequestFacts<'_>,
    req: &Normalized<'_>,
) -> Result<Option<Arc<Verified>>, Denial> {
    match route.access {
        Access::Deny => Err(Denial::DenyRoute),
        Access::Public => Ok(None),
        Access::Optional | Access::Protected => {
            match extract::find(&route.token_from, facts.headers, req.query) {
                None if route.access == Access::Optional => Ok(None),
                None if route.dpop_required => Err(Denial::Dpop(DpopDenial::NoToken)),
                None => Err(Denial::NoToken),
                Some(presented) => {
                    let dpop = presented.dpop_scheme || route.dpop_required;
                    let challenge = |d| super::dpop::challenge_dpop(d, dpop);
                    let v = verify(engine, &presented.token).await.map_err(challenge)?;
                    check_revoked(engine, &v).await.map_err(challenge)?;
                    check_account(engine.accounts, &v).map_err(challenge)?;
                    super::dpop::check(engine, route, (facts, req), &presented, &v).await?;
                    Ok(Some(v))
                }
            }
        }
    }
}

/// Signature and claims, from the verified-token cache when it was seen before.
async fn verify(engine: &Engine<'_>, token: &str) -> Result<Arc<Verified>, Denial> {
    let started = Instant::now();
    let span = crate::otel::verify_span();
    let v = engine
        .verifier
        .verify_async(token)
        .instrument(span.clone())
        .await;
    crate::metrics::verify_seconds().record(started.elapsed().as_secs_f64());
    let v = v.map_err(Denial::Invalid);
    match &v {
        Ok(v) => crate::otel::verified(&span, Some(&v.issuer.config.name), "ok"),
        Err(d) => crate::otel::verified(&span, None, d.decision()),
    }
    v
}

/// A revoked token is refused after verification, cache hit or not (SPEC §3).
async fn check_revoked(engine: &Engine<'_>, v: &Verified) -> Result<(), Denial> {
    let Some(key) = &v.revocation_key else {
        return Ok(());
    };
    engine
        .revocations
        .check_key(key)
        .await
        .map_err(|r| match r {
            Refused::Revoked => Denial::Invalid(TokenError::Revoked),
            Refused::Unavailable => Denial::Unavailable,
        })
}

/// The built-in token endpoint's issuer and the accounts of the running config
/// (swapped with it on reload, so the next request sees the new users file).
#[derive(Clone, Copy)]
pub struct Accounts<'r> {
    /// The issuer that signs the endpoint's tokens (the same `Arc` the verifier's
    /// issuer holds: one pointer comparison tells its tokens from the others').
    pub issuer: &'r Arc<Issuer>,
    /// The users file as last loaded.
    pub users: &'r Users,
}

/// A token of the built-in issuer whose `sub` is no longer an enabled user is
/// refused like an invalid one (SPEC §5); other issuers' tokens pass untouched.
fn check_account(accounts: Option<Accounts<'_>>, v: &Verified) -> Result<(), Denial> {
    let Some(a) = accounts.filter(|a| Arc::ptr_eq(a.issuer, &v.issuer.config)) else {
        return Ok(());
    };
    let sub = v.claims.get("sub").and_then(serde_json::Value::as_str);
    match sub.and_then(|s| a.users.get(s)) {
        Some(user) if !user.disabled => Ok(()),
        _ => Err(Denial::Invalid(TokenError::InactiveUser)),
    }
}
