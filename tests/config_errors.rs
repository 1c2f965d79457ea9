//! `portcullis check` (SPEC §1, §2): a valid config prints the route table in match
//! order; an invalid one exits 1 with `FILE:LINE:COL: message` on stderr, FILE as given
//! and LINE computed from the config text here. The proxy refuses to start on the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use support::*;

const UNSET: &str = "PORTCULLIS_TEST_UNSET_VAR_XYZ";

fn base_issuer() -> String {
    format!("[[issuers]]\nname = \"local\"\nissuer = \"local\"\nsecret = \"{SECRET}\"\n")
}

/// A valid config; the pieces are separate so tests can splice errors in.
fn valid() -> String {
    format!(
        r#"[server]
listen = "127.0.0.1:18080"
header_timeout = "10s"

[upstreams.app]
url = "http://127.0.0.1:9"
connect_timeout = "2s"

{}
[[routes]]
name = "health"
path = "/health"
access = "public"
upstream = "app"

[[routes]]
name = "admin"
path = "/admin/**"
scopes = ["admin"]
upstream = "app"

[[routes]]
name = "items"
path = "/api/*/items"
methods = ["GET"]
upstream = "app"

[[routes]]
name = "everything"
path = "/**"
upstream = "app"
"#,
        base_issuer()
    )
}

/// Writes `text` as `proxy.toml` in a temp dir and runs `check --config <abs path>`.
async fn check(text: &str) -> (tempfile::TempDir, String, CliOutput) {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("proxy.toml");
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap().to_string();
    let out = cli(&["check", "--config", &path], dir.path(), &[]).await;
    (dir, path, out)
}

/// `check` fails with exit 1 and an error on the line containing one of `needles`;
/// returns the error line.
async fn assert_check_error(text: &str, needles: &[&str]) -> String {
    let lines: Vec<usize> = needles.iter().map(|n| line_of(text, n)).collect();
    let (_dir, path, out) = check(text).await;
    out.assert_code(1);
    assert_error_at(&out.stderr, &path, &lines)
}

#[tokio::test]
async fn valid_config_prints_routes_in_match_order() {
    let (_dir, _path, out) = check(&valid()).await;
    out.assert_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    let mut last = None;
    for (name, pattern) in [
        ("health", "/health"),
        ("admin", "/admin/**"),
        ("items", "/api/*/items"),
        ("everything", "/**"),
    ] {
        let i = lines
            .iter()
            .position(|l| l.contains(name) && l.contains(pattern))
            .unwrap_or_else(|| panic!("no line with {name} and {pattern}:\n{}", out.stdout));
        if let Some(prev) = last {
            assert!(i > prev, "{name} out of match order:\n{}", out.stdout);
        }
        last = Some(i);
    }
}

#[tokio::test]
async fn routes_that_do_not_always_shadow_are_fine() {
    let text = format!(
        r#"[server]
listen = "127.0.0.1:18080"

[upstreams.app]
url = "http://127.0.0.1:9"

{}
[[routes]]
name = "gets"
path = "/x/**"
methods = ["GET"]
upstream = "app"

[[routes]]
name = "posts"
path = "/x/y"
methods = ["POST"]
upstream = "app"

[[routes]]
name = "one-host"
host = "a.example.com"
path = "/**"
upstream = "app"

[[routes]]
name = "star"
path = "/s/*"
upstream = "app"

[[routes]]
name = "deeper"
path = "/s/a/b"
upstream = "app"

[[routes]]
name = "rest"
path = "/**"
upstream = "app"
"#,
        base_issuer()
    );
    let (_dir, _path, out) = check(&text).await;
    out.assert_code(0);
}

#[tokio::test]
async fn unknown_key_in_server() {
    let text = valid().replace(
        "header_timeout = \"10s\"",
        "header_timeout = \"10s\"\nlisen = \"0.0.0.0:8080\"",
    );
    let line = assert_check_error(&text, &["lisen"]).await;
    assert!(
        line.contains("lisen"),
        "message should name the key: {line}"
    );
}

#[tokio::test]
async fn unknown_key_in_route() {
    let text = valid().replace(
        "scopes = [\"admin\"]",
        "scopes = [\"admin\"]\nacess = \"public\"",
    );
    let line = assert_check_error(&text, &["acess"]).await;
    assert!(
        line.contains("acess"),
        "message should name the key: {line}"
    );
}

