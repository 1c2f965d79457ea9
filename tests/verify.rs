//! Token verification (SPEC §3, §4): every algorithm accepted from its issuer, every
//! hostile or invalid shape refused with the exact §4 denial, time claims with leeway,
//! token sources. Every rejection is also checked to never reach the upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use serde_json::{json, Value};
use support::*;

const AUD_SECRET: &str = "audience-issuer-secret-abcdefghijklmnopqrstuvwxyz";

fn iss(name: &str) -> String {
    format!("https://{name}.test/")
}

/// One issuer per key type (plus allow-list and audience variants), key files in the
/// proxy's config dir, and three routes: query/cookie sources, header-then-query, all.
fn config(up: &Upstream) -> String {
    format!(
        r#"
[upstreams.app]
url = "{up}"

[[issuers]]
name = "hs"
issuer = "https://hs.test/"
secret = "{SECRET}"
algorithms = ["HS256", "HS384", "HS512"]

[[issuers]]
name = "rsa"
issuer = "https://rsa.test/"
public_key = "rsa.pem"
algorithms = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]

[[issuers]]
name = "rs256"
issuer = "https://rs256.test/"
public_key = "rsa.pem"
algorithms = ["RS256"]

[[issuers]]
name = "rsa-default"
issuer = "https://rsa-default.test/"
public_key = "rsa.pem"

[[issuers]]
name = "es256"
issuer = "https://es256.test/"
public_key = "p256.pem"
algorithms = ["ES256"]

[[issuers]]
name = "es384"
issuer = "https://es384.test/"
public_key = "p384.pem"
algorithms = ["ES384"]

[[issuers]]
name = "ed"
issuer = "https://ed.test/"
public_key = "ed25519.pem"
algorithms = ["EdDSA"]

[[issuers]]
name = "aud"
issuer = "https://aud.test/"
secret = "{AUD_SECRET}"
audiences = ["orders-api", "billing"]

[[routes]]
name = "alt-sources"
path = "/t/**"
token_from = ["query:access_token", "cookie:access_token"]
upstream = "app"

[[routes]]
name = "header-then-query"
path = "/tq/**"
token_from = ["header", "query:access_token"]
upstream = "app"

[[routes]]
name = "all"
path = "/**"
upstream = "app"
"#,
        up = up.url()
    )
}

async fn start() -> (Proxy, Upstream) {
    let up = spawn_upstream().await;
    let p = Proxy::builder()
        .file("rsa.pem", &rsa_key().public_pem)
        .file("p256.pem", &p256_key().public_pem)
        .file("p384.pem", &p384_key().public_pem)
        .file("ed25519.pem", &ed25519_key().public_pem)
        .start(&config(&up))
        .await;
    (p, up)
}

fn hs(claims: &Value) -> String {
    mint("HS256", Signer::Secret(SECRET.as_bytes()), claims)
}

