//! Refreshing a session's access token at the provider (SPEC §9, RFC 6749 §6): one
//! refresh per session at a time. Concurrent requests of the session wait for the
//! refresh in flight and take its result; so do requests arriving
//! [`REMEMBER`] after it with the cookie from before it (their refresh token is spent
//! at a provider that rotates them: refreshing again would end the session, the
//! oauth2-proxy#667 race). Keyed by a digest of the refresh token, so a refreshed
//! session's next refresh is a new flight.
//!
//! A refused refresh ends the session; an unreachable provider is a 502 and keeps it.

use super::provider::ProviderError;
use super::session::{now, Session};
use super::Login;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// How long a refresh's result answers requests that bring the old cookie.
pub const REMEMBER: Duration = Duration::from_secs(60);
/// Most refreshes remembered at once (the oldest are forgotten first).
const MAX_REMEMBERED: usize = 10_000;

/// What a refresh came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Refreshed {
    /// The session with its new tokens.
    Renewed(Box<Session>),
    /// The provider refused: the session is over.
    Ended,
    /// The provider could not be reached.
    Unreachable,
}

type Flight = Arc<OnceCell<Refreshed>>;

/// The refreshes in flight and just done.
#[derive(Default)]
pub struct Refresher {
    flights: Mutex<HashMap<[u8; 32], (Instant, Flight)>>,
    /// Refreshes sent to the provider (for tests and the status page).
    pub sent: std::sync::atomic::AtomicU64,
}

fn digest(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Refresher {
    fn flight(&self, key: [u8; 32]) -> Flight {
        let Ok(mut m) = self.flights.lock() else {
            return Arc::default();
        };
        let now = Instant::now();
        if m.len() >= MAX_REMEMBERED {
            m.retain(|_, (at, _)| now.duration_since(*at) < REMEMBER);
        }
        if m.len() >= MAX_REMEMBERED {
            m.clear();
        }
        m.entry(key)
            .and_modify(|e| {
                if now.duration_since(e.0) >= REMEMBER && e.1.initialized() {
                    *e = (now, Arc::default());
                }
            })
            .or_insert_with(|| (now, Arc::default()))
            .1
            .clone()
    }

    /// The session renewed (one provider call however many requests ask at once).
    pub async fn refresh(&self, login: &Login, session: &Session) -> Refreshed {
        let Some(rt) = session.refresh_token.as_deref() else {
            return Refreshed::Ended;
        };
        let flight = self.flight(digest(rt));
        let out = flight
            .get_or_init(|| async {
                self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                renew(login, session, rt).await
            })
            .await
            .clone();
        if out == Refreshed::Unreachable {
            // Let the next request try again.
            if let Ok(mut m) = self.flights.lock() {
                m.remove(&digest(rt));
            }
        }
        out
    }
}

async fn renew(login: &Login, session: &Session, refresh_token: &str) -> Refreshed {
    let answer = login
        .provider
        .token(
            &login.config.client_id,
            login.config.client_secret.as_deref(),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await;
    let tokens = match answer {
        Ok(t) => t,
        Err(ProviderError::Refused(status)) => {
            tracing::info!(status, "refresh refused: session ended");
            return Refreshed::Ended;
        }
        Err(e) => {
            tracing::warn!(error = %e, "refresh failed");
            return Refreshed::Unreachable;
        }
    };
    let at = now();
    let mut s = session.clone();
    s.access_expires_at = tokens.expires_in.map(|e| at.saturating_add(e));
    s.access_token = tokens.access_token.or(s.access_token);
    if let Some(r) = tokens.refresh_token {
        s.refresh_token = Some(r);
    }
    if let Some(scope) = tokens.scope {
        s.scope = scope;
    }
    if let Some(id) = tokens.id_token {
        s.id_token = Some(id);
    }
    Refreshed::Renewed(Box::new(s))
}
