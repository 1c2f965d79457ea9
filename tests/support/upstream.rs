//! Upstreams for the proxy to forward to, on port-0 loopback listeners (HTTP/1.1 and
//! h2c, upgrades allowed), living as long as the test's runtime:
//!
//! - [`spawn_upstream`] / [`spawn_upstream_with`]: records every request (method,
//!   target, version, headers with duplicates, the whole body, trailers, whether the
//!   body broke off) and answers `200 ok` or what the responder says.
//! - [`spawn_streaming_upstream`]: records request heads and streams: `/slow` never
//!   answers, `.../delay/MS` answers after MS ms, `/download/N` streams N MiB,
//!   `/upload` answers the body's length and SHA-256 without keeping it.
//! - [`silent_upstream`]: accepts connections and never answers.
//! - [`spawn_ws_echo`]: a WebSocket server that echoes every message.
//! - [`switching_upstream`]: a raw TCP upstream answering every request head with
//!   `101 Switching Protocols` and recording what is tunnelled after it ([`RawConn`]).

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::TIMEOUT;

/// One request as the upstream received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// The request target as received (origin form: path and query).
    pub uri: String,
    pub path: String,
    pub query: Option<String>,
    pub version: http::Version,
    /// Lower-case names (hyper), in received order, duplicates kept.
    pub headers: Vec<(String, String)>,
    /// Trailer fields, when the body carried any.
    pub trailers: Vec<(String, String)>,
    /// The body as received (empty for the streaming upstream).
    pub body: Bytes,
    /// The body ended in an error (the proxy aborted it mid-stream), so the upstream
    /// never got a complete request.
    pub body_error: bool,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        super::client::header_values(&self.headers, name)
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    fn head(parts: &http::request::Parts) -> Recorded {
        Recorded {
            method: parts.method.to_string(),
            uri: parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| parts.uri.to_string()),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            version: parts.version,
            headers: pairs(&parts.headers),
            trailers: Vec::new(),
            body: Bytes::new(),
            body_error: false,
        }
    }
}

fn pairs(h: &http::HeaderMap) -> Vec<(String, String)> {
    h.iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// What the upstream answers.
#[derive(Clone, Debug)]
pub struct UpReply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl UpReply {
    /// `200`, `Content-Type: text/plain`, `ok`.
    pub fn ok() -> UpReply {
        UpReply {
            status: 200,
            headers: vec![("content-type".into(), "text/plain".into())],
            body: Bytes::from_static(b"ok"),
        }
    }
}

/// A test upstream: where it listens and what it has received.
#[derive(Clone)]
pub struct Upstream {
    pub addr: SocketAddr,
    log: Arc<Mutex<Vec<Recorded>>>,
}

impl Upstream {
    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.log.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// The most recent request (panics if none).
    pub fn last(&self) -> Recorded {
        self.log
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("the upstream received no request")
    }

    /// Removes and returns everything recorded so far.
    pub fn take(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }

    /// Forgets everything recorded so far.
    pub fn clear(&self) {
        self.log.lock().unwrap().clear();
    }

    /// The requests whose path starts with `prefix`.
    pub fn with_prefix(&self, prefix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|s| s.path.starts_with(prefix))
            .collect()
    }
}

/// A response body the upstreams can stream.
pub type UpBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

type Handler = Arc<
    dyn Fn(
            hyper::Request<Incoming>,
        ) -> Pin<Box<dyn Future<Output = hyper::Response<UpBody>> + Send>>
        + Send
        + Sync,
>;

/// Serves `handler` on a fresh port-0 listener, HTTP/1.1 and h2c, upgrades allowed.
async fn serve(handler: Handler) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let fut = handler(req);
                    async move { Ok::<_, std::convert::Infallible>(fut.await) }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

fn full(body: Bytes) -> UpBody {
    Full::new(body).map_err(|e| match e {}).boxed()
}

/// An upstream answering 200 `ok` (`text/plain`) to everything.
pub async fn spawn_upstream() -> Upstream {
    spawn_upstream_with(|_| UpReply::ok()).await
}

/// A recording upstream answering with `respond(request)` once it has read the whole
/// request body (trailers included).
pub async fn spawn_upstream_with(
    respond: impl Fn(&Recorded) -> UpReply + Send + Sync + 'static,
) -> Upstream {
    let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
    let respond = Arc::new(respond);
    let l = log.clone();
    let handler: Handler = Arc::new(move |req| {
        let (l, respond) = (l.clone(), respond.clone());
        Box::pin(async move {
            let (parts, mut body) = req.into_parts();
            let mut rec = Recorded::head(&parts);
            let mut data = Vec::new();
            while let Some(f) = body.frame().await {
                let Ok(f) = f else {
                    rec.body_error = true;
                    break;
                };
                match f.into_data() {
                    Ok(d) => data.extend_from_slice(&d),
                    Err(f) => {
                        if let Ok(t) = f.into_trailers() {
                            rec.trailers.extend(pairs(&t));
                        }
                    }
                }
            }
            rec.body = Bytes::from(data);
            let reply = respond(&rec);
            l.lock().unwrap().push(rec);
            let mut resp = hyper::Response::new(full(reply.body));
            *resp.status_mut() = http::StatusCode::from_u16(reply.status).unwrap();
            for (k, v) in reply.headers {
                resp.headers_mut().append(
                    http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(&v).unwrap(),
                );
            }
            resp
        })
    });
    Upstream {
        addr: serve(handler).await,
        log,
    }
}