#[tokio::test]
async fn unknown_key_in_issuer() {
    let text = valid().replace(
        "issuer = \"local\"",
        "issuer = \"local\"\naudience = [\"x\"]",
    );
    let line = assert_check_error(&text, &["audience ="]).await;
    assert!(
        line.contains("audience"),
        "message should name the key: {line}"
    );
}

#[tokio::test]
async fn bad_duration() {
    let text = valid().replace(
        "header_timeout = \"10s\"",
        "header_timeout = \"10 parsecs\"",
    );
    assert_check_error(&text, &["10 parsecs"]).await;
    let text = valid().replace("connect_timeout = \"2s\"", "connect_timeout = \"fast\"");
    assert_check_error(&text, &["\"fast\""]).await;
}

#[tokio::test]
async fn route_naming_an_unknown_upstream() {
    let text = valid().replace(
        "path = \"/admin/**\"\nscopes = [\"admin\"]\nupstream = \"app\"",
        "path = \"/admin/**\"\nscopes = [\"admin\"]\nupstream = \"nope\"",
    );
    let line = assert_check_error(&text, &["upstream = \"nope\""]).await;
    assert!(
        line.contains("nope"),
        "message should name the upstream: {line}"
    );
}

#[tokio::test]
async fn missing_public_key_file() {
    let text = valid().replace(
        &base_issuer(),
        "[[issuers]]\nname = \"rsa\"\nissuer = \"rsa\"\npublic_key = \"keys/does-not-exist.pem\"\n",
    );
    assert_check_error(&text, &["does-not-exist.pem"]).await;
}

#[tokio::test]
async fn unset_environment_variable() {
    let text = valid().replace(SECRET, &format!("${{{UNSET}}}"));
    let line = assert_check_error(&text, &[UNSET]).await;
    assert!(
        line.contains(UNSET),
        "message should name the variable: {line}"
    );
}

#[tokio::test]
async fn shadowed_route() {
    let text = format!(
        r#"[server]
listen = "127.0.0.1:18080"

[upstreams.app]
url = "http://127.0.0.1:9"

{}
[[routes]]
name = "all"
path = "/**"
upstream = "app"

[[routes]]
name = "admin"
path = "/admin"
upstream = "app"
"#,
        base_issuer()
    );
    // The second route (its table header, name or path) is what is reported.
    let header = text
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "[[routes]]")
        .nth(1)
        .unwrap()
        .0;
    let name = line_of(&text, "name = \"admin\"");
    let path = line_of(&text, "path = \"/admin\"");
    let (_dir, file, out) = check(&text).await;
    out.assert_code(1);
    assert_error_at(&out.stderr, &file, &[header + 1, name, path]);
}

#[tokio::test]
async fn shadowed_by_a_wider_pattern_and_method_set() {
    let text = format!(
        r#"[server]
listen = "127.0.0.1:18080"

[upstreams.app]
url = "http://127.0.0.1:9"

{}
[[routes]]
name = "admin-tree"
path = "/admin/**"
upstream = "app"

[[routes]]
name = "admin-users"
path = "/admin/users"
methods = ["GET"]
upstream = "app"
"#,
        base_issuer()
    );
    let header = text
        .lines()
        .enumerate()
        .filter(|(_, l)| *l == "[[routes]]")
        .nth(1)
        .unwrap()
        .0;
    let name = line_of(&text, "name = \"admin-users\"");
    let path = line_of(&text, "path = \"/admin/users\"");
    let (_dir, file, out) = check(&text).await;
    out.assert_code(1);
    assert_error_at(&out.stderr, &file, &[header + 1, name, path]);
}

#[tokio::test]
async fn every_error_is_reported() {
    let text = valid()
        .replace(
            "path = \"/health\"\naccess = \"public\"\nupstream = \"app\"",
            "path = \"/health\"\naccess = \"public\"\nupstream = \"ghost-one\"",
        )
        .replace(
            "path = \"/**\"\nupstream = \"app\"",
            "path = \"/**\"\nupstream = \"ghost-two\"",
        )
        .replace(
            &base_issuer(),
            "[[issuers]]\nname = \"rsa\"\nissuer = \"rsa\"\npublic_key = \"missing-key.pem\"\n",
        );
    let (_dir, path, out) = check(&text).await;
    out.assert_code(1);
    for needle in ["ghost-one", "ghost-two", "missing-key.pem"] {
        assert_error_at(&out.stderr, &path, &[line_of(&text, needle)]);
    }
}

