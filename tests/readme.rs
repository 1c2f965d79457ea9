//! The README works as written (issue 16): its examples are run here, not just read.
//!
//! A block is tested when the line before its opening fence is an HTML comment
//! `<!-- test: NAME -->` (invisible once the Markdown is rendered). Every `toml` and
//! `python` block carries one, and every marker is one this file runs:
//!
//! - shell blocks run in one bash session each (variables carry over), with the binary
//!   under test first on `PATH` as `portcullis` and the README's addresses replaced by
//!   the test's. Comment lines starting with `#   ` right under a command are what it
//!   prints: each must appear in its output, in order, `...` matching anything;
//! - `tour`: the 5-minute tour against the root `proxy.toml` (admin listener included);
//! - the config blocks pass `portcullis check`, which changes nothing on disk; the
//!   WebSocket route covers `/ws/`;
//! - FastAPI: the README's `main.py` under uvicorn (FastAPI and uvicorn from PyPI,
//!   pinned, in the venv of `PORTCULLIS_FASTAPI_PYTHON` that scripts/test-all.sh makes),
//!   its `users.toml` and `proxy.toml` under the real binary, its curl session, the rows
//!   of "What changes for your clients", and Swagger UI's Authorize → Try it out →
//!   Execute in headless Chromium (playwright-core and swagger-ui-dist from npm in
//!   `target/swagger`, Debian's chromium: tests/support/browser.rs; the page script in
//!   tests/readme_support/);
//! - the README's list of denial `detail`s is exactly what the binary answers;
//! - "Identity the upstream can trust": the assertion config under the real binary in
//!   front of the README's FastAPI verifier (PyJWT from the venv of
//!   `PORTCULLIS_DPOP_PYTHON`), and the Keycloak DPoP route passing `check`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// Every block marker the README may carry (the denial list is a table, not a block).
const MARKERS: &[&str] = &[
    "tour",
    "demo-fragment",
    "users-reference",
    "fastapi-main",
    "fastapi-users",
    "fastapi-proxy",
    "fastapi-calls",
    "tls-certs",
    "tls-config",
    "websocket-route",
    "login-config",
    "login-keycloak",
    "login-auth0",
    "login-okta",
    "login-google",
    "login-entra",
    "assertion-config",
    "assertion-fastapi",
    "dpop-keycloak",
    "telemetry-config",
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(root().join("README.md")).unwrap()
}

fn demo_config() -> String {
    std::fs::read_to_string(root().join("proxy.toml")).unwrap()
}

// ====================================================================== README blocks

/// A fenced code block of the README.
struct Block {
    marker: Option<String>,
    lang: String,
    text: String,
    line: usize,
}

fn marker_of(line: &str) -> Option<String> {
    let name = line
        .trim()
        .strip_prefix("<!-- test: ")?
        .strip_suffix(" -->")?;
    Some(name.to_owned())
}

fn blocks(md: &str) -> Vec<Block> {
    let lines: Vec<&str> = md.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        if let Some(lang) = lines[i].strip_prefix("```") {
            let marker = i.checked_sub(1).and_then(|p| marker_of(lines[p]));
            let line = i + 1;
            let mut text = String::new();
            i += 1;
            while i < lines.len() && lines[i].trim_end() != "```" {
                text.push_str(lines[i]);
                text.push('\n');
                i += 1;
            }
            out.push(Block {
                marker,
                lang: lang.trim().to_owned(),
                text,
                line,
            });
        }
        i += 1;
    }
    out
}

/// The text of the block marked `name`.
fn block(name: &str) -> String {
    let mut found: Vec<Block> = blocks(&readme())
        .into_iter()
        .filter(|b| b.marker.as_deref() == Some(name))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "README.md should have one block after `<!-- test: {name} -->`"
    );
    found.remove(0).text
}

/// The rows `(status, detail)` of the README's denial list.
fn denial_rows() -> BTreeSet<(u16, String)> {
    let md = readme();
    let mut lines = md
        .lines()
        .skip_while(|l| marker_of(l).as_deref() != Some("denial-details"));
    assert!(
        lines.next().is_some(),
        "README.md has no `<!-- test: denial-details -->` table"
    );
    let mut rows = BTreeSet::new();
    for l in lines.take_while(|l| l.starts_with('|')) {
        let cells: Vec<&str> = l.split('|').map(str::trim).collect();
        let Ok(status) = cells[1].parse::<u16>() else {
            continue; // the header and the separator
        };
        let detail = cells[2].trim_matches('`').to_owned();
        assert!(
            rows.insert((status, detail.clone())),
            "listed twice: {status} {detail}"
        );
    }
    rows
}

