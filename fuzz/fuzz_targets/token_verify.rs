//! Token verification (SPEC §3) against four issuers (HS256 secret, RS256, ES256 and
//! EdDSA public keys; the key files are in `fuzz/keys/`). Arbitrary bytes as a token:
//! verification never panics, and when it succeeds the token really is signed by the
//! key of the issuer its `iss` names, with an algorithm of that key's family, in
//! canonical base64url, with an `exp` and a usable identity claim (checked here
//! independently of `portcullis::auth`). The seed corpus holds correctly signed
//! tokens (exp in 2100) so mutations start from the accepting paths.
#![no_main]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use libfuzzer_sys::fuzz_target;
use portcullis::auth::verify::{now_secs, Verifier};
use serde_json::Value;
use std::str::FromStr;
use std::sync::OnceLock;

const SECRET: &str = "fuzz-secret-fuzz-secret-fuzz-secret-0123";
const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/keys");

fn config() -> String {
    format!(
        r#"
[upstreams.app]
url = "echo:"
[[issuers]]
name = "hs"
issuer = "hs"
secret = "{SECRET}"
[[issuers]]
name = "rsa"
issuer = "rsa"
public_key = "{KEYS}/rsa.pub.pem"
[[issuers]]
name = "ec"
issuer = "ec"
public_key = "{KEYS}/ec.pub.pem"
[[issuers]]
name = "ed"
issuer = "ed"
public_key = "{KEYS}/ed.pub.pem"
[[routes]]
path = "/**"
upstream = "app"
"#
    )
}

struct Fixture {
    verifier: Verifier,
    /// (iss, key, algorithms the key family allows)
    keys: Vec<(&'static str, DecodingKey, &'static [Algorithm])>,
}

fn pem(name: &str) -> Vec<u8> {
    std::fs::read(format!("{KEYS}/{name}")).expect("fuzz key")
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        portcullis::install_crypto_providers();
        let cfg = portcullis::config::load_str(std::path::Path::new("/fuzz/proxy.toml"), &config())
            .expect("fuzz config");
        // Cache off: every input takes the full verification path.
        let verifier = Verifier::new(cfg.issuers.clone(), "sub".into(), 0).expect("verifier");
        use Algorithm::*;
        let keys = vec![
            (
                "hs",
                DecodingKey::from_secret(SECRET.as_bytes()),
                &[HS256, HS384, HS512][..],
            ),
            (
                "rsa",
                DecodingKey::from_rsa_pem(&pem("rsa.pub.pem")).expect("rsa"),
                &[RS256, RS384, RS512, PS256, PS384, PS512][..],
            ),
            (
                "ec",
                DecodingKey::from_ec_pem(&pem("ec.pub.pem")).expect("ec"),
                &[ES256][..],
            ),
            (
                "ed",
                DecodingKey::from_ed_pem(&pem("ed.pub.pem")).expect("ed"),
                &[EdDSA][..],
            ),
        ];
        Fixture { verifier, keys }
    })
}

/// The independent oracle: is `token` correctly signed for the issuer it names?
fn really_signed(f: &Fixture, token: &str) -> Result<(), String> {
    let parts: Vec<&str> = token.split('.').collect();
    let [h, p, s] = parts.as_slice() else {
        return Err("not three parts".into());
    };
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(h).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|e| e.to_string())?;
    if URL_SAFE_NO_PAD.encode(&sig) != *s {
        return Err("signature not canonical base64url".into());
    }
    let alg = header["alg"].as_str().ok_or("no alg")?;
    let alg = Algorithm::from_str(alg).map_err(|e| e.to_string())?;
    let iss = claims["iss"].as_str().ok_or("no iss")?;
    let (_, key, algs) = f
        .keys
        .iter()
        .find(|(i, _, _)| *i == iss)
        .ok_or("unknown iss")?;
    if !algs.contains(&alg) {
        return Err(format!("{alg:?} is not a {iss} algorithm"));
    }
    let message = format!("{h}.{p}");
    match jsonwebtoken::crypto::verify(s, message.as_bytes(), key, alg) {
        Ok(true) => {}
        other => return Err(format!("signature check: {other:?}")),
    }
    if !claims["exp"].is_number() {
        return Err("no numeric exp".into());
    }
    match claims["sub"].as_str() {
        Some(sub) if !sub.trim().is_empty() && !sub.chars().any(char::is_control) => Ok(()),
        _ => Err("no usable sub".into()),
    }
}

/// `PORTCULLIS_FUZZ_DEBUG=1`: report accepted tokens (to check the seeds verify).
fn debug() -> bool {
    static D: OnceLock<bool> = OnceLock::new();
    *D.get_or_init(|| std::env::var_os("PORTCULLIS_FUZZ_DEBUG").is_some())
}

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let f = fixture();
    if let Ok(v) = f.verifier.verify_uncached(token, now_secs()) {
        if let Err(why) = really_signed(f, token) {
            panic!("accepted a token the oracle refuses ({why}): {token:?}");
        }
        assert!(!v.identity.trim().is_empty());
        if debug() {
            eprintln!("accepted: iss {:?}", v.claims.get("iss"));
        }
    }
    // The cached path must agree (it is the one requests take).
    let _ = f.verifier.verify(token);
});
