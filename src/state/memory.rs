//! The in-memory [`Store`]: one process, state lost on restart (kept across
//! reloads). Each operation takes one lock for its whole duration, which makes it
//! atomic like its Redis counterpart. Expired entries are swept as the maps grow.
//! Refresh-token state is held under a cap (`[state] max_entries`, see
//! [`super::families`]); revocations are never evicted (forgetting one would let a
//! revoked token back in): they are at most the access tokens alive when their
//! families were revoked, and go at their `exp`.

use super::families::{Families, ToRevoke};
use super::{Fut, Hit, MaxEntries, RefreshGrant, Rotation, StateError, Store, TokenHash};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::time::Instant;

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[derive(Default)]
struct Revoked {
    map: HashMap<String, u64>,
    next_sweep: usize,
}

#[derive(Default)]
struct Counters {
    map: HashMap<String, (u64, Instant)>,
    next_sweep: usize,
}

/// The in-memory backend.
pub struct MemoryStore {
    revoked: RwLock<Revoked>,
    refresh: Mutex<Families>,
    counters: Mutex<Counters>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_max_entries(MaxEntries::default())
    }
}

const SWEEP_MIN: usize = 1024;

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>, StateError> {
    m.lock()
        .map_err(|_| StateError("memory store lock poisoned".into()))
}

fn ready<'a, T: Send + 'a>(r: Result<T, StateError>) -> Fut<'a, T> {
    Box::pin(std::future::ready(r))
}

impl MemoryStore {
    /// An empty store with the default cap.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store holding at most `cap` refresh-token entries.
    pub fn with_max_entries(cap: MaxEntries) -> Self {
        MemoryStore {
            revoked: RwLock::default(),
            refresh: Mutex::new(Families::new(cap.0)),
            counters: Mutex::default(),
        }
    }

    /// Refresh-token entries held (live tokens, tombstones, access records).
    pub fn entries(&self) -> usize {
        lock(&self.refresh).map_or(0, |r| r.len())
    }

    fn revoke_now(&self, key: &str, until: u64) -> Result<(), StateError> {
        let mut r = self
            .revoked
            .write()
            .map_err(|_| StateError("memory store lock poisoned".into()))?;
        if r.map.len() >= r.next_sweep {
            let now = unix_now();
            r.map.retain(|_, u| *u >= now);
            r.next_sweep = (r.map.len() * 2).max(SWEEP_MIN);
        }
        let e = r.map.entry(key.to_owned()).or_insert(until);
        *e = (*e).max(until);
        Ok(())
    }

    /// Revokes the access tokens of a family just revoked (the caller holds the
    /// refresh lock, so no refresh of the family can run meanwhile).
    fn revoke_all(&self, list: ToRevoke) -> Result<(), StateError> {
        for (key, exp) in list {
            self.revoke_now(&key, exp)?;
        }
        Ok(())
    }

    fn rotate(
        &self,
        old: TokenHash,
        new: TokenHash,
        new_expires_at: u64,
        now: u64,
    ) -> Result<Rotation, StateError> {
        let mut r = lock(&self.refresh)?;
        let (rotation, revoke) = r.rotate(old, new, new_expires_at, now);
        self.revoke_all(revoke)?;
        Ok(rotation)
    }

    fn issue(&self, token: TokenHash, grant: RefreshGrant) -> Result<(), StateError> {
        lock(&self.refresh)?.issue(token, grant, unix_now());
        Ok(())
    }

    fn add_access(&self, family: &str, key: &str, exp: u64) -> Result<(), StateError> {
        let revoked = lock(&self.refresh)?.add_access(family, key, exp, unix_now());
        // Revoked meanwhile (a concurrent reuse): the new access token goes too.
        if revoked {
            self.revoke_now(key, exp)?;
        }
        Ok(())
    }

    fn revoke_refresh(&self, token: TokenHash, now: u64) -> Result<bool, StateError> {
        let mut r = lock(&self.refresh)?;
        match r.revoke(token, now) {
            Some(list) => self.revoke_all(list).map(|()| true),
            None => Ok(false),
        }
    }

    fn hit(&self, key: &str, window: Duration) -> Result<Hit, StateError> {
        let mut c = lock(&self.counters)?;
        let now = Instant::now();
        if c.map.len() >= c.next_sweep {
            c.map.retain(|_, (_, end)| *end > now);
            c.next_sweep = (c.map.len() * 2).max(SWEEP_MIN);
        }
        let e = c.map.entry(key.to_owned()).or_insert((0, now + window));
        if e.1 <= now {
            *e = (0, now + window);
        }
        e.0 = e.0.saturating_add(1);
        Ok(Hit {
            count: e.0,
            retry_after: e.1.saturating_duration_since(now),
        })
    }

