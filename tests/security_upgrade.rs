//! Tunnels and routing overrides (issue 14; SECURITY.md "Upgrade tunnels",
//! "Routing-override headers"; SPEC §2, §4):
//! - only a WebSocket handshake opens a tunnel: `Upgrade: h2c` (and any other token)
//!   is removed before the upstream sees it, checked against real Hypercorn, which
//!   switches to HTTP/2 on `Upgrade: h2c` (so an opened tunnel would carry
//!   `GET /admin/secret` with `x-user: admin` and no token straight to the backend);
//! - an upstream `101` to anything but the WebSocket handshake that was asked for is
//!   answered 502 and the client connection closed, not one byte tunnelled (a raw TCP
//!   upstream that switches protocols on every request);
//! - `X-Original-URL` and friends never reach the upstream;
//! - HTTP/2 `cookie` fields reach an HTTP/1.1 upstream as one `Cookie`;
//! - `CONNECT` is 400, HTTP/1.1 and HTTP/2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

// ====================================================================== Hypercorn

/// Real Hypercorn (installed by scripts/test-all.sh) serving `tests/asgi/seen_app.py`
/// on a free loopback port; killed on drop.
struct Hypercorn {
    child: Child,
    addr: SocketAddr,
    seen_log: PathBuf,
    stderr: Arc<Mutex<String>>,
    _dir: tempfile::TempDir,
}

/// `$PORTCULLIS_HYPERCORN`, else the venv scripts/test-all.sh installs, else PATH.
fn hypercorn_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("PORTCULLIS_HYPERCORN") {
        return p.into();
    }
    let venv = std::env::var_os("HOME")
        .map(|h| PathBuf::from(h).join(".cache/portcullis-hypercorn/bin/hypercorn"));
    venv.filter(|p| p.is_file())
        .unwrap_or_else(|| "hypercorn".into())
}

impl Hypercorn {
    fn start() -> Hypercorn {
        let dir = tempfile::tempdir().unwrap();
        let seen_log = dir.path().join("seen.jsonl");
        let bin = hypercorn_bin();
        let app_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/asgi");
        let mut child = Command::new(&bin)
            .args(["-w", "0", "--bind", "127.0.0.1:0", "seen_app:app"])
            .current_dir(&app_dir)
            .env("SEEN_LOG", &seen_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run hypercorn `{}` ({e}): run ./scripts/test-all.sh (it installs \
                     hypercorn==0.18.0 into a venv) or set PORTCULLIS_HYPERCORN",
                    bin.display()
                )
            });
        // Hypercorn logs the port it bound: "Running on http://127.0.0.1:PORT".
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let log = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { return };
                if let Some(rest) = line.split("Running on http://").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                }
                log.lock().unwrap().push_str(&line);
                log.lock().unwrap().push('\n');
            }
        });
        let addr = match rx.recv_timeout(START_TIMEOUT) {
            Ok(a) => a.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "hypercorn did not report its port within {START_TIMEOUT:?}:\n{}",
                    stderr.lock().unwrap()
                );
            }
        };
        Hypercorn {
            child,
            addr,
            seen_log,
            stderr,
            _dir: dir,
        }
    }

    /// Every request the ASGI app has answered, in order.
    fn seen(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.seen_log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Hypercorn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- hypercorn stderr\n{}", self.stderr.lock().unwrap());
        }
    }
}

fn config(upstream: &str) -> String {
    format!(
        r#"
[upstreams.app]
url = "{upstream}"

{issuer}

[[routes]]
name = "public"
path = "/public/**"
access = "public"
upstream = "app"

[[routes]]
name = "optional"
path = "/opt/**"
access = "optional"
upstream = "app"

[[routes]]
name = "admin"
path = "/admin/**"
scopes = ["admin"]
upstream = "app"

[[routes]]
name = "protected"
path = "/**"
upstream = "app"
"#,
        issuer = hs_issuer()
    )
}

// ====================================================================== clients

