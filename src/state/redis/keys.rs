//! The Redis store's keys (`P` = `[state] key_prefix`; `T` = a hash tag, on Redis
//! Cluster only):
//! `P T revoked:{iss jti}` (string, expires after the token's `exp`),
//! `P T refresh:{sha256 hex}` (hash: family, sub, scope, exp, spent; once spent, a
//! tombstone of family, exp and spent only, whatever the scopes),
//! `P T family:{id}` (hash: revoked) and `P T family:{id}:access` (sorted set of the
//! access tokens issued from the family, scored by `exp`, the latest
//! [`crate::state::families::FAMILY_MAX_ACCESS`] kept), `P counter:{key}`.
//! On a cluster every key one script touches must live in one slot: `T` is
//! `{iss}` (the issuer, up to its first space; hashed when it holds a brace), for a
//! revocation that of its token and for the refresh families that of the built-in
//! issuer ([`Store::set_issuer`](crate::state::Store::set_issuer)), so a family's
//! revocation can write its access tokens' revocations in the same script. Counters are one key each (no tag).
//! Scripts that derive keys declare the ones they can (an undeclared key of a slot
//! being migrated cannot be checked by the server), so a slot in migration answers
//! `TRYAGAIN` (retried, then 503) rather than half-running a script. DPoP replay keys
//! (to come) are one `SET NX` key each and need no tag either.
//! Standalone and Sentinel keys carry no tag (the layout of earlier releases).

use super::RedisStore;
use crate::state::TokenHash;

impl RedisStore {
    pub(super) fn key(&self, kind: &str, rest: &str) -> String {
        let p = &self.inner.prefix;
        let mut k = String::with_capacity(p.len() + kind.len() + rest.len());
        k.push_str(p);
        k.push_str(kind);
        k.push_str(rest);
        k
    }

    /// The prefix of the keys of the refresh families (and of the revocations their
    /// scripts write): `P` plus, on a cluster, the built-in issuer's tag.
    pub(super) fn family_prefix(&self) -> String {
        format!("{}{}", self.inner.prefix, self.inner.family_tag.load())
    }

    /// The prefix for the family of access token `key` (`iss jti`): that issuer's tag.
    pub(super) fn prefix_of(&self, key: &str) -> String {
        if self.inner.link.is_cluster() {
            format!("{}{}", self.inner.prefix, hash_tag(key))
        } else {
            self.inner.prefix.clone()
        }
    }

    pub(super) fn revoked_key(&self, key: &str) -> String {
        format!("{}revoked:{key}", self.prefix_of(key))
    }

    pub(super) fn token_key(&self, t: &TokenHash) -> String {
        format!("{}refresh:{}", self.family_prefix(), hex(t))
    }
}

/// The Redis Cluster hash tag of `s` (an issuer, or an `iss jti` key): `{iss}` with
/// `iss` cut at its first space, so a key and its issuer agree; hashed when empty or
/// holding a brace (which would end or void the tag).
pub(super) fn hash_tag(s: &str) -> String {
    let iss = s.split(' ').next().unwrap_or_default();
    if !iss.is_empty() && !iss.contains(['{', '}']) {
        return format!("{{{iss}}}");
    }
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, iss.as_bytes());
    format!("{{{}}}", hex(&d.as_ref()[..8]))
}

/// Lowercase hex of a digest.
pub(super) fn hex(b: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(char::from(DIGITS[usize::from(x >> 4)]));
        s.push(char::from(DIGITS[usize::from(x & 0xf)]));
    }
    s
}
