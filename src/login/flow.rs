//! The authorization code flow (SPEC §9; OIDC Core §3.1, RFC 7636 PKCE S256):
//! [`start`] sends a browser to the provider with `state`, `nonce` and a code
//! challenge, the verifier and the return path kept in a sealed login cookie of
//! [`LOGIN_COOKIE_TTL`]; [`callback`] checks the state against that cookie (and that
//! it was not used before), exchanges the code, verifies the ID token (signature with
//! the issuer's keys, `iss`, `aud` ∋ `client_id`, `exp`, `nonce`), starts the session
//! and sends the browser back to the saved path, only ever a path on this host.
//!
//! Failures are 400 (502 when the provider cannot be reached) and start no session;
//! no code, state or token is logged.

use super::provider::ProviderError;
use super::session::{self, now, random_id, Session};
use super::{cookie, form, Login};
use crate::auth::verify::Verifier;
use crate::defaults::LOGIN_COOKIE_TTL;
use crate::deny::{BadRequest, Denial, Redirect};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};

/// What the login cookie holds.
#[derive(Serialize, Deserialize)]
struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    return_to: String,
    created: u64,
}

/// The name of the login cookie.
pub fn login_cookie(login: &Login) -> String {
    format!("{}_login", login.config.cookie_name)
}

/// `redirect_url`, else `{scheme}://{host}{callback_path}`.
pub fn redirect_uri(login: &Login, host: &str, tls: bool) -> String {
    match &login.config.redirect_url {
        Some(u) => u.clone(),
        None => {
            let scheme = if tls { "https" } else { "http" };
            format!("{scheme}://{host}{}", login.config.callback_path)
        }
    }
}

/// Only a path on this host: it starts with `/` and not `//` or `/\` (else `/`).
pub fn safe_return(path: &str) -> &str {
    let b = path.as_bytes();
    let ok = b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/' | b'\\'))
        && !path.chars().any(char::is_control);
    if ok {
        path
    } else {
        "/"
    }
}

/// PKCE S256 (RFC 7636 §4.2): `base64url(SHA-256(verifier))`.
pub fn challenge(verifier: &str) -> String {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    URL_SAFE_NO_PAD.encode(d.as_ref())
}

/// The redirect to the provider for a browser that wants `return_to` on `host`.
pub async fn start(
    login: &Login,
    request: &HeaderMap,
    host: &str,
    tls: bool,
    return_to: &str,
) -> Result<Redirect, Denial> {
    let meta = login.provider.metadata().await.map_err(|e| {
        tracing::warn!(error = %e, "cannot start a sign-in");
        Denial::BadGateway
    })?;
    let p = Pending {
        state: random_id(),
        nonce: random_id(),
        verifier: random_id(),
        return_to: safe_return(return_to).to_owned(),
        created: now(),
    };
    let scope = login.config.scopes.join(" ");
    let query = form::encode(&[
        ("response_type", "code"),
        ("client_id", &login.config.client_id),
        ("redirect_uri", &redirect_uri(login, host, tls)),
        ("scope", &scope),
        ("state", &p.state),
        ("nonce", &p.nonce),
        ("code_challenge", &challenge(&p.verifier)),
        ("code_challenge_method", "S256"),
    ]);
    let sep = if meta.authorization_endpoint.contains('?') {
        '&'
    } else {
        '?'
    };
    let location = HeaderValue::from_str(&format!("{}{sep}{query}", meta.authorization_endpoint))
        .map_err(|_| Denial::BadGateway)?;
    let name = login_cookie(login);
    let sealed = login
        .key
        .seal(&name, &serde_json::to_vec(&p).unwrap_or_default());
    let cookies = cookie::set(request, &name, &sealed, LOGIN_COOKIE_TTL.as_secs(), tls);
    Ok(Redirect { location, cookies })
}

fn bad() -> Denial {
    Denial::BadRequest(BadRequest::Login)
}

