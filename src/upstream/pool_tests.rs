//! Unit tests of [`super`]: reuse, broken connections dropped, limits; against real
//! local servers (hyper, or raw TCP for a reset), counting the connections accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LIMITS: Limits = Limits {
    max_idle: 256,
    idle_timeout: Duration::from_secs(90),
    connect_timeout: Duration::from_secs(5),
};

/// A loopback listener on port 0 whose accepted connections are counted and each
/// handed to `serve` in turn (the next is accepted once `serve` returns).
async fn counting_server<F, Fut>(serve: F) -> (SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (addr, accepts) = (l.local_addr().unwrap(), Arc::new(AtomicUsize::new(0)));
    let count = accepts.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            count.fetch_add(1, Ordering::SeqCst);
            serve(s).await;
        }
    });
    (addr, accepts)
}

/// A hyper HTTP/1.1 server: `/big` answers 8 MiB, anything else `ok`.
async fn hyper_server() -> (SocketAddr, Arc<AtomicUsize>) {
    counting_server(|s| async move {
        let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
            let body = if req.uri().path() == "/big" {
                Bytes::from(vec![b'x'; 8 << 20])
            } else {
                Bytes::from_static(b"ok")
            };
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(body)))
        });
        tokio::spawn(
            hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(s), svc),
        );
    })
    .await
}

/// A raw server answering one request per connection, then closing it (`reset`:
/// with a TCP reset, else a plain FIN), without saying so in the response.
async fn one_shot_server(reset: bool) -> (SocketAddr, Arc<AtomicUsize>) {
    counting_server(move |mut s| async move {
        let mut head = Vec::new();
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut buf = [0u8; 1024];
            match s.read(&mut buf).await.unwrap() {
                0 => break,
                n => head.extend_from_slice(&buf[..n]),
            }
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .await
            .unwrap();
        if reset {
            s.set_zero_linger().unwrap();
        }
        drop(s);
    })
    .await
}

fn pool(addr: SocketAddr, limits: Limits) -> Pool<Empty<Bytes>> {
    let connector = crate::tls_client::https_connector(Duration::from_secs(5), None, true).unwrap();
    let authority = Authority::try_from(addr.to_string()).unwrap();
    Pool::new(connector, Scheme::HTTP, authority, limits).unwrap()
}

/// A [`hyper_server`] (its address and accept count) and a pool to it with `limits`.
async fn hyper_pool(limits: Limits) -> (SocketAddr, Arc<AtomicUsize>, Pool<Empty<Bytes>>) {
    let (addr, accepts) = hyper_server().await;
    (addr, accepts, pool(addr, limits))
}

fn get(addr: SocketAddr, path: &str) -> Request<Empty<Bytes>> {
    Request::get(format!("http://{addr}{path}"))
        .body(Empty::new())
        .unwrap()
}

/// One request, its body read to the end.
async fn fetch(p: &Pool<Empty<Bytes>>, addr: SocketAddr) -> Bytes {
    let resp = p.send(get(addr, "/"), false).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.into_body().collect().await.unwrap().to_bytes()
}

