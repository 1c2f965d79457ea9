//! Phase 3 (SPEC §2 `access`, §3): the route's access rule, its token sources in
//! `token_from` order, verification (cache, then keys: an unknown `kid` of a JWKS
//! issuer may wait for one rate-limited re-fetch) and revocation.

use crate::app::Runtime;
use crate::auth::error::TokenError;
use crate::auth::extract;
use crate::auth::issuer::Verified;
use crate::auth::revocation::{self, Refused};
use crate::deny::Denial;
use crate::routes::{Access, Route};
use http::HeaderMap;
use std::sync::Arc;
use std::time::Instant;

/// The verified caller; `None` when the route needs no token and none was sent.
pub async fn authenticate(
    rt: &Runtime,
    route: &Route,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Option<Arc<Verified>>, Denial> {
    match route.access {
        Access::Deny => Err(Denial::DenyRoute),
        Access::Public => Ok(None),
        Access::Optional | Access::Protected => {
            match extract::find_token(&route.token_from, headers, query) {
                None if route.access == Access::Optional => Ok(None),
                None => Err(Denial::NoToken),
                Some(token) => {
                    let v = verify(rt, &token).await?;
                    check_revoked(rt, &v).await?;
                    Ok(Some(v))
                }
            }
        }
    }
}

/// Signature and claims, from the verified-token cache when it was seen before.
async fn verify(rt: &Runtime, token: &str) -> Result<Arc<Verified>, Denial> {
    let started = Instant::now();
    let v = rt.verifier.verify_async(token).await;
    crate::metrics::verify_seconds().record(started.elapsed().as_secs_f64());
    v.map_err(Denial::Invalid)
}

/// A revoked token is refused after verification, cache hit or not (SPEC §3).
async fn check_revoked(rt: &Runtime, v: &Verified) -> Result<(), Denial> {
    let Some(jti) = &v.jti else {
        return Ok(());
    };
    let store = rt.state.store.as_ref();
    revocation::check(store, rt.config.state.fail_open, &v.issuer.config.iss, jti)
        .await
        .map_err(|r| match r {
            Refused::Revoked => Denial::Invalid(TokenError::Revoked),
            Refused::Unavailable => Denial::Unavailable,
        })
}
