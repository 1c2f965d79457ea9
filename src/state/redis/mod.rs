//! The Redis [`Store`] (`[state] backend = "redis"`): revocations, refresh-token
//! families and failed-login counters shared by every replica.
//!
//! The connection (standalone, Redis Cluster or Sentinel-discovered primary) is
//! [`super::connect`]'s. Every operation is one round trip: a single command or one
//! Lua script (refresh rotation and family revocation), so it is atomic across
//! replicas: a spent refresh token is redeemed at most once however many replicas
//! see it at the same time. Every key carries a TTL (the token's `exp`, the
//! counter's window), so Redis holds only what is live. Requires Redis 7.0+
//! (`EXPIRE ... NX|GT`).
//!
//! Guarantees: every command is bounded by [`COMMAND_TIMEOUT`]; a failure is a
//! [`StateError`] (callers fail closed), counted in `portcullis_state_errors_total`;
//! a background health check keeps [`Store::reachable`] current for `/readyz` and
//! drives reconnection while no request does. Refresh tokens are stored as SHA-256
//! digests; no token or password reaches Redis or a log line.
//!
//! The keys and their cluster layout are `keys.rs`'s; the Lua scripts, `scripts.rs`'s.

mod keys;
mod scripts;

use super::conn::Conn;
use super::connect::Link;
use super::{Fut, Hit, RefreshGrant, Rotation, StateError, Store, TokenHash};
use arc_swap::ArcSwap;
use keys::hash_tag;
use redis::{RedisError, RedisResult};
use scripts::Scripts;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use super::connect::COMMAND_TIMEOUT;

/// Operations whose effect must survive a failover: with `[state] replicas_ack`
/// they are acknowledged by that many replicas (the counters are not: a failover
/// may forget a few failed logins, never a revocation or a spent refresh token).
const DURABLE: &[&str] = &[
    "revoke",
    "refresh_issue",
    "refresh_rotate",
    "family_add_access",
    "refresh_revoke",
    "session_delete",
];

struct Inner {
    link: Arc<Link>,
    prefix: String,
    /// `{tag}` of the built-in issuer (Cluster only; empty otherwise): the refresh
    /// families live in the slot of that issuer's revocations.
    family_tag: ArcSwap<String>,
    scripts: Scripts,
}

/// The Redis backend.
pub struct RedisStore {
    inner: Arc<Inner>,
}

/// Checks a `[state] url` (see [`super::topology::parse`]).
pub fn check_url(url: &str) -> Result<(), String> {
    super::topology::parse(url).map(|_| ())
}

impl RedisStore {
    /// A store on `url` with every key under `prefix`. Nothing connects until the
    /// first operation (or the health task, started now when inside a tokio runtime).
    /// With `ca` (PEM), a TLS server is verified against it instead of the webpki
    /// roots.
    pub fn new(url: &str, prefix: &str, ca: Option<&[u8]>) -> RedisStore {
        Self::with_replicas_ack(url, prefix, ca, 0)
    }

    /// [`RedisStore::new`] whose durable writes wait for `acks` replicas
    /// (`[state] replicas_ack`).
    pub fn with_replicas_ack(url: &str, prefix: &str, ca: Option<&[u8]>, acks: u32) -> RedisStore {
        let link = Arc::new(Link::new(url, ca, acks));
        link.start();
        let store = RedisStore {
            inner: Arc::new(Inner {
                link,
                prefix: prefix.to_owned(),
                family_tag: ArcSwap::from_pointee(String::new()),
                scripts: Scripts::new(),
            }),
        };
        store.set_issuer("");
        store
    }

