//! The Lua scripts of the Redis store: each operation that must be atomic across
//! replicas (refresh rotation, family revocation, ...) is one script, so it runs in
//! one round trip and no other client sees it half done. Which keys each one takes
//! is written above it (`KEYS`, `ARGV`); the key layout is [`super::keys`]'s.

use redis::Script;

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

pub(super) struct Scripts {
    pub(super) revoke: Script,
    pub(super) issue: Script,
    pub(super) rotate: Script,
    pub(super) add_access: Script,
    pub(super) refresh_revoke: Script,
    pub(super) counter_hit: Script,
    pub(super) counter_get: Script,
}

impl Scripts {
    pub(super) fn new() -> Scripts {
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