#[test]
fn every_example_block_is_tested() {
    let md = readme();
    let all = blocks(&md);
    for b in &all {
        if b.lang == "toml" || b.lang == "python" {
            assert!(
                b.marker.is_some(),
                "README.md:{}: a ```{} block without a `<!-- test: NAME -->` marker",
                b.line,
                b.lang
            );
        }
        if let Some(m) = &b.marker {
            assert!(
                MARKERS.contains(&m.as_str()),
                "README.md:{}: `{m}` is not run by tests/readme.rs",
                b.line
            );
        }
    }
    for m in MARKERS {
        block(m);
    }
    assert!(md.contains("<!-- test: denial-details -->"));
    assert!(md.contains("### What changes for your clients"));
}

// ====================================================================== shell blocks

/// One command of a shell block and the output lines the README shows under it.
struct Step {
    cmd: String,
    expect: Vec<String>,
}

fn steps(script: &str) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    let mut open = false;
    let mut lines = script.lines();
    while let Some(line) = lines.next() {
        if let Some(e) = line.strip_prefix("#   ") {
            assert!(open, "expected output `{line}` is under no command");
            out.last_mut().unwrap().expect.push(e.to_owned());
            continue;
        }
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            open = false;
            continue;
        }
        let mut cmd = line.to_owned();
        while cmd.ends_with('\\') {
            cmd.push('\n');
            cmd.push_str(lines.next().expect("a continued line"));
        }
        out.push(Step {
            cmd,
            expect: Vec::new(),
        });
        open = true;
    }
    out
}

/// A command as it ran.
struct Ran {
    cmd: String,
    expect: Vec<String>,
    out: String,
    code: i32,
}

const STEP: &str = "@@readme-step ";
const RC: &str = "@@readme-rc ";

