use super::keys::hex;
use super::*;

#[test]
fn urls() {
    assert!(check_url("redis://127.0.0.1:6379/0").is_ok());
    assert!(check_url("rediss://redis.example.com:6380/1").is_ok());
    assert!(check_url("http://x").is_err());
}

#[test]
fn hash_tags() {
    assert_eq!(
        hash_tag("https://auth.example.test"),
        "{https://auth.example.test}"
    );
    // A key and its issuer agree, even when the issuer holds a space.
    assert_eq!(hash_tag("portcullis jti-1"), hash_tag("portcullis"));
    assert_eq!(hash_tag("a b jti-1"), hash_tag("a b"));
    // No brace or empty tag reaches Redis (it would end or void the tag).
    for odd in ["", "x{y", "}x", " jti"] {
        let t = hash_tag(odd);
        assert_eq!(t.len(), 18, "{t}");
        assert_eq!(t.matches(['{', '}']).count(), 2, "{t}");
    }
    assert_eq!(hash_tag("x{y jti"), hash_tag("x{y"));
}

#[tokio::test]
async fn cluster_keys_share_the_issuer_slot() {
    let s = RedisStore::new("redis+cluster://127.0.0.1:1", "P:", None);
    s.set_issuer("https://i");
    assert_eq!(
        s.revoked_key("https://i j1"),
        "P:{https://i}revoked:https://i j1"
    );
    assert_eq!(
        s.token_key(&[0xab; 32]),
        format!("P:{{https://i}}refresh:{}", "ab".repeat(32))
    );
    assert_eq!(s.family_prefix(), "P:{https://i}");
    assert_eq!(s.key("counter:", "login:user:x"), "P:counter:login:user:x");
    // Standalone and Sentinel: the untagged layout of earlier releases.
    let s = RedisStore::new("redis://127.0.0.1:1", "P:", None);
    s.set_issuer("https://i");
    assert_eq!(s.revoked_key("https://i j1"), "P:revoked:https://i j1");
    assert_eq!(s.family_prefix(), "P:");
}

#[test]
fn hex_digits() {
    assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
}

#[test]
fn rotation_replies() {
    let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert_eq!(rotation(&s(&["reused"])), Ok(Rotation::Reused));
    assert_eq!(rotation(&s(&["invalid"])), Ok(Rotation::Invalid));
    assert!(matches!(
        rotation(&s(&["rotated", "f", "alice", "a b", "42"])),
        Ok(Rotation::Rotated(g)) if g.expires_at == 42 && g.sub == "alice"
    ));
    assert!(rotation(&s(&["rotated", "f"])).is_err());
    assert!(rotation(&s(&[])).is_err());
}
