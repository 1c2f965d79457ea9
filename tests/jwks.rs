//! Keys from identity providers (issue #4), against real servers on loopback:
//! a reconfigurable JWKS server (counts fetches, fails on demand, sets
//! Cache-Control), the real `portcullis` binary with its admin listener, and a real
//! OpenID Connect provider (`oidc-provider` from npm, run by node).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;

// ------------------------------------------------------------------ keys, tokens

/// A signing key and its public JWK (kid, alg and use set).
#[derive(Clone)]
struct Key {
    alg: Algorithm,
    kid: String,
    enc: EncodingKey,
    jwk: Value,
}

fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
        lines.join("\n")
    )
}

fn key(alg: Algorithm, kid: &str) -> Key {
    use aws_lc_rs::encoding::AsDer;
    portcullis::install_crypto_providers();
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let der: Vec<u8> = match alg {
        Algorithm::RS256 => aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .unwrap()
            .as_der()
            .unwrap()
            .as_ref()
            .to_vec(),
        Algorithm::ES256 => aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .unwrap()
        .as_ref()
        .to_vec(),
        Algorithm::EdDSA => aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .unwrap()
            .as_ref()
            .to_vec(),
        other => panic!("no test key for {other:?}"),
    };
    let k = portcullis::auth::keys::private_key_from_pem(pem(&der).as_bytes()).unwrap();
    let mut jwk = k.jwk;
    let o = jwk.as_object_mut().unwrap();
    o.insert("kid".into(), kid.into());
    o.insert("alg".into(), format!("{alg:?}").into());
    o.insert("use".into(), "sig".into());
    Key {
        alg,
        kid: kid.into(),
        enc: k.signing,
        jwk,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn token(k: &Key, iss: &str, sub: &str) -> String {
    let mut h = Header::new(k.alg);
    h.kid = Some(k.kid.clone());
    let claims = json!({"iss": iss, "sub": sub, "aud": "api", "iat": now(), "exp": now() + 600});
    jsonwebtoken::encode(&h, &claims, &k.enc).unwrap()
}

// ------------------------------------------------------------------ JWKS server

#[derive(Default)]
struct IdpState {
    keys: Vec<Value>,
    fail: bool,
    cache_control: Option<String>,
}

/// A JWKS (and discovery) server on loopback that tests reconfigure at will.
#[derive(Clone)]
struct Idp {
    addr: SocketAddr,
    state: Arc<Mutex<IdpState>>,
    fetches: Arc<AtomicUsize>,
    tls: bool,
}

impl Idp {
    async fn start(keys: Vec<Value>) -> Idp {
        Self::start_with(keys, None).await
    }

    /// An https server with a certificate for 127.0.0.1 from a fresh CA; returns
    /// the CA certificate (PEM) too.
    async fn start_tls(keys: Vec<Value>) -> (Idp, String) {
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "jwks test CA");
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = leaf.signed_by(&key, &issuer).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .unwrap();
        (Self::start_with(keys, Some(Arc::new(cfg))).await, ca_pem)
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

    fn base(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
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

    fn set_keys(&self, keys: Vec<Value>) {
        self.state.lock().unwrap().keys = keys;
    }

    fn set_fail(&self, fail: bool) {
        self.state.lock().unwrap().fail = fail;
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    async fn wait_fetches(&self, n: usize) {
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

// ------------------------------------------------------------------ the proxy

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proxy {
    child: Child,
    addr: SocketAddr,
    admin: SocketAddr,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// Starts portcullis with an echo upstream, one protected route and `issuers`.
    fn start(issuers: &str) -> Proxy {
        let dir = tempfile::tempdir().unwrap();
        let (port, admin) = (free_port(), free_port());
        let cfg = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[admin]\nlisten = \"127.0.0.1:{admin}\"\n\
             [upstreams.echo]\nurl = \"echo:\"\n\
             [[routes]]\npath = \"/**\"\nupstream = \"echo\"\n{issuers}\n"
        );
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, cfg).unwrap();
        let log = std::fs::File::create(dir.path().join("proxy.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", "info,access=off")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut p = Proxy {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin)),
            dir,
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(p.addr).is_err() || TcpStream::connect(p.admin).is_err() {
            if let Ok(Some(st)) = p.child.try_wait() {
                panic!("proxy exited {st}: {}", p.log());
            }
            assert!(
                Instant::now() < deadline,
                "proxy did not start: {}",
                p.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }

    /// GET / with the token: (status, X-User the upstream saw).
    async fn call(&self, token: &str) -> (u16, Option<String>) {
        let r = self
            .http
            .get(format!("http://{}/", self.addr))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let user = body["headers"]["x-user"].as_str().map(str::to_owned);
        (status, user)
    }

    async fn status(&self, token: &str) -> u16 {
        self.call(token).await.0
    }

    async fn admin(&self, path: &str) -> u16 {
        self.http
            .get(format!("http://{}{path}", self.admin))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.admin("/readyz").await != 200 {
            assert!(Instant::now() < deadline, "never ready: {}", self.log());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn jwks_issuer(name: &str, iss: &str, idp: &Idp, extra: &str) -> String {
    format!(
        "[[issuers]]\nname = \"{name}\"\nissuer = \"{iss}\"\naudiences = [\"api\"]\n\
         jwks_url = \"{}/jwks.json\"\n{extra}\n",
        idp.base()
    )
}

// ------------------------------------------------------------------ tests

/// A new key is picked up by the periodic refresh without a restart; a key the IdP
/// stops publishing stops verifying, even for a token the cache had verified.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_within_one_refresh_and_dropped_key_refused() {
    let (a, b) = (key(Algorithm::RS256, "a"), key(Algorithm::RS256, "b"));
    let idp = Idp::start(vec![a.jwk.clone()]).await;
    let p = Proxy::start(&jwks_issuer(
        "corp",
        "https://idp",
        &idp,
        "refresh_interval = \"1s\"",
    ));
    p.wait_ready().await;
    let ta = token(&a, "https://idp", "alice");
    assert_eq!(p.call(&ta).await, (200, Some("alice".into())));
    assert_eq!(p.status(&ta).await, 200, "cached");

    idp.set_keys(vec![a.jwk.clone(), b.jwk.clone()]);
    let n = idp.fetches();
    idp.wait_fetches(n + 1).await; // one scheduled refresh
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        p.call(&token(&b, "https://idp", "bob")).await,
        (200, Some("bob".into()))
    );

    idp.set_keys(vec![b.jwk.clone()]);
    let n = idp.fetches();
    idp.wait_fetches(n + 2).await;
    assert_eq!(p.status(&ta).await, 401, "dropped key still verifies");
    assert_eq!(p.status(&token(&b, "https://idp", "bob")).await, 200);
}

/// The IdP going down changes nothing for known keys, and readiness holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idp_down_keeps_last_good_keys() {
    let a = key(Algorithm::ES256, "a");
    let idp = Idp::start(vec![a.jwk.clone()]).await;
    let p = Proxy::start(&jwks_issuer(
        "corp",
        "https://idp",
        &idp,
        "refresh_interval = \"1s\"",
    ));
    p.wait_ready().await;
    idp.set_fail(true);
    let n = idp.fetches();
    idp.wait_fetches(n + 2).await; // two failed fetches
    let fresh = token(&a, "https://idp", "carol"); // not in the cache yet
    assert_eq!(p.call(&fresh).await, (200, Some("carol".into())));
    assert_eq!(p.admin("/readyz").await, 200);
    assert_eq!(p.admin("/healthz").await, 200);
    // An unknown kid while the IdP is down is a plain 401, not an error page.
    let stranger = key(Algorithm::ES256, "zz");
    assert_eq!(p.status(&token(&stranger, "https://idp", "eve")).await, 401);
    assert!(
        p.log().contains("keeping the last good keys"),
        "{}",
        p.log()
    );
}

/// A flood of random `kid`s causes at most a handful of JWKS fetches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_kid_flood_is_rate_limited() {
    let a = key(Algorithm::ES256, "a");
    let idp = Idp::start(vec![a.jwk.clone()]).await;
    let p = Arc::new(Proxy::start(&jwks_issuer("corp", "https://idp", &idp, "")));
    p.wait_ready().await;
    // Past the 10 s window of the start-up fetch, so the flood may cause one fetch.
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let start = idp.fetches();
    let attacker = key(Algorithm::ES256, "x");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..500 {
        let mut k = attacker.clone();
        k.kid = format!("random-{i}-{}", now());
        let (p, t) = (p.clone(), token(&k, "https://idp", "mallory"));
        tasks.spawn(async move { p.status(&t).await });
    }
    while let Some(st) = tasks.join_next().await {
        assert_eq!(st.unwrap(), 401);
    }
    let used = idp.fetches() - start;
    assert!(
        (1..=2).contains(&used),
        "{used} JWKS fetches for 500 random kids (one single-flight re-fetch expected)"
    );
    assert_eq!(p.status(&token(&a, "https://idp", "alice")).await, 200);
}

/// `discovery = true` finds the JWKS through `{issuer}/.well-known/openid-configuration`
/// (the issuer's trailing `/` is not doubled).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_the_jwks() {
    let a = key(Algorithm::EdDSA, "ed");
    let idp = Idp::start(vec![a.jwk.clone()]).await;
    let iss = format!("{}/", idp.base());
    let p = Proxy::start(&format!(
        "[[issuers]]\nname = \"oidc\"\nissuer = \"{iss}\"\ndiscovery = true\naudiences = [\"api\"]\n"
    ));
    p.wait_ready().await;
    assert_eq!(
        p.call(&token(&a, &iss, "dora")).await,
        (200, Some("dora".into()))
    );
    assert_eq!(idp.fetches(), 1);
}

/// Two issuers with different algorithms, each chosen by `iss`; neither's key
/// verifies the other's tokens, and the RSA key is never an HMAC secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_issuers_different_algorithms() {
    let (rs, ed) = (key(Algorithm::RS256, "rs"), key(Algorithm::EdDSA, "ed"));
    let (idp1, idp2) = (
        Idp::start(vec![rs.jwk.clone()]).await,
        Idp::start(vec![ed.jwk.clone()]).await,
    );
    let p = Proxy::start(&format!(
        "{}{}",
        jwks_issuer("one", "https://one", &idp1, "algorithms = [\"RS256\"]"),
        jwks_issuer("two", "https://two", &idp2, "algorithms = [\"EdDSA\"]"),
    ));
    p.wait_ready().await;
    assert_eq!(
        p.call(&token(&rs, "https://one", "u1")).await,
        (200, Some("u1".into()))
    );
    assert_eq!(
        p.call(&token(&ed, "https://two", "u2")).await,
        (200, Some("u2".into()))
    );
    assert_eq!(p.status(&token(&ed, "https://one", "x")).await, 401);
    assert_eq!(p.status(&token(&rs, "https://two", "x")).await, 401);
    // alg confusion: HS256 "signed" with the RSA public key's modulus as the secret.
    let n = rs.jwk["n"].as_str().unwrap();
    let hs = Key {
        alg: Algorithm::HS256,
        kid: "rs".into(),
        enc: EncodingKey::from_secret(n.as_bytes()),
        jwk: Value::Null,
    };
    assert_eq!(p.status(&token(&hs, "https://one", "x")).await, 401);
}

/// `use: enc` keys and `kty: oct` keys in a remote set never verify anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enc_and_oct_keys_are_ignored() {
    let sig = key(Algorithm::RS256, "sig");
    let mut enc = key(Algorithm::RS256, "enc");
    enc.jwk["use"] = "enc".into();
    let secret = "an-hmac-secret-in-a-jwks-is-never-trusted";
    let k = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret)
    };
    let oct = json!({"kty": "oct", "kid": "oct", "k": k});
    let idp = Idp::start(vec![enc.jwk.clone(), oct, sig.jwk.clone()]).await;
    let p = Proxy::start(&jwks_issuer("corp", "https://idp", &idp, ""));
    p.wait_ready().await;
    assert_eq!(p.status(&token(&sig, "https://idp", "ok")).await, 200);
    assert_eq!(p.status(&token(&enc, "https://idp", "x")).await, 401);
    let hs = Key {
        alg: Algorithm::HS256,
        kid: "oct".into(),
        enc: EncodingKey::from_secret(secret.as_bytes()),
        jwk: Value::Null,
    };
    assert_eq!(p.status(&token(&hs, "https://idp", "x")).await, 401);
    assert!(p.log().contains("JWKS key skipped"), "{}", p.log());
}

