//! Helpers shared by the `tests/security_*.rs` corpora (issue #9): an upstream that
//! records every request it receives (method, path, headers, trailers), a raw TCP
//! client that reads every response a connection yields, and a few key and token
//! builders for hostile JWTs. The proxy itself is started with `common::Proxy`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

// ------------------------------------------------------------ recording upstream

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The request target's path (no query).
    pub path: String,
    pub query: Option<String>,
    /// Header (name lowercase, value lossy UTF-8), in received order.
    pub headers: Vec<(String, String)>,
    /// Trailer fields, when the body carried any.
    pub trailers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body ended in an error (the proxy aborted it mid-stream), so the
    /// upstream never got a complete request.
    pub body_error: bool,
}

impl Seen {
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }
}

/// What a recording upstream saw.
#[derive(Clone, Default)]
pub struct Recorder(Arc<Mutex<Vec<Seen>>>);

impl Recorder {
    pub fn all(&self) -> Vec<Seen> {
        self.0.lock().unwrap().clone()
    }

    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub fn clear(&self) {
        self.0.lock().unwrap().clear();
    }

    /// Requests whose path starts with `prefix`.
    pub fn with_prefix(&self, prefix: &str) -> Vec<Seen> {
        self.all()
            .into_iter()
            .filter(|s| s.path.starts_with(prefix))
            .collect()
    }
}

fn pairs(h: &http::HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// An HTTP/1.1 + h2c upstream on loopback that records every request and answers
/// `200 ok` once it has read the whole body (trailers included).
pub async fn recording_upstream() -> (SocketAddr, Recorder) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let rec = Recorder::default();
    let r = rec.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let r = r.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let r = r.clone();
                    async move {
                        let (parts, mut body) = req.into_parts();
                        let mut seen = Seen {
                            method: parts.method.to_string(),
                            path: parts.uri.path().to_owned(),
                            query: parts.uri.query().map(str::to_owned),
                            headers: pairs(&parts.headers),
                            trailers: Vec::new(),
                            body: Vec::new(),
                            body_error: false,
                        };
                        while let Some(f) = body.frame().await {
                            let Ok(f) = f else {
                                seen.body_error = true;
                                break;
                            };
                            match f.into_data() {
                                Ok(d) => seen.body.extend_from_slice(&d),
                                Err(f) => {
                                    if let Ok(t) = f.into_trailers() {
                                        seen.trailers.extend(pairs(&t));
                                    }
                                }
                            }
                        }
                        r.0.lock().unwrap().push(seen);
                        Ok::<_, std::convert::Infallible>(Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (addr, rec)
}

// ------------------------------------------------------------ raw HTTP/1.1 client

/// One parsed response.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What a connection answered to a raw byte sequence.
#[derive(Debug)]
pub struct Exchange {
    /// Every complete response, in order.
    pub responses: Vec<RawResponse>,
    /// The connection was closed by the proxy (EOF or reset) before we gave up.
    pub closed: bool,
    /// Raw bytes received (for failure messages).
    pub raw: String,
}

impl Exchange {
    /// Status of the first response; 0 when there was none (connection closed).
    pub fn first_status(&self) -> u16 {
        self.responses.first().map_or(0, |r| r.status)
    }
}

/// Parses as many complete responses as `buf` holds (Content-Length or no body).
fn parse_responses(mut buf: &[u8]) -> Vec<RawResponse> {
    let mut out = Vec::new();
    loop {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut hs);
        let Ok(httparse::Status::Complete(n)) = resp.parse(buf) else {
            return out;
        };
        let headers: Vec<(String, String)> = resp
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_ascii_lowercase(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let status = resp.code.unwrap_or(0);
        let len = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.trim().parse::<usize>().ok())
            .unwrap_or(0);
        let Some(body) = buf.get(n..n + len) else {
            return out;
        };
        out.push(RawResponse {
            status,
            headers,
            body: body.to_vec(),
        });
        buf = &buf[n + len..];
    }
}

/// Sends `bytes` on a fresh connection and reads until the proxy closes it, or
/// `quiet` passes without a byte after at least one complete response (bounded
/// overall by 15 s). A bounded wait, not a timing assertion.
pub fn exchange(addr: SocketAddr, bytes: &[u8], quiet: Duration) -> Exchange {
    let mut s = connect(addr);
    // The proxy may answer and close before reading everything: ignore write errors.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let closed = read_answers(&mut s, &mut out, quiet, usize::MAX);
    finish(out, closed)
}

/// Request-response turns on one connection: writes each of `turns`, then waits for
/// one more complete response (or the close) before writing the next; after the last
/// it reads as [`exchange`] does. Stops writing once the proxy closed the connection.
pub fn exchange_turns(addr: SocketAddr, turns: &[Vec<u8>], quiet: Duration) -> Exchange {
    let mut s = connect(addr);
    let mut out = Vec::new();
    let mut closed = false;
    for (i, t) in turns.iter().enumerate() {
        if s.write_all(t).is_err() {
            break;
        }
        let want = if i + 1 == turns.len() {
            usize::MAX
        } else {
            parse_responses(&out).len() + 1
        };
        closed = read_answers(&mut s, &mut out, quiet, want);
        if closed {
            break;
        }
    }
    finish(out, closed)
}

/// Sends `bytes` `piece` bytes at a time with a short pause between writes (so the
/// proxy sees the head over many reads, slowloris-style), then reads as [`exchange`].
pub fn exchange_trickle(addr: SocketAddr, bytes: &[u8], piece: usize) -> Exchange {
    let mut s = connect(addr);
    for p in bytes.chunks(piece.max(1)) {
        if s.write_all(p).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut out = Vec::new();
    let closed = read_answers(&mut s, &mut out, Duration::from_millis(400), usize::MAX);
    finish(out, closed)
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    s
}

fn finish(out: Vec<u8>, closed: bool) -> Exchange {
    Exchange {
        responses: parse_responses(&out),
        closed,
        raw: String::from_utf8_lossy(&out).into_owned(),
    }
}

/// Reads into `out` until the peer closes (returns `true`), `want` complete
/// responses are in `out`, or `quiet` passes without a byte after at least one
/// complete response (5 s without one; 15 s overall).
fn read_answers(s: &mut TcpStream, out: &mut Vec<u8>, quiet: Duration, want: usize) -> bool {
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut buf = [0u8; 8192];
    let mut last = Instant::now();
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                last = Instant::now();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return true,
        }
        let now = Instant::now();
        let have = parse_responses(out).len();
        if have >= want
            || now > deadline
            || (now - last > quiet && have > 0)
            || now - last > Duration::from_secs(5)
        {
            return false;
        }
    }
}

