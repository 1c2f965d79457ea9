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
//! Keys (`P` = `[state] key_prefix`; `T` = a hash tag, on Redis Cluster only):
//! `P T revoked:{iss jti}` (string, expires after the token's `exp`),
//! `P T refresh:{sha256 hex}` (hash: family, sub, scope, exp, spent; once spent, a
//! tombstone of family, exp and spent only, whatever the scopes),
//! `P T family:{id}` (hash: revoked) and `P T family:{id}:access` (sorted set of the
//! access tokens issued from the family, scored by `exp`, the latest
//! [`super::families::FAMILY_MAX_ACCESS`] kept), `P counter:{key}`.
//! On a cluster every key one script touches must live in one slot: `T` is
//! `{iss}` (the issuer, up to its first space; hashed when it holds a brace), for a
//! revocation that of its token and for the refresh families that of the built-in
//! issuer ([`Store::set_issuer`]), so a family's revocation can write its access
//! tokens' revocations in the same script. Counters are one key each (no tag).
//! Scripts that derive keys declare the ones they can (an undeclared key of a slot
//! being migrated cannot be checked by the server), so a slot in migration answers
//! `TRYAGAIN` (retried, then 503) rather than half-running a script. DPoP replay keys
//! (to come) are one `SET NX` key each and need no tag either.
//! Standalone and Sentinel keys carry no tag (the layout of earlier releases).

use super::conn::Conn;
use super::connect::Link;
use super::{Fut, Hit, RefreshGrant, Rotation, StateError, Store, TokenHash};
use arc_swap::ArcSwap;
use redis::{RedisError, RedisResult, Script};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use super::connect::COMMAND_TIMEOUT;

/// Shared Lua helpers, prepended to the scripts that need them.
/// `extend`: give `key` an expiry at `at`, or push a later one (never shorten).
/// `revoke`: mark access token key `k` revoked until `at`.
/// `revoke_family`: revoke the live access tokens of family `id`, then mark it
/// revoked (in that order: should a write fail midway, as on a cluster slot being
/// migrated, the family is not marked and the next attempt does it all again).
const LUA_PRELUDE: &str = r"
local function extend(key, at)
  redis.call('EXPIREAT', key, at, 'NX')
  redis.call('EXPIREAT', key, at, 'GT')
end
local function revoke(k, at)
  redis.call('SET', k, '1', 'NX', 'EXAT', at)
  redis.call('EXPIREAT', k, at, 'GT')
end
local function revoke_family(p, id, now, fam_at)
  local fam = p .. 'family:' .. id
  local acc = fam .. ':access'
  local list = redis.call('ZRANGE', acc, now, '+inf', 'BYSCORE', 'WITHSCORES')
  for i = 1, #list, 2 do
    revoke(p .. 'revoked:' .. list[i], tonumber(list[i + 1]) + 1)
  end
  redis.call('HSET', fam, 'revoked', '1')
  redis.call('EXPIREAT', fam, fam_at, 'NX')
  redis.call('DEL', acc)
end
";

/// KEYS: revoked key. ARGV: until + 1.
const LUA_REVOKE: &str = r"
revoke(KEYS[1], tonumber(ARGV[1]))
return 1
";

/// KEYS: token, family. ARGV: family id, sub, scope, exp.
const LUA_ISSUE: &str = r"
local exp = tonumber(ARGV[4])
redis.call('HSET', KEYS[1], 'family', ARGV[1], 'sub', ARGV[2], 'scope', ARGV[3], 'exp', exp, 'spent', '0')
redis.call('EXPIREAT', KEYS[1], exp + 1)
redis.call('HSETNX', KEYS[2], 'revoked', '0')
extend(KEYS[2], exp + 1)
return 1
";

