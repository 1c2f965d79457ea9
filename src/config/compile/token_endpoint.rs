//! `[token_endpoint]` -> [`TokenEndpoint`]: the signing issuer (which must be able to
//! sign), the endpoint path, token lifetimes, and the users file, read and checked
//! here ([`crate::config::users::parse`]), so `check`, start-up and every reload see
//! it as it is now. A users file that cannot be read is reported at the `users` key
//! of `proxy.toml`, with the path it resolved to.

use super::issuers::Issuers;
use super::{dur, Cx};
use crate::config::file::RawTokenEndpoint;
use crate::config::users::{self, Users};
use crate::config::values::EnvStr;
use crate::config::TokenEndpoint;
use crate::defaults;
use std::sync::Arc;
use toml::Spanned;

impl RawTokenEndpoint {
    pub(super) fn compile(self, cx: &mut Cx<'_>, issuers: &Issuers) -> Option<TokenEndpoint> {
        let issuer = signing_issuer(cx, &self.issuer, issuers);
        let users = self.users.as_ref().map(|u| (cx.resolve(u.get_ref()), u));
        let accounts = match &users {
            None => Users::default(),
            Some((path, u)) => read_users(cx, path, u),
        };
        Some(TokenEndpoint {
            path: self
                .path
                .map_or_else(|| defaults::TOKEN_PATH.to_owned(), |p| p.into_inner().0),
            issuer: issuer?,
            users: users.map(|(p, _)| p),
            accounts: Arc::new(accounts),
            access_ttl: dur(self.access_ttl, defaults::ACCESS_TTL),
            refresh_ttl: dur(self.refresh_ttl, defaults::REFRESH_TTL),
        })
    }
}

/// The index of the issuer `name` names; it must be able to sign.
fn signing_issuer(cx: &mut Cx<'_>, name: &Spanned<EnvStr>, issuers: &Issuers) -> Option<usize> {
    let n: &str = name.get_ref();
    let Some(idx) = issuers.list.iter().position(|i| i.name == n) else {
        // A broken issuer may be the one meant: it is reported already.
        if !issuers.maybe_broken(n) {
            cx.rep.at(
                name.span(),
                format!("unknown issuer `{n}` (no [[issuers]] has this name)"),
            );
        }
        return None;
    };
    let pending = issuers.pending.iter().any(|p| p == n);
    if !pending && issuers.list.get(idx).is_some_and(|i| i.signing.is_none()) {
        cx.rep.at(
            name.span(),
            format!("issuer `{n}` cannot sign: give it a `secret` or `private_key`"),
        );
    }
    Some(idx)
}

/// Reads and checks the users file; its own errors are reported in it.
fn read_users(cx: &mut Cx<'_>, path: &std::path::Path, at: &Spanned<EnvStr>) -> Users {
    let src = match std::fs::read_to_string(path) {
        Ok(s) => s,
        Err(e) => {
            cx.rep.at(
                at.span(),
                format!("cannot read users file `{}`: {e}", path.display()),
            );
            return Users::default();
        }
    };
    match users::parse(path, &src) {
        Ok(a) => a,
        Err(e) => {
            cx.rep.errors.extend(e.0);
            Users::default()
        }
    }
}
