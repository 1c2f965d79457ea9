use super::*;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::json;

const HTU: &str = "https://api.example.com/items";
const NOW: f64 = 1_700_000_000.0;

struct Ec(EcdsaKeyPair);

impl Ec {
    fn new() -> Ec {
        let rng = SystemRandom::new();
        let doc =
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).expect("gen");
        Ec(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref()).expect("key"))
    }
    fn jwk(&self) -> Value {
        let p = self.0.public_key().as_ref();
        json!({"kty": "EC", "crv": "P-256", "x": URL_SAFE_NO_PAD.encode(&p[1..33]), "y": URL_SAFE_NO_PAD.encode(&p[33..65])})
    }
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let msg = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .0
            .sign(&SystemRandom::new(), msg.as_bytes())
            .expect("sign");
        format!("{msg}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
    fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()})
    }
}

fn claims() -> Value {
    json!({"htm": "GET", "htu": HTU, "iat": NOW, "jti": "j1", "ath": ath("tok")})
}

fn expect() -> Expect<'static> {
    Expect {
        method: "GET",
        htu: HTU,
        access_token: Some("tok"),
        leeway: Duration::from_secs(30),
    }
}

#[test]
fn valid_proof_and_thumbprint() {
    let k = Ec::new();
    let c = check(&k.sign(&k.header(), &claims()), &expect(), NOW + 5.0).expect("valid");
    assert_eq!(c.jti, "j1");
    assert_eq!(Some(c.jkt.clone()), jwk::jwk_thumbprint(&k.jwk()));
    assert_eq!(c.jkt.len(), 43);
    // The token endpoint asks for no ath.
    let mut no_ath = claims();
    no_ath.as_object_mut().expect("obj").remove("ath");
    let e = Expect {
        access_token: None,
        ..expect()
    };
    assert!(check(&k.sign(&k.header(), &no_ath), &e, NOW).is_ok());
    assert_eq!(
        check(&k.sign(&k.header(), &no_ath), &expect(), NOW),
        Err(ProofError::Ath)
    );
}

#[test]
fn rfc7638_example_thumbprint() {
    // RFC 7638 §3.1.
    let jwk = json!({"kty": "RSA", "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"});
    assert_eq!(
        jwk::jwk_thumbprint(&jwk).as_deref(),
        Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    );
}

#[test]
fn each_defect_alone() {
    let k = Ec::new();
    let with = |f: &dyn Fn(&mut Value, &mut Value)| {
        let (mut h, mut c) = (k.header(), claims());
        f(&mut h, &mut c);
        check(&k.sign(&h, &c), &expect(), NOW)
    };
    let set = |v: &mut Value, name: &str, x: Value| {
        v.as_object_mut().expect("obj").insert(name.into(), x);
    };
    let del = |v: &mut Value, name: &str| {
        v.as_object_mut().expect("obj").remove(name);
    };
    assert_eq!(
        with(&|h, _| set(h, "typ", "JWT".into())),
        Err(ProofError::Typ)
    );
    assert_eq!(with(&|h, _| del(h, "typ")), Err(ProofError::Typ));
    assert_eq!(
        with(&|h, _| set(h, "alg", "HS256".into())),
        Err(ProofError::Alg)
    );
    assert_eq!(
        with(&|h, _| set(h, "alg", "none".into())),
        Err(ProofError::Alg)
    );
    assert_eq!(
        with(&|h, _| set(h, "alg", "ES384".into())),
        Err(ProofError::BadJwk)
    );
    assert_eq!(with(&|h, _| del(h, "jwk")), Err(ProofError::BadJwk));
    assert_eq!(
        with(&|h, _| set(h, "crit", json!(["x"]))),
        Err(ProofError::Crit)
    );
    assert_eq!(
        with(&|h, _| set(&mut h["jwk"], "d", "AAAA".into())),
        Err(ProofError::PrivateJwk)
    );
    assert_eq!(
        with(&|h, _| set(h, "jwk", Ec::new().jwk())),
        Err(ProofError::Signature)
    );
    assert_eq!(
        with(&|_, c| set(c, "htm", "POST".into())),
        Err(ProofError::Htm)
    );
    assert_eq!(
        with(&|_, c| set(c, "htu", "https://api.example.com/other".into())),
        Err(ProofError::Htu)
    );
    assert_eq!(
        with(&|_, c| set(c, "iat", json!(NOW + 91.0))),
        Err(ProofError::Iat)
    );
    assert_eq!(
        with(&|_, c| set(c, "iat", json!(NOW - 91.0))),
        Err(ProofError::Iat)
    );
    assert_eq!(
        with(&|_, c| set(c, "iat", json!(NOW + 1e12))),
        Err(ProofError::Iat)
    );
    assert_eq!(with(&|_, c| del(c, "iat")), Err(ProofError::Iat));
    assert_eq!(with(&|_, c| del(c, "jti")), Err(ProofError::Jti));
    assert_eq!(
        with(&|_, c| set(c, "jti", "x".repeat(300).into())),
        Err(ProofError::Jti)
    );
    assert_eq!(
        with(&|_, c| set(c, "ath", ath("other").into())),
        Err(ProofError::Ath)
    );
    assert!(with(&|_, c| set(c, "iat", json!(NOW + 89.0))).is_ok());
}