/// Reads and checks the login cookie against the callback's `state`.
fn pending(login: &Login, headers: &HeaderMap, query: Option<&str>) -> Result<Pending, Denial> {
    if form::param(query, "error").is_some() {
        return Err(bad());
    }
    let name = login_cookie(login);
    let p: Pending = cookie::get_joined(headers, &name)
        .and_then(|v| login.key.open(&name, &v))
        .and_then(|plain| serde_json::from_slice(&plain).ok())
        .ok_or_else(bad)?;
    if now() > p.created.saturating_add(LOGIN_COOKIE_TTL.as_secs()) {
        return Err(bad());
    }
    let state = form::param(query, "state").ok_or_else(bad)?;
    if !super::constant_eq(state.as_bytes(), p.state.as_bytes()) {
        return Err(bad());
    }
    if !login.used_states.first_use(&p.state, p.created) {
        return Err(bad());
    }
    Ok(p)
}

/// `GET {callback_path}`: the session cookie and a `302` to the saved path.
pub async fn callback(
    login: &Login,
    verifier: &Verifier,
    headers: &HeaderMap,
    query: Option<&str>,
    (host, tls): (&str, bool),
) -> Result<(Redirect, String), Denial> {
    let p = pending(login, headers, query)?;
    let code = form::param(query, "code")
        .filter(|c| !c.is_empty())
        .ok_or_else(bad)?;
    let redirect_uri = redirect_uri(login, host, tls);
    let tokens = login
        .provider
        .token(
            &login.config.client_id,
            login.config.client_secret.as_deref(),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect_uri),
                ("code_verifier", &p.verifier),
            ],
        )
        .await
        .map_err(|e| match e {
            ProviderError::Refused(_) => bad(),
            ProviderError::Unreachable(_) => {
                tracing::warn!(error = %e, "code exchange failed");
                Denial::BadGateway
            }
        })?;
    let id_token = tokens.id_token.clone().ok_or_else(bad)?;
    let v = verifier
        .verify_id_token(&id_token, &login.issuer, &login.config.client_id)
        .await
        .map_err(|e| {
            tracing::info!(error = %e, "ID token refused");
            bad()
        })?;
    let nonce = v.claims.get("nonce").and_then(serde_json::Value::as_str);
    if !nonce.is_some_and(|n| super::constant_eq(n.as_bytes(), p.nonce.as_bytes())) {
        tracing::info!("ID token refused: nonce does not match");
        return Err(bad());
    }
    let at = now();
    let s = Session {
        sid: random_id(),
        claims: v.claims.clone(),
        scope: tokens
            .scope
            .clone()
            .unwrap_or_else(|| login.config.scopes.join(" ")),
        expires_at: at.saturating_add(login.config.session_ttl.as_secs()),
        access_expires_at: tokens.expires_in.map(|e| at.saturating_add(e)),
        access_token: tokens.access_token,
        refresh_token: tokens.refresh_token,
        id_token: Some(id_token),
    };
    let mut cookies = session::save(login, headers, &s, tls)
        .await
        .map_err(|_| Denial::Unavailable)?;
    cookies.extend(cookie::clear(headers, &login_cookie(login), tls));
    let location = HeaderValue::from_str(safe_return(&p.return_to))
        .unwrap_or_else(|_| HeaderValue::from_static("/"));
    Ok((Redirect { location, cookies }, v.identity.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_paths_stay_on_this_host() {
        for (given, kept) in [
            ("/app?x=1", "/app?x=1"),
            ("/", "/"),
            ("//evil.example", "/"),
            ("/\\evil.example", "/"),
            ("https://evil.example", "/"),
            ("evil", "/"),
            ("", "/"),
            ("/a\r\nSet-Cookie: x", "/"),
        ] {
            assert_eq!(safe_return(given), kept, "{given:?}");
        }
    }

    #[test]
    fn pkce_s256_matches_rfc_7636_appendix_b() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
