//! Identity providers on loopback:
//!
//! - [`Idp`]: a JWKS and discovery server that tests reconfigure at will (the keys,
//!   failing with 500, a `Cache-Control`), counting JWKS fetches; plain or https
//!   with a certificate from a fresh [`Pki`].
//! - [`OidcProvider`]: a real OpenID Connect provider (`oidc-provider` from npm, run
//!   by node; `scripts/test-all.sh` installs it into `target/oidc`).

use super::{free_port, Pki, START_TIMEOUT};
use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

#[derive(Default)]
struct IdpState {
    keys: Vec<Value>,
    fail: bool,
    cache_control: Option<String>,
}

/// A JWKS (`/jwks.json`) and discovery (`/.well-known/openid-configuration`) server.
#[derive(Clone)]
pub struct Idp {
    pub addr: SocketAddr,
    state: Arc<Mutex<IdpState>>,
    fetches: Arc<AtomicUsize>,
    tls: bool,
}

impl Idp {
    /// A plain-HTTP server publishing `keys` (JWKs).
    pub async fn start(keys: Vec<Value>) -> Idp {
        Self::start_with(keys, None).await
    }

    /// An https server with a certificate for 127.0.0.1 from a fresh CA; returns the
    /// CA certificate (PEM) too.
    pub async fn start_tls(keys: Vec<Value>) -> (Idp, String) {
        let pki = Pki::new();
        let tls = pki.server_config(&["127.0.0.1"]);
        (Self::start_with(keys, Some(tls)).await, pki.ca_pem)
    }

    async fn start_with(keys: Vec<Value>, tls: Option<Arc<rustls::ServerConfig>>) -> Idp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let idp = Idp {
            addr: listener.local_addr().unwrap(),
            tls: tls.is_some(),
            state: Arc::new(Mutex::new(IdpState {
                keys,
                ..IdpState::default()
            })),
            fetches: Arc::default(),
        };
        let me = idp.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let me = me.clone();
                let acceptor = tls.clone().map(tokio_rustls::TlsAcceptor::from);
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let resp = me.answer(req.uri().path());
                        async move { Ok::<_, std::convert::Infallible>(resp) }
                    });
                    let http = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    let _ = match acceptor {
                        None => http.serve_connection(TokioIo::new(stream), svc).await,
                        Some(a) => match a.accept(stream).await {
                            Ok(s) => http.serve_connection(TokioIo::new(s), svc).await,
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        idp
    }

    /// `http(s)://127.0.0.1:PORT`
    pub fn base(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// An `[[issuers]]` block trusting this server's JWKS for `iss`, audience `api`,
    /// with `extra` lines.
    pub fn issuer(&self, name: &str, iss: &str, extra: &str) -> String {
        format!(
            "[[issuers]]\nname = \"{name}\"\nissuer = \"{iss}\"\naudiences = [\"api\"]\n\
             jwks_url = \"{}/jwks.json\"\n{extra}\n",
            self.base()
        )
    }

    fn answer(&self, path: &str) -> http::Response<Full<Bytes>> {
        let st = self.state.lock().unwrap();
        let mut resp = http::Response::builder().header("content-type", "application/json");
        let body = match path {
            "/jwks.json" => {
                self.fetches.fetch_add(1, Ordering::SeqCst);
                if st.fail {
                    return resp.status(500).body(Full::new("down".into())).unwrap();
                }
                if let Some(cc) = &st.cache_control {
                    resp = resp.header("cache-control", cc.as_str());
                }
                json!({"keys": st.keys})
            }
            "/.well-known/openid-configuration" => json!({
                "issuer": format!("{}/", self.base()),
                "jwks_uri": format!("{}/jwks.json", self.base()),
            }),
            _ => return resp.status(404).body(Full::new("".into())).unwrap(),
        };
        resp.body(Full::new(body.to_string().into())).unwrap()
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        self.state.lock().unwrap().keys = keys;
    }

    /// While `fail`, the JWKS answers 500.
    pub fn set_fail(&self, fail: bool) {
        self.state.lock().unwrap().fail = fail;
    }

    /// The `Cache-Control` the JWKS is served with.
    pub fn set_cache_control(&self, value: &str) {
        self.state.lock().unwrap().cache_control = Some(value.to_owned());
    }

    /// JWKS requests so far (failed ones included).
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// Waits (15 s at most) until there have been `n` JWKS requests.
    pub async fn wait_fetches(&self, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.fetches() < n {
            assert!(
                Instant::now() < deadline,
                "JWKS fetches stuck at {}",
                self.fetches()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// A running `oidc-provider` (`tests/jwks_support/oidc_provider.mjs`): one
/// confidential client allowed the client_credentials grant, and a resource whose
/// access tokens are RS256 JWTs. Killed on drop.
pub struct OidcProvider {
    child: Child,
    /// `http://127.0.0.1:PORT`, the provider's issuer.
    pub issuer: String,
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OidcProvider {
    /// Starts the provider for `client_id` / `secret` and `resource`; returns once its
    /// discovery document answers.
    pub async fn start(client_id: &str, secret: &str, resource: &str) -> OidcProvider {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let dir = root.join("target/oidc");
        assert!(
            dir.join("node_modules/oidc-provider").is_dir(),
            "oidc-provider is not installed in {}: run scripts/test-all.sh (it runs \
             `npm install oidc-provider` there), or `cd target/oidc && npm install oidc-provider@9`",
            dir.display()
        );
        let script = dir.join("provider.mjs");
        std::fs::copy(root.join("tests/jwks_support/oidc_provider.mjs"), &script).unwrap();
        // The provider must know its own issuer URL before it listens: a port of its own.
        let port = free_port();
        let log = std::fs::File::create(dir.join(format!("provider-{port}.log"))).unwrap();
        let child = Command::new("node")
            .arg(&script)
            .env("PORT", port.to_string())
            .env("CLIENT_ID", client_id)
            .env("CLIENT_SECRET", secret)
            .env("RESOURCE", resource)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("node must be on PATH");
        let p = OidcProvider {
            child,
            issuer: format!("http://127.0.0.1:{port}"),
        };
        let http = reqwest::Client::new();
        let deadline = Instant::now() + START_TIMEOUT * 2;
        loop {
            let r = http
                .get(format!("{}/.well-known/openid-configuration", p.issuer))
                .send()
                .await;
            if r.is_ok_and(|r| r.status() == 200) {
                return p;
            }
            assert!(Instant::now() < deadline, "oidc-provider did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
