//! State that outlives a config reload and, with a shared backend, is shared by every
//! replica: revoked access tokens, refresh-token families, failed-login counters.
//!
//! [`Store`] is deliberately small and every operation is one atomic call, so a Redis
//! backend can implement each with one command, one `MULTI` or one Lua script (the
//! rotation). The in-memory backend is [`memory::MemoryStore`]. Nothing stored here
//! is a secret: refresh tokens are kept as SHA-256 digests, counters by key.

pub mod conn;
pub mod connect;
pub mod families;
pub mod memory;
pub mod redis;
pub mod sessions;
pub mod topology;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The future every [`Store`] operation returns.
pub type Fut<'a, T> = Pin<Box<dyn Future<Output = Result<T, StateError>> + Send + 'a>>;

/// SHA-256 of a refresh token: the token itself is never stored.
pub type TokenHash = [u8; 32];

/// Default of `[state] max_entries` (defined with every other default in
/// [`crate::defaults`]).
pub const DEFAULT_MAX_ENTRIES: usize = crate::defaults::STATE_MAX_ENTRIES;
/// Smallest `[state] max_entries` accepted.
pub const MIN_MAX_ENTRIES: usize = 100;

/// `[state] max_entries`: the cap on the memory backend's refresh-token entries
/// (live tokens, tombstones of spent ones, access-token records); see [`families`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxEntries(pub usize);

impl Default for MaxEntries {
    fn default() -> Self {
        MaxEntries(DEFAULT_MAX_ENTRIES)
    }
}

/// The backend could not answer; callers fail closed unless `[state] fail_open`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state backend unavailable: {0}")]
pub struct StateError(pub String);

/// What one refresh token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshGrant {
    /// Family id: every token rotated from one login shares it.
    pub family: String,
    /// The user.
    pub sub: String,
    /// Space-separated scopes granted at login.
    pub scope: String,
    /// When this refresh token expires (Unix seconds).
    pub expires_at: u64,
}

/// The outcome of presenting a refresh token ([`Store::refresh_rotate`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// It was live: it is now spent and the new token is stored in its family.
    Rotated(RefreshGrant),
    /// It was already spent: its whole family has been revoked, with the access
    /// tokens issued from it.
    Reused,
    /// Unknown, expired, or its family was revoked.
    Invalid,
}

/// A failure counter after one more hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Hits in the current window, this one included.
    pub count: u64,
    /// Time left in the window.
    pub retry_after: Duration,
}

/// The state operations the issuer and the request path need.
pub trait Store: Send + Sync + 'static {
    /// Marks access token `key` revoked until `until` (Unix seconds, its `exp`).
    fn revoke<'a>(&'a self, key: &'a str, until: u64) -> Fut<'a, ()>;

    /// Whether access token `key` is revoked.
    fn is_revoked<'a>(&'a self, key: &'a str) -> Fut<'a, bool>;

    /// Stores a fresh refresh token (a login starts a family).
    fn refresh_issue(&self, token: TokenHash, grant: RefreshGrant) -> Fut<'_, ()>;

    /// Atomically: if `old` is live, marks it spent and stores `new` in the same
    /// family, valid until `new_expires_at`; if `old` was spent already, revokes
    /// the family (reuse detection, RFC 9700 §4.14.2).
    fn refresh_rotate(
        &self,
        old: TokenHash,
        new: TokenHash,
        new_expires_at: u64,
        now: u64,
    ) -> Fut<'_, Rotation>;

    /// Records an access token issued from `family` (revoked with the family).
    fn family_add_access<'a>(&'a self, family: &'a str, key: &'a str, exp: u64) -> Fut<'a, ()>;

    /// Revokes the family of refresh token `token` and the access tokens issued
    /// from it; `false` when the token is unknown.
    fn refresh_revoke(&self, token: TokenHash, now: u64) -> Fut<'_, bool>;

    /// Counts one hit on `key`; the window starts at the first hit and lasts `window`.
    fn counter_hit<'a>(&'a self, key: &'a str, window: Duration) -> Fut<'a, Hit>;

    /// The counter of `key` without counting (`None`: no window open).
    fn counter_get<'a>(&'a self, key: &'a str) -> Fut<'a, Option<Hit>>;

    /// Clears `key`.
    fn counter_reset<'a>(&'a self, key: &'a str) -> Fut<'a, ()>;

    /// Stores browser session `key` (sealed by the caller, SPEC §9
    /// `session_store = "state"`) for `ttl`, replacing what was there.
    fn session_put<'a>(&'a self, key: &'a str, value: &'a str, ttl: Duration) -> Fut<'a, ()>;

    /// Browser session `key`, unless deleted or expired.
    fn session_get<'a>(&'a self, key: &'a str) -> Fut<'a, Option<String>>;

    /// Deletes browser session `key` (logout: every copy of its cookie is dead).
    fn session_delete<'a>(&'a self, key: &'a str) -> Fut<'a, ()>;

    /// Whether the backend answered lately (`/readyz`); the memory backend always does.
    fn reachable(&self) -> bool {
        true
    }

    /// The built-in issuer's `iss` (called at every config load): a backend that
    /// shards keys (Redis Cluster) keeps the refresh families in the slot of that
    /// issuer's revocations. A change ends the families started before it.
    fn set_issuer(&self, _iss: &str) {}
}
