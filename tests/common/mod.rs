//! Shared harness for the integration tests: start the real binary on a free
//! loopback port, a recording/streaming test upstream, generated PKI, minted tokens.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

// ---------------------------------------------------------------- harness

pub const SECRET: &str = "transport-test-secret-0123456789abcdef";

pub struct Proxy {
    pub child: Child,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proxy {
    /// The config text the harness writes: `[server]` on `port` plus `server_extra`,
    /// then `body`, then an HS256 issuer `test` with [`SECRET`].
    pub fn config_text(port: u16, server_extra: &str, body: &str) -> String {
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n{server_extra}\n{body}\n\
             [[issuers]]\nname = \"t\"\nissuer = \"test\"\nsecret = \"{SECRET}\"\n"
        )
    }

    /// Starts portcullis with `body` appended to a `[server]` table on a free port.
    pub fn start(server_extra: &str, body: &str, dir: tempfile::TempDir) -> Proxy {
        let level = std::env::var("TEST_PROXY_LOG").unwrap_or_else(|_| "warn".into());
        Self::start_logging(server_extra, body, dir, &level)
    }

    /// [`Proxy::start`] with `RUST_LOG=level`.
    pub fn start_logging(
        server_extra: &str,
        body: &str,
        dir: tempfile::TempDir,
        level: &str,
    ) -> Proxy {
        let port = free_port();
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, Self::config_text(port, server_extra, body)).unwrap();
        let log = std::fs::File::create(dir.path().join("proxy.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg("--config")
            .arg(&path)
            .env("RUST_LOG", level)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let mut p = Proxy {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(p.addr).is_err() {
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

    /// Rewrites the config file in place (same port), atomically (write + rename).
    pub fn rewrite(&self, server_extra: &str, body: &str) {
        let tmp = self.dir.path().join("proxy.toml.new");
        std::fs::write(
            &tmp,
            Self::config_text(self.addr.port(), server_extra, body),
        )
        .unwrap();
        std::fs::rename(&tmp, self.dir.path().join("proxy.toml")).unwrap();
    }

    /// Sends a signal (`HUP`, `TERM`, ...) to the proxy.
    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(st.success());
    }

    /// Waits up to `limit` for the proxy to exit.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("proxy.log")).unwrap_or_default()
    }

    /// Peak resident memory of the proxy process (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        vm_field(self.child.id(), "VmHWM:")
    }

    pub fn rss_kib(&self) -> u64 {
        vm_field(self.child.id(), "VmRSS:")
    }
}

pub fn vm_field(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn token(sub: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &serde_json::json!({"sub": sub, "iss": "test", "exp": now + 600}),
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A test CA and leaf certificates signed by it.
pub struct Pki {
    pub ca_pem: String,
    pub issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "portcullis test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// Writes `name.crt` / `name.key` for `names` into `dir`.
    pub fn leaf(&self, dir: &Path, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0].clone());
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let c = dir.join(format!("{file}.crt"));
        let k = dir.join(format!("{file}.key"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    pub fn builder(&self, http2: bool) -> reqwest::ClientBuilder {
        let b = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap())
            .use_rustls_tls()
            .timeout(Duration::from_secs(30));
        if http2 {
            b
        } else {
            b.http1_only()
        }
    }

    pub fn client(&self, http2: bool) -> reqwest::Client {
        self.builder(http2).build().unwrap()
    }
}

/// An upstream: records request count; answers per path.
/// `/slow` never answers; `/download/N` streams N MiB; `/upload` hashes the body.
pub async fn spawn_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let h = h.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    h.fetch_add(1, Ordering::SeqCst);
                    upstream_answer(req)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, hits)
}

pub type UpBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

pub fn chunk(i: u64) -> Bytes {
    // Deterministic, incompressible-looking 64 KiB chunks.
    let mut v = vec![0u8; 65536];
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in v.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    Bytes::from(v)
}

pub async fn upstream_answer(req: Request<Incoming>) -> Result<Response<UpBody>, std::io::Error> {
    let path = req.uri().path().to_string();
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if let Some((_, ms)) = path.rsplit_once("/delay/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
    }
    if let Some(n) = path.strip_prefix("/download/") {
        let mib: u64 = n.parse().unwrap();
        let stream = futures_util::stream::iter((0..mib * 16).map(|i| Ok(Frame::data(chunk(i)))));
        return Ok(Response::new(BodyExt::boxed(StreamBody::new(stream))));
    }
    if path == "/upload" {
        let mut body = req.into_body();
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut n = 0u64;
        while let Some(f) = body.frame().await {
            if let Ok(d) = f.map_err(std::io::Error::other)?.into_data() {
                n += d.len() as u64;
                ctx.update(&d);
            }
        }
        let hex: String = ctx
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        return Ok(Response::new(
            Full::new(Bytes::from(format!("{n} {hex}")))
                .map_err(|e| match e {})
                .boxed(),
        ));
    }
    Ok(Response::new(
        Full::new(Bytes::from_static(b"ok"))
            .map_err(|e| match e {})
            .boxed(),
    ))
}

pub fn routes(up: SocketAddr, extra_upstream: &str) -> String {
    format!(
        "[upstreams.app]\nurl = \"http://{up}\"\n{extra_upstream}\n\
         [[routes]]\nname = \"ws\"\npath = \"/ws\"\ntoken_from = [\"header\", \"query:access_token\"]\nupstream = \"app\"\n\
         [[routes]]\nname = \"all\"\npath = \"/**\"\nupstream = \"app\"\n"
    )
}

pub fn raw(addr: SocketAddr, req: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}") {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