/// KEYS: old token, new token. ARGV: prefix, new exp, now.
/// Returns {'rotated', family, sub, scope, exp} | {'reused'} | {'invalid'}.
const LUA_ROTATE: &str = r"
local t = redis.call('HMGET', KEYS[1], 'family', 'sub', 'scope', 'exp', 'spent')
if not t[1] then return {'invalid'} end
local now = tonumber(ARGV[3])
local old_exp = tonumber(t[4])
if old_exp < now then return {'invalid'} end
local fam = ARGV[1] .. 'family:' .. t[1]
if redis.call('HGET', fam, 'revoked') == '1' then return {'invalid'} end
if t[5] == '1' then
  revoke_family(ARGV[1], t[1], now, old_exp + 1)
  return {'reused'}
end
-- A tombstone: rewritten whole, so it is a small encoding again.
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'family', t[1], 'exp', t[4], 'spent', '1')
redis.call('EXPIREAT', KEYS[1], old_exp + 1)
local exp = tonumber(ARGV[2])
redis.call('HSET', KEYS[2], 'family', t[1], 'sub', t[2], 'scope', t[3], 'exp', exp, 'spent', '0')
redis.call('EXPIREAT', KEYS[2], exp + 1)
redis.call('HSETNX', fam, 'revoked', '0')
extend(fam, exp + 1)
return {'rotated', t[1], t[2], t[3], t[4]}
";

/// KEYS: family, family access set. ARGV: prefix, access key, exp, now, most kept.
const LUA_ADD_ACCESS: &str = r"
local r = redis.call('HGET', KEYS[1], 'revoked')
if not r then return 0 end
local exp = tonumber(ARGV[3])
if r == '1' then
  revoke(ARGV[1] .. 'revoked:' .. ARGV[2], exp + 1)
  return 1
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[4])
redis.call('ZADD', KEYS[2], exp, ARGV[2])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1 - tonumber(ARGV[5]))
extend(KEYS[2], exp + 1)
return 0
";

/// KEYS: token. ARGV: prefix, now. Returns 1 when the family was revoked.
const LUA_REFRESH_REVOKE: &str = r"
local t = redis.call('HMGET', KEYS[1], 'family', 'exp')
local now = tonumber(ARGV[2])
if not t[1] or tonumber(t[2]) < now then return 0 end
revoke_family(ARGV[1], t[1], now, tonumber(t[2]) + 1)
return 1
";

/// KEYS: counter. ARGV: window (ms). Returns {count, pttl}.
const LUA_COUNTER_HIT: &str = r"
local n = redis.call('INCR', KEYS[1])
redis.call('PEXPIRE', KEYS[1], ARGV[1], 'NX')
return {n, redis.call('PTTL', KEYS[1])}
";

/// KEYS: counter. Returns {count, pttl}, or nil when no window is open.
const LUA_COUNTER_GET: &str = r"
local n = redis.call('GET', KEYS[1])
if not n then return false end
return {tonumber(n), redis.call('PTTL', KEYS[1])}
";

struct Scripts {
    revoke: Script,
    issue: Script,
    rotate: Script,
    add_access: Script,
    refresh_revoke: Script,
    counter_hit: Script,
    counter_get: Script,
}

impl Scripts {
    fn new() -> Scripts {
        let with = |body: &str| Script::new(&format!("{LUA_PRELUDE}{body}"));
        Scripts {
            revoke: with(LUA_REVOKE),
            issue: with(LUA_ISSUE),
            rotate: with(LUA_ROTATE),
            add_access: with(LUA_ADD_ACCESS),
            refresh_revoke: with(LUA_REFRESH_REVOKE),
            counter_hit: Script::new(LUA_COUNTER_HIT),
            counter_get: Script::new(LUA_COUNTER_GET),
        }
    }
}

