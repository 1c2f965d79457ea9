//! `[server] trusted_proxies` (SPEC §11) against the real binary: the client address
//! behind a trusted peer is the rightmost untrusted `X-Forwarded-For` entry, used by
//! the login rate limits, the access log's `client` and the `X-Forwarded-For` sent
//! upstream; `X-Forwarded-Proto: https` is believed from such a peer only. Two TCP
//! peers on loopback: 127.0.0.1 (trusted) and 127.0.0.2 (not).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;

const TRUSTED: [u8; 4] = [127, 0, 0, 1];
const UNTRUSTED: [u8; 4] = [127, 0, 0, 2];
/// Failed logins per client address before 429 (SPEC §5).
const ADDR_MAX_FAILURES: usize = 30;

/// A token endpoint (users.toml with a cheap bcrypt hash: many failures are made)
/// and a protected route to `up`, with `127.0.0.1/32` trusted.
async fn proxy(up: &Upstream) -> Proxy {
    portcullis::install_crypto_providers();
    let pem = portcullis::auth::keys::generate_ed25519_pem().unwrap();
    let hash = bcrypt::hash("secret", 4).unwrap();
    Proxy::builder()
        .binary()
        .server("trusted_proxies = [\"127.0.0.1/32\", \"10.0.0.0/8\"]")
        .file("signing.pem", pem)
        .file(
            "users.toml",
            format!("[users.johndoe]\npassword_hash = \"{hash}\"\nscopes = [\"me\"]\n"),
        )
        .start(&format!(
            "[upstreams.app]\nurl = \"{}\"\n\n{}\n\
             [[issuers]]\nname = \"local\"\nissuer = \"https://auth.test\"\n\
             audiences = [\"api\"]\nprivate_key = \"signing.pem\"\nkid = \"k1\"\n\n\
             [token_endpoint]\npath = \"/token\"\nissuer = \"local\"\nusers = \"users.toml\"\n\n\
             [[routes]]\nname = \"api\"\npath = \"/api/**\"\nupstream = \"app\"\n",
            up.url(),
            hs_issuer()
        ))
        .await
}

/// A failed login (unknown user `user`) from `peer` claiming `xff`.
async fn fail_login(p: &Proxy, peer: [u8; 4], xff: &str, user: &str) -> u16 {
    let body = format!("grant_type=password&username={user}&password=wrong");
    let req = Req::post("/token", body)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("X-Forwarded-For", xff);
    p.send_from(peer, req).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_xff_from_an_untrusted_peer_changes_nothing_on_the_login_limit() {
    let up = spawn_upstream().await;
    let p = proxy(&up).await;
    // Every attempt claims another client; all count against the peer.
    for i in 0..ADDR_MAX_FAILURES {
        let st = fail_login(&p, UNTRUSTED, &format!("198.51.100.{i}"), &format!("u{i}")).await;
        assert_eq!(st, 401, "failure {i}");
    }
    let st = fail_login(&p, UNTRUSTED, "198.51.100.200", "fresh").await;
    assert_eq!(st, 429, "{}", p.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_peer_the_limit_counts_per_client() {
    let up = spawn_upstream().await;
    let p = proxy(&up).await;
    // Client 203.0.113.1 behind two trusted hops (10.1.2.3, then the peer).
    let chain = "6.6.6.6, 203.0.113.1, 10.1.2.3";
    for i in 0..ADDR_MAX_FAILURES {
        assert_eq!(fail_login(&p, TRUSTED, chain, &format!("u{i}")).await, 401);
    }
    assert_eq!(fail_login(&p, TRUSTED, chain, "fresh").await, 429);
    // The same peer for another client is not limited, nor is the limited client's
    // forged left-hand entry what counted.
    assert_eq!(fail_login(&p, TRUSTED, "203.0.113.2", "fresh").await, 401);
    assert_eq!(fail_login(&p, TRUSTED, "6.6.6.6", "fresh").await, 401);
    // The access log names the client, not the peer.
    let clients: Vec<String> = p
        .log_lines()
        .into_iter()
        .filter(|l| l["route"] == "builtin:token")
        .map(|l| l["client"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(clients.iter().any(|c| c == "203.0.113.1"), "{clients:?}");
    assert!(clients.iter().any(|c| c == "203.0.113.2"), "{clients:?}");
    assert!(!clients.iter().any(|c| c == "127.0.0.1"), "{clients:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_sees_the_client_and_the_scheme() {
    let up = spawn_upstream().await;
    let p = proxy(&up).await;
    let t = token("alice", serde_json::json!({}));
    let req = |xff: &str| {
        Req::get("/api/x")
            .bearer(&t)
            .header("X-Forwarded-For", xff)
            .header("X-Forwarded-Proto", "https")
    };
    // Trusted peer: the chain up to the client, whose scheme was https.
    p.send_from(TRUSTED, req("6.6.6.6, 203.0.113.9, 10.0.0.7"))
        .await
        .assert_status(200);
    let seen = up.last();
    assert_eq!(
        seen.header_all("x-forwarded-for"),
        vec!["6.6.6.6, 203.0.113.9"]
    );
    assert_eq!(seen.header_all("x-forwarded-proto"), vec!["https"]);
    // Untrusted peer: SPEC §4 as without the setting (appended, scheme of the
    // connection).
    p.send_from(UNTRUSTED, req("203.0.113.9"))
        .await
        .assert_status(200);
    let seen = up.last();
    assert_eq!(
        seen.header_all("x-forwarded-for"),
        vec!["203.0.113.9, 127.0.0.2"]
    );
    assert_eq!(seen.header_all("x-forwarded-proto"), vec!["http"]);
    let clients: Vec<String> = p
        .log_lines()
        .into_iter()
        .filter(|l| l["route"] == "api")
        .map(|l| l["client"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(clients, vec!["203.0.113.9", "127.0.0.2"], "{}", p.logs());
}
