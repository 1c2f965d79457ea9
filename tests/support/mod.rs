//! Shared harness for the black-box integration suites (routing, verify, forwarding,
//! config errors, CLI; reusable by later TLS / JWKS / issuer suites).
//!
//! - [`Proxy`]: runs the real `portcullis` binary on a free loopback port with a config
//!   written into its own temp dir, waits until it accepts, kills it on drop and prints
//!   its stdout/stderr when the test panicked.
//! - [`spawn_upstream`]: a hyper server on port 0 that records every request it gets
//!   (method, request target, version, headers with duplicates, body).
//! - [`Req`] / [`Proxy::send`]: a raw HTTP/1.1 client over TCP, so request lines and
//!   headers are byte-exact (no client-side path normalization); [`Reply`] has the
//!   SPEC §4 denial assertions.
//! - [`mint`] / [`jwt`]: JWTs signed by hand with aws-lc-rs (every algorithm of SPEC §3,
//!   plus hostile shapes: `alg: none`, `jku`, `crit`, key confusion); keys generated once
//!   per test binary.
//! - [`cli`]: runs a subcommand with a bounded timeout.
//! - [`redis`]: real Redis topologies (standalone, Cluster, Sentinel) on loopback.
//! - [`nginx::Nginx`]: a real nginx on a free loopback port (virtual hosts, ingress).
//! - [`disk`]: the repository's configs, and snapshots of a directory tree (a command
//!   that must write nothing).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod browser;
pub mod disk;
pub mod nginx;
pub mod redis;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED, ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Upper bound for any single network exchange in the suites.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for the proxy to start accepting connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for a CLI invocation (`check`, `token`, ...).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// The HMAC secret most suites configure for their HS* issuer.
pub const SECRET: &str = "integration-test-secret-0123456789abcdef0123456789";
/// The `issuer` value paired with [`SECRET`] in [`hs_issuer`].
pub const ISS: &str = "https://issuer.test/";

// ====================================================================== encoding

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// base64url without padding (JWT segments).
pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

pub fn b64_decode(s: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .unwrap_or_else(|e| panic!("bad base64url {s:?}: {e}"))
}

/// PEM armour with 64-column lines.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// 1-based number of the first line of `text` containing `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in config text"))
        + 1
}

/// Deterministic pseudo-random bytes (xorshift), for body pass-through checks.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

// ====================================================================== keys and tokens

