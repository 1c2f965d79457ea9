//! Clients: hand-written HTTP/1.1 over raw TCP, so request lines and headers reach the
//! proxy byte for byte (no client-side normalization).
//!
//! - [`Req`] / [`send`] / [`raw`]: one request, one response ([`Reply`], with the SPEC
//!   §4 denial assertions), framed by Content-Length, chunked coding or close.
//! - [`exchange`] and friends: every response a connection yields to a byte sequence
//!   (pipelined, turn by turn, or trickled), and whether the proxy closed it.
//! - [`h2_connect`] / [`h2_handshake`]: an HTTP/2 client (prior knowledge) from hyper,
//!   over TCP or any stream (TLS).
//! - [`http_client`], [`post_form`] and the token-endpoint calls ([`login`],
//!   [`refresh`], [`revoke`]) over reqwest.

use super::TIMEOUT;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

// ====================================================================== requests and replies

/// A hand-written HTTP/1.1 request. `to_bytes` adds `Host` (unless set),
/// `Content-Length` for a body, and `Connection: close` (unless a `Connection`
/// header was given).
#[derive(Clone, Debug)]
pub struct Req {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn new(method: &str, target: &str) -> Req {
        Req {
            method: method.into(),
            target: target.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn get(target: &str) -> Req {
        Req::new("GET", target)
    }

    pub fn post(target: &str, body: impl Into<Vec<u8>>) -> Req {
        let mut r = Req::new("POST", target);
        r.body = body.into();
        r
    }

    /// Appends a header (duplicates and any name spelling allowed).
    pub fn header(mut self, name: &str, value: &str) -> Req {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn bearer(self, token: &str) -> Req {
        self.header("Authorization", &format!("Bearer {token}"))
    }

    pub fn host(self, host: &str) -> Req {
        self.header("Host", host)
    }

    pub fn to_bytes(&self, default_host: &str) -> Vec<u8> {
        let has = |n: &str| self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
        let mut head = format!("{} {} HTTP/1.1\r\n", self.method, self.target);
        if !has("host") {
            head.push_str(&format!("Host: {default_host}\r\n"));
        }
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if !has("content-length")
            && !has("transfer-encoding")
            && (!self.body.is_empty() || self.method == "POST" || self.method == "PUT")
        {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        if !has("connection") {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// A response as the client saw it.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    /// Header names lower-cased, in wire order, duplicates kept.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The values of every field called `name` (any case) in `headers`, in order.
pub fn header_values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).into_iter().next()
    }

    pub fn header_all(&self, name: &str) -> Vec<&str> {
        header_values(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(
            self.status,
            status,
            "status; headers {:?}; body {:?}",
            self.headers,
            self.text()
        );
        self
    }

    /// SPEC §4 denial shape: status, `Content-Type: application/json`, body
    /// `{"detail": detail}`, and an `X-Request-Id` on the response.
    pub fn assert_denied(&self, status: u16, detail: &str) -> &Self {
        self.assert_status(status);
        let ct = self.header("content-type").unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "content-type {ct:?} on a {status} denial"
        );
        assert_eq!(
            self.json(),
            json!({ "detail": detail }),
            "denial body {:?}",
            self.text()
        );
        assert!(
            self.header("x-request-id").is_some_and(|v| !v.is_empty()),
            "denial without x-request-id: {:?}",
            self.headers
        );
        self
    }

    /// Exactly one `WWW-Authenticate` equal to `value`.
    pub fn assert_www(&self, value: &str) -> &Self {
        assert_eq!(
            self.header_all("www-authenticate"),
            vec![value],
            "WWW-Authenticate"
        );
        self
    }

    /// Exactly one `WWW-Authenticate` starting with `prefix`.
    pub fn assert_www_prefix(&self, prefix: &str) -> &Self {
        let all = self.header_all("www-authenticate");
        assert_eq!(all.len(), 1, "one WWW-Authenticate expected: {all:?}");
        assert!(
            all[0].starts_with(prefix),
            "WWW-Authenticate {:?} should start with {prefix:?}",
            all[0]
        );
        self
    }

    pub fn assert_no_www(&self) -> &Self {
        assert!(
            self.header("www-authenticate").is_none(),
            "unexpected WWW-Authenticate: {:?}",
            self.headers
        );
        self
    }

    /// 401 `Not authenticated`, `WWW-Authenticate: Bearer`.
    pub fn assert_unauthenticated(&self) -> &Self {
        self.assert_denied(401, "Not authenticated")
            .assert_www("Bearer")
    }

    /// 401 `Could not validate credentials`, `Bearer error="invalid_token"...`.
    pub fn assert_invalid_token(&self) -> &Self {
        self.assert_denied(401, "Could not validate credentials")
            .assert_www_prefix("Bearer error=\"invalid_token\"")
    }

    /// 401 `Token has expired` with the exact SPEC challenge.
    pub fn assert_expired(&self) -> &Self {
        self.assert_denied(401, "Token has expired")
            .assert_www("Bearer error=\"invalid_token\", error_description=\"token expired\"")
    }

    /// 403 `Not enough permissions`; with `Some(scopes)` the exact challenge naming
    /// them, with `None` an `insufficient_scope` challenge without a `scope` param.
    pub fn assert_insufficient(&self, scopes: Option<&str>) -> &Self {
        self.assert_denied(403, "Not enough permissions");
        match scopes {
            Some(s) => {
                self.assert_www(&format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{s}\""
                ));
            }
            None => {
                self.assert_www_prefix("Bearer error=\"insufficient_scope\"");
                let v = self.header("www-authenticate").unwrap();
                assert!(
                    !v.contains(" scope=") && !v.contains(",scope="),
                    "claim-only failure must not name a scope: {v:?}"
                );
            }
        }
        self
    }

    /// 403 `Forbidden`, no challenge.
    pub fn assert_forbidden(&self) -> &Self {
        self.assert_denied(403, "Forbidden").assert_no_www()
    }

    /// 404 `Not Found`, no challenge.
    pub fn assert_not_found(&self) -> &Self {
        self.assert_denied(404, "Not Found").assert_no_www()
    }

    /// 400 `Bad Request`, no challenge.
    pub fn assert_bad_request(&self) -> &Self {
        self.assert_denied(400, "Bad Request").assert_no_www()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Writes `bytes` on a fresh connection to `addr` and reads one response.
pub async fn try_raw(addr: SocketAddr, bytes: &[u8]) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(bytes).await?;
    read_response(&mut s).await
}

/// [`try_raw`] bounded by [`TIMEOUT`], panicking with the request (and `context`,
/// such as the proxy's logs) when there is no complete response.
pub async fn raw(addr: SocketAddr, bytes: &[u8], context: &str) -> Reply {
    match tokio::time::timeout(TIMEOUT, try_raw(addr, bytes)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!(
            "raw exchange failed: {e}\n--- request\n{}\n{context}",
            String::from_utf8_lossy(bytes)
        ),
        Err(_) => panic!(
            "no response within {TIMEOUT:?}\n--- request\n{}\n{context}",
            String::from_utf8_lossy(bytes)
        ),
    }
}

/// Sends `req` (`Host` defaulting to `addr`) and reads one response, as [`raw`].
pub async fn send(addr: SocketAddr, req: &Req, context: &str) -> Reply {
    raw(addr, &req.to_bytes(&addr.to_string()), context).await
}

/// Reads one HTTP/1.1 response (skipping 1xx) framed by Content-Length, chunked
/// encoding, or connection close, from a TCP or TLS stream.
pub async fn read_response<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Reply> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 16384];
    loop {
        let end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i;
            }
            let n = s.read(&mut tmp).await?;
            if n == 0 {
                return Err(std::io::Error::other(format!(
                    "connection closed before a full response head: {:?}",
                    String::from_utf8_lossy(&buf)
                )));
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut rest = buf[end + 4..].to_vec();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        if (100..200).contains(&status) && status != 101 {
            buf = rest;
            continue;
        }
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let chunked =
            get("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let body = if status == 204 || status == 304 || status == 101 {
            Vec::new()
        } else if chunked {
            read_chunked(s, &mut rest).await?
        } else if let Some(len) = get("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| std::io::Error::other("bad content-length"))?;
            while rest.len() < len {
                let n = s.read(&mut tmp).await?;
                if n == 0 {
                    return Err(std::io::Error::other("body truncated"));
                }
                rest.extend_from_slice(&tmp[..n]);
            }
            rest.truncate(len);
            rest
        } else {
            loop {
                let n = s.read(&mut tmp).await?;
                if n == 0 {
                    break;
                }
                rest.extend_from_slice(&tmp[..n]);
            }
            rest
        };
        return Ok(Reply {
            status,
            headers,
            body,
        });
    }
}

async fn read_chunked<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
) -> std::io::Result<Vec<u8>> {
    let mut tmp = [0u8; 16384];
    let mut out = Vec::new();
    let mut pos = 0usize;
    loop {
        // Make sure a size line is buffered.
        let line_end = loop {
            if let Some(i) = find(&buf[pos..], b"\r\n") {
                break pos + i;
            }
            let n = s.read(&mut tmp).await?;
            if n == 0 {
                return Err(std::io::Error::other("chunked body truncated"));
            }
            buf.extend_from_slice(&tmp[..n]);
        };
        let size_str = String::from_utf8_lossy(&buf[pos..line_end]).into_owned();
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| std::io::Error::other(format!("bad chunk size {size_str:?}")))?;
        pos = line_end + 2;
        if size == 0 {
            // Trailers (if any) end with an empty line; we do not need them.
            return Ok(out);
        }
        while buf.len() < pos + size + 2 {
            let n = s.read(&mut tmp).await?;
            if n == 0 {
                return Err(std::io::Error::other("chunk truncated"));
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        out.extend_from_slice(&buf[pos..pos + size]);
        pos += size + 2;
    }
}

// ====================================================================== whole connections

/// What a connection answered to a raw byte sequence.
#[derive(Debug)]
pub struct Exchange {
    /// Every complete response, in order.
    pub responses: Vec<Reply>,
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
fn parse_responses(mut buf: &[u8]) -> Vec<Reply> {
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
        out.push(Reply {
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

fn connect(addr: SocketAddr) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(addr).unwrap();
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
fn read_answers(
    s: &mut std::net::TcpStream,
    out: &mut Vec<u8>,
    quiet: Duration,
    want: usize,
) -> bool {
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

// ====================================================================== HTTP/2

/// An HTTP/2 client connection (prior knowledge) over `io`, driven by a task of its own.
pub async fn h2_handshake<I>(
    io: I,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>
where
    I: AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(io),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    send
}

/// [`h2_handshake`] over a fresh TCP connection to `addr` (h2c).
pub async fn h2_connect(
    addr: SocketAddr,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>> {
    h2_handshake(TcpStream::connect(addr).await.unwrap()).await
}

// ====================================================================== reqwest

/// A reqwest client with bounded timeouts and no redirects (for plain-HTTP use).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// POSTs `form` (urlencoded) to `url`: status, headers and the body as JSON (`Null`
/// when empty; a body that is not JSON fails the test).
pub async fn post_form(
    http: &reqwest::Client,
    url: &str,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let r = http
        .post(url)
        .form(form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {url}: {e}"));
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap_or_default();
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{status} from {url}, not JSON: {text}"))
    };
    (status, headers, body)
}

/// The password grant at `{base}/token`: status and JSON body.
pub async fn login(http: &reqwest::Client, base: &str, user: &str, pw: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "password"),
        ("username", user),
        ("password", pw),
    ];
    let (st, _, body) = post_form(http, &format!("{base}/token"), &form).await;
    (st, body)
}

/// The refresh grant at `{base}/token`: status and JSON body.
pub async fn refresh(http: &reqwest::Client, base: &str, rt: &str) -> (u16, Value) {
    let form = [("grant_type", "refresh_token"), ("refresh_token", rt)];
    let (st, _, body) = post_form(http, &format!("{base}/token"), &form).await;
    (st, body)
}

/// Revocation (RFC 7009) at `{base}/revoke`: the status.
pub async fn revoke(http: &reqwest::Client, base: &str, token: &str) -> u16 {
    post_form(http, &format!("{base}/revoke"), &[("token", token)])
        .await
        .0
}

/// `GET {base}{path}` with a bearer token: status and JSON body (`Null` if none).
pub async fn get_json(http: &reqwest::Client, base: &str, path: &str, token: &str) -> (u16, Value) {
    let r = http
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {base}{path}: {e}"));
    let st = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (st, serde_json::from_str(&text).unwrap_or(Value::Null))
}
