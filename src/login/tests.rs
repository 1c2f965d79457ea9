//! Unit tests of the login front door's pure parts.

use super::*;

#[test]
fn a_state_is_redeemed_once() {
    let u = UsedStates::default();
    let now = session::now();
    assert!(u.first_use("abc", now));
    assert!(!u.first_use("abc", now), "a replayed callback is refused");
    assert!(u.first_use("abd", now));
}

#[test]
fn constant_time_equality() {
    assert!(constant_eq(b"state", b"state"));
    assert!(!constant_eq(b"state", b"statf"));
    assert!(!constant_eq(b"state", b"stat"));
}

#[test]
fn session_expiry_and_refresh_need() {
    let s = Session {
        sid: "id".into(),
        claims: serde_json::Map::new(),
        scope: "openid".into(),
        expires_at: 100,
        access_token: Some("at".into()),
        access_expires_at: Some(50),
        refresh_token: None,
        id_token: None,
    };
    assert!(!s.ended(99));
    assert!(s.ended(100), "session_ttl is absolute");
    assert!(
        !s.needs_refresh(60),
        "no refresh token: nothing to refresh with"
    );
    let s = Session {
        refresh_token: Some("rt".into()),
        ..s
    };
    assert!(!s.needs_refresh(49));
    assert!(s.needs_refresh(50));
}