pub enum KeyKind {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
    P384(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A generated asymmetric key with its SPKI public PEM and PKCS#8 private PEM.
pub struct TestKey {
    pub kind: KeyKind,
    /// `-----BEGIN PUBLIC KEY-----` (SPKI), what `public_key = "..."` reads.
    pub public_pem: String,
    /// `-----BEGIN PRIVATE KEY-----` (PKCS#8 v1), what `private_key = "..."` reads.
    pub private_pem: String,
}

impl TestKey {
    fn rsa() -> TestKey {
        let kp = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let private = kp.as_der().unwrap();
        let public = kp.public_key().as_der().unwrap();
        TestKey {
            public_pem: pem("PUBLIC KEY", public.as_ref()),
            private_pem: pem("PRIVATE KEY", private.as_ref()),
            kind: KeyKind::Rsa(kp),
        }
    }

    fn ec(p384: bool) -> TestKey {
        let alg = if p384 {
            &ECDSA_P384_SHA384_FIXED_SIGNING
        } else {
            &ECDSA_P256_SHA256_FIXED_SIGNING
        };
        let kp = EcdsaKeyPair::generate(alg).unwrap();
        let private = kp.to_pkcs8v1().unwrap();
        let public = kp.public_key().as_der().unwrap();
        TestKey {
            public_pem: pem("PUBLIC KEY", public.as_ref()),
            private_pem: pem("PRIVATE KEY", private.as_ref()),
            kind: if p384 {
                KeyKind::P384(kp)
            } else {
                KeyKind::P256(kp)
            },
        }
    }

    fn ed25519() -> TestKey {
        let kp = Ed25519KeyPair::generate().unwrap();
        let private = kp.to_pkcs8v1().unwrap();
        let public = kp.public_key().as_der().unwrap();
        TestKey {
            public_pem: pem("PUBLIC KEY", public.as_ref()),
            private_pem: pem("PRIVATE KEY", private.as_ref()),
            kind: KeyKind::Ed25519(kp),
        }
    }

    /// Signs `msg` for JWS algorithm `alg` (must suit the key type).
    pub fn sign(&self, alg: &str, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.kind {
            KeyKind::Rsa(kp) => {
                use aws_lc_rs::signature as s;
                let enc: &'static dyn s::RsaEncoding = match alg {
                    "RS256" => &s::RSA_PKCS1_SHA256,
                    "RS384" => &s::RSA_PKCS1_SHA384,
                    "RS512" => &s::RSA_PKCS1_SHA512,
                    "PS256" => &s::RSA_PSS_SHA256,
                    "PS384" => &s::RSA_PSS_SHA384,
                    "PS512" => &s::RSA_PSS_SHA512,
                    other => panic!("RSA key cannot sign {other}"),
                };
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign(enc, &rng, msg, &mut sig).unwrap();
                sig
            }
            KeyKind::P256(kp) | KeyKind::P384(kp) => kp.sign(&rng, msg).unwrap().as_ref().to_vec(),
            KeyKind::Ed25519(kp) => kp.sign(msg).as_ref().to_vec(),
        }
    }

    /// Checks a JWS signature made with this key (for tokens minted by the CLI).
    pub fn verify(&self, alg: &str, msg: &[u8], sig: &[u8]) -> bool {
        use aws_lc_rs::signature as s;
        let (params, public): (&'static dyn s::VerificationAlgorithm, &[u8]) = match &self.kind {
            KeyKind::Rsa(kp) => (
                match alg {
                    "RS256" => &s::RSA_PKCS1_2048_8192_SHA256,
                    "RS384" => &s::RSA_PKCS1_2048_8192_SHA384,
                    "RS512" => &s::RSA_PKCS1_2048_8192_SHA512,
                    "PS256" => &s::RSA_PSS_2048_8192_SHA256,
                    "PS384" => &s::RSA_PSS_2048_8192_SHA384,
                    "PS512" => &s::RSA_PSS_2048_8192_SHA512,
                    _ => return false,
                },
                kp.public_key().as_ref(),
            ),
            KeyKind::P256(kp) if alg == "ES256" => {
                (&ECDSA_P256_SHA256_FIXED, kp.public_key().as_ref())
            }
            KeyKind::P384(kp) if alg == "ES384" => {
                (&ECDSA_P384_SHA384_FIXED, kp.public_key().as_ref())
            }
            KeyKind::Ed25519(kp) if alg == "EdDSA" => (&s::ED25519, kp.public_key().as_ref()),
            _ => return false,
        };
        s::UnparsedPublicKey::new(params, public)
            .verify(msg, sig)
            .is_ok()
    }

    /// RSA public key as a JWK (for hostile embedded-`jwk` headers).
    pub fn rsa_jwk(&self) -> Value {
        let KeyKind::Rsa(kp) = &self.kind else {
            panic!("not an RSA key")
        };
        let pk = kp.public_key();
        json!({
            "kty": "RSA",
            "n": b64(pk.modulus().big_endian_without_leading_zero()),
            "e": b64(pk.exponent().big_endian_without_leading_zero()),
        })
    }
}

/// RSA-2048 key the suites configure as a trusted issuer key.
pub fn rsa_key() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(TestKey::rsa)
}

/// A second RSA key nobody trusts (the attacker's).
pub fn attacker_rsa_key() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(TestKey::rsa)
}

pub fn p256_key() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(|| TestKey::ec(false))
}

pub fn p384_key() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(|| TestKey::ec(true))
}

pub fn ed25519_key() -> &'static TestKey {
    static K: OnceLock<TestKey> = OnceLock::new();
    K.get_or_init(TestKey::ed25519)
}

