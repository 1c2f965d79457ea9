//! A real OpenID Connect provider: npm `oidc-provider` (installed by
//! scripts/test-all.sh into `target/oidc`) running `tests/login_support/provider.mjs`
//! under node on a free loopback port: development login and consent pages, a
//! confidential and a public client, refresh tokens, RP-initiated logout, and two
//! test hooks (grant counts, refusing further token requests). Killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The confidential client.
pub const CLIENT_ID: &str = "portcullis-app";
/// Its secret.
pub const CLIENT_SECRET: &str = "client-secret-for-tests-only-0123456789";
/// The public client (PKCE only).
pub const PUBLIC_ID: &str = "portcullis-spa";

/// A running provider.
pub struct OidcProvider {
    child: Child,
    /// `http://127.0.0.1:PORT`, its issuer.
    pub issuer: String,
    log: PathBuf,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/oidc")
}

impl OidcProvider {
    /// Starts the provider: access tokens live `access_ttl` seconds, token requests
    /// wait `token_delay_ms` first.
    pub async fn start(access_ttl: u64, token_delay_ms: u64) -> OidcProvider {
        let dir = oidc_dir();
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "oidc-provider is not installed in {}: run scripts/test-all.sh",
            dir.display()
        );
        let script = dir.join("login-provider.mjs");
        std::fs::copy(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/login_support/provider.mjs"),
            &script,
        )
        .unwrap();
        for _ in 0..3 {
            let port = super::free_port();
            let log = dir.join(format!("login-provider-{port}.log"));
            let f = std::fs::File::create(&log).unwrap();
            let child = Command::new("node")
                .arg(&script)
                .env("PORT", port.to_string())
                .env("CLIENT_ID", CLIENT_ID)
                .env("CLIENT_SECRET", CLIENT_SECRET)
                .env("PUBLIC_ID", PUBLIC_ID)
                .env("ACCESS_TTL", access_ttl.to_string())
                .env("TOKEN_DELAY_MS", token_delay_ms.to_string())
                .stdout(Stdio::from(f.try_clone().unwrap()))
                .stderr(Stdio::from(f))
                .spawn()
                .expect("node must be on PATH");
            let mut p = OidcProvider {
                child,
                issuer: format!("http://127.0.0.1:{port}"),
                log,
            };
            if p.wait_ready().await {
                return p;
            }
        }
        panic!("oidc-provider did not start");
    }

    async fn wait_ready(&mut self) -> bool {
        let http = super::http_client();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            let r = http
                .get(format!("{}/.well-known/openid-configuration", self.issuer))
                .send()
                .await;
            if r.is_ok_and(|r| r.status() == 200) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        false
    }

    /// The `[[issuers]]` entry for it (discovery).
    pub fn issuer_toml(&self, name: &str) -> String {
        format!(
            "[[issuers]]\nname = \"{name}\"\nissuer = \"{}\"\ndiscovery = true\n",
            self.issuer
        )
    }

    /// Successful grants so far: (refresh_token, authorization_code).
    pub async fn counts(&self) -> (u64, u64) {
        let v: serde_json::Value = super::http_client()
            .get(format!("{}/_test/counts", self.issuer))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (v["refresh"].as_u64().unwrap(), v["code"].as_u64().unwrap())
    }

    /// Every later token request is refused (400 invalid_grant).
    pub async fn refuse_tokens(&self) {
        let s = super::http_client()
            .post(format!("{}/_test/refuse-refresh", self.issuer))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(s, 200);
    }

    /// Its log (printed by tests on failure).
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}