#[tokio::test]
async fn file_is_named_as_given() {
    let dir = tempfile::tempdir().unwrap();
    let text = valid().replace(
        "header_timeout = \"10s\"",
        "header_timeout = \"10 parsecs\"",
    );
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    std::fs::write(dir.path().join("conf/edge.toml"), &text).unwrap();
    let out = cli(&["check", "--config", "conf/edge.toml"], dir.path(), &[]).await;
    out.assert_code(1);
    let line = assert_error_at(
        &out.stderr,
        "conf/edge.toml",
        &[line_of(&text, "10 parsecs")],
    );
    assert!(line.starts_with("conf/edge.toml:"), "{line}");
}

#[tokio::test]
async fn proxy_refuses_to_start_on_an_invalid_config() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let text = valid()
        .replace("127.0.0.1:18080", &format!("127.0.0.1:{port}"))
        .replace(
            "path = \"/admin/**\"\nscopes = [\"admin\"]\nupstream = \"app\"",
            "path = \"/admin/**\"\nscopes = [\"admin\"]\nupstream = \"nope\"",
        );
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, &text).unwrap();
    let path = path.to_str().unwrap().to_string();
    let out = cli(&["--config", &path], dir.path(), &[]).await;
    assert_ne!(out.code, Some(0), "proxy started on an invalid config");
    assert!(out.code.is_some(), "killed by a signal: {out:?}");
    let all = format!("{}\n{}", out.stderr, out.stdout);
    assert_error_at(&all, &path, &[line_of(&text, "upstream = \"nope\"")]);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "something listens on the port"
    );
}

#[tokio::test]
async fn variable_substitution_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let text = valid().replace(SECRET, "${PORTCULLIS_TEST_SECRET_SET}");
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, &text).unwrap();
    let path = path.to_str().unwrap().to_string();
    let out = cli(
        &["check", "--config", &path],
        dir.path(),
        &[(
            "PORTCULLIS_TEST_SECRET_SET",
            "from-the-environment-0123456789abcdef",
        )],
    )
    .await;
    out.assert_code(0);
    let out = cli(&["check", "--config", &path], dir.path(), &[]).await;
    out.assert_code(1);
    assert_error_at(
        &out.stderr,
        &path,
        &[line_of(&text, "PORTCULLIS_TEST_SECRET_SET")],
    );
}

/// Issue 14: users.toml mixing bcrypt costs (or algorithms, argon2 parameters) lets
/// login timing tell those users from unknown ones: `check` warns at each odd user's
/// `password_hash` (`warning: FILE:LINE:COL: ...`) and still exits 0.
#[tokio::test]
async fn check_warns_of_mixed_password_hashes() {
    let hash = |cost| portcullis::password::hash_password(b"pw", false, cost).unwrap();
    let (ten, twelve, four) = (hash(10), hash(12), hash(4));
    let users = format!(
        "[users.a]\npassword_hash = \"{ten}\"\n\n[users.b]\npassword_hash = \"{ten}\"\n\n\
         [users.c]\npassword_hash = \"{ten}\"\n\n[users.slow]\npassword_hash = \"{twelve}\"\n\n\
         [users.fast]\npassword_hash = \"{four}\"\n"
    );
    let text = format!(
        "{}\n[token_endpoint]\nissuer = \"local\"\nusers = \"users.toml\"\n",
        valid()
    );
    let dir = tempfile::tempdir().unwrap();
    let users_path = dir.path().join("users.toml");
    std::fs::write(&users_path, &users).unwrap();
    let path = dir.path().join("proxy.toml");
    std::fs::write(&path, &text).unwrap();
    let out = cli(
        &["check", "--config", path.to_str().unwrap()],
        dir.path(),
        &[],
    )
    .await;
    out.assert_code(0);
    assert!(out.stdout.contains(": ok"), "{}", out.stdout);
    let warnings: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 2, "{}", out.stderr);
    let file = users_path.to_str().unwrap();
    for (w, user, params) in [
        (warnings[0], "slow", "bcrypt:12"),
        (warnings[1], "fast", "bcrypt:4"),
    ] {
        let line = line_of(&users, &format!("[users.{user}]")) + 1;
        assert!(
            w.starts_with(&format!("warning: {file}:{line}:17: user `{user}`: ")),
            "{w}"
        );
        assert!(
            w.contains(&format!("{params} differ from the dummy's bcrypt:10")),
            "{w}"
        );
    }
    // One cost for everybody: no warning.
    let same = users.replace(&twelve, &ten).replace(&four, &ten);
    std::fs::write(&users_path, &same).unwrap();
    let out = cli(
        &["check", "--config", path.to_str().unwrap()],
        dir.path(),
        &[],
    )
    .await;
    out.assert_code(0);
    assert!(!out.stderr.contains("warning"), "{}", out.stderr);
}

