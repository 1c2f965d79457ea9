//! The cost of one password check (what a login spends on the blocking pool):
//! bcrypt at the tutorial's cost 12 and at cost 10, argon2id with the OWASP
//! parameters, and the dummy check an unknown user costs. Also the form parse and
//! the rest of a login's CPU work, to show the hash dominates.
#![allow(clippy::unwrap_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use portcullis::issuer::form::Form;
use portcullis::password::{hash_password, Hash};
use std::hint::black_box;
use std::time::Duration;

const JOHN: &str = "$2b$12$EixZaYVK1fsbw1ZfbX3OXePaWxn96p36WQoeG6Lruj3vjPGga31lW";

fn checks(c: &mut Criterion) {
    let mut g = c.benchmark_group("password_check");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    let b12 = Hash::parse(JOHN).unwrap();
    g.bench_function("bcrypt_cost12", |b| {
        b.iter(|| b12.verify(black_box(b"secret")))
    });
    let b10 = Hash::parse(&hash_password(b"secret", false, 10).unwrap()).unwrap();
    g.bench_function("bcrypt_cost10", |b| {
        b.iter(|| b10.verify(black_box(b"secret")))
    });
    let a = Hash::parse(&hash_password(b"secret", true, 0).unwrap()).unwrap();
    g.bench_function("argon2id_m19456_t2_p1", |b| {
        b.iter(|| a.verify(black_box(b"secret")))
    });
    let dummy = b12.dummy_like().unwrap();
    g.bench_function("bcrypt_cost12_dummy_unknown_user", |b| {
        b.iter(|| dummy.verify(black_box(b"secret")))
    });
    g.finish();
    c.bench_function("form_parse", |b| {
        b.iter(|| {
            Form::parse(black_box(
                b"grant_type=password&username=johndoe&password=secret&scope=me+items%3Aread&client_id=&client_secret=",
            ))
            .unwrap()
        })
    });
}

criterion_group!(benches, checks);
criterion_main!(benches);
