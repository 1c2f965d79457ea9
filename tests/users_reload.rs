//! A user disabled or removed in `users.toml` loses access at the next request after
//! the reload (issue 16 point 2, SPEC §5), on the real binary: an access token of the
//! built-in issuer that was accepted (and cached) before is refused with 401
//! `Could not validate credentials` / `error="invalid_token"` on every request after
//! SIGHUP, verified-token cache hits included; the user's refresh token mints nothing;
//! another user, and another issuer's token with the same `sub`, are unaffected. With
//! two replicas sharing Redis state and one users file, each replica refuses from its
//! own reload on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::redis::Redis;
use support::{Proxy, Reply};

/// The built-in issuer's `iss`.
const LOCAL_ISS: &str = "https://auth.example.test";

/// `users.toml`: johndoe (disabled as asked, or left out) and alice, both with the
/// password `secret` (bcrypt cost 4: the test is about access, not hashing cost).
fn users_toml(johndoe: Option<bool>) -> String {
    let hash = portcullis::password::hash_password(b"secret", false, 4).unwrap();
    let john = johndoe.map_or_else(String::new, |disabled| {
        format!(
            "[users.johndoe]\npassword_hash = \"{hash}\"\ndisabled = {disabled}\n\
             scopes = [\"me\"]\n\n"
        )
    });
    format!("{john}[users.alice]\npassword_hash = \"{hash}\"\nscopes = [\"me\"]\n")
}

