//! Failed-login rate limits of the password grant (SPEC §5): per username (hashed:
//! counters never hold, or grow with, client input) and per client address, in a
//! fixed window from the first failure, kept in the `[state]` backend.

use super::reply::GrantError;
use super::Endpoint;
use crate::auth::cache::TokenCache;
use std::net::IpAddr;
use std::time::Duration;

/// Failed logins per username in one window before 429.
pub const USER_MAX_FAILURES: u64 = 5;
/// Failed logins per client address in one window before 429.
pub const ADDR_MAX_FAILURES: u64 = 30;
/// The rate-limit window (fixed, from the first failure).
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The two failure counters of one login attempt.
pub(super) struct Limits {
    user: String,
    addr: String,
}

impl Limits {
    pub(super) fn new(username: &str, peer: IpAddr) -> Limits {
        // The username is hashed: counters never hold (or grow with) client input.
        let d = TokenCache::digest(username);
        let hex: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
        Limits {
            user: format!("login:user:{hex}"),
            addr: format!("login:addr:{peer}"),
        }
    }

    /// 429 while either counter is at its limit.
    pub(super) async fn check(&self, ep: &Endpoint) -> Result<(), GrantError> {
        let store = &ep.shared.store;
        let mut wait: Option<Duration> = None;
        for (key, max) in [
            (&self.user, USER_MAX_FAILURES),
            (&self.addr, ADDR_MAX_FAILURES),
        ] {
            if let Some(h) = store.counter_get(key).await? {
                if h.count >= max {
                    wait = Some(wait.map_or(h.retry_after, |w| w.max(h.retry_after)));
                }
            }
        }
        match wait {
            Some(w) => Err(GrantError::RateLimited(w)),
            None => Ok(()),
        }
    }

    /// Counts a failed login against both.
    pub(super) async fn failed(&self, ep: &Endpoint) -> Result<(), GrantError> {
        ep.shared
            .store
            .counter_hit(&self.user, FAILURE_WINDOW)
            .await?;
        ep.shared
            .store
            .counter_hit(&self.addr, FAILURE_WINDOW)
            .await?;
        Ok(())
    }

    /// The password was right: the username starts afresh (the address keeps its
    /// failures: one good account must not launder guesses at others).
    pub(super) async fn succeeded(&self, ep: &Endpoint) -> Result<(), GrantError> {
        ep.shared
            .store
            .counter_reset(&self.user)
            .await
            .map_err(GrantError::from)
    }
}
