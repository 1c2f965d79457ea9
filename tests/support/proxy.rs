//! The proxy under test, in one of two ways, behind one [`Proxy`] API:
//!
//! - **in-process** (the default): the config is written to `proxy.toml` in the
//!   proxy's own temp dir and loaded as `run` loads it
//!   (`portcullis::config::provision::load_creating_keys`); the harness
//!   binds the listeners itself (`127.0.0.1:0`, or the configured address with its
//!   port) and hands them to `portcullis::serve` on a runtime of its own, in a thread
//!   of its own, so a test may block freely. Nothing can take the port in between.
//!   Dropping the proxy stops it at once (no drain).
//! - **the real binary** ([`ProxyBuilder::binary`], implied by [`ProxyBuilder::env`]
//!   and [`ProxyBuilder::nofile`]): for what needs a process: signals (SIGHUP reload,
//!   SIGTERM drain), exit codes, the logs on stdout/stderr, resident memory, resource
//!   limits, environment variables. The config listens on port 0 and the harness
//!   reads the addresses from the proxy's own `portcullis listening` log line (so
//!   `RUST_LOG` must let `portcullis=info` through). Killed on drop; its logs are
//!   printed if the test panicked.
//!
//! The CLI (`check`, `token`, `hash-password`, ...) is run by [`cli`] /
//! [`cli_with_stdin`].

use super::client::{raw, try_raw, Reply, Req};
use super::{CLI_TIMEOUT, START_TIMEOUT, TIMEOUT};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The `[server] listen` the harness writes: the proxy reports (binary) or the
/// harness binds (in-process) the real port.
pub const LISTEN: &str = "127.0.0.1:0";

/// An `[admin]` table listening on a port of its own ([`Proxy::admin`]).
pub const ADMIN: &str = "[admin]\nlisten = \"127.0.0.1:0\"\n";

/// A running proxy (see the module doc).
pub struct Proxy {
    /// The main listener.
    pub addr: SocketAddr,
    /// The admin listener, when the config has one.
    pub admin: Option<SocketAddr>,
    /// The forward-auth decision listener (SPEC §8), when the config has one.
    pub forward_auth: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    server_extra: String,
    run: Run,
}

enum Run {
    InProcess(InProcess),
    Binary(Child),
}

/// Prepares the temp dir (key files, `[server]` lines, how to run) before the proxy
/// starts.
pub struct ProxyBuilder {
    dir: tempfile::TempDir,
    server_extra: String,
    env: Vec<(String, String)>,
    nofile: Option<(u64, u64)>,
    binary: bool,
    free_port: bool,
    tls: String,
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
            binary: false,
            free_port: false,
            tls: String::new(),
        }
    }

    /// Uses `dir` (files already written into it) as the config directory.
    pub fn in_dir(mut self, dir: tempfile::TempDir) -> Self {
        self.dir = dir;
        self
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

    /// Serves TLS: a leaf for `names` from `pki`, written as `tls.crt` / `tls.key` into
    /// the config directory, and a `[server.tls]` table naming them (after the other
    /// `[server]` lines, whenever this is called).
    pub fn tls(mut self, pki: &super::Pki, names: &[&str]) -> Self {
        let (crt, key) = pki.leaf(self.dir.path(), "tls", names);
        self.tls = format!(
            "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            crt.display(),
            key.display()
        );
        self
    }

    /// Runs the real binary instead of serving in-process.
    pub fn binary(mut self) -> Self {
        self.binary = true;
        self
    }

    /// An environment variable for the proxy process (implies [`ProxyBuilder::binary`]).
    /// `RUST_LOG` defaults to `$TEST_PROXY_LOG`, else `info`.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self.binary()
    }

    /// Starts the proxy with this open-files limit (`RLIMIT_NOFILE` soft and hard),
    /// set by `sh`'s `ulimit` before it execs the binary (implies
    /// [`ProxyBuilder::binary`]).
    pub fn nofile(mut self, soft: u64, hard: u64) -> Self {
        self.nofile = Some((soft, hard));
        self.binary()
    }

    /// The binary, listening on a [`free_port`](super::free_port) written into the config
    /// rather than on port 0: only for a test whose output shows the configured address
    /// (`/config`). Started again on another port if that one was taken meanwhile.
    pub fn on_free_port(mut self) -> Self {
        self.free_port = true;
        self.binary()
    }

    /// Writes `proxy.toml` = `[server] listen = "127.0.0.1:0"` + server lines + `body`
    /// and starts the proxy; returns once it accepts connections.
    pub async fn start(mut self, body: &str) -> Proxy {
        self.server_extra.push_str(&std::mem::take(&mut self.tls));
        let (server_extra, body) = (self.server_extra.clone(), body.to_owned());
        self.start_with(move |addr| {
            format!("[server]\nlisten = \"{addr}\"\n{server_extra}\n{body}\n")
        })
        .await
    }

    /// Like [`ProxyBuilder::start`] for a whole config file (one with its own
    /// `[server]` table, such as a README example): `text(listen)` gives the file's text
    /// for the address to listen on ([`LISTEN`]); an `[admin] listen` in it should be
    /// `127.0.0.1:0` too.
    pub async fn start_with(self, text: impl Fn(SocketAddr) -> String) -> Proxy {
        let config_path = self.dir.path().join("proxy.toml");
        if !self.binary {
            let text = text(LISTEN.parse().unwrap());
            std::fs::write(&config_path, &text).unwrap();
            let (run, addr, admin, forward_auth) = InProcess::start(&config_path, &text);
            return Proxy {
                addr,
                admin,
                forward_auth,
                dir: self.dir,
                config_path,
                server_extra: self.server_extra,
                run: Run::InProcess(run),
            };
        }
        let mut proxy = Proxy {
            addr: LISTEN.parse().unwrap(),
            admin: None,
            forward_auth: None,
            dir: self.dir,
            config_path,
            server_extra: self.server_extra,
            run: Run::InProcess(InProcess::none()),
        };
        for attempt in 1..=3 {
            let listen = match self.free_port {
                true => SocketAddr::from(([127, 0, 0, 1], super::free_port())),
                false => LISTEN.parse().unwrap(),
            };
            let text = text(listen);
            std::fs::write(&proxy.config_path, &text).unwrap();
            let child = spawn(proxy.dir.path(), &proxy.config_path, &self.env, self.nofile);
            proxy.run = Run::Binary(child);
            match proxy.wait_listening().await {
                Ok((addr, admin, forward_auth)) => {
                    (proxy.addr, proxy.admin, proxy.forward_auth) = (addr, admin, forward_auth);
                    return proxy;
                }
                Err(e) if self.free_port && attempt < 3 && proxy.logs().contains("in use") => {
                    eprintln!("{e}: a port was taken, again on another");
                }
                Err(e) => panic!("{e}\n--- config\n{text}\n{}", proxy.logs()),
            }
        }
        unreachable!()
    }
}

