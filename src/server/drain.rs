//! Drain (SPEC §6): what a shutdown waits for. Every open connection holds a permit of
//! the `max_connections` semaphore ([`Drain::slot`]) and watches the drain signal
//! ([`Drain::signal`]); on shutdown the signal turns, each connection finishes what is
//! in flight and closes, and [`Drain::finish`] waits, until `[server] shutdown_grace`,
//! for all permits to come back and for the upgraded (WebSocket) connections, which
//! are tasks of [`Drain::upgrades`] (a connection's permit goes back when hyper hands
//! it over; the splicing task then carries it on).

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

/// The open connections of one listener, and the signal that drains them.
pub(super) struct Drain {
    slots: Arc<Semaphore>,
    max: usize,
    signal: watch::Sender<bool>,
    upgrades: TaskTracker,
}

impl Drain {
    /// For at most `max_connections` open at once.
    pub(super) fn new(max_connections: usize) -> Self {
        Drain {
            slots: Arc::new(Semaphore::new(max_connections)),
            max: max_connections,
            signal: watch::Sender::new(false),
            upgrades: TaskTracker::new(),
        }
    }

    /// A connection's permit, once fewer than `max_connections` are open (`None`: the
    /// semaphore is closed, which it never is while serving).
    pub(super) async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().acquire_owned().await.ok()
    }

    /// What a connection watches: `true` once it is to finish up and close.
    pub(super) fn signal(&self) -> watch::Receiver<bool> {
        self.signal.subscribe()
    }

    /// Where upgraded connections are spliced (handed to the handler in
    /// [`ConnInfo::upgrades`](crate::app::ConnInfo::upgrades)).
    pub(super) fn upgrades(&self) -> &TaskTracker {
        &self.upgrades
    }

    /// Tells every connection to finish up, and waits for them until `grace` is over:
    /// `true` when everything finished in time, `false` when the grace period cut
    /// connections off.
    pub(super) async fn finish(self, grace: Duration) -> bool {
        tracing::info!(
            open_connections = self.max - self.slots.available_permits(),
            grace_s = grace.as_secs_f64(),
            "draining"
        );
        self.signal.send_replace(true);
        let deadline = tokio::time::Instant::now() + grace;
        let all = u32::try_from(self.max).unwrap_or(u32::MAX);
        let conns_done = tokio::time::timeout_at(deadline, self.slots.acquire_many(all))
            .await
            .is_ok();
        // Upgrades spawned from here on (a connection still switching) are waited for
        // too: a closed tracker still tracks, `wait` ends once it is closed and empty.
        self.upgrades.close();
        let upgrades_done = tokio::time::timeout_at(deadline, self.upgrades.wait())
            .await
            .is_ok();
        if conns_done && upgrades_done {
            tracing::info!("drained");
            true
        } else {
            tracing::warn!(
                upgraded_open = self.upgrades.len(),
                "shutdown grace period over: cutting off requests still in flight"
            );
            false
        }
    }
}
