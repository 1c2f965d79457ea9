//! `[login]` -> [`Login`] (SPEC §9): the issuer must be an `[[issuers]]` entry with
//! `discovery = true` (its discovery document names the authorization, token and
//! end-session endpoints, its keys verify the ID token); `cookie_secret` at least
//! [`defaults::COOKIE_SECRET_MIN_BYTES`] bytes; `openid` always among the scopes;
//! paths absolute and distinct; `redirect_url` an http(s) URL.

use super::issuers::Issuers;
use super::{dur, Cx};
use crate::auth::issuer::KeySource;
use crate::config::file::RawLogin;
use crate::config::{Login, SessionStore};
use crate::defaults;
use crate::secret::Secret;
use toml::Spanned;

/// Compiles `[login]` when present.
pub(super) fn compile(
    cx: &mut Cx<'_>,
    raw: Option<Spanned<RawLogin>>,
    issuers: &Issuers,
) -> Option<Login> {
    let l = raw?.into_inner();
    let issuer = login_issuer(cx, &l, issuers);
    let secret = l.cookie_secret.get_ref().expose();
    if secret.len() < defaults::COOKIE_SECRET_MIN_BYTES {
        cx.rep.at(
            l.cookie_secret.span(),
            format!(
                "`cookie_secret` must be at least {} bytes (it has {}): e.g. `openssl rand -base64 32`",
                defaults::COOKIE_SECRET_MIN_BYTES,
                secret.len()
            ),
        );
    }
    let mut scopes: Vec<String> = match l.scopes {
        Some(s) => s.into_iter().map(|s| s.0).collect(),
        None => defaults::LOGIN_SCOPES
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
    };
    if !scopes.iter().any(|s| s == "openid") {
        scopes.insert(0, "openid".to_owned());
    }
    let callback_path = path(cx, l.callback_path, defaults::LOGIN_CALLBACK_PATH);
    let logout_path = path(cx, l.logout_path, defaults::LOGIN_LOGOUT_PATH);
    let cookie_name = cookie_name(cx, l.cookie_name);
    let session_store = match l.session_store.as_ref().map(|s| &**s.get_ref()) {
        None | Some("cookie") => SessionStore::Cookie,
        Some("state") => SessionStore::State,
        Some(other) => {
            if let Some(s) = &l.session_store {
                cx.rep.at(
                    s.span(),
                    format!("unknown session_store `{other}` (cookie or state)"),
                );
            }
            SessionStore::Cookie
        }
    };
    let redirect_url = l.redirect_url.and_then(|u| {
        let text = u.get_ref().0.clone();
        if text.starts_with("https://") || text.starts_with("http://") {
            Some(text)
        } else {
            cx.rep.at(
                u.span(),
                "`redirect_url` must be an http:// or https:// URL",
            );
            None
        }
    });
    Some(Login {
        issuer: issuer?,
        client_id: l.client_id.into_inner().0,
        client_secret: l
            .client_secret
            .map(|s| Secret::new(s.into_inner().expose().0.clone())),
        scopes,
        callback_path,
        logout_path,
        cookie_name,
        cookie_secret: Secret::new(secret.0.clone()),
        session_ttl: dur(l.session_ttl, defaults::LOGIN_SESSION_TTL),
        session_store,
        redirect_url,
    })
}

/// The index of the issuer `[login] issuer` names; it must use discovery.
fn login_issuer(cx: &mut Cx<'_>, l: &RawLogin, issuers: &Issuers) -> Option<usize> {
    let n: &str = l.issuer.get_ref();
    let Some(idx) = issuers.list.iter().position(|i| i.name == n) else {
        if !issuers.maybe_broken(n) {
            cx.rep.at(
                l.issuer.span(),
                format!("unknown issuer `{n}` (no [[issuers]] has this name)"),
            );
        }
        return None;
    };
    let discovery = issuers
        .list
        .get(idx)
        .is_some_and(|i| matches!(i.source, KeySource::Discovery));
    if !discovery {
        cx.rep.at(
            l.issuer.span(),
            format!("[login] issuer `{n}` needs `discovery = true` (its discovery document names the provider's endpoints)"),
        );
    }
    Some(idx)
}

