//! One JWKS / discovery issuer's keys kept fresh (SPEC §3): scheduled refresh with
//! back-off after a failure, a rate-limited single-flight re-fetch for an unknown
//! `kid`, stale-if-error, and a fetched set that replaces the issuer's keys in the
//! runtime ([`TrustedIssuer`]), evicting cached tokens of keys that left it.

use super::fetch::{self, FetchClient, JwksError};
use super::parse::parse_jwks;
use super::{next_refresh, JwksStats, BACKOFF_CAP, BACKOFF_START, UNKNOWN_KID_INTERVAL};
use crate::auth::cache::TokenCache;
use crate::auth::issuer::{KeySource, TrustedIssuer};
use crate::auth::keys::{KeySet, VerifyKey};
use crate::tls_client::TlsError;
use jsonwebtoken::jwk::Jwk;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tracing::Instrument;

struct FetchState {
    /// The keys in use, with the JWK each came from (to keep the same `Arc` for an
    /// unchanged key, so cache entries verified by it stay valid).
    published: Vec<(Jwk, Arc<VerifyKey>)>,
    /// When the last fetch started (for the unknown-kid rate limit).
    last_attempt: Option<Instant>,
}

/// The keys of one JWKS / discovery issuer and how they are kept fresh.
pub struct JwksSource {
    issuer: Arc<TrustedIssuer>,
    client: FetchClient,
    cache: Arc<TokenCache>,
    stats: Arc<JwksStats>,
    /// Single-flight: held for the duration of one fetch.
    state: tokio::sync::Mutex<FetchState>,
    /// Completed fetches; lets waiters see that a fetch finished while they queued.
    generation: AtomicU64,
}

impl JwksSource {
    /// A source for `issuer` (which must have a JWKS or discovery source).
    pub fn new(issuer: Arc<TrustedIssuer>, cache: Arc<TokenCache>) -> Result<Self, TlsError> {
        Ok(JwksSource {
            client: fetch::client(issuer.config.ca.as_deref())?,
            issuer,
            cache,
            stats: Arc::default(),
            state: tokio::sync::Mutex::new(FetchState {
                published: Vec::new(),
                last_attempt: None,
            }),
            generation: AtomicU64::new(0),
        })
    }

    /// The issuer.
    pub fn issuer(&self) -> &Arc<TrustedIssuer> {
        &self.issuer
    }

    /// Fetch counters.
    pub fn stats(&self) -> &Arc<JwksStats> {
        &self.stats
    }

    /// Whether the issuer has keys (SPEC §6 readiness).
    pub fn ready(&self) -> bool {
        self.issuer.has_keys()
    }

    /// Takes over the keys and counters of the same issuer in the previous runtime
    /// (reload), so a reload neither empties the key set nor resets the counters.
    /// Call before [`JwksSource::spawn`].
    pub fn inherit(&self, old: &JwksSource) -> bool {
        let same = old.issuer.config.iss == self.issuer.config.iss
            && old.issuer.config.ca == self.issuer.config.ca
            && match (&old.issuer.config.source, &self.issuer.config.source) {
                (KeySource::Jwks(a), KeySource::Jwks(b)) => a == b,
                (KeySource::Discovery, KeySource::Discovery) => true,
                _ => false,
            };
        if !same || !old.ready() {
            return false;
        }
        self.issuer.set_keys(old.issuer.keys());
        // With the previous JWKs, the next fetch keeps unchanged keys' `Arc`s (so no
        // cache churn); when a fetch holds the old lock, the next fetch rebuilds them.
        if let (Ok(o), Ok(mut st)) = (old.state.try_lock(), self.state.try_lock()) {
            st.published.clone_from(&o.published);
        }
        true
    }

    /// Shares the counters of `old` (same issuer name across a reload).
    pub fn share_stats(&mut self, old: &JwksSource) {
        self.stats = old.stats.clone();
    }

    /// Where the JWK set is, resolving discovery when configured.
    async fn jwks_url(&self) -> Result<String, JwksError> {
        match &self.issuer.config.source {
            KeySource::Jwks(url) => Ok(url.expose().clone()),
            KeySource::Discovery => {
                let url = fetch::discovery_url(&self.issuer.config.iss);
                let doc = fetch::get(&self.client, &url).await?;
                fetch::jwks_uri(&url, &self.issuer.config.iss, &doc.body)
            }
            KeySource::Static => Err(JwksError::Invalid(
                self.issuer.config.name.clone(),
                "issuer has static keys",
            )),
        }
    }

    async fn fetch(&self) -> Result<(Vec<(Jwk, VerifyKey)>, Option<Duration>), JwksError> {
        let url = self.jwks_url().await?;
        let doc = fetch::get(&self.client, &url).await?;
        Ok((parse_jwks(&url, &doc.body)?, doc.max_age))
    }