    fn get(&self, key: &str) -> Result<Option<Hit>, StateError> {
        let c = lock(&self.counters)?;
        let now = Instant::now();
        Ok(c.map.get(key).filter(|e| e.1 > now).map(|e| Hit {
            count: e.0,
            retry_after: e.1.saturating_duration_since(now),
        }))
    }

    fn reset(&self, key: &str) -> Result<(), StateError> {
        lock(&self.counters)?.map.remove(key);
        Ok(())
    }
}

impl Store for MemoryStore {
    fn revoke<'a>(&'a self, key: &'a str, until: u64) -> Fut<'a, ()> {
        ready(self.revoke_now(key, until))
    }

    fn is_revoked<'a>(&'a self, key: &'a str) -> Fut<'a, bool> {
        let r = self
            .revoked
            .read()
            .map_err(|_| StateError("memory store lock poisoned".into()))
            .map(|r| r.map.get(key).is_some_and(|u| *u >= unix_now()));
        ready(r)
    }

    fn refresh_issue(&self, token: TokenHash, grant: RefreshGrant) -> Fut<'_, ()> {
        ready(self.issue(token, grant))
    }

    fn refresh_rotate(
        &self,
        old: TokenHash,
        new: TokenHash,
        new_expires_at: u64,
        now: u64,
    ) -> Fut<'_, Rotation> {
        ready(self.rotate(old, new, new_expires_at, now))
    }

    fn family_add_access<'a>(&'a self, family: &'a str, key: &'a str, exp: u64) -> Fut<'a, ()> {
        ready(self.add_access(family, key, exp))
    }

    fn refresh_revoke(&self, token: TokenHash, now: u64) -> Fut<'_, bool> {
        ready(self.revoke_refresh(token, now))
    }

    fn counter_hit<'a>(&'a self, key: &'a str, window: Duration) -> Fut<'a, Hit> {
        ready(self.hit(key, window))
    }

    fn counter_get<'a>(&'a self, key: &'a str) -> Fut<'a, Option<Hit>> {
        ready(self.get(key))
    }

    fn counter_reset<'a>(&'a self, key: &'a str) -> Fut<'a, ()> {
        ready(self.reset(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(family: &str, expires_at: u64) -> RefreshGrant {
        RefreshGrant {
            family: family.into(),
            sub: "alice".into(),
            scope: "a b".into(),
            expires_at,
        }
    }

    #[tokio::test]
    async fn rotation_and_reuse() {
        let s = MemoryStore::new();
        let now = unix_now();
        s.refresh_issue([1; 32], grant("f", now + 60))
            .await
            .unwrap();
        s.family_add_access("f", "iss jti1", now + 60)
            .await
            .unwrap();
        assert!(matches!(
            s.refresh_rotate([1; 32], [2; 32], now + 60, now).await.unwrap(),
            Rotation::Rotated(g) if g.sub == "alice"
        ));
        // Presenting the spent token again revokes the family and its access tokens.
        assert_eq!(
            s.refresh_rotate([1; 32], [3; 32], now + 60, now)
                .await
                .unwrap(),
            Rotation::Reused
        );
        assert!(s.is_revoked("iss jti1").await.unwrap());
        assert_eq!(
            s.refresh_rotate([2; 32], [4; 32], now + 60, now)
                .await
                .unwrap(),
            Rotation::Invalid
        );
        assert_eq!(
            s.refresh_rotate([9; 32], [5; 32], now + 60, now)
                .await
                .unwrap(),
            Rotation::Invalid
        );
    }

    #[tokio::test]
    async fn expired_and_revoked() {
        let s = MemoryStore::new();
        let now = unix_now();
        s.refresh_issue([1; 32], grant("f", now.saturating_sub(1)))
            .await
            .unwrap();
        assert_eq!(
            s.refresh_rotate([1; 32], [2; 32], now + 60, now)
                .await
                .unwrap(),
            Rotation::Invalid
        );
        s.refresh_issue([3; 32], grant("g", now + 60))
            .await
            .unwrap();
        assert!(s.refresh_revoke([3; 32], now).await.unwrap());
        assert!(!s.refresh_revoke([7; 32], now).await.unwrap());
        assert_eq!(
            s.refresh_rotate([3; 32], [4; 32], now + 60, now)
                .await
                .unwrap(),
            Rotation::Invalid
        );
        s.revoke("old", now.saturating_sub(5)).await.unwrap();
        assert!(!s.is_revoked("old").await.unwrap());
    }

    /// Under the cap: spent entries (tombstones, access records) go oldest first,
    /// live tokens last; what is evicted is refused, never accepted.
    #[tokio::test]
    async fn eviction_order_under_the_cap() {
        let s = MemoryStore::with_max_entries(MaxEntries(6));
        let now = unix_now();
        // A quiet family: one live token and one access record, both old.
        s.refresh_issue([1; 32], grant("quiet", now + 60))
            .await
            .unwrap();
        s.family_add_access("quiet", "iss q", now + 60)
            .await
            .unwrap();
        // A client refreshing in a loop: [10] -> [11] -> ... -> [20].
        s.refresh_issue([10; 32], grant("busy", now + 60))
            .await
            .unwrap();
        for i in 10..20u8 {
            let r = s.refresh_rotate([i; 32], [i + 1; 32], now + 60, now);
            assert!(matches!(r.await.unwrap(), Rotation::Rotated(_)), "{i}");
            s.family_add_access("busy", &format!("iss b{i}"), now + 60)
                .await
                .unwrap();
            assert!(s.entries() <= 6, "{i}: {}", s.entries());
        }
        assert_eq!(s.entries(), 6);
        // The oldest tombstone was evicted: its reuse is refused (unknown), and
        // revokes nothing.
        assert_eq!(
            s.refresh_rotate([10; 32], [30; 32], now + 60, now)
                .await
                .unwrap(),
            Rotation::Invalid
        );
        assert!(!s.is_revoked("iss b19").await.unwrap());
        // The newest tombstone is kept: its reuse revokes the family, with the
        // access tokens whose records are kept (the newest); the evicted records'
        // tokens are not.
        assert_eq!(
            s.refresh_rotate([19; 32], [31; 32], now + 60, now)
                .await
                .unwrap(),
            Rotation::Reused
        );
        assert!(s.is_revoked("iss b19").await.unwrap());
        assert!(!s.is_revoked("iss b10").await.unwrap());
        assert_eq!(
            s.refresh_rotate([20; 32], [32; 32], now + 60, now)
                .await
                .unwrap(),
            Rotation::Invalid
        );
        // The quiet family lost its old access record, not its live token.
        assert!(matches!(
            s.refresh_rotate([1; 32], [2; 32], now + 60, now).await.unwrap(),
            Rotation::Rotated(g) if g.family == "quiet"
        ));
        assert!(!s.is_revoked("iss q").await.unwrap());
    }

    /// When only live tokens are left, the oldest live token goes: that session
    /// must log in again, nobody else's.
    #[tokio::test]
    async fn live_tokens_go_last_and_oldest_first() {
        let s = MemoryStore::with_max_entries(MaxEntries(3));
        let now = unix_now();
        for i in 1..=5u8 {
            s.refresh_issue([i; 32], grant(&format!("f{i}"), now + 60))
                .await
                .unwrap();
        }
        assert_eq!(s.entries(), 3);
        for (i, kept) in [(1, false), (2, false), (3, true), (4, true), (5, true)] {
            let r = s
                .refresh_rotate([i; 32], [100 + i; 32], now + 60, now)
                .await
                .unwrap();
            assert_eq!(matches!(r, Rotation::Rotated(_)), kept, "{i}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn counters_window() {
        let s = MemoryStore::new();
        let w = Duration::from_secs(60);
        for n in 1..=3 {
            assert_eq!(s.counter_hit("k", w).await.unwrap().count, n);
        }
        tokio::time::advance(Duration::from_secs(30)).await;
        let h = s.counter_hit("k", w).await.unwrap();
        assert_eq!(h.count, 4);
        assert_eq!(h.retry_after, Duration::from_secs(30));
        assert_eq!(s.counter_get("k").await.unwrap(), Some(h));
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(s.counter_get("k").await.unwrap(), None);
        assert_eq!(s.counter_hit("k", w).await.unwrap().count, 1);
        s.counter_reset("k").await.unwrap();
        assert_eq!(s.counter_hit("k", w).await.unwrap().count, 1);
    }
}