/// `GET path` over HTTP/1.1 with hyper's client (upgrades enabled, so a `101` can be
/// taken over as the attacker would).
async fn h1_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> http::Response<hyper::body::Incoming> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    let mut b = http::Request::get(path).header("host", "localhost");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Empty::<Bytes>::new()).unwrap();
    tokio::time::timeout(TIMEOUT, send.send_request(req))
        .await
        .expect("no response in time")
        .unwrap()
}

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).unwrap().to_be_bytes();
    let mut f = vec![len[1], len[2], len[3], kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK (RFC 7541 §6.2.2) "literal without indexing", no Huffman coding: the name
/// from static-table entry `name_idx`, or spelled out when `name_idx` is 0.
fn hpack_literal(out: &mut Vec<u8>, name_idx: u8, name: &str, value: &str) {
    out.push(name_idx);
    if name_idx == 0 {
        out.push(u8::try_from(name.len()).unwrap());
        out.extend_from_slice(name.as_bytes());
    }
    out.push(u8::try_from(value.len()).unwrap());
    out.extend_from_slice(value.as_bytes());
}

/// What an attacker does once an `h2c` upgrade went through: the HTTP/2 preface and
/// SETTINGS (RFC 9113 §3.4), then on stream 3 (stream 1 is the upgraded request)
/// `GET /admin/secret` with `x-user: admin` and no token. Returns the body the backend
/// answered with, or why there was none.
async fn smuggle_h2(io: impl AsyncRead + AsyncWrite + Unpin) -> Result<String, String> {
    let mut block = vec![0x82, 0x86]; // :method GET, :scheme http (static table)
    hpack_literal(&mut block, 4, ":path", "/admin/secret");
    hpack_literal(&mut block, 1, ":authority", "localhost");
    hpack_literal(&mut block, 0, "x-user", "admin");
    h2_raw_request(io, 3, &block).await
}

/// Sends the HTTP/2 preface, an empty SETTINGS and one HEADERS frame (`block`, with
/// END_STREAM) on `stream`, acknowledges the peer's SETTINGS, and returns the DATA
/// answered on that stream, or why there was none (reset, GOAWAY, closed, timeout).
async fn h2_raw_request(
    mut io: impl AsyncRead + AsyncWrite + Unpin,
    stream_id: u32,
    block: &[u8],
) -> Result<String, String> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(4, 0, 0, &[]));
    out.extend(h2_frame(1, 0x5, stream_id, block)); // END_STREAM | END_HEADERS
    io.write_all(&out).await.map_err(|e| e.to_string())?;
    let deadline = Instant::now() + TIMEOUT;
    let (mut buf, mut body, mut tmp) = (Vec::new(), Vec::new(), [0u8; 16384]);
    loop {
        while buf.len() >= 9 {
            let len = usize::from(buf[0]) << 16 | usize::from(buf[1]) << 8 | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let (kind, flags) = (buf[3], buf[4]);
            let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
            let payload: Vec<u8> = buf.drain(..9 + len).skip(9).collect();
            match (kind, stream) {
                _ if stream != 0 && stream != stream_id => {}
                (4, 0) if flags & 1 == 0 => {
                    let ack = h2_frame(4, 1, 0, &[]);
                    io.write_all(&ack).await.map_err(|e| e.to_string())?;
                }
                (0, _) => {
                    let pad = if flags & 0x8 != 0 {
                        payload[0] as usize
                    } else {
                        0
                    };
                    let start = usize::from(flags & 0x8 != 0);
                    body.extend_from_slice(&payload[start..payload.len() - pad]);
                    if flags & 1 != 0 {
                        return Ok(String::from_utf8_lossy(&body).into_owned());
                    }
                }
                (3, _) => return Err(format!("stream {stream_id} reset")),
                (7, _) => return Err("GOAWAY".into()),
                _ => {}
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, io.read(&mut tmp)).await {
            Err(_) => return Err(format!("no answer on stream {stream_id} in time")),
            Ok(Ok(0)) => return Err("connection closed".into()),
            Ok(Ok(n)) => buf.extend_from_slice(&tmp[..n]),
            Ok(Err(e)) => return Err(e.to_string()),
        }
    }
}

