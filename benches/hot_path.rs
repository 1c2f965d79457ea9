//! Criterion benches for the per-request hot path (issue #10): path normalization +
//! route match, host validation, token extraction, identity/hop-by-hop/forwarding
//! header rewrite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use portcullis::config;
use portcullis::proxy::headers;
use std::hint::black_box;
use std::path::Path;

const CONFIG: &str = r#"
[upstreams.app]
url = "http://127.0.0.1:9"
[identity.claims_to_headers]
"X-User-Email" = "email"
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
name = "users"
path = "/api/users/*/items/**"
methods = ["GET", "POST"]
upstream = "app"
[[routes]]
name = "ws"
path = "/ws"
token_from = ["header", "query:access_token", "cookie:access_token"]
upstream = "app"
[[routes]]
name = "all"
path = "/**"
upstream = "app"
"#;

fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "api.example.com"),
        ("user-agent", "bench/1.0"),
        ("accept", "*/*"),
        (
            "authorization",
            "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln",
        ),
        ("x-user", "mallory"),
        ("connection", "keep-alive"),
        ("x-forwarded-for", "10.0.0.1"),
    ] {
        h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

fn benches(c: &mut Criterion) {
    portcullis::install_crypto_providers();
    let cfg = config::load_str(Path::new("bench.toml"), CONFIG).expect("config");
    let table = &cfg.routes;

    c.bench_function("path_normalize_clean", |b| {
        b.iter(|| portcullis::path::normalize(black_box("/api/users/42/items/7")).unwrap())
    });
    c.bench_function("path_normalize_tricky", |b| {
        b.iter(|| {
            portcullis::path::normalize(black_box("/api//users/./42/%61/../items/7")).unwrap()
        })
    });
    c.bench_function("route_match_catch_all", |b| {
        b.iter(|| {
            table.find(
                Some("api.example.com"),
                &Method::GET,
                black_box("/orders/1"),
            )
        })
    });
    c.bench_function("route_match_pattern", |b| {
        b.iter(|| table.find(None, &Method::POST, black_box("/api/users/42/items/7")))
    });
    let h = request_headers();
    let sources = &table.routes[3].token_from;
    c.bench_function("token_extract_header", |b| {
        b.iter(|| portcullis::auth::extract::find_token(sources, black_box(&h), Some("a=1")))
    });
    let origin = http::Uri::from_static("/api/users/42/items/7");
    c.bench_function("host_of_request", |b| {
        b.iter(|| portcullis::host::of_request(http::Version::HTTP_11, &origin, black_box(&h)))
    });
    c.bench_function("host_parse_unnormalized", |b| {
        b.iter(|| portcullis::host::parse(black_box(b"API.Example.com.:8443")))
    });
    let host = HeaderValue::from_static("api.example.com");
    let peer = headers::peer_value("127.0.0.1".parse().unwrap());
    let client = portcullis::proxy::client::Client {
        addr: "127.0.0.1".parse().unwrap(),
        https: false,
        chain: None,
    };
    c.bench_function("header_rewrite", |b| {
        b.iter_batched(
            request_headers,
            |mut h| {
                headers::strip_identity(&mut h, &cfg.identity);
                headers::strip_hop_by_hop(&mut h, false);
                headers::set_forwarded(&mut h, &peer, &client, Some(&host));
                h.insert(&cfg.identity.header, HeaderValue::from_static("alice"));
                h
            },
            criterion::BatchSize::SmallInput,
        )
    });
    c.bench_function("request_id_new", |b| b.iter(headers::new_request_id));
}

criterion_group!(hot, benches);
criterion_main!(hot);