/// `/readyz` is 503 until the first successful fetch, then 200; `/healthz` is 200
/// throughout; tokens are refused (fail closed) while there are no keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_waits_for_the_first_fetch() {
    let a = key(Algorithm::ES256, "a");
    let idp = Idp::start(vec![a.jwk.clone()]).await;
    idp.set_fail(true);
    let p = Proxy::start(&jwks_issuer("corp", "https://idp", &idp, ""));
    idp.wait_fetches(1).await;
    assert_eq!(p.admin("/readyz").await, 503);
    assert_eq!(p.admin("/healthz").await, 200);
    assert_eq!(p.admin("/nope").await, 404);
    assert_eq!(p.status(&token(&a, "https://idp", "x")).await, 401);
    idp.set_fail(false);
    p.wait_ready().await; // retried with back-off (1 s, 2 s, ...)
    assert_eq!(p.status(&token(&a, "https://idp", "x")).await, 200);
}

/// `Cache-Control: max-age` shortens the refresh interval, but not below 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_age_is_bounded() {
    let a = key(Algorithm::ES256, "a");
    let idp = Idp::start(vec![a.jwk.clone()]).await;
    idp.state.lock().unwrap().cache_control = Some("public, max-age=0".into());
    let p = Proxy::start(&jwks_issuer(
        "corp",
        "https://idp",
        &idp,
        "refresh_interval = \"10m\"",
    ));
    p.wait_ready().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        idp.fetches(),
        1,
        "max-age=0 must not make portcullis poll the IdP"
    );
}

