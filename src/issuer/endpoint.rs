//! Answering the built-in endpoints (SPEC §5). [`serve`] is the outer function (method
//! check, form reading, error -> response via [`super::reply`]); the grants
//! ([`super::grant`]) and [`revoke`] are inner `?` chains returning [`GrantError`]. The
//! documents are built in [`super::documents`].
//!
//! It is handed only what it uses: the [`Endpoint`] (its config, users and state), the
//! proxy's verifier (for `/revoke`), and the [`Caller`]'s address, scheme and host.

use super::form::{self, Form, FormError};
use super::reply::{self, GrantError};
use super::{documents, grant, Builtin, Endpoint};
use crate::auth::cache::TokenCache;
use crate::auth::claims::MAX_TOKEN_LEN;
use crate::auth::revocation::key as revocation_key;
use crate::auth::verify::Verifier;
use crate::body::ProxyBody;
use crate::body::ReqBody;
use crate::state::memory::unix_now;
use crate::state::StateError;
use http::{Method, Response};
use std::net::IpAddr;

/// What the endpoints read of a request besides its head and body.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// The client address (per-address login limits).
    pub peer: IpAddr,
    /// Whether the client used TLS (the scheme of a discovery document built on `host`).
    pub tls: bool,
    /// The request's normalized host, port included.
    pub host: Option<&'a str>,
}

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

/// Answers a built-in endpoint. `verifier` is the proxy's: `/revoke` verifies the
/// access token it revokes and removes it from the verified-token cache.
pub async fn serve(
    ep: &Endpoint,
    verifier: &Verifier,
    which: Builtin,
    caller: Caller<'_>,
    parts: http::request::Parts,
    body: ReqBody,
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
                match documents::origin_of(&ep.issuer.iss) {
                    Some(base) => reply::document(documents::discovery(ep, &base)),
                    // Built on this request's Host: no cache may keep it for another.
                    None => reply::per_request_document(documents::discovery(
                        ep,
                        &documents::request_origin(caller.tls, caller.host),
                    )),
                }
            };
            (r, served("public"))
        }
        Builtin::Token | Builtin::Revoke => {
            if parts.method != Method::POST {
                return (reply::method_not_allowed("POST"), served("bad_method"));
            }
            let form = match form::read(&parts.headers, body, ep.form_deadline).await {
                Ok(f) => f,
                Err(e) => {
                    let g = GrantError::InvalidRequest(form_detail(e));
                    return (g.response(e.body_unread()), served(g.decision()));
                }
            };
            if which == Builtin::Revoke {
                return match revoke(verifier, ep, &form).await {
                    Ok(()) => (reply::revoked(), served("token_revoked")),
                    Err(g) => (g.response(false), served(g.decision())),
                };
            }
            let jkt =
                match super::dpop::proof_key(ep, (caller.tls, caller.host), &parts.headers).await {
                    Ok(k) => k,
                    Err(g) => return (g.response(false), served(g.decision())),
                };
            match grant::grant(ep, caller.peer, &form, jkt.as_deref()).await {
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

/// RFC 7009 §2: revokes a refresh token (with its family) or an access token that
/// verifies (by `jti`, until `exp`, and out of the verified-token cache). Unknown
/// and invalid tokens are answered 200 too.
async fn revoke(verifier: &Verifier, ep: &Endpoint, form: &Form) -> Result<(), GrantError> {
    let token = form
        .get("token")
        .ok_or(GrantError::InvalidRequest("Missing token"))?;
    if token.len() > MAX_TOKEN_LEN {
        return Ok(());
    }
    let store = &ep.shared.store;
    if !token.contains('.') {
        store
            .refresh_revoke(grant::digest(token), unix_now())
            .await?;
        return Ok(());
    }
    let Ok(v) = verifier.verify(token) else {
        return Ok(());
    };
    let Some(jti) = &v.jti else {
        return Ok(());
    };
    let iss = &v.issuer.config;
    let until = u64::try_from(v.exp)
        .unwrap_or(0)
        .saturating_add(iss.leeway.as_secs());
    store.revoke(&revocation_key(&iss.iss, jti), until).await?;
    verifier.cache.remove(&TokenCache::key(token));
    Ok(())
}