/// Operations whose effect must survive a failover: with `[state] replicas_ack`
/// they are acknowledged by that many replicas (the counters are not: a failover
/// may forget a few failed logins, never a revocation or a spent refresh token).
const DURABLE: &[&str] = &[
    "revoke",
    "refresh_issue",
    "refresh_rotate",
    "family_add_access",
    "refresh_revoke",
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

    fn key(&self, kind: &str, rest: &str) -> String {
        let p = &self.inner.prefix;
        let mut k = String::with_capacity(p.len() + kind.len() + rest.len());
        k.push_str(p);
        k.push_str(kind);
        k.push_str(rest);
        k
    }

    /// The prefix of the keys of the refresh families (and of the revocations their
    /// scripts write): `P` plus, on a cluster, the built-in issuer's tag.
    fn family_prefix(&self) -> String {
        format!("{}{}", self.inner.prefix, self.inner.family_tag.load())
    }

    /// The prefix for the family of access token `key` (`iss jti`): that issuer's tag.
    fn prefix_of(&self, key: &str) -> String {
        if self.inner.link.is_cluster() {
            format!("{}{}", self.inner.prefix, hash_tag(key))
        } else {
            self.inner.prefix.clone()
        }
    }

    fn revoked_key(&self, key: &str) -> String {
        format!("{}revoked:{key}", self.prefix_of(key))
    }

    fn token_key(&self, t: &TokenHash) -> String {
        format!("{}refresh:{}", self.family_prefix(), hex(t))
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

/// The Redis Cluster hash tag of `s` (an issuer, or an `iss jti` key): `{iss}` with
/// `iss` cut at its first space, so a key and its issuer agree; hashed when empty or
/// holding a brace (which would end or void the tag).
fn hash_tag(s: &str) -> String {
    let iss = s.split(' ').next().unwrap_or_default();
    if !iss.is_empty() && !iss.contains(['{', '}']) {
        return format!("{{{iss}}}");
    }
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, iss.as_bytes());
    format!("{{{}}}", hex(&d.as_ref()[..8]))
}

/// Lowercase hex of a digest.
fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 0xf)]));
    }
    s
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
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_url("redis://127.0.0.1:6379/0").is_ok());
        assert!(check_url("rediss://redis.example.com:6380/1").is_ok());
        assert!(check_url("http://x").is_err());
    }

    #[test]
    fn hash_tags() {
        assert_eq!(
            hash_tag("https://auth.example.test"),
            "{https://auth.example.test}"
        );
        // A key and its issuer agree, even when the issuer holds a space.
        assert_eq!(hash_tag("portcullis jti-1"), hash_tag("portcullis"));
        assert_eq!(hash_tag("a b jti-1"), hash_tag("a b"));
        // No brace or empty tag reaches Redis (it would end or void the tag).
        for odd in ["", "x{y", "}x", " jti"] {
            let t = hash_tag(odd);
            assert_eq!(t.len(), 18, "{t}");
            assert_eq!(t.matches(['{', '}']).count(), 2, "{t}");
        }
        assert_eq!(hash_tag("x{y jti"), hash_tag("x{y"));
    }

    #[tokio::test]
    async fn cluster_keys_share_the_issuer_slot() {
        let s = RedisStore::new("redis+cluster://127.0.0.1:1", "P:", None);
        s.set_issuer("https://i");
        assert_eq!(
            s.revoked_key("https://i j1"),
            "P:{https://i}revoked:https://i j1"
        );
        assert_eq!(
            s.token_key(&[0xab; 32]),
            format!("P:{{https://i}}refresh:{}", "ab".repeat(32))
        );
        assert_eq!(s.family_prefix(), "P:{https://i}");
        assert_eq!(s.key("counter:", "login:user:x"), "P:counter:login:user:x");
        // Standalone and Sentinel: the untagged layout of earlier releases.
        let s = RedisStore::new("redis://127.0.0.1:1", "P:", None);
        s.set_issuer("https://i");
        assert_eq!(s.revoked_key("https://i j1"), "P:revoked:https://i j1");
        assert_eq!(s.family_prefix(), "P:");
    }

    #[test]
    fn hex_digits() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
    }

    #[test]
    fn rotation_replies() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert_eq!(rotation(&s(&["reused"])), Ok(Rotation::Reused));
        assert_eq!(rotation(&s(&["invalid"])), Ok(Rotation::Invalid));
        assert!(matches!(
            rotation(&s(&["rotated", "f", "alice", "a b", "42"])),
            Ok(Rotation::Rotated(g)) if g.expires_at == 42 && g.sub == "alice"
        ));
        assert!(rotation(&s(&["rotated", "f"])).is_err());
        assert!(rotation(&s(&[])).is_err());
    }
}