/// An absolute path, or the default.
fn path(
    cx: &mut Cx<'_>,
    raw: Option<Spanned<crate::config::values::EnvStr>>,
    default: &str,
) -> String {
    let Some(p) = raw else {
        return default.to_owned();
    };
    let text = p.get_ref().0.clone();
    if !text.starts_with('/') || text.contains(['?', '#']) {
        cx.rep.at(
            p.span(),
            format!("`{text}` must be a path starting with `/`"),
        );
        return default.to_owned();
    }
    text
}

/// A cookie name: an RFC 6265 token.
fn cookie_name(cx: &mut Cx<'_>, raw: Option<Spanned<crate::config::values::EnvStr>>) -> String {
    let Some(n) = raw else {
        return defaults::LOGIN_COOKIE_NAME.to_owned();
    };
    let text = n.get_ref().0.clone();
    let ok = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !ok {
        cx.rep.at(
            n.span(),
            format!("invalid cookie name `{text}` (letters, digits and !#$%&'*+-.^_`|~)"),
        );
        return defaults::LOGIN_COOKIE_NAME.to_owned();
    }
    text
}

#[cfg(test)]
mod tests {
    use crate::config::{load_str, SessionStore};
    use std::path::Path;

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    fn config(issuer: &str, login: &str, route: &str) -> String {
        format!(
            "[upstreams.e]\nurl = \"echo:\"\n{issuer}\n[login]\n{login}\n[[routes]]\npath = \"/**\"\nupstream = \"e\"\n{route}\n"
        )
    }

    fn errors(text: &str) -> String {
        match load_str(Path::new("t.toml"), text) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    const IDP: &str =
        "[[issuers]]\nname = \"idp\"\nissuer = \"https://idp.example\"\ndiscovery = true\n";

    #[test]
    fn a_good_login_section_and_its_defaults() {
        let text = config(
            IDP,
            &format!("issuer = \"idp\"\nclient_id = \"app\"\ncookie_secret = \"{SECRET}\"\nscopes = [\"email\"]"),
            "login = true",
        );
        let cfg = load_str(Path::new("t.toml"), &text).expect("valid");
        let l = cfg.login.expect("[login]");
        assert_eq!(l.scopes, ["openid", "email"], "openid is added");
        assert_eq!(l.callback_path, "/_portcullis/callback");
        assert_eq!(l.logout_path, "/_portcullis/logout");
        assert_eq!(l.cookie_name, crate::defaults::LOGIN_COOKIE_NAME);
        assert_eq!(l.session_ttl, std::time::Duration::from_secs(12 * 3600));
        assert_eq!(l.session_store, SessionStore::Cookie);
        assert!(l.client_secret.is_none(), "a public client");
        assert!(cfg.routes.routes[0].login);
    }

    #[test]
    fn mistakes_are_named() {
        let login = format!("issuer = \"idp\"\nclient_id = \"app\"\ncookie_secret = \"{SECRET}\"");
        let static_idp = "[[issuers]]\nname = \"idp\"\nissuer = \"x\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n";
        for (text, want) in [
            (config(static_idp, &login, ""), "needs `discovery = true`"),
            (
                config(
                    IDP,
                    "issuer = \"idp\"\nclient_id = \"a\"\ncookie_secret = \"short\"",
                    "",
                ),
                "at least 32 bytes",
            ),
            (
                config(IDP, &login.replace("\"idp\"", "\"nope\""), ""),
                "unknown issuer `nope`",
            ),
            (
                config(IDP, &login, "login = true\naccess = \"public\""),
                "needs access `protected` or `optional`",
            ),
            (
                config(IDP, &format!("{login}\nsession_store = \"disk\""), ""),
                "unknown session_store",
            ),
            (
                config(IDP, &format!("{login}\ncallback_path = \"cb\""), ""),
                "must be a path",
            ),
            (
                config(IDP, &format!("{login}\nredirect_url = \"ftp://x\""), ""),
                "redirect_url",
            ),
            (
                config(IDP, &format!("{login}\ncookie_name = \"a b\""), ""),
                "invalid cookie name",
            ),
            (
                config(IDP, &format!("{login}\ncolour = 1"), ""),
                "unknown field `colour`",
            ),
        ] {
            let e = errors(&text);
            assert!(
                e.contains(want),
                "expected `{want}` in:\n{e}\n--- for\n{text}"
            );
        }
        let no_login =
            "[upstreams.e]\nurl = \"echo:\"\n[[routes]]\npath = \"/**\"\nupstream = \"e\"\nlogin = true\n";
        assert!(errors(no_login).contains("needs a [login] section"));
    }
}
