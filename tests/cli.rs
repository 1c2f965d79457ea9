//! Command line (SPEC §1): `--version`, `--help`, usage errors, config discovery,
//! `token` (claims, signing key choice, signatures checked here, accepted by a running
//! proxy) and `${VAR}` substitution in a running proxy.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use std::path::Path;
use support::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// A minimal valid config around `issuers` (one route per line of `routes`).
fn config(issuers: &str, extra: &str) -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:18080"

[upstreams.app]
url = "echo:"

{issuers}
{extra}

[[routes]]
name = "everything"
path = "/**"
upstream = "app"
"#
    )
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// Runs `token` and returns the single JWT it printed (checked: one line, 3 segments).
async fn mint_cli(dir: &Path, args: &[&str]) -> String {
    let mut full = vec!["token"];
    full.extend_from_slice(args);
    let out = cli(&full, dir, &[]).await;
    out.assert_code(0);
    assert!(out.stdout.ends_with('\n'), "{:?}", out.stdout);
    let tok = out.stdout.trim_end_matches('\n').trim_end_matches('\r');
    assert_eq!(tok.lines().count(), 1, "one line: {:?}", out.stdout);
    assert!(!tok.contains(char::is_whitespace), "{tok:?}");
    assert_eq!(tok.split('.').count(), 3, "{tok:?}");
    tok.to_string()
}

fn signing_input(tok: &str) -> (String, Vec<u8>) {
    let (input, sig) = tok.rsplit_once('.').unwrap();
    (input.to_string(), b64_decode(sig))
}

fn assert_standard_claims(c: &Value, iss: &str, sub: &str) {
    let t = now();
    assert_eq!(c["iss"], iss, "{c}");
    assert_eq!(c["sub"], sub, "{c}");
    let iat = c["iat"].as_u64().unwrap_or_else(|| panic!("iat: {c}"));
    let exp = c["exp"].as_u64().unwrap_or_else(|| panic!("exp: {c}"));
    assert!(iat + 60 >= t && iat <= t + 60, "iat {iat} vs now {t}");
    assert!(exp > t, "exp {exp} not in the future");
    assert!(c["jti"].as_str().is_some_and(|j| !j.is_empty()), "jti: {c}");
}

#[tokio::test]
async fn version_help_and_usage_errors() {
    let dir = tmp();
    let out = cli(&["--version"], dir.path(), &[]).await;
    out.assert_code(0);
    assert_eq!(
        out.stdout.trim_end(),
        format!("portcullis {}", env!("CARGO_PKG_VERSION"))
    );
    let out = cli(&["--help"], dir.path(), &[]).await;
    out.assert_code(0);
    for word in ["check", "token"] {
        assert!(
            out.stdout.contains(word),
            "--help lacks {word}:\n{}",
            out.stdout
        );
    }
    cli(&["--bogus-flag"], dir.path(), &[]).await.assert_code(2);
    cli(&["frobnicate"], dir.path(), &[]).await.assert_code(2);
    cli(&["check", "--bogus-flag"], dir.path(), &[])
        .await
        .assert_code(2);
    // `token` without --sub is a usage error.
    let path = write(dir.path(), "proxy.toml", &config(&hs_issuer(), ""));
    cli(&["token", "--config", &path], dir.path(), &[])
        .await
        .assert_code(2);
}

#[tokio::test]
async fn config_path_defaults() {
    // $PORTCULLIS_CONFIG, then ./proxy.toml.
    let dir = tmp();
    let path = write(dir.path(), "from-env.toml", &config(&hs_issuer(), ""));
    let out = cli(&["check"], dir.path(), &[("PORTCULLIS_CONFIG", &path)]).await;
    out.assert_code(0);
    assert!(out.stdout.contains("everything"), "{}", out.stdout);

    let dir = tmp();
    write(dir.path(), "proxy.toml", &config(&hs_issuer(), ""));
    let out = cli(&["check"], dir.path(), &[]).await;
    out.assert_code(0);
    assert!(out.stdout.contains("everything"), "{}", out.stdout);

    // No config at all: an error, not a silent default.
    let dir = tmp();
    let out = cli(&["check"], dir.path(), &[]).await;
    assert_ne!(out.code, Some(0), "{out:?}");
}

