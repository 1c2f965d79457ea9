//! `GET`/`POST {logout_path}` (SPEC §9; OpenID Connect RP-Initiated Logout 1.0 §2):
//! the session cookie (every chunk) cleared with `Max-Age=0`, the session deleted
//! from the `[state]` backend (so a copied cookie is dead everywhere), then a `302`
//! to the provider's `end_session_endpoint` with `id_token_hint`, `client_id` and
//! `post_logout_redirect_uri` = `{scheme}://{Host}/`, or to `/` when it has none.

use super::{cookie, form, session, Login, Redirect};
use http::{HeaderMap, HeaderValue};

/// Ends the request's session, if any, and says where the browser goes next.
pub async fn logout(login: &Login, headers: &HeaderMap, host: &str, tls: bool) -> Redirect {
    let current = session::load(login, headers).await.ok().flatten();
    if let Some(s) = &current {
        if let Err(e) = session::delete(login, s).await {
            tracing::warn!(error = %e, "logout: the session could not be deleted from the state backend");
        }
    }
    let cookies = cookie::clear(headers, &login.config.cookie_name, tls);
    let end = login
        .provider
        .metadata()
        .await
        .ok()
        .and_then(|m| m.end_session_endpoint);
    let location = match end {
        Some(end) => {
            let scheme = if tls { "https" } else { "http" };
            let back = format!("{scheme}://{host}/");
            let hint = current.as_ref().and_then(|s| s.id_token.clone());
            let mut pairs = vec![
                ("client_id", login.config.client_id.as_str()),
                ("post_logout_redirect_uri", back.as_str()),
            ];
            if let Some(h) = &hint {
                pairs.insert(0, ("id_token_hint", h.as_str()));
            }
            let sep = if end.contains('?') { '&' } else { '?' };
            HeaderValue::from_str(&format!("{end}{sep}{}", form::encode(&pairs)))
                .unwrap_or_else(|_| HeaderValue::from_static("/"))
        }
        None => HeaderValue::from_static("/"),
    };
    Redirect { location, cookies }
}
