//! Shared state on Redis (issue #8, SPEC §2 `[state]`, §5, §6).
//!
//! Two levels: the [`Store`] contract run against both backends (one suite, so the
//! memory backend keeps the semantics Redis has), and two portcullis replicas
//! (in-process; real processes where a test reads their logs) sharing one real
//! `redis-server` (started on a free loopback port, killed on drop): revocation
//! through A seen by B at once, one refresh token redeemed on A and B at the same time, login limits counted across both, Redis killed (503,
//! `/readyz` 503) and restarted (service resumes, no portcullis restart).
//! `scripts/test-all.sh` installs `redis-server` when missing; the server is
//! `support::redis::Redis` (the Cluster and Sentinel suites are `state_topologies`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use portcullis::state::memory::{unix_now, MemoryStore};
use portcullis::state::redis::RedisStore;
use portcullis::state::{RefreshGrant, Rotation, Store};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::redis::Redis;
use support::{eventually, login, post_form, refresh, Proxy, ProxyBuilder, ADMIN};

/// The FastAPI tutorial's bcrypt hash of "secret" (cost 12).
const HASH: &str = "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW";

// ---- the Store contract, both backends ---------------------------------------

fn grant(family: &str, expires_at: u64) -> RefreshGrant {
    RefreshGrant {
        family: family.into(),
        sub: "alice".into(),
        scope: "a b".into(),
        expires_at,
    }
}

async fn revocations(s: &dyn Store) {
    let now = unix_now();
    s.revoke("iss jti-1", now + 60).await.unwrap();
    assert!(s.is_revoked("iss jti-1").await.unwrap());
    assert!(!s.is_revoked("iss jti-2").await.unwrap());
    assert!(!s.is_revoked("other-iss jti-1").await.unwrap());
    // Already expired: nothing to remember.
    s.revoke("iss old", now - 5).await.unwrap();
    assert!(!s.is_revoked("iss old").await.unwrap());
    // Kept until `exp` (inclusive), then forgotten; a later revocation of the same
    // token extends it, an earlier one never shortens it.
    s.revoke("iss short", now + 1).await.unwrap();
    s.revoke("iss extended", now + 1).await.unwrap();
    s.revoke("iss extended", now + 60).await.unwrap();
    s.revoke("iss kept", now + 60).await.unwrap();
    s.revoke("iss kept", now + 1).await.unwrap();
    assert!(s.is_revoked("iss short").await.unwrap());
    let forgotten = eventually(Duration::from_secs(4), || async {
        !s.is_revoked("iss short").await.unwrap()
    })
    .await;
    assert!(forgotten, "a revocation outlived its exp");
    assert!(unix_now() > now + 1, "forgotten before its exp");
    assert!(s.is_revoked("iss extended").await.unwrap());
    assert!(s.is_revoked("iss kept").await.unwrap());
}

