//! The cost of a request that signs in with a session cookie (issue 18, SPEC §9):
//! the cookie found, base64-decoded, opened (AES-256-GCM), the session parsed, its
//! expiry checked and turned into the decision's caller. Once for a cookie session
//! of typical size (ID token claims, access, refresh and ID token: ~2.5 KB sealed),
//! once for a split one (a 6 KB claim: three chunks), once for `session_store =
//! "state"` (a sealed id, then the memory backend's sealed session).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue};
use portcullis::auth::verify::Verifier;
use portcullis::login::{session, Login, Session};
use portcullis::state::memory::MemoryStore;
use std::hint::black_box;
use std::sync::Arc;

fn login(store: &str) -> Login {
    let text = format!(
        "[upstreams.e]\nurl = \"echo:\"\n[[issuers]]\nname = \"idp\"\nissuer = \"http://127.0.0.1:1\"\ndiscovery = true\n\
         [login]\nissuer = \"idp\"\nclient_id = \"app\"\ncookie_secret = \"a-bench-cookie-secret-0123456789abcdef\"\n\
         session_store = \"{store}\"\n[[routes]]\npath = \"/**\"\nupstream = \"e\"\nlogin = true\n"
    );
    let cfg = portcullis::config::load_str(std::path::Path::new("b.toml"), &text).unwrap();
    let verifier = Verifier::new(cfg.issuers.clone(), "sub".into(), 0).unwrap();
    Login::new(&cfg, &verifier, Arc::new(MemoryStore::new()))
        .unwrap()
        .unwrap()
}

fn session(bio: usize) -> Session {
    let claims = serde_json::json!({
        "iss": "http://127.0.0.1:1", "sub": "alice", "aud": "app", "email": "alice@example.com",
        "name": "Alice Example", "groups": ["staff", "ops"], "iat": 1, "exp": 2, "bio": "x".repeat(bio),
    });
    Session {
        sid: session::random_id(),
        claims: claims.as_object().unwrap().clone(),
        scope: "openid email profile".into(),
        expires_at: session::now() + 3600,
        access_token: Some("a".repeat(600)),
        access_expires_at: Some(session::now() + 3600),
        refresh_token: Some("r".repeat(200)),
        id_token: Some("i".repeat(800)),
    }
}

fn request(rt: &tokio::runtime::Runtime, l: &Login, s: &Session) -> HeaderMap {
    let set = rt
        .block_on(session::save(l, &HeaderMap::new(), s, false))
        .unwrap();
    let line = set
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    let mut h = HeaderMap::new();
    h.insert(http::header::COOKIE, HeaderValue::from_str(&line).unwrap());
    h
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (name, store, bio) in [
        ("cookie session, 1 cookie", "cookie", 0),
        ("cookie session, 3 chunks", "cookie", 6000),
        ("state session (memory)", "state", 0),
    ] {
        let l = login(store);
        let h = request(&rt, &l, &session(bio));
        assert!(rt.block_on(session::load(&l, &h)).unwrap().is_some());
        c.bench_function(&format!("session decrypt + checks: {name}"), |b| {
            b.to_async(&rt).iter(|| async {
                let s = session::load(&l, black_box(&h)).await.unwrap().unwrap();
                black_box(s.needs_refresh(session::now()));
                black_box(s.caller(&l))
            });
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