#[tokio::test]
async fn token_with_a_secret() {
    let dir = tmp();
    let issuers = format!(
        "[[issuers]]\nname = \"local\"\nissuer = \"https://local.test/\"\nsecret = \"{SECRET}\"\naudiences = [\"orders-api\", \"other\"]\n"
    );
    let path = write(dir.path(), "proxy.toml", &config(&issuers, ""));

    let tok = mint_cli(dir.path(), &["--sub", "alice", "--config", &path]).await;
    let header = jwt_part(&tok, 0);
    let c = jwt_part(&tok, 1);
    let alg = header["alg"].as_str().unwrap();
    assert!(["HS256", "HS384", "HS512"].contains(&alg), "{header}");
    let (input, sig) = signing_input(&tok);
    assert_eq!(hmac(alg, SECRET.as_bytes(), input.as_bytes()), sig, "HMAC");
    assert_standard_claims(&c, "https://local.test/", "alice");
    assert!(
        c["aud"] == json!("orders-api") || c["aud"] == json!(["orders-api"]),
        "aud is the first audience: {c}"
    );
    assert!(c.get("scope").is_none(), "no scope asked: {c}");

    let tok = mint_cli(
        dir.path(),
        &[
            "--sub",
            "bob",
            "--scope",
            "items:read admin",
            "--ttl",
            "15m",
            "--config",
            &path,
        ],
    )
    .await;
    let c = jwt_part(&tok, 1);
    assert_standard_claims(&c, "https://local.test/", "bob");
    assert_eq!(c["scope"], "items:read admin");
    let ttl = c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap();
    assert!((898..=902).contains(&ttl), "--ttl 15m gave {ttl} s");

    // jti differs between tokens.
    let a = jwt_part(
        &mint_cli(dir.path(), &["--sub", "x", "--config", &path]).await,
        1,
    );
    let b = jwt_part(
        &mint_cli(dir.path(), &["--sub", "x", "--config", &path]).await,
        1,
    );
    assert_ne!(a["jti"], b["jti"]);
}

#[tokio::test]
async fn token_with_private_keys() {
    for (key, file, algs) in [
        (
            rsa_key(),
            "rsa.pem",
            &["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"][..],
        ),
        (p256_key(), "p256.pem", &["ES256"][..]),
        (ed25519_key(), "ed.pem", &["EdDSA"][..]),
    ] {
        let dir = tmp();
        std::fs::write(dir.path().join(file), &key.private_pem).unwrap();
        let issuers = format!(
            "[[issuers]]\nname = \"signer\"\nissuer = \"https://signer.test/\"\nprivate_key = \"{file}\"\n"
        );
        let path = write(dir.path(), "proxy.toml", &config(&issuers, ""));
        let tok = mint_cli(dir.path(), &["--sub", "carol", "--config", &path]).await;
        let header = jwt_part(&tok, 0);
        let alg = header["alg"].as_str().unwrap();
        assert!(algs.contains(&alg), "{file}: alg {alg}");
        let (input, sig) = signing_input(&tok);
        assert!(
            key.verify(alg, input.as_bytes(), &sig),
            "{file}: signature does not verify with the key"
        );
        let c = jwt_part(&tok, 1);
        assert_standard_claims(&c, "https://signer.test/", "carol");
        assert!(
            c.get("aud").is_none_or(|a| a.is_null()),
            "no audiences: {c}"
        );
    }
}