/// `[state] max_entries`: at least 100; other keys still refused.
#[tokio::test]
async fn state_max_entries_is_checked() {
    let text = format!("{}\n[state]\nmax_entries = 99\n", valid());
    let line = assert_check_error(&text, &["max_entries = 99"]).await;
    assert!(
        line.contains("`max_entries` must be at least 100"),
        "{line}"
    );
    let text = format!("{}\n[state]\nmax_entries = 100\n", valid());
    check(&text).await.2.assert_code(0);
    let text = format!("{}\n[state]\nmax_entry = 100\n", valid());
    let line = assert_check_error(&text, &["max_entry = 100"]).await;
    assert!(line.contains("unknown field `max_entry`"), "{line}");
}

/// `[state] url` takes Redis Cluster and Sentinel URLs (SPEC §11); a malformed one,
/// a `replicas_ack` out of range and a `ca` without TLS are reported at their line,
/// without echoing the password.
#[tokio::test]
async fn state_topology_urls() {
    let with_state = |state: &str| format!("{}\n[state]\nbackend = \"redis\"\n{state}\n", valid());
    for url in [
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
        "rediss+cluster://user:pw@10.0.0.1:6379,10.0.0.2:6379",
        "redis+sentinel://127.0.0.1:26379,127.0.0.1:26380/mymaster",
        "rediss+sentinel://:pw@s1:26379/mymaster/2",
    ] {
        let (_dir, _path, out) =
            check(&with_state(&format!("url = \"{url}\"\nreplicas_ack = 1"))).await;
        out.assert_code(0);
    }
    for (bad, what) in [
        (
            "url = \"redis+cluster://user:hunter2@h1:7000,h2:notaport\"",
            "invalid [state] url",
        ),
        (
            "url = \"redis+sentinel://user:hunter2@s1:26379\"",
            "invalid [state] url",
        ),
        ("url = \"redis+cluster://h1:7000/2\"", "database 0"),
    ] {
        let err = assert_check_error(&with_state(bad), &[bad]).await;
        assert!(err.contains(what), "{err}");
        assert!(!err.contains("hunter2"), "password echoed: {err}");
    }
    let text = with_state("url = \"redis+cluster://h1:7000\"\nreplicas_ack = -1");
    let err = assert_check_error(&text, &["replicas_ack"]).await;
    assert!(err.contains("between 0 and 16"), "{err}");
    let text = with_state("url = \"redis+cluster://h1:7000\"\nca = \"ca.pem\"");
    let err = assert_check_error(&text, &["ca = "]).await;
    assert!(err.contains("rediss+cluster://"), "{err}");
}

// ------------------------------------------------------- every error, in one run

/// The `FILE:LINE:COL: ...` error lines for `file` in `stderr`.
fn error_lines<'a>(stderr: &'a str, file: &str) -> Vec<&'a str> {
    stderr
        .lines()
        .filter(|l| l.starts_with(&format!("{file}:")))
        .collect()
}

/// Issue 16: two routes with a typo each: both are reported, at their lines.
#[tokio::test]
async fn two_route_typos_are_two_errors() {
    let text = valid()
        .replace(
            "scopes = [\"admin\"]",
            "scopes = [\"admin\"]\nacess = \"public\"",
        )
        .replace(
            "methods = [\"GET\"]",
            "methods = [\"GET\"]\nupstrem = \"app\"",
        );
    let (_dir, path, out) = check(&text).await;
    out.assert_code(1);
    let a = assert_error_at(&out.stderr, &path, &[line_of(&text, "acess")]);
    let b = assert_error_at(&out.stderr, &path, &[line_of(&text, "upstrem")]);
    assert!(a.contains("unknown field `acess`"), "{a}");
    assert!(b.contains("unknown field `upstrem`"), "{b}");
    assert_eq!(error_lines(&out.stderr, &path).len(), 2, "{}", out.stderr);
}

