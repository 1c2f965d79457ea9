//! The Redis [`Store`] (`[state] backend = "redis"`): revocations, refresh-token
//! families and failed-login counters shared by every replica.
//!
//! One multiplexed connection ([`ConnectionManager`]: concurrent commands are
//! pipelined on it, and it reconnects by itself after a drop) is opened on first use.
//! Every operation is one round trip: a single command, one `MULTI`, or one Lua
//! script (refresh rotation and family revocation), so it is atomic across replicas:
//! a spent refresh token is redeemed at most once however many replicas see it at
//! the same time. Every key carries a TTL (the token's `exp`, the counter's window),
//! so Redis holds only what is live. Requires Redis 7.0+ (`EXPIRE ... NX|GT`);
//! standalone or a primary behind a failover-following address, not Cluster (the scripts touch
//! keys they derive).
//!
//! Guarantees: every command is bounded by [`COMMAND_TIMEOUT`]; a failure is a
//! [`StateError`] (callers fail closed), counted in `portcullis_state_errors_total`;
//! a background ping every [`PING_INTERVAL`] keeps [`Store::reachable`] current for
//! `/readyz` and drives reconnection while no request does. Refresh tokens are
//! stored as SHA-256 digests; no token or password reaches Redis or a log line.
//!
//! Keys (`P` = `[state] key_prefix`):
//! `P revoked:{iss jti}` (string, expires after the token's `exp`),
//! `P refresh:{sha256 hex}` (hash: family, sub, scope, exp, spent; once spent, a
//! tombstone of family, exp and spent only, whatever the scopes),
//! `P family:{id}` (hash: revoked) and `P family:{id}:access` (sorted set of the
//! access tokens issued from the family, scored by `exp`, the latest
//! [`super::families::FAMILY_MAX_ACCESS`] kept), `P counter:{key}`.

use super::{Fut, Hit, RefreshGrant, Rotation, StateError, Store, TokenHash};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{Client, RedisError, RedisResult, Script};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// Deadline of one operation (connecting included), after which it fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline of one connection attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Health ping period while Redis answers.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);
/// Health ping period while it does not (reconnection is attempted as often).
pub const PING_INTERVAL_DOWN: Duration = Duration::from_millis(250);

/// Shared Lua helpers, prepended to the scripts that need them.
/// `extend`: give `key` an expiry at `at`, or push a later one (never shorten).
/// `revoke`: mark access token key `k` revoked until `at`.
/// `revoke_family`: mark family `id` revoked and revoke its live access tokens.
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
  redis.call('HSET', fam, 'revoked', '1')
  redis.call('EXPIREAT', fam, fam_at, 'NX')
  local acc = fam .. ':access'
  local list = redis.call('ZRANGE', acc, now, '+inf', 'BYSCORE', 'WITHSCORES')
  for i = 1, #list, 2 do
    revoke(p .. 'revoked:' .. list[i], tonumber(list[i + 1]) + 1)
  end
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

struct Scripts {
    revoke: Script,
    issue: Script,
    rotate: Script,
    add_access: Script,
    refresh_revoke: Script,
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
        }
    }
}

struct Inner {
    /// `None` when the URL did not parse (config validation prevents it): every
    /// operation fails, closed.
    client: Option<Client>,
    prefix: String,
    conn: OnceLock<ConnectionManager>,
    /// The last ping (or command) reached Redis.
    up: AtomicBool,
    /// The health task runs.
    started: AtomicBool,
    scripts: Scripts,
}

/// The Redis backend.
pub struct RedisStore {
    inner: Arc<Inner>,
}

/// Checks a `[state] url`: `redis://` or `rediss://` (TLS), well formed.
pub fn check_url(url: &str) -> Result<(), String> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        return Err("must start with redis:// or rediss:// (TLS)".into());
    }
    // The parser's message may quote the URL, password included: say it in our words.
    Client::open(url).map(|_| ()).map_err(|_| {
        "not a valid Redis URL (redis[s]://[user:password@]host[:port][/db])".to_owned()
    })
}

