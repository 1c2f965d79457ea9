//! Revoked access tokens (SPEC §3, §5 `/revoke`): the key a token is revoked under,
//! and the check every verified token passes, cache hit or not. One store lookup,
//! only for tokens with a `jti`; when the state backend is down the check fails
//! closed unless `[state] fail_open`.

use crate::state::Store;

/// Why a verified token may not be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// It was revoked (401 "Token has been revoked").
    Revoked,
    /// The state backend could not answer and `fail_open` is off (503).
    Unavailable,
}

/// The key an access token is revoked under: issuer and `jti` (two issuers may
/// reuse a `jti`).
pub fn key(iss: &str, jti: &str) -> String {
    let mut k = String::with_capacity(iss.len() + jti.len() + 1);
    k.push_str(iss);
    k.push(' ');
    k.push_str(jti);
    k
}

/// The revocation check as a request makes it: the `[state]` store, and whether its
/// outages are tolerated (`[state] fail_open`).
#[derive(Clone, Copy)]
pub struct Revocations<'a> {
    /// Where revocations are kept.
    pub store: &'a dyn Store,
    /// A store that cannot answer lets tokens through (else 503).
    pub fail_open: bool,
}

impl Revocations<'_> {
    /// Whether the token `jti` of issuer `iss` may still be used.
    pub async fn check(&self, iss: &str, jti: &str) -> Result<(), Refused> {
        check(self.store, self.fail_open, &key(iss, jti)).await
    }

    /// [`Self::check`] by the token's [`key`], built already (a verified token
    /// carries it: [`crate::auth::issuer::Verified::revocation_key`]).
    pub async fn check_key(&self, key: &str) -> Result<(), Refused> {
        check(self.store, self.fail_open, key).await
    }
}

async fn check(store: &dyn Store, fail_open: bool, key: &str) -> Result<(), Refused> {
    match store.is_revoked(key).await {
        Ok(false) => Ok(()),
        Ok(true) => Err(Refused::Revoked),
        Err(e) if fail_open => {
            tracing::warn!(error = %e, "revocation check skipped ([state] fail_open)");
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "revocation check failed; refusing (fail closed)");
            Err(Refused::Unavailable)
        }
    }
}