#[tokio::test]
async fn token_issuer_choice() {
    // The first issuer with a secret or private key...
    let dir = tmp();
    std::fs::write(dir.path().join("pub.pem"), &rsa_key().public_pem).unwrap();
    let issuers = format!(
        "[[issuers]]\nname = \"verify-only\"\nissuer = \"https://verify-only.test/\"\npublic_key = \"pub.pem\"\n\n\
         [[issuers]]\nname = \"first\"\nissuer = \"https://first.test/\"\nsecret = \"{SECRET}\"\n\n\
         [[issuers]]\nname = \"second\"\nissuer = \"https://second.test/\"\nsecret = \"second-secret-0123456789abcdef0123456789\"\n"
    );
    let path = write(dir.path(), "proxy.toml", &config(&issuers, ""));
    let tok = mint_cli(dir.path(), &["--sub", "dave", "--config", &path]).await;
    assert_eq!(jwt_part(&tok, 1)["iss"], "https://first.test/");
    let (input, sig) = signing_input(&tok);
    let alg = jwt_part(&tok, 0)["alg"].as_str().unwrap().to_string();
    assert_eq!(hmac(&alg, SECRET.as_bytes(), input.as_bytes()), sig);

    // ...unless [token_endpoint] names one.
    std::fs::write(dir.path().join("users.toml"), "[users]\n").unwrap();
    let endpoint =
        "[token_endpoint]\npath = \"/token\"\nissuer = \"second\"\nusers = \"users.toml\"\n";
    let path = write(dir.path(), "proxy2.toml", &config(&issuers, endpoint));
    let tok = mint_cli(dir.path(), &["--sub", "dave", "--config", &path]).await;
    assert_eq!(jwt_part(&tok, 1)["iss"], "https://second.test/");
    let (input, sig) = signing_input(&tok);
    let alg = jwt_part(&tok, 0)["alg"].as_str().unwrap().to_string();
    assert_eq!(
        hmac(
            &alg,
            b"second-secret-0123456789abcdef0123456789",
            input.as_bytes()
        ),
        sig
    );
}

#[tokio::test]
async fn token_without_a_signing_issuer_fails() {
    let dir = tmp();
    std::fs::write(dir.path().join("pub.pem"), &rsa_key().public_pem).unwrap();
    let issuers =
        "[[issuers]]\nname = \"v\"\nissuer = \"https://v.test/\"\npublic_key = \"pub.pem\"\n";
    let path = write(dir.path(), "proxy.toml", &config(issuers, ""));
    let out = cli(&["token", "--sub", "x", "--config", &path], dir.path(), &[]).await;
    out.assert_code(1);
    assert!(out.stdout.trim().is_empty(), "{:?}", out.stdout);
    assert!(!out.stderr.trim().is_empty(), "an error message is printed");
}

#[tokio::test]
async fn cli_tokens_are_accepted_by_the_running_proxy() {
    let up = spawn_upstream().await;
    let body = format!(
        r#"
[upstreams.app]
url = "{}"

[[issuers]]
name = "edge"
issuer = "https://edge.test/"
private_key = "signing.pem"
audiences = ["orders-api"]

[[routes]]
name = "admin"
path = "/admin/**"
scopes = ["admin"]
upstream = "app"

[[routes]]
name = "rest"
path = "/**"
upstream = "app"
"#,
        up.url()
    );
    let p = Proxy::builder()
        .file("signing.pem", &rsa_key().private_pem)
        .start(&body)
        .await;
    let path = p.config_path.to_str().unwrap().to_string();
    let tok = mint_cli(
        p.dir.path(),
        &["--sub", "carol", "--scope", "read admin", "--config", &path],
    )
    .await;
    p.get("/admin/panel", Some(&tok)).await.assert_status(200);
    assert_eq!(up.last().header_all("x-user"), vec!["carol"]);
    assert_eq!(up.last().path, "/admin/panel");

    let tok = mint_cli(
        p.dir.path(),
        &["--sub", "dan", "--scope", "read", "--config", &path],
    )
    .await;
    p.get("/x", Some(&tok)).await.assert_status(200);
    assert_eq!(up.last().header_all("x-user"), vec!["dan"]);
    p.get("/admin/panel", Some(&tok))
        .await
        .assert_insufficient(Some("admin"));
}