/// Issue 16: a mistyped required key is one error, not a second "needs ..." one.
#[tokio::test]
async fn a_mistyped_required_key_is_one_error() {
    let text = valid()
        .replace(
            "path = \"/api/*/items\"\nmethods = [\"GET\"]\nupstream = \"app\"",
            "path = \"/api/*/items\"\nmethods = [\"GET\"]\nupstrem = \"app\"",
        )
        .replace(
            &format!("secret = \"{SECRET}\""),
            &format!("secrt = \"{SECRET}\""),
        );
    let (_dir, path, out) = check(&text).await;
    out.assert_code(1);
    assert_error_at(&out.stderr, &path, &[line_of(&text, "upstrem")]);
    assert_error_at(&out.stderr, &path, &[line_of(&text, "secrt")]);
    assert_eq!(error_lines(&out.stderr, &path).len(), 2, "{}", out.stderr);
}

/// Issue 16: two unknown keys in one table are both named.
#[tokio::test]
async fn two_unknown_keys_in_one_table_are_two_errors() {
    let text = valid().replace(
        "header_timeout = \"10s\"",
        "header_timeout = \"10s\"\nlisen = \"0.0.0.0:1\"\nidle_timout = \"5s\"",
    );
    let (_dir, path, out) = check(&text).await;
    out.assert_code(1);
    assert_error_at(&out.stderr, &path, &[line_of(&text, "lisen")]);
    assert_error_at(&out.stderr, &path, &[line_of(&text, "idle_timout")]);
    assert_eq!(error_lines(&out.stderr, &path).len(), 2, "{}", out.stderr);
}

/// Issue 16: an unset `${VAR}` hides no unknown key, in another section or in its own.
#[tokio::test]
async fn a_missing_variable_and_unknown_keys_are_all_reported() {
    let text = valid()
        .replace(SECRET, &format!("${{{UNSET}}}"))
        .replace(
            "issuer = \"local\"",
            "issuer = \"local\"\naudience = [\"x\"]",
        )
        .replace(
            "header_timeout = \"10s\"",
            "header_timeout = \"10s\"\nlisen = \"0.0.0.0:8080\"",
        );
    let (_dir, path, out) = check(&text).await;
    out.assert_code(1);
    let env = assert_error_at(&out.stderr, &path, &[line_of(&text, UNSET)]);
    assert!(env.contains(&format!("`{UNSET}` is not set")), "{env}");
    let a = assert_error_at(&out.stderr, &path, &[line_of(&text, "audience =")]);
    assert!(a.contains("unknown field `audience`"), "{a}");
    let l = assert_error_at(&out.stderr, &path, &[line_of(&text, "lisen")]);
    assert!(l.contains("unknown field `lisen`"), "{l}");
    // No follow-on about the blank secret (too short, no key source).
    assert_eq!(error_lines(&out.stderr, &path).len(), 3, "{}", out.stderr);
}

/// Issue 16: an unset `${VAR}` where a duration or URL goes is one error, not two.
#[tokio::test]
async fn a_missing_variable_has_no_follow_on_errors() {
    let text = valid()
        .replace(
            "connect_timeout = \"2s\"",
            &format!("connect_timeout = \"${{{UNSET}}}\""),
        )
        .replace(
            "listen = \"127.0.0.1:18080\"",
            &format!("listen = \"${{{UNSET}}}\""),
        );
    let (_dir, path, out) = check(&text).await;
    out.assert_code(1);
    let lines = error_lines(&out.stderr, &path);
    assert_eq!(lines.len(), 2, "{}", out.stderr);
    assert_error_at(&out.stderr, &path, &[line_of(&text, "connect_timeout")]);
    assert_error_at(&out.stderr, &path, &[line_of(&text, "listen =")]);
    assert!(lines.iter().all(|l| l.contains(UNSET)), "{}", out.stderr);
}

/// Issue 16: one bad upstream URL is one error line, not one more per route naming it.
#[tokio::test]
async fn a_bad_upstream_url_is_one_error() {
    let text = valid().replace(
        "url = \"http://127.0.0.1:9\"",
        "url = \"ftp://127.0.0.1:9\"",
    );
    let (_dir, path, out) = check(&text).await;
    out.assert_code(1);
    let line = assert_error_at(&out.stderr, &path, &[line_of(&text, "ftp://")]);
    assert!(line.contains("invalid upstream url"), "{line}");
    assert_eq!(error_lines(&out.stderr, &path).len(), 1, "{}", out.stderr);
    assert!(!out.stderr.contains("unknown upstream"), "{}", out.stderr);
}

