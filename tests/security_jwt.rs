//! JWT attack corpus (issue #9, SECURITY.md "Tokens"). Every case is a bearer token
//! (or Authorization header shape) sent to a protected `/**` route on portcullis, with an explicit expectation: the status, and whether the recording
//! upstream may see the request (and with which `X-User`).
//!
//! Trusted issuers: `test` (HS256, the harness's `SECRET`), `https://rsa.example/`
//! (RS256 public key), `ec-issuer` (ES256 public key), `aud-issuer` (HS256 with
//! `audiences = ["api"]`). The attacker holds their own RSA key and knows every
//! public key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::json;
use std::net::SocketAddr;
use support::*;

const AUD_SECRET: &str = "audience-issuer-secret-0123456789abcdef";

/// One attack: the request header lines, the expected status, and the `X-User` the
/// upstream must see (`None`: the upstream must not see the request at all).
struct Case {
    name: String,
    headers: String,
    status: u16,
    user: Option<&'static str>,
}

fn bearer(name: impl Into<String>, token: &str, status: u16, user: Option<&'static str>) -> Case {
    Case {
        name: name.into(),
        headers: format!("Authorization: Bearer {token}\r\n"),
        status,
        user,
    }
}

/// A refused token: 401, never forwarded.
fn refused(name: impl Into<String>, token: &str) -> Case {
    bearer(name, token, 401, None)
}

struct Keys {
    rsa: TestKey,
    attacker: TestKey,
    ec: TestKey,
}

fn claims(iss: &str, sub: &str) -> String {
    json!({"iss": iss, "sub": sub, "iat": now(), "exp": now() + 600}).to_string()
}

fn hs(header: &str, payload: &str) -> String {
    hs256_raw(header, payload, SECRET.as_bytes())
}

fn hs256_raw(header: &str, payload: &str, secret: &[u8]) -> String {
    jws_raw(header, payload, "HS256", Signer::Secret(secret))
}

fn rs(key: &TestKey, header: &str, payload: &str) -> String {
    jws_raw(header, payload, "RS256", Signer::Key(key))
}

fn es(key: &TestKey, header: &str, payload: &str) -> String {
    jws_raw(header, payload, "ES256", Signer::Key(key))
}

/// `token` without its signature: `a.b.` (`dot = true`) or `a.b`.
fn stripped(token: &str, dot: bool) -> String {
    let (input, _) = token.rsplit_once('.').unwrap();
    if dot {
        format!("{input}.")
    } else {
        input.to_owned()
    }
}

const HS: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
const RS: &str = r#"{"alg":"RS256","typ":"JWT"}"#;
const ES: &str = r#"{"alg":"ES256","typ":"JWT"}"#;
const RSA_ISS: &str = "https://rsa.example/";