/// Deterministic, incompressible-looking 64 KiB chunk number `i` (what `/download/N`
/// streams, 16 a MiB).
pub fn chunk(i: u64) -> Bytes {
    let mut v = vec![0u8; 65536];
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in v.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    Bytes::from(v)
}

/// The streaming upstream (see the module doc): records each request's head on
/// arrival, keeps no body.
pub async fn spawn_streaming_upstream() -> Upstream {
    let log: Arc<Mutex<Vec<Recorded>>> = Arc::default();
    let l = log.clone();
    let handler: Handler = Arc::new(move |req| {
        let l = l.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            l.lock().unwrap().push(Recorded::head(&parts));
            let path = parts.uri.path().to_string();
            streaming_answer(&path, body).await.unwrap_or_else(|e| {
                let mut r = hyper::Response::new(full(Bytes::from(e.to_string())));
                *r.status_mut() = http::StatusCode::BAD_REQUEST;
                r
            })
        })
    });
    Upstream {
        addr: serve(handler).await,
        log,
    }
}

async fn streaming_answer(path: &str, body: Incoming) -> std::io::Result<hyper::Response<UpBody>> {
    if path == "/slow" {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    if let Some((_, ms)) = path.rsplit_once("/delay/") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
    }
    if let Some(n) = path.strip_prefix("/download/") {
        let mib: u64 = n.parse().map_err(std::io::Error::other)?;
        let stream = futures_util::stream::iter((0..mib * 16).map(|i| Ok(Frame::data(chunk(i)))));
        return Ok(hyper::Response::new(BodyExt::boxed(StreamBody::new(
            stream,
        ))));
    }
    if path == "/upload" {
        let mut body = body;
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut n = 0u64;
        while let Some(f) = body.frame().await {
            if let Ok(d) = f.map_err(std::io::Error::other)?.into_data() {
                n += d.len() as u64;
                ctx.update(&d);
            }
        }
        let hex: String = ctx
            .finish()
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        return Ok(hyper::Response::new(full(Bytes::from(format!(
            "{n} {hex}"
        )))));
    }
    Ok(hyper::Response::new(full(Bytes::from_static(b"ok"))))
}

/// A TCP server that accepts and never answers (an upstream too slow).
pub async fn silent_upstream() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    addr
}

// ====================================================================== WebSocket, 101

/// A WebSocket server echoing every text and binary message back.
pub async fn spawn_ws_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() || m.is_binary() {
                        if ws.send(m).await.is_err() {
                            return;
                        }
                    } else if m.is_close() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// One connection to the raw upstream: the request head, then every byte after it.
#[derive(Default)]
pub struct RawConn {
    pub head: String,
    pub after: Vec<u8>,
    pub closed: bool,
}

/// The RFC 6455 §1.3 example handshake key and its `Sec-WebSocket-Accept`.
pub const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const WS_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A raw TCP upstream that answers every request head with `101 Switching Protocols`
/// and never anything else. The last path segment picks the answer's `Upgrade`:
/// `as-asked` echoes the request's (`h2c` when it had none), `h2c` says `h2c`,
/// `no-accept` / `wrong-accept` / `accept` say `websocket` without, with a wrong, or
/// with the right `Sec-WebSocket-Accept` for [`WS_KEY`].
pub async fn switching_upstream() -> (SocketAddr, Arc<Mutex<Vec<RawConn>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns: Arc<Mutex<Vec<RawConn>>> = Arc::default();
    let all = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let all = all.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 8192];
                let end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match s.read(&mut tmp).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&tmp[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let idx = {
                    let mut v = all.lock().unwrap();
                    v.push(RawConn {
                        head: head.clone(),
                        after: buf[end..].to_vec(),
                        closed: false,
                    });
                    v.len() - 1
                };
                let asked = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("upgrade")
                            .then(|| v.trim().to_owned())
                    })
                    .unwrap_or_else(|| "h2c".into());
                let target = head.split(' ').nth(1).unwrap_or("");
                let extra = match target.rsplit('/').next().unwrap_or("") {
                    "h2c" => "Upgrade: h2c\r\n".to_owned(),
                    "no-accept" => "Upgrade: websocket\r\n".to_owned(),
                    "wrong-accept" => {
                        "Upgrade: websocket\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n"
                            .to_owned()
                    }
                    "accept" => format!("Upgrade: websocket\r\nSec-WebSocket-Accept: {WS_ACCEPT}\r\n"),
                    _ => format!("Upgrade: {asked}\r\n"),
                };
                let resp = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n{extra}\r\n"
                );
                if s.write_all(resp.as_bytes()).await.is_err() {
                    return;
                }
                loop {
                    match s.read(&mut tmp).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => all.lock().unwrap()[idx].after.extend_from_slice(&tmp[..n]),
                    }
                }
                all.lock().unwrap()[idx].closed = true;
            });
        }
    });
    (addr, conns)
}

/// Waits (bounded) until the upstream connection whose head names `path` is closed.
pub async fn raw_conn_closed(conns: &Mutex<Vec<RawConn>>, path: &str) -> Result<Vec<u8>, String> {
    let needle = format!(" {path} ");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        {
            let v = conns.lock().unwrap();
            let c = v.iter().find(|c| c.head.contains(&needle));
            match c {
                Some(c) if c.closed => return Ok(c.after.clone()),
                None if Instant::now() > deadline => {
                    return Err("the upstream never saw the request".into())
                }
                Some(c) if Instant::now() > deadline => {
                    return Err(format!(
                        "the upstream connection was left open, {} bytes tunnelled: {:?}",
                        c.after.len(),
                        String::from_utf8_lossy(&c.after)
                    ))
                }
                _ => {}
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