    /// Fetches with the state lock held, records the outcome, and swaps the key set
    /// on success. Returns the server's `max-age`.
    async fn fetch_locked(&self, st: &mut FetchState) -> Result<Option<Duration>, JwksError> {
        st.last_attempt = Some(Instant::now());
        let span = crate::otel::jwks_span(&self.issuer.config.name);
        let result = self.fetch().instrument(span.clone()).await;
        crate::otel::fetched(&span, result.is_ok());
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.stats.last_fetch_unix.store(now, Ordering::Relaxed);
        let out = match result {
            Ok((keys, max_age)) => {
                self.apply(st, keys);
                self.stats.ok.fetch_add(1, Ordering::Relaxed);
                crate::metrics::jwks_fetch(&self.issuer.config.name, true);
                self.stats.last_ok.store(true, Ordering::Relaxed);
                if let Ok(mut e) = self.stats.last_error.lock() {
                    *e = None;
                }
                Ok(max_age)
            }
            Err(e) => {
                self.stats.error.fetch_add(1, Ordering::Relaxed);
                crate::metrics::jwks_fetch(&self.issuer.config.name, false);
                self.stats.last_ok.store(false, Ordering::Relaxed);
                if let Ok(mut last) = self.stats.last_error.lock() {
                    *last = Some(e.to_string());
                }
                tracing::warn!(
                    issuer = %self.issuer.config.name,
                    error = %e,
                    keys = st.published.len(),
                    "JWKS fetch failed; keeping the last good keys"
                );
                Err(e)
            }
        };
        self.generation.fetch_add(1, Ordering::Release);
        out
    }

    /// Replaces the key set; unchanged keys keep their `Arc`, and cached tokens
    /// verified by a key that left the set are evicted.
    fn apply(&self, st: &mut FetchState, fetched: Vec<(Jwk, VerifyKey)>) {
        let mut next: Vec<(Jwk, Arc<VerifyKey>)> = Vec::with_capacity(fetched.len());
        for (jwk, key) in fetched {
            let kept = st
                .published
                .iter()
                .find(|(j, _)| *j == jwk)
                .map(|(_, k)| k.clone());
            next.push((jwk, kept.unwrap_or_else(|| Arc::new(key))));
        }
        let dropped: Vec<Arc<VerifyKey>> = st
            .published
            .iter()
            .filter(|(_, old)| !next.iter().any(|(_, k)| Arc::ptr_eq(old, k)))
            .map(|(_, k)| k.clone())
            .collect();
        let added = next
            .iter()
            .filter(|(_, k)| !st.published.iter().any(|(_, o)| Arc::ptr_eq(o, k)))
            .count();
        self.issuer.set_keys(Arc::new(KeySet {
            keys: next.iter().map(|(_, k)| k.clone()).collect(),
        }));
        self.stats.keys.store(next.len(), Ordering::Relaxed);
        if next.is_empty() {
            tracing::warn!(issuer = %self.issuer.config.name, "JWKS has no usable signature key; tokens of this issuer are refused");
        }
        if added > 0 || !dropped.is_empty() {
            let kids = |ks: &mut dyn Iterator<Item = &Arc<VerifyKey>>| {
                ks.map(|k| k.kid.as_deref().unwrap_or("-").to_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            tracing::info!(
                issuer = %self.issuer.config.name,
                keys = %kids(&mut next.iter().map(|(_, k)| k)),
                dropped = %kids(&mut dropped.iter()),
                "JWKS key set updated"
            );
        }
        st.published = next;
        if !dropped.is_empty() {
            self.cache
                .evict_where(move |v| dropped.iter().any(|d| Arc::ptr_eq(d, &v.key)));
        }
    }

    /// A scheduled fetch (start-up, refresh, retry).
    pub async fn refresh(&self) -> Result<Option<Duration>, JwksError> {
        let mut st = self.state.lock().await;
        self.fetch_locked(&mut st).await
    }

    /// Called when a token names a `kid` the issuer does not have: waits for a fetch
    /// in flight, or starts one unless one started less than
    /// [`UNKNOWN_KID_INTERVAL`] ago. Returns whether a fetch completed meanwhile.
    pub async fn refresh_for_unknown_kid(&self) -> bool {
        let seen = self.generation.load(Ordering::Acquire);
        let mut st = self.state.lock().await;
        if self.generation.load(Ordering::Acquire) != seen {
            return true;
        }
        if st
            .last_attempt
            .is_some_and(|t| t.elapsed() < UNKNOWN_KID_INTERVAL)
        {
            return false;
        }
        self.stats.on_demand.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(issuer = %self.issuer.config.name, "unknown kid: re-fetching the JWKS");
        let _ = self.fetch_locked(&mut st).await;
        true
    }

    /// Starts the refresh loop: fetch now, then every `refresh_interval` (or sooner
    /// per `max-age`); after a failure retry with exponential back-off.
    pub fn spawn(self: &Arc<Self>) -> AbortHandle {
        let me = self.clone();
        tokio::spawn(async move {
            let interval = me
                .issuer
                .config
                .refresh_interval
                .max(Duration::from_secs(1));
            let cap = BACKOFF_CAP.min(interval);
            let mut backoff = BACKOFF_START.min(cap);
            loop {
                let delay = match me.refresh().await {
                    Ok(max_age) => {
                        backoff = BACKOFF_START.min(cap);
                        next_refresh(interval, max_age)
                    }
                    Err(_) => {
                        let d = backoff;
                        backoff = (backoff * 2).min(cap);
                        d
                    }
                };
                tokio::time::sleep(delay).await;
            }
        })
        .abort_handle()
    }
}
