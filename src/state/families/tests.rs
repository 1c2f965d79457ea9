use super::*;

fn grant(family: &str, expires_at: u64) -> RefreshGrant {
    RefreshGrant {
        family: family.into(),
        sub: "alice".into(),
        scope: "a ".repeat(2000),
        expires_at,
    }
}

impl Families {
    /// The internal indexes agree with each other.
    fn check(&self) {
        assert_eq!(self.tokens.len(), self.live.len() + self.tombs.len());
        for (h, t) in &self.tokens {
            let order = if t.spent { &self.tombs } else { &self.live };
            assert_eq!(order.get(&t.seq), Some(h));
        }
        let mut records = 0;
        for (name, f) in &self.families {
            let n = self.tokens.values().filter(|t| t.family == *name).count();
            assert_eq!(f.tokens, n);
            assert!(n > 0, "a family without tokens is kept");
            assert!(f.access.len() <= FAMILY_MAX_ACCESS);
            for a in &f.access {
                assert_eq!(self.access.get(&a.seq), Some(name));
            }
            records += f.access.len();
        }
        assert_eq!(records, self.access.len());
        assert!(self.len() <= self.cap);
    }
}

/// Random issues, rotations, reuses, records, revocations and expiries: the
/// indexes stay consistent and the cap holds after every step.
#[test]
fn invariants_hold_under_random_operations() {
    let mut f = Families::new(50);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |n: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % n
    };
    let token = |n: u64| {
        let mut t = [0u8; 32];
        t[..8].copy_from_slice(&n.to_le_bytes());
        t
    };
    let mut now = 1000;
    let mut seen = (0, 0);
    let mut made: Vec<u64> = Vec::new();
    for step in 0..5_000u64 {
        now += next(2);
        // An early token, or one made lately (live, or spent by now).
        let recent = made.len().saturating_sub(1 + next(6) as usize);
        let a = match (next(2), made.get(recent)) {
            (0, Some(t)) => *t,
            _ => next(300),
        };
        let fam = format!("f{}", next(40));
        match next(5) {
            0 => {
                f.issue(token(step), grant(&fam, now + next(200)), now);
                made.push(step);
            }
            1 | 2 => match f.rotate(token(a), token(step), now + next(200), now).0 {
                Rotation::Rotated(_) => {
                    seen.0 += 1;
                    made.push(step);
                }
                Rotation::Reused => seen.1 += 1,
                Rotation::Invalid => {}
            },
            3 => {
                let _ = f.add_access(&fam, &format!("iss {step}"), now + next(100), now);
            }
            _ => {
                let _ = f.revoke(token(a), now);
            }
        }
        f.check();
    }
    assert!(seen.0 > 100 && seen.1 > 10, "{seen:?}");
}

#[test]
fn a_tombstone_holds_no_grant() {
    // Digest, family pointer, expiry, order position, flag: no user, no scopes.
    assert!(std::mem::size_of::<Token>() <= 40);
    let mut f = Families::new(100);
    f.issue([1; 32], grant("f", 100), 0);
    let (r, _) = f.rotate([1; 32], [2; 32], 100, 0);
    assert!(matches!(r, Rotation::Rotated(g) if g.scope.len() == 4000));
    f.check();
}

#[test]
fn records_per_family_are_bounded() {
    let mut f = Families::new(1000);
    f.issue([1; 32], grant("f", 100), 0);
    for i in 0..100 {
        assert!(!f.add_access("f", &format!("iss {i}"), 100, 0));
    }
    f.check();
    let revoked = f.revoke([1; 32], 0).unwrap();
    let keys: Vec<&str> = revoked.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys.len(), FAMILY_MAX_ACCESS);
    assert_eq!(keys[0], format!("iss {}", 100 - FAMILY_MAX_ACCESS));
    assert_eq!(keys.last(), Some(&"iss 99"));
    // Revoked: a late record is not kept, the caller revokes it.
    assert!(f.add_access("f", "iss late", 100, 0));
    f.check();
}

#[test]
fn a_family_goes_with_its_last_token() {
    let mut f = Families::new(3);
    f.issue([1; 32], grant("f", 100), 0);
    f.add_access("f", "iss a", 100, 0);
    f.issue([2; 32], grant("g", 100), 0);
    f.issue([3; 32], grant("h", 100), 0);
    // Over the cap: the record goes before any live token.
    assert_eq!(f.len(), 3);
    assert!(f.revoke([1; 32], 0).unwrap().is_empty());
    f.issue([4; 32], grant("i", 100), 0);
    // Then the oldest live token, and its family with it.
    assert!(f.revoke([1; 32], 0).is_none());
    assert!(!f.add_access("f", "iss b", 100, 0));
    assert_eq!(f.families.len(), 3);
    f.check();
}

#[test]
fn expired_entries_go_before_live_ones() {
    let mut f = Families::new(2);
    f.issue([1; 32], grant("old", 10), 0);
    f.issue([2; 32], grant("f", 100), 0);
    f.add_access("f", "iss a", 100, 20);
    // [1] expired at 10: it makes room, not the live record of f.
    assert_eq!(f.len(), 2);
    assert_eq!(f.revoke([2; 32], 20).unwrap(), vec![("iss a".into(), 100)]);
    f.check();
}