#[tokio::test]
async fn sequential_requests_share_one_connection() {
    let (addr, accepts, p) = hyper_pool(LIMITS).await;
    for _ in 0..3 {
        assert_eq!(fetch(&p, addr).await, "ok");
    }
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
    assert_eq!(p.idle_len(), 1);
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_not_reused() {
    for reset in [false, true] {
        let (addr, accepts) = one_shot_server(reset).await;
        let p = pool(addr, LIMITS);
        assert_eq!(fetch(&p, addr).await, "ok");
        assert_eq!(fetch(&p, addr).await, "ok", "reset: {reset}");
        assert_eq!(accepts.load(Ordering::SeqCst), 2, "reset: {reset}");
    }
}

#[tokio::test]
async fn a_body_dropped_early_gives_no_reuse() {
    let (addr, accepts, p) = hyper_pool(LIMITS).await;
    let resp = p.send(get(addr, "/big"), false).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    drop(resp);
    assert_eq!(fetch(&p, addr).await, "ok");
    assert_eq!(accepts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn at_most_max_idle_connections_are_kept() {
    let (addr, accepts, p) = hyper_pool(Limits {
        max_idle: 2,
        ..LIMITS
    })
    .await;
    // Three at once: each needs its own connection; only two are kept.
    let (a, b, c) = tokio::join!(
        p.send(get(addr, "/"), false),
        p.send(get(addr, "/"), false),
        p.send(get(addr, "/"), false)
    );
    for r in [a, b, c] {
        r.unwrap().into_body().collect().await.unwrap();
    }
    assert_eq!(accepts.load(Ordering::SeqCst), 3);
    assert_eq!(p.idle_len(), 2);
    assert_eq!(fetch(&p, addr).await, "ok");
    assert_eq!(accepts.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn an_expired_idle_connection_is_dropped() {
    let (addr, accepts, p) = hyper_pool(Limits {
        idle_timeout: Duration::ZERO,
        ..LIMITS
    })
    .await;
    assert_eq!(fetch(&p, addr).await, "ok");
    assert_eq!(fetch(&p, addr).await, "ok");
    assert_eq!(accepts.load(Ordering::SeqCst), 2);
}

#[test]
fn http1_requests_go_in_origin_form_with_a_host() {
    let host = HeaderValue::from_static("up.example:8080");
    let mut req = Request::get("http://up.example:8080/a/b?c=d")
        .body(())
        .unwrap();
    origin_form(&mut req, &host);
    assert_eq!(req.uri(), "/a/b?c=d");
    assert_eq!(req.headers()[HOST], "up.example:8080");
    let mut req = Request::get("http://up.example:8080/")
        .header(HOST, "kept")
        .body(())
        .unwrap();
    origin_form(&mut req, &host);
    assert_eq!(req.uri(), "/");
    assert_eq!(req.headers()[HOST], "kept");
}

/// A TLS server offering only `h2` by ALPN, its certificate for `localhost` signed by
/// a fresh CA (written to `ca`): answers each request with its HTTP version.
async fn h2_server(ca: &std::path::Path) -> (SocketAddr, Arc<AtomicUsize>) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    std::fs::write(ca, params.self_signed(&ca_key).unwrap().pem()).unwrap();
    let issuer = rcgen::Issuer::new(params, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .unwrap();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tls = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    counting_server(move |s| {
        let tls = tls.clone();
        async move {
            let s = tls.accept(s).await.unwrap();
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let v = format!("{:?}", req.version());
                Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from(v))))
            });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc),
            );
        }
    })
    .await
}

#[tokio::test]
async fn an_h2_upstream_multiplexes_one_connection() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    let (addr, accepts) = h2_server(&ca).await;
    let connector =
        crate::tls_client::https_connector(Duration::from_secs(5), Some(&ca), true).unwrap();
    let authority = Authority::try_from(format!("localhost:{}", addr.port())).unwrap();
    let p: Pool<Empty<Bytes>> = Pool::new(connector, Scheme::HTTPS, authority, LIMITS).unwrap();
    let get = || {
        Request::get(format!("https://localhost:{}/x", addr.port()))
            .body(Empty::new())
            .unwrap()
    };
    let first = p.send(get(), false).await.unwrap();
    assert_eq!(first.version(), http::Version::HTTP_2);
    // Concurrent requests share the connection, no HTTP/1.1 sender is pooled.
    let (a, b, c) = tokio::join!(
        p.send(get(), false),
        p.send(get(), false),
        p.send(get(), false)
    );
    for r in [first, a.unwrap(), b.unwrap(), c.unwrap()] {
        let body = r.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "HTTP/2.0");
    }
    assert_eq!(accepts.load(Ordering::SeqCst), 1);
    assert_eq!(p.idle_len(), 0);
}