#[tokio::test]
async fn variables_are_substituted_in_a_running_proxy() {
    let up = spawn_upstream().await;
    let secret = "secret-from-the-environment-0123456789abcdef";
    let body = r#"
[upstreams.app]
url = "http://${PORTCULLIS_TEST_UP_ADDR}"

[[issuers]]
name = "env"
issuer = "${PORTCULLIS_TEST_ISS}"
secret = "${PORTCULLIS_TEST_SECRET}"

[[routes]]
name = "rest"
path = "/**"
upstream = "app"
"#;
    let p = Proxy::builder()
        .env("PORTCULLIS_TEST_UP_ADDR", &up.addr.to_string())
        .env("PORTCULLIS_TEST_ISS", "https://env.test/")
        .env("PORTCULLIS_TEST_SECRET", secret)
        .start(body)
        .await;
    let tok = mint(
        "HS256",
        Signer::Secret(secret.as_bytes()),
        &claims("https://env.test/", "erin"),
    );
    p.get("/env", Some(&tok)).await.assert_status(200);
    assert_eq!(up.last().header_all("x-user"), vec!["erin"]);
    // The literal text is not the secret.
    let literal = mint(
        "HS256",
        Signer::Secret(b"${PORTCULLIS_TEST_SECRET}"),
        &claims("https://env.test/", "erin"),
    );
    p.get("/env", Some(&literal)).await.assert_invalid_token();
}

/// `check`'s route table: every column starts at the same place on every line, however
/// long a cell is (`protected scopes=...`, long names, hosts and method lists).
#[tokio::test]
async fn check_table_columns_line_up() {
    let d = tmp();
    let cfg = r#"
[upstreams.application-backend]
url = "echo:"

[[issuers]]
name = "l"
issuer = "l"
secret = "0123456789abcdef0123456789abcdef"

[[routes]]
name = "a-rather-long-route-name"
host = "*.internal.example.com"
path = "/orders/*/lines/**"
methods = ["GET", "HEAD", "OPTIONS"]
scopes = ["orders:read", "orders:write", "admin"]
upstream = "application-backend"

[[routes]]
name = "x"
path = "/blocked/**"
access = "deny"

[[routes]]
path = "/**"
access = "public"
upstream = "application-backend"
"#;
    let path = write(d.path(), "proxy.toml", cfg);
    let out = cli(&["check", "--config", &path], d.path(), &[]).await;
    out.assert_code(0);
    let lines: Vec<&str> = out.stdout.lines().skip(1).collect();
    let rows: [&[&str]; 4] = [
        &[
            "#", "route", "host", "path", "methods", "access", "upstream",
        ],
        &[
            "1",
            "a-rather-long-route-name",
            "*.internal.example.com",
            "/orders/*/lines/**",
            "GET,HEAD,OPTIONS",
            "protected scopes=orders:read,orders:write,admin",
            "application-backend",
        ],
        &["2", "x", "*", "/blocked/**", "ALL", "deny", "-"],
        &[
            "3",
            "route-3",
            "*",
            "/**",
            "ALL",
            "public",
            "application-backend",
        ],
    ];
    assert_eq!(lines.len(), rows.len(), "{}", out.stdout);
    // Where each column starts, from the header.
    let mut starts = vec![0];
    for name in &rows[0][1..] {
        starts.push(lines[0].find(&format!("  {name}")).unwrap() + 2);
    }
    for (line, cells) in lines.iter().zip(rows) {
        for (i, (start, cell)) in starts.iter().zip(cells).enumerate() {
            assert!(
                line[*start..].starts_with(cell) && (i == 0 || line[..*start].ends_with("  ")),
                "column {i} (`{cell}`) does not start at {start}:\n{}",
                out.stdout
            );
        }
    }
}

