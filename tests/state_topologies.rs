//! Shared state on Redis Cluster and Sentinel (issue #22, SPEC §6 `[state]`, §11).
//!
//! Real topologies from Debian's `redis-server` on loopback ports
//! (`support::redis`): a 3-master cluster made by `redis-cli --cluster create`, and
//! a primary with replicas watched by three Sentinels (down after 1 s, failover
//! timeout 5 s). Two portcullis replicas (in-process) on each:
//! - Cluster: a refresh token redeemed once across both replicas under concurrent
//!   presentation, reuse revoking the family on both, revocation seen by the other
//!   replica, login limits shared; the key layout (one hash tag per issuer).
//! - Cluster: the slot holding our keys migrated (`MIGRATING`/`IMPORTING` +
//!   `MIGRATE`) under load, and back: no answer but the expected ones or 503, no
//!   revoked token ever 200.
//! - Sentinel: the primary SIGKILLed under load: no revoked token ever 200, and
//!   logins and revocation work again within the failover plus 5 s, no restart.
//! - Sentinel with `replicas_ack = 1`: a revocation no replica acknowledged is
//!   refused (503), and one acknowledged survives the promotion of a replica
//!   (whereas the primary's word alone is lost with it).
//! - TLS (`rediss+cluster://`, `rediss+sentinel://`) with `ca`; the revocation check's
//!   cost on a cluster beside standalone (printed with `--nocapture`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use portcullis::state::memory::unix_now;
use portcullis::state::redis::RedisStore;
use portcullis::state::{RefreshGrant, Rotation, Store};
use serde_json::Value;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::redis::{Cluster, Redis, Sentinels};
use support::{get_json, login, post_form, refresh, revoke};

/// The FastAPI tutorial's bcrypt hash of "secret" (cost 12).
const HASH: &str = "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW";
/// The built-in issuer's `iss`: its keys share the hash tag `{ISS}`.
const ISS: &str = "https://auth.example.test";
const PREFIX: &str = "pc-test:";

// ---- two portcullis replicas ----------------------------------------------------

/// One portcullis on the shared state (in-process), with its admin listener.
struct Replica {
    proxy: support::Proxy,
}

impl Replica {
    fn url(&self, path: &str) -> String {
        self.proxy.url(path)
    }
}

fn signing_key() -> String {
    portcullis::install_crypto_providers();
    portcullis::auth::keys::generate_ed25519_pem().unwrap()
}

/// A replica on `state_url` (sharing `pem`, the users file and the key prefix with
/// the others), once `/readyz` says 200.
async fn replica(pem: &str, state_url: &str, extra_state: &str) -> Replica {
    let users = format!(
        "[users.johndoe]\npassword_hash = \"{HASH}\"\nscopes = [\"items:read\"]\n\n\
         [users.mallory]\npassword_hash = \"{HASH}\"\nscopes = [\"items:read\"]\n"
    );
    let body = format!(
        "{}\n\
         [upstreams.app]\nurl = \"echo:\"\n\n\
         [[issuers]]\nname = \"local\"\nissuer = \"{ISS}\"\nprivate_key = \"signing.pem\"\n\n\
         [token_endpoint]\nissuer = \"local\"\nusers = \"users.toml\"\n\n\
         [state]\nbackend = \"redis\"\nurl = \"{state_url}\"\nkey_prefix = \"{PREFIX}\"\n{extra_state}\n\
         [[routes]]\nname = \"items\"\npath = \"/items/**\"\nscopes = [\"items:read\"]\nupstream = \"app\"\n",
        support::ADMIN
    );
    let proxy = support::Proxy::builder()
        .file("signing.pem", pem)
        .file("users.toml", users)
        .start(&body)
        .await;
    proxy.wait_ready().await;
    Replica { proxy }
}

/// `GET /items/1` with `token`: status and JSON body.
async fn items(http: &reqwest::Client, r: &str, token: &str) -> (u16, Value) {
    get_json(http, r, "/items/1", token).await
}

fn field(v: &Value, k: &str) -> String {
    v[k].as_str().unwrap_or_default().to_owned()
}

fn assert_revoked(st: u16, body: &Value, what: &str) {
    assert_eq!(st, 401, "{what}: {body}");
    assert_eq!(body["detail"], "Token has been revoked", "{what}");
}

