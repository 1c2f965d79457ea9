//! Keys from identity providers (SPEC §3): JWKS over http/https ([`fetch`]), OIDC
//! discovery, the keys parsed from a set ([`parse`]), periodic refresh, on-demand
//! re-fetch for an unknown `kid`, stale-if-error ([`source`]).
//!
//! Guarantees:
//! - a key's family (and so the algorithms it may verify) comes from the JWK itself
//!   (`kty`/`crv`), narrowed by its `alg`; never from a token header. `kty: oct`,
//!   `use: enc`, encryption algorithms and unsupported curves are skipped with a log
//!   line, never an error for the whole set;
//! - a fetch is bounded: [`MAX_BODY`] bytes, [`FETCH_TIMEOUT`] end to end, no redirects;
//! - a failed fetch keeps the last good keys and is retried with capped exponential
//!   back-off; a successful fetch replaces the set, and cached tokens verified by a key
//!   that left it are evicted;
//! - an unknown `kid` causes at most one fetch per [`UNKNOWN_KID_INTERVAL`] per issuer,
//!   and concurrent requests wait on that one fetch (single-flight) instead of starting
//!   their own. The lock is per issuer and only taken on this slow path.
//! - nothing about a token or key material is logged (key ids and URLs are).
//!
//! The keys live in the runtime ([`TrustedIssuer`]), never in the compiled config.

pub mod fetch;
pub mod parse;
pub mod source;

pub use fetch::{client, discovery_url, FetchClient, JwksError, FETCH_TIMEOUT, MAX_BODY};
pub use parse::{key_from_jwk, parse_jwks};
pub use source::JwksSource;

use crate::auth::cache::TokenCache;
use crate::auth::issuer::{KeySource, TrustedIssuer};
use crate::tls_client::TlsError;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::AbortHandle;

/// At most one fetch per issuer in this period because of unknown `kid`s.
pub const UNKNOWN_KID_INTERVAL: Duration = Duration::from_secs(10);
/// `Cache-Control: max-age` never schedules the next refresh sooner than this.
pub const MIN_MAX_AGE: Duration = Duration::from_secs(30);
/// First retry delay after a failed fetch; doubles up to [`BACKOFF_CAP`].
pub const BACKOFF_START: Duration = Duration::from_secs(1);
/// Longest retry delay (also never longer than the issuer's `refresh_interval`).
pub const BACKOFF_CAP: Duration = Duration::from_secs(60);

/// When the next scheduled refresh is due: `refresh_interval`, shortened by the
/// server's `max-age`, but never below [`MIN_MAX_AGE`] (or the interval, if shorter).
pub fn next_refresh(interval: Duration, max_age: Option<Duration>) -> Duration {
    max_age.map_or(interval, |m| m.clamp(MIN_MAX_AGE.min(interval), interval))
}

/// Fetch counters for one issuer, kept across reloads (metric-ready).
#[derive(Debug, Default)]
pub struct JwksStats {
    /// Successful fetches.
    pub ok: AtomicU64,
    /// Failed fetches.
    pub error: AtomicU64,
    /// Fetches caused by an unknown `kid` (included in `ok`/`error`).
    pub on_demand: AtomicU64,
    /// Unix time (seconds) of the last fetch attempt; 0 = never.
    pub last_fetch_unix: AtomicU64,
    /// Whether the last fetch succeeded.
    pub last_ok: AtomicBool,
    /// Keys currently in use.
    pub keys: AtomicUsize,
    /// The last error, for the status page.
    pub last_error: Mutex<Option<String>>,
}

/// The JWKS sources of one verifier, one per issuer that fetches its keys, and their
/// refresh tasks (aborted when this is dropped, e.g. after a reload).
#[derive(Default)]
pub struct JwksSet {
    sources: Vec<Arc<JwksSource>>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl JwksSet {
    /// One source per JWKS / discovery issuer.
    pub fn new(issuers: &[Arc<TrustedIssuer>], cache: &Arc<TokenCache>) -> Result<Self, TlsError> {
        let sources = issuers
            .iter()
            .filter(|i| !matches!(i.config.source, KeySource::Static))
            .map(|i| JwksSource::new(i.clone(), cache.clone()).map(Arc::new))
            .collect::<Result<_, _>>()?;
        Ok(JwksSet {
            sources,
            tasks: Mutex::default(),
        })
    }

    /// The source that keeps `issuer`'s keys, if it fetches them.
    pub fn source_for(&self, issuer: &Arc<TrustedIssuer>) -> Option<&Arc<JwksSource>> {
        self.sources
            .iter()
            .find(|s| Arc::ptr_eq(s.issuer(), issuer))
    }

    /// Every JWKS source.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<JwksSource>> {
        self.sources.iter()
    }

    /// Whether every JWKS issuer has keys.
    pub fn ready(&self) -> bool {
        self.iter().all(|s| s.ready())
    }

    /// Takes keys and counters over from the previous runtime's sources (by issuer
    /// name). Must run before [`JwksSet::start`].
    pub fn inherit(&mut self, old: &JwksSet) {
        for new in &mut self.sources {
            let name = &new.issuer().config.name;
            let Some(prev) = old.iter().find(|o| o.issuer().config.name == *name) else {
                continue;
            };
            if let Some(s) = Arc::get_mut(new) {
                s.share_stats(prev);
            }
            new.inherit(prev);
        }
    }

    /// Spawns the refresh tasks (needs a tokio runtime; without one, nothing starts).
    pub fn start(&self) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let handles: Vec<AbortHandle> = self.iter().map(JwksSource::spawn).collect();
        if let Ok(mut t) = self.tasks.lock() {
            t.extend(handles);
        }
    }
}

impl Drop for JwksSet {
    fn drop(&mut self) {
        if let Ok(t) = self.tasks.lock() {
            for h in t.iter() {
                h.abort();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fetch::max_age;
    use super::*;

    #[test]
    fn cache_control_bounds() {
        assert_eq!(
            max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("MAX-AGE = 5"), Some(Duration::from_secs(5)));
        let ten_min = Duration::from_secs(600);
        assert_eq!(next_refresh(ten_min, None), ten_min);
        assert_eq!(
            next_refresh(ten_min, Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
        assert_eq!(
            next_refresh(ten_min, Some(Duration::from_secs(1))),
            MIN_MAX_AGE
        );
        assert_eq!(
            next_refresh(ten_min, Some(Duration::from_secs(86400))),
            ten_min
        );
        let short = Duration::from_secs(2);
        assert_eq!(next_refresh(short, Some(Duration::ZERO)), short);
    }
}
