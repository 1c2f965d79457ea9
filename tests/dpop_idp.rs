//! End to end with a real identity provider (SPEC §10): `oidc-provider` (npm, with
//! its DPoP feature) issues a DPoP-bound access token to a client whose proofs are
//! built by PyJWT (tests/support/dpop.rs); portcullis accepts it with a fresh proof
//! by the client's key on a `dpop = "required"` route, and refuses it as a bearer
//! token or with a proof by another key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::dpop::ClientKey;
use support::*;

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dpop_bound_token_from_oidc_provider_with_a_fresh_proof() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("target/oidc");
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "oidc-provider is not installed in {}: run scripts/test-all.sh",
        dir.display()
    );
    let script = dir.join("provider-dpop.mjs");
    std::fs::copy(root.join("tests/dpop_support/oidc_dpop.mjs"), &script).unwrap();
    let port = free_port();
    let (client_id, secret, resource) = (
        "dpop-client",
        "s3cret-for-tests-only-0123456789",
        "urn:portcullis:api",
    );
    let log_path = dir.join(format!("provider-dpop-{port}.log"));
    let log = std::fs::File::create(&log_path).unwrap();
    let _node = Node(
        Command::new("node")
            .arg(&script)
            .env("PORT", port.to_string())
            .env("CLIENT_ID", client_id)
            .env("CLIENT_SECRET", secret)
            .env("RESOURCE", resource)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("node must be on PATH"),
    );
    let issuer = format!("http://127.0.0.1:{port}");
    let http = http_client();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "oidc-provider did not start: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let keys = tempfile::tempdir().unwrap();
    let key = ClientKey::new(keys.path(), "client", "ec");
    let proof = key.proof("POST", &format!("{issuer}/token"), None);
    let resp = http
        .post(format!("{issuer}/token"))
        .basic_auth(client_id, Some(secret))
        .header("DPoP", proof)
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "api:read"),
            ("resource", resource),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let access = body["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned();
    assert_eq!(
        jwt_part(&access, 1)["cnf"]["jkt"],
        key.jkt.as_str(),
        "bound to the client key"
    );

    let up = spawn_upstream().await;
    let proxy = Proxy::start(&format!(
        "[upstreams.app]\nurl = \"{}\"\n\n\
         [[issuers]]\nname = \"oidc\"\nissuer = \"{issuer}\"\ndiscovery = true\n\
         audiences = [\"{resource}\"]\nalgorithms = [\"ES256\"]\n\n\
         [[routes]]\npath = \"/**\"\ndpop = \"required\"\nupstream = \"app\"\n",
        up.url()
    ))
    .await;
    let htu = proxy.url("/orders");
    let call = |proof: String| {
        proxy.send(
            Req::get("/orders")
                .header("Authorization", &format!("DPoP {access}"))
                .header("DPoP", &proof),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The JWKS is fetched at start; a fresh proof per attempt.
        let r = call(key.proof("GET", &htu, Some(&access))).await;
        if r.status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never accepted: {} {}",
            r.status,
            r.text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(up.take()[0].header("x-user"), Some(client_id));
    // As a bearer token, or with a proof by another key: refused, not forwarded.
    proxy.get("/orders", Some(&access)).await.assert_status(401);
    let thief = ClientKey::new(keys.path(), "thief", "ec");
    let r = call(thief.proof("GET", &htu, Some(&access))).await;
    assert_eq!(r.status, 401);
    assert!(r
        .header("www-authenticate")
        .unwrap()
        .starts_with("DPoP error=\"invalid_dpop_proof\""));
    assert_eq!(up.count(), 0);
}
