//! Host spellings against host-scoped routes (issue 14; SPEC §2 "Host handling";
//! SECURITY.md "Host spellings"), with a REAL nginx as the upstream. nginx's
//! `server_name` virtual hosts fold case, drop a trailing dot and ignore whatever
//! follows the first `:`, so `secure.example.com.`, `secure.example.com:abc` or
//! `secure.example.com:80:80`, forwarded verbatim, land on the secret vhost that a
//! portcullis `deny` route for `host = "secure.example.com"` was meant to close.
//!
//! Two portcullis instances (plain: HTTP/1.1 and h2c; TLS: HTTP/1.1 and h2 by ALPN)
//! deny `secure.example.com` and `*.internal.example.com`, then send `/**` to nginx.
//! Every spelling goes over all four transports (as `Host` for HTTP/1.1, as
//! `:authority` for HTTP/2) and must be 403 (the normalized host matched the deny
//! route) or 400 (invalid host) with the SPEC §4 body, never the secret; accepted
//! public hosts reach nginx normalized in `Host` and `X-Forwarded-Host`; and nginx's
//! access log must show no request through portcullis answered by a secret vhost.
//!
//! HTTP/2 authorities the `http` crate cannot parse cannot be sent by hyper's
//! client; they are sent as hand-made frames (HPACK literals), and the server's h2
//! layer resetting the stream (PROTOCOL_ERROR, before portcullis sees it) counts as
//! the refusal it is, for the cases that must be refused as invalid.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use serde_json::json;
use std::net::SocketAddr;
use support::nginx::Nginx;
use support::{h2_handshake, tls_connect, Pki, Proxy, Reply, TIMEOUT};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "SECRET";

/// The upstream: a default vhost that echoes the host it was sent, and two secrets.
const SITES: &str = r#"
server {
    listen @LISTEN@ default_server;
    server_name _;
    return 200 "public host=$http_host xfh=$http_x_forwarded_host\n";
}
server {
    listen @LISTEN@;
    server_name secure.example.com;
    return 200 "SECRET secure vhost\n";
}
server {
    listen @LISTEN@;
    server_name *.internal.example.com;
    return 200 "SECRET internal vhost\n";
}
"#;

