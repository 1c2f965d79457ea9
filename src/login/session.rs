//! A signed-in session (SPEC §9) and where it lives: sealed whole in the cookie
//! (`session_store = "cookie"`), or in the `[state]` backend (memory or Redis) under
//! a random id, sealed there too, with only the sealed id in the cookie
//! (`session_store = "state"`), so deleting it ends every copy of the cookie.
//!
//! A session holds the ID token's claims (identity headers and claim rules), the
//! granted scope, its absolute expiry (`session_ttl` from sign-in, never extended),
//! and the tokens the provider gave: access (with its expiry), refresh and ID token
//! (the `id_token_hint` of logout).

use super::cookie;
use super::Login;
use crate::auth::issuer::Verified;
use crate::config::SessionStore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// One session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Session {
    /// Random id: the single-flight key of its refreshes, and its key in the store.
    pub sid: String,
    /// The ID token's claims.
    pub claims: Map<String, Value>,
    /// The granted scope (space-separated).
    pub scope: String,
    /// The end of the session (Unix seconds).
    pub expires_at: u64,
    /// The access token, when the provider gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// When the access token expires (Unix seconds), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_expires_at: Option<u64>,
    /// The refresh token, when the provider gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The ID token (for `id_token_hint` at logout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

/// What the cookie holds.
#[derive(Serialize, Deserialize)]
enum Stored {
    /// The whole session.
    #[serde(rename = "s")]
    Whole(Session),
    /// The id of a session in the state backend.
    #[serde(rename = "i")]
    Id(String),
}

/// Unix seconds now.
pub fn now() -> u64 {
    crate::state::memory::unix_now()
}

/// A random id: 32 bytes, base64url.
pub fn random_id() -> String {
    use base64::Engine as _;
    let mut b = [0u8; 32];
    let _ = aws_lc_rs::rand::fill(&mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl Session {
    /// Whether the session is over (`session_ttl`).
    pub fn ended(&self, now: u64) -> bool {
        now >= self.expires_at
    }

    /// Whether the access token has expired and a refresh token can renew it.
    pub fn needs_refresh(&self, now: u64) -> bool {
        self.refresh_token.is_some() && self.access_expires_at.is_some_and(|e| now >= e)
    }

    /// The session as a verified caller for the decision: identity and claims from
    /// the ID token, scopes from the granted scope.
    pub fn caller(&self, login: &Login) -> Option<Arc<Verified>> {
        let identity = match self.claims.get(&login.identity_claim) {
            Some(Value::String(s)) if !s.trim().is_empty() && !s.chars().any(char::is_control) => {
                s.clone()
            }
            _ => return None,
        };
        Some(Arc::new(Verified {
            issuer: login.issuer.clone(),
            key: login.session_key.clone(),
            exp: i64::try_from(self.expires_at).unwrap_or(i64::MAX),
            identity_value: http::HeaderValue::from_bytes(identity.as_bytes()).ok(),
            identity,
            scopes: self.scope.split_whitespace().map(str::to_owned).collect(),
            claims: self.claims.clone(),
            jti: None,
            revocation_key: None,
        }))
    }
}

/// The store key of session `sid`.
fn store_key(sid: &str) -> String {
    format!("session:{sid}")
}

/// Reads the request's session; `None` when there is none or it does not open, or
/// has ended. `Err` when the state backend cannot answer.
pub async fn load(
    login: &Login,
    headers: &http::HeaderMap,
) -> Result<Option<Session>, crate::state::StateError> {
    let name = &login.config.cookie_name;
    let Some(value) = cookie::get_joined(headers, name) else {
        return Ok(None);
    };
    let Some(plain) = login.key.open(name, &value) else {
        return Ok(None);
    };
    let session = match serde_json::from_slice::<Stored>(&plain) {
        Ok(Stored::Whole(s)) if login.config.session_store == SessionStore::Cookie => s,
        Ok(Stored::Id(sid)) if login.config.session_store == SessionStore::State => {
            let Some(sealed) = login.store.session_get(&store_key(&sid)).await? else {
                return Ok(None);
            };
            match login
                .key
                .open(&store_key(&sid), &sealed)
                .and_then(|p| serde_json::from_slice::<Session>(&p).ok())
            {
                Some(s) if s.sid == sid => s,
                _ => return Ok(None),
            }
        }
        _ => return Ok(None),
    };
    Ok((!session.ended(now())).then_some(session))
}

/// Saves `session` and returns the `Set-Cookie` values that carry it.
pub async fn save(
    login: &Login,
    request: &http::HeaderMap,
    session: &Session,
    secure: bool,
) -> Result<Vec<http::HeaderValue>, crate::state::StateError> {
    let name = &login.config.cookie_name;
    let left = session.expires_at.saturating_sub(now());
    let stored = match login.config.session_store {
        SessionStore::Cookie => Stored::Whole(session.clone()),
        SessionStore::State => {
            let key = store_key(&session.sid);
            let plain = serde_json::to_vec(session).unwrap_or_default();
            let sealed = login.key.seal(&key, &plain);
            login
                .store
                .session_put(&key, &sealed, Duration::from_secs(left.max(1)))
                .await?;
            Stored::Id(session.sid.clone())
        }
    };
    let plain = serde_json::to_vec(&stored).unwrap_or_default();
    let mut value = login.key.seal(name, &plain);
    let most = crate::defaults::COOKIE_CHUNK_BYTES * crate::defaults::COOKIE_MAX_CHUNKS;
    if value.len() > most {
        if let Stored::Whole(mut s) = stored {
            // Over what is read back: the raw ID token (only logout's hint) goes first.
            tracing::warn!(
                bytes = value.len(),
                "session cookie too large: kept without the ID token (logout sends no id_token_hint); consider session_store = \"state\""
            );
            s.id_token = None;
            let plain = serde_json::to_vec(&Stored::Whole(s)).unwrap_or_default();
            value = login.key.seal(name, &plain);
        }
    }
    Ok(cookie::set(request, name, &value, left, secure))
}

/// Ends `session`: deleted from the state backend (with `session_store = "state"`).
pub async fn delete(login: &Login, session: &Session) -> Result<(), crate::state::StateError> {
    if login.config.session_store == SessionStore::State {
        login.store.session_delete(&store_key(&session.sid)).await?;
    }
    Ok(())
}