/// Replaces the users file atomically (write + rename), as an editor or a
/// ConfigMap update does.
fn write_users(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// One portcullis process and its admin listener.
struct Replica {
    proxy: Proxy,
    admin: SocketAddr,
}

/// The shared files of a deployment: the Ed25519 signing key and the users file.
struct Files {
    dir: tempfile::TempDir,
    pem: String,
}

impl Files {
    fn new() -> Files {
        portcullis::install_crypto_providers();
        let dir = tempfile::tempdir().unwrap();
        let pem = portcullis::auth::keys::generate_ed25519_pem().unwrap();
        let f = Files { dir, pem };
        write_users(&f.users(), &users_toml(Some(false)));
        f
    }

    fn users(&self) -> PathBuf {
        self.dir.path().join("users.toml")
    }
}

impl Replica {
    /// The built-in issuer (signing key in the replica's dir, users file shared),
    /// the HS256 test issuer as the "external IdP", `state` lines, one protected
    /// route to the `echo:` upstream, and an admin listener.
    async fn start(files: &Files, state: &str) -> Replica {
        let users = files.users().display().to_string();
        let admin_port = Mutex::new(0u16);
        let proxy = Proxy::builder()
            .file("signing.pem", &files.pem)
            .start_with(|addr| {
                let admin = support::free_port();
                *admin_port.lock().unwrap() = admin;
                format!(
                    "[server]\nlisten = \"{addr}\"\n\n\
                     [admin]\nlisten = \"127.0.0.1:{admin}\"\n\n{state}\n\
                     [upstreams.app]\nurl = \"echo:\"\n\n\
                     [[issuers]]\nname = \"local\"\nissuer = \"{LOCAL_ISS}\"\n\
                     private_key = \"signing.pem\"\nkid = \"k1\"\n\n{}\n\
                     [token_endpoint]\nissuer = \"local\"\nusers = {users:?}\n\n\
                     [[routes]]\nname = \"rest\"\npath = \"/**\"\nupstream = \"app\"\n",
                    support::hs_issuer()
                )
            })
            .await;
        let admin = SocketAddr::from(([127, 0, 0, 1], *admin_port.lock().unwrap()));
        Replica { proxy, admin }
    }

    async fn post_token(&self, form: &[(&str, &str)]) -> (u16, Value) {
        let r = support::http_client()
            .post(self.proxy.url("/token"))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }

    /// A password login: the status and the body.
    async fn login(&self, user: &str) -> (u16, Value) {
        self.post_token(&[
            ("grant_type", "password"),
            ("username", user),
            ("password", "secret"),
        ])
        .await
    }

    /// A login that must succeed: (access token, refresh token).
    async fn tokens(&self, user: &str) -> (String, String) {
        let (status, body) = self.login(user).await;
        assert_eq!(status, 200, "login of {user}: {body}");
        let field = |k: &str| body[k].as_str().unwrap().to_owned();
        (field("access_token"), field("refresh_token"))
    }

    async fn refresh(&self, token: &str) -> (u16, Value) {
        self.post_token(&[("grant_type", "refresh_token"), ("refresh_token", token)])
            .await
    }

    async fn get(&self, token: &str) -> Reply {
        self.proxy.get("/users/me/", Some(token)).await
    }

    /// A counter of the admin `/metrics` (summed over its label sets).
    async fn counter(&self, series: &str) -> f64 {
        let text = support::http_client()
            .get(format!("http://{}/metrics", self.admin))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(series))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// SIGHUP, then waits until the reload has been applied.
    async fn reload(&self) {
        let series = "portcullis_reloads_total{result=\"ok\"}";
        let before = self.counter(series).await;
        self.proxy.signal("HUP");
        let deadline = Instant::now() + support::TIMEOUT;
        while self.counter(series).await <= before {
            assert!(
                Instant::now() < deadline,
                "no reload: {}",
                self.proxy.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `token` is refused as SPEC §5 says, twice: the second time from the
    /// verified-token cache (the hit counter proves it).
    async fn assert_refused(&self, token: &str) {
        self.get(token).await.assert_invalid_token();
        let hits = self.counter("portcullis_token_cache_hits_total").await;
        self.get(token).await.assert_invalid_token();
        assert!(
            self.counter("portcullis_token_cache_hits_total").await > hits,
            "the second refusal was no cache hit"
        );
    }

    /// `token` is accepted twice (the second time it is served from the cache).
    async fn assert_accepted(&self, token: &str) {
        for _ in 0..2 {
            self.get(token).await.assert_status(200);
        }
    }
}

fn invalid_grant(detail: &str) -> Value {
    json!({"detail": detail, "error": "invalid_grant"})
}

/// Logs johndoe and alice in, uses their tokens (and an external token for `sub`
/// johndoe), rewrites the users file with `johndoe`, reloads, and checks what
/// johndoe, alice and the external token get then. Returns johndoe's refresh token.
async fn lose_access(johndoe: Option<bool>) -> (Replica, String) {
    let files = Files::new();
    let p = Replica::start(&files, "").await;
    let (john, john_refresh) = p.tokens("johndoe").await;
    let (alice, alice_refresh) = p.tokens("alice").await;
    let external = support::token("johndoe", json!({}));
    for t in [&john, &alice, &external] {
        p.assert_accepted(t).await;
    }

    write_users(&files.users(), &users_toml(johndoe));
    p.reload().await;

    p.assert_refused(&john).await;
    // Every route: a path no request took before is refused too.
    p.proxy
        .get("/items/elsewhere", Some(&john))
        .await
        .assert_invalid_token();
    // Unaffected: the other user (tokens and refresh) and the other issuer.
    p.assert_accepted(&alice).await;
    p.assert_accepted(&external).await;
    let (status, body) = p.refresh(&alice_refresh).await;
    assert_eq!(status, 200, "alice's refresh: {body}");
    (p, john_refresh)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_disabled_in_users_toml_loses_access_at_the_reload() {
    let (p, john_refresh) = lose_access(Some(true)).await;
    assert_eq!(
        p.refresh(&john_refresh).await,
        (400, invalid_grant("Inactive user"))
    );
    assert_eq!(
        p.login("johndoe").await,
        (400, invalid_grant("Inactive user"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_removed_from_users_toml_loses_access_at_the_reload() {
    let (p, john_refresh) = lose_access(None).await;
    assert_eq!(
        p.refresh(&john_refresh).await,
        (400, invalid_grant("Invalid refresh token"))
    );
    let (status, body) = p.login("johndoe").await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body, invalid_grant("Incorrect username or password"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_replica_on_redis_refuses_after_its_own_reload() {
    let redis = Redis::start();
    let files = Files::new();
    let state = format!("[state]\nbackend = \"redis\"\nurl = \"{}\"\n", redis.url());
    let a = Replica::start(&files, &state).await;
    let b = Replica::start(&files, &state).await;
    let (john, john_refresh) = a.tokens("johndoe").await;
    let (alice, _) = b.tokens("alice").await;
    for r in [&a, &b] {
        r.assert_accepted(&john).await;
        r.assert_accepted(&alice).await;
    }

    write_users(&files.users(), &users_toml(Some(true)));
    a.reload().await;
    a.assert_refused(&john).await;
    b.reload().await;
    b.assert_refused(&john).await;
    for r in [&a, &b] {
        r.assert_accepted(&alice).await;
    }
    // A refresh token issued by A, redeemed at B: refused by B's users file.
    assert_eq!(
        b.refresh(&john_refresh).await,
        (400, invalid_grant("Inactive user"))
    );
}