/// A base64url SETTINGS payload as curl sends it with `--http2`.
const HTTP2_SETTINGS: &str = "AAMAAABkAAQCAAAAAAIAAAAA";

/// Sends `GET path` with `Upgrade: upgrade` (+ `HTTP2-Settings`) through the proxy
/// to Hypercorn. A `101` is taken over and used to smuggle an HTTP/2 request (the
/// failure names what the backend answered over the tunnel). Otherwise the answer
/// must be Hypercorn's plain HTTP/1.1 200 to a request that carried no `Upgrade`,
/// no `HTTP2-Settings`, no `Connection: upgrade`, and `x-user` as `identity`.
async fn upgrade_attempt(
    proxy: &Proxy,
    path: &str,
    upgrade: &str,
    bearer: Option<&str>,
    identity: &[&str],
) -> Result<(), String> {
    let auth = bearer.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("Upgrade", upgrade),
        ("Connection", "Upgrade, HTTP2-Settings"),
        ("HTTP2-Settings", HTTP2_SETTINGS),
    ];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    let mut resp = h1_get(proxy.addr, path, &headers).await;
    let status = resp.status().as_u16();
    if status == 101 {
        let io = hyper::upgrade::on(&mut resp)
            .await
            .map_err(|e| format!("101 but the upgrade failed: {e}"))?;
        let got = smuggle_h2(TokioIo::new(io)).await;
        return Err(format!(
            "101 from the backend: tunnel opened; over it /admin/secret answered {got:?}"
        ));
    }
    if resp.headers().contains_key("upgrade") {
        return Err(format!("{status} response carries Upgrade"));
    }
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if status != 200 {
        return Err(format!("status {status}, body {text:?}"));
    }
    let seen: Value = serde_json::from_str(&text).map_err(|e| format!("{e}: {text:?}"))?;
    let connection = seen["connection"].to_string().to_ascii_lowercase();
    let want = json!({
        "path": path,
        "http_version": "1.1",
        "upgrade": [],
        "http2_settings": [],
        "x_user": identity,
    });
    let got = json!({
        "path": seen["path"],
        "http_version": seen["http_version"],
        "upgrade": seen["upgrade"],
        "http2_settings": seen["http2_settings"],
        "x_user": seen["x_user"],
    });
    if got != want || connection.contains("upgrade") {
        return Err(format!("the backend saw {seen}"));
    }
    Ok(())
}

/// (path, with alice's token, the `x-user` the backend must see): public, optional
/// without and with a token, protected.
const ROUTES: &[(&str, bool, &[&str])] = &[
    ("/public/x", false, &[]),
    ("/opt/x", false, &[]),
    ("/opt/x", true, &["alice"]),
    ("/prot/x", true, &["alice"]),
];

