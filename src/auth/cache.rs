//! The verified-token cache (SPEC §3): keyed by SHA-256 of the token (the token
//! itself is never stored as a key), each entry expiring no later than the token's
//! `exp`, bounded by `[cache] tokens` entries. A hit costs a hash and a lookup.

use super::verify::Verified;
use moka::sync::Cache;
use moka::Expiry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// SHA-256 of a token.
pub type Digest = [u8; 32];

#[derive(Clone)]
struct Entry {
    value: Arc<Verified>,
    ttl: Duration,
}

struct PerEntry;

impl Expiry<Digest, Entry> for PerEntry {
    fn expire_after_create(&self, _k: &Digest, v: &Entry, _now: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// Verified tokens by digest.
pub struct TokenCache {
    inner: Option<Cache<Digest, Entry>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl TokenCache {
    /// A cache of at most `entries` tokens; 0 disables it.
    pub fn new(entries: u64) -> Self {
        let inner = (entries > 0).then(|| {
            Cache::builder()
                .max_capacity(entries)
                .expire_after(PerEntry)
                .build()
        });
        TokenCache {
            inner,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Whether caching is on.
    pub fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// The cache key of a token.
    pub fn digest(token: &str) -> Digest {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    /// A cached verification.
    pub fn get(&self, d: &Digest) -> Option<Arc<Verified>> {
        let hit = self.inner.as_ref()?.get(d).map(|e| e.value);
        if hit.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            crate::metrics::cache_hits().increment(1);
        } else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            crate::metrics::cache_misses().increment(1);
        }
        hit
    }

    /// Hits over lookups since start, if there was any lookup.
    pub fn hit_ratio(&self) -> Option<f64> {
        let h = self.hits.load(Ordering::Relaxed) as f64;
        let m = self.misses.load(Ordering::Relaxed) as f64;
        (h + m > 0.0).then(|| h / (h + m))
    }

    /// Caches a verification for at most `ttl`.
    pub fn insert(&self, d: Digest, value: Arc<Verified>, ttl: Duration) {
        if let Some(c) = &self.inner {
            c.insert(d, Entry { value, ttl });
        }
    }

    /// Drops one entry.
    pub fn remove(&self, d: &Digest) {
        if let Some(c) = &self.inner {
            c.invalidate(d);
        }
    }

    /// Drops every entry matching `pred` (revocation, key removal).
    pub fn evict_where(&self, pred: impl Fn(&Verified) -> bool + Send + Sync + 'static) {
        if let Some(c) = &self.inner {
            for (k, e) in c.iter() {
                if pred(&e.value) {
                    c.invalidate(&*k);
                }
            }
        }
    }

    /// Approximate number of entries.
    pub fn len(&self) -> u64 {
        self.inner.as_ref().map_or(0, |c| {
            c.run_pending_tasks();
            c.entry_count()
        })
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