    /// Runs one operation on the connection: bounded by [`COMMAND_TIMEOUT`], errors
    /// counted and turned into [`StateError`].
    async fn run<T, F, Fu>(&self, op: &'static str, f: F) -> Result<T, StateError>
    where
        F: FnOnce(Conn) -> Fu,
        Fu: Future<Output = RedisResult<T>>,
    {
        let link = &self.inner.link;
        let err = match link.conn(DURABLE.contains(&op)) {
            Ok(c) => match tokio::time::timeout(COMMAND_TIMEOUT, f(c)).await {
                Ok(Ok(v)) => {
                    link.answered();
                    return Ok(v);
                }
                Ok(Err(e)) => e,
                Err(_) => RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)),
            },
            Err(e) => e,
        };
        link.failed(&err);
        crate::metrics::state_error(op);
        Err(StateError(format!("redis {op}: {err}")))
    }

    /// On a cluster, the family keys of refresh token key `tk`, so the script that
    /// revokes the family declares them (see the module doc); elsewhere none.
    async fn family_keys(&self, tk: &str) -> Result<Vec<String>, StateError> {
        if !self.inner.link.is_cluster() {
            return Ok(Vec::new());
        }
        let family: Option<String> = self
            .run("refresh_revoke", |mut c| async move {
                redis::cmd("HGET")
                    .arg(tk)
                    .arg("family")
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(family.map_or_else(Vec::new, |id| {
            let fk = format!("{}family:{id}", self.family_prefix());
            vec![format!("{fk}:access"), fk]
        }))
    }
}

/// Reads a script's rotation answer.
fn rotation(v: &[String]) -> Result<Rotation, StateError> {
    match v {
        [tag] if tag == "reused" => Ok(Rotation::Reused),
        [tag] if tag == "invalid" => Ok(Rotation::Invalid),
        [tag, family, sub, scope, exp] if tag == "rotated" => Ok(Rotation::Rotated(RefreshGrant {
            family: family.clone(),
            sub: sub.clone(),
            scope: scope.clone(),
            expires_at: exp
                .parse()
                .map_err(|_| StateError("redis rotate: malformed expiry".into()))?,
        })),
        _ => Err(StateError("redis rotate: unexpected reply".into())),
    }
}

fn millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

impl Store for RedisStore {
    fn revoke<'a>(&'a self, key: &'a str, until: u64) -> Fut<'a, ()> {
        Box::pin(async move {
            if until < super::memory::unix_now() {
                return Ok(()); // already expired: nothing to remember
            }
            let k = self.revoked_key(key);
            let s = &self.inner.scripts.revoke;
            self.run("revoke", |mut c| async move {
                s.key(k)
                    .arg(until.saturating_add(1))
                    .invoke_async::<i64>(&mut c)
                    .await
                    .map(|_| ())
            })
            .await
        })
    }

    fn is_revoked<'a>(&'a self, key: &'a str) -> Fut<'a, bool> {
        Box::pin(async move {
            let k = self.revoked_key(key);
            self.run("is_revoked", |mut c| async move {
                redis::cmd("EXISTS").arg(k).query_async::<u64>(&mut c).await
            })
            .await
            .map(|n| n > 0)
        })
    }

    fn refresh_issue(&self, token: TokenHash, grant: RefreshGrant) -> Fut<'_, ()> {
        Box::pin(async move {
            let tk = self.token_key(&token);
            let fk = format!("{}family:{}", self.family_prefix(), grant.family);
            let s = &self.inner.scripts.issue;
            self.run("refresh_issue", |mut c| async move {
                s.key(tk)
                    .key(fk)
                    .arg(&grant.family)
                    .arg(&grant.sub)
                    .arg(&grant.scope)
                    .arg(grant.expires_at)
                    .invoke_async::<i64>(&mut c)
                    .await
                    .map(|_| ())
            })
            .await
        })
    }

    fn refresh_rotate(
        &self,
        old: TokenHash,
        new: TokenHash,
        new_expires_at: u64,
        now: u64,
    ) -> Fut<'_, Rotation> {
        Box::pin(async move {
            let (ok, nk) = (self.token_key(&old), self.token_key(&new));
            let s = &self.inner.scripts.rotate;
            let prefix = &self.family_prefix();
            let v = self
                .run("refresh_rotate", |mut c| async move {
                    s.key(ok)
                        .key(nk)
                        .arg(prefix)
                        .arg(new_expires_at)
                        .arg(now)
                        .invoke_async::<Vec<String>>(&mut c)
                        .await
                })
                .await?;
            rotation(&v)
        })
    }

    fn family_add_access<'a>(&'a self, family: &'a str, key: &'a str, exp: u64) -> Fut<'a, ()> {
        Box::pin(async move {
            let prefix = &self.prefix_of(key);
            let fk = format!("{prefix}family:{family}");
            let ak = format!("{fk}:access");
            let s = &self.inner.scripts.add_access;
            let now = super::memory::unix_now();
            self.run("family_add_access", |mut c| async move {
                s.key(fk)
                    .key(ak)
                    .arg(prefix)
                    .arg(key)
                    .arg(exp)
                    .arg(now)
                    .arg(super::families::FAMILY_MAX_ACCESS)
                    .invoke_async::<i64>(&mut c)
                    .await
                    .map(|_| ())
            })
            .await
        })
    }

    fn refresh_revoke(&self, token: TokenHash, now: u64) -> Fut<'_, bool> {
        Box::pin(async move {
            let tk = self.token_key(&token);
            let declared = self.family_keys(&tk).await?;
            let s = &self.inner.scripts.refresh_revoke;
            let prefix = &self.family_prefix();
            self.run("refresh_revoke", |mut c| async move {
                let mut call = s.key(tk);
                for k in declared {
                    call.key(k);
                }
                call.arg(prefix).arg(now).invoke_async::<i64>(&mut c).await
            })
            .await
            .map(|n| n == 1)
        })
    }

    fn counter_hit<'a>(&'a self, key: &'a str, window: Duration) -> Fut<'a, Hit> {
        Box::pin(async move {
            let k = self.key("counter:", key);
            let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
            let s = &self.inner.scripts.counter_hit;
            let (count, pttl): (u64, i64) = self
                .run("counter_hit", |mut c| async move {
                    s.key(k).arg(ms).invoke_async(&mut c).await
                })
                .await?;
            Ok(Hit {
                count,
                retry_after: millis(pttl).max(Duration::from_millis(1)),
            })
        })
    }

    fn counter_get<'a>(&'a self, key: &'a str) -> Fut<'a, Option<Hit>> {
        Box::pin(async move {
            let k = self.key("counter:", key);
            let s = &self.inner.scripts.counter_get;
            let hit: Option<(u64, i64)> = self
                .run("counter_get", |mut c| async move {
                    s.key(k).invoke_async(&mut c).await
                })
                .await?;
            // A value means the window is open: Redis expires a key only once `now >
            // when`, so PTTL reads 0 during its last millisecond while GET (and the
            // next INCR) still see it. Report at least 1 ms left then, so a caller
            // never sees "closed" for a window the next hit would still count in.
            Ok(hit.map(|(count, pttl)| Hit {
                count,
                retry_after: millis(pttl).max(Duration::from_millis(1)),
            }))
        })
    }

    fn counter_reset<'a>(&'a self, key: &'a str) -> Fut<'a, ()> {
        Box::pin(async move {
            let k = self.key("counter:", key);
            self.run("counter_reset", |mut c| async move {
                redis::cmd("DEL").arg(k).query_async::<u64>(&mut c).await
            })
            .await
            .map(|_| ())
        })
    }

    fn session_put<'a>(&'a self, key: &'a str, value: &'a str, ttl: Duration) -> Fut<'a, ()> {
        Box::pin(async move {
            let k = self.key("", key);
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            self.run("session_put", |mut c| async move {
                redis::cmd("SET")
                    .arg(k)
                    .arg(value)
                    .arg("PX")
                    .arg(ms)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await
        })
    }

    fn session_get<'a>(&'a self, key: &'a str) -> Fut<'a, Option<String>> {
        Box::pin(async move {
            let k = self.key("", key);
            self.run("session_get", |mut c| async move {
                redis::cmd("GET").arg(k).query_async(&mut c).await
            })
            .await
        })
    }

    fn session_delete<'a>(&'a self, key: &'a str) -> Fut<'a, ()> {
        Box::pin(async move {
            let k = self.key("", key);
            self.run("session_delete", |mut c| async move {
                redis::cmd("DEL").arg(k).query_async::<u64>(&mut c).await
            })
            .await
            .map(|_| ())
        })
    }

    fn reachable(&self) -> bool {
        self.inner.link.reachable()
    }

    fn set_issuer(&self, iss: &str) {
        let tag = if self.inner.link.is_cluster() {
            hash_tag(iss)
        } else {
            String::new()
        };
        if **self.inner.family_tag.load() != tag {
            self.inner.family_tag.store(Arc::new(tag));
        }
    }
}

#[cfg(test)]
mod tests;
