//! The trusted-issuer types (SPEC §2 `[[issuers]]`, §3): a compiled issuer
//! ([`Issuer`], plain data in the config), the running issuer with the keys it
//! verifies with now ([`TrustedIssuer`], in the runtime), where keys come from, and
//! what a verified token yields. A leaf: the config that builds issuers, the verifier,
//! the JWKS refresh and the cache all depend on it, and it depends on nothing of theirs.

use super::keys::{KeySet, SigningKey, VerifyKey};
use arc_swap::ArcSwap;
use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// Static keys from the config.
    Static,
    /// A JWKS URL (it may carry credentials: redacted in `Debug`).
    Jwks(crate::secret::Secret<String>),
    /// OIDC discovery from the issuer URL.
    Discovery,
}

/// A trusted issuer, compiled: immutable, like the rest of the config.
#[derive(Debug)]
pub struct Issuer {
    /// Config name.
    pub name: String,
    /// Exact `iss`.
    pub iss: String,
    /// Accepted audiences; empty = no check.
    pub audiences: Vec<String>,
    /// Allow-list; empty = whatever the key family allows.
    pub algorithms: Vec<Algorithm>,
    /// Clock skew tolerance.
    pub leeway: Duration,
    /// The keys the config names (`secret`, `public_key`, `private_key`); empty for a
    /// JWKS or discovery issuer, whose keys are fetched into its [`TrustedIssuer`].
    pub static_keys: Arc<KeySet>,
    /// Where keys come from.
    pub source: KeySource,
    /// JWKS refresh period.
    pub refresh_interval: Duration,
    /// Extra CA for the JWKS fetch.
    pub ca: Option<std::path::PathBuf>,
    /// Signing key, when the config has a `secret` or `private_key`.
    pub signing: Option<SigningKey>,
}

impl Issuer {
    pub(crate) fn allows(&self, alg: Algorithm) -> bool {
        self.algorithms.is_empty() || self.algorithms.contains(&alg)
    }
}

/// An issuer as the running proxy trusts it: its compiled config and the key set it
/// verifies with now (the static keys, or the last good JWKS fetch, replaced by
/// [`crate::auth::jwks`]). One per runtime, built by the verifier; a [`Verified`]
/// token holds its issuer's handle.
#[derive(Debug)]
pub struct TrustedIssuer {
    /// The compiled issuer.
    pub config: Arc<Issuer>,
    keys: ArcSwap<KeySet>,
}

impl TrustedIssuer {
    /// The running issuer of `config`, starting with its static keys.
    pub fn new(config: Arc<Issuer>) -> Self {
        let keys = ArcSwap::new(config.static_keys.clone());
        TrustedIssuer { config, keys }
    }

    /// The keys in use now.
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys.load_full()
    }

    /// Replaces the key set (a JWKS fetch, or the previous runtime's keys on reload).
    pub fn set_keys(&self, keys: Arc<KeySet>) {
        self.keys.store(keys);
    }

    /// Whether the issuer has any key (SPEC §6 readiness).
    pub fn has_keys(&self) -> bool {
        !self.keys.load().keys.is_empty()
    }

    /// Whether `key` is still in the set (a cached token verified by a key that left
    /// it no longer verifies, SPEC §3).
    pub fn publishes(&self, key: &Arc<VerifyKey>) -> bool {
        self.keys.load().keys.iter().any(|k| Arc::ptr_eq(k, key))
    }

    /// The key set for one verification, without touching its reference count.
    pub(crate) fn keys_guard(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.keys.load()
    }
}

/// A verified token: what the proxy needs from it, computed once and cached.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The issuer that signed it.
    pub issuer: Arc<TrustedIssuer>,
    /// The key that verified it (to evict when the key leaves the set).
    pub key: Arc<VerifyKey>,
    /// `exp`, in whole seconds since the epoch (fractions rounded down).
    pub exp: i64,
    /// The identity claim's value.
    pub identity: String,
    /// [`Self::identity`] as a header value, built once per verified token (a cache
    /// hit sets it without copying; identities have no control characters).
    pub identity_value: Option<http::HeaderValue>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// All claims.
    pub claims: Map<String, Value>,
    /// `jti`, when present.
    pub jti: Option<String>,
    /// The key the token is revoked under ([`crate::auth::revocation::key`] of its
    /// issuer and `jti`), built once per verified token; `None` without a `jti`.
    pub revocation_key: Option<String>,
}

impl Verified {
    /// When the token stops being accepted: `exp` plus the issuer's leeway.
    pub fn valid_until(&self) -> i64 {
        self.exp
            .saturating_add_unsigned(self.issuer.config.leeway.as_secs())
    }
}