/// Issue 16: a missing users file is reported at proxy.toml's `users` line, naming
/// the path it resolved to.
#[tokio::test]
async fn a_missing_users_file_names_the_line_and_the_path() {
    let text = format!(
        "{}\n[token_endpoint]\nissuer = \"local\"\nusers = \"conf/nobody.toml\"\n",
        valid()
    );
    let (dir, path, out) = check(&text).await;
    out.assert_code(1);
    let line = assert_error_at(&out.stderr, &path, &[line_of(&text, "nobody.toml")]);
    let resolved = dir.path().join("conf/nobody.toml");
    assert!(
        line.contains(&format!("`{}`", resolved.display())),
        "names the resolved path: {line}"
    );
    assert!(line.contains("users file"), "{line}");
}

/// A method that is not an HTTP token can never match: it stays an error.
#[tokio::test]
async fn a_method_that_is_not_a_token_is_an_error() {
    let text = valid().replace("methods = [\"GET\"]", "methods = [\"GE T\"]");
    let line = assert_error_at_check(&text, "GE T").await;
    assert!(line.contains("invalid method `GE T`"), "{line}");
}

async fn assert_error_at_check(text: &str, needle: &str) -> String {
    assert_check_error(text, &[needle]).await
}

// ------------------------------------------------------------------- warnings

/// Runs `check` on `text`, which must pass (exit 0, `: ok`); returns the
/// `warning: ` lines.
async fn warnings(text: &str) -> (String, Vec<String>) {
    let (_dir, path, out) = check(text).await;
    out.assert_code(0);
    assert!(out.stdout.contains(": ok"), "{}", out.stdout);
    let w = out
        .stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .map(str::to_string)
        .collect();
    (path, w)
}

/// The one warning, at `needle`'s line (plus `up`: lines above it).
async fn one_warning_at(text: &str, needle: &str, up: usize) -> String {
    let (path, w) = warnings(text).await;
    assert_eq!(w.len(), 1, "{w:#?}");
    let line = line_of(text, needle) - up;
    assert!(
        w[0].starts_with(&format!("warning: {path}:{line}:")),
        "at line {line}: {}",
        w[0]
    );
    w[0].clone()
}

#[tokio::test]
async fn warning_for_a_duplicate_route_name() {
    let text = valid().replace("name = \"items\"", "name = \"admin\"");
    let (path, w) = warnings(&text).await;
    assert_eq!(w.len(), 1, "{w:#?}");
    let second = line_of(&text, "/api/*/items") - 1;
    assert!(
        w[0].starts_with(&format!("warning: {path}:{second}:")),
        "{}",
        w[0]
    );
    assert!(w[0].contains("route name `admin`"), "{}", w[0]);
    // The first one is named by its `[[routes]]` line.
    let first = line_of(&text, "/admin/**") - 2;
    assert!(w[0].contains(&format!("line {first}")), "{}", w[0]);
}

#[tokio::test]
async fn warning_for_a_lower_case_method() {
    let text = valid().replace("methods = [\"GET\"]", "methods = [\"get\"]");
    let w = one_warning_at(&text, "\"get\"", 0).await;
    assert!(w.contains("method `get` is not upper case"), "{w}");
    assert!(w.contains("`GET`"), "{w}");
}

#[tokio::test]
async fn warning_for_a_method_that_is_not_registered() {
    let text = valid().replace("methods = [\"GET\"]", "methods = [\"GET\", \"GETT\"]");
    let w = one_warning_at(&text, "\"GETT\"", 0).await;
    assert!(
        w.contains("method `GETT` is not a registered HTTP method"),
        "{w}"
    );
}

/// A GET-only `/**` before a public `/docs`: `/docs` is public for other methods only.
#[tokio::test]
async fn warning_for_a_route_shadowed_for_some_methods() {
    let text = format!(
        r#"[upstreams.app]
url = "http://127.0.0.1:9"

{}
[[routes]]
name = "reads"
path = "/**"
methods = ["GET", "HEAD"]
upstream = "app"

[[routes]]
name = "docs"
path = "/docs"
access = "public"
upstream = "app"
"#,
        base_issuer()
    );
    // At the route's `[[routes]]` line.
    let w = one_warning_at(&text, "name = \"docs\"", 1).await;
    assert!(
        w.contains("route `docs` is shadowed for GET, HEAD by route `reads`"),
        "{w}"
    );
    // Methods that do not overlap: no warning.
    let (_, w) =
        warnings(&text.replace("path = \"/docs\"", "path = \"/docs\"\nmethods = [\"POST\"]")).await;
    assert!(w.is_empty(), "{w:#?}");
}