impl Proxy {
    /// Starts the proxy (in-process) with `body` after a generated `[server]` table.
    pub async fn start(body: &str) -> Proxy {
        ProxyBuilder::new().start(body).await
    }

    pub fn builder() -> ProxyBuilder {
        ProxyBuilder::new()
    }

    /// Whether this is the real binary.
    pub fn is_binary(&self) -> bool {
        matches!(self.run, Run::Binary(_))
    }

    /// The full config text for `body` (same `[server]` lines).
    pub fn config_text(&self, body: &str) -> String {
        format!(
            "[server]\nlisten = \"{LISTEN}\"\n{}\n{body}\n",
            self.server_extra
        )
    }

    /// Replaces the config file atomically (same `[server]` lines), for reload tests;
    /// follow with [`Proxy::signal`]`("HUP")`, or rely on `[server] watch`.
    pub fn rewrite(&self, body: &str) {
        self.rewrite_text(&self.config_text(body));
    }

    /// Like [`Proxy::rewrite`] with other `[server]` lines (`server_extra`) than the
    /// proxy started with.
    pub fn rewrite_server(&self, server_extra: &str, body: &str) {
        self.rewrite_text(&format!(
            "[server]\nlisten = \"{LISTEN}\"\n{server_extra}\n{body}\n"
        ));
    }

    /// Replaces the whole config file atomically with `text`.
    pub fn rewrite_text(&self, text: &str) {
        let tmp = self.dir.path().join("proxy.toml.new");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.config_path).unwrap();
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `http://ADMIN{path}` (panics without an `[admin]` listener).
    pub fn admin_url(&self, path: &str) -> String {
        let admin = self.admin.expect("the config has no [admin] listener");
        format!("http://{admin}{path}")
    }