async fn rotation_and_reuse(s: &dyn Store) {
    let now = unix_now();
    s.refresh_issue([1; 32], grant("f1", now + 60))
        .await
        .unwrap();
    s.family_add_access("f1", "iss a1", now + 60).await.unwrap();
    match s
        .refresh_rotate([1; 32], [2; 32], now + 120, now)
        .await
        .unwrap()
    {
        Rotation::Rotated(g) => assert_eq!(g, grant("f1", now + 60)),
        other => panic!("{other:?}"),
    }
    s.family_add_access("f1", "iss a2", now + 60).await.unwrap();
    assert!(!s.is_revoked("iss a1").await.unwrap());
    // The new token carries the family and its own expiry.
    match s
        .refresh_rotate([2; 32], [3; 32], now + 180, now)
        .await
        .unwrap()
    {
        Rotation::Rotated(g) => assert_eq!(g, grant("f1", now + 120)),
        other => panic!("{other:?}"),
    }
    // Presenting a spent token: the family and its access tokens are revoked.
    assert_eq!(
        s.refresh_rotate([1; 32], [9; 32], now + 60, now)
            .await
            .unwrap(),
        Rotation::Reused
    );
    assert!(s.is_revoked("iss a1").await.unwrap());
    assert!(s.is_revoked("iss a2").await.unwrap());
    // The live token of the revoked family is dead; so is the new one of the reuse.
    for t in [[3; 32], [9; 32], [1; 32]] {
        assert_eq!(
            s.refresh_rotate(t, [10; 32], now + 60, now).await.unwrap(),
            Rotation::Invalid
        );
    }
    // An access token issued from the revoked family (a race) is revoked at once.
    s.family_add_access("f1", "iss a3", now + 60).await.unwrap();
    assert!(s.is_revoked("iss a3").await.unwrap());
    // Unknown and expired tokens.
    assert_eq!(
        s.refresh_rotate([42; 32], [43; 32], now + 60, now)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    s.refresh_issue([5; 32], grant("f2", now - 1))
        .await
        .unwrap();
    assert_eq!(
        s.refresh_rotate([5; 32], [6; 32], now + 60, now)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    // An unknown family records nothing and revokes nothing.
    s.family_add_access("nope", "iss a4", now + 60)
        .await
        .unwrap();
    assert!(!s.is_revoked("iss a4").await.unwrap());
}

async fn refresh_revocation(s: &dyn Store) {
    let now = unix_now();
    s.refresh_issue([20; 32], grant("g", now + 60))
        .await
        .unwrap();
    s.family_add_access("g", "iss g1", now + 60).await.unwrap();
    assert!(s.refresh_revoke([20; 32], now).await.unwrap());
    assert!(s.is_revoked("iss g1").await.unwrap());
    assert_eq!(
        s.refresh_rotate([20; 32], [21; 32], now + 60, now)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    assert!(!s.refresh_revoke([22; 32], now).await.unwrap());
    s.refresh_issue([23; 32], grant("h", now - 1))
        .await
        .unwrap();
    assert!(!s.refresh_revoke([23; 32], now).await.unwrap());
}

async fn concurrent_rotation(s: Arc<dyn Store>) {
    let now = unix_now();
    s.refresh_issue([30; 32], grant("c", now + 60))
        .await
        .unwrap();
    s.family_add_access("c", "iss c1", now + 60).await.unwrap();
    let tasks: Vec<_> = (0..24u8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let new = [100 + i; 32];
                (
                    new,
                    s.refresh_rotate([30; 32], new, now + 60, now)
                        .await
                        .unwrap(),
                )
            })
        })
        .collect();
    let mut rotated = Vec::new();
    let mut reused = 0;
    for t in tasks {
        match t.await.unwrap() {
            (new, Rotation::Rotated(_)) => rotated.push(new),
            (_, Rotation::Reused) => reused += 1,
            (_, Rotation::Invalid) => {}
        }
    }
    assert_eq!(
        rotated.len(),
        1,
        "a refresh token was redeemed more than once"
    );
    assert!(reused >= 1);
    // The reuse revoked the family: the winner's new token is dead too.
    assert_eq!(
        s.refresh_rotate(rotated[0], [99; 32], now + 60, now)
            .await
            .unwrap(),
        Rotation::Invalid
    );
    assert!(s.is_revoked("iss c1").await.unwrap());
}

async fn counters(s: &dyn Store) {
    let w = Duration::from_millis(1500);
    for n in 1..=3 {
        let h = s.counter_hit("k", w).await.unwrap();
        assert_eq!(h.count, n);
        assert!(
            h.retry_after <= w && h.retry_after > Duration::ZERO,
            "{h:?}"
        );
    }
    let h = s.counter_get("k").await.unwrap().unwrap();
    assert_eq!(h.count, 3);
    assert_eq!(s.counter_get("other").await.unwrap(), None);
    assert_eq!(s.counter_hit("other", w).await.unwrap().count, 1);
    // The window is fixed from the first hit: later hits do not extend it.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let h = s.counter_hit("k", w).await.unwrap();
    assert_eq!(h.count, 4);
    assert!(h.retry_after <= Duration::from_millis(850), "{h:?}");
    let closed = eventually(Duration::from_secs(3), || async {
        s.counter_get("k").await.unwrap().is_none()
    })
    .await;
    assert!(closed, "the window never closed");
    assert_eq!(s.counter_hit("k", w).await.unwrap().count, 1);
    s.counter_reset("k").await.unwrap();
    assert_eq!(s.counter_get("k").await.unwrap(), None);
    assert_eq!(s.counter_hit("k", w).await.unwrap().count, 1);
    counter_window_edge(s).await;
}

