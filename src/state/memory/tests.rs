//! The memory store's unit tests.

use super::*;

fn grant(family: &str, expires_at: u64) -> RefreshGrant {
    RefreshGrant {
        family: family.into(),
        sub: "alice".into(),
        scope: "a b".into(),
        expires_at,
    }
}

#[tokio::test]
async fn rotation_and_reuse() {
    let s = MemoryStore::new();
    let now = unix_now();
    s.refresh_issue([1; 32], grant("f", now + 60))
        .await
        .unwrap();
    s.family_add_access("f", "iss jti1", now + 60)
        .await
        .unwrap();
    assert!(matches!(
        s.refresh_rotate([1; 32], [2; 32], now + 60, now).await.unwrap(),
        Rotation::Rotated(g) if g.sub == "alice"
    ));
    // Presenting the spent token again revokes the family and its access tokens.
    assert_eq!(
        s.refresh_rotate([1; 32], [3; 32], now + 60, now)
            .await
            .unwrap(),
        Rotation::Reused
    );
    assert!(s.is_revoked("iss jti1").await.unwrap());
    assert_eq!(
        s.refresh_rotate([2; 32], [4; 32], now + 60, now)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    assert_eq!(
        s.refresh_rotate([9; 32], [5; 32], now + 60, now)
            .await
            .unwrap(),
        Rotation::Invalid
    );
}

#[tokio::test]
async fn expired_and_revoked() {
    let s = MemoryStore::new();
    let now = unix_now();
    s.refresh_issue([1; 32], grant("f", now.saturating_sub(1)))
        .await
        .unwrap();
    assert_eq!(
        s.refresh_rotate([1; 32], [2; 32], now + 60, now)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    s.refresh_issue([3; 32], grant("g", now + 60))
        .await
        .unwrap();
    assert!(s.refresh_revoke([3; 32], now).await.unwrap());
    assert!(!s.refresh_revoke([7; 32], now).await.unwrap());
    assert_eq!(
        s.refresh_rotate([3; 32], [4; 32], now + 60, now)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    s.revoke("old", now.saturating_sub(5)).await.unwrap();
    assert!(!s.is_revoked("old").await.unwrap());
}

/// Under the cap: spent entries (tombstones, access records) go oldest first,
/// live tokens last; what is evicted is refused, never accepted.
#[tokio::test]
async fn eviction_order_under_the_cap() {
    let s = MemoryStore::with_max_entries(MaxEntries(6));
    let now = unix_now();
    // A quiet family: one live token and one access record, both old.
    s.refresh_issue([1; 32], grant("quiet", now + 60))
        .await
        .unwrap();
    s.family_add_access("quiet", "iss q", now + 60)
        .await
        .unwrap();
    // A client refreshing in a loop: [10] -> [11] -> ... -> [20].
    s.refresh_issue([10; 32], grant("busy", now + 60))
        .await
        .unwrap();
    for i in 10..20u8 {
        let r = s.refresh_rotate([i; 32], [i + 1; 32], now + 60, now);
        assert!(matches!(r.await.unwrap(), Rotation::Rotated(_)), "{i}");
        s.family_add_access("busy", &format!("iss b{i}"), now + 60)
            .await
            .unwrap();
        assert!(s.entries() <= 6, "{i}: {}", s.entries());
    }
    assert_eq!(s.entries(), 6);
    // The oldest tombstone was evicted: its reuse is refused (unknown), and
    // revokes nothing.
    assert_eq!(
        s.refresh_rotate([10; 32], [30; 32], now + 60, now)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    assert!(!s.is_revoked("iss b19").await.unwrap());
    // The newest tombstone is kept: its reuse revokes the family, with the
    // access tokens whose records are kept (the newest); the evicted records'
    // tokens are not.
    assert_eq!(
        s.refresh_rotate([19; 32], [31; 32], now + 60, now)
            .await
            .unwrap(),
        Rotation::Reused
    );
    assert!(s.is_revoked("iss b19").await.unwrap());
    assert!(!s.is_revoked("iss b10").await.unwrap());
    assert_eq!(
        s.refresh_rotate([20; 32], [32; 32], now + 60, now)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    // The quiet family lost its old access record, not its live token.
    assert!(matches!(
        s.refresh_rotate([1; 32], [2; 32], now + 60, now).await.unwrap(),
        Rotation::Rotated(g) if g.family == "quiet"
    ));
    assert!(!s.is_revoked("iss q").await.unwrap());
}

/// When only live tokens are left, the oldest live token goes: that session
/// must log in again, nobody else's.
#[tokio::test]
async fn live_tokens_go_last_and_oldest_first() {
    let s = MemoryStore::with_max_entries(MaxEntries(3));
    let now = unix_now();
    for i in 1..=5u8 {
        s.refresh_issue([i; 32], grant(&format!("f{i}"), now + 60))
            .await
            .unwrap();
    }
    assert_eq!(s.entries(), 3);
    for (i, kept) in [(1, false), (2, false), (3, true), (4, true), (5, true)] {
        let r = s
            .refresh_rotate([i; 32], [100 + i; 32], now + 60, now)
            .await
            .unwrap();
        assert_eq!(matches!(r, Rotation::Rotated(_)), kept, "{i}");
    }
}

#[tokio::test(start_paused = true)]
async fn counters_window() {
    let s = MemoryStore::new();
    let w = Duration::from_secs(60);
    for n in 1..=3 {
        assert_eq!(s.counter_hit("k", w).await.unwrap().count, n);
    }
    tokio::time::advance(Duration::from_secs(30)).await;
    let h = s.counter_hit("k", w).await.unwrap();
    assert_eq!(h.count, 4);
    assert_eq!(h.retry_after, Duration::from_secs(30));
    assert_eq!(s.counter_get("k").await.unwrap(), Some(h));
    tokio::time::advance(Duration::from_secs(31)).await;
    assert_eq!(s.counter_get("k").await.unwrap(), None);
    assert_eq!(s.counter_hit("k", w).await.unwrap().count, 1);
    s.counter_reset("k").await.unwrap();
    assert_eq!(s.counter_hit("k", w).await.unwrap().count, 1);
}