/// What signs a token.
#[derive(Clone, Copy)]
pub enum Signer<'a> {
    /// HMAC (HS256/384/512) with these bytes as the key.
    Secret(&'a [u8]),
    Key(&'static TestKey),
    /// Empty signature segment (`alg: none`).
    Unsigned,
}

pub fn hmac(alg: &str, secret: &[u8], msg: &[u8]) -> Vec<u8> {
    use aws_lc_rs::hmac;
    let a = match alg {
        "HS256" => hmac::HMAC_SHA256,
        "HS384" => hmac::HMAC_SHA384,
        "HS512" => hmac::HMAC_SHA512,
        // Any other alg with a secret: sign with SHA-256 (for hostile tokens).
        _ => hmac::HMAC_SHA256,
    };
    hmac::sign(&hmac::Key::new(a, secret), msg)
        .as_ref()
        .to_vec()
}

/// Builds a compact JWS from raw header and claims JSON. The header's `alg` decides
/// the signature algorithm (`Signer::Secret` always uses HMAC).
pub fn jwt(header: &Value, claims: &Value, signer: Signer<'_>) -> String {
    let alg = header["alg"].as_str().unwrap_or("none").to_string();
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = match signer {
        Signer::Secret(s) => hmac(&alg, s, input.as_bytes()),
        Signer::Key(k) => k.sign(&alg, input.as_bytes()),
        Signer::Unsigned => Vec::new(),
    };
    format!("{input}.{}", b64(&sig))
}

/// A token with header `{"alg": alg, "typ": "JWT"}`.
pub fn mint(alg: &str, signer: Signer<'_>, claims: &Value) -> String {
    jwt(&json!({"alg": alg, "typ": "JWT"}), claims, signer)
}

/// Claims valid for ten minutes: `iss`, `sub`, `iat`, `exp`.
pub fn claims(iss: &str, sub: &str) -> Value {
    let t = now();
    json!({"iss": iss, "sub": sub, "iat": t, "exp": t + 600})
}

/// HS256 token for [`ISS`] / [`SECRET`] with `extra` merged into [`claims`].
pub fn token(sub: &str, extra: Value) -> String {
    let mut c = claims(ISS, sub);
    if let Value::Object(m) = extra {
        for (k, v) in m {
            c[k] = v;
        }
    }
    mint("HS256", Signer::Secret(SECRET.as_bytes()), &c)
}

/// The `[[issuers]]` block matching [`token`].
pub fn hs_issuer() -> String {
    format!("[[issuers]]\nname = \"test\"\nissuer = \"{ISS}\"\nsecret = \"{SECRET}\"\n")
}

/// Decodes segment `idx` (0 header, 1 claims) of a compact JWS as JSON.
pub fn jwt_part(token: &str, idx: usize) -> Value {
    let seg = token
        .split('.')
        .nth(idx)
        .unwrap_or_else(|| panic!("token {token:?} has no segment {idx}"));
    serde_json::from_slice(&b64_decode(seg)).unwrap()
}

// ====================================================================== proxy process

/// A running `portcullis` (killed on drop; logs printed if the test panicked).
pub struct Proxy {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    server_extra: String,
    env: Vec<(String, String)>,
    nofile: Option<(u64, u64)>,
}

/// Prepares the temp dir (key files, env) before the proxy starts.
pub struct ProxyBuilder {
    dir: tempfile::TempDir,
    server_extra: String,
    env: Vec<(String, String)>,
    nofile: Option<(u64, u64)>,
}

impl Default for ProxyBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ProxyBuilder {
    pub fn new() -> ProxyBuilder {
        ProxyBuilder {
            dir: tempfile::tempdir().unwrap(),
            server_extra: String::new(),
            env: Vec::new(),
            nofile: None,
        }
    }

    /// The directory the config is written to (relative paths resolve here).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `name` inside the config directory.
    pub fn file(self, name: &str, contents: impl AsRef<[u8]>) -> Self {
        let p = self.dir.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(p, contents).unwrap();
        self
    }

    /// Extra lines for the `[server]` table (after `listen`).
    pub fn server(mut self, lines: &str) -> Self {
        self.server_extra.push_str(lines);
        self.server_extra.push('\n');
        self
    }

    /// An environment variable for the proxy process.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    /// Starts the proxy with this open-files limit (`RLIMIT_NOFILE` soft and hard),
    /// set by `sh`'s `ulimit` before it execs the binary.
    pub fn nofile(mut self, soft: u64, hard: u64) -> Self {
        self.nofile = Some((soft, hard));
        self
    }

    /// Writes `proxy.toml` = `[server] listen = <free port>` + server lines + `body`,
    /// starts the binary and waits until it accepts connections. If another process
    /// grabbed the free port in between (the proxy exits reporting it in use), retries
    /// on a new port.
    pub async fn start(self, body: &str) -> Proxy {
        let (server_extra, body) = (self.server_extra.clone(), body.to_owned());
        self.start_with(move |addr| {
            format!("[server]\nlisten = \"{addr}\"\n{server_extra}\n{body}\n")
        })
        .await
    }

    /// Like [`ProxyBuilder::start`] for a whole config file (one with its own
    /// `[server]` table, such as a README example): `text(listen address)` gives the
    /// file's text for the free port chosen (again on a retry).
    pub async fn start_with(self, text: impl Fn(SocketAddr) -> String) -> Proxy {
        let mut proxy = Proxy {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir: self.dir,
            config_path: PathBuf::new(),
            server_extra: self.server_extra,
            env: self.env,
            nofile: self.nofile,
        };
        for attempt in 1..=3 {
            proxy.addr.set_port(free_port());
            let text = text(proxy.addr);
            proxy.config_path = proxy.dir.path().join("proxy.toml");
            std::fs::write(&proxy.config_path, &text).unwrap();
            proxy.spawn();
            match proxy.wait_ready().await {
                Ok(()) => return proxy,
                Err(e) if attempt < 3 && e.contains("in use") => continue,
                Err(e) => panic!("{e}\n--- config\n{text}\n{}", proxy.logs()),
            }
        }
        unreachable!()
    }
}

impl Proxy {
    /// Starts the proxy with `body` after a generated `[server]` table.
    pub async fn start(body: &str) -> Proxy {
        ProxyBuilder::new().start(body).await
    }

    pub fn builder() -> ProxyBuilder {
        ProxyBuilder::new()
    }

    /// The full config text for `body` on this proxy's port.
    pub fn config_text(&self, body: &str) -> String {
        format!(
            "[server]\nlisten = \"{}\"\n{}\n{body}\n",
            self.addr, self.server_extra
        )
    }

    /// Starts the binary on the current config file (stdout/stderr appended to logs).
    fn spawn(&mut self) {
        let log = |n: &str| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.path().join(n))
                .unwrap()
        };
        let level = std::env::var("TEST_PROXY_LOG").unwrap_or_else(|_| "info".into());
        let bin = env!("CARGO_BIN_EXE_portcullis");
        let mut cmd = match self.nofile {
            None => Command::new(bin),
            Some((soft, hard)) => {
                let mut c = Command::new("sh");
                // Soft first: a hard limit below the current soft one is refused.
                c.arg("-c")
                    .arg(format!(
                        "ulimit -Sn {soft} && ulimit -Hn {hard} && exec \"$0\" \"$@\""
                    ))
                    .arg(bin);
                c
            }
        };
        cmd.arg("--config")
            .arg(&self.config_path)
            .current_dir(self.dir.path())
            .env("RUST_LOG", level)
            .env_remove("PORTCULLIS_CONFIG")
            .stdin(Stdio::null())
            .stdout(log("stdout.log"))
            .stderr(log("stderr.log"));
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().expect("spawn portcullis"));
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("proxy process")
    }

    /// Polls until the listener accepts; fails fast if the process exits.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child().try_wait() {
                return Err(format!(
                    "portcullis exited during start-up ({status}){}",
                    if self.logs().contains("in use") {
                        " - address in use"
                    } else {
                        ""
                    }
                ));
            }
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(500), TcpStream::connect(self.addr))
                    .await
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "portcullis did not accept on {} within {START_TIMEOUT:?}",
                    self.addr
                ));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Replaces the config file atomically (same port, same `[server]` lines), for
    /// reload tests; follow with [`Proxy::signal`]`("HUP")`.
    pub fn rewrite(&self, body: &str) {
        let tmp = self.dir.path().join("proxy.toml.new");
        std::fs::write(&tmp, self.config_text(body)).unwrap();
        std::fs::rename(&tmp, &self.config_path).unwrap();
    }

    /// Sends `sig` (`HUP`, `TERM`, `INT`, ...) to the proxy process.
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits up to `limit` for the process to exit.
    pub async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(st) = self.try_wait() {
                return Some(st);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        None
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The proxy's stdout and stderr so far.
    pub fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "--- portcullis stdout\n{}\n--- portcullis stderr\n{}",
            read("stdout.log"),
            read("stderr.log")
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("proxy process").id()
    }

    /// Exit status if the process has ended.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child().try_wait().ok().flatten()
    }

    /// Sends a raw request (see [`Req`]) and reads one response.
    pub async fn send(&self, req: Req) -> Reply {
        let bytes = req.to_bytes(&self.addr.to_string());
        self.raw(&bytes).await
    }

    /// Writes `bytes` on a fresh connection and reads one response.
    pub async fn raw(&self, bytes: &[u8]) -> Reply {
        match tokio::time::timeout(TIMEOUT, raw_exchange(self.addr, bytes)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => panic!(
                "raw exchange failed: {e}\n--- request\n{}\n{}",
                String::from_utf8_lossy(bytes),
                self.logs()
            ),
            Err(_) => panic!(
                "no response within {TIMEOUT:?}\n--- request\n{}\n{}",
                String::from_utf8_lossy(bytes),
                self.logs()
            ),
        }
    }

    /// Like [`Proxy::send`] from the local address `ip` (a loopback address other
    /// than 127.0.0.1 makes another TCP peer: trusted-proxy tests).
    pub async fn send_from(&self, ip: [u8; 4], req: Req) -> Reply {
        let bytes = req.to_bytes(&self.addr.to_string());
        let exchange = async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(SocketAddr::from((ip, 0)))?;
            let mut s = sock.connect(self.addr).await?;
            s.write_all(&bytes).await?;
            read_response(&mut s).await
        };
        match tokio::time::timeout(TIMEOUT, exchange).await {
            Ok(Ok(r)) => r,
            other => panic!("exchange from {ip:?} failed: {other:?}\n{}", self.logs()),
        }
    }

    /// The JSON log lines on stdout and stderr (the access log among them).
    pub fn log_lines(&self) -> Vec<Value> {
        self.logs()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    }

    /// `GET path` with optional bearer token.
    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Reply {
        let mut r = Req::get(path);
        if let Some(t) = bearer {
            r = r.bearer(t);
        }
        self.send(r).await
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
    }
}

