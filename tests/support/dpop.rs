//! DPoP proofs and assertion checks by an independent implementation: PyJWT +
//! cryptography from PyPI (`PORTCULLIS_DPOP_PYTHON`, installed by
//! `scripts/test-all.sh`), running `tests/dpop_support/proof.py`. The tests fail,
//! not skip, without it.

use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The venv's python.
pub fn python() -> String {
    std::env::var("PORTCULLIS_DPOP_PYTHON").unwrap_or_else(|_| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/portcullis-dpop/bin/python")
    })
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dpop_support/proof.py")
}

/// Runs proof.py with `request` on stdin; its JSON answer.
pub fn run(request: &Value) -> Value {
    let mut child = Command::new(python())
        .arg(script())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} (run scripts/test-all.sh once): {e}", python()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "proof.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A client key kept in a file (created on first use), and proofs by it.
pub struct ClientKey {
    pub file: PathBuf,
    pub kind: &'static str,
    /// RFC 7638 thumbprint, computed by Python.
    pub jkt: String,
    pub jwk: Value,
}

impl ClientKey {
    /// A new key of `kind` (`ec`, `ec384`, `ed`, `rsa`, `rsa1024`) at `dir/name.pem`.
    pub fn new(dir: &Path, name: &str, kind: &'static str) -> ClientKey {
        let file = dir.join(format!("{name}.pem"));
        let out = run(&json!({"op": "proofs", "key": file, "kind": kind, "proofs": []}));
        ClientKey {
            file,
            kind,
            jkt: out["jkt"].as_str().unwrap().to_owned(),
            jwk: out["jwk"].clone(),
        }
    }

    /// One proof per spec (see proof.py: htm, htu, token, iat, jti, header, claims...).
    pub fn proofs(&self, specs: &[Value]) -> Vec<String> {
        let out =
            run(&json!({"op": "proofs", "key": self.file, "kind": self.kind, "proofs": specs}));
        out["proofs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap().to_owned())
            .collect()
    }

    /// A valid proof for `htm htu` bound to `token`.
    pub fn proof(&self, htm: &str, htu: &str, token: Option<&str>) -> String {
        self.proofs(&[json!({"htm": htm, "htu": htu, "token": token})])
            .remove(0)
    }
}

/// PyJWT's verification of an assertion against a JWKS URL: `{header, claims}`.
pub fn verify_assertion(token: &str, jwks_url: &str, audience: &str, issuer: &str) -> Value {
    run(
        &json!({"op": "verify", "token": token, "jwks_url": jwks_url,
        "audience": audience, "issuer": issuer}),
    )
}