/// Runs `portcullis hash-password --cost 4` on a pseudo-terminal (Python's `os.openpty`,
/// the terminal made the process's controlling one) and types `first`, then `second`,
/// as a person would: after the prompt is shown and the terminal's echo is off. Returns
/// what the terminal showed, as JSON `{"screen", "code"}` (`code` null and `waiting_for`
/// set when a prompt or the echo switch did not come within 20 s).
fn hash_password_at_a_terminal(first: &str, second: &str) -> Value {
    const DRIVER: &str = r#"
import fcntl, json, os, select, sys, termios, time
master, slave = os.openpty()
pid = os.fork()
if pid == 0:
    os.setsid()
    os.close(master)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    os.execv(sys.argv[1], [sys.argv[1], "hash-password", "--cost", "4"])
screen = b""
def read(deadline):
    global screen
    r, _, _ = select.select([master], [], [], max(0, deadline - time.time()))
    if not r:
        return False
    try:
        chunk = os.read(master, 4096)
    except OSError:
        return None
    screen += chunk
    return bool(chunk) or None
def give_up(what):
    print(json.dumps({"screen": screen.decode("utf-8", "replace"), "code": None, "waiting_for": what}))
    os.kill(pid, 9)
    sys.exit(0)
def type_at(prompt, text):
    deadline = time.time() + 20
    while prompt not in screen:
        if not read(deadline):
            give_up(prompt.decode())
    while termios.tcgetattr(slave)[3] & termios.ECHO:
        if time.time() > deadline:
            give_up("echo off after " + prompt.decode())
        time.sleep(0.01)
    os.write(master, text.encode() + b"\n")
type_at(b"Password: ", sys.argv[2])
type_at(b"Retype password: ", sys.argv[3])
os.close(slave)  # the terminal then ends when the process does
deadline = time.time() + 20
while read(deadline):
    pass
_, status = os.waitpid(pid, 0)
print(json.dumps({"screen": screen.decode("utf-8", "replace"), "code": os.waitstatus_to_exitcode(status)}))
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            DRIVER,
            env!("CARGO_BIN_EXE_portcullis"),
            first,
            second,
        ])
        .env_remove("PORTCULLIS_CONFIG")
        .output()
        .expect("python3 must be on PATH");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "pty driver: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// At a terminal `hash-password` prompts, twice, and does not echo what is typed (the
/// stdin path for scripts is unchanged: tests/issuer.rs `hash_password_cli`).
#[test]
fn hash_password_prompts_without_echo_at_a_terminal() {
    let pw = "tty-s3cret-horse";
    let v = hash_password_at_a_terminal(pw, pw);
    let screen = v["screen"].as_str().unwrap();
    assert_eq!(v["code"], 0, "{v}");
    assert!(screen.contains("Password: "), "{screen:?}");
    assert!(screen.contains("Retype password: "), "{screen:?}");
    assert!(!screen.contains(pw), "the password was echoed: {screen:?}");
    let hash = screen
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("$2b$04$"))
        .unwrap_or_else(|| panic!("no hash on the terminal: {screen:?}"));
    assert!(bcrypt::verify(pw, hash).unwrap());

    let v = hash_password_at_a_terminal(pw, "something else");
    let screen = v["screen"].as_str().unwrap();
    assert_eq!(v["code"], 1, "{v}");
    assert!(screen.contains("do not match"), "{screen:?}");
    assert!(!screen.contains("$2b$"), "{screen:?}");
    assert!(!screen.contains(pw) && !screen.contains("something else"));
}

