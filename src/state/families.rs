//! The refresh-token families of the in-memory store ([`super::memory::MemoryStore`]):
//! live refresh tokens, tombstones of spent ones, and a record of each access token
//! issued from a family (so it is revoked with the family), all under one cap.
//!
//! Guarantees:
//! - A spent refresh token is a tombstone: its digest, a shared pointer to its family
//!   and its expiry (about 200 bytes with the map and order overhead), whatever the
//!   grant's scopes: a family's user and scopes are stored once, not per token.
//! - Entries (live tokens, tombstones, access records) never exceed the cap. Expired
//!   ones go first; then the oldest of the tombstones and access records; a live token
//!   only when nothing else is left. Each eviction of something unexpired counts in
//!   `portcullis_state_evictions_total{kind="tombstone|access|refresh_token"}`, and
//!   `portcullis_state_entries` is the current count.
//! - Eviction fails closed: an evicted token (live or spent) is unknown, and an unknown
//!   token is refused like any invalid one. What is lost: reuse of an evicted tombstone
//!   no longer revokes its family; an evicted live token's refresh fails (its user logs
//!   in again); an access token whose record was evicted is not revoked with its family
//!   (it still expires at its `exp`, within `access_ttl`).
//! - A family keeps at most [`FAMILY_MAX_ACCESS`] access records (a client that
//!   refreshes when its access token is about to expire holds one or two), so one
//!   client refreshing in a loop fills the cap with its own tombstones, not records.
//! - A family is kept exactly while one of its tokens is (without a token nothing can
//!   revoke it any more).

use super::{RefreshGrant, Rotation, TokenHash};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

/// Access records one family keeps; a new one past this drops the family's oldest.
pub const FAMILY_MAX_ACCESS: usize = 32;

/// Entry count below which no full expiry sweep runs.
const SWEEP_MIN: usize = 1024;

/// A refresh token, live or spent (a tombstone): no user, no scopes.
struct Token {
    family: Arc<str>,
    expires_at: u64,
    /// Position in `live` or `tombs`.
    seq: u64,
    spent: bool,
}

/// An access token issued from a family: its revocation key and `exp`.
struct Access {
    seq: u64,
    key: String,
    exp: u64,
}

struct Family {
    sub: String,
    scope: String,
    revoked: bool,
    /// Tokens (live and spent) of the family in `tokens`.
    tokens: usize,
    /// In `seq` order.
    access: VecDeque<Access>,
}

/// Every family, under a cap. Each operation takes `now` (Unix seconds).
pub struct Families {
    tokens: HashMap<TokenHash, Token>,
    families: HashMap<Arc<str>, Family>,
    /// Insertion order of each kind of entry (oldest first).
    live: BTreeMap<u64, TokenHash>,
    tombs: BTreeMap<u64, TokenHash>,
    access: BTreeMap<u64, Arc<str>>,
    seq: u64,
    cap: usize,
    next_sweep: usize,
}

/// Access tokens to revoke (key, `exp`): those of a family just revoked.
pub type ToRevoke = Vec<(String, u64)>;

impl Families {
    /// Empty, holding at most `cap` entries (at least 1).
    pub fn new(cap: usize) -> Families {
        Families {
            tokens: HashMap::new(),
            families: HashMap::new(),
            live: BTreeMap::new(),
            tombs: BTreeMap::new(),
            access: BTreeMap::new(),
            seq: 0,
            cap: cap.max(1),
            next_sweep: SWEEP_MIN,
        }
    }