#[test]
fn hostile_input_never_panics() {
    let k = Ec::new();
    let huge = json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": {"kty": "RSA", "e": "AQAB", "n": "A".repeat(20_000)}});
    assert_eq!(
        check(&k.sign(&huge, &claims()), &expect(), NOW),
        Err(ProofError::Malformed)
    );
    let small_rsa = json!({"typ": "dpop+jwt", "alg": "RS256", "jwk": {"kty": "RSA", "e": "AQAB", "n": URL_SAFE_NO_PAD.encode([0xc5u8; 128])}});
    assert_eq!(
        check(&k.sign(&small_rsa, &claims()), &expect(), NOW),
        Err(ProofError::WeakKey)
    );
    for jwk in [
        json!("x"),
        json!({}),
        json!({"kty": "EC"}),
        json!({"kty": "EC", "crv": "P-256", "x": "!", "y": "A"}),
        json!({"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}),
        json!({"kty": "oct", "k": "AAAA"}),
        json!({"kty": 7}),
    ] {
        let h = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        assert!(
            check(&k.sign(&h, &claims()), &expect(), NOW).is_err(),
            "{h}"
        );
    }
    let long = "A".repeat(MAX_PROOF_LEN + 1);
    for junk in ["", ".", "a.b.c", "e30.e30.", long.as_str()] {
        assert_eq!(check(junk, &expect(), NOW), Err(ProofError::Malformed));
    }
}

#[test]
fn replay_keys_and_headers() {
    let a = Checked {
        jkt: "k".into(),
        jti: "j".into(),
    };
    let b = Checked {
        jkt: "k".into(),
        jti: "j2".into(),
    };
    assert_ne!(replay_key(&a), replay_key(&b));
    assert!(
        replay_key(&Checked {
            jkt: "k".into(),
            jti: "x".repeat(256)
        })
        .len()
            < 64
    );
    assert_eq!(
        replay_window(Duration::from_secs(30)),
        Duration::from_secs(180)
    );
    let mut h = HeaderMap::new();
    assert_eq!(header(&h), Ok(None));
    h.append(&DPOP, http::HeaderValue::from_static("a"));
    assert_eq!(header(&h), Ok(Some("a")));
    h.append(&DPOP, http::HeaderValue::from_static("b"));
    assert_eq!(header(&h), Err(ProofError::Several));
    let claims = |v: Value| v.as_object().cloned().expect("obj");
    assert_eq!(
        bound_jkt(&claims(json!({"cnf": {"jkt": "abc"}}))),
        Some("abc")
    );
    assert_eq!(bound_jkt(&claims(json!({"cnf": {"jkt": 1}}))), Some(""));
    assert_eq!(bound_jkt(&claims(json!({"sub": "a"}))), None);
}