/// `counter_get` and the next `counter_hit` agree on whether a window is still open,
/// down to its last millisecond: polling without pause until the window reads closed
/// must always be followed by a hit that opens a new one. (Redis reports PTTL 0 while
/// the key is still live for that last millisecond.)
async fn counter_window_edge(s: &dyn Store) {
    let w = Duration::from_millis(15);
    for round in 0..40 {
        assert_eq!(
            s.counter_hit("edge", w).await.unwrap().count,
            1,
            "round {round}"
        );
        let deadline = Instant::now() + Duration::from_secs(2);
        while let Some(h) = s.counter_get("edge").await.unwrap() {
            assert!(h.retry_after > Duration::ZERO, "{h:?}");
            assert!(Instant::now() < deadline, "the window never closed");
            tokio::task::yield_now().await;
        }
    }
}

/// A family keeps the latest `FAMILY_MAX_ACCESS` access-token records: those are
/// revoked with it, older ones not (they expire by themselves).
async fn access_records_are_bounded(s: &dyn Store) {
    let now = unix_now();
    let max = portcullis::state::families::FAMILY_MAX_ACCESS as u64;
    s.refresh_issue([50; 32], grant("many", now + 600))
        .await
        .unwrap();
    for i in 0..max + 8 {
        s.family_add_access("many", &format!("iss m{i}"), now + 60 + i)
            .await
            .unwrap();
    }
    assert!(s.refresh_revoke([50; 32], now).await.unwrap());
    for i in 0..max + 8 {
        let revoked = s.is_revoked(&format!("iss m{i}")).await.unwrap();
        assert_eq!(revoked, i >= 8, "record {i}");
    }
}

