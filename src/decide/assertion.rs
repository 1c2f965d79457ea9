//! The signed identity assertion (SPEC §10): a compact JWS for the upstream, signed
//! by the `[identity.assertion] issuer`'s private key — header `alg`, `kid` (the
//! issuer's, else the key's RFC 7638 thumbprint), `typ: JWT`; claims `iss`, `sub`
//! (the identity), `aud` (the upstream's `audience`, or the route's name), `iat`,
//! `exp = iat + ttl`, and each `claims_to_headers` claim the caller has.
//!
//! Guarantees: the hot path does not sign per request. One assertion per caller
//! (issuer, identity, the copied claims' values) and audience is kept in a bounded
//! cache and reused while more than half its ttl remains; a lookup costs one keyed
//! hash of those values and one cache probe.

use crate::auth::dpop::jwk::jwk_thumbprint;
use crate::auth::issuer::{Issuer, Verified};
use crate::auth::verify::now_secs;
use crate::config::{Config, Identity};
use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

/// Claims the assertion sets itself: never copied from the caller's token.
const REGISTERED: [&str; 7] = ["iss", "sub", "aud", "iat", "exp", "nbf", "jti"];

/// The assertion signer and its cache, built per config.
pub struct Assertions {
    /// The header that carries the assertion.
    pub header: HeaderName,
    issuer: Arc<Issuer>,
    kid: String,
    ttl: Duration,
    claims: Vec<String>,
    /// The public JWK (with `kid`), for `/.well-known/jwks.json`.
    pub jwk: Value,
    cache: moka::sync::Cache<u128, Arc<Cached>>,
    hasher: std::hash::RandomState,
}

struct Cached {
    sub: String,
    aud: Arc<str>,
    /// Until when it may be handed out again (more than half its ttl left).
    reuse_until: f64,
    value: HeaderValue,
}

impl Assertions {
    /// The signer of `config`'s `[identity.assertion]` (`None` without one, or when
    /// its issuer has no asymmetric key yet).
    pub fn new(config: &Config) -> Option<Assertions> {
        let a = config.identity.assertion.as_ref()?;
        let issuer = config.issuers.get(a.issuer)?.clone();
        let signing = issuer.signing.as_ref()?;
        let mut jwk = signing.public_jwk.clone()?;
        let kid = match &signing.kid {
            Some(k) => k.clone(),
            None => jwk_thumbprint(&jwk)?,
        };
        if let Some(o) = jwk.as_object_mut() {
            o.insert("kid".into(), kid.clone().into());
        }
        let reuse = a.ttl / 2;
        Some(Assertions {
            header: a.header.clone(),
            issuer,
            kid,
            ttl: a.ttl,
            claims: claim_names(&config.identity),
            jwk,
            cache: moka::sync::Cache::builder()
                .max_capacity(crate::defaults::ASSERTION_CACHE_ENTRIES)
                .time_to_live(reuse.max(Duration::from_secs(1)))
                .build(),
            hasher: std::hash::RandomState::new(),
        })
    }

    /// The issuer that signs assertions (its tokens are never accepted).
    pub fn issuer(&self) -> &Arc<Issuer> {
        &self.issuer
    }

    /// The assertion for caller `v` and audience `aud`: the cached one while more than
    /// half its ttl remains, else a new one. `None` only when signing fails.
    pub fn get(&self, v: &Verified, aud: &Arc<str>) -> Option<HeaderValue> {
        let key = self.key(v, aud);
        let now = now_secs();
        if let Some(c) = self.cache.get(&key) {
            if c.reuse_until > now && c.sub == v.identity && c.aud == *aud {
                return Some(c.value.clone());
            }
        }
        let iat = now.floor();
        let value = self.sign(v, aud, iat as u64)?;
        let cached = Cached {
            sub: v.identity.clone(),
            aud: aud.clone(),
            reuse_until: iat + self.ttl.as_secs_f64() / 2.0,
            value: value.clone(),
        };
        self.cache.insert(key, Arc::new(cached));
        Some(value)
    }

    /// 128 bits of keyed SipHash over the caller's issuer, identity, copied claims and
    /// the audience.
    fn key(&self, v: &Verified, aud: &str) -> u128 {
        let half = |domain: u8| {
            let mut h = self.hasher.build_hasher();
            h.write_u8(domain);
            v.issuer.config.iss.hash(&mut h);
            v.identity.hash(&mut h);
            aud.hash(&mut h);
            for c in &self.claims {
                hash_value(&mut h, v.claims.get(c));
            }
            h.finish()
        };
        (u128::from(half(0)) << 64) | u128::from(half(1))
    }