/// An https JWKS is trusted through the issuer's `ca`; without it (webpki roots
/// only) the fetch fails and the issuer never becomes ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_jwks_with_configured_ca() {
    let a = key(Algorithm::ES256, "a");
    let (idp, ca_pem) = Idp::start_tls(vec![a.jwk.clone()]).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("idp-ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let trusted = format!("ca = \"{}\"", ca.display());
    let p = Proxy::start(&jwks_issuer("corp", "https://idp", &idp, &trusted));
    p.wait_ready().await;
    assert_eq!(p.status(&token(&a, "https://idp", "tls")).await, 200);

    let untrusted = Proxy::start(&jwks_issuer("corp", "https://idp", &idp, ""));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(untrusted.admin("/readyz").await, 503);
    assert_eq!(
        untrusted.status(&token(&a, "https://idp", "tls")).await,
        401
    );
    assert!(
        untrusted.log().contains("JWKS fetch failed"),
        "{}",
        untrusted.log()
    );
}

// ------------------------------------------------------------------ a real IdP

fn oidc_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/oidc")
}

struct Node(Child);

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// portcullis verifies JWT access tokens of `oidc-provider` (client_credentials,
/// resource indicator -> RS256 JWT) found through discovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifies_tokens_from_a_real_oidc_provider() {
    let dir = oidc_dir();
    assert!(
        dir.join("node_modules/oidc-provider").is_dir(),
        "oidc-provider is not installed in {}: run scripts/test-all.sh (it runs \
         `npm install oidc-provider` there), or `cd target/oidc && npm install oidc-provider@9`",
        dir.display()
    );
    let script = dir.join("provider.mjs");
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/jwks_support/oidc_provider.mjs"),
        &script,
    )
    .unwrap();
    let port = free_port();
    let (client_id, secret, resource) = (
        "orders-service",
        "s3cret-for-tests-only-0123456789",
        "urn:portcullis:api",
    );
    let log = std::fs::File::create(dir.join(format!("provider-{port}.log"))).unwrap();
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
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = http
            .get(format!("{issuer}/.well-known/openid-configuration"))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(Instant::now() < deadline, "oidc-provider did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let p = Proxy::start(&format!(
        "[[issuers]]\nname = \"oidc\"\nissuer = \"{issuer}\"\ndiscovery = true\n\
         audiences = [\"{resource}\"]\nalgorithms = [\"RS256\"]\n"
    ));
    p.wait_ready().await;
    let resp: Value = http
        .post(format!("{issuer}/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "api:read"),
            ("resource", resource),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = resp["access_token"].as_str().expect("an access token");
    assert_eq!(access.split('.').count(), 3, "a JWT access token");
    assert_eq!(p.call(access).await, (200, Some(client_id.into())));
    assert_eq!(p.status(&format!("{access}x")).await, 401);
}