    /// Entries held (what the cap counts).
    pub fn len(&self) -> usize {
        self.live.len() + self.tombs.len() + self.access.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// Stores a fresh token; a login starts family `grant.family`.
    pub fn issue(&mut self, token: TokenHash, grant: RefreshGrant, now: u64) {
        self.remove_token(&token);
        let name = match self.families.get_key_value(grant.family.as_str()) {
            Some((k, _)) => k.clone(),
            None => Arc::from(grant.family.as_str()),
        };
        let fam = self.families.entry(name.clone()).or_insert_with(|| Family {
            sub: grant.sub,
            scope: grant.scope,
            revoked: false,
            tokens: 0,
            access: VecDeque::new(),
        });
        fam.tokens += 1;
        self.insert_live(token, name, grant.expires_at);
        self.make_room(now);
    }

    fn insert_live(&mut self, token: TokenHash, family: Arc<str>, expires_at: u64) {
        let seq = self.next_seq();
        self.tokens.insert(
            token,
            Token {
                family,
                expires_at,
                seq,
                spent: false,
            },
        );
        self.live.insert(seq, token);
    }

    /// [`super::Store::refresh_rotate`]; on reuse, also what to revoke.
    pub fn rotate(
        &mut self,
        old: TokenHash,
        new: TokenHash,
        new_expires_at: u64,
        now: u64,
    ) -> (Rotation, ToRevoke) {
        let invalid = (Rotation::Invalid, Vec::new());
        let Some(tok) = self.tokens.get(&old).filter(|t| t.expires_at >= now) else {
            return invalid;
        };
        let (name, spent, expires_at, seq) =
            (tok.family.clone(), tok.spent, tok.expires_at, tok.seq);
        let Some(fam) = self.families.get_mut(&name).filter(|f| !f.revoked) else {
            return invalid;
        };
        if spent {
            fam.revoked = true;
            return (Rotation::Reused, self.take_access(&name));
        }
        let grant = RefreshGrant {
            family: name.to_string(),
            sub: fam.sub.clone(),
            scope: fam.scope.clone(),
            expires_at,
        };
        // The old token becomes a tombstone, the youngest one.
        self.live.remove(&seq);
        let tomb_seq = self.next_seq();
        if let Some(t) = self.tokens.get_mut(&old) {
            t.spent = true;
            t.seq = tomb_seq;
        }
        self.tombs.insert(tomb_seq, old);
        self.remove_token(&new);
        if let Some(f) = self.families.get_mut(&name) {
            f.tokens += 1;
        }
        self.insert_live(new, name, new_expires_at);
        self.make_room(now);
        (Rotation::Rotated(grant), Vec::new())
    }

    /// Records access token `key` (valid until `exp`) in `family`. `true`: the
    /// family is revoked, so the caller revokes `key` at once (nothing is recorded).
    /// An unknown family records nothing.
    pub fn add_access(&mut self, family: &str, key: &str, exp: u64, now: u64) -> bool {
        let Some(name) = self.families.get_key_value(family).map(|(k, _)| k.clone()) else {
            return false;
        };
        let stale: Vec<u64> = self.families.get(&name).map_or_else(Vec::new, |f| {
            f.access
                .iter()
                .filter(|a| a.exp < now)
                .map(|a| a.seq)
                .collect()
        });
        for seq in stale {
            self.remove_access(&name, seq);
        }
        let Some(fam) = self.families.get(&name) else {
            return false;
        };
        if fam.revoked {
            return true;
        }
        if fam.access.len() >= FAMILY_MAX_ACCESS {
            if let Some(seq) = fam.access.front().map(|a| a.seq) {
                self.remove_access(&name, seq);
                crate::metrics::state_eviction("access");
            }
        }
        let seq = self.next_seq();
        if let Some(fam) = self.families.get_mut(&name) {
            fam.access.push_back(Access {
                seq,
                key: key.to_owned(),
                exp,
            });
            self.access.insert(seq, name);
        }
        self.make_room(now);
        false
    }

    /// Revokes the family of `token`; `None` when the token is unknown or expired.
    pub fn revoke(&mut self, token: TokenHash, now: u64) -> Option<ToRevoke> {
        let name = self
            .tokens
            .get(&token)
            .filter(|t| t.expires_at >= now)?
            .family
            .clone();
        self.families.get_mut(&name)?.revoked = true;
        Some(self.take_access(&name))
    }

    /// Empties a family's access records, returning them.
    fn take_access(&mut self, name: &Arc<str>) -> ToRevoke {
        let Some(fam) = self.families.get_mut(name) else {
            return Vec::new();
        };
        let records = std::mem::take(&mut fam.access);
        let list = records
            .into_iter()
            .map(|a| {
                self.access.remove(&a.seq);
                (a.key, a.exp)
            })
            .collect();
        crate::metrics::state_entries(self.len());
        list
    }

    fn remove_access(&mut self, name: &Arc<str>, seq: u64) -> Option<Access> {
        self.access.remove(&seq);
        let fam = self.families.get_mut(name)?;
        let i = fam.access.binary_search_by_key(&seq, |a| a.seq).ok()?;
        fam.access.remove(i)
    }

    fn remove_token(&mut self, token: &TokenHash) -> Option<Token> {
        let t = self.tokens.remove(token)?;
        if t.spent {
            self.tombs.remove(&t.seq);
        } else {
            self.live.remove(&t.seq);
        }
        let last = self.families.get_mut(&t.family).is_some_and(|f| {
            f.tokens = f.tokens.saturating_sub(1);
            f.tokens == 0
        });
        if last {
            if let Some(f) = self.families.remove(&t.family) {
                for a in f.access {
                    self.access.remove(&a.seq);
                }
            }
        }
        Some(t)
    }

    /// Sweeps expired entries as the store grows, then evicts down to the cap.
    fn make_room(&mut self, now: u64) {
        if self.len() >= self.next_sweep {
            self.sweep(now);
        }
        while self.len() > self.cap && self.evict_one(now) {}
        crate::metrics::state_entries(self.len());
    }

    /// Removes every expired entry.
    fn sweep(&mut self, now: u64) {
        let expired: Vec<TokenHash> = self
            .tokens
            .iter()
            .filter(|(_, t)| t.expires_at < now)
            .map(|(h, _)| *h)
            .collect();
        for h in expired {
            self.remove_token(&h);
        }
        let stale: Vec<(Arc<str>, u64)> = self
            .families
            .iter()
            .flat_map(|(name, f)| {
                f.access
                    .iter()
                    .filter(|a| a.exp < now)
                    .map(|a| (name.clone(), a.seq))
            })
            .collect();
        for (name, seq) in stale {
            self.remove_access(&name, seq);
        }
        self.next_sweep = (self.len() * 2).max(SWEEP_MIN);
    }

    /// Removes one entry: an expired one at the front of its order if any, else the
    /// oldest tombstone or access record, else the oldest live token. `false` when
    /// empty.
    fn evict_one(&mut self, now: u64) -> bool {
        let token_exp = |h: &TokenHash| self.tokens.get(h).map_or(0, |t| t.expires_at);
        let tomb = self.tombs.first_key_value().map(|(s, h)| (*s, *h));
        let live = self.live.first_key_value().map(|(s, h)| (*s, *h));
        let access = self.access.first_key_value().map(|(s, f)| {
            let exp = self.families.get(f).and_then(|fam| {
                fam.access
                    .binary_search_by_key(s, |a| a.seq)
                    .ok()
                    .and_then(|i| fam.access.get(i))
                    .map(|a| a.exp)
            });
            (*s, f.clone(), exp.unwrap_or(0))
        });
        let tomb_expired = tomb.is_some_and(|(_, h)| token_exp(&h) < now);
        let live_expired = live.is_some_and(|(_, h)| token_exp(&h) < now);
        // Expired first (that is expiry, not eviction); then the oldest spent entry.
        let (victim, evicted) = match (tomb, access) {
            (Some(t), _) if tomb_expired => (Victim::Tomb(t), false),
            (_, Some(a)) if a.2 < now => (Victim::Access(a.0, a.1), false),
            _ if live_expired => (live.map_or(Victim::None, Victim::Live), false),
            (Some(t), Some(a)) if t.0 < a.0 => (Victim::Tomb(t), true),
            (_, Some(a)) => (Victim::Access(a.0, a.1), true),
            (Some(t), None) => (Victim::Tomb(t), true),
            (None, None) => (live.map_or(Victim::None, Victim::Live), true),
        };
        // Each arm removes the order entry itself too, so the loop always progresses.
        let kind = match victim {
            Victim::Tomb((seq, h)) => {
                self.remove_token(&h);
                self.tombs.remove(&seq);
                "tombstone"
            }
            Victim::Live((seq, h)) => {
                self.remove_token(&h);
                self.live.remove(&seq);
                "refresh_token"
            }
            Victim::Access(seq, name) => {
                self.remove_access(&name, seq);
                "access"
            }
            Victim::None => return false,
        };
        if evicted {
            crate::metrics::state_eviction(kind);
        }
        true
    }
}

/// What [`Families::evict_one`] removes.
enum Victim {
    Tomb((u64, TokenHash)),
    Live((u64, TokenHash)),
    Access(u64, Arc<str>),
    None,
}

#[cfg(test)]
mod tests;