/// The whole contract, against one store.
async fn store_contract(s: Arc<dyn Store>) {
    assert!(s.reachable());
    rotation_and_reuse(&*s).await;
    access_records_are_bounded(&*s).await;
    refresh_revocation(&*s).await;
    concurrent_rotation(s.clone()).await;
    tokio::join!(revocations(&*s), counters(&*s));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_memory() {
    store_contract(Arc::new(MemoryStore::new())).await;
}

async fn redis_store(redis: &Redis, prefix: &str) -> Arc<dyn Store> {
    let s = Arc::new(RedisStore::new(&redis.url(), prefix, None));
    let up = eventually(Duration::from_secs(5), || async { s.reachable() }).await;
    assert!(up, "never reached redis");
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_redis() {
    let redis = Redis::start();
    let s = redis_store(&redis, "test:").await;
    store_contract(s).await;
    // Two prefixes never see each other's keys.
    let a = redis_store(&redis, "a:").await;
    let b = redis_store(&redis, "b:").await;
    a.revoke("iss x", unix_now() + 60).await.unwrap();
    assert!(!b.is_revoked("iss x").await.unwrap());
}

/// A spent refresh token is a tombstone on Redis too: family, expiry and the spent
/// flag, not the grant's user and scopes (a few hundred bytes whatever the scopes),
/// under a TTL; and its reuse still revokes the family.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spent_refresh_tokens_are_small_tombstones() {
    let redis = Redis::start();
    let s = redis_store(&redis, "tomb:").await;
    let now = unix_now();
    let scope = (0..200)
        .map(|i| format!("scope-number-{i:04}-with-a-long-name"))
        .collect::<Vec<_>>()
        .join(" ");
    let big = RefreshGrant {
        scope: scope.clone(),
        ..grant("fat", now + 600)
    };
    s.refresh_issue([1; 32], big).await.unwrap();
    match s
        .refresh_rotate([1; 32], [2; 32], now + 600, now)
        .await
        .unwrap()
    {
        Rotation::Rotated(g) => assert_eq!(g.scope, scope),
        other => panic!("{other:?}"),
    }
    let client = redis::Client::open(redis.url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("tomb:*")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut tombstones = 0;
    let mut live = 0;
    for k in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut c)
            .await
            .unwrap();
        if kind != "hash" {
            continue;
        }
        let h: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&k)
            .query_async(&mut c)
            .await
            .unwrap();
        let ttl: i64 = redis::cmd("TTL").arg(&k).query_async(&mut c).await.unwrap();
        let bytes: u64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(&k)
            .query_async(&mut c)
            .await
            .unwrap();
        match h.get("spent").map(String::as_str) {
            Some("1") => {
                tombstones += 1;
                let mut fields: Vec<&str> = h.keys().map(String::as_str).collect();
                fields.sort_unstable();
                assert_eq!(fields, ["exp", "family", "spent"], "{k}");
                assert!(bytes < 300, "{k}: a tombstone of {bytes} bytes");
                assert!(ttl > 0 && ttl <= 601, "{k}: TTL {ttl}");
            }
            Some("0") => {
                live += 1;
                assert_eq!(h.get("scope"), Some(&scope), "{k}");
                assert!(bytes > 5000, "{k}: {bytes}");
            }
            _ => {}
        }
    }
    assert_eq!((tombstones, live), (1, 1));
    // The tombstone still detects reuse: the family (the live token too) is revoked.
    assert_eq!(
        s.refresh_rotate([1; 32], [3; 32], now + 600, now)
            .await
            .unwrap(),
        Rotation::Reused
    );
    assert_eq!(
        s.refresh_rotate([2; 32], [4; 32], now + 600, now)
            .await
            .unwrap(),
        Rotation::Invalid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_rediss_with_ca() {
    portcullis::install_crypto_providers();
    let redis = Redis::start_tls();
    let ca = redis.ca_pem().unwrap().to_owned();
    let s: Arc<dyn Store> = Arc::new(RedisStore::new(&redis.url(), "tls:", Some(ca.as_bytes())));
    let up = eventually(Duration::from_secs(5), || async { s.reachable() }).await;
    assert!(up, "never reached redis over TLS");
    store_contract(s).await;
    // Without the CA (webpki roots only) the server is not trusted: fail closed.
    let untrusted = RedisStore::new(&redis.url(), "tls:", None);
    assert!(untrusted.is_revoked("iss x").await.is_err());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!untrusted.reachable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_store_fails_then_recovers() {
    let mut redis = Redis::start();
    let s = redis_store(&redis, "p:").await;
    s.revoke("iss k", unix_now() + 60).await.unwrap();
    redis.kill();
    let t0 = Instant::now();
    assert!(s.is_revoked("iss k").await.is_err());
    assert!(t0.elapsed() < Duration::from_secs(3), "no command timeout");
    assert!(
        eventually(Duration::from_secs(3), || async { !s.reachable() }).await,
        "still reported reachable"
    );
    assert!(s.counter_hit("c", Duration::from_secs(1)).await.is_err());
    redis.restart();
    let back = eventually(Duration::from_secs(5), || async {
        s.is_revoked("iss k").await.is_ok()
    })
    .await;
    assert!(back, "did not reconnect");
    assert!(eventually(Duration::from_secs(3), || async { s.reachable() }).await);
}

// ---- two portcullis replicas on one Redis ------------------------------------

/// What the replicas share: one signing key, one users file.
struct Shared {
    pem: String,
    users: String,
}

fn shared() -> Shared {
    portcullis::install_crypto_providers();
    Shared {
        pem: portcullis::auth::keys::generate_ed25519_pem().unwrap(),
        users: format!(
            "[users.johndoe]\npassword_hash = \"{HASH}\"\nscopes = [\"items:read\", \"me\"]\n\n\
             [users.mallory]\npassword_hash = \"{HASH}\"\nscopes = [\"me\"]\n"
        ),
    }
}

/// A replica on `redis` (in-process, or as `b` says), once `/readyz` says 200.
async fn replica(b: ProxyBuilder, shared: &Shared, redis: &Redis, extra_state: &str) -> Proxy {
    let p = b
        .file("signing.pem", &shared.pem)
        .file("users.toml", &shared.users)
        .start(&format!(
            "{ADMIN}\n\
             [upstreams.app]\nurl = \"echo:\"\n\n\
             [[issuers]]\nname = \"local\"\nissuer = \"https://auth.example.test\"\n\
             private_key = \"signing.pem\"\n\n\
             [token_endpoint]\nissuer = \"local\"\nusers = \"users.toml\"\n\n\
             [state]\nbackend = \"redis\"\nurl = \"{}\"\nkey_prefix = \"pc-test:\"\n{extra_state}\n\
             [[routes]]\nname = \"items\"\npath = \"/items/**\"\nscopes = [\"items:read\"]\nupstream = \"app\"\n",
            redis.url()
        ))
        .await;
    p.wait_ready().await;
    p
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// `GET /items/1` with `token`: status, headers and JSON body.
async fn get(
    http: &reqwest::Client,
    p: &Proxy,
    token: &str,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = http
        .get(p.url("/items/1"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let st = r.status().as_u16();
    let h = r.headers().clone();
    (
        st,
        h,
        serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null),
    )
}

fn field(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_the_other_replica_at_once() {
    let redis = Redis::start();
    let shared = shared();
    // The binary: the test reads the logs.
    let (a, b) = (
        replica(Proxy::builder().binary(), &shared, &redis, "").await,
        replica(Proxy::builder().binary(), &shared, &redis, "").await,
    );
    let http = client();
    let (st, body) = login(&http, &a.base_url(), "johndoe", "secret").await;
    assert_eq!(st, 200, "{body}\n{}", a.logs());
    let at = field(&body, "access_token");
    // B verifies A's token and caches it.
    for _ in 0..3 {
        assert_eq!(get(&http, &b, &at).await.0, 200, "{}", b.logs());
    }
    let (st, _, _) = post_form(&http, &a.url("/revoke"), &[("token", &at)]).await;
    assert_eq!(st, 200);
    // The documented delay is zero: the very next request on B is refused.
    let (st, h, body) = get(&http, &b, &at).await;
    assert_eq!(st, 401, "{body}");
    assert_eq!(body["detail"], "Token has been revoked");
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Bearer error=\"invalid_token\""));
    assert_eq!(get(&http, &a, &at).await.0, 401);
    // Revoking a refresh token on B kills the family's access tokens on A.
    let (_, body) = login(&http, &b.base_url(), "johndoe", "secret").await;
    let (at2, rt2) = (field(&body, "access_token"), field(&body, "refresh_token"));
    assert_eq!(get(&http, &a, &at2).await.0, 200);
    assert_eq!(
        post_form(&http, &b.url("/revoke"), &[("token", &rt2)])
            .await
            .0,
        200
    );
    assert_eq!(
        get(&http, &a, &at2).await.2["detail"],
        "Token has been revoked"
    );
    assert_eq!(refresh(&http, &a.base_url(), &rt2).await.0, 400);
    for p in [&a, &b] {
        assert!(
            !p.logs().contains(&at) && !p.logs().contains(&rt2),
            "token in a log"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refresh_token_redeemed_on_both_replicas_at_once() {
    let redis = Redis::start();
    let shared = shared();
    let (a, b) = (
        replica(Proxy::builder(), &shared, &redis, "").await,
        replica(Proxy::builder(), &shared, &redis, "").await,
    );
    let http = client();
    for round in 0..4 {
        let (st, body) = login(&http, &a.base_url(), "johndoe", "secret").await;
        assert_eq!(st, 200, "{body}");
        let (at, rt) = (field(&body, "access_token"), field(&body, "refresh_token"));
        let (ua, ub) = (a.base_url(), b.base_url());
        let ((sa, ba), (sb, bb)) = tokio::join!(refresh(&http, &ua, &rt), refresh(&http, &ub, &rt));
        let mut statuses = [sa, sb];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 400], "round {round}: {ba} {bb}");
        let (won, lost) = if sa == 200 { (ba, bb) } else { (bb, ba) };
        assert_eq!(lost["detail"], "Invalid refresh token");
        assert_eq!(lost["error"], "invalid_grant");
        // The second redemption was a reuse: the whole family is revoked, the
        // winner's new pair included, on both replicas.
        assert_eq!(
            refresh(&http, &b.base_url(), &field(&won, "refresh_token"))
                .await
                .0,
            400
        );
        for p in [&a, &b] {
            for t in [&at, &field(&won, "access_token")] {
                let (st, _, body) = get(&http, p, t).await;
                assert_eq!(st, 401, "round {round}: {body}");
                assert_eq!(body["detail"], "Token has been revoked");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_counted_across_replicas() {
    let redis = Redis::start();
    let shared = shared();
    let (a, b) = (
        replica(Proxy::builder(), &shared, &redis, "").await,
        replica(Proxy::builder(), &shared, &redis, "").await,
    );
    let http = client();
    // Five failures, spread over both replicas, are answered 401...
    for i in 0..5 {
        let p = if i % 2 == 0 { &a } else { &b };
        let (st, body) = login(&http, &p.base_url(), "mallory", "wrong").await;
        assert_eq!(st, 401, "failure {i}: {body}");
    }
    // ...then both answer 429, even to the right password.
    for p in [&b, &a] {
        let (st, h, body) = post_form(
            &http,
            &p.url("/token"),
            &[("username", "mallory"), ("password", "secret")],
        )
        .await;
        assert_eq!(st, 429, "{body}");
        let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
        assert!(retry > 0 && retry <= 15 * 60, "{retry}");
    }
    // Another user is not affected.
    assert_eq!(
        login(&http, &b.base_url(), "johndoe", "secret").await.0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_fails_closed_and_recovers() {
    let mut redis = Redis::start();
    let shared = shared();
    // `a` is the binary: the test reads its logs and the process's metrics.
    let a = replica(Proxy::builder().binary(), &shared, &redis, "").await;
    let open = replica(Proxy::builder(), &shared, &redis, "fail_open = true\n").await;
    let http = client();
    let (st, body) = login(&http, &a.base_url(), "johndoe", "secret").await;
    assert_eq!(st, 200, "{body}");
    let at = field(&body, "access_token");
    assert_eq!(get(&http, &a, &at).await.0, 200);

    redis.kill();
    // A valid (and cached) token: 503, never the upstream.
    let (st, _, body) = get(&http, &a, &at).await;
    assert_eq!(st, 503, "{body}");
    assert_eq!(body, serde_json::json!({"detail": "Service Unavailable"}));
    // The token endpoint cannot count failures or store refresh tokens: 503.
    let (st, body) = login(&http, &a.base_url(), "johndoe", "secret").await;
    assert_eq!(st, 503, "{body}");
    assert_eq!(body["detail"], "Service Unavailable");
    // Readiness follows within a ping or two.
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.readyz().await != 503 {
        assert!(
            Instant::now() < deadline,
            "/readyz still 200 with redis down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = a
        .admin_get("/metrics")
        .await
        .map(|r| r.text())
        .unwrap_or_default();
    assert!(
        metrics.contains("portcullis_state_errors_total"),
        "{metrics}"
    );
    // With fail_open, the revocation check is skipped (and readiness stays up).
    assert_eq!(get(&http, &open, &at).await.0, 200);
    assert_eq!(open.readyz().await, 200);

    // Same port, new (empty) server: service resumes without a restart.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(&http, &a, &at).await.0 != 200 {
        assert!(Instant::now() < deadline, "did not reconnect: {}", a.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while a.readyz().await != 200 {
        assert!(Instant::now() < deadline, "/readyz did not recover");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        login(&http, &a.base_url(), "johndoe", "secret").await.0,
        200
    );
    assert!(a.logs().contains("unreachable"), "{}", a.logs());
}

/// The revocation check: one Redis round trip per request with a `jti`. Both stores
/// answer every check right under 64 concurrent callers, and a revocation made
/// meanwhile is seen by the next check. Also prints what a check costs (with
/// `--nocapture`; the README's figures come from `--release` with
/// PORTCULLIS_MEASURE_CHECKS=200000).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_checks_under_concurrency() {
    let n: u32 = std::env::var("PORTCULLIS_MEASURE_CHECKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6_400);
    let redis = Redis::start();
    let stores: [(&str, Arc<dyn Store>); 2] = [
        ("memory", Arc::new(MemoryStore::new())),
        ("redis", redis_store(&redis, "m:").await),
    ];
    let until = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    for (name, s) in stores {
        let mut lat = Vec::with_capacity(2_000);
        for i in 0..2_000u32 {
            let k = format!("iss {i}");
            let t = Instant::now();
            assert!(!s.is_revoked(&k).await.unwrap(), "{name}: {k} not revoked");
            lat.push(t.elapsed());
        }
        lat.sort_unstable();
        let t = Instant::now();
        let tasks: Vec<_> = (0..64u32)
            .map(|w| {
                let s = s.clone();
                tokio::spawn(async move {
                    let mut wrong = 0u32;
                    for i in 0..n / 64 {
                        // Every worker revokes one of its keys halfway through.
                        if i == n / 128 {
                            s.revoke(&format!("iss {w} revoked"), until).await.unwrap();
                        }
                        let k = if i > n / 128 && i % 2 == 0 {
                            format!("iss {w} revoked")
                        } else {
                            format!("iss {w} {i}")
                        };
                        let want = k.ends_with("revoked");
                        if s.is_revoked(&k).await.unwrap() != want {
                            wrong += 1;
                        }
                    }
                    wrong
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 0, "{name}: wrong revocation answers");
        }
        let rate = f64::from(n) / t.elapsed().as_secs_f64();
        println!(
            "{name}: sequential p50 {:?} p99 {:?}; 64 concurrent: {rate:.0} checks/s",
            lat[lat.len() / 2],
            lat[lat.len() * 99 / 100]
        );
    }
}