    fn sign(&self, v: &Verified, aud: &str, iat: u64) -> Option<HeaderValue> {
        let key = self.issuer.signing.as_ref()?;
        let mut claims = Map::new();
        claims.insert("iss".into(), self.issuer.iss.clone().into());
        claims.insert("sub".into(), v.identity.clone().into());
        claims.insert("aud".into(), aud.into());
        claims.insert("iat".into(), iat.into());
        claims.insert("exp".into(), iat.saturating_add(self.ttl.as_secs()).into());
        for c in &self.claims {
            if let Some(val) = v.claims.get(c) {
                claims.insert(c.clone(), val.clone());
            }
        }
        let mut header = jsonwebtoken::Header::new(key.alg);
        header.kid = Some(self.kid.clone());
        match jsonwebtoken::encode(&header, &claims, &key.key) {
            Ok(t) => HeaderValue::try_from(t).ok(),
            Err(e) => {
                tracing::error!(error = %e, "identity assertion: signing failed");
                None
            }
        }
    }
}

/// The `claims_to_headers` claims an assertion copies (not the registered ones).
fn claim_names(identity: &Identity) -> Vec<String> {
    let mut names: Vec<String> = identity
        .claims_to_headers
        .iter()
        .map(|(_, c)| c.clone())
        .filter(|c| !REGISTERED.contains(&c.as_str()))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Feeds a claim value to the hasher, tagged by type (no allocation).
fn hash_value(h: &mut impl Hasher, v: Option<&Value>) {
    match v {
        None => h.write_u8(0),
        Some(Value::Null) => h.write_u8(1),
        Some(Value::Bool(b)) => {
            h.write_u8(2);
            b.hash(h);
        }
        Some(Value::Number(n)) => {
            h.write_u8(3);
            match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => i.hash(h),
                (None, Some(u)) => u.hash(h),
                _ => n.as_f64().map(f64::to_bits).hash(h),
            }
        }
        Some(Value::String(s)) => {
            h.write_u8(4);
            s.hash(h);
        }
        Some(Value::Array(a)) => {
            h.write_u8(5);
            h.write_usize(a.len());
            for x in a {
                hash_value(h, Some(x));
            }
        }
        Some(Value::Object(o)) => {
            h.write_u8(6);
            h.write_usize(o.len());
            for (k, x) in o {
                k.hash(h);
                hash_value(h, Some(x));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::app::Runtime;
    use std::sync::Arc;

    fn runtime(dir: &std::path::Path) -> Runtime {
        let pem = crate::auth::keys::generate_ed25519_pem().expect("key");
        std::fs::write(dir.join("a.pem"), pem).expect("write");
        let text = "[upstreams.app]\nurl = \"echo:\"\naudience = \"orders-api\"\n\
            [identity.claims_to_headers]\n\"X-Iss\" = \"iss\"\n\"X-Mail\" = \"email\"\n\
            [identity.assertion]\nissuer = \"a\"\nttl = \"10s\"\n\
            [[issuers]]\nname = \"a\"\nissuer = \"https://a/\"\nprivate_key = \"a.pem\"\n\
            [[issuers]]\nname = \"t\"\nissuer = \"https://t/\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n\
            [[routes]]\nname = \"blocked\"\npath = \"/blocked\"\naccess = \"deny\"\n\
            [[routes]]\npath = \"/**\"\nupstream = \"app\"\n";
        let cfg = crate::config::load_str(&dir.join("proxy.toml"), text).expect("config");
        Runtime::new(cfg).expect("runtime")
    }

    #[test]
    fn audiences_reuse_and_claims() {
        crate::install_crypto_providers();
        let dir = tempfile::tempdir().expect("dir");
        let rt = runtime(dir.path());
        // The upstream's audience, or the route's name for a route without upstream.
        assert_eq!(&*rt.routes[0].audience, "blocked");
        assert_eq!(&*rt.routes[1].audience, "orders-api");
        // The assertion issuer is not trusted for tokens.
        assert!(rt
            .verifier
            .issuers
            .iter()
            .all(|i| i.config.iss != "https://a/"));
        let a = rt.assertions.as_ref().expect("signer");
        let key = jsonwebtoken::EncodingKey::from_secret(b"0123456789abcdef0123456789abcdef");
        let claims = serde_json::json!({"iss": "https://t/", "sub": "alice", "exp": 4_000_000_000u64, "email": "a@x"});
        let tok =
            jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("sign");
        let v = rt.verifier.verify(&tok).expect("verified");
        let aud: Arc<str> = "orders-api".into();
        let first = a.get(&v, &aud).expect("assertion");
        assert_eq!(a.get(&v, &aud), Some(first.clone()));
        let other: Arc<str> = "blocked".into();
        assert_ne!(a.get(&v, &other), Some(first.clone()));
        let text = first.to_str().expect("ascii");
        let payload = text.split('.').nth(1).expect("payload");
        let c = crate::auth::claims::json_object(payload).expect("claims");
        // `iss` is the assertion issuer's, never copied from the token.
        assert_eq!(c["iss"], "https://a/");
        assert_eq!(c["aud"], "orders-api");
        assert_eq!(c["email"], "a@x");
        assert_eq!(c["exp"].as_u64(), c["iat"].as_u64().map(|i| i + 10));
    }
}
