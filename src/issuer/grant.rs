//! The grants of the token endpoint (RFC 6749 §4.3 password, §6 refresh; SPEC §5).
//!
//! Password grant: at most [`super::inflight::ADDR_MAX_CHECKS`] checks per client
//! address are in flight (more: 429 at once), rate limits ([`super::limits`]) are
//! counted *before* the check (so a parallel burst cannot outrun them), the hash is
//! checked on the blocking pool behind [`super::Shared::hashing`], an unknown user is
//! checked against a dummy hash of the same cost, and a disabled user is only told so
//! after the right password. Refresh tokens rotate; a reused one revokes its family.

use super::form::Form;
use super::inflight::Slot;
use super::limits::Limits;
use super::reply::{GrantError, TokenBody};
use super::Endpoint;
use crate::auth::cache::TokenCache;
use crate::auth::revocation::key as revocation_key;
use crate::config::users::{User, MAX_USERNAME};
use crate::metrics::Login;
use crate::state::memory::unix_now;
use crate::state::{RefreshGrant, Rotation, TokenHash};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;

/// How long a login may wait for a hashing slot before 503.
pub const HASH_QUEUE_WAIT: Duration = Duration::from_secs(30);

/// RFC 6749 §4.3 and §6. A missing or empty `grant_type` is the password grant, as
/// with FastAPI's (non-strict) `OAuth2PasswordRequestForm`. `client_id`,
/// `client_secret` and any `Authorization: Basic` are ignored: there are no clients.
///
/// `jkt`: the thumbprint of the request's valid DPoP proof key, to bind the tokens
/// to (SPEC §10).
pub(super) async fn grant(
    ep: &Endpoint,
    peer: IpAddr,
    form: &Form,
    jkt: Option<&str>,
) -> Result<(TokenBody, String), GrantError> {
    match form.get("grant_type") {
        None | Some("password") => {
            let r = password_grant(ep, peer, form, jkt).await;
            crate::metrics::login(r.as_ref().map_or_else(GrantError::login, |_| Login::Ok));
            r
        }
        Some("refresh_token") => refresh_grant(ep, form, jkt).await,
        Some(_) => Err(GrantError::UnsupportedGrant),
    }
}

async fn password_grant(
    ep: &Endpoint,
    peer: IpAddr,
    form: &Form,
    jkt: Option<&str>,
) -> Result<(TokenBody, String), GrantError> {
    let missing = GrantError::InvalidRequest("Missing username or password");
    let username = form.get("username").ok_or(missing.clone())?;
    let password = form.get("password").ok_or(missing)?;
    let limits = Limits::new(username, peer);
    // Cheap refusals first: this address's checks in flight, its failures; then the
    // failures again once a hashing slot is ours, so a parallel burst cannot get
    // more checks past the limit than there are slots.
    let slot = ep.shared.in_flight.acquire(peer).ok_or(GrantError::Busy)?;
    limits.check(ep).await?;
    let permit = hashing_slot(ep).await?;
    limits.check(ep).await?;
    let user = ep
        .users
        .get(username)
        .filter(|_| username.len() <= MAX_USERNAME)
        .cloned();
    let ok = check_password(
        ep,
        (permit, slot),
        user.clone(),
        password.as_bytes().to_vec(),
    )
    .await?;
    let user = match user {
        Some(u) if ok => u,
        _ => {
            limits.failed(ep).await?;
            return Err(GrantError::BadCredentials);
        }
    };
    limits.succeeded(ep).await?;
    if user.disabled {
        return Err(GrantError::InactiveUser);
    }
    let scope = grant_scopes(form.get("scope"), &user.scopes, None);
    let family = super::dpop::family_id(jkt);
    let (refresh, hash) = new_refresh_token();
    ep.shared
        .store
        .refresh_issue(
            hash,
            RefreshGrant {
                family: family.clone(),
                sub: user.name.clone(),
                scope: scope.clone(),
                expires_at: unix_now().saturating_add(ep.refresh_ttl.as_secs()),
            },
        )
        .await?;
    let body = issue(ep, &user, scope, (family.as_str(), jkt), refresh).await?;
    Ok((body, user.name.clone()))
}

async fn refresh_grant(
    ep: &Endpoint,
    form: &Form,
    jkt: Option<&str>,
) -> Result<(TokenBody, String), GrantError> {
    let presented = form
        .get("refresh_token")
        .ok_or(GrantError::InvalidRequest("Missing refresh_token"))?;
    if presented.len() > 256 {
        return Err(GrantError::InvalidRefresh);
    }
    let (refresh, hash) = new_refresh_token();
    let now = unix_now();
    let expires_at = now.saturating_add(ep.refresh_ttl.as_secs());
    let old = match ep
        .shared
        .store
        .refresh_rotate(digest(presented), hash, expires_at, now)
        .await?
    {
        Rotation::Rotated(g) => g,
        Rotation::Reused => {
            tracing::warn!("refresh token reuse detected: its family is revoked");
            return Err(GrantError::InvalidRefresh);
        }
        Rotation::Invalid => return Err(GrantError::InvalidRefresh),
    };
    if let Some(bound) = super::dpop::family_jkt(&old.family) {
        if jkt != Some(bound) {
            // A key-bound refresh token without a proof by its key was taken from its
            // client: the family ends here (SPEC §10: 400 invalid_grant).
            tracing::warn!("refresh token bound to a DPoP key presented without a proof by that key: its family is revoked");
            ep.shared.store.refresh_revoke(hash, now).await?;
            return Err(GrantError::InvalidRefresh);
        }
    }
    let user = match ep.users.get(&old.sub) {
        Some(u) if !u.disabled => u.clone(),
        found => {
            // Removed or disabled since: the family ends here.
            ep.shared.store.refresh_revoke(hash, now).await?;
            return Err(if found.is_some() {
                GrantError::InactiveUser
            } else {
                GrantError::InvalidRefresh
            });
        }
    };
    let original: Vec<String> = old.scope.split_whitespace().map(str::to_owned).collect();
    let scope = grant_scopes(form.get("scope"), &user.scopes, Some(&original));
    let body = issue(ep, &user, scope, (old.family.as_str(), jkt), refresh).await?;
    Ok((body, user.name.clone()))
}