/// Runs `script` in one bash in `cwd`, `subst` applied to commands and expected output.
async fn run_sh(script: &str, subst: &[(&str, String)], cwd: &Path) -> Vec<Ran> {
    let apply = |s: &str| {
        subst
            .iter()
            .fold(s.to_owned(), |acc, (from, to)| acc.replace(from, to))
    };
    let steps = steps(script);
    let mut sh = String::from("exec 2>&1\n");
    for (i, s) in steps.iter().enumerate() {
        sh.push_str(&format!(
            "echo '{STEP}{i}'\n{}\necho \"\n{RC}$?\"\n",
            apply(&s.cmd)
        ));
    }
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_portcullis"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg("-c")
        .arg(&sh)
        .current_dir(cwd)
        .env("PATH", path)
        .env("NO_PROXY", "*")
        .env_remove("PORTCULLIS_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for v in [
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "all_proxy",
        "ALL_PROXY",
    ] {
        cmd.env_remove(v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the shell block finishes within 120 s")
        .expect("bash runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut ran = Vec::new();
    for (i, s) in steps.into_iter().enumerate() {
        let start = format!("{STEP}{i}\n");
        let from = text
            .find(&start)
            .unwrap_or_else(|| panic!("step {i} `{}` did not run:\n{text}", s.cmd))
            + start.len();
        let rest = &text[from..];
        let end = rest
            .find(&format!("\n{RC}"))
            .unwrap_or_else(|| panic!("step `{}` did not finish:\n{text}", s.cmd));
        let code = rest[end + 1 + RC.len()..]
            .lines()
            .next()
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or(-1);
        ran.push(Ran {
            cmd: apply(&s.cmd),
            expect: s.expect.iter().map(|e| apply(e)).collect(),
            out: rest[..end].to_owned(),
            code,
        });
    }
    ran
}

/// End of the first match of `pattern` (`...` matching anything) in `hay`.
fn find_pattern(hay: &str, pattern: &str) -> Option<usize> {
    let mut pos = 0;
    for piece in pattern.split("...").filter(|p| !p.is_empty()) {
        pos += hay[pos..].find(piece)? + piece.len();
    }
    Some(pos)
}

/// Every command exited 0 and printed what the README shows under it, in order.
fn assert_printed(ran: &[Ran]) {
    for r in ran {
        assert_eq!(
            r.code, 0,
            "`{}` exited {}; it printed:\n{}",
            r.cmd, r.code, r.out
        );
        let mut cursor = 0;
        for e in &r.expect {
            match find_pattern(&r.out[cursor..], e) {
                Some(end) => cursor += end,
                None => panic!(
                    "`{}` should print `{e}` (README.md), after what came before; it printed:\n{}",
                    r.cmd, r.out
                ),
            }
        }
    }
}

// ====================================================================== the tour

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tour_runs_as_written() {
    let demo = demo_config();
    assert!(
        demo.contains("[admin]\nlisten = \"127.0.0.1:9901\""),
        "the demo config has the admin listener the tour uses"
    );
    // The binary (the tour counts requests in the process-wide metrics) on ports written
    // into the config (the tour shows the running config, addresses included).
    let p = Proxy::builder()
        .on_free_port()
        .start_with(|addr| {
            let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
            demo.replace("127.0.0.1:8080", &addr.to_string())
                .replace("127.0.0.1:9901", &admin.to_string())
        })
        .await;
    let admin = p.admin.expect("the demo config has an admin listener");
    let ran = run_sh(
        &block("tour"),
        &[
            ("127.0.0.1:8080", p.addr.to_string()),
            ("127.0.0.1:9901", admin.to_string()),
        ],
        p.dir.path(),
    )
    .await;
    assert_printed(&ran);
    let shown: usize = ran.iter().map(|r| r.expect.len()).sum();
    assert!(
        shown >= 20,
        "the tour shows what its commands print ({shown} lines)"
    );
    for r in ran.iter().filter(|r| r.cmd.contains("mallory")) {
        assert!(
            !r.out.contains("mallory"),
            "a spoofed X-User reached the upstream: {}",
            r.out
        );
    }
    let all: String = ran.iter().map(|r| r.out.as_str()).collect();
    for status in ["HTTP/1.1 401", "HTTP/1.1 403", "HTTP/1.1 400"] {
        assert!(all.contains(status), "{status} in the tour:\n{all}");
    }
    assert!(
        ran.iter()
            .any(|r| r.cmd.starts_with("TOKEN=$(portcullis token")),
        "the tour mints with the binary itself"
    );
}

// ====================================================================== config blocks

fn write(dir: &Path, name: &str, text: &str) {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// `portcullis check` in `dir` passes, and changes nothing there (issue 15).
async fn check_ok(dir: &Path, env: &[(&str, &str)]) -> String {
    let before = disk::snapshot(dir);
    let out = cli(&["check"], dir, env).await;
    assert_eq!(before, disk::snapshot(dir), "`check` wrote in {dir:?}");
    assert_eq!(
        out.code,
        Some(0),
        "portcullis check:\n{}\n{}\n--- proxy.toml\n{}",
        out.stdout,
        out.stderr,
        std::fs::read_to_string(dir.join("proxy.toml")).unwrap_or_default()
    );
    out.stdout
}

const SECRET_HEX: &str = "8d3f0a6b2c9e4f1a7b5d0c3e6f9a2b4d8c1e7f0a3b6d9c2e5f8a1b4c7d0e3f6a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_blocks_pass_check() {
    // The tour's "add an upstream" snippet, added to the demo config.
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "proxy.toml",
        &format!("{}\n{}", demo_config(), block("demo-fragment")),
    );
    check_ok(d.path(), &[]).await;

    // The users.toml of the configuration reference.
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "users.toml", &block("users-reference"));
    write(
        d.path(),
        "proxy.toml",
        &format!(
            "{}[token_endpoint]\nissuer = \"test\"\nusers = \"users.toml\"\n\
             [upstreams.app]\nurl = \"echo:\"\n[[routes]]\npath = \"/**\"\nupstream = \"app\"\n",
            hs_issuer()
        ),
    );
    check_ok(d.path(), &[]).await;

    // The FastAPI migration's proxy.toml and users.toml, as they stand.
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "users.toml", &block("fastapi-users"));
    write(d.path(), "proxy.toml", &block("fastapi-proxy"));
    let table = check_ok(d.path(), &[("PORTCULLIS_JWT_SECRET", SECRET_HEX)]).await;
    for route in ["docs", "openapi", "items", "app"] {
        assert!(table.contains(&format!(" {route} ")), "{table}");
    }

    // TLS: the certificate command, then the config (its SNI entry's files are
    // stand-ins made from the same certificate), with a route to make it whole.
    let d = tempfile::tempdir().unwrap();
    let ran = run_sh(&block("tls-certs"), &[], d.path()).await;
    assert_printed(&ran);
    for ext in ["crt", "key"] {
        std::fs::copy(
            d.path().join(format!("certs/tls.{ext}")),
            d.path().join(format!("certs/admin.{ext}")),
        )
        .unwrap();
    }
    write(
        d.path(),
        "proxy.toml",
        &format!(
            "{}\n[upstreams.app]\nurl = \"echo:\"\n[[routes]]\npath = \"/**\"\naccess = \"public\"\nupstream = \"app\"\n",
            block("tls-config")
        ),
    );
    check_ok(d.path(), &[]).await;

    // The WebSocket route, with its upstream and an issuer.
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "proxy.toml",
        &format!(
            "[upstreams.app]\nurl = \"echo:\"\n{}\n{}",
            hs_issuer(),
            block("websocket-route")
        ),
    );
    check_ok(d.path(), &[]).await;

    // Sign-in (SPEC §9): the [login] example as it stands, and each provider's block
    // with a login route.
    let env = [
        ("OIDC_CLIENT_SECRET", "s"),
        ("PORTCULLIS_COOKIE_SECRET", SECRET_HEX),
        ("AUTH0_CLIENT_ID", "a"),
        ("AUTH0_CLIENT_SECRET", "s"),
        ("OKTA_CLIENT_ID", "o"),
        ("OKTA_CLIENT_SECRET", "s"),
        ("GOOGLE_CLIENT_SECRET", "s"),
        ("ENTRA_CLIENT_ID", "e"),
        ("ENTRA_CLIENT_SECRET", "s"),
    ];
    let app = "[upstreams.app]\nurl = \"echo:\"\n";
    let d = tempfile::tempdir().unwrap();
    write(
        d.path(),
        "proxy.toml",
        &format!("{app}{}", block("login-config")),
    );
    check_ok(d.path(), &env).await;
    for name in [
        "login-keycloak",
        "login-auth0",
        "login-okta",
        "login-google",
        "login-entra",
    ] {
        let d = tempfile::tempdir().unwrap();
        let route = "[[routes]]\npath = \"/**\"\nlogin = true\nupstream = \"app\"\n";
        write(
            d.path(),
            "proxy.toml",
            &format!("{app}{}\n{route}", block(name)),
        );
        check_ok(d.path(), &env).await;
    }
}