/// A port that was free a moment ago (bind port 0, read it, release it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A reqwest client with bounded timeouts and no redirects (for plain-HTTP use).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

// ====================================================================== raw HTTP/1.1 client

/// A hand-written HTTP/1.1 request. `to_bytes` adds `Host` (unless set),
/// `Content-Length` for a body, and `Connection: close` (unless a `Connection`
/// header was given).
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn new(method: &str, target: &str) -> Req {
        Req {
            method: method.into(),
            target: target.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn get(target: &str) -> Req {
        Req::new("GET", target)
    }

    pub fn post(target: &str, body: impl Into<Vec<u8>>) -> Req {
        let mut r = Req::new("POST", target);
        r.body = body.into();
        r
    }

    /// Appends a header (duplicates and any name spelling allowed).
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn bearer(self, token: &str) -> Req {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    pub fn host(self, host: &str) -> Req {
        self.header("Host", host)
    }

    pub fn to_bytes(&self, default_host: &str) -> Vec<u8> {
        let has = |n: &str| self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        if !has("host") {
            head.push_str(&format!("Host: {default_host}\r\n"));
        }
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !has("content-length")
            && !has("transfer-encoding")
            && (!self.body.is_empty() || self.method == "POST" || self.method == "PUT")
        {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        if !has("connection") {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// A response as the client saw it.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    /// Header names lower-cased, in wire order, duplicates kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "status; headers {:?}; body {:?}",
            self.headers,
            self.text()
        );
        self
    }

    /// SPEC §4 denial shape: status, `Content-Type: application/json`, body
    /// `{"detail": detail}`, and an `X-Request-Id` on the response.
    pub fn assert_denied(&self, status: u16, detail: &str) -> &Self {
        self.assert_status(status);
        let ct = self.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "content-type {ct:?} on a {status} denial"
        );
        assert_eq!(
            self.json(),
            json!({ "detail": detail }),
            "denial body {:?}",
            self.text()
        );
        assert!(
            self.header("x-request-id").is_some_and(|v| !v.is_empty()),
            "denial without x-request-id: {:?}",
            self.headers
        );
        self
    }

    /// Exactly one `WWW-Authenticate` equal to `value`.
    pub fn assert_www(&self, value: &str) -> &Self {
        assert_eq!(
            self.header_all("www-authenticate"),
            vec![value],
            "WWW-Authenticate"
        );
        self
    }

    /// Exactly one `WWW-Authenticate` starting with `prefix`.
    pub fn assert_www_prefix(&self, prefix: &str) -> &Self {
        let all = self.header_all("www-authenticate");
        assert_eq!(all.len(), 1, "one WWW-Authenticate expected: {all:?}");
        assert!(
            all[0].starts_with(prefix),
            "WWW-Authenticate {:?} should start with {prefix:?}",
            all[0]
        );
        self
    }

    pub fn assert_no_www(&self) -> &Self {
        assert!(
            self.header("www-authenticate").is_none(),
            "unexpected WWW-Authenticate: {:?}",
            self.headers
        );
        self
    }

    /// 401 `Not authenticated`, `WWW-Authenticate: Bearer`.
    pub fn assert_unauthenticated(&self) -> &Self {
        self.assert_denied(401, "Not authenticated")
            .assert_www("Bearer")
    }

    /// 401 `Could not validate credentials`, `Bearer error="invalid_token"...`.
    pub fn assert_invalid_token(&self) -> &Self {
        self.assert_denied(401, "Could not validate credentials")
            .assert_www_prefix("Bearer error=\"invalid_token\"")
    }

    /// 401 `Token has expired` with the exact SPEC challenge.
    pub fn assert_expired(&self) -> &Self {
        self.assert_denied(401, "Token has expired")
            .assert_www("Bearer error=\"invalid_token\", error_description=\"token expired\"")
    }

    /// 403 `Not enough permissions`; with `Some(scopes)` the exact challenge naming
    /// them, with `None` an `insufficient_scope` challenge without a `scope` param.
    pub fn assert_insufficient(&self, scopes: Option<&str>) -> &Self {
        self.assert_denied(403, "Not enough permissions");
        match scopes {
            Some(s) => {
                self.assert_www(&format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{s}\""
                ));
            }
            None => {
                self.assert_www_prefix("Bearer error=\"insufficient_scope\"");
                let v = self.header("www-authenticate").unwrap();
                assert!(
                    !v.contains(" scope=") && !v.contains(",scope="),
                    "claim-only failure must not name a scope: {v:?}"
                );
            }
        }
        self
    }

    /// 403 `Forbidden`, no challenge.
    pub fn assert_forbidden(&self) -> &Self {
        self.assert_denied(403, "Forbidden").assert_no_www()
    }

    /// 404 `Not Found`, no challenge.
    pub fn assert_not_found(&self) -> &Self {
        self.assert_denied(404, "Not Found").assert_no_www()
    }

    /// 400 `Bad Request`, no challenge.
    pub fn assert_bad_request(&self) -> &Self {
        self.assert_denied(400, "Bad Request").assert_no_www()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

async fn raw_exchange(addr: SocketAddr, req: &[u8]) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(req).await?;
    read_response(&mut s).await
}

/// Reads one HTTP/1.1 response (skipping 1xx) framed by Content-Length, chunked
/// encoding, or connection close, from a TCP or TLS stream.
pub async fn read_response<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Reply> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16384];
    loop {
        let end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            let n = s.read(&mut tmp).await?;
            if n == 0 {
                return Err(std::io::Error::other(format!(
                    "connection closed before a full response head: {:?}",
                    String::from_utf8_lossy(&buf)
                )));
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut rest = buf[end + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        if (100..200).contains(&status) && status != 101 {
            buf = rest;
            continue;
        }
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let chunked =
            get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let body = if status == 204 || status == 304 || status == 101 {
            Vec::new()
        } else if chunked {
            read_chunked(s, &mut rest).await?
        } else if let Some(len) = get("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| std::io::Error::other("bad content-length"))?;
            while rest.len() < len {
                let n = s.read(&mut tmp).await?;
                if n == 0 {
                    return Err(std::io::Error::other("body truncated"));
                }
                rest.extend_from_slice(&tmp[..n]);
            }
            rest.truncate(len);
            rest
        } else {
            loop {
                let n = s.read(&mut tmp).await?;
                if n == 0 {
                    break;
                }
                rest.extend_from_slice(&tmp[..n]);
            }
            rest
        };
        return Ok(Reply {
            status,
            headers,
            body,
        });
    }
}

async fn read_chunked<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    let mut tmp = [0u8; 16384];
    let mut out = Vec::new();
    let mut pos = 0usize;
    loop {
        // Make sure a size line is buffered.
        let line_end = loop {
            if let Some(i) = find(&buf[pos..], b"\r\n") {
                break pos + i;
            }
            let n = s.read(&mut tmp).await?;
            if n == 0 {
                return Err(std::io::Error::other("chunked body truncated"));
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let size_str = String::from_utf8_lossy(&buf[pos..line_end]).into_owned();
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size {size_str:?}")))?;
        pos = line_end + 2;
        if size == 0 {
            // Trailers (if any) end with an empty line; we do not need them.
            return Ok(out);
        }
        while buf.len() < pos + size + 2 {
            let n = s.read(&mut tmp).await?;
            if n == 0 {
                return Err(std::io::Error::other("chunk truncated"));
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        out.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

// ====================================================================== recording upstream

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The request target as received (origin form: path and query).
    pub uri: String,
    pub path: String,
    pub query: Option<String>,
    pub version: http::Version,
    /// Lower-case names (hyper), duplicates kept.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// What the upstream answers.
#[derive(Clone, Debug)]
pub struct UpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl UpReply {
    pub fn ok() -> UpReply {
        UpReply {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: Bytes::from_static(b"ok"),
        }
    }
}

type Responder = Arc<dyn Fn(&Recorded) -> UpReply + Send + Sync>;

/// A recording upstream server (lives as long as the test's runtime).
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl Upstream {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The most recent request (panics if none).
    pub fn last(&self) -> Recorded {
        self.log
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream received no request")
    }

    /// Removes and returns everything recorded so far.
    pub fn take(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

/// An upstream answering 200 `ok` to everything.
pub async fn spawn_upstream() -> Upstream {
    spawn_upstream_with(|_| UpReply::ok()).await
}

/// An upstream answering with `respond(request)`.
pub async fn spawn_upstream_with(
    respond: impl Fn(&Recorded) -> UpReply + Send + Sync + 'static,
) -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
    let respond: Responder = Arc::new(respond);
    let l = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let l = l.clone();
            let respond = respond.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: hyper::Request<Incoming>| {
                    let l = l.clone();
                    let respond = respond.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let rec = Recorded {
                            method: parts.method.to_string(),
                            uri: parts
                                .uri
                                .path_and_query()
                                .map(|p| p.as_str().to_string())
                                .unwrap_or_else(|| parts.uri.to_string()),
                            path: parts.uri.path().to_string(),
                            query: parts.uri.query().map(str::to_string),
                            version: parts.version,
                            headers: parts
                                .headers
                                .iter()
                                .map(|(k, v)| {
                                    (
                                        k.as_str().to_string(),
                                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                    )
                                })
                                .collect(),
                            body,
                        };
                        let reply = respond(&rec);
                        l.lock().unwrap().push(rec);
                        let mut resp = hyper::Response::new(Full::new(reply.body));
                        *resp.status_mut() = http::StatusCode::from_u16(reply.status).unwrap();
                        for (k, v) in reply.headers {
                            resp.headers_mut().append(
                                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                                http::HeaderValue::from_str(&v).unwrap(),
                            );
                        }
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Upstream { addr, log }
}

// ====================================================================== CLI

/// Output of a finished CLI run.
#[derive(Debug)]
pub struct CliOutput {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl CliOutput {
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            Some(code),
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
}

/// Runs `portcullis args...` in `cwd` with `env` (`PORTCULLIS_CONFIG` and `RUST_LOG`
/// cleared first), killing it after [`CLI_TIMEOUT`].
pub async fn cli(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> CliOutput {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("PORTCULLIS_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(CLI_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("portcullis {args:?} did not finish within {CLI_TIMEOUT:?}"))
        .unwrap();
    CliOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Asserts that `output` has a line `FILE:LINE:COL: message` for `file` and `line`,
/// with a numeric column; returns that line.
pub fn assert_error_at(output: &str, file: &str, lines: &[usize]) -> String {
    for l in output.lines() {
        let Some(rest) = l.trim_start().strip_prefix(file) else {
            continue;
        };
        let mut parts = rest.splitn(4, ':');
        let (Some(""), Some(line), Some(col)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(line), Ok(_col)) = (line.parse::<usize>(), col.trim().parse::<usize>()) else {
            continue;
        };
        if lines.contains(&line) {
            return l.to_string();
        }
    }
    panic!("no `{file}:{lines:?}:COL: ...` error line in:\n{output}");
}