/// `claims(iss(issuer), sub)` with `extra` merged.
fn claims_with(issuer: &str, sub: &str, extra: Value) -> Value {
    let mut c = claims(&iss(issuer), sub);
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// Sends `token` as a bearer to `/v` and expects it forwarded with `x-user: sub`.
async fn assert_accepted(p: &Proxy, up: &Upstream, token: &str, sub: &str, what: &str) {
    let before = up.count();
    let r = p.get("/v", Some(token)).await;
    assert_eq!(
        r.status,
        200,
        "{what}: should be accepted; body {:?}",
        r.text()
    );
    assert_eq!(r.text(), "ok", "{what}");
    assert_eq!(up.count(), before + 1, "{what}: upstream hit once");
    let seen = up.last();
    assert_eq!(seen.path, "/v", "{what}");
    assert_eq!(seen.header_all("x-user"), vec![sub], "{what}: x-user");
}

#[tokio::test]
async fn every_algorithm_is_accepted_from_its_issuer() {
    let (p, up) = start().await;
    let cases: Vec<(&str, &str, Signer<'static>)> = vec![
        ("hs", "HS256", Signer::Secret(SECRET.as_bytes())),
        ("hs", "HS384", Signer::Secret(SECRET.as_bytes())),
        ("hs", "HS512", Signer::Secret(SECRET.as_bytes())),
        ("rsa", "RS256", Signer::Key(rsa_key())),
        ("rsa", "RS384", Signer::Key(rsa_key())),
        ("rsa", "RS512", Signer::Key(rsa_key())),
        ("rsa", "PS256", Signer::Key(rsa_key())),
        ("rsa", "PS384", Signer::Key(rsa_key())),
        ("rsa", "PS512", Signer::Key(rsa_key())),
        ("rs256", "RS256", Signer::Key(rsa_key())),
        ("rsa-default", "RS256", Signer::Key(rsa_key())),
        ("es256", "ES256", Signer::Key(p256_key())),
        ("es384", "ES384", Signer::Key(p384_key())),
        ("ed", "EdDSA", Signer::Key(ed25519_key())),
    ];
    for (issuer, alg, signer) in cases {
        let sub = format!("user-{issuer}-{alg}");
        let t = mint(alg, signer, &claims(&iss(issuer), &sub));
        assert_accepted(&p, &up, &t, &sub, &format!("{alg} from {issuer}")).await;
    }
}

#[tokio::test]
async fn typ_kid_and_audience_variants_are_accepted() {
    let (p, up) = start().await;
    let c = claims(&iss("hs"), "typ-jwt");
    let secret = Signer::Secret(SECRET.as_bytes());
    // typ is not required: JWT, at+jwt (RFC 9068) or absent.
    let t = jwt(&json!({"alg": "HS256", "typ": "at+jwt"}), &c, secret);
    assert_accepted(&p, &up, &t, "typ-jwt", "typ at+jwt").await;
    let t = jwt(&json!({"alg": "HS256"}), &c, secret);
    assert_accepted(&p, &up, &t, "typ-jwt", "no typ").await;
    // A kid for an issuer with one key and no configured kid.
    let t = jwt(
        &json!({"alg": "RS256", "typ": "JWT", "kid": "some-key-id"}),
        &claims(&iss("rsa"), "kid-user"),
        Signer::Key(rsa_key()),
    );
    assert_accepted(&p, &up, &t, "kid-user", "kid with a single static key").await;
    // aud: a string or an array containing one of the issuer's audiences.
    let aud_secret = Signer::Secret(AUD_SECRET.as_bytes());
    for aud in [
        json!("orders-api"),
        json!("billing"),
        json!(["other", "billing"]),
    ] {
        let c = claims_with("aud", "aud-user", json!({ "aud": aud }));
        let t = mint("HS256", aud_secret, &c);
        assert_accepted(&p, &up, &t, "aud-user", &format!("aud {aud}")).await;
    }
}

#[tokio::test]
async fn invalid_tokens_get_401_and_never_reach_the_upstream() {
    let attacker = spawn_upstream().await;
    let (p, up) = start().await;
    let secret = Signer::Secret(SECRET.as_bytes());
    let good = hs(&claims(&iss("hs"), "alice"));
    let parts: Vec<&str> = good.split('.').collect();

    let mut cases: Vec<(String, String)> = Vec::new();
    let mut case = |what: &str, t: String| cases.push((what.to_string(), t));

    // Tampered payload (signature kept).
    let forged = b64(claims(&iss("hs"), "admin").to_string().as_bytes());
    case(
        "tampered payload",
        format!("{}.{forged}.{}", parts[0], parts[2]),
    );
    // Tampered signature (first byte flipped).
    let mut sig = b64_decode(parts[2]);
    sig[0] ^= 0x01;
    case(
        "tampered signature",
        format!("{}.{}.{}", parts[0], parts[1], b64(&sig)),
    );
    // Signed with the wrong secret.
    case(
        "wrong secret",
        mint(
            "HS256",
            Signer::Secret(b"not-the-secret-not-the-secret-xx"),
            &claims(&iss("hs"), "alice"),
        ),
    );
    // Unknown / missing iss.
    case("unknown iss", hs(&claims("https://unknown.test/", "alice")));
    let mut no_iss = claims(&iss("hs"), "alice");
    no_iss.as_object_mut().unwrap().remove("iss");
    case("missing iss", hs(&no_iss));
    // Wrong / missing aud for an issuer with audiences.
    let aud_secret = Signer::Secret(AUD_SECRET.as_bytes());
    case(
        "wrong aud",
        mint(
            "HS256",
            aud_secret,
            &claims_with("aud", "alice", json!({"aud": "other-api"})),
        ),
    );
    case(
        "wrong aud array",
        mint(
            "HS256",
            aud_secret,
            &claims_with("aud", "alice", json!({"aud": ["a", "b"]})),
        ),
    );
    case(
        "missing aud",
        mint("HS256", aud_secret, &claims(&iss("aud"), "alice")),
    );
    // alg none, with and without a signature; case variants.
    let c = claims(&iss("hs"), "alice");
    case(
        "alg none",
        jwt(&json!({"alg": "none", "typ": "JWT"}), &c, Signer::Unsigned),
    );
    case(
        "alg None",
        jwt(&json!({"alg": "None", "typ": "JWT"}), &c, Signer::Unsigned),
    );
    let none_hdr = b64(json!({"alg": "none"}).to_string().as_bytes());
    case(
        "alg none with a signature",
        format!("{none_hdr}.{}.{}", parts[1], parts[2]),
    );
    // Key confusion: HS256 keyed with the RSA public key PEM against RSA issuers.
    let pem = rsa_key().public_pem.as_bytes();
    for issuer in ["rsa", "rs256", "rsa-default"] {
        case(
            &format!("HS256 keyed with the public PEM against {issuer}"),
            mint("HS256", Signer::Secret(pem), &claims(&iss(issuer), "alice")),
        );
    }
    // Algorithm outside the allow-list or the key's type.
    case(
        "RS512 against an RS256-only issuer",
        mint(
            "RS512",
            Signer::Key(rsa_key()),
            &claims(&iss("rs256"), "alice"),
        ),
    );
    case(
        "PS256 against an RS256-only issuer",
        mint(
            "PS256",
            Signer::Key(rsa_key()),
            &claims(&iss("rs256"), "alice"),
        ),
    );
    case(
        "RS256 against an HMAC issuer",
        mint(
            "RS256",
            Signer::Key(rsa_key()),
            &claims(&iss("hs"), "alice"),
        ),
    );
    case(
        "ES256 against an RSA issuer",
        mint(
            "ES256",
            Signer::Key(p256_key()),
            &claims(&iss("rsa"), "alice"),
        ),
    );
    case(
        "EdDSA against an ES256 issuer",
        mint(
            "EdDSA",
            Signer::Key(ed25519_key()),
            &claims(&iss("es256"), "alice"),
        ),
    );
    case(
        "ES384 against an ES256-only issuer",
        mint(
            "ES384",
            Signer::Key(p384_key()),
            &claims(&iss("es256"), "alice"),
        ),
    );
    // Header-carried keys are never used: jku / x5u at an attacker, embedded jwk.
    let evil = attacker_rsa_key();
    let ac = claims(&iss("rsa"), "alice");
    case(
        "jku to the attacker",
        jwt(
            &json!({"alg": "RS256", "kid": "evil", "jku": format!("{}/jwks.json", attacker.url())}),
            &ac,
            Signer::Key(evil),
        ),
    );
    case(
        "x5u to the attacker",
        jwt(
            &json!({"alg": "RS256", "x5u": format!("{}/cert.pem", attacker.url())}),
            &ac,
            Signer::Key(evil),
        ),
    );
    case(
        "embedded jwk",
        jwt(
            &json!({"alg": "RS256", "jwk": evil.rsa_jwk()}),
            &ac,
            Signer::Key(evil),
        ),
    );
    case("attacker key, plain", mint("RS256", Signer::Key(evil), &ac));
    // Unknown crit entry.
    case(
        "unknown crit",
        jwt(
            &json!({"alg": "HS256", "crit": ["x-unknown"], "x-unknown": 1}),
            &claims(&iss("hs"), "alice"),
            secret,
        ),
    );
    // Identity claim must be a non-empty string.
    case("empty sub", hs(&claims(&iss("hs"), "")));
    case(
        "numeric sub",
        hs(&claims_with("hs", "x", json!({"sub": 42}))),
    );
    let mut no_sub = claims(&iss("hs"), "x");
    no_sub.as_object_mut().unwrap().remove("sub");
    case("missing sub", hs(&no_sub));
    // Time claims.
    let mut no_exp = claims(&iss("hs"), "alice");
    no_exp.as_object_mut().unwrap().remove("exp");
    case("missing exp", hs(&no_exp));
    case(
        "exp not a number",
        hs(&claims_with("hs", "alice", json!({"exp": "tomorrow"}))),
    );
    case(
        "nbf in the future",
        hs(&claims_with("hs", "alice", json!({"nbf": now() + 300}))),
    );
    case(
        "iat in the future",
        hs(&claims_with("hs", "alice", json!({"iat": now() + 300}))),
    );
    // Malformed.
    case("garbage", "not-a-jwt".into());
    case("two segments", format!("{}.{}", parts[0], parts[1]));
    case("four segments", format!("{good}.{}", parts[2]));
    case(
        "bad base64",
        format!("{}.{}!!.{}", parts[0], parts[1], parts[2]),
    );
    case(
        "header not JSON",
        format!("{}.{}.{}", b64(b"{nope"), parts[1], parts[2]),
    );

    for (what, t) in &cases {
        let r = p.get("/v", Some(t)).await;
        if r.status != 401 {
            panic!("{what}: expected 401, got {} {:?}", r.status, r.text());
        }
        r.assert_invalid_token();
    }
    assert_eq!(up.count(), 0, "a rejected token reached the upstream");
    assert_eq!(
        attacker.count(),
        0,
        "the proxy fetched a key from a header-supplied URL"
    );
}

#[tokio::test]
async fn expiry_and_leeway() {
    let (p, up) = start().await;
    let t = now();
    // Expired beyond the default 30 s leeway.
    let expired = hs(&claims_with(
        "hs",
        "alice",
        json!({"iat": t - 600, "exp": t - 120}),
    ));
    p.get("/v", Some(&expired)).await.assert_expired();
    assert_eq!(up.count(), 0);
    // Expired within the leeway, nbf slightly ahead within the leeway: accepted.
    let recent = hs(&claims_with(
        "hs",
        "recent",
        json!({"iat": t - 600, "exp": t - 5}),
    ));
    assert_accepted(&p, &up, &recent, "recent", "exp 5 s ago").await;
    let early = hs(&claims_with("hs", "early", json!({"nbf": t + 5})));
    assert_accepted(&p, &up, &early, "early", "nbf 5 s ahead").await;
    let nbf_past = hs(&claims_with("hs", "past", json!({"nbf": t - 60})));
    assert_accepted(&p, &up, &nbf_past, "past", "nbf in the past").await;
}

#[tokio::test]
async fn missing_token_and_authorization_header_forms() {
    let (p, up) = start().await;
    let t = hs(&claims(&iss("hs"), "alice"));

    // No token at all.
    p.get("/v", None).await.assert_unauthenticated();
    // A non-Bearer scheme is not a bearer token.
    p.send(Req::get("/v").header("Authorization", "Basic YWxpY2U6cHc="))
        .await
        .assert_status(401);
    assert_eq!(up.count(), 0);

    // Scheme is case-insensitive.
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let r = p
            .send(Req::get("/v").header("authorization", &format!("{scheme} {t}")))
            .await;
        r.assert_status(200);
        assert_eq!(up.last().header_all("x-user"), vec!["alice"], "{scheme}");
    }

    // Two Authorization headers: 400, even when both are valid.
    let before = up.count();
    p.send(Req::get("/v").bearer(&t).bearer(&t))
        .await
        .assert_bad_request();
    p.send(
        Req::get("/v")
            .header("Authorization", &format!("Bearer {t}"))
            .header("authorization", "Bearer x.y.z"),
    )
    .await
    .assert_bad_request();
    assert_eq!(up.count(), before, "a 400 reached the upstream");
}