/// `GET {target}` with `Connection: close` plus `extra` header lines.
pub fn get(addr: SocketAddr, target: &str, extra: &str) -> Exchange {
    let req =
        format!("GET {target} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n");
    exchange(addr, req.as_bytes(), Duration::from_millis(500))
}

// ------------------------------------------------------------ JOSE building blocks

pub fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `-----BEGIN {label}-----` PEM of `der`.
pub fn pem(label: &str, der: &[u8]) -> String {
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for line in b.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(line).unwrap());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

pub fn hmac256(secret: &[u8], msg: &[u8]) -> Vec<u8> {
    use aws_lc_rs::hmac;
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), msg)
        .as_ref()
        .to_vec()
}

/// An RSA-2048 key pair: signs RS256; its SPKI public key as PEM.
pub struct RsaKey {
    pub kp: aws_lc_rs::signature::RsaKeyPair,
    pub public_pem: String,
}

impl RsaKey {
    pub fn generate() -> RsaKey {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::KeyPair;
        let kp =
            aws_lc_rs::signature::RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
        let public_pem = pem("PUBLIC KEY", kp.public_key().as_der().unwrap().as_ref());
        RsaKey { kp, public_pem }
    }

    pub fn rs256(&self, msg: &[u8]) -> Vec<u8> {
        let mut sig = vec![0u8; self.kp.public_modulus_len()];
        self.kp
            .sign(
                &aws_lc_rs::signature::RSA_PKCS1_SHA256,
                &aws_lc_rs::rand::SystemRandom::new(),
                msg,
                &mut sig,
            )
            .unwrap();
        sig
    }

    /// The public key as a JWK (for hostile embedded `jwk` headers).
    pub fn jwk(&self) -> serde_json::Value {
        use aws_lc_rs::signature::KeyPair;
        let pk = self.kp.public_key();
        serde_json::json!({
            "kty": "RSA",
            "n": b64(pk.modulus().big_endian_without_leading_zero()),
            "e": b64(pk.exponent().big_endian_without_leading_zero()),
        })
    }
}

/// A P-256 key pair: signs ES256 (fixed r||s); its SPKI public key as PEM.
pub struct EcKey {
    pub kp: aws_lc_rs::signature::EcdsaKeyPair,
    pub public_pem: String,
}

impl EcKey {
    pub fn generate() -> EcKey {
        use aws_lc_rs::encoding::AsDer;
        use aws_lc_rs::signature::KeyPair;
        let kp = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        )
        .unwrap();
        let public_pem = pem("PUBLIC KEY", kp.public_key().as_der().unwrap().as_ref());
        EcKey { kp, public_pem }
    }

    pub fn es256(&self, msg: &[u8]) -> Vec<u8> {
        self.kp
            .sign(&aws_lc_rs::rand::SystemRandom::new(), msg)
            .unwrap()
            .as_ref()
            .to_vec()
    }
}

/// `b64(header).b64(payload)` from raw JSON texts (so duplicate keys survive).
pub fn signing_input(header: &str, payload: &str) -> String {
    format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()))
}

/// A compact JWS over raw JSON texts, HMAC-SHA256-signed with `secret`.
pub fn hs256_raw(header: &str, payload: &str, secret: &[u8]) -> String {
    let input = signing_input(header, payload);
    let sig = hmac256(secret, input.as_bytes());
    format!("{input}.{}", b64(&sig))
}