    /// `GET path` on the admin listener; `None` when it does not answer.
    pub async fn admin_get(&self, path: &str) -> Option<Reply> {
        let admin = self.admin.expect("the config has no [admin] listener");
        let req = Req::get(path).to_bytes(&admin.to_string());
        tokio::time::timeout(TIMEOUT, try_raw(admin, &req))
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// The admin `/readyz` status (0: no answer).
    pub async fn readyz(&self) -> u16 {
        self.admin_get("/readyz").await.map_or(0, |r| r.status)
    }

    /// Waits until `/readyz` says 200 (20 s at most).
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + START_TIMEOUT * 2;
        while self.readyz().await != 200 {
            assert!(Instant::now() < deadline, "never ready: {}", self.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sends a raw request (see [`Req`]) and reads one response.
    pub async fn send(&self, req: Req) -> Reply {
        let bytes = req.to_bytes(&self.addr.to_string());
        self.raw(&bytes).await
    }

    /// Writes `bytes` on a fresh connection and reads one response.
    pub async fn raw(&self, bytes: &[u8]) -> Reply {
        raw(self.addr, bytes, &self.logs()).await
    }

    /// Like [`Proxy::send`] from the local address `ip` (a loopback address other
    /// than 127.0.0.1 makes another TCP peer: trusted-proxy tests).
    pub async fn send_from(&self, ip: [u8; 4], req: Req) -> Reply {
        use tokio::io::AsyncWriteExt;
        let bytes = req.to_bytes(&self.addr.to_string());
        let exchange = async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(SocketAddr::from((ip, 0)))?;
            let mut s = sock.connect(self.addr).await?;
            s.write_all(&bytes).await?;
            super::client::read_response(&mut s).await
        };
        match tokio::time::timeout(TIMEOUT, exchange).await {
            Ok(Ok(r)) => r,
            other => panic!("exchange from {ip:?} failed: {other:?}\n{}", self.logs()),
        }
    }

    /// `GET path` with optional bearer token.
    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Reply {
        let mut r = Req::get(path);
        if let Some(t) = bearer {
            r = r.bearer(t);
        }
        self.send(r).await
    }

    /// The binary's stdout and stderr so far (in-process: a note; the logs of an
    /// in-process proxy go to the test's stdout when `TEST_PROXY_LOG` is set).
    pub fn logs(&self) -> String {
        if !self.is_binary() {
            return "(in-process proxy: set TEST_PROXY_LOG=1 to see its logs)".into();
        }
        let read = |n: &str| std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
        format!(
            "--- portcullis stdout\n{}\n--- portcullis stderr\n{}",
            read("stdout.log"),
            read("stderr.log")
        )
    }

    /// The binary's log lines that are JSON objects (stdout, then stderr); panics for
    /// an in-process proxy, whose logs are the test process's.
    pub fn log_lines(&self) -> Vec<Value> {
        assert!(
            self.is_binary(),
            "an in-process proxy: start it with .binary()"
        );
        ["stdout.log", "stderr.log"]
            .iter()
            .flat_map(|n| {
                let text = std::fs::read_to_string(self.dir.path().join(n)).unwrap_or_default();
                let lines: Vec<Value> = text
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .collect();
                lines
            })
            .collect()
    }

    /// Waits (up to [`TIMEOUT`]) for a log line (see [`Proxy::log_lines`]) that `want`
    /// accepts and returns it; fails the test with `what` and the logs otherwise.
    pub async fn wait_log_line(&self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(l) = self.log_lines().into_iter().find(&want) {
                return l;
            }
            assert!(Instant::now() < deadline, "no {what}: {}", self.logs());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn child(&mut self) -> &mut Child {
        match &mut self.run {
            Run::Binary(c) => c,
            Run::InProcess(_) => panic!("an in-process proxy: start it with .binary()"),
        }
    }

    pub fn pid(&self) -> u32 {
        match &self.run {
            Run::Binary(c) => c.id(),
            Run::InProcess(_) => panic!("an in-process proxy: start it with .binary()"),
        }
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

    /// Exit status if the process has ended.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child().try_wait().ok().flatten()
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

    /// Resident memory of the process (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        vm_field(self.pid(), "VmRSS:")
    }

    /// Peak resident memory of the process (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        vm_field(self.pid(), "VmHWM:")
    }

    /// Waits for the binary's `portcullis listening` line: its main and admin
    /// addresses. Fails fast if the process exits.
    async fn wait_listening(
        &mut self,
    ) -> Result<(SocketAddr, Option<SocketAddr>, Option<SocketAddr>), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let line = self
                .log_lines()
                .into_iter()
                .find(|l| l["message"] == "portcullis listening");
            if let Some(l) = line {
                let addr = |k: &str| l[k].as_str().and_then(|a| a.parse::<SocketAddr>().ok());
                return match addr("listen") {
                    Some(main) => Ok((main, addr("admin"), addr("forward_auth"))),
                    None => Err(format!("no address in the listening line: {l}")),
                };
            }
            if let Some(status) = self.try_wait() {
                return Err(format!("portcullis exited during start-up ({status})"));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no `portcullis listening` line within {START_TIMEOUT:?} (does RUST_LOG \
                     let portcullis=info through?)"
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        match &mut self.run {
            Run::Binary(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Run::InProcess(p) => p.stop(),
        }
        if std::thread::panicking() && self.is_binary() {
            eprintln!("{}", self.logs());
        }
    }
}

/// Starts the binary on `config_path` in `dir` (stdout/stderr appended to logs there).
fn spawn(
    dir: &Path,
    config_path: &Path,
    env: &[(String, String)],
    nofile: Option<(u64, u64)>,
) -> Child {
    let log = |n: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(n))
            .unwrap()
    };
    let level = std::env::var("TEST_PROXY_LOG").unwrap_or_else(|_| "info".into());
    let bin = env!("CARGO_BIN_EXE_portcullis");
    let mut cmd = match nofile {
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
        .arg(config_path)
        .current_dir(dir)
        .env("RUST_LOG", level)
        .env_remove("PORTCULLIS_CONFIG")
        .stdin(Stdio::null())
        .stdout(log("stdout.log"))
        .stderr(log("stderr.log"));
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().expect("spawn portcullis")
}

/// A field of `/proc/PID/status`, in KiB.
pub fn vm_field(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

// ====================================================================== in-process

/// `portcullis::serve` on listeners bound here, on its own runtime and thread.
struct InProcess {
    kill: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InProcess {
    /// Nothing running (a binary proxy before its process starts).
    fn none() -> InProcess {
        InProcess {
            kill: None,
            thread: None,
        }
    }

    /// Compiles the config at `path`, binds its listeners and starts serving; panics
    /// (with `text`) when the config or the app cannot be built.
    /// Returns the main, admin and forward-auth addresses.
    fn start(
        path: &Path,
        text: &str,
    ) -> (
        InProcess,
        SocketAddr,
        Option<SocketAddr>,
        Option<SocketAddr>,
    ) {
        portcullis::install_crypto_providers();
        portcullis::metrics::install();
        if std::env::var_os("TEST_PROXY_LOG").is_some() {
            let _ = portcullis::telemetry::init(None);
        }
        // As `portcullis` (run) loads it: the `generate_key` keys it names are created.
        let cfg = portcullis::config::provision::load_creating_keys(path)
            .unwrap_or_else(|e| panic!("the config does not compile:\n{e}\n--- config\n{text}"));
        let bind = |a: SocketAddr| {
            let l = std::net::TcpListener::bind(a).unwrap_or_else(|e| panic!("bind {a}: {e}"));
            l.set_nonblocking(true).unwrap();
            l
        };
        let main = bind(cfg.server.listen);
        let admin = cfg.admin.map(bind);
        let addr = main.local_addr().unwrap();
        let forward_auth = cfg.forward_auth.as_ref().map(|f| bind(f.listen));
        let admin_addr = admin.as_ref().map(|l| l.local_addr().unwrap());
        let fa_addr = forward_auth.as_ref().map(|l| l.local_addr().unwrap());
        let workers = cfg.server.worker_threads.unwrap_or(2);
        let (kill, killed) = tokio::sync::oneshot::channel::<()>();
        let (ready, up) = std::sync::mpsc::channel::<Result<(), String>>();
        let thread = std::thread::Builder::new()
            .name(format!("portcullis {addr}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let app = match portcullis::app::App::new(cfg) {
                        Ok(app) => app,
                        Err(e) => return drop(ready.send(Err(e.to_string()))),
                    };
                    let listeners = portcullis::Listeners {
                        main: tokio::net::TcpListener::from_std(main).unwrap(),
                        admin: admin.map(|l| tokio::net::TcpListener::from_std(l).unwrap()),
                        forward_auth: forward_auth
                            .map(|l| tokio::net::TcpListener::from_std(l).unwrap()),
                    };
                    let _ = ready.send(Ok(()));
                    tokio::select! {
                        r = portcullis::serve(Arc::clone(&app), listeners, std::future::pending::<()>()) => {
                            if let Err(e) = r {
                                eprintln!("in-process portcullis on {addr}: {e}");
                            }
                        }
                        _ = killed => {}
                    }
                });
                rt.shutdown_background();
            })
            .unwrap();
        match up.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("the app does not start: {e}\n--- config\n{text}"),
            Err(_) => panic!("the in-process proxy thread died during start-up"),
        }
        let run = InProcess {
            kill: Some(kill),
            thread: Some(thread),
        };
        (run, addr, admin_addr, fa_addr)
    }

    /// Stops serving at once: listeners and connections closed, runtime dropped.
    fn stop(&mut self) {
        if let Some(k) = self.kill.take() {
            let _ = k.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
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
    cli_with_stdin(args, cwd, env, None).await
}

/// [`cli`] with `stdin` written to the process (else stdin is empty).
pub async fn cli_with_stdin(
    args: &[&str],
    cwd: &Path,
    env: &[(&str, &str)],
    stdin: Option<&[u8]>,
) -> CliOutput {
    use tokio::io::AsyncWriteExt;
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis"));
    cmd.args(args)
        .current_dir(cwd)
        .env_remove("PORTCULLIS_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // The process may stop reading early (input too long): that is its answer.
        let _ = pipe.write_all(input).await;
    }
    let out = tokio::time::timeout(CLI_TIMEOUT, child.wait_with_output())
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
