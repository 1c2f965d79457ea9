//! Phase 3 for a `login = true` route that brought no token (SPEC §9): a valid
//! session stands in for one. The session is read from its cookie (or the `[state]`
//! backend), refreshed at the provider when its access token has expired (one
//! refresh per session at a time, [`crate::login::refresh`]), and becomes the
//! caller: identity and claims from its ID token, scopes from the granted scope.
//! Without one, a browser navigation on a `protected` route (`GET`/`HEAD` whose
//! `Accept` has `text/html`) is sent to the provider ([`Denial::Login`]); anything
//! else gets the §4 401 (an XHR never receives a login page).

use super::{Normalized, RequestFacts};
use crate::auth::issuer::Verified;
use crate::deny::Denial;
use crate::login::refresh::Refreshed;
use crate::login::{cookie, flow, session, Login};
use crate::routes::{Access, Route};
use http::{HeaderValue, Method};
use std::sync::Arc;

/// What a session adds to an allowed request.
#[derive(Debug, Clone, Default)]
pub struct SessionUse {
    /// The session's access token (`forward_authorization`: sent upstream).
    pub access_token: Option<String>,
    /// `Set-Cookie` values for the response (a refreshed or ended session).
    pub set_cookie: Vec<HeaderValue>,
}

/// `GET` or `HEAD` asking for HTML: a browser navigating, not a script.
pub fn browser_navigation(facts: &RequestFacts<'_>) -> bool {
    (facts.method == Method::GET || facts.method == Method::HEAD)
        && facts
            .headers
            .get_all(http::header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.to_ascii_lowercase().contains("text/html"))
}

/// The caller from the request's session, or the decision without one.
pub async fn authenticate(
    login: &Login,
    route: &Route,
    facts: &RequestFacts<'_>,
    req: &Normalized<'_>,
) -> Result<(Option<Arc<Verified>>, SessionUse), Denial> {
    let secure = facts.tls;
    let headers = facts.headers;
    let loaded = session::load(login, headers)
        .await
        .map_err(|_| Denial::Unavailable)?;
    let mut used = SessionUse::default();
    let current = match loaded {
        Some(s) if s.needs_refresh(session::now()) => {
            match login.refresher.refresh(login, &s).await {
                Refreshed::Renewed(n) => {
                    used.set_cookie = session::save(login, headers, &n, secure)
                        .await
                        .map_err(|_| Denial::Unavailable)?;
                    Some(*n)
                }
                Refreshed::Ended => {
                    let _ = session::delete(login, &s).await;
                    used.set_cookie = cookie::clear(headers, &login.config.cookie_name, secure);
                    None
                }
                Refreshed::Unreachable => return Err(Denial::BadGateway),
            }
        }
        other => other,
    };
    if let Some(s) = current {
        if let Some(v) = s.caller(login) {
            used.access_token = s.access_token;
            return Ok((Some(v), used));
        }
    }
    if route.access != Access::Protected {
        return Ok((None, used));
    }
    if !browser_navigation(facts) {
        return Err(Denial::NoToken);
    }
    let host = req
        .host
        .as_ref()
        .map(crate::host::RequestHost::as_str)
        .ok_or(Denial::NoToken)?;
    let return_to = match req.query {
        Some(q) => format!("{}?{q}", req.path),
        None => req.path.clone().into_owned(),
    };
    let mut r = flow::start(login, headers, host, secure, &return_to).await?;
    r.cookies.extend(used.set_cookie);
    Err(Denial::Login(Box::new(r)))
}