impl RedisStore {
    /// A store on `url` with every key under `prefix`. Nothing connects until the
    /// first operation (or the health task, started now when inside a tokio runtime).
    /// With `ca` (PEM), a `rediss://` server is verified against it instead of the
    /// webpki roots.
    pub fn new(url: &str, prefix: &str, ca: Option<&[u8]>) -> RedisStore {
        let client = match ca {
            Some(pem) => Client::build_with_tls(
                url,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.to_vec()),
                },
            ),
            None => Client::open(url),
        };
        let client = match client {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "[state] url unusable: state operations will fail");
                None
            }
        };
        let store = RedisStore {
            inner: Arc::new(Inner {
                client,
                prefix: prefix.to_owned(),
                conn: OnceLock::new(),
                up: AtomicBool::new(false),
                started: AtomicBool::new(false),
                scripts: Scripts::new(),
            }),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            store.inner.start();
        }
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

    fn token_key(&self, t: &TokenHash) -> String {
        self.key("refresh:", &hex(t))
    }

    /// Runs one operation on the connection: bounded by [`COMMAND_TIMEOUT`], errors
    /// counted and turned into [`StateError`].
    async fn run<T, F, Fu>(&self, op: &'static str, f: F) -> Result<T, StateError>
    where
        F: FnOnce(ConnectionManager) -> Fu,
        Fu: Future<Output = RedisResult<T>>,
    {
        let inner = &self.inner;
        let err = match inner.conn() {
            Ok(c) => match tokio::time::timeout(COMMAND_TIMEOUT, f(c)).await {
                Ok(Ok(v)) => {
                    inner.set_up(true);
                    return Ok(v);
                }
                Ok(Err(e)) => e,
                Err(_) => RedisError::from(std::io::Error::from(std::io::ErrorKind::TimedOut)),
            },
            Err(e) => e,
        };
        if err.is_io_error() || err.is_timeout() || err.is_connection_dropped() {
            inner.set_up(false);
        }
        crate::metrics::state_error(op);
        Err(StateError(format!("redis {op}: {err}")))
    }
}

impl Inner {
    /// The connection manager, created on first use (inside the runtime).
    fn conn(self: &Arc<Self>) -> RedisResult<ConnectionManager> {
        if let Some(c) = self.conn.get() {
            return Ok(c.clone());
        }
        let Some(client) = &self.client else {
            return Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "invalid [state] url",
            )));
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            // One attempt per reconnection: the next command or ping starts another,
            // so commands never queue behind a long back-off.
            .set_number_of_retries(0);
        let made = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
        self.start();
        Ok(self.conn.get_or_init(|| made).clone())
    }

    /// Starts the health task once: it holds only a weak reference and ends with
    /// the store.
    fn start(self: &Arc<Self>) {
        if self.started.swap(true, Ordering::Relaxed) {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                let ok = inner.ping().await;
                inner.set_up(ok);
                drop(inner);
                let wait = if ok {
                    PING_INTERVAL
                } else {
                    PING_INTERVAL_DOWN
                };
                tokio::time::sleep(wait).await;
            }
        });
    }

    /// Records whether Redis answered; logs the changes.
    fn set_up(&self, ok: bool) {
        if self.up.load(Ordering::Relaxed) == ok || self.up.swap(ok, Ordering::Relaxed) == ok {
            return;
        }
        if ok {
            tracing::info!("state backend (redis) reachable");
        } else {
            tracing::error!("state backend (redis) unreachable");
        }
    }

    async fn ping(self: &Arc<Self>) -> bool {
        let Ok(mut c) = self.conn() else {
            return false;
        };
        let ping = redis::cmd("PING");
        let fut = ping.query_async::<String>(&mut c);
        let ok = matches!(tokio::time::timeout(COMMAND_TIMEOUT, fut).await, Ok(Ok(_)));
        if !ok {
            crate::metrics::state_error("ping");
        }
        ok
    }
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
            let k = self.key("revoked:", key);
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
            let k = self.key("revoked:", key);
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
            let fk = self.key("family:", &grant.family);
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
            let prefix = &self.inner.prefix;
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
            let fk = self.key("family:", family);
            let ak = format!("{fk}:access");
            let s = &self.inner.scripts.add_access;
            let prefix = &self.inner.prefix;
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
            let s = &self.inner.scripts.refresh_revoke;
            let prefix = &self.inner.prefix;
            self.run("refresh_revoke", |mut c| async move {
                s.key(tk)
                    .arg(prefix)
                    .arg(now)
                    .invoke_async::<i64>(&mut c)
                    .await
            })
            .await
            .map(|n| n == 1)
        })
    }

    fn counter_hit<'a>(&'a self, key: &'a str, window: Duration) -> Fut<'a, Hit> {
        Box::pin(async move {
            let k = self.key("counter:", key);
            let ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1);
            let (count, pttl): (u64, i64) = self
                .run("counter_hit", |mut c| async move {
                    redis::pipe()
                        .atomic()
                        .incr(&k, 1)
                        .cmd("PEXPIRE")
                        .arg(&k)
                        .arg(ms)
                        .arg("NX")
                        .ignore()
                        .pttl(&k)
                        .query_async(&mut c)
                        .await
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
            let (count, pttl): (Option<u64>, i64) = self
                .run("counter_get", |mut c| async move {
                    redis::pipe()
                        .atomic()
                        .get(&k)
                        .pttl(&k)
                        .query_async(&mut c)
                        .await
                })
                .await?;
            // A value means the window is open: Redis expires a key only once `now >
            // when`, so PTTL reads 0 during its last millisecond while GET (and the
            // next INCR) still see it. Report at least 1 ms left then, so a caller
            // never sees "closed" for a window the next hit would still count in.
            Ok(count.map(|count| Hit {
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
        self.inner.up.load(Ordering::Relaxed)
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
