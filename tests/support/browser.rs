//! Headless Chromium for the tests that look at a page as a person does: Debian's
//! `chromium` driven by `playwright-core` (a CDP driver; it downloads no browser),
//! which scripts/test-all.sh installs from npm, pinned, into `target/swagger`.
//! The page scripts launch it through tests/support/browser.mjs. Used by
//! tests/readme.rs (Swagger UI) and tests/admin.rs (the status page; it includes this
//! file by path, beside its own harness).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// The npm packages installed for the browser tests (`target/swagger/node_modules`),
/// after checking that each of `packages` (and playwright-core) is there.
pub fn node_modules(packages: &[&str]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/swagger/node_modules");
    for pkg in packages.iter().chain(&["playwright-core"]) {
        assert!(
            dir.join(pkg).join("package.json").is_file(),
            "{pkg} is not installed in {}: run ./scripts/test-all.sh",
            dir.display()
        );
    }
    dir
}

/// Debian's chromium: `PORTCULLIS_CHROMIUM`, else `chromium` from `PATH`.
pub fn chromium() -> PathBuf {
    let name = std::env::var("PORTCULLIS_CHROMIUM").unwrap_or_else(|_| "chromium".into());
    let found = if name.contains('/') {
        Some(PathBuf::from(&name))
    } else {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|d| d.join(&name))
            .find(|p| p.is_file())
    };
    found.filter(|p| p.is_file()).unwrap_or_else(|| {
        panic!("`{name}` not found: run ./scripts/test-all.sh (it installs Debian's chromium)")
    })
}

/// Runs the playwright script `script` (relative to `tests/`) under node with
/// `NODE_MODULES` and `CHROMIUM` set, plus `env`; returns the JSON object it prints
/// as its last line (the script reports its own failures in it).
pub async fn run_script(script: &str, modules: &Path, env: &[(&str, String)]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(script);
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(&script)
        .env("NODE_MODULES", modules)
        .env("CHROMIUM", chromium())
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the browser run finishes within 120 s")
        .expect("node must be on PATH");
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "no result from {}:\n{stdout}\n{}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

/// The `portcullis_session` cookie among the `cookies` (playwright's
/// `context.cookies()`) a page script reported in `out`: there is one, and it is
/// `HttpOnly` and `SameSite=Lax`.
#[track_caller]
pub fn assert_session_cookie(out: &Value) -> &Value {
    let session = out["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "portcullis_session")
        .expect("a session cookie");
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Lax");
    session
}
