//! Whole-config unit tests: what `{:?}` of a compiled [`Config`] may show.

use super::load_str;

/// No secret of the config reaches `{:?}`: not the HMAC secret (as text or as the
/// bytes a key holds), the Redis password, a JWKS URL's password, or a private key.
#[test]
fn debug_of_the_compiled_config_shows_no_secret() {
    let hmac = "hmac-secret-that-must-not-leak-0123456789";
    let redis = "redis-password-that-must-not-leak";
    let jwks = "jwks-password-that-must-not-leak";
    let dir = tempfile::tempdir().expect("tempdir");
    let pem = crate::auth::keys::generate_ed25519_pem().expect("key");
    std::fs::write(dir.path().join("signing.pem"), &pem).expect("write key");
    let text = format!(
        r#"[upstreams.app]
url = "echo:"

[[issuers]]
name = "local"
issuer = "local"
secret = "{hmac}"

[[issuers]]
name = "signer"
issuer = "signer"
private_key = "signing.pem"

[[issuers]]
name = "idp"
issuer = "https://idp.test/"
jwks_url = "https://user:{jwks}@idp.test/jwks"

[state]
backend = "redis"
url = "redis://default:{redis}@127.0.0.1:6379/0"

[[routes]]
path = "/**"
upstream = "app"
"#
    );
    let cfg = load_str(&dir.path().join("proxy.toml"), &text).expect("config");
    let shown = format!("{cfg:?}");
    let bytes = format!("{:?}", &hmac.as_bytes()[..8]);
    let bytes = bytes.trim_end_matches(']');
    let key_body = pem.lines().nth(1).expect("pem body");
    for secret in [hmac, redis, jwks, bytes, key_body] {
        assert!(!shown.contains(secret), "`{secret}` in {shown}");
    }
    assert!(shown.contains("[redacted]"), "{shown}");
    // The values are still there for the code that needs them.
    let url = cfg.state.redis_url.as_deref().expect("redis url");
    assert!(url.contains(redis));
    // And the raw section hides them too.
    let raw: super::file::RawState =
        toml::from_str(&format!("url = \"redis://:{redis}@h/0\"")).expect("raw");
    assert!(!format!("{raw:?}").contains(redis));
}

/// `{:?}` of the compiled `[state]` shows no Redis password, whatever the topology
/// (one server, Cluster, Sentinel, with or without TLS), and neither does `{:?}` of
/// the whole config; the URL is still there, whole, for the connection code.
#[test]
fn debug_of_the_state_config_shows_no_redis_password() {
    let pw = "redis-topology-password-that-must-not-leak";
    let dir = tempfile::tempdir().expect("tempdir");
    for url in [
        format!("redis://default:{pw}@127.0.0.1:6379/0"),
        format!("rediss://:{pw}@redis.internal:6380"),
        format!("redis+cluster://user:{pw}@10.0.0.1:7000,10.0.0.2:7000"),
        format!("rediss+cluster://user:{pw}@10.0.0.1:7000"),
        format!("redis+sentinel://:{pw}@s1:26379,s2:26379/mymaster"),
        format!("rediss+sentinel://user:{pw}@s1:26379/mymaster/2"),
    ] {
        let text = format!(
            "[upstreams.app]\nurl = \"echo:\"\n\n[state]\nbackend = \"redis\"\n\
             url = \"{url}\"\nreplicas_ack = 1\n\n[[routes]]\npath = \"/**\"\n\
             access = \"public\"\nupstream = \"app\"\n"
        );
        let cfg = load_str(&dir.path().join("proxy.toml"), &text).expect("config");
        let state = format!("{:?}", cfg.state);
        assert!(!state.contains(pw), "{url}: {state}");
        assert!(state.contains("[redacted]"), "{url}: {state}");
        assert!(state.contains("replicas_ack: 1"), "{url}: {state}");
        assert!(!format!("{cfg:?}").contains(pw), "{url}");
        assert_eq!(cfg.state.redis_url.as_deref(), Some(url.as_str()));
    }
}
