//! What the smuggling guard shares with the connection task and the service: which
//! request (by index on the connection) is the stand-in for a refused head, the
//! answer to a request that may switch protocols.

use super::Refusal;
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Waker};

/// Shared between the guard, the connection task and the service.
#[derive(Debug)]
pub struct Verdict {
    /// Index of the first refused request (`u32::MAX`: none).
    refused_at: AtomicU32,
    /// [`Refusal::code`] of it.
    refused_why: AtomicU8,
    /// Requests the service has been called for.
    calls: AtomicU32,
    pub(super) upgrade: Mutex<UpgradeSlot>,
}

#[derive(Debug, Default)]
pub(super) struct UpgradeSlot {
    /// The answer to request `.0`: whether it switched protocols.
    pub(super) answer: Option<(u32, bool)>,
    /// The request the guard waits on, and its task.
    waiting: Option<(u32, Waker)>,
}

impl Verdict {
    /// The index (from 0) of the request the service is now called for; call once
    /// per request, in order (HTTP/1.1 requests are served in order).
    pub fn next_request(&self) -> u32 {
        self.calls.fetch_add(1, Ordering::Relaxed)
    }

    /// Whether request `n` of this connection is the stand-in for a refused head (or
    /// comes after one): the service answers it with this refusal.
    pub fn refusal(&self, n: u32) -> Option<Refusal> {
        if n < self.refused_at.load(Ordering::Acquire) {
            return None;
        }
        Some(match self.refused_why.load(Ordering::Relaxed) {
            2 => Refusal::TooLarge,
            3 => Refusal::UriTooLong,
            _ => Refusal::BadRequest,
        })
    }

    pub(super) fn refuse(&self, n: u32, why: Refusal) {
        if n < self.refused_at.load(Ordering::Relaxed) {
            self.refused_why.store(why.code(), Ordering::Relaxed);
            self.refused_at.store(n, Ordering::Release);
        }
    }

    /// Reports the answer to request `n`, which asked to upgrade ([`wants_upgrade`]):
    /// `switched` when it is `101` (or `2xx` to CONNECT), so hyper hands the
    /// connection over. The guard holds the bytes after such a request until then.
    pub fn answer_upgrade(&self, n: u32, switched: bool) {
        let waker = {
            let mut slot = self.upgrade.lock().unwrap_or_else(PoisonError::into_inner);
            slot.answer = Some((n, switched));
            slot.waiting.take()
        };
        if let Some((_, w)) = waker {
            w.wake();
        }
    }

    /// The request whose upgrade answer the guard is waiting for, if any.
    pub fn awaiting_upgrade(&self) -> Option<u32> {
        let slot = self.upgrade.lock().unwrap_or_else(PoisonError::into_inner);
        slot.waiting.as_ref().map(|(n, _)| *n)
    }

    /// The answer to request `n` if known; otherwise `cx` is woken when it comes.
    pub(super) fn upgrade_answer(&self, n: u32, cx: &Context<'_>) -> Option<bool> {
        let mut slot = self.upgrade.lock().unwrap_or_else(PoisonError::into_inner);
        match slot.answer {
            Some((m, switched)) if m == n => Some(switched),
            _ => {
                slot.waiting = Some((n, cx.waker().clone()));
                None
            }
        }
    }
}

/// Whether hyper prepares a protocol switch for `req` (its `wants_upgrade`): the
/// service reports the answer to such a request with [`Verdict::answer_upgrade`].
pub fn wants_upgrade<B>(req: &http::Request<B>) -> bool {
    if req.headers().contains_key(http::header::UPGRADE) {
        req.version() == http::Version::HTTP_11
    } else {
        req.method() == http::Method::CONNECT
    }
}

impl Verdict {
    pub(super) fn new() -> Self {
        Verdict {
            refused_at: AtomicU32::new(u32::MAX),
            refused_why: AtomicU8::new(0),
            calls: AtomicU32::new(0),
            upgrade: Mutex::new(UpgradeSlot::default()),
        }
    }
}