#[tokio::test]
async fn token_from_query_and_cookie() {
    let (p, up) = start().await;
    let t = hs(&claims(&iss("hs"), "alice"));

    // Query: token removed, the other parameters kept in order.
    let r = p
        .get(&format!("/t/x?a=1&access_token={t}&b=2&c=3"), None)
        .await;
    r.assert_status(200);
    let seen = up.last();
    assert_eq!(seen.header_all("x-user"), vec!["alice"]);
    assert_eq!(seen.path, "/t/x");
    assert_eq!(seen.uri, "/t/x?a=1&b=2&c=3");
    assert_eq!(seen.query.as_deref(), Some("a=1&b=2&c=3"));

    // Query holding only the token: none of it reaches the upstream.
    p.get(&format!("/t/only?access_token={t}"), None)
        .await
        .assert_status(200);
    let seen = up.last();
    assert_eq!(seen.path, "/t/only");
    assert!(
        !seen.uri.contains("access_token") && !seen.uri.contains(&t),
        "token leaked upstream: {}",
        seen.uri
    );
    assert!(seen.query.as_deref().unwrap_or("").is_empty());

    // Cookie among others.
    let r = p
        .send(
            Req::get("/t/c?z=9")
                .header("Cookie", &format!("theme=dark; access_token={t}; lang=en")),
        )
        .await;
    r.assert_status(200);
    let seen = up.last();
    assert_eq!(seen.header_all("x-user"), vec!["alice"]);
    assert_eq!(seen.uri, "/t/c?z=9");

    let before = up.count();
    // The header is not a source on this route.
    p.get("/t/x", Some(&t)).await.assert_unauthenticated();
    // An invalid token from the query or a cookie is refused.
    p.get("/t/x?access_token=not.a.token", None)
        .await
        .assert_invalid_token();
    p.send(Req::get("/t/x").header("Cookie", "access_token=not.a.token"))
        .await
        .assert_invalid_token();
    // The query is not a source on a default route.
    p.get(&format!("/v?access_token={t}"), None)
        .await
        .assert_unauthenticated();
    assert_eq!(
        up.count(),
        before,
        "a rejected request reached the upstream"
    );

    // Sources in token_from order: the header first on /tq.
    p.send(Req::get("/tq/x?access_token=garbage").bearer(&t))
        .await
        .assert_status(200);
    assert_eq!(up.last().header_all("x-user"), vec!["alice"]);
    p.get(&format!("/tq/x?access_token={t}"), None)
        .await
        .assert_status(200);
    assert_eq!(up.last().header_all("x-user"), vec!["alice"]);
}
