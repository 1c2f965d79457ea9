//! The in-memory [`Store`]: one process, state lost on restart (kept across
//! reloads). Each operation takes one lock for its whole duration, which makes it
//! atomic like its Redis counterpart. Expired entries are swept as the maps grow,
//! so memory stays bounded by what is live.

use super::{Fut, Hit, RefreshGrant, Rotation, StateError, Store, TokenHash};
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

struct Token {
    grant: RefreshGrant,
    spent: bool,
}

#[derive(Default)]
struct Family {
    revoked: bool,
    /// Latest expiry of any token in the family: the family is kept until then.
    expires_at: u64,
    /// Access tokens issued from the family: key and `exp`.
    access: Vec<(String, u64)>,
}

#[derive(Default)]
struct Refresh {
    tokens: HashMap<TokenHash, Token>,
    families: HashMap<String, Family>,
    next_sweep: usize,
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
#[derive(Default)]
pub struct MemoryStore {
    revoked: RwLock<Revoked>,
    refresh: Mutex<Refresh>,
    counters: Mutex<Counters>,
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
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
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

    /// Revokes a family and its access tokens (the caller holds the refresh lock).
    fn revoke_family(&self, fam: &mut Family) -> Result<(), StateError> {
        fam.revoked = true;
        for (key, exp) in std::mem::take(&mut fam.access) {
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
        let r = &mut *r;
        let Some(tok) = r.tokens.get_mut(&old) else {
            return Ok(Rotation::Invalid);
        };
        if tok.grant.expires_at < now {
            return Ok(Rotation::Invalid);
        }
        let fam = r.families.entry(tok.grant.family.clone()).or_default();
        if fam.revoked {
            return Ok(Rotation::Invalid);
        }
        if tok.spent {
            self.revoke_family(fam)?;
            return Ok(Rotation::Reused);
        }
        tok.spent = true;
        let grant = tok.grant.clone();
        fam.expires_at = fam.expires_at.max(new_expires_at);
        r.tokens.insert(
            new,
            Token {
                grant: RefreshGrant {
                    expires_at: new_expires_at,
                    ..grant.clone()
                },
                spent: false,
            },
        );
        Ok(Rotation::Rotated(grant))
    }

    fn issue(&self, token: TokenHash, grant: RefreshGrant) -> Result<(), StateError> {
        let mut r = lock(&self.refresh)?;
        if r.tokens.len() >= r.next_sweep {
            let now = unix_now();
            r.tokens.retain(|_, t| t.grant.expires_at >= now);
            r.families.retain(|_, f| f.expires_at >= now);
            r.next_sweep = (r.tokens.len() * 2).max(SWEEP_MIN);
        }
        let fam = r.families.entry(grant.family.clone()).or_default();
        fam.expires_at = fam.expires_at.max(grant.expires_at);
        r.tokens.insert(
            token,
            Token {
                grant,
                spent: false,
            },
        );
        Ok(())
    }

    fn add_access(&self, family: &str, key: &str, exp: u64) -> Result<(), StateError> {
        let mut r = lock(&self.refresh)?;
        let now = unix_now();
        let revoked = match r.families.get_mut(family) {
            Some(f) => {
                f.access.retain(|(_, e)| *e >= now);
                if !f.revoked {
                    f.access.push((key.to_owned(), exp));
                }
                f.revoked
            }
            None => false,
        };
        drop(r);
        // Revoked meanwhile (a concurrent reuse): the new access token goes too.
        if revoked {
            self.revoke_now(key, exp)?;
        }
        Ok(())
    }

    fn revoke_refresh(&self, token: TokenHash, now: u64) -> Result<bool, StateError> {
        let mut r = lock(&self.refresh)?;
        let r = &mut *r;
        let Some(family) = r
            .tokens
            .get(&token)
            .filter(|t| t.grant.expires_at >= now)
            .map(|t| t.grant.family.clone())
        else {
            return Ok(false);
        };
        let fam = r.families.entry(family).or_default();
        self.revoke_family(fam)?;
        Ok(true)
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
