//! The verified-token cache (SPEC §3): keyed by a 128-bit keyed hash of the token
//! ([`TokenCache::key`]; the token itself is never stored), each entry expiring no later than the token's
//! `exp`, bounded by `[cache] tokens` entries. A hit costs a hash and a lookup.

use super::issuer::Verified;
use moka::sync::Cache;
use moka::Expiry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// SHA-256 of a token.
pub type Digest = [u8; 32];

/// A cache key: 128 bits of keyed SipHash-1-3 of the token (two independent keys,
/// random per process). A PRF under a secret key, so an attacker cannot aim a token at
/// another token's entry; about a tenth of the instructions of SHA-256 on a JWT.
pub type Key = u128;

#[derive(Clone)]
struct Entry {
    value: Arc<Verified>,
    ttl: Duration,
}

struct PerEntry;

impl Expiry<Key, Entry> for PerEntry {
    fn expire_after_create(&self, _k: &Key, v: &Entry, _now: Instant) -> Option<Duration> {
        Some(v.ttl)
    }
}

/// Verified tokens by digest.
pub struct TokenCache {
    inner: Option<Cache<Key, Entry>>,
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

    /// SHA-256 of a token (stable across processes: the token endpoint stores refresh
    /// tokens by it).
    pub fn digest(token: &str) -> Digest {
        let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        out
    }

    /// The cache key of a token: SipHash-1-3 under one random per-process key, on two
    /// domain-separated inputs, giving 128 bits.
    pub fn key(token: &str) -> Key {
        use std::hash::{BuildHasher, Hasher};
        static KEY: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
        let k = KEY.get_or_init(std::hash::RandomState::new);
        let half = |domain: u8| {
            let mut h = k.build_hasher();
            h.write_u8(domain);
            h.write(token.as_bytes());
            h.finish()
        };
        (u128::from(half(0)) << 64) | u128::from(half(1))
    }

    /// A cached verification.
    pub fn get(&self, d: &Key) -> Option<Arc<Verified>> {
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
    pub fn insert(&self, d: Key, value: Arc<Verified>, ttl: Duration) {
        if let Some(c) = &self.inner {
            c.insert(d, Entry { value, ttl });
        }
    }

    /// Drops one entry.
    pub fn remove(&self, d: &Key) {
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
