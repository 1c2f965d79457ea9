//! The trusted-issuer types (SPEC §2 `[[issuers]]`, §3): a compiled issuer, where
//! its keys come from, and what a verified token yields. A leaf: the config that
//! builds issuers, the verifier, the JWKS refresh and the cache all depend on it,
//! and it depends on nothing of theirs.

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
    /// A JWKS URL.
    Jwks(String),
    /// OIDC discovery from the issuer URL.
    Discovery,
}

/// A trusted issuer, compiled.
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
    /// Current keys (swapped by JWKS refresh).
    pub keys: ArcSwap<KeySet>,
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

/// A verified token: what the proxy needs from it, computed once and cached.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Index of the issuer.
    pub issuer: usize,
    /// The key that verified it (to evict when the key leaves the set).
    pub key: Arc<VerifyKey>,
    /// `exp`, in whole seconds since the epoch (fractions rounded down).
    pub exp: i64,
    /// The identity claim's value.
    pub identity: String,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// All claims.
    pub claims: Map<String, Value>,
    /// `jti`, when present.
    pub jti: Option<String>,
}
