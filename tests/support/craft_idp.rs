//! A small OpenID Connect provider of the tests' own, for the ID tokens a real
//! provider will not mint: a real HTTP server on a free loopback port (the recording
//! upstream of [`super::spawn_upstream_with`]) with a discovery document, a JWKS (the
//! suites' RSA key, kid `craft`) and a token endpoint that redeems each code it
//! issued once and answers with an ID token shaped by the test ([`IdToken`]): wrong
//! `nonce`, `aud` or `iss`, a signature by a key nobody trusts. Used by
//! tests/login.rs for the callback's bad-input cases.

use super::{jwt, now, rsa_key, spawn_upstream_with, Recorded, Signer, UpReply, Upstream};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How the next ID token is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdToken {
    /// Right in every way.
    Good,
    /// `nonce` not the one sent.
    WrongNonce,
    /// `aud` another client's.
    WrongAud,
    /// `iss` another issuer's (signed by the same key).
    WrongIss,
    /// Signed by a key nobody trusts (same `kid`).
    BadSignature,
    /// No `id_token` in the answer.
    Missing,
}

#[derive(Default)]
struct St {
    issuer: String,
    client_id: String,
    nonce: String,
    shape: Option<IdToken>,
    /// Issued codes and whether redeemed.
    codes: HashMap<String, bool>,
    /// Token requests received (bodies).
    token_requests: Vec<Recorded>,
    /// Where discovery says the token endpoint is (None: here).
    token_endpoint: Option<String>,
}

/// A running crafted provider.
pub struct CraftIdp {
    /// Its issuer URL (`http://127.0.0.1:PORT`).
    pub issuer: String,
    st: Arc<Mutex<St>>,
    _up: Upstream,
}

fn reply(status: u16, v: &Value) -> UpReply {
    UpReply {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: v.to_string().into(),
    }
}

fn answer(st: &Arc<Mutex<St>>, r: &Recorded) -> UpReply {
    let mut s = st.lock().unwrap();
    let iss = s.issuer.clone();
    match r.path.as_str() {
        "/.well-known/openid-configuration" => reply(
            200,
            &json!({
                "issuer": iss,
                "authorization_endpoint": format!("{iss}/authorize"),
                "token_endpoint": s.token_endpoint.clone().unwrap_or(format!("{iss}/token")),
                "jwks_uri": format!("{iss}/jwks"),
            }),
        ),
        "/jwks" => {
            let mut k = rsa_key().rsa_jwk();
            k["kid"] = json!("craft");
            k["alg"] = json!("RS256");
            reply(200, &json!({"keys": [k]}))
        }
        "/token" => {
            s.token_requests.push(r.clone());
            let body = String::from_utf8_lossy(&r.body).into_owned();
            let code = body
                .split('&')
                .find_map(|p| p.strip_prefix("code="))
                .unwrap_or("")
                .to_owned();
            match s.codes.get_mut(&code) {
                Some(used @ false) => *used = true,
                _ => return reply(400, &json!({"error": "invalid_grant"})),
            }
            let shape = s.shape.unwrap_or(IdToken::Good);
            let t = now();
            let mut c = json!({
                "iss": iss, "sub": "carol", "aud": s.client_id, "iat": t, "exp": t + 300,
                "nonce": s.nonce, "email": "carol@example.com",
            });
            let mut signer = Signer::Key(rsa_key());
            match shape {
                IdToken::WrongNonce => c["nonce"] = json!("not-the-nonce"),
                IdToken::WrongAud => c["aud"] = json!("another-client"),
                IdToken::WrongIss => c["iss"] = json!(format!("{iss}/other")),
                IdToken::BadSignature => signer = Signer::Key(super::attacker_rsa_key()),
                IdToken::Good | IdToken::Missing => {}
            }
            let id = jwt(&json!({"alg": "RS256", "kid": "craft"}), &c, signer);
            let mut out =
                json!({"access_token": "opaque-access", "token_type": "Bearer", "expires_in": 300});
            if shape != IdToken::Missing {
                out["id_token"] = json!(id);
            }
            reply(200, &out)
        }
        _ => reply(404, &json!({"error": "not found"})),
    }
}

impl CraftIdp {
    /// Starts it for client `client_id`.
    pub async fn start(client_id: &str) -> CraftIdp {
        let st: Arc<Mutex<St>> = Arc::default();
        let s2 = st.clone();
        let up = spawn_upstream_with(move |r| answer(&s2, r)).await;
        let issuer = up.url();
        {
            let mut s = st.lock().unwrap();
            s.issuer = issuer.clone();
            s.client_id = client_id.to_owned();
        }
        CraftIdp {
            issuer,
            st,
            _up: up,
        }
    }

    /// The `[[issuers]]` entry for it.
    pub fn issuer_toml(&self, name: &str) -> String {
        format!(
            "[[issuers]]\nname = \"{name}\"\nissuer = \"{}\"\ndiscovery = true\n",
            self.issuer
        )
    }

    /// A fresh code the token endpoint will redeem once, with ID tokens shaped
    /// `shape` carrying `nonce` (what the authorization request asked for).
    pub fn issue_code(&self, nonce: &str, shape: IdToken) -> String {
        let mut s = self.st.lock().unwrap();
        let code = format!("code-{}", s.codes.len() + 1);
        s.codes.insert(code.clone(), false);
        s.nonce = nonce.to_owned();
        s.shape = Some(shape);
        code
    }

    /// The token requests received so far.
    pub fn token_requests(&self) -> Vec<Recorded> {
        self.st.lock().unwrap().token_requests.clone()
    }

    /// Makes discovery name `url` as the token endpoint (an unreachable one: 502).
    pub fn set_token_endpoint(&self, url: &str) {
        self.st.lock().unwrap().token_endpoint = Some(url.to_owned());
    }
}
