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

/// A cache key: SipHash-1-3 with 128-bit output of the token, under a 128-bit key
/// random per process. A PRF under a secret key, so an attacker cannot aim a token at
/// another token's entry; one pass over the token (issue 20: the two 64-bit passes
/// before cost twice), about a twentieth of the instructions of SHA-256 on a JWT.
pub type Key = u128;

/// The cache's own hasher for a [`Key`]: the key already is a keyed PRF output,
/// uniform and unknown to clients, so its low 64 bits folded with its high ones are
/// the hash (a second SipHash over it would add nothing but instructions).
#[derive(Default, Clone, Copy)]
struct KeyHasher(u64);

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
        }
    }
    fn write_u128(&mut self, k: u128) {
        self.0 = self.0.rotate_left(29) ^ (k as u64) ^ ((k >> 64) as u64);
    }
}

type Hashing = std::hash::BuildHasherDefault<KeyHasher>;

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
    inner: Option<Cache<Key, Entry, Hashing>>,
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
                .build_with_hasher(Hashing::default())
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

    /// The cache key of a token: SipHash-1-3-128 under one random per-process key.
    pub fn key(token: &str) -> Key {
        use siphasher::sip128::Hasher128;
        use std::hash::{BuildHasher, Hasher};
        static KEY: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();
        // Two outputs of std's randomly keyed SipHash: 128 unpredictable bits,
        // without a fallible call on the request path.
        let &(k0, k1) = KEY.get_or_init(|| {
            let r = std::hash::RandomState::new();
            (r.hash_one(0u8), r.hash_one(1u8))
        });
        let mut h = siphasher::sip128::SipHasher13::new_with_keys(k0, k1);
        h.write(token.as_bytes());
        h.finish128().as_u128()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_per_token_and_stable() {
        let a = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
        let b = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJiIn0.c2ln";
        assert_eq!(TokenCache::key(a), TokenCache::key(a));
        assert_ne!(TokenCache::key(a), TokenCache::key(b));
        // One byte more or less is another key (SipHash pads with the length).
        assert_ne!(TokenCache::key(a), TokenCache::key(&a[..a.len() - 1]));
        // Both halves carry key material (a 64-bit key would leave one at zero).
        let k = TokenCache::key(a);
        assert!(k >> 64 != 0 && k as u64 != 0);
    }

    #[test]
    fn cache_hits_by_key() {
        let c = TokenCache::new(10);
        let k = TokenCache::key("t");
        assert!(c.get(&k).is_none());
        // The cache hashes keys with its own hasher: both halves count.
        let mut h = KeyHasher::default();
        std::hash::Hasher::write_u128(&mut h, k);
        let mut g = KeyHasher::default();
        std::hash::Hasher::write_u128(&mut g, k ^ (1u128 << 100));
        assert_ne!(std::hash::Hasher::finish(&h), std::hash::Hasher::finish(&g));
    }
}
