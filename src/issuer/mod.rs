//! The built-in token issuer (SPEC §5): the OAuth2 password grant over a users
//! file, refresh-token rotation with reuse detection, revocation (RFC 7009),
//! failed-login rate limits, and the JWKS / discovery documents of its key.
//!
//! The endpoints exist only with `[token_endpoint]`, on the main listener, and are
//! answered before route matching ([`Endpoint::builtin`]). Per-config parts (users,
//! key, lifetimes) live in [`Endpoint`], rebuilt on reload; what must survive a
//! reload (revocations, refresh families, counters, the hashing limit) lives in
//! [`Shared`], created once per process and passed in. [`endpoint::serve`] answers a
//! request (method, form); [`grant`] runs the password and refresh grants with the
//! [`limits`]; [`documents`] builds the discovery document. The endpoint is handed the
//! proxy's verifier and the caller, never the whole runtime.
//!
//! Guarantees: passwords are checked on the blocking pool behind a semaphore, at
//! most [`inflight::ADDR_MAX_CHECKS`] at once per client address, an
//! unknown user costs the same hash check as a known one, no password or token is
//! logged or echoed, client input never causes a panic or a 500.

pub mod documents;
pub mod dpop;
pub mod endpoint;
pub mod form;
pub mod grant;
pub mod inflight;
pub mod limits;
pub mod reply;

use crate::auth::issuer::Issuer;
use crate::config::users::Users;
use crate::config::Config;
use crate::state::memory::MemoryStore;
use crate::state::redis::RedisStore;
use crate::state::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Process-wide issuer state: outlives reloads.
pub struct Shared {
    /// Revocations, refresh families, failure counters.
    pub store: Arc<dyn Store>,
    /// Password checks running at once (each holds a blocking-pool thread and a core).
    pub hashing: Arc<Semaphore>,
    /// Password checks queued or running, per client address.
    pub in_flight: Arc<inflight::InFlight>,
}

impl Shared {
    /// State for `config`: on Redis with `[state] backend = "redis"` (shared by
    /// every replica), else in this process.
    pub fn new(config: &Config) -> Arc<Shared> {
        match &config.state.redis_url {
            Some(url) => Self::with_store(Arc::new(RedisStore::with_replicas_ack(
                url,
                &config.state.key_prefix,
                config.state.ca.as_deref(),
                config.state.replicas_ack,
            ))),
            None => Self::with_store(Arc::new(MemoryStore::with_max_entries(
                config.state.max_entries,
            ))),
        }
    }

    /// In-memory state.
    pub fn memory() -> Arc<Shared> {
        Self::with_store(Arc::new(MemoryStore::new()))
    }

    /// State on `store`, with a hashing limit of one check per core but one (at
    /// least one), so a burst of logins leaves a core to the proxy.
    pub fn with_store(store: Arc<dyn Store>) -> Arc<Shared> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        Arc::new(Shared {
            store,
            hashing: Arc::new(Semaphore::new(cores.saturating_sub(1).max(1))),
            in_flight: Arc::default(),
        })
    }
}

/// A built-in endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// `POST {path}`.
    Token,
    /// `POST /revoke`.
    Revoke,
    /// `GET /.well-known/jwks.json`.
    Jwks,
    /// `GET /.well-known/openid-configuration`.
    Discovery,
}

impl Builtin {
    /// The `route` of its requests in the access log and in `/metrics`.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::Token => "builtin:token",
            Builtin::Revoke => "builtin:revoke",
            Builtin::Jwks => "builtin:jwks",
            Builtin::Discovery => "builtin:openid-configuration",
        }
    }
}

/// Path of the revocation endpoint (SPEC §2).
pub const REVOKE_PATH: &str = "/revoke";
/// Path of the JWKS document.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Path of the discovery document.
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

/// The token endpoint of one config.
pub struct Endpoint {
    /// `[token_endpoint] path`.
    pub path: String,
    /// The signing issuer.
    pub issuer: Arc<Issuer>,
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime (each rotation starts a new one).
    pub refresh_ttl: Duration,
    /// The accounts.
    pub users: Arc<Users>,
    /// The JWKS document, with an asymmetric key.
    pub jwks: Option<String>,
    /// Process-wide state.
    pub shared: Arc<Shared>,
    /// How long a form body may take to arrive (`[server] header_timeout`).
    pub form_deadline: Duration,
    /// `[state] fail_open` (the DPoP replay check, SPEC §10).
    pub fail_open: bool,
}

impl Endpoint {
    /// The endpoint of `config` (`None` without `[token_endpoint]`).
    pub fn new(config: &Config, shared: Arc<Shared>) -> Option<Endpoint> {
        let te = config.token_endpoint.as_ref()?;
        let issuer = config.issuers.get(te.issuer).cloned()?;
        if let Some(first) = te.accounts.warnings().first() {
            tracing::warn!(
                warnings = te.accounts.warnings().len(),
                first = %first,
                "users file mixes password hash parameters: login timing tells those users                  from unknown ones (`portcullis check` lists them)"
            );
        }
        shared.store.set_issuer(&issuer.iss);
        crate::metrics::login_series();
        let jwks = issuer
            .signing
            .as_ref()
            .and_then(|s| s.public_jwk.clone())
            .map(|jwk| serde_json::json!({ "keys": [jwk] }).to_string());
        Some(Endpoint {
            path: te.path.clone(),
            issuer,
            access_ttl: te.access_ttl,
            refresh_ttl: te.refresh_ttl,
            users: te.accounts.clone(),
            jwks,
            shared,
            form_deadline: config.server.header_timeout,
            fail_open: config.state.fail_open,
        })
    }

    /// Which built-in endpoint a normalized path names, if any.
    pub fn builtin(&self, path: &str) -> Option<Builtin> {
        if path == self.path {
            Some(Builtin::Token)
        } else if path == REVOKE_PATH {
            Some(Builtin::Revoke)
        } else if self.jwks.is_some() && path == JWKS_PATH {
            Some(Builtin::Jwks)
        } else if self.jwks.is_some() && path == DISCOVERY_PATH {
            Some(Builtin::Discovery)
        } else {
            None
        }
    }
}
