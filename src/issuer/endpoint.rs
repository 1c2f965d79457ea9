//! Answering the built-in endpoints. [`serve`] is the outer function (method check,
//! form reading, error -> response via [`super::reply`]); the grants are inner `?`
//! chains returning [`GrantError`].
//!
//! Password grant: at most [`super::inflight::ADDR_MAX_CHECKS`] checks per client
//! address are in flight (more: 429 at once), rate limits are counted *before* the
//! check (so a parallel burst cannot outrun them), the hash is checked on the
//! blocking pool behind [`super::Shared::hashing`], an unknown user is checked
//! against a dummy hash of the same cost, and a disabled user is only told so after
//! the right password.

use super::form::{self, Form, FormError};
use super::inflight::Slot;
use super::reply::{self, GrantError, TokenBody};
use super::users::{User, MAX_USERNAME};
use super::{Builtin, Endpoint};
use crate::app::{ConnInfo, Runtime};
use crate::auth::cache::TokenCache;
use crate::auth::claims::MAX_TOKEN_LEN;
use crate::auth::revocation::key as revocation_key;
use crate::body::ProxyBody;
use crate::state::memory::unix_now;
use crate::state::{RefreshGrant, Rotation, StateError, TokenHash};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{Method, Response};
use hyper::body::Incoming;
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;

/// Failed logins per username in one window before 429.
pub const USER_MAX_FAILURES: u64 = 5;
/// Failed logins per client address in one window before 429.
pub const ADDR_MAX_FAILURES: u64 = 30;
/// The rate-limit window (fixed, from the first failure).
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// How long a login may wait for a hashing slot before 503.
pub const HASH_QUEUE_WAIT: Duration = Duration::from_secs(30);

/// What the access log reports about a built-in request.
#[derive(Debug, Default)]
pub struct Served {
    /// Decision label.
    pub decision: &'static str,
    /// The user, on a successful grant.
    pub user: Option<String>,
}

impl From<StateError> for GrantError {
    fn from(e: StateError) -> Self {
        tracing::error!(error = %e, "token endpoint: state backend failed");
        GrantError::Unavailable
    }
}

/// Answers a built-in endpoint.
pub async fn serve(
    rt: &Runtime,
    ep: &Endpoint,
    which: Builtin,
    conn: &ConnInfo,
    host: Option<&str>,
    parts: http::request::Parts,
    body: Incoming,
) -> (Response<ProxyBody>, Served) {
    let served = |decision| Served {
        decision,
        user: None,
    };
    match which {
        Builtin::Jwks | Builtin::Discovery => {
            if parts.method != Method::GET && parts.method != Method::HEAD {
                return (reply::method_not_allowed("GET, HEAD"), served("bad_method"));
            }
            let r = if which == Builtin::Jwks {
                reply::document(ep.jwks.clone().unwrap_or_default())
            } else {
                match origin_of(&ep.issuer.iss) {
                    Some(base) => reply::document(discovery(ep, &base)),
                    // Built on this request's Host: no cache may keep it for another.
                    None => {
                        reply::per_request_document(discovery(ep, &request_origin(conn.tls, host)))
                    }
                }
            };
            (r, served("public"))
        }
        Builtin::Token | Builtin::Revoke => {
            if parts.method != Method::POST {
                return (reply::method_not_allowed("POST"), served("bad_method"));
            }
            let deadline = rt.config.server.header_timeout;
            let form = match form::read(&parts.headers, body, deadline).await {
                Ok(f) => f,
                Err(e) => {
                    let g = GrantError::InvalidRequest(form_detail(e));
                    return (g.response(e.body_unread()), served(g.decision()));
                }
            };
            if which == Builtin::Revoke {
                return match revoke(rt, ep, &form).await {
                    Ok(()) => (reply::revoked(), served("token_revoked")),
                    Err(g) => (g.response(false), served(g.decision())),
                };
            }
            match grant(ep, conn.peer.ip(), &form).await {
                Ok((body, user)) => (
                    reply::token(&body),
                    Served {
                        decision: "token_issued",
                        user: Some(user),
                    },
                ),
                Err(g) => (g.response(false), served(g.decision())),
            }
        }
    }
}

fn form_detail(e: FormError) -> &'static str {
    match e {
        FormError::ContentType => "Content-Type must be application/x-www-form-urlencoded",
        FormError::TooLarge => "Request body too large",
        FormError::Incomplete => "Request body incomplete",
        FormError::NotUtf8 => "Request body is not valid UTF-8",
        FormError::Repeated => "Repeated parameter",
    }
}

/// RFC 6749 §4.3 and §6. A missing or empty `grant_type` is the password grant, as
/// with FastAPI's (non-strict) `OAuth2PasswordRequestForm`. `client_id`,
/// `client_secret` and any `Authorization: Basic` are ignored: there are no clients.
async fn grant(
    ep: &Endpoint,
    peer: IpAddr,
    form: &Form,
) -> Result<(TokenBody, String), GrantError> {
    match form.get("grant_type") {
        None | Some("password") => password_grant(ep, peer, form).await,
        Some("refresh_token") => refresh_grant(ep, form).await,
        Some(_) => Err(GrantError::UnsupportedGrant),
    }
}

async fn password_grant(
    ep: &Endpoint,
    peer: IpAddr,
    form: &Form,
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
    let family = crate::mint::random_id();
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
    let body = issue(ep, &user, scope, &family, refresh).await?;
    Ok((body, user.name.clone()))
}