// ---- Cluster: the §5 guarantees across replicas -----------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_shares_refresh_revocation_and_limits() {
    let cluster = Cluster::start(3, false);
    let pem = signing_key();
    let a = replica(&pem, &cluster.url(), "").await;
    let b = replica(&pem, &cluster.url(), "").await;
    let (ua, ub) = (a.url(""), b.url(""));
    let http = support::http_client();

    // One refresh token presented to both replicas at once: redeemed once; the
    // second presentation is a reuse that revokes the family on both.
    for round in 0..3 {
        let (st, body) = login(&http, &ua, "johndoe", "secret").await;
        assert_eq!(st, 200, "{body}");
        let (at, rt) = (field(&body, "access_token"), field(&body, "refresh_token"));
        let ((sa, ba), (sb, bb)) = tokio::join!(refresh(&http, &ua, &rt), refresh(&http, &ub, &rt));
        let mut statuses = [sa, sb];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 400], "round {round}: {ba} {bb}");
        let (won, lost) = if sa == 200 { (ba, bb) } else { (bb, ba) };
        assert_eq!(lost["detail"], "Invalid refresh token");
        assert_eq!(lost["error"], "invalid_grant");
        let (st, _) = refresh(&http, &ub, &field(&won, "refresh_token")).await;
        assert_eq!(
            st, 400,
            "round {round}: the winner's token outlived the reuse"
        );
        for r in [&ua, &ub] {
            for t in [&at, &field(&won, "access_token")] {
                let (st, body) = items(&http, r, t).await;
                assert_revoked(st, &body, "family revoked by the reuse");
            }
        }
    }

    // A revocation through A is seen by B's very next request.
    let (_, body) = login(&http, &ub, "johndoe", "secret").await;
    let at = field(&body, "access_token");
    assert_eq!(items(&http, &ub, &at).await.0, 200);
    assert_eq!(revoke(&http, &ua, &at).await, 200);
    let (st, body) = items(&http, &ub, &at).await;
    assert_revoked(st, &body, "revoked through the other replica");

    // Five failures spread over both replicas are answered 401, then both say 429.
    for i in 0..5 {
        let r = if i % 2 == 0 { &ua } else { &ub };
        let (st, body) = login(&http, r, "mallory", "wrong").await;
        assert_eq!(st, 401, "failure {i}: {body}");
    }
    for r in [&ub, &ua] {
        let (st, body) = login(&http, r, "mallory", "secret").await;
        assert_eq!(st, 429, "{body}");
    }
    assert_eq!(login(&http, &ub, "johndoe", "secret").await.0, 200);

    // The layout: the issuer's revocations and refresh families share one hash tag
    // (so one slot); each counter is a key of its own; nothing else.
    let keys = cluster.keys();
    let tagged = format!("{PREFIX}{{{ISS}}}");
    let ours: Vec<&String> = keys.iter().filter(|k| k.starts_with(&tagged)).collect();
    for kind in ["revoked:", "refresh:", "family:"] {
        assert!(
            ours.iter().any(|k| k[tagged.len()..].starts_with(kind)),
            "no {kind} key under {tagged}: {keys:?}"
        );
    }
    let slots: HashSet<u16> = ours.iter().map(|k| cluster.keyslot(k)).collect();
    assert_eq!(slots.len(), 1, "{slots:?}");
    let counters: Vec<&String> = keys
        .iter()
        .filter(|k| k.starts_with(&format!("{PREFIX}counter:login:")))
        .collect();
    assert!(counters.len() >= 2, "{keys:?}");
    assert_eq!(ours.len() + counters.len(), keys.len(), "{keys:?}");
}

// ---- load while the topology changes ------------------------------------------------

/// What the load saw.
#[derive(Default)]
struct Seen {
    /// Answers that are neither the expected one nor 503.
    unexpected: Vec<String>,
    /// Revoked tokens answered 200 (must stay empty).
    revoked_passed: usize,
    /// When each 503 was answered.
    unavailable: Vec<Instant>,
    /// Requests answered as expected (503 excluded).
    ok: usize,
    /// Revocations answered 200, each checked afterwards.
    revocations: usize,
}

impl Seen {
    fn merge(&mut self, o: Seen) {
        self.unexpected.extend(o.unexpected);
        self.revoked_passed += o.revoked_passed;
        self.unavailable.extend(o.unavailable);
        self.ok += o.ok;
        self.revocations += o.revocations;
    }

