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
    sessions: super::sessions::MemorySessions,
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
            sessions: super::sessions::MemorySessions::new(cap.0),
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

    fn session_put<'a>(&'a self, key: &'a str, value: &'a str, ttl: Duration) -> Fut<'a, ()> {
        ready(self.sessions.put(key, value, ttl))
    }

    fn session_get<'a>(&'a self, key: &'a str) -> Fut<'a, Option<String>> {
        ready(self.sessions.get(key))
    }

    fn session_delete<'a>(&'a self, key: &'a str) -> Fut<'a, ()> {
        ready(self.sessions.delete(key))
    }
}

#[cfg(test)]
mod tests;
