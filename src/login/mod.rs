//! Browser sign-in, front door 3 (SPEC §9): the OpenID Connect authorization code
//! flow with PKCE at the `[login] issuer` ([`flow`]), sessions in sealed cookies or
//! the `[state]` backend ([`session`], [`cookie`]), single-flight refresh
//! ([`refresh`]), logout ([`logout`]), the provider's endpoints ([`provider`]).
//!
//! A session is one more way to authenticate inside the one decision engine
//! ([`crate::decide::session`] asks [`Login::session`]); the callback and logout paths
//! are answered by the main listener before route matching ([`Login::endpoint`]).
//! Built per config with the runtime; what must outlive a reload (sessions of
//! `session_store = "state"`) lives in the `[state]` backend.

pub mod cookie;
pub mod flow;
pub mod form;
pub mod logout;
pub mod provider;
pub mod refresh;
pub mod session;

use crate::auth::issuer::TrustedIssuer;
use crate::auth::keys::{KeyFamily, VerifyKey};
use crate::deny::{BadRequest, Denial};
use crate::state::Store;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub use crate::deny::Redirect;
pub use session::Session;

/// The login front door of one runtime.
pub struct Login {
    /// `[login]`, compiled.
    pub config: crate::config::Login,
    /// The cookie key (from `cookie_secret`).
    pub key: cookie::CookieKey,
    /// The provider's endpoints.
    pub provider: provider::Provider,
    /// The issuer whose keys verify ID tokens (the verifier's own handle).
    pub issuer: Arc<TrustedIssuer>,
    /// `[identity] claim`.
    pub identity_claim: String,
    /// Stands for "verified by a session" in a session's [`crate::auth::issuer::Verified`]
    /// (never in an issuer's key set, never in the token cache).
    pub session_key: Arc<VerifyKey>,
    /// The `[state]` backend (`session_store = "state"`).
    pub store: Arc<dyn Store>,
    /// Refreshes in flight.
    pub refresher: refresh::Refresher,
    /// States already redeemed at the callback.
    pub used_states: UsedStates,
    /// Whether the main listener has TLS (`Secure` cookies, `https` redirect URIs).
    pub tls: bool,
}

/// A built-in path of the login front door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `callback_path`.
    Callback,
    /// `logout_path`.
    Logout,
}

impl Endpoint {
    /// The `route` label of its requests (access log, metrics).
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Callback => "builtin:login_callback",
            Endpoint::Logout => "builtin:logout",
        }
    }
}

impl Login {
    /// The login front door of `config`, when it has `[login]`.
    pub fn new(
        config: &crate::config::Config,
        verifier: &crate::auth::verify::Verifier,
        store: Arc<dyn Store>,
    ) -> Result<Option<Self>, crate::tls::TlsError> {
        let Some(l) = &config.login else {
            return Ok(None);
        };
        let Some(issuer) = verifier.issuers.get(l.issuer).cloned() else {
            return Ok(None);
        };
        let provider = provider::Provider::new(&issuer.config.iss, issuer.config.ca.as_deref())?;
        let mut secret = [0u8; 32];
        let _ = aws_lc_rs::rand::fill(&mut secret);
        let session_key = Arc::new(VerifyKey::new(
            Some("portcullis-session".into()),
            KeyFamily::Hmac,
            None,
            jsonwebtoken::DecodingKey::from_secret(&secret),
        ));
        Ok(Some(Login {
            key: cookie::CookieKey::derive(l.cookie_secret.as_bytes()),
            config: l.clone(),
            provider,
            issuer,
            identity_claim: config.identity.claim.clone(),
            session_key,
            store,
            refresher: refresh::Refresher::default(),
            used_states: UsedStates::default(),
            tls: config.server.tls.is_some(),
        }))
    }

    /// The login endpoint at normalized path `path`, if it is one.
    pub fn endpoint(&self, path: &str) -> Option<Endpoint> {
        if path == self.config.callback_path {
            Some(Endpoint::Callback)
        } else if path == self.config.logout_path {
            Some(Endpoint::Logout)
        } else {
            None
        }
    }
}

/// Answers a login endpoint: the callback (`GET`) or logout (`GET`, `POST`). Returns
/// the response and, after a sign-in, the user (for the access log).
pub async fn serve(
    login: &Login,
    verifier: &crate::auth::verify::Verifier,
    which: Endpoint,
    asked: (&http::Method, &http::HeaderMap, Option<&str>, bool),
    host: Option<&str>,
) -> Result<(http::Response<crate::body::ProxyBody>, Option<String>), Denial> {
    let (r, user) = redirect(login, verifier, which, asked, host).await?;
    Ok((r.response(), user))
}

/// The redirect a login endpoint answers with, apart from the wire: the one piece
/// both front doors call (the main listener through [`serve`], the decision listener
/// of SPEC §8 directly, which hands it to the ingress). `tls` and `host` are the
/// original request's; the `Location` of a sign-in is the saved path (relative),
/// the caller makes it absolute when its wire needs it.
pub async fn redirect(
    login: &Login,
    verifier: &crate::auth::verify::Verifier,
    which: Endpoint,
    (m, headers, query, tls): (&http::Method, &http::HeaderMap, Option<&str>, bool),
    host: Option<&str>,
) -> Result<(Redirect, Option<String>), Denial> {
    let bad = Denial::BadRequest(BadRequest::Login);
    let host = host.ok_or_else(|| bad.clone())?;
    match which {
        Endpoint::Callback if m == http::Method::GET => {
            let (r, user) = flow::callback(login, verifier, headers, query, (host, tls)).await?;
            Ok((r, Some(user)))
        }
        Endpoint::Logout if m == http::Method::GET || m == http::Method::POST => {
            Ok((logout::logout(login, headers, host, tls).await, None))
        }
        _ => Err(bad),
    }
}

/// Constant-time equality (states and nonces are compared without a timing signal).
pub fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && aws_lc_rs::constant_time::verify_slices_are_equal(a, b).is_ok()
}

/// States redeemed at the callback within the login cookie's lifetime: a replayed
/// callback (same state, same login cookie) is refused even before the provider
/// refuses its spent code.
#[derive(Default)]
pub struct UsedStates(Mutex<HashMap<String, u64>>);

impl UsedStates {
    /// Records `state` (of a login started at `created`); `false` if it was used.
    pub fn first_use(&self, state: &str, created: u64) -> bool {
        let Ok(mut m) = self.0.lock() else {
            return false;
        };
        let oldest = session::now().saturating_sub(crate::defaults::LOGIN_COOKIE_TTL.as_secs());
        if m.len() > 1024 {
            m.retain(|_, c| *c >= oldest);
        }
        m.insert(state.to_owned(), created).is_none()
    }
}

#[cfg(test)]
mod tests;