/// The README's WebSocket route ahead of a public catch-all (a site with a chat):
/// `/ws/`, as browsers and WebSocket libraries often write it, must be the chat route,
/// never fall through to the public one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_route_covers_a_trailing_slash() {
    let body = format!(
        "[upstreams.app]\nurl = \"echo:\"\n{}\n{}\n\
         [[routes]]\nname = \"site\"\npath = \"/**\"\naccess = \"public\"\nupstream = \"app\"\n",
        hs_issuer(),
        block("websocket-route")
    );
    // The binary: the test reads the access log.
    let p = Proxy::builder().binary().start(&body).await;
    let out = cli(
        &["check", "--config", p.config_path.to_str().unwrap()],
        p.dir.path(),
        &[],
    )
    .await;
    out.assert_code(0);
    let chat = out
        .stdout
        .lines()
        .find(|l| l.contains(" chat "))
        .unwrap_or_else(|| panic!("no chat route in:\n{}", out.stdout));
    assert!(
        chat.contains("/ws/**") && chat.contains("protected"),
        "{chat}"
    );

    for path in ["/ws", "/ws/", "/ws/room/1"] {
        p.get(path, None)
            .await
            .assert_denied(401, "Not authenticated");
    }
    let t = token("alice", json!({}));
    let r = p.get(&format!("/ws/?access_token={t}"), None).await;
    r.assert_status(200);
    let echo = r.json();
    assert_eq!(echo["path"], "/ws/", "{echo}");
    assert_eq!(echo["headers"]["x-user"], "alice", "{echo}");
    assert!(!r.text().contains(&t), "the query token is not forwarded");
    p.get("/about", None).await.assert_status(200);

    // The access log names the route that decided `/ws/`.
    let line = p
        .wait_log_line("access line for /ws/", |l| {
            l["path"] == "/ws/" && l["status"] == 401
        })
        .await;
    assert_eq!(line["route"], "chat", "{line}");
}

// ====================================================================== FastAPI

/// Kills a child process on drop; prints its log if the test panicked.
struct Kill(Child, PathBuf);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- {}\n{}",
                self.1.display(),
                std::fs::read_to_string(&self.1).unwrap_or_default()
            );
        }
    }
}