async fn upgrade_matrix(upgrades: &[&str]) {
    let hc = Hypercorn::start();
    let proxy = Proxy::start(&config(&format!("http://{}", hc.addr))).await;
    let alice = token("alice", json!({}));
    let mut failures = Vec::new();
    for upgrade in upgrades {
        for (path, with_token, identity) in ROUTES {
            let bearer = with_token.then_some(alice.as_str());
            if let Err(e) = upgrade_attempt(&proxy, path, upgrade, bearer, identity).await {
                let who = if *with_token { "alice" } else { "anonymous" };
                failures.push(format!("Upgrade: {upgrade} on {path} ({who}): {e}"));
            }
        }
    }
    let reached: Vec<Value> = hc
        .seen()
        .into_iter()
        .filter(|s| s["path"] == "/admin/secret")
        .collect();
    if !reached.is_empty() {
        failures.push(format!("the backend served /admin/secret: {reached:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ====================================================================== upgrades

/// The issue-14 bypass: `Upgrade: h2c` on a public, optional or protected route must
/// not give the client an HTTP/2 connection to the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upgrade_is_removed_and_never_tunnelled() {
    upgrade_matrix(&["h2c", "H2C", "h2c, h2"]).await;
}

/// Any other token is removed too; `websocket` without the handshake's
/// `Sec-WebSocket-Key` is not a WebSocket handshake and is removed the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_upgrade_tokens_are_removed() {
    upgrade_matrix(&[
        "TLS/1.2",
        "TLS/1.0, HTTP/1.1",
        "foo",
        "HTTP/2.0",
        "websocket",
    ])
    .await;
}

/// What the client writes after the proxy's answer: if a tunnel were open, this
/// would reach the upstream unchecked.
const SMUGGLED: &[u8] = b"GET /admin/secret HTTP/1.1\r\nHost: localhost\r\nX-User: admin\r\n\r\n";

/// An upstream `101` that is not the WebSocket handshake the client asked for gets
/// the client a 502 (SPEC §4 body) and a closed connection; nothing the client sends
/// afterwards reaches the upstream, and the upstream connection is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_101_without_a_websocket_handshake_is_502() {
    let (up, conns) = switching_upstream().await;
    let proxy = Proxy::start(&config(&format!("http://{up}"))).await;
    let ws = [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Key", WS_KEY),
        ("Sec-WebSocket-Version", "13"),
    ];
    let h2c = [
        ("Connection", "Upgrade, HTTP2-Settings"),
        ("Upgrade", "h2c"),
    ];
    let foo = [("Connection", "Upgrade"), ("Upgrade", "foo")];
    let plain = [("Connection", "keep-alive")];
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("/public/plain/as-asked", &plain),
        ("/public/h2c/as-asked", &h2c),
        ("/public/foo/as-asked", &foo),
        ("/opt/foo/as-asked", &foo),
        ("/public/ws/no-accept", &ws),
        ("/public/ws/wrong-accept", &ws),
        ("/public/ws/h2c", &ws),
        (
            "/opt/ws/as-asked-h2c",
            &[("Upgrade", "websocket, h2c"), ws[0], ws[2], ws[3]],
        ),
    ];
    let mut failures = Vec::new();
    for (path, headers) in cases {
        let mut req = Req::get(path);
        for (k, v) in *headers {
            req = req.header(k, v);
        }
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(&req.to_bytes("localhost")).await.unwrap();
        let reply = tokio::time::timeout(TIMEOUT, read_response(&mut s))
            .await
            .expect("no response in time")
            .unwrap();
        let _ = s.write_all(SMUGGLED).await;
        let mut rest = Vec::new();
        let closed = match tokio::time::timeout(TIMEOUT, s.read_to_end(&mut rest)).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => e.kind() == std::io::ErrorKind::ConnectionReset,
            Err(_) => false,
        };
        let body = reply.text();
        let mut problems = Vec::new();
        if reply.status != 502 || body != r#"{"detail": "Bad Gateway"}"# {
            problems.push(format!("status {} body {body:?}", reply.status));
        }
        if reply.header("content-type") != Some("application/json")
            || reply.header("x-request-id").is_none()
            || reply.header("connection") != Some("close")
            || reply.header("upgrade").is_some()
        {
            problems.push(format!("headers {:?}", reply.headers));
        }
        if !closed || !rest.is_empty() {
            problems.push(format!(
                "client connection closed: {closed}, then read {:?}",
                String::from_utf8_lossy(&rest)
            ));
        }
        match raw_conn_closed(&conns, path).await {
            Ok(after) if after.is_empty() => {}
            Ok(after) => problems.push(format!(
                "tunnelled to the upstream: {:?}",
                String::from_utf8_lossy(&after)
            )),
            Err(e) => problems.push(e),
        }
        if !problems.is_empty() {
            failures.push(format!("{path}: {}", problems.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The control: a WebSocket handshake the upstream accepts with the right
/// `Sec-WebSocket-Accept` is spliced, bytes flow both ways, and the forwarded
/// request carried `Upgrade: websocket` only (an `h2c` beside it is dropped).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_websocket_handshake_is_spliced() {
    let (up, conns) = switching_upstream().await;
    let proxy = Proxy::start(&config(&format!("http://{up}"))).await;
    let req = Req::get("/public/ws/accept")
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket, h2c")
        .header("Sec-WebSocket-Key", WS_KEY)
        .header("Sec-WebSocket-Version", "13");
    let mut s = TcpStream::connect(proxy.addr).await.unwrap();
    s.write_all(&req.to_bytes("localhost")).await.unwrap();
    let reply = tokio::time::timeout(TIMEOUT, read_response(&mut s))
        .await
        .expect("no response in time")
        .unwrap();
    reply.assert_status(101);
    assert_eq!(reply.header("upgrade"), Some("websocket"));
    assert_eq!(reply.header("sec-websocket-accept"), Some(WS_ACCEPT));
    s.write_all(b"frames").await.unwrap();
    s.shutdown().await.unwrap();
    let after = raw_conn_closed(&conns, "/public/ws/accept").await.unwrap();
    assert_eq!(after, b"frames");
    let head = conns.lock().unwrap()[0].head.to_ascii_lowercase();
    let upgrades: Vec<&str> = head
        .lines()
        .filter_map(|l| l.strip_prefix("upgrade:"))
        .map(str::trim)
        .collect();
    assert_eq!(upgrades, vec!["websocket"], "forwarded head:\n{head}");
}

// ====================================================================== headers

/// `X-Original-URL`, `X-Rewrite-URL`, `X-HTTP-Method-Override`, `X-HTTP-Method`,
/// `X-Method-Override`, in any case and with `_` for `-`, are removed on every route;
/// names that merely resemble them pass.
#[tokio::test]
async fn routing_override_headers_are_removed_on_every_route() {
    let up = spawn_upstream().await;
    let proxy = Proxy::start(&config(&up.url())).await;
    let alice = token("alice", json!({}));
    let overrides = [
        ("X-Original-URL", "/admin/secret"),
        ("x_original_url", "/admin/secret"),
        ("X-ORIGINAL-URL", "/admin/secret"),
        ("X-Rewrite-URL", "/admin/secret"),
        ("X_Rewrite_Url", "/admin/secret"),
        ("X-HTTP-Method-Override", "DELETE"),
        ("x_http_method_override", "DELETE"),
        ("X-HTTP-Method", "PUT"),
        ("X_HTTP-Method", "PUT"),
        ("X-Method-Override", "PATCH"),
        ("x_method_override", "PATCH"),
    ];
    let kept = [
        ("X-Original-URL-Hint", "kept"),
        ("X-HTTP-Methods", "kept"),
        ("X-Original-Host", "kept"),
    ];
    for (path, with_token) in [
        ("/public/o", false),
        ("/opt/o", false),
        ("/opt/o", true),
        ("/prot/o", true),
    ] {
        let mut req = Req::get(path);
        for (k, v) in overrides.iter().chain(&kept) {
            req = req.header(k, v);
        }
        if with_token {
            req = req.bearer(&alice);
        }
        proxy.send(req).await.assert_status(200);
        let seen = up.last();
        assert_eq!(seen.path, path);
        let leaked: Vec<_> = seen
            .headers
            .iter()
            .filter(|(k, _)| {
                let f = k.replace('_', "-");
                [
                    "x-original-url",
                    "x-rewrite-url",
                    "x-http-method-override",
                    "x-http-method",
                    "x-method-override",
                ]
                .contains(&f.as_str())
            })
            .collect();
        assert!(leaked.is_empty(), "{path}: forwarded {leaked:?}");
        for (k, _) in kept {
            assert_eq!(seen.header_all(k), vec!["kept"], "{path}: {k}");
        }
    }
}

/// RFC 9113 §8.2.3: an HTTP/2 client may split `cookie` into several fields; an
/// HTTP/1.1 upstream gets one `Cookie`, joined with `; `.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_cookie_fields_are_joined() {
    let up = spawn_upstream().await;
    let proxy = Proxy::start(&config(&up.url())).await;
    let mut send = h2_connect(proxy.addr).await;
    let alice = token("alice", json!({}));
    for (path, bearer) in [("/public/c", None), ("/prot/c", Some(&alice))] {
        let mut b = http::Request::get(format!("http://localhost{path}"))
            .header("cookie", "a=1")
            .header("cookie", "b=2")
            .header("cookie", "session=x; theme=dark");
        if let Some(t) = bearer {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let resp = send
            .send_request(b.body(Empty::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let seen = up.last();
        assert_eq!(seen.path, path);
        assert_eq!(seen.version, http::Version::HTTP_11);
        assert_eq!(
            seen.header_all("cookie"),
            vec!["a=1; b=2; session=x; theme=dark"],
            "{path}"
        );
    }
    // One field stays as it is.
    let resp = send
        .send_request(
            http::Request::get("http://localhost/public/one")
                .header("cookie", "a=1; b=2")
                .body(Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(up.last().header_all("cookie"), vec!["a=1; b=2"]);
}

// ====================================================================== CONNECT

/// SPEC §2: portcullis is no forward proxy. `CONNECT` in origin form, which routing
/// would otherwise match, is 400 and never reaches the upstream.
#[tokio::test]
async fn connect_origin_form_is_400() {
    let up = spawn_upstream().await;
    let proxy = Proxy::start(&config(&up.url())).await;
    let alice = token("alice", json!({}));
    for req in [
        Req::new("CONNECT", "/public/x"),
        Req::new("CONNECT", "/opt/x"),
        Req::new("CONNECT", "/prot/x").bearer(&alice),
    ] {
        let target = req.target.clone();
        proxy.send(req).await.assert_bad_request();
        assert_eq!(up.count(), 0, "CONNECT {target} reached the upstream");
    }
}

/// `CONNECT host:port` (authority form, RFC 9110 §9.3.6) is 400 too.
#[tokio::test]
async fn connect_authority_form_is_400() {
    let up = spawn_upstream().await;
    let proxy = Proxy::start(&config(&up.url())).await;
    let alice = token("alice", json!({}));
    let authority = up.addr.to_string();
    for req in [
        Req::new("CONNECT", &authority).host(&authority),
        Req::new("CONNECT", &authority)
            .host(&authority)
            .bearer(&alice),
    ] {
        proxy.send(req).await.assert_bad_request();
        assert_eq!(up.count(), 0, "CONNECT {authority} reached the upstream");
    }
}

/// HTTP/2 `CONNECT` (RFC 9113 §8.5: `:authority` only) is 400 with the SPEC §4 body.
/// (Extended CONNECT, RFC 8441, is refused by the HTTP/2 layer itself: portcullis
/// does not advertise `SETTINGS_ENABLE_CONNECT_PROTOCOL`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_connect_is_400() {
    let up = spawn_upstream().await;
    let proxy = Proxy::start(&config(&up.url())).await;
    let alice = token("alice", json!({}));
    let authority = up.addr.to_string();
    let mut send = h2_connect(proxy.addr).await;
    for auth in [None, Some(&alice)] {
        let mut b = http::Request::connect(authority.as_str());
        if let Some(t) = auth {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let resp = send
            .send_request(b.body(Empty::new()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.headers()["content-type"], "application/json");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], br#"{"detail": "Bad Request"}"#);
        assert_eq!(up.count(), 0, "h2 CONNECT reached the upstream");
    }
}

/// Extended CONNECT (RFC 8441: `:protocol`, the HTTP/2 way to bootstrap WebSocket or
/// other tunnels) is not offered: the stream is refused or answered 400, never
/// forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_extended_connect_is_refused() {
    let up = spawn_upstream().await;
    let proxy = Proxy::start(&config(&up.url())).await;
    for protocol in ["websocket", "connect-udp"] {
        let mut block = Vec::new();
        hpack_literal(&mut block, 2, ":method", "CONNECT");
        hpack_literal(&mut block, 0, ":protocol", protocol);
        block.push(0x86); // :scheme http
        hpack_literal(&mut block, 4, ":path", "/public/x");
        hpack_literal(&mut block, 1, ":authority", "localhost");
        let io = TcpStream::connect(proxy.addr).await.unwrap();
        match h2_raw_request(io, 1, &block).await {
            Err(e) if e.contains("reset") || e.contains("GOAWAY") => {}
            Ok(body) if body == r#"{"detail": "Bad Request"}"# => {}
            other => panic!("extended CONNECT ({protocol}): {other:?}"),
        }
        assert_eq!(up.count(), 0, "extended CONNECT reached the upstream");
    }
}