fn routes(nginx: &Nginx) -> String {
    format!(
        r#"
[upstreams.web]
url = "{}"

{}

[[routes]]
name = "secure"
host = "secure.example.com"
path = "/**"
access = "deny"

[[routes]]
name = "internal"
host = "*.internal.example.com"
path = "/**"
access = "deny"

[[routes]]
name = "public"
path = "/**"
access = "public"
upstream = "web"
"#,
        nginx.url(),
        support::hs_issuer()
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// 403 `Forbidden`: the deny route matched the normalized host.
    Deny,
    /// 400 `Bad Request`: not a valid host.
    Bad,
    /// 200 from nginx's default vhost, which saw this `Host` and `X-Forwarded-Host`.
    Public(&'static str),
}
use Want::{Bad, Deny, Public};

/// Sent as `Host` over HTTP/1.1 and as `:authority` over HTTP/2.
const SPELLINGS: &[(&[u8], Want)] = &[
    (b"secure.example.com", Deny),
    (b"SECURE.Example.COM", Deny),
    (b"secure.example.com.", Deny),
    (b"Secure.Example.Com.", Deny),
    (b"secure.example.com:8443", Deny),
    (b"secure.example.com.:80", Deny),
    (b"secure.example.com:abc", Bad),
    (b"secure.example.com:80:80", Bad),
    (b"secure.example.com:", Bad),
    (b"secure.example.com:65536", Bad),
    (b"secure.example.com:123456", Bad),
    (b"secure.example.com..", Bad),
    (b"secure..example.com", Bad),
    (b".secure.example.com", Bad),
    (b"evil@secure.example.com", Bad),
    (b"user:pw@secure.example.com", Bad),
    (b"secure.example.com/x", Bad),
    (b"secure.example.com\\x", Bad),
    (b"secure.example.com?x", Bad),
    (b"secure.example.com#x", Bad),
    (b"secure.example.com,public.example.com", Bad),
    (b"a,b", Bad),
    (b"secure%2Eexample.com", Bad),
    (b"secure.example.com evil", Bad),
    (b"s\xc3\xa9cure.example.com", Bad),
    (b"secure.example.com\xff", Bad),
    (b"", Bad),
    (b":80", Bad),
    (b"a.internal.example.com", Deny),
    (b"a.internal.example.com.", Deny),
    (b"A.B.Internal.Example.COM.:443", Deny),
    (b"a.internal.example.com:abc", Bad),
    (b"a.internal.example.com:80:80", Bad),
    (b"a..internal.example.com", Bad),
    (b"a.internal.example.com..", Bad),
    (b"public.example.com", Public("public.example.com")),
    (
        b"Public.Example.COM.:8080",
        Public("public.example.com:8080"),
    ),
    (b"[::1]:8080", Public("[::1]:8080")),
];

/// HTTP/1.1 only: (absolute-form authority, `Host` fields, expected).
type H1Extra = (Option<&'static [u8]>, &'static [&'static [u8]], Want);
const H1_EXTRAS: &[H1Extra] = &[
    (None, &[], Bad),
    (None, &[b"secure.example.com", b"public.example.com"], Bad),
    (None, &[b"public.example.com", b"public.example.com"], Bad),
    (Some(b"secure.example.com."), &[b"public.example.com"], Bad),
    (Some(b"public.example.com"), &[b"secure.example.com"], Bad),
    (Some(b"public.example.com"), &[], Bad),
    (
        Some(b"evil@secure.example.com"),
        &[b"secure.example.com"],
        Bad,
    ),
    (Some(b"Secure.Example.com."), &[b"secure.example.com"], Deny),
    (
        Some(b"public.example.com"),
        &[b"PUBLIC.example.com."],
        Public("public.example.com"),
    ),
];

/// HTTP/2 only: (`:authority`, `host` field, expected).
type H2Extra = (Option<&'static [u8]>, Option<&'static [u8]>, Want);
const H2_EXTRAS: &[H2Extra] = &[
    (
        Some(b"public.example.com"),
        Some(b"secure.example.com"),
        Bad,
    ),
    (
        Some(b"public.example.com"),
        Some(b"secure.example.com."),
        Bad,
    ),
    (
        Some(b"public.example.com"),
        Some(b"s\xc3\xa9cure.example.com"),
        Bad,
    ),
    (
        Some(b"secure.example.com."),
        Some(b"secure.example.com"),
        Deny,
    ),
    (None, Some(b"secure.example.com."), Deny),
    (None, Some(b"a.internal.example.com:443"), Deny),
    (None, Some(b"secure.example.com:abc"), Bad),
    (
        None,
        Some(b"Public.Example.com."),
        Public("public.example.com"),
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    H1,
    H1Tls,
    H2,
    H2Tls,
}

impl Transport {
    fn tls(self) -> bool {
        matches!(self, Transport::H1Tls | Transport::H2Tls)
    }
}

trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// What came back.
#[derive(Debug)]
enum Outcome {
    Reply(Reply),
    /// Raw HTTP/2: the response body (DATA frames are not compressed) and the status
    /// when HPACK sent it as a static-table index.
    Raw(Option<u16>, Vec<u8>),
    /// Raw HTTP/2: the stream or connection was reset.
    Reset(String),
}

struct Target {
    addr: SocketAddr,
    /// PEM of the CA the TLS listener's certificate chains to.
    ca: Option<String>,
}

async fn connect(t: &Target, transport: Transport) -> Box<dyn Io> {
    let Some(ca) = &t.ca else {
        return Box::new(TcpStream::connect(t.addr).await.unwrap());
    };
    let alpn: &[u8] = if transport == Transport::H2Tls {
        b"h2"
    } else {
        b"http/1.1"
    };
    let s = tls_connect(t.addr, ca, "secure.example.com", &[alpn]).await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(alpn), "ALPN");
    Box::new(s)
}

async fn h1(
    t: &Target,
    transport: Transport,
    authority: Option<&[u8]>,
    hosts: &[&[u8]],
    path: &str,
) -> Outcome {
    let mut req = b"GET ".to_vec();
    if let Some(a) = authority {
        req.extend_from_slice(b"http://");
        req.extend_from_slice(a);
    }
    req.extend_from_slice(format!("{path} HTTP/1.1\r\n").as_bytes());
    for h in hosts {
        req.extend_from_slice(b"Host: ");
        req.extend_from_slice(h);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"Connection: close\r\n\r\n");
    let mut io = connect(t, transport).await;
    io.write_all(&req).await.unwrap();
    Outcome::Reply(support::read_response(&mut io).await.unwrap())
}

/// HTTP/2 through hyper's client when `http` can represent the authority, else raw.
async fn h2(
    t: &Target,
    transport: Transport,
    authority: Option<&[u8]>,
    host: Option<&[u8]>,
    path: &str,
) -> Outcome {
    let scheme = if transport.tls() { "https" } else { "http" };
    let parsed = authority.map(http::uri::Authority::try_from);
    let Some(Ok(auth)) = parsed else {
        return h2_raw(connect(t, transport).await, scheme, authority, host, path).await;
    };
    let mut send = h2_handshake(connect(t, transport).await).await;
    let uri = http::Uri::builder()
        .scheme(scheme)
        .authority(auth)
        .path_and_query(path)
        .build()
        .unwrap();
    let mut b = http::Request::builder()
        .version(http::Version::HTTP_2)
        .uri(uri);
    if let Some(h) = host {
        b = b.header("host", http::HeaderValue::from_bytes(h).unwrap());
    }
    let resp = send
        .send_request(b.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    Outcome::Reply(Reply {
        status,
        headers,
        body,
    })
}

/// HPACK integer with an `n`-bit prefix (RFC 7541 §5.1), prefix bits zero.
fn hpack_int(out: &mut Vec<u8>, v: usize, n: u32) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(v as u8);
        return;
    }
    out.push(max as u8);
    let mut v = v - max;
    while v >= 128 {
        out.push((v % 128 + 128) as u8);
        v /= 128;
    }
    out.push(v as u8);
}

fn frame(out: &mut Vec<u8>, ty: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(ty);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// One GET on stream 1 as hand-made HTTP/2 frames: every field a literal without
/// indexing (RFC 7541 §6.2.2), so any bytes can be sent as `:authority` or `host`.
async fn h2_raw(
    mut io: Box<dyn Io>,
    scheme: &str,
    authority: Option<&[u8]>,
    host: Option<&[u8]>,
    path: &str,
) -> Outcome {
    let mut block = Vec::new();
    let mut field = |name: &[u8], value: &[u8]| {
        block.push(0);
        hpack_int(&mut block, name.len(), 7);
        block.extend_from_slice(name);
        hpack_int(&mut block, value.len(), 7);
        block.extend_from_slice(value);
    };
    field(b":method", b"GET");
    field(b":scheme", scheme.as_bytes());
    if let Some(a) = authority {
        field(b":authority", a);
    }
    field(b":path", path.as_bytes());
    if let Some(h) = host {
        field(b"host", h);
    }
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    frame(&mut out, 0x4, 0, 0, &[]);
    frame(&mut out, 0x1, 0x4 | 0x1, 1, &block); // END_HEADERS | END_STREAM
    io.write_all(&out).await.unwrap();
    let read = async {
        let (mut status, mut body) = (None, Vec::new());
        loop {
            let mut head = [0u8; 9];
            if io.read_exact(&mut head).await.is_err() {
                return Outcome::Reset("connection closed".into());
            }
            let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
            let (ty, flags) = (head[3], head[4]);
            let sid = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            let mut payload = vec![0u8; len];
            io.read_exact(&mut payload).await.unwrap();
            match (ty, sid) {
                (0x4, 0) if flags & 1 == 0 => {
                    let mut ack = Vec::new();
                    frame(&mut ack, 0x4, 1, 0, &[]);
                    io.write_all(&ack).await.unwrap();
                }
                (0x1, 1) => {
                    // Indexed :status from the static table (RFC 7541 Appendix A).
                    status = match payload.first() {
                        Some(0x88) => Some(200),
                        Some(0x8c) => Some(400),
                        Some(0x8d) => Some(404),
                        _ => None,
                    };
                }
                (0x0, 1) => body.extend_from_slice(&payload),
                (0x3, 1) => return Outcome::Reset(format!("RST_STREAM {payload:?}")),
                (0x7, _) => return Outcome::Reset(format!("GOAWAY {payload:?}")),
                _ => {}
            }
            if sid == 1 && matches!(ty, 0x0 | 0x1) && flags & 1 == 1 {
                return Outcome::Raw(status, body);
            }
        }
    };
    tokio::time::timeout(TIMEOUT, read)
        .await
        .expect("raw h2 response")
}

/// Whether `out` is what `want` says, and never nginx's secret.
fn check(want: Want, out: &Outcome, raw_reset_ok: bool) -> Result<(), String> {
    let (status, body, headers) = match out {
        Outcome::Reply(r) => (Some(r.status), r.body.as_slice(), Some(r)),
        Outcome::Raw(s, b) => (*s, b.as_slice(), None),
        Outcome::Reset(_) if want == Bad && raw_reset_ok => return Ok(()),
        Outcome::Reset(why) => return Err(format!("reset ({why}), expected {want:?}")),
    };
    let text = String::from_utf8_lossy(body);
    if text.contains(SECRET) {
        return Err(format!("the secret vhost answered: {text:?}"));
    }
    let (code, expect_body) = match want {
        Deny => (403, json!({"detail": "Forbidden"}).to_string()),
        Bad => (400, json!({"detail": "Bad Request"}).to_string()),
        Public(h) => (200, format!("public host={h} xfh={h}\n")),
    };
    if status.is_some_and(|s| s != code) || (status.is_none() && headers.is_some()) {
        return Err(format!("status {status:?}, expected {code}; body {text:?}"));
    }
    let body_ok = match want {
        Public(_) => text == expect_body,
        _ => {
            serde_json::from_slice::<serde_json::Value>(body).ok()
                == serde_json::from_str(&expect_body).ok()
        }
    };
    if !body_ok {
        return Err(format!("body {text:?}, expected {expect_body:?}"));
    }
    if let (Some(r), Deny | Bad) = (headers, want) {
        if !r
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
        {
            return Err(format!(
                "denial content-type {:?}",
                r.header("content-type")
            ));
        }
        if r.header("x-request-id").is_none_or(str::is_empty) {
            return Err("denial without X-Request-Id".into());
        }
    }
    Ok(())
}

fn show(b: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_spellings_never_reach_a_denied_vhost() {
    let nginx = Nginx::start(SITES).await;
    let cfg = routes(&nginx);

    // Control: nginx itself serves the secret for the spellings that used to skip
    // the deny routes, so this setup would show a bypass if there were one.
    let direct = Target {
        addr: nginx.addr,
        ca: None,
    };
    for h in [
        &b"secure.example.com."[..],
        b"SECURE.Example.COM",
        b"secure.example.com:abc",
        b"secure.example.com:80:80",
        b"a.internal.example.com.",
        b"a.internal.example.com:abc",
    ] {
        let Outcome::Reply(r) = h1(&direct, Transport::H1, None, &[h], "/direct").await else {
            unreachable!()
        };
        assert!(
            r.text().contains(SECRET),
            "nginx control for {}: {}",
            show(h),
            r.text()
        );
    }

    let plain = Proxy::start(&cfg).await;
    let pki = Pki::new();
    let names = [
        "secure.example.com",
        "*.internal.example.com",
        "public.example.com",
    ];
    let tls = Proxy::builder().tls(&pki, &names).start(&cfg).await;
    let targets = [
        (
            Transport::H1,
            Target {
                addr: plain.addr,
                ca: None,
            },
        ),
        (
            Transport::H2,
            Target {
                addr: plain.addr,
                ca: None,
            },
        ),
        (
            Transport::H1Tls,
            Target {
                addr: tls.addr,
                ca: Some(pki.ca_pem.clone()),
            },
        ),
        (
            Transport::H2Tls,
            Target {
                addr: tls.addr,
                ca: Some(pki.ca_pem.clone()),
            },
        ),
    ];

    let mut failures = Vec::new();
    let mut sent = 0usize;
    let mut public_sent = 0usize;
    for (transport, target) in &targets {
        let h2_transport = matches!(transport, Transport::H2 | Transport::H2Tls);
        let mut n = 0;
        let mut path = || {
            n += 1;
            format!("/t/{transport:?}/{n}")
        };
        for (spelling, want) in SPELLINGS {
            let p = path();
            let out = if h2_transport {
                h2(target, *transport, Some(spelling), None, &p).await
            } else {
                h1(target, *transport, None, &[spelling], &p).await
            };
            sent += 1;
            public_sent += usize::from(matches!(want, Public(_)));
            if let Err(e) = check(*want, &out, h2_transport) {
                failures.push(format!("{transport:?} {p} host {}: {e}", show(spelling)));
            }
        }
        if h2_transport {
            for (authority, host, want) in H2_EXTRAS {
                let p = path();
                let out = h2(target, *transport, *authority, *host, &p).await;
                public_sent += usize::from(matches!(want, Public(_)));
                if let Err(e) = check(*want, &out, true) {
                    failures.push(format!(
                        "{transport:?} {p} :authority {:?} host {:?}: {e}",
                        authority.map(show),
                        host.map(show)
                    ));
                }
            }
        } else {
            for (authority, hosts, want) in H1_EXTRAS {
                let p = path();
                let out = h1(target, *transport, *authority, hosts, &p).await;
                public_sent += usize::from(matches!(want, Public(_)));
                if let Err(e) = check(*want, &out, false) {
                    let hs: Vec<String> = hosts.iter().map(|h| show(h)).collect();
                    failures.push(format!(
                        "{transport:?} {p} target authority {:?} Host {hs:?}: {e}",
                        authority.map(show)
                    ));
                }
            }
        }
    }
    assert!(sent > 100, "{sent} requests");
    assert!(
        failures.is_empty(),
        "{} host cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // nginx's own record: through portcullis only the default vhost answered, and
    // it was sent the normalized host in both Host and X-Forwarded-Host.
    let hits: Vec<_> = nginx
        .hits()
        .into_iter()
        .filter(|h| h.uri.starts_with("/t/"))
        .collect();
    assert_eq!(hits.len(), public_sent, "{hits:#?}");
    for h in &hits {
        assert_eq!(h.server_name, "_", "{h:?}");
        assert_eq!(h.http_host, h.x_forwarded_host, "{h:?}");
        assert_eq!(h.http_host, h.http_host.to_ascii_lowercase(), "{h:?}");
        assert!(!h.host.ends_with('.'), "{h:?}");
    }
}