/// Signs the access token (bound to `jkt` when given: `cnf.jkt`, RFC 9449 §6.1) and
/// records it in the refresh family (revoked with it).
async fn issue(
    ep: &Endpoint,
    user: &User,
    scope: String,
    (family, jkt): (&str, Option<&str>),
    refresh_token: String,
) -> Result<TokenBody, GrantError> {
    let mut extra: Vec<(&str, Value)> = Vec::new();
    if let Some(k) = jkt {
        extra.push(("cnf", serde_json::json!({ "jkt": k })));
    }
    if let Some(e) = &user.email {
        extra.push(("email", e.clone().into()));
    }
    if let Some(n) = &user.full_name {
        extra.push(("name", n.clone().into()));
    }
    let scope_claim = (!scope.is_empty()).then_some(scope.as_str());
    let minted =
        crate::mint::mint_token(&ep.issuer, &user.name, scope_claim, ep.access_ttl, &extra)
            .map_err(|e| {
                tracing::error!(error = %e, "token endpoint: signing failed");
                GrantError::Unavailable
            })?;
    let key = revocation_key(&ep.issuer.iss, &minted.jti);
    ep.shared
        .store
        .family_add_access(
            family,
            &key,
            minted.exp.saturating_add(ep.issuer.leeway.as_secs()),
        )
        .await?;
    Ok(TokenBody {
        access_token: minted.token,
        token_type: if jkt.is_some() { "DPoP" } else { "bearer" },
        expires_in: ep.access_ttl.as_secs(),
        refresh_token,
        scope,
    })
}

/// Granted scopes: the requested ones the user has (and, on refresh, that the
/// original grant had); all of them when none are requested.
pub fn grant_scopes(
    requested: Option<&str>,
    user: &[String],
    original: Option<&[String]>,
) -> String {
    let allowed =
        |s: &str| user.iter().any(|u| u == s) && original.is_none_or(|o| o.iter().any(|x| x == s));
    let mut out: Vec<&str> = Vec::new();
    let candidates: Box<dyn Iterator<Item = &str>> = match requested {
        Some(r) => Box::new(r.split_whitespace()),
        None => match original {
            Some(o) => Box::new(o.iter().map(String::as_str)),
            None => Box::new(user.iter().map(String::as_str)),
        },
    };
    for s in candidates {
        if allowed(s) && !out.contains(&s) {
            out.push(s);
        }
    }
    out.join(" ")
}

/// A slot to run one password check in (at most [`super::Shared::hashing`] at once).
async fn hashing_slot(ep: &Endpoint) -> Result<OwnedSemaphorePermit, GrantError> {
    tokio::time::timeout(HASH_QUEUE_WAIT, ep.shared.hashing.clone().acquire_owned())
        .await
        .map_err(|_| GrantError::Unavailable)?
        .map_err(|_| GrantError::Unavailable)
}

/// Checks a password on the blocking pool, holding the hashing permit and the
/// address's slot until it is done (even if the client has gone); an unknown user
/// is checked against the dummy hash (same cost) and never matches.
async fn check_password(
    ep: &Endpoint,
    permit: (OwnedSemaphorePermit, Slot),
    user: Option<Arc<User>>,
    password: Vec<u8>,
) -> Result<bool, GrantError> {
    let users = ep.users.clone();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        match user {
            Some(u) => u.hash.verify(&password),
            None => {
                if let Some(d) = users.dummy() {
                    let _ = d.verify(&password);
                }
                false
            }
        }
    })
    .await
    .map_err(|_| GrantError::Unavailable)
}

/// SHA-256.
pub(super) fn digest(s: &str) -> TokenHash {
    TokenCache::digest(s)
}

/// A new opaque refresh token (256 random bits, base64url) and its digest.
fn new_refresh_token() -> (String, TokenHash) {
    let mut b = [0u8; 32];
    let _ = aws_lc_rs::rand::fill(&mut b);
    let t = URL_SAFE_NO_PAD.encode(b);
    let h = digest(&t);
    (t, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn scopes() {
        let user = v(&["items:read", "items:write", "me"]);
        assert_eq!(grant_scopes(None, &user, None), "items:read items:write me");
        assert_eq!(
            grant_scopes(Some("me admin items:read me"), &user, None),
            "me items:read"
        );
        assert_eq!(grant_scopes(Some("admin"), &user, None), "");
        let orig = v(&["me"]);
        assert_eq!(grant_scopes(None, &user, Some(&orig)), "me");
        assert_eq!(
            grant_scopes(Some("me items:read"), &user, Some(&orig)),
            "me"
        );
        // A scope taken from the user since is not refreshed.
        assert_eq!(grant_scopes(None, &v(&["items:read"]), Some(&orig)), "");
    }
}