/// The Python with FastAPI and uvicorn: `PORTCULLIS_FASTAPI_PYTHON` (scripts/test-all.sh
/// sets it), else the venv it installs into, else `python3` from `PATH`.
fn fastapi_python() -> String {
    let py = std::env::var("PORTCULLIS_FASTAPI_PYTHON").unwrap_or_else(|_| {
        let venv = PathBuf::from(std::env::var("HOME").unwrap_or_default())
            .join(".cache/portcullis-fastapi/bin/python");
        if venv.is_file() {
            venv.display().to_string()
        } else {
            "python3".into()
        }
    });
    let ok = Command::new(&py)
        .args(["-c", "import fastapi, uvicorn"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "`{py}` cannot import fastapi and uvicorn: run ./scripts/test-all.sh (it installs \
         them, pinned, into ~/.cache/portcullis-fastapi and sets PORTCULLIS_FASTAPI_PYTHON)"
    );
    py
}

/// npm packages of the Swagger UI test (scripts/test-all.sh installs them there).
fn node_modules() -> PathBuf {
    support::browser::node_modules(&["swagger-ui-dist"])
}

/// The README's app, users and proxy config, running: uvicorn on the app, portcullis
/// in front of it with a fresh `PORTCULLIS_JWT_SECRET`.
struct Stack {
    proxy: Proxy,
    secret: String,
    _app: Kill,
}

async fn start_fastapi() -> Stack {
    let py = fastapi_python();
    let swagger = node_modules().join("swagger-ui-dist");
    let builder = Proxy::builder()
        .file("main.py", block("fastapi-main"))
        .file("users.toml", block("fastapi-users"))
        .file(
            "swagger_offline.py",
            std::fs::read(root().join("tests/readme_support/swagger_offline.py")).unwrap(),
        );
    let dir = builder.dir().to_path_buf();
    let app_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let log = dir.join("uvicorn.log");
    let file = std::fs::File::create(&log).unwrap();
    // `uvicorn main:app`, with only /docs's asset URLs pointed away from the CDN.
    let mut app = Kill(
        Command::new(py)
            .args([
                "-m",
                "uvicorn",
                "swagger_offline:app",
                "--host",
                "127.0.0.1",
            ])
            .arg("--port")
            .arg(app_addr.port().to_string())
            .current_dir(&dir)
            .env("SWAGGER_UI_DIST", &swagger)
            .env(
                "SWAGGER_ASSETS_URL",
                format!("http://{app_addr}/swagger-assets"),
            )
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("uvicorn starts"),
        log,
    );
    let http = http_client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = http
            .get(format!("http://{app_addr}/openapi.json"))
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            break;
        }
        assert!(
            app.0.try_wait().unwrap().is_none(),
            "uvicorn exited during start-up"
        );
        assert!(Instant::now() < deadline, "uvicorn did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let secret = pseudo_random(32, now())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let config = block("fastapi-proxy");
    let proxy = builder
        .env("PORTCULLIS_JWT_SECRET", &secret)
        .start_with(|addr| {
            config
                .replace("127.0.0.1:8080", &addr.to_string())
                .replace("127.0.0.1:8000", &app_addr.to_string())
        })
        .await;
    Stack {
        proxy,
        secret,
        _app: app,
    }
}

async fn login(p: &Proxy, form: &str) -> Reply {
    p.send(
        Req::post("/token", form.as_bytes().to_vec())
            .header("Content-Type", "application/x-www-form-urlencoded"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastapi_example_and_what_changes_for_clients() {
    let s = start_fastapi().await;
    let p = &s.proxy;
    let ran = run_sh(
        &block("fastapi-calls"),
        &[("127.0.0.1:8080", p.addr.to_string())],
        p.dir.path(),
    )
    .await;
    assert_printed(&ran);
    assert!(ran.iter().map(|r| r.expect.len()).sum::<usize>() >= 8);

    // `/users/me/` has no `disabled` field any more.
    let r = login(p, "username=johndoe&password=secret").await;
    r.assert_status(200);
    let access = r.json()["access_token"].as_str().unwrap().to_owned();
    let me = p.get("/users/me/", Some(&access)).await;
    me.assert_status(200);
    let keys: BTreeSet<String> = me.json().as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        ["email", "full_name", "username"].map(String::from).into(),
        "{}",
        me.text()
    );

    // A bad login form: 400 invalid_request, where FastAPI answered 422.
    let r = login(p, "username=johndoe").await;
    r.assert_status(400);
    assert_eq!(
        r.json(),
        json!({"detail": "Missing username or password", "error": "invalid_request"})
    );

    // Expiry: "Token has expired" (not "Could not validate credentials"), with 30 s
    // of leeway.
    let t = now();
    let tok = |exp: u64| {
        let c = json!({"iss": "portcullis", "sub": "johndoe", "iat": t - 600, "exp": exp});
        mint("HS256", Signer::Secret(s.secret.as_bytes()), &c)
    };
    let r = p.get("/users/me/", Some(&tok(t - 120))).await;
    r.assert_denied(401, "Token has expired");
    assert!(
        r.header("www-authenticate")
            .unwrap_or_default()
            .contains("error_description=\"token expired\""),
        "{:?}",
        r.headers
    );
    p.get("/users/me/", Some(&tok(t - 10)))
        .await
        .assert_status(200);

    // /docs and /openapi.json are public only because the config routes them so;
    // /redoc, /docs/ and /docs/oauth2-redirect are behind auth.
    p.get("/docs", None).await.assert_status(200);
    let openapi = p.get("/openapi.json", None).await;
    openapi.assert_status(200);
    for path in ["/redoc", "/docs/", "/docs/oauth2-redirect"] {
        p.get(path, None)
            .await
            .assert_denied(401, "Not authenticated");
    }

    // /token is gone from the app's OpenAPI; Swagger UI still finds it by tokenUrl,
    // and the identity headers are no parameters there.
    let spec = openapi.json();
    let paths: BTreeSet<String> = spec["paths"].as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        paths,
        ["/users/me/", "/users/me/items/"].map(String::from).into()
    );
    assert_eq!(
        spec["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]["password"]
            ["tokenUrl"],
        "token"
    );
    assert!(
        !openapi.text().to_ascii_lowercase().contains("x-user"),
        "identity headers in the schema: {spec}"
    );
}

/// Swagger UI, as a person uses it: Authorize with johndoe / secret, then Try it out →
/// Execute on `/users/me/`, all through portcullis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swagger_ui_authorize_then_execute() {
    let modules = node_modules();
    let s = start_fastapi().await;
    let v = support::browser::run_script(
        "readme_support/swagger.mjs",
        &modules,
        &[
            ("DOCS_URL", s.proxy.url("/docs")),
            ("USERNAME", "johndoe".into()),
            ("PASSWORD", "secret".into()),
            ("OP_PATH", "/users/me/".into()),
        ],
    )
    .await;
    assert!(v["error"].is_null(), "{v}");
    assert_eq!(v["authorized"], true, "Authorize failed: {v}");
    assert!(
        v["validationErrors"].is_null(),
        "Swagger UI refused to send the request: {v}"
    );
    assert_eq!(v["status"], "200", "{v}");
    let body: Value = serde_json::from_str(v["body"].as_str().unwrap()).unwrap();
    assert_eq!(
        body,
        json!({"username": "johndoe", "email": "johndoe@example.com", "full_name": "John Doe"})
    );
    let reqs = v["requests"].as_array().unwrap();
    let sent = |method: &str, path: &str| {
        reqs.iter()
            .find(|r| r["method"] == method && r["path"] == path)
            .unwrap_or_else(|| panic!("no {method} {path} in {v}"))["authorization"]
            .clone()
    };
    assert_eq!(
        sent("POST", "/token"),
        "Basic",
        "Swagger's empty client credentials"
    );
    assert_eq!(sent("GET", "/users/me/"), "Bearer");
}

// ====================================================================== denials

/// The body's `detail`, with the status.
fn detail(r: &Reply) -> (u16, String) {
    let d = r.json()["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("no detail: {}", r.text()))
        .to_owned();
    (r.status, d)
}

fn form(target: &str, body: &str) -> Req {
    Req::post(target, body.as_bytes().to_vec())
        .header("Content-Type", "application/x-www-form-urlencoded")
}

/// SPEC §4 cases on `p` (see the config in the test below).
async fn proxied_denials(p: &Proxy) -> Vec<(u16, String)> {
    let mut seen = Vec::new();
    for (path, bearer) in [
        ("/api/x", None),
        ("/api/x", Some("not.a.token".to_owned())),
        ("/api/x", Some(token("alice", json!({"exp": now() - 120})))),
        // A user of users.toml: the token endpoint's issuer signs this token, and
        // such a token passes only for an enabled user (SPEC §5).
        ("/admin/x", Some(token("johndoe", json!({})))),
        ("/blocked/x", None),
        ("/nowhere", None),
        ("/api/..%2Fx", None),
        ("/dead", None),
        ("/slow", None),
    ] {
        seen.push(detail(&p.get(path, bearer.as_deref()).await));
    }
    let r = p
        .send(form("/token", "username=johndoe&password=secret"))
        .await;
    r.assert_status(200);
    let access = r.json()["access_token"].as_str().unwrap().to_owned();
    p.send(form("/revoke", &format!("token={access}")))
        .await
        .assert_status(200);
    seen.push(detail(&p.get("/api/x", Some(&access)).await));
    seen
}

/// SPEC §5 refusals of the token and revocation endpoints on `p`.
async fn token_endpoint_denials(p: &Proxy) -> Vec<(u16, String)> {
    let mut reqs = vec![
        Req::get("/token"),
        form("/token", "username=johndoe&password=wrong"),
        form("/token", "username=ghost&password=secret"),
        form("/token", "grant_type=refresh_token&refresh_token=bogus"),
        form("/token", "grant_type=client_credentials"),
        form("/token", "username=johndoe"),
        form("/token", "grant_type=refresh_token"),
        form("/revoke", ""),
        Req::post("/token", b"{}".to_vec()).header("Content-Type", "application/json"),
        form("/token", &"x".repeat(17 * 1024)),
        form("/token", "username=%FF&password=x"),
        form("/token", "username=a&username=b&password=x"),
        form("/token", "username=johndoe&password=secret").header("DPoP", "not-a-proof"),
    ];
    // Five failures for one username, then the limit.
    reqs.extend((0..6).map(|_| form("/token", "username=victim&password=wrong")));
    let mut seen = Vec::new();
    for r in reqs {
        seen.push(detail(&p.send(r).await));
    }
    // A body that stops short of its Content-Length, past header_timeout.
    let head = format!(
        "POST /token HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 50\r\n\r\nusername=j",
        p.addr
    );
    seen.push(detail(&p.raw(head.as_bytes()).await));
    seen
}

/// The README lists every `detail` portcullis answers itself, each with its status:
/// every one of them is answered by the binary in a case below, and no case answers
/// one that is not listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denial_details_in_readme_are_what_the_binary_answers() {
    let listed = denial_rows();
    let dead_port = closed_port();
    let dead = dead_port.addr;
    let slow = silent_upstream().await;
    let hash = bcrypt::hash("secret", 4).unwrap();
    let users = format!(
        "[users.johndoe]\npassword_hash = \"{hash}\"\n\
         [users.ghost]\npassword_hash = \"{hash}\"\ndisabled = true\n\
         [users.victim]\npassword_hash = \"{hash}\"\n"
    );
    let token_endpoint = format!(
        "{}[token_endpoint]\nissuer = \"test\"\nusers = \"users.toml\"\n",
        hs_issuer()
    );
    let body = format!(
        "[upstreams.echo]\nurl = \"echo:\"\n\
         [upstreams.dead]\nurl = \"http://{dead}\"\n\
         [upstreams.slow]\nurl = \"http://{slow}\"\ntimeout = \"300ms\"\n{token_endpoint}\
         [[routes]]\nname = \"admin\"\npath = \"/admin/**\"\nscopes = [\"admin\"]\nupstream = \"echo\"\n\
         [[routes]]\nname = \"blocked\"\npath = \"/blocked/**\"\naccess = \"deny\"\n\
         [[routes]]\nname = \"dead\"\npath = \"/dead\"\naccess = \"public\"\nupstream = \"dead\"\n\
         [[routes]]\nname = \"slow\"\npath = \"/slow\"\naccess = \"public\"\nupstream = \"slow\"\n\
         [[routes]]\nname = \"api\"\npath = \"/api/**\"\nupstream = \"echo\"\n"
    );
    let p = Proxy::builder()
        .file("users.toml", &users)
        .server("header_timeout = \"1s\"")
        .start(&body)
        .await;
    let mut seen = BTreeSet::new();
    // Boxed: one state machine for all the cases overflows a debug-build test stack.
    seen.extend(Box::pin(proxied_denials(&p)).await);
    seen.extend(Box::pin(token_endpoint_denials(&p)).await);

    // The state backend down: fail closed, on proxied requests and at the token endpoint.
    let redis_port = closed_port();
    let redis = redis_port.addr;
    let q = Proxy::builder()
        .file("users.toml", &users)
        .start(&format!(
            "[upstreams.echo]\nurl = \"echo:\"\n{token_endpoint}\
             [state]\nbackend = \"redis\"\nurl = \"redis://{redis}/0\"\n\
             [[routes]]\npath = \"/**\"\nupstream = \"echo\"\n"
        ))
        .await;
    let with_jti = token("alice", json!({"jti": "j-1"}));
    seen.insert(detail(&q.get("/x", Some(&with_jti)).await));
    seen.insert(detail(
        &q.send(form("/token", "username=johndoe&password=secret"))
            .await,
    ));

    let unlisted: Vec<_> = seen.difference(&listed).collect();
    let unseen: Vec<_> = listed.difference(&seen).collect();
    assert!(
        unlisted.is_empty() && unseen.is_empty(),
        "answered but not in README's denial list: {unlisted:?}\nlisted but never answered: {unseen:?}"
    );
}

// ====================================================================== assertions, DPoP

/// The README's assertion config in front of its FastAPI verifier: the app accepts
/// what portcullis signed, and refuses a forged `X-User`, a missing or forged assertion,
/// and one for another audience.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertion_fastapi_verifier_against_a_running_portcullis() {
    let app_addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = block("assertion-config").replace("127.0.0.1:8000", &app_addr.to_string());
    let body = format!(
        "{config}\n[upstreams.elsewhere]\nurl = \"echo:\"\n\n{}\n\
         [[routes]]\nname = \"elsewhere\"\npath = \"/elsewhere\"\nupstream = \"elsewhere\"\n\n\
         [[routes]]\npath = \"/**\"\nupstream = \"orders\"\n",
        hs_issuer()
    );
    let builder = Proxy::builder()
        .file("keys/assertions.pem", &p256_key().private_pem)
        .file("main.py", block("assertion-fastapi"));
    let dir = builder.dir().to_path_buf();
    let proxy = builder.start(&body).await;
    let log = dir.join("uvicorn-assert.log");
    let file = std::fs::File::create(&log).unwrap();
    let mut app = Kill(
        Command::new(support::dpop::python())
            .args(["-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port"])
            .arg(app_addr.port().to_string())
            .current_dir(&dir)
            .env("PORTCULLIS_JWKS_URL", proxy.url("/.well-known/jwks.json"))
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("uvicorn starts (run scripts/test-all.sh: PORTCULLIS_DPOP_PYTHON)"),
        log,
    );
    let http = http_client();
    let direct = format!("http://{app_addr}/orders");
    let deadline = Instant::now() + Duration::from_secs(30);
    while http.get(&direct).send().await.is_err() {
        assert!(app.0.try_wait().unwrap().is_none(), "uvicorn exited");
        assert!(Instant::now() < deadline, "uvicorn did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tok = token("alice", json!({}));
    let r = proxy.get("/orders", Some(&tok)).await;
    r.assert_status(200);
    assert_eq!(r.json(), json!({"user": "alice", "email": null}));
    // Straight to the app, skipping portcullis: a forged X-User is not enough.
    let r = http
        .get(&direct)
        .header("X-User", "admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // Nor an assertion signed by another key, or one for another audience.
    let t = now();
    let forged = mint(
        "ES256",
        Signer::Key(p384_key()),
        &json!({"iss": "https://portcullis.internal/", "sub": "admin", "aud": "orders-api", "iat": t, "exp": t + 60}),
    );
    let r = http
        .get(&direct)
        .header("X-Portcullis-Assertion", forged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let echoed = proxy.get("/elsewhere", Some(&tok)).await.json();
    let other = echoed["headers"]["x-portcullis-assertion"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(jwt_part(&other, 1)["aud"], "elsewhere");
    let r = http
        .get(&direct)
        .header("X-Portcullis-Assertion", other)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// The README's Keycloak DPoP route passes `check` (with the upstream it names).
#[tokio::test]
async fn dpop_keycloak_block_passes_check() {
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        "[upstreams.orders]\nurl = \"http://127.0.0.1:8000\"\n\n{}",
        block("dpop-keycloak")
    );
    write(d.path(), "proxy.toml", &text);
    let table = check_ok(d.path(), &[]).await;
    assert!(table.contains("orders"), "{table}");
}

/// The README's `[telemetry]` block passes `check` (with a route to make it whole).
#[tokio::test]
async fn telemetry_block_passes_check() {
    let d = tempfile::tempdir().unwrap();
    let text = format!(
        "[upstreams.app]\nurl = \"echo:\"\n[[routes]]\npath = \"/**\"\naccess = \"public\"\nupstream = \"app\"\n\n{}",
        block("telemetry-config")
    );
    write(d.path(), "proxy.toml", &text);
    check_ok(d.path(), &[]).await;
}