    /// Seconds from the first 503 at or after `from` to the last one.
    fn gap_after(&self, from: Instant) -> f64 {
        let after: Vec<&Instant> = self.unavailable.iter().filter(|t| **t >= from).collect();
        match (after.iter().min(), after.iter().max()) {
            (Some(a), Some(b)) => b.duration_since(**a).as_secs_f64(),
            _ => 0.0,
        }
    }
}

/// One client of both replicas until `stop`: log in once, then rotate its refresh
/// token on one replica and use the new access token on the other; every third
/// round revoke the access token and, from then on, check on every round that a
/// revoked token is refused. Bounded: at most `rounds` rounds.
async fn load(urls: [String; 2], w: usize, stop: Arc<AtomicBool>, rounds: usize) -> Seen {
    let http = support::http_client();
    let mut seen = Seen::default();
    let mut rt: Option<String> = None;
    let mut revoked: Vec<String> = Vec::new();
    for i in 0..rounds {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let (p, q) = if (i + w).is_multiple_of(2) {
            (0, 1)
        } else {
            (1, 0)
        };
        let (st, body) = match &rt {
            None => login(&http, &urls[p], "johndoe", "secret").await,
            Some(t) => refresh(&http, &urls[p], t).await,
        };
        let mut at = None;
        match st {
            200 => {
                seen.ok += 1;
                rt = Some(field(&body, "refresh_token"));
                at = Some(field(&body, "access_token"));
            }
            503 => seen.unavailable.push(Instant::now()),
            // A rotation that answered 503 after it had run spent the token: its
            // retry is a reuse, the family ends, and the client logs in again.
            400 if rt.is_some() && body["detail"] == "Invalid refresh token" => rt = None,
            _ => seen.unexpected.push(format!("token {st} {body}")),
        }
        if let Some(at) = at {
            match items(&http, &urls[q], &at).await {
                (200, _) => seen.ok += 1,
                (503, _) => seen.unavailable.push(Instant::now()),
                (st, body) => seen.unexpected.push(format!("items {st} {body}")),
            }
            if i % 3 == 2 {
                match revoke(&http, &urls[q], &at).await {
                    200 => {
                        seen.revocations += 1;
                        revoked.push(at);
                    }
                    503 => seen.unavailable.push(Instant::now()),
                    st => seen.unexpected.push(format!("revoke {st}")),
                }
            }
        }
        if !revoked.is_empty() {
            let t = &revoked[i % revoked.len()];
            match items(&http, &urls[p], t).await {
                (401, b) if b["detail"] == "Token has been revoked" => seen.ok += 1,
                (503, _) => seen.unavailable.push(Instant::now()),
                (200, _) => seen.revoked_passed += 1,
                (st, body) => seen.unexpected.push(format!("revoked {st} {body}")),
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    seen
}

/// `workers` clients of `a` and `b`.
fn start_load(
    a: &Replica,
    b: &Replica,
    workers: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Seen>> {
    (0..workers)
        .map(|w| {
            let urls = [a.url(""), b.url("")];
            tokio::spawn(load(urls, w, stop.clone(), 3_000))
        })
        .collect()
}

async fn finish(tasks: Vec<tokio::task::JoinHandle<Seen>>) -> Seen {
    let mut all = Seen::default();
    for t in tasks {
        all.merge(t.await.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_slot_migration_under_load() {
    let cluster = Arc::new(Cluster::start(3, false));
    let pem = signing_key();
    let a = replica(&pem, &cluster.url(), "").await;
    let b = replica(&pem, &cluster.url(), "").await;
    let slot = cluster.keyslot(&format!("{{{ISS}}}"));
    let home = cluster.owner(slot);
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = start_load(&a, &b, 4, &stop);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // On a loaded machine the first logins take longer: migrate once the slot holds
    // keys (a revocation or a refresh token), not after a fixed time.
    let c = cluster.clone();
    tokio::task::spawn_blocking(move || {
        let port = c.nodes[home].port;
        let count = redis::cmd("CLUSTER")
            .arg("COUNTKEYSINSLOT")
            .arg(slot)
            .clone();
        support::redis::wait_until(Duration::from_secs(60), "no key in the slot", || {
            c.query::<u64>(port, &count).unwrap_or(0) >= 5
        });
    })
    .await
    .unwrap();

    // There and back, ten keys per MIGRATE, 20 ms apart: the slot is half-migrated
    // for most of the load.
    let started = Instant::now();
    let c = cluster.clone();
    let moved = tokio::task::spawn_blocking(move || {
        let away = (home + 1) % 3;
        let there = c.migrate_slot(slot, away, 10, Duration::from_millis(20));
        assert_eq!(c.owner(slot), away);
        std::thread::sleep(Duration::from_millis(500));
        let back = c.migrate_slot(slot, home, 10, Duration::from_millis(20));
        (there, back)
    })
    .await
    .unwrap();
    let migrating = started.elapsed();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = finish(tasks).await;

    assert!(moved.0 > 0 && moved.1 > 0, "no key moved: {moved:?}");
    assert_eq!(cluster.owner(slot), home);
    assert!(seen.unexpected.is_empty(), "{:?}", seen.unexpected);
    assert_eq!(seen.revoked_passed, 0, "a revoked token was answered 200");
    assert!(
        seen.revocations > 0 && seen.ok > 100,
        "too little load: {} ok",
        seen.ok
    );
    // After the moves every operation works again on both replicas.
    let http = support::http_client();
    for r in [&a, &b] {
        let (st, body) = login(&http, &r.url(""), "johndoe", "secret").await;
        assert_eq!(st, 200, "{body}");
        let (st, body) = refresh(&http, &r.url(""), &field(&body, "refresh_token")).await;
        assert_eq!(st, 200, "{body}");
        let at = field(&body, "access_token");
        assert_eq!(revoke(&http, &r.url(""), &at).await, 200);
        let (st, body) = items(&http, &a.url(""), &at).await;
        assert_revoked(st, &body, "after the migration");
    }
    println!(
        "cluster slot migration: {} + {} keys moved in {:.2}s; {} answers ok, {} revocations \
         checked, {} answered 503 ({:.2}s from first to last)",
        moved.0,
        moved.1,
        migrating.as_secs_f64(),
        seen.ok,
        seen.revocations,
        seen.unavailable.len(),
        seen.gap_after(started)
    );
}

// ---- Sentinel: failover ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_under_load() {
    let mut topo = Sentinels::start(2, false);
    let pem = signing_key();
    // Acknowledged by a replica before answered (the setting the README recommends).
    let a = replica(&pem, &topo.url(), "replicas_ack = 1\n").await;
    let b = replica(&pem, &topo.url(), "replicas_ack = 1\n").await;
    let stop = Arc::new(AtomicBool::new(false));
    let tasks = start_load(&a, &b, 3, &stop);
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let old = topo.primary_port().unwrap();
    let killed = Instant::now();
    topo.node(old).kill();
    let new = topo.wait_new_primary(old, Duration::from_secs(30));
    let failover = killed.elapsed();
    assert_ne!(new, old);

    // Within the failover plus 5 s: logins and revocation work again, on both
    // replicas, without restarting them.
    let http = support::http_client();
    let deadline = Instant::now() + Duration::from_secs(5);
    let back = 'wait: loop {
        assert!(
            Instant::now() < deadline,
            "not serving again 5 s after the failover: {}",
            a.proxy.logs()
        );
        for (r, other) in [(&a, &b), (&b, &a)] {
            let (st, body) = login(&http, &r.url(""), "johndoe", "secret").await;
            if st != 200 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue 'wait;
            }
            let at = field(&body, "access_token");
            if revoke(&http, &r.url(""), &at).await != 200 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue 'wait;
            }
            let (st, body) = items(&http, &other.url(""), &at).await;
            assert_revoked(st, &body, "revoked after the failover");
        }
        break killed.elapsed();
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = finish(tasks).await;

    assert!(seen.unexpected.is_empty(), "{:?}", seen.unexpected);
    assert_eq!(seen.revoked_passed, 0, "a revoked token was answered 200");
    assert!(seen.revocations > 0, "no revocation under load");
    println!(
        "sentinel failover: primary SIGKILLed, replica promoted after {:.2}s, logins and \
         revocation back after {:.2}s; {} answers ok, {} revocations checked, {} answered 503 \
         ({:.2}s from first to last)",
        failover.as_secs_f64(),
        back.as_secs_f64(),
        seen.ok,
        seen.revocations,
        seen.unavailable.len(),
        seen.gap_after(killed)
    );
}

/// `replicas_ack = 1`: a revocation is answered 200 only once a replica has it, so
/// the promotion of a replica cannot lose it. With the primary's word alone (B), a
/// revocation made while no replica listened is lost with the primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_keeps_what_replicas_acknowledged() {
    let mut topo = Sentinels::start(2, false);
    let pem = signing_key();
    let a = replica(&pem, &topo.url(), "replicas_ack = 1\n").await;
    let b = replica(&pem, &topo.url(), "").await;
    let (ua, ub) = (a.url(""), b.url(""));
    let http = support::http_client();
    let mut tokens = Vec::new();
    let (st, body) = login(&http, &ua, "johndoe", "secret").await;
    assert_eq!(st, 200, "{body}");
    let mut rt = field(&body, "refresh_token");
    tokens.push(field(&body, "access_token"));
    for _ in 0..2 {
        let (st, body) = refresh(&http, &ua, &rt).await;
        assert_eq!(st, 200, "{body}");
        rt = field(&body, "refresh_token");
        tokens.push(field(&body, "access_token"));
    }
    let [acked, refused, unacked] = [&tokens[0], &tokens[1], &tokens[2]];
    assert_eq!(revoke(&http, &ua, acked).await, 200);

    // No replica listening: A cannot have its revocation acknowledged and says so.
    let old = topo.primary_port().unwrap();
    topo.cut_replicas(old);
    let (st, _, body) = post_form(&http, &format!("{ua}/revoke"), &[("token", refused)]).await;
    assert_eq!(
        st, 503,
        "an unacknowledged revocation was confirmed: {body}"
    );
    assert_eq!(body["detail"], "Service Unavailable");
    // B takes the primary's word.
    assert_eq!(revoke(&http, &ub, unacked).await, 200);
    // The primary dies before any replica saw those writes.
    topo.node(old).kill();
    for n in topo.others(old) {
        n.resume();
    }
    topo.wait_new_primary(old, Duration::from_secs(30));
    // Each replica follows the new primary on its own schedule: wait for both.
    let deadline = Instant::now() + Duration::from_secs(10);
    for r in [&ua, &ub] {
        while items(&http, r, acked).await.0 == 503 {
            assert!(
                Instant::now() < deadline,
                "{r} not serving after the failover"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for r in [&ua, &ub] {
        let (st, body) = items(&http, r, acked).await;
        assert_revoked(st, &body, "acknowledged revocation after the promotion");
    }
    // What replicas_ack prevents: B's confirmed revocation was lost with the primary.
    assert_eq!(items(&http, &ub, unacked).await.0, 200);
    // The refused one was never confirmed; the client's retry now is.
    assert_eq!(items(&http, &ua, refused).await.0, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    while revoke(&http, &ua, refused).await != 200 {
        assert!(
            Instant::now() < deadline,
            "revocation never acknowledged again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (st, body) = items(&http, &ub, refused).await;
    assert_revoked(st, &body, "revoked again after the promotion");
}

// ---- the store on each topology, TLS with `ca` ---------------------------------------

fn grant(family: &str, expires_at: u64) -> RefreshGrant {
    RefreshGrant {
        family: family.into(),
        sub: "alice".into(),
        scope: "a b".into(),
        expires_at,
    }
}

async fn reachable(s: &RedisStore) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !s.reachable() {
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    true
}

/// The operations the issuer uses, on one topology: revocation, rotation and
/// reuse (revoking the family and its access tokens), revocation of a refresh
/// token, one of many concurrent rotations winning, counters.
async fn store_works(s: Arc<RedisStore>) {
    s.set_issuer("iss");
    assert!(reachable(&s).await, "never reached");
    let now = unix_now();
    s.revoke("iss j1", now + 60).await.unwrap();
    assert!(s.is_revoked("iss j1").await.unwrap());
    assert!(!s.is_revoked("iss j2").await.unwrap());
    s.refresh_issue([1; 32], grant("f1", now + 60))
        .await
        .unwrap();
    s.family_add_access("f1", "iss a1", now + 60).await.unwrap();
    let r = s
        .refresh_rotate([1; 32], [2; 32], now + 120, now)
        .await
        .unwrap();
    assert!(
        matches!(r, Rotation::Rotated(ref g) if g.family == "f1"),
        "{r:?}"
    );
    let r = s
        .refresh_rotate([1; 32], [3; 32], now + 120, now)
        .await
        .unwrap();
    assert_eq!(r, Rotation::Reused);
    assert!(s.is_revoked("iss a1").await.unwrap());
    let r = s
        .refresh_rotate([2; 32], [4; 32], now + 120, now)
        .await
        .unwrap();
    assert_eq!(r, Rotation::Invalid);
    s.refresh_issue([5; 32], grant("f2", now + 60))
        .await
        .unwrap();
    s.family_add_access("f2", "iss a2", now + 60).await.unwrap();
    assert!(s.refresh_revoke([5; 32], now).await.unwrap());
    assert!(s.is_revoked("iss a2").await.unwrap());
    assert!(!s.refresh_revoke([6; 32], now).await.unwrap());
    s.refresh_issue([7; 32], grant("f3", now + 60))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.refresh_rotate([7; 32], [100 + i; 32], now + 60, now)
                    .await
            })
        })
        .collect();
    let mut rotated = 0;
    for t in tasks {
        if matches!(t.await.unwrap().unwrap(), Rotation::Rotated(_)) {
            rotated += 1;
        }
    }
    assert_eq!(rotated, 1, "a refresh token was redeemed more than once");
    let w = Duration::from_secs(5);
    assert_eq!(s.counter_hit("k", w).await.unwrap().count, 1);
    assert_eq!(s.counter_hit("k", w).await.unwrap().count, 2);
    assert_eq!(s.counter_get("k").await.unwrap().unwrap().count, 2);
    s.counter_reset("k").await.unwrap();
    assert_eq!(s.counter_get("k").await.unwrap(), None);
}

/// Without the CA the servers are not trusted: every operation fails (closed).
async fn untrusted_fails_closed(url: &str) {
    let s = RedisStore::new(url, "tls:", None);
    assert!(s.is_revoked("iss x").await.is_err());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!s.reachable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_over_tls_with_ca() {
    portcullis::install_crypto_providers();
    let cluster = Cluster::start(3, true);
    let ca = cluster.tls.as_ref().unwrap().ca_pem.clone();
    assert!(cluster.url().starts_with("rediss+cluster://"));
    store_works(Arc::new(RedisStore::new(
        &cluster.url(),
        "tls:",
        Some(ca.as_bytes()),
    )))
    .await;
    untrusted_fails_closed(&cluster.url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_over_tls_with_ca() {
    portcullis::install_crypto_providers();
    let topo = Sentinels::start(1, true);
    let ca = topo.tls.as_ref().unwrap().ca_pem.clone();
    assert!(topo.url().starts_with("rediss+sentinel://"));
    store_works(Arc::new(RedisStore::new(
        &topo.url(),
        "tls:",
        Some(ca.as_bytes()),
    )))
    .await;
    untrusted_fails_closed(&topo.url()).await;
}

// ---- what a revocation check costs ----------------------------------------------------

/// The revocation check (one `EXISTS` per request with a `jti`) on a 3-master
/// cluster and on one server: every answer right under 64 concurrent callers, a
/// revocation made meanwhile seen by the next check; the cost printed (with
/// `--nocapture`; PORTCULLIS_MEASURE_CHECKS sets the count).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_check_cost_cluster_vs_standalone() {
    let n: u32 = std::env::var("PORTCULLIS_MEASURE_CHECKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6_400);
    let redis = Redis::start();
    let cluster = Cluster::start(3, false);
    let stores: [(&str, Arc<RedisStore>); 2] = [
        (
            "standalone",
            Arc::new(RedisStore::new(&redis.url(), "m:", None)),
        ),
        (
            "cluster",
            Arc::new(RedisStore::new(&cluster.url(), "m:", None)),
        ),
    ];
    let until = unix_now() + 600;
    for (name, s) in stores {
        assert!(reachable(&s).await, "{name} never reached");
        let mut lat = Vec::with_capacity(2_000);
        for i in 0..2_000u32 {
            let k = format!("iss{} {i}", i % 7);
            let t = Instant::now();
            assert!(!s.is_revoked(&k).await.unwrap(), "{name}: {k}");
            lat.push(t.elapsed());
        }
        lat.sort_unstable();
        let t = Instant::now();
        let tasks: Vec<_> = (0..64u32)
            .map(|w| {
                let s = s.clone();
                tokio::spawn(async move {
                    let mut wrong = 0u32;
                    // Workers spread over issuers, so over slots (and nodes).
                    let revoked = format!("iss{w} revoked");
                    for i in 0..n / 64 {
                        if i == n / 128 {
                            s.revoke(&revoked, until).await.unwrap();
                        }
                        let k = if i > n / 128 && i % 2 == 0 {
                            revoked.clone()
                        } else {
                            format!("iss{w} {i}")
                        };
                        if s.is_revoked(&k).await.unwrap() != (k == revoked) {
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