/// SPEC §11: a `trusted_proxies` entry that is not a CIDR is an error at it (each
/// bad one reported; a good one beside them is fine).
#[tokio::test]
async fn trusted_proxy_that_is_not_a_cidr() {
    let text = valid().replace(
        "header_timeout = \"10s\"",
        "header_timeout = \"10s\"\ntrusted_proxies = [\n  \"10.0.0.0/8\",\n  \"10.0.0.1\",\n  \"lb.internal/24\",\n]",
    );
    let line = assert_check_error(&text, &["\"10.0.0.1\"", "lb.internal"]).await;
    assert!(line.contains("not a CIDR"), "{line}");
}

/// SPEC §11: a `cors` origin with a path, and `"*"` with `credentials = true`, are
/// errors at them.
#[tokio::test]
async fn cors_origin_with_a_path_or_wildcard_with_credentials() {
    let text = valid().replace(
        "path = \"/health\"",
        "path = \"/health\"\ncors = { origins = [\"https://app.example.com/app\"] }",
    );
    let line = assert_check_error(&text, &["app.example.com/app"]).await;
    assert!(line.contains("has a path"), "{line}");
    let text = valid().replace(
        "path = \"/health\"",
        "path = \"/health\"\ncors = { origins = [\"*\"], credentials = true }",
    );
    let line = assert_check_error(&text, &["credentials = true"]).await;
    assert!(line.contains("credentials"), "{line}");
}

/// SPEC §11 `[telemetry]`: an `otlp_endpoint` that is not an http(s) URL, an unknown
/// key and a `sample_ratio` outside [0, 1] are errors at them (each one reported in
/// one run); a good section passes.
#[tokio::test]
async fn telemetry_endpoint_keys_and_ratio_are_checked() {
    let with = |t: &str| format!("{}\n[telemetry]\n{t}\n", valid());
    let good = "otlp_endpoint = \"http://127.0.0.1:4318\"";
    for ok in [
        format!("{good}\nservice_name = \"edge\"\nsample_ratio = 0.25"),
        "otlp_endpoint = \"https://otel.example.com/otlp/\"\nsample_ratio = 1".to_owned(),
        format!("{good}\nsample_ratio = 0.0"),
    ] {
        check(&with(&ok)).await.2.assert_code(0);
    }
    for bad in [
        "otlp_endpoint = \"127.0.0.1:4318\"",
        "otlp_endpoint = \"grpc://127.0.0.1:4317\"",
        "otlp_endpoint = \"not a url\"",
        "otlp_endpoint = \"http://\"",
    ] {
        let line = assert_check_error(&with(bad), &[bad]).await;
        assert!(line.contains("`otlp_endpoint` must be an http"), "{line}");
    }
    let line = assert_check_error(
        &with(&format!("{good}\nsample_rate = 0.5")),
        &["sample_rate"],
    )
    .await;
    assert!(line.contains("unknown field `sample_rate`"), "{line}");
    for bad in [
        "sample_ratio = 1.5",
        "sample_ratio = -0.1",
        "sample_ratio = nan",
    ] {
        let line = assert_check_error(&with(&format!("{good}\n{bad}")), &[bad]).await;
        assert!(line.contains("between 0 and 1"), "{line}");
    }
    let (_dir, _path, out) = check(&with("sample_ratio = 0.5")).await;
    out.assert_code(1);
    assert!(
        out.stderr.contains("otlp_endpoint"),
        "a missing endpoint is named: {}",
        out.stderr
    );
    // Both at once: both reported, each at its line.
    let text = with("otlp_endpoint = \"ftp://h\"\nsample_ratio = 2");
    let (_dir, path, out) = check(&text).await;
    out.assert_code(1);
    let errors = error_lines(&out.stderr, &path);
    for needle in ["ftp://h", "sample_ratio = 2"] {
        let at = format!("{path}:{}:", line_of(&text, needle));
        assert!(
            errors.iter().any(|e| e.starts_with(&at)),
            "{needle}: {errors:#?}"
        );
    }
}
