//! The `jti` replay check (RFC 9449 §11.1, SPEC §10): each accepted proof's key and
//! `jti` are counted in the `[state]` backend for as long as the proof could be
//! accepted ([`super::replay_window`]); a second sighting is a replay, on this
//! replica or another one sharing the backend. A backend that cannot answer refuses
//! (503) unless `[state] fail_open`.

use super::{replay_key, replay_window, Checked, ProofError};
use crate::state::Store;
use std::time::Duration;

/// Why a proof's `jti` was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Seen before: a replayed proof.
    Proof(ProofError),
    /// The state backend could not answer (fail closed).
    Unavailable,
}

/// Records the proof's `jti`; refuses one seen within the window.
pub async fn remember(
    store: &dyn Store,
    fail_open: bool,
    proof: &Checked,
    leeway: Duration,
) -> Result<(), Refused> {
    match store
        .counter_hit(&replay_key(proof), replay_window(leeway))
        .await
    {
        Ok(hit) if hit.count <= 1 => Ok(()),
        Ok(_) => Err(Refused::Proof(ProofError::Replayed)),
        Err(e) if fail_open => {
            tracing::warn!(error = %e, "DPoP replay check skipped ([state] fail_open)");
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = %e, "DPoP replay check failed; refusing (fail closed)");
            Err(Refused::Unavailable)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::memory::MemoryStore;

    #[tokio::test]
    async fn second_sighting_is_a_replay() {
        let store = MemoryStore::new();
        let p = Checked {
            jkt: "k".into(),
            jti: "j".into(),
        };
        let l = Duration::from_secs(30);
        assert_eq!(remember(&store, false, &p, l).await, Ok(()));
        assert_eq!(
            remember(&store, false, &p, l).await,
            Err(Refused::Proof(ProofError::Replayed))
        );
        let other = Checked {
            jkt: "k2".into(),
            jti: "j".into(),
        };
        assert_eq!(remember(&store, false, &other, l).await, Ok(()));
    }
}
