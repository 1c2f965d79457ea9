//! A real nginx (Debian package `nginx`, installed by `scripts/test-all.sh`) for
//! suites that need a production web server next to portcullis: virtual hosts as
//! the upstream (tests/security_hosts.rs), later an ingress doing forward auth.
//!
//! [`Nginx::start`] writes a config into a temp dir (pid, logs and temp paths all
//! inside it), runs nginx in the foreground as one process (`daemon off;
//! master_process off;`, so killing the child kills every nginx it started) on a
//! free loopback port, waits until it accepts, and kills it on drop. The binary is
//! `PORTCULLIS_NGINX` (exported by test-all.sh), else `nginx` on `PATH` or in
//! `/usr/sbin`; a missing nginx fails the test, it never skips.
//!
//! Access-log lines use [`LOG_FORMAT`]; [`Nginx::hits`] parses them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access-log format every [`Nginx`] writes (tab-separated, one line per request).
pub const LOG_FORMAT: &str =
    r#"$server_name\t$host\t$http_host\t$http_x_forwarded_host\t$status\t$request_uri"#;

/// One access-log line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    /// The `server_name` of the virtual host that answered.
    pub server_name: String,
    /// nginx's `$host` (normalized by nginx).
    pub host: String,
    /// The `Host` field as received.
    pub http_host: String,
    /// `X-Forwarded-Host` as received (`-` when absent).
    pub x_forwarded_host: String,
    pub status: u16,
    pub uri: String,
}

/// A running nginx (killed on drop; its error log printed if the test panicked).
pub struct Nginx {
    child: Child,
    /// Where it listens (`127.0.0.1:PORT`); `@LISTEN@` in the config.
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

/// The nginx binary to run (see the module doc).
pub fn nginx_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PORTCULLIS_NGINX").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|d| d.join("nginx"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "nginx not found (set PORTCULLIS_NGINX or install the Debian package \
                 `nginx`; scripts/test-all.sh does)"
            )
        })
}

impl Nginx {
    /// Starts nginx with `http` as the body of its `http {}` block; each `@LISTEN@`
    /// in it becomes the `127.0.0.1:PORT` nginx listens on. Retries on a new port
    /// when another process took the free one first.
    pub async fn start(http: &str) -> Nginx {
        for attempt in 1..=3 {
            let dir = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
            let addr = SocketAddr::from(([127, 0, 0, 1], super::free_port()));
            let conf = config(dir.path(), &http.replace("@LISTEN@", &addr.to_string()));
            let conf_path = dir.path().join("nginx.conf");
            std::fs::write(&conf_path, &conf).unwrap();
            let child = Command::new(nginx_bin())
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf_path)
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", nginx_bin().display()));
            let mut n = Nginx { child, addr, dir };
            match n.wait_ready().await {
                Ok(()) => return n,
                Err(e) if attempt < 3 && e.contains("in use") => continue,
                Err(e) => panic!(
                    "{e}\n--- nginx.conf\n{conf}\n--- error.log\n{}",
                    n.error_log()
                ),
            }
        }
        unreachable!()
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + super::START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "nginx exited during start-up ({status}){}",
                    if self.error_log().contains("in use") {
                        " - address in use"
                    } else {
                        ""
                    }
                ));
            }
            let connect = tokio::net::TcpStream::connect(self.addr);
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), connect).await {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("nginx did not accept on {} in time", self.addr));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// Every request nginx answered so far, in order.
    pub fn hits(&self) -> Vec<Hit> {
        let text = std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                let [server_name, host, http_host, xfh, status, uri] = f.as_slice() else {
                    return None;
                };
                Some(Hit {
                    server_name: (*server_name).into(),
                    host: (*host).into(),
                    http_host: (*http_host).into(),
                    x_forwarded_host: (*xfh).into(),
                    status: status.parse().ok()?,
                    uri: (*uri).into(),
                })
            })
            .collect()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- nginx error.log\n{}", self.error_log());
        }
    }
}

/// The whole nginx.conf: one foreground process, everything under `dir`.
fn config(dir: &Path, http: &str) -> String {
    let d = dir.display();
    format!(
        "daemon off;\nmaster_process off;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
         log_format portcullis_test \"{LOG_FORMAT}\";\n\
         access_log {d}/access.log portcullis_test;\n\
         client_body_temp_path {d}/tmp/body;\nproxy_temp_path {d}/tmp/proxy;\n\
         fastcgi_temp_path {d}/tmp/fastcgi;\nuwsgi_temp_path {d}/tmp/uwsgi;\n\
         scgi_temp_path {d}/tmp/scgi;\n\
         default_type text/plain;\n\
         {http}\n}}\n"
    )
}