fn corpus(k: &Keys, attacker_url: &str) -> Vec<Case> {
    let t = now();
    let alice = claims("test", "alice");
    let mut c = vec![
        // ---- controls: well-formed tokens from each trusted issuer pass.
        bearer("control HS256", &hs(HS, &alice), 200, Some("alice")),
        bearer(
            "control RS256",
            &rs(&k.rsa, RS, &claims(RSA_ISS, "rsa-user")),
            200,
            Some("rsa-user"),
        ),
        bearer(
            "control ES256",
            &es(&k.ec, ES, &claims("ec-issuer", "ec-user")),
            200,
            Some("ec-user"),
        ),
        bearer(
            "typ at+jwt (RFC 9068) is fine",
            &hs(r#"{"alg":"HS256","typ":"at+jwt"}"#, &alice),
            200,
            Some("alice"),
        ),
        bearer(
            "no typ is fine",
            &hs(r#"{"alg":"HS256"}"#, &alice),
            200,
            Some("alice"),
        ),
        bearer("scheme is case-insensitive", "", 200, Some("alice")),
    ];
    // (The scheme case is set below, the token needs the header written differently.)
    let last = c.len() - 1;
    c[last].headers = format!("Authorization: bEaReR {}\r\n", hs(HS, &alice));

    // ---- alg none, any spelling, with or without a signature.
    for alg in ["none", "None", "NONE", "nOnE"] {
        let h = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
        let input = signing_input(&h, &alice);
        c.push(refused(
            format!("alg {alg}, empty signature"),
            &format!("{input}."),
        ));
        c.push(refused(format!("alg {alg}, no signature part"), &input));
        c.push(refused(
            format!("alg {alg}, HMAC signature"),
            &hs(&h, &alice),
        ));
    }
    for h in [
        r#"{"typ":"JWT"}"#,
        r#"{"alg":""}"#,
        r#"{"alg":"hs256"}"#,
        r#"{"alg":["HS256"]}"#,
        r#"{"alg":null}"#,
        r#"{"alg":"HS256 "}"#,
    ] {
        c.push(refused(format!("bad alg header {h}"), &hs(h, &alice)));
    }

    // ---- RS/HS key confusion: the public key (PEM, trimmed PEM, DER) as HMAC secret.
    let rsa_claims = claims(RSA_ISS, "mallory");
    let pem = k.rsa.public_pem.as_str();
    for (what, secret) in [
        ("PEM", pem.as_bytes().to_vec()),
        ("trimmed PEM", pem.trim_end().as_bytes().to_vec()),
        ("PEM without newlines", pem.replace('\n', "").into_bytes()),
    ] {
        c.push(refused(
            format!("HS256 signed with the RSA public key {what}"),
            &hs256_raw(HS, &rsa_claims, &secret),
        ));
    }
    c.push(refused(
        "HS256 signed with the EC public key PEM",
        &hs256_raw(
            HS,
            &claims("ec-issuer", "mallory"),
            k.ec.public_pem.as_bytes(),
        ),
    ));
    c.push(refused(
        "RS256 (attacker key) for the HMAC issuer",
        &rs(&k.attacker, RS, &claims("test", "mallory")),
    ));
    c.push(refused(
        "RS256 header on the EC issuer",
        &rs(&k.attacker, RS, &claims("ec-issuer", "mallory")),
    ));
    c.push(refused(
        "ES256 header on the RSA issuer",
        &es(&k.ec, ES, &claims(RSA_ISS, "mallory")),
    ));
    c.push(refused(
        "PS256 header, RS256 signature",
        &rs(&k.rsa, r#"{"alg":"PS256"}"#, &claims(RSA_ISS, "mallory")),
    ));

    // ---- kid injection: path traversal / SQL strings with guessable "secrets".
    for kid in [
        "../../../../../../dev/null",
        "/dev/null",
        "../../../../proc/sys/kernel/randomize_va_space",
        "' OR '1'='1",
        "x' UNION SELECT 'AA==' --",
        "|cat /etc/passwd",
        "\u{0}",
        "",
    ] {
        let h = json!({"alg": "HS256", "kid": kid}).to_string();
        for secret in [&b""[..], b"\0", b"AA==", b"0", b"1"] {
            c.push(refused(
                format!("kid {kid:?} with secret {secret:?}"),
                &hs256_raw(&h, &alice, secret),
            ));
        }
    }
    // A kid is only a lookup key: a token correctly signed by the issuer's only key
    // verifies whatever its kid says (nothing is read from the kid).
    c.push(bearer(
        "kid traversal string, correctly signed",
        &hs(r#"{"alg":"HS256","kid":"../../../../dev/null"}"#, &alice),
        200,
        Some("alice"),
    ));
    c.push(refused(
        "kid is not a string",
        &hs(r#"{"alg":"HS256","kid":{"path":"/dev/null"}}"#, &alice),
    ));

    // ---- key substitution through header parameters, signed by the attacker.
    let mallory = claims(RSA_ISS, "mallory");
    let attacker_jwk = k.attacker.rsa_jwk();
    let spki_der = {
        use base64::Engine;
        let b: String = k
            .attacker
            .public_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        base64::engine::general_purpose::STANDARD.decode(b).unwrap()
    };
    let x5c = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &spki_der);
    for (what, h) in [
        (
            "jku",
            json!({"alg": "RS256", "jku": format!("{attacker_url}/jwks.json")}),
        ),
        (
            "x5u",
            json!({"alg": "RS256", "x5u": format!("{attacker_url}/cert.pem")}),
        ),
        ("jwk", json!({"alg": "RS256", "jwk": attacker_jwk})),
        (
            "jwk with kid",
            json!({"alg": "RS256", "kid": "attacker", "jwk": attacker_jwk}),
        ),
        ("x5c", json!({"alg": "RS256", "x5c": [x5c]})),
        (
            "jku + jwk + x5c",
            json!({"alg": "RS256", "jku": format!("{attacker_url}/k"), "jwk": attacker_jwk, "x5c": [x5c]}),
        ),
    ] {
        c.push(refused(
            format!("{what} substitution, attacker-signed"),
            &rs(&k.attacker, &h.to_string(), &mallory),
        ));
    }
    c.push(refused(
        "HS256 with jwk {kty: oct} carrying the attacker's secret",
        &hs256_raw(
            &json!({"alg": "HS256", "jwk": {"kty": "oct", "k": b64(b"attacker-secret")}})
                .to_string(),
            &alice,
            b"attacker-secret",
        ),
    ));
    // Parameters present but ignored: the issuer's own signature still decides.
    c.push(bearer(
        "jku present, signed by the trusted key",
        &rs(
            &k.rsa,
            &json!({"alg": "RS256", "jku": format!("{attacker_url}/jwks.json")}).to_string(),
            &claims(RSA_ISS, "rsa-user"),
        ),
        200,
        Some("rsa-user"),
    ));

    // ---- CVE-2022-21449 "psychic signatures": r = s = 0 (and r = s = n).
    let ec_mallory = claims("ec-issuer", "mallory");
    let ec_input = signing_input(ES, &ec_mallory);
    let n: Vec<u8> = (0..32)
        .map(|i| {
            u8::from_str_radix(
                &"FFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551"
                    [2 * i..2 * i + 2],
                16,
            )
            .unwrap()
        })
        .collect();
    for (what, sig) in [
        ("r=s=0 fixed", vec![0u8; 64]),
        (
            "r=s=0 DER",
            vec![0x30, 0x06, 0x02, 0x01, 0x00, 0x02, 0x01, 0x00],
        ),
        ("r=s=n", [n.clone(), n].concat()),
        ("one zero byte", vec![0u8]),
        ("r=s=0 short", vec![0u8; 2]),
    ] {
        c.push(refused(
            format!("ES256 psychic signature {what}"),
            &format!("{ec_input}.{}", b64(&sig)),
        ));
    }

    // ---- signature stripping.
    let good_hs = hs(HS, &alice);
    let good_rs = rs(&k.rsa, RS, &claims(RSA_ISS, "rsa-user"));
    let good_es = es(&k.ec, ES, &claims("ec-issuer", "ec-user"));
    for (what, tok) in [
        ("HS256", &good_hs),
        ("RS256", &good_rs),
        ("ES256", &good_es),
    ] {
        c.push(refused(
            format!("{what} stripped to a.b."),
            &stripped(tok, true),
        ));
        c.push(refused(
            format!("{what} stripped to a.b"),
            &stripped(tok, false),
        ));
    }
    c.push(refused(
        "HS256 with a truncated signature",
        &good_hs[..good_hs.len() - 4],
    ));

    // ---- crit: we implement no extension, so any crit refuses.
    for h in [
        r#"{"alg":"HS256","crit":["exp"],"exp":1}"#,
        r#"{"alg":"HS256","crit":["b64"],"b64":false}"#,
        r#"{"alg":"HS256","crit":["http://example.com/unknown"]}"#,
        r#"{"alg":"HS256","crit":[]}"#,
        r#"{"alg":"HS256","crit":"exp"}"#,
    ] {
        c.push(refused(format!("crit {h}"), &hs(h, &alice)));
    }

    // ---- duplicated JSON members (two parsers must never disagree).
    let exp = t + 600;
    for h in [
        r#"{"alg":"HS256","alg":"none"}"#,
        r#"{"alg":"none","alg":"HS256"}"#,
        r#"{"alg":"HS256","kid":"a","kid":"b"}"#,
    ] {
        c.push(refused(
            format!("duplicate header member {h}"),
            &hs(h, &alice),
        ));
    }
    for p in [
        format!(r#"{{"iss":"test","sub":"alice","sub":"admin","exp":{exp}}}"#),
        format!(r#"{{"iss":"evil","iss":"test","sub":"alice","exp":{exp}}}"#),
        format!(r#"{{"iss":"test","sub":"alice","exp":1,"exp":{exp}}}"#),
        format!(r#"{{"iss":"test","sub":"alice","exp":{exp},"scope":"a","scope":"admin"}}"#),
        format!(r#"{{"iss":"test","sub":"alice","exp":{exp},"s\u0075b":"admin"}}"#),
    ] {
        c.push(refused(
            format!("duplicate payload member {p}"),
            &hs(HS, &p),
        ));
    }

    // ---- non-canonical base64url.
    c.extend(base64_cases(&alice));

    // ---- typ / cty tricks and JWE look-alikes.
    let jwe = format!(
        "{}.{}.{}.{}.{}",
        b64(br#"{"alg":"RSA-OAEP","enc":"A256GCM","typ":"JWT"}"#),
        b64(b"encrypted-key"),
        b64(b"iv"),
        b64(alice.as_bytes()),
        b64(b"tag")
    );
    c.push(refused("JWE-shaped 5-part token", &jwe));
    c.push(refused(
        "valid JWS with two parts appended",
        &format!("{good_hs}.x.y"),
    ));
    c.push(refused(
        "dir/A256GCM header on a JWS",
        &hs(r#"{"alg":"dir","enc":"A256GCM"}"#, &alice),
    ));
    c.push(refused(
        "nested JWT: cty JWT, payload is a token",
        &hs(r#"{"alg":"HS256","cty":"JWT"}"#, &good_hs),
    ));
    c.push(refused(
        "nested JWT: payload is an attacker-signed token",
        &hs(
            r#"{"alg":"HS256","cty":"JWT"}"#,
            &rs(&k.attacker, RS, &claims(RSA_ISS, "mallory")),
        ),
    ));
    // cty is not acted on: a JSON payload is the claims set whatever cty says.
    c.push(bearer(
        "cty JWT with a JSON claims payload",
        &hs(r#"{"alg":"HS256","cty":"JWT"}"#, &alice),
        200,
        Some("alice"),
    ));
    c.push(refused("payload is a JSON array", &hs(HS, "[1]")));
    c.push(refused("payload is a JSON string", &hs(HS, "\"alice\"")));
    c.push(refused("header is not JSON", &hs("alg=HS256", &alice)));

    // ---- exp / nbf / iat shapes.
    for (what, exp, status, user) in [
        ("huge exp 1e300", "1e300".to_string(), 200, Some("alice")),
        ("u64::MAX exp", u64::MAX.to_string(), 200, Some("alice")),
        (
            "fractional exp",
            format!("{}.5", t + 600),
            200,
            Some("alice"),
        ),
        ("exp 1e400 (out of range)", "1e400".into(), 401, None),
        ("negative exp", "-1".into(), 401, None),
        ("i64::MIN exp", i64::MIN.to_string(), 401, None),
        ("exp 0", "0".into(), 401, None),
        ("exp -1e300", "-1e300".into(), 401, None),
        (
            "exp in the past beyond leeway",
            (t - 3600).to_string(),
            401,
            None,
        ),
        ("string exp", format!("\"{}\"", t + 600), 401, None),
        ("null exp", "null".into(), 401, None),
        ("bool exp", "true".into(), 401, None),
        ("array exp", format!("[{}]", t + 600), 401, None),
        (
            "object exp",
            format!("{{\"$date\":{}}}", t + 600),
            401,
            None,
        ),
    ] {
        let p = format!(r#"{{"iss":"test","sub":"alice","exp":{exp}}}"#);
        c.push(bearer(what, &hs(HS, &p), status, user));
    }
    c.push(refused(
        "exp missing",
        &hs(HS, r#"{"iss":"test","sub":"alice"}"#),
    ));
    for (what, extra) in [
        ("nbf an hour ahead", format!(r#""nbf":{}"#, t + 3600)),
        ("iat an hour ahead", format!(r#""iat":{}"#, t + 3600)),
        ("string nbf", format!(r#""nbf":"{t}""#)),
        ("string iat", format!(r#""iat":"{t}""#)),
    ] {
        let p = format!(r#"{{"iss":"test","sub":"alice","exp":{exp},{extra}}}"#);
        c.push(refused(what, &hs(HS, &p)));
    }

    // ---- aud as string or array (issuer `aud-issuer` accepts "api").
    for (what, aud, ok) in [
        ("aud string", json!("api"), true),
        ("aud array containing it", json!(["other", "api"]), true),
        ("aud wrong case", json!("API"), false),
        ("aud with trailing space", json!("api "), false),
        ("aud array without it", json!(["other"]), false),
        ("aud empty array", json!([]), false),
        ("aud nested array", json!([["api"]]), false),
        ("aud comma list", json!("api,other"), false),
        ("aud number", json!(1), false),
        ("aud null", json!(null), false),
    ] {
        let p = json!({"iss": "aud-issuer", "sub": "aud-user", "exp": exp, "aud": aud}).to_string();
        let tok = hs256_raw(HS, &p, AUD_SECRET.as_bytes());
        if ok {
            c.push(bearer(what, &tok, 200, Some("aud-user")));
        } else {
            c.push(refused(what, &tok));
        }
    }
    c.push(refused(
        "aud missing for an issuer with audiences",
        &hs256_raw(HS, &claims("aud-issuer", "aud-user"), AUD_SECRET.as_bytes()),
    ));

    // ---- iss: exact match only.
    for iss in ["test/", "TEST", " test", "test ", "https://rsa.example"] {
        c.push(refused(
            format!("iss {iss:?} (HMAC)"),
            &hs(HS, &claims(iss, "alice")),
        ));
    }
    for iss in [
        "https://rsa.example",
        "https://rsa.example//",
        "https://RSA.example/",
    ] {
        c.push(refused(
            format!("iss {iss:?} (RSA, correctly signed)"),
            &rs(&k.rsa, RS, &claims(iss, "rsa-user")),
        ));
    }
    c.push(refused(
        "iss as array",
        &hs(
            HS,
            &json!({"iss": ["test"], "sub": "alice", "exp": exp}).to_string(),
        ),
    ));
    c.push(refused(
        "iss missing",
        &hs(HS, &json!({"sub": "alice", "exp": exp}).to_string()),
    ));

    // ---- identity claim: a non-blank string without control characters.
    for sub in [
        json!(""),
        json!(" "),
        json!("\t\n"),
        json!("\u{a0}\u{3000}"),
        json!("alice\r\nX-Admin: 1"),
        json!("\u{0}"),
        json!("ali\u{7f}ce"),
        json!(42),
        json!(null),
        json!(["alice"]),
        json!({"name": "alice"}),
    ] {
        c.push(refused(
            format!("sub {sub}"),
            &hs(
                HS,
                &json!({"iss": "test", "sub": sub, "exp": exp}).to_string(),
            ),
        ));
    }
    c.push(refused(
        "sub missing",
        &hs(HS, &json!({"iss": "test", "exp": exp}).to_string()),
    ));

    // ---- size and framing of the credential itself.
    let big = json!({"iss": "test", "sub": "alice", "exp": exp, "pad": "x".repeat(17 * 1024)});
    c.push(refused(
        "token over the 16 KiB cap",
        &hs(HS, &big.to_string()),
    ));
    c.push(refused(
        "token with inner whitespace",
        &good_hs.replacen('.', ". ", 1),
    ));
    c.push(Case {
        name: "two Authorization headers (valid token first)".into(),
        headers: format!(
            "Authorization: Bearer {good_hs}\r\nAuthorization: Bearer {}\r\n",
            hs(HS, &claims("test", "admin"))
        ),
        status: 400,
        user: None,
    });
    c.push(Case {
        name: "Basic scheme".into(),
        headers: "Authorization: Basic YWxpY2U6cGFzcw==\r\n".into(),
        status: 401,
        user: None,
    });
    c.push(Case {
        name: "Bearer without token".into(),
        headers: "Authorization: Bearer \r\n".into(),
        status: 401,
        user: None,
    });
    // A client-sent X-User never survives next to a valid token.
    c.push(Case {
        name: "valid token plus spoofed X-User".into(),
        headers: format!("X-User: admin\r\nX_User: admin\r\nAuthorization: Bearer {good_hs}\r\n"),
        status: 200,
        user: Some("alice"),
    });
    c
}

/// Re-signed tokens whose base64url is not the canonical unpadded form.
const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn base64_cases(alice: &str) -> Vec<Case> {
    let mut c = Vec::new();
    // A 16-byte header, so its base64url needs padding.
    let h = b64(br#"{"alg": "HS256"}"#);
    assert_ne!(h.len() % 4, 0);
    let p = b64(alice.as_bytes());
    let sign = |h: &str, p: &str| {
        let input = format!("{h}.{p}");
        format!(
            "{input}.{}",
            b64(&hmac("HS256", SECRET.as_bytes(), input.as_bytes()))
        )
    };
    let padded = |s: &str| format!("{s}{}", "=".repeat((4 - s.len() % 4) % 4));
    c.push(refused("padded header", &sign(&padded(&h), &p)));
    c.push(refused("padded payload", &sign(&h, &padded(&p))));
    c.push(refused(
        "payload with extra '='",
        &sign(&h, &format!("{p}=")),
    ));
    let tok = sign(&h, &p);
    assert_ne!(tok.len() % 4, 0);
    c.push(refused("padded signature", &padded(&tok)));
    // Non-zero unused bits in the signature's last character (43 chars for 32 bytes).
    let flip_last = |s: &str| {
        let last = *s.as_bytes().last().unwrap();
        let idx = ALPHA.iter().position(|&a| a == last).unwrap();
        format!("{}{}", &s[..s.len() - 1], ALPHA[idx ^ 1] as char)
    };
    c.push(refused(
        "signature with non-zero trailing bits",
        &flip_last(&tok),
    ));

    // Standard alphabet: a payload whose base64url has '-' or '_'.
    let tricky =
        json!({"iss": "test", "sub": "alice", "exp": now() + 600, "x": "~~~???>>>"}).to_string();
    let tp = b64(tricky.as_bytes());
    assert!(tp.contains('-') || tp.contains('_'), "{tp}");
    c.push(bearer(
        "payload with - and _ (control)",
        &sign(&h, &tp),
        200,
        Some("alice"),
    ));
    c.push(refused(
        "payload in the standard alphabet",
        &sign(&h, &tp.replace('-', "+").replace('_', "/")),
    ));

    // Non-zero unused trailing bits: decodes to the same bytes under a lenient decoder.
    let mut padded_claims = alice.to_owned();
    while b64(padded_claims.as_bytes()).len().is_multiple_of(4) {
        padded_claims.insert(padded_claims.len() - 1, ' ');
    }
    let np = b64(padded_claims.as_bytes());
    let flipped = flip_last(&np);
    c.push(bearer(
        "payload with trailing whitespace (control)",
        &sign(&h, &np),
        200,
        Some("alice"),
    ));
    c.push(refused(
        "payload with non-zero trailing bits",
        &sign(&h, &flipped),
    ));
    c.push(refused(
        "payload with an embedded newline",
        &sign(&h, &format!("{}\n{}", &p[..8], &p[8..])).replace('\n', "%0A"),
    ));
    c
}

fn config(up: SocketAddr) -> String {
    format!(
        "[upstreams.app]\nurl = \"http://{up}\"\n\
         [[issuers]]\nname = \"rsa\"\nissuer = \"{RSA_ISS}\"\npublic_key = \"rsa.pub.pem\"\n\
         [[issuers]]\nname = \"ec\"\nissuer = \"ec-issuer\"\npublic_key = \"ec.pub.pem\"\n\
         [[issuers]]\nname = \"t\"\nissuer = \"test\"\nsecret = \"{SECRET}\"\n\
         [[issuers]]\nname = \"aud\"\nissuer = \"aud-issuer\"\nsecret = \"{AUD_SECRET}\"\naudiences = [\"api\"]\n\
         [[routes]]\nname = \"all\"\npath = \"/**\"\nupstream = \"app\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_attack_corpus() {
    let keys = Keys {
        rsa: TestKey::rsa(),
        attacker: TestKey::rsa(),
        ec: TestKey::p256(),
    };
    // Where jku / x5u point: nothing may ever connect here.
    let attacker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    attacker.set_nonblocking(true).unwrap();
    let attacker_url = format!("http://{}", attacker.local_addr().unwrap());

    let rec = spawn_upstream().await;
    let up = rec.addr;
    let proxy = Proxy::builder()
        .file("rsa.pub.pem", &keys.rsa.public_pem)
        .file("ec.pub.pem", &keys.ec.public_pem)
        .start(&config(up))
        .await;

    let cases = corpus(&keys, &attacker_url);
    assert!(cases.len() >= 100, "corpus has {} cases", cases.len());
    let addr = proxy.addr;
    let results = tokio::task::spawn_blocking(move || {
        cases
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let ex = get(addr, &format!("/jwt/{i}"), &c.headers);
                (i, c, ex)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();

    let seen = rec.requests();
    let mut failures = Vec::new();
    for (i, c, ex) in &results {
        let path = format!("/jwt/{i}");
        let hits: Vec<_> = seen.iter().filter(|s| s.path == path).collect();
        let status = ex.first_status();
        let ok = status == c.status
            && match c.user {
                None => hits.is_empty(),
                Some(u) => hits.len() == 1 && hits[0].header_all("x-user") == vec![u],
            };
        if !ok {
            failures.push(format!(
                "#{i} {}: expected {} / upstream {:?}, got {status} / upstream X-User {:?}",
                c.name,
                c.status,
                c.user,
                hits.iter()
                    .map(|s| s.header_all("x-user"))
                    .collect::<Vec<_>>()
            ));
        }
        if let (401, Some(r)) = (status, ex.responses.first()) {
            // SPEC §4: denials are JSON with a Bearer challenge.
            let www = r.header("www-authenticate").unwrap_or("");
            if !www.starts_with("Bearer") || r.header("content-type") != Some("application/json") {
                failures.push(format!(
                    "#{i} {}: 401 without SPEC headers: {:?}",
                    c.name, r.headers
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}\n{}",
        failures.len(),
        results.len(),
        failures.join("\n"),
        proxy.logs()
    );
    assert!(
        attacker.accept().is_err(),
        "the proxy fetched a jku/x5u URL"
    );
}