async fn refresh_grant(ep: &Endpoint, form: &Form) -> Result<(TokenBody, String), GrantError> {
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
    let body = issue(ep, &user, scope, &old.family, refresh).await?;
    Ok((body, user.name.clone()))
}

/// Signs the access token and records it in the refresh family (revoked with it).
async fn issue(
    ep: &Endpoint,
    user: &User,
    scope: String,
    family: &str,
    refresh_token: String,
) -> Result<TokenBody, GrantError> {
    let mut extra: Vec<(&str, Value)> = Vec::new();
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
        token_type: "bearer",
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

/// The two failure counters of one login attempt.
struct Limits {
    user: String,
    addr: String,
}

impl Limits {
    fn new(username: &str, peer: IpAddr) -> Limits {
        // The username is hashed: counters never hold (or grow with) client input.
        let d = digest(username);
        let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
        Limits {
            user: format!("login:user:{hex}"),
            addr: format!("login:addr:{peer}"),
        }
    }

    /// 429 while either counter is at its limit.
    async fn check(&self, ep: &Endpoint) -> Result<(), GrantError> {
        let store = &ep.shared.store;
        let mut wait: Option<Duration> = None;
        for (key, max) in [
            (&self.user, USER_MAX_FAILURES),
            (&self.addr, ADDR_MAX_FAILURES),
        ] {
            if let Some(h) = store.counter_get(key).await? {
                if h.count >= max {
                    wait = Some(wait.map_or(h.retry_after, |w| w.max(h.retry_after)));
                }
            }
        }
        match wait {
            Some(w) => Err(GrantError::RateLimited(w)),
            None => Ok(()),
        }
    }

    /// Counts a failed login against both.
    async fn failed(&self, ep: &Endpoint) -> Result<(), GrantError> {
        ep.shared
            .store
            .counter_hit(&self.user, FAILURE_WINDOW)
            .await?;
        ep.shared
            .store
            .counter_hit(&self.addr, FAILURE_WINDOW)
            .await?;
        Ok(())
    }

    /// The password was right: the username starts afresh (the address keeps its
    /// failures: one good account must not launder guesses at others).
    async fn succeeded(&self, ep: &Endpoint) -> Result<(), GrantError> {
        ep.shared
            .store
            .counter_reset(&self.user)
            .await
            .map_err(GrantError::from)
    }
}

/// RFC 7009 §2: revokes a refresh token (with its family) or an access token that
/// verifies (by `jti`, until `exp`, and out of the verified-token cache). Unknown
/// and invalid tokens are answered 200 too.
async fn revoke(rt: &Runtime, ep: &Endpoint, form: &Form) -> Result<(), GrantError> {
    let token = form
        .get("token")
        .ok_or(GrantError::InvalidRequest("Missing token"))?;
    if token.len() > MAX_TOKEN_LEN {
        return Ok(());
    }
    let store = &ep.shared.store;
    if !token.contains('.') {
        store.refresh_revoke(digest(token), unix_now()).await?;
        return Ok(());
    }
    let Ok(v) = rt.verifier.verify(token) else {
        return Ok(());
    };
    let (Some(jti), Some(iss)) = (&v.jti, rt.verifier.issuers.get(v.issuer)) else {
        return Ok(());
    };
    let until = u64::try_from(v.exp)
        .unwrap_or(0)
        .saturating_add(iss.leeway.as_secs());
    store.revoke(&revocation_key(&iss.iss, jti), until).await?;
    rt.verifier.cache.remove(&TokenCache::key(token));
    Ok(())
}

/// SHA-256.
fn digest(s: &str) -> TokenHash {
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

/// The request's scheme and Host, as an origin (`localhost` for a Host that is not
/// a plain host name, address and port).
fn request_origin(tls: bool, host: Option<&str>) -> String {
    let host = host
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{}://{host}", if tls { "https" } else { "http" })
}

/// The OIDC discovery document (fields of OpenID Connect Discovery 1.0 §3 and
/// RFC 8414), its endpoint URLs on `base`: the issuer's origin when `iss` is an
/// http(s) URL, else the request's scheme and Host.
fn discovery(ep: &Endpoint, base: &str) -> String {
    let alg = ep
        .issuer
        .signing
        .as_ref()
        .map(|s| format!("{:?}", s.alg))
        .unwrap_or_default();
    serde_json::json!({
        "issuer": ep.issuer.iss,
        "token_endpoint": format!("{base}{}", ep.path),
        "jwks_uri": format!("{base}{}", super::JWKS_PATH),
        "revocation_endpoint": format!("{base}{}", super::REVOKE_PATH),
        "grant_types_supported": ["password", "refresh_token"],
        "response_types_supported": ["none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "claims_supported": ["sub", "iss", "aud", "iat", "exp", "jti", "scope", "email", "name"],
    })
    .to_string()
}

/// `scheme://authority` of an http(s) URL.
fn origin_of(iss: &str) -> Option<String> {
    let uri: http::Uri = iss.parse().ok()?;
    let scheme = uri.scheme_str().filter(|s| *s == "http" || *s == "https")?;
    Some(format!("{scheme}://{}", uri.authority()?))
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

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://auth.example.com/realm/").as_deref(),
            Some("https://auth.example.com")
        );
        assert_eq!(origin_of("portcullis"), None);
        assert_eq!(origin_of("ftp://x"), None);
    }
}
