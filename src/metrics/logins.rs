//! `portcullis_logins_total{result}`: password logins at the token endpoint, with
//! the same totals kept for the status page. Every result's series exists (at zero)
//! from the moment a token endpoint is configured ([`login_series`]), so the family
//! shows in `/metrics` and a rate over any result is defined before the first login.

use metrics::Counter;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

/// How a password login ended (the `result` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Login {
    /// Right password, active user: tokens issued.
    Ok,
    /// Unknown user or wrong password (401).
    Failed,
    /// Right password, disabled user (400 `Inactive user`).
    Inactive,
    /// Refused while the username or the address is over its failure limit (429):
    /// a lockout.
    RateLimited,
    /// Too many checks in flight from the address (429).
    Busy,
    /// Username or password missing (400).
    BadRequest,
    /// The state backend or the hashing pool could not answer (503).
    Unavailable,
}

impl Login {
    /// Every result, in the order the status page lists them.
    pub const ALL: [Login; 7] = [
        Login::Ok,
        Login::Failed,
        Login::Inactive,
        Login::RateLimited,
        Login::Busy,
        Login::BadRequest,
        Login::Unavailable,
    ];

    /// The `result` label value.
    pub fn label(self) -> &'static str {
        match self {
            Login::Ok => "ok",
            Login::Failed => "failed",
            Login::Inactive => "inactive",
            Login::RateLimited => "rate_limited",
            Login::Busy => "busy",
            Login::BadRequest => "bad_request",
            Login::Unavailable => "unavailable",
        }
    }

    fn index(self) -> usize {
        Login::ALL.iter().position(|l| *l == self).unwrap_or(0)
    }
}

struct Logins {
    totals: [AtomicU64; Login::ALL.len()],
    handles: [Counter; Login::ALL.len()],
}

fn logins() -> &'static Logins {
    static L: OnceLock<Logins> = OnceLock::new();
    L.get_or_init(|| Logins {
        totals: Default::default(),
        handles: Login::ALL
            .map(|l| metrics::counter!("portcullis_logins_total", "result" => l.label())),
    })
}

/// Creates every result's series (at zero, once per process).
pub fn login_series() {
    let _ = logins();
}

/// Counts one password login.
pub fn login(result: Login) {
    let l = logins();
    let i = result.index();
    if let (Some(t), Some(h)) = (l.totals.get(i), l.handles.get(i)) {
        t.fetch_add(1, Ordering::Relaxed);
        h.increment(1);
    }
}

/// Logins per result since the process started, in [`Login::ALL`] order.
pub fn login_totals() -> [(Login, u64); Login::ALL.len()] {
    let l = logins();
    Login::ALL.map(|r| {
        let n = l
            .totals
            .get(r.index())
            .map_or(0, |t| t.load(Ordering::Relaxed));
        (r, n)
    })
}