/// Issue 15: `check` writes nothing. Each shipped config is checked in a copy of its
/// directory (the root one alone: its demo key does not exist there yet), and the
/// tree is the same before and after, file by file (size, mtime, content).
#[tokio::test]
async fn check_changes_nothing_on_disk() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let configs = disk::shipped_configs();
    assert!(configs.len() >= 3, "{configs:?}");
    for config in configs {
        let dir = tmp();
        let is_root = config.parent() == Some(root);
        if is_root {
            std::fs::copy(&config, dir.path().join("proxy.toml")).unwrap();
        } else {
            disk::copy_dir(config.parent().unwrap(), dir.path());
        }
        let before = disk::snapshot(dir.path());
        let path = dir.path().join("proxy.toml");
        let out = cli(
            &["check", "--config", path.to_str().unwrap()],
            dir.path(),
            &[],
        )
        .await;
        assert_eq!(
            before,
            disk::snapshot(dir.path()),
            "`check` on {} changed files:\n{out:?}",
            config.display()
        );
        if is_root {
            out.assert_code(0);
            assert!(
                out.stderr.contains("note: ") && out.stderr.contains("demo-signing.pem"),
                "says the key is made at start: {}",
                out.stderr
            );
        }
    }
}

/// Issue 15: a `generate_key` key that does not exist (in a directory that does not
/// either) is not written by `check`: not when the config is valid (exit 0, a `note:`
/// naming the resolved path), not when it has an error elsewhere (exit 1), not when
/// the config is found from the working directory. `token` then creates it.
#[tokio::test]
async fn check_writes_no_generate_key_key() {
    let dir = tmp();
    let issuer = "[[issuers]]\nname = \"local\"\nissuer = \"local\"\n\
                  private_key = \"keys/new/signing.pem\"\ngenerate_key = true\n";
    let good = config(issuer, "");
    let bad = config(issuer, "[cache]\ntokens = -1\n");
    let key = dir.path().join("keys/new/signing.pem");
    for (text, code) in [(&good, 0), (&bad, 1)] {
        let path = write(dir.path(), "proxy.toml", text);
        let before = disk::snapshot(dir.path());
        for args in [&["check", "--config", &path][..], &["check"][..]] {
            let out = cli(args, dir.path(), &[]).await;
            out.assert_code(code);
            assert_eq!(before, disk::snapshot(dir.path()), "{args:?}: {out:?}");
            if code == 0 {
                // The resolved path (relative when the config was found as `proxy.toml`).
                let named = if args.len() > 1 {
                    key.display().to_string()
                } else {
                    "keys/new/signing.pem".into()
                };
                let note = out.stderr.lines().find(|l| l.starts_with("note: "));
                assert!(note.is_some_and(|n| n.contains(&named)), "{}", out.stderr);
            }
        }
    }
    assert!(!key.exists() && !dir.path().join("keys").exists());
    let path = write(dir.path(), "proxy.toml", &good);
    mint_cli(dir.path(), &["--sub", "carol", "--config", &path]).await;
    assert!(key.is_file(), "`token` creates the key");
}

/// The README's first command on the root `proxy.toml`: the demo key is created
/// when the proxy starts (mode 0600), and `token` mints with that same key.
/// `token` run first creates it too.
#[tokio::test]
async fn demo_key_is_created_at_start_and_used_by_token() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("proxy.toml")).unwrap();
    // The harness writes its own `[server]` (on a free port): drop the demo's.
    let mut body = String::new();
    let mut in_server = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_server = line == "[server]";
        }
        if !in_server {
            body.push_str(line);
            body.push('\n');
        }
    }
    let p = Proxy::builder().start(&body).await;
    let key = p.dir.path().join(".portcullis/demo-signing.pem");
    let pem = std::fs::read(&key).expect("the demo key is created at start");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let path = p.config_path.to_str().unwrap().to_string();
    let tok = mint_cli(
        p.dir.path(),
        &["--sub", "alice", "--scope", "items:read", "--config", &path],
    )
    .await;
    p.get("/api/items", Some(&tok)).await.assert_status(200);
    assert_eq!(std::fs::read(&key).unwrap(), pem, "token kept the key");

    let dir = tmp();
    let path = write(dir.path(), "proxy.toml", &text);
    mint_cli(dir.path(), &["--sub", "bob", "--config", &path]).await;
    assert!(dir.path().join(".portcullis/demo-signing.pem").is_file());
}
