//! Request-smuggling corpus (issue #9, SECURITY.md "Smuggling"): ambiguous HTTP/1.1
//! framing sent byte for byte. Each case carries a second request to `/smuggled/N`
//! hidden where a differently-framing parser would find it. `/smuggled/**` is a deny
//! route, so if the proxy itself parses that request it answers 403; the upstream
//! seeing `/smuggled/...` would mean the proxy and the upstream disagreed about
//! where a request ended. Expectations: the listed status for the first response
//! (0 = the connection was closed without one) and never a smuggled request upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;
use support::*;

struct Case {
    name: &'static str,
    /// Request bytes; `{n}` is the case number, `{smuggled}` the hidden request.
    bytes: String,
    /// Allowed statuses of the first response (0: closed without a response).
    statuses: &'static [u16],
}

const REJECT: &[u16] = &[400, 0];
/// Hyper answers an unsupported transfer coding 400 or 501.
const REJECT_TE: &[u16] = &[400, 501, 0];

fn post(headers: &str, body: &str) -> String {
    format!("POST /s/{{n}} HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n{body}")
}

fn corpus() -> Vec<Case> {
    let sm = "GET /smuggled/{n} HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let cl = |body: &str| body.len().to_string();
    let mut c = Vec::new();
    let mut add = |name, bytes: String, statuses| {
        c.push(Case {
            name,
            bytes,
            statuses,
        })
    };

    // ---- CL.TE and TE.CL.
    let body = format!("0\r\n\r\n{sm}");
    add(
        "CL.TE",
        post(
            &format!(
                "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                cl(&body)
            ),
            &body,
        ),
        REJECT,
    );
    let inner = format!("{sm}x=");
    let body = format!("{:x}\r\n{inner}\r\n0\r\n\r\n", inner.len());
    add(
        "TE.CL",
        post("Transfer-Encoding: chunked\r\nContent-Length: 4\r\n", &body),
        REJECT,
    );
    add(
        "TE.CL, CL first",
        post("Content-Length: 4\r\nTransfer-Encoding: chunked\r\n", &body),
        REJECT,
    );
    // ---- Transfer-Encoding obfuscation (with a Content-Length a back end might use).
    let body = format!("0\r\n\r\n{sm}");
    for (name, te) in [
        ("TE xchunked", "Transfer-Encoding: xchunked\r\n"),
        (
            "TE chunked, identity",
            "Transfer-Encoding: chunked, identity\r\n",
        ),
        (
            "TE identity, chunked",
            "Transfer-Encoding: identity, chunked\r\n",
        ),
        ("TE leading space", "Transfer-Encoding:  chunked\r\n"),
        ("TE tab", "Transfer-Encoding:\tchunked\r\n"),
        ("TE trailing space", "Transfer-Encoding: chunked \r\n"),
        ("TE upper case", "Transfer-Encoding: CHUNKED\r\n"),
        ("TE quoted", "Transfer-Encoding: \"chunked\"\r\n"),
        (
            "TE twice",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        ),
        (
            "TE chunked then x",
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n",
        ),
        (
            "TE x then chunked",
            "Transfer-Encoding: x\r\nTransfer-Encoding: chunked\r\n",
        ),
        ("TE with NUL", "Transfer-Encoding: chunked\0\r\n"),
        ("TE vertical tab", "Transfer-Encoding:\x0bchunked\r\n"),
        ("TE bare-LF line", "X-A: b\nTransfer-Encoding: chunked\r\n"),
    ] {
        add(
            name,
            post(&format!("Content-Length: {}\r\n{te}", cl(&body)), &body),
            REJECT,
        );
    }
    for (name, te) in [
        ("TE space before colon", "Transfer-Encoding : chunked\r\n"),
        ("TE obs-fold", "Transfer-Encoding:\r\n chunked\r\n"),
    ] {
        // Without a valid TE, the Content-Length frames the body; a back end that
        // accepted the odd spelling would see the smuggled request instead.
        add(
            name,
            post(&format!("Content-Length: {}\r\n{te}", cl(&body)), &body),
            &[400, 0, 200],
        );
    }
    // `_` spellings of framing headers: refused, as CGI/WSGI back ends fold them.
    for (name, h) in [
        ("TE name with underscore", "Transfer_Encoding: chunked\r\n"),
        ("CL name with underscore", "Content_Length: 0\r\n"),
    ] {
        add(
            name,
            post(&format!("Content-Length: {}\r\n{h}", cl(&body)), &body),
            REJECT,
        );
    }
    // Unsupported codings without a Content-Length.
    for (name, te) in [
        ("TE xchunked alone", "Transfer-Encoding: xchunked\r\n"),
        ("TE identity alone", "Transfer-Encoding: identity\r\n"),
        ("TE gzip alone", "Transfer-Encoding: gzip\r\n"),
        ("TE chunked, gzip", "Transfer-Encoding: chunked, gzip\r\n"),
    ] {
        add(name, post(te, &body), REJECT_TE);
    }
    // ---- Content-Length games.
    let body = format!("hello{sm}");
    for (name, h) in [
        (
            "duplicate CL, same",
            "Content-Length: 5\r\nContent-Length: 5\r\n",
        ),
        (
            "duplicate CL, different",
            "Content-Length: 5\r\nContent-Length: 50\r\n",
        ),
        ("CL list", "Content-Length: 5, 5\r\n"),
        ("CL plus sign", "Content-Length: +5\r\n"),
        ("CL negative", "Content-Length: -5\r\n"),
        ("CL hex", "Content-Length: 0x5\r\n"),
        ("CL overflow", "Content-Length: 99999999999999999999999\r\n"),
        ("CL with junk", "Content-Length: 5abc\r\n"),
        ("CL empty", "Content-Length: \r\n"),
    ] {
        add(name, post(h, &body), REJECT);
    }
    // ---- Chunk framing abuse.
    for (name, chunks) in [
        (
            "chunk-size overflow",
            format!("ffffffffffffffffff\r\nhello\r\n0\r\n\r\n{sm}"),
        ),
        (
            "chunk-size 2^64",
            format!("10000000000000000\r\nhello\r\n0\r\n\r\n{sm}"),
        ),
        (
            "negative chunk size",
            format!("-5\r\nhello\r\n0\r\n\r\n{sm}"),
        ),
        (
            "hex prefix chunk size",
            format!("0x5\r\nhello\r\n0\r\n\r\n{sm}"),
        ),
        (
            "chunk size with space",
            format!("5 x\r\nhello\r\n0\r\n\r\n{sm}"),
        ),
        (
            "chunk shorter than declared",
            format!("a\r\nhello\r\n0\r\n\r\n{sm}"),
        ),
        (
            "chunk data without CRLF",
            format!("5\r\nhelloX0\r\n\r\n{sm}"),
        ),
        (
            "huge chunk extension",
            format!("5;ext={}\r\nhello\r\n0\r\n\r\n{sm}", "a".repeat(100_000)),
        ),
        (
            "chunk extension with bare LF",
            "5;a=b\nGET /smuggled/{n} HTTP/1.1\r\n\r\nhello\r\n0\r\n\r\n".to_string(),
        ),
        (
            "bare LF after chunk size",
            format!("5\nhello\r\n0\r\n\r\n{sm}"),
        ),
        (
            "bare LF after chunk data",
            format!("5\r\nhello\n0\r\n\r\n{sm}"),
        ),
        (
            "bare CR after chunk size",
            format!("5\rhello\r\n0\r\n\r\n{sm}"),
        ),
    ] {
        add(
            name,
            post("Transfer-Encoding: chunked\r\n", &chunks),
            REJECT,
        );
    }
    // Many tiny chunk extensions: hyper caps their total size.
    let many_ext: String = (0..4000).map(|_| "1;a=b\r\nx\r\n").collect();
    add(
        "many chunk extensions",
        post(
            "Transfer-Encoding: chunked\r\n",
            &format!("{many_ext}0\r\n\r\n{sm}"),
        ),
        &[400, 0, 200],
    );
    // ---- Line endings and request-line tricks.
    add(
        "bare LF line endings throughout",
        format!("POST /s/{{n}} HTTP/1.1\nHost: localhost\nContent-Length: 5\nTransfer-Encoding: chunked\n\n0\n\n{sm}"),
        REJECT,
    );
    add(
        "bare CR in a header",
        post(
            "X-A: b\rTransfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            &format!("0\r\n\r\n{sm}"),
        ),
        REJECT,
    );
    add(
        "HTTP/1.0 with chunked and CL",
        format!("POST /s/{{n}} HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n{sm}"),
        REJECT,
    );
    add(
        "request line with two spaces",
        format!("POST  /s/{{n}} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n{sm}"),
        REJECT,
    );
    add(
        "HTTP/1.1 with an absolute URI and a space",
        format!("GET /s/{{n}} HTTP/1.1 x\r\nHost: localhost\r\n\r\n{sm}"),
        REJECT,
    );
    // ---- Controls: well-framed pipelining, the second request is routed by us (403).
    add(
        "pipelined after a CL body (control)",
        post("Content-Length: 5\r\n", &format!("hello{sm}")),
        &[200],
    );
    add(
        "pipelined after a chunked body (control)",
        post(
            "Transfer-Encoding: chunked\r\n",
            &format!("5\r\nhello\r\n0\r\n\r\n{sm}"),
        ),
        &[200],
    );
    c
}

/// `/smuggled/**` is a deny route; everything else is public, to `up`.
fn routes(up: std::net::SocketAddr) -> String {
    format!(
        "[upstreams.app]\nurl = \"http://{up}\"\n\
         [[routes]]\nname = \"smuggled\"\npath = \"/smuggled/**\"\naccess = \"deny\"\n\
         [[routes]]\nname = \"public\"\npath = \"/**\"\naccess = \"public\"\nupstream = \"app\"\n{}",
        hs_issuer()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_corpus() {
    let rec = spawn_upstream().await;
    let up = rec.addr;
    let proxy = Proxy::builder().start(&routes(up)).await;
    let cases = corpus();
    let addr = proxy.addr;
    let reqs: Vec<Vec<u8>> = cases
        .iter()
        .enumerate()
        .map(|(n, c)| c.bytes.replace("{n}", &n.to_string()).into_bytes())
        .collect();
    let results = tokio::task::spawn_blocking(move || {
        reqs.iter()
            .map(|r| exchange(addr, r, Duration::from_millis(400)))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();

    let seen = rec.requests();
    let mut failures = Vec::new();
    for (n, (c, ex)) in cases.iter().zip(&results).enumerate() {
        let status = ex.first_status();
        let mine: Vec<&Recorded> = seen
            .iter()
            .filter(|s| s.path == format!("/s/{n}"))
            .collect();
        let mut problems = Vec::new();
        if !c.statuses.contains(&status) {
            problems.push(format!("status {status}, expected one of {:?}", c.statuses));
        }
        // Bodies stream (SPEC §4), so a chunk error found mid-body can only abort
        // what the upstream already started reading: allowed, a complete request not.
        if status != 200 && mine.iter().any(|s| !s.body_error) {
            problems.push("refused, yet the upstream saw the complete request".into());
        }
        // When the proxy parsed the hidden request itself, it was refused (deny route).
        for r in ex.responses.iter().skip(1) {
            if r.status == 200 {
                problems.push("a second response was 200".into());
            }
        }
        if !problems.is_empty() {
            failures.push(format!(
                "#{n} {}: {}\n  raw answer: {:?}",
                c.name,
                problems.join("; "),
                ex.raw
            ));
        }
    }
    let smuggled: Vec<&Recorded> = seen
        .iter()
        .filter(|s| s.path.starts_with("/smuggled"))
        .collect();
    assert!(
        smuggled.is_empty(),
        "smuggled requests reached the upstream: {smuggled:#?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

// ------------------------------------------------------------ connection state

/// Requests that leave a keep-alive connection open and well framed (`{p}`: the
/// path), among them every shape that used to switch the guard off for the rest of
/// the connection (an `Upgrade` header, leading empty lines, a chunk-size line of more
/// than 15 hex digits) and other framing a naive watcher gets wrong.
fn innocents() -> Vec<(&'static str, &'static str)> {
    vec![
        ("GET", "GET {p} HTTP/1.1\r\nHost: localhost\r\n\r\n"),
        (
            "Content-Length body",
            "POST {p} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello",
        ),
        (
            "Content-Length with leading zeros",
            "POST {p} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0005\r\n\r\nhello",
        ),
        (
            "chunked with extensions and a trailer",
            "POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
             5;a=b;c=\"d e\"\r\nhello\r\n0;x\r\nX-T: 1\r\n\r\n",
        ),
        (
            "chunk size followed by spaces",
            "POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
             5  \r\nhello\r\n0\r\n\r\n",
        ),
        (
            "chunk size of 17 hex digits",
            "POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
             00000000000000005\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "chunk size of 20 hex digits",
            "POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n\
             0000000000000000000A\r\n0123456789\r\n00000000000000000000\r\n\r\n",
        ),
        (
            "Upgrade: h2c",
            "GET {p} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\n\
             Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        ),
        (
            "Upgrade: websocket answered 200",
            "GET {p} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ),
        (
            "Upgrade without Connection: upgrade, with a body",
            "POST {p} HTTP/1.1\r\nHost: localhost\r\nUpgrade: foo\r\nContent-Length: 3\r\n\r\nabc",
        ),
        (
            "leading empty lines",
            "\r\n\r\nGET {p} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ),
        (
            "leading bare LFs",
            "\n\n\nGET {p} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        ),
        (
            "bare LF line endings",
            "GET {p} HTTP/1.1\nHost: localhost\nX-A: b\n\n",
        ),
        (
            "mixed line endings",
            "GET {p} HTTP/1.1\r\nHost: localhost\nX-A: b\r\n\n",
        ),
    ]
}

/// Ambiguous requests, each hiding `GET /smuggled/{n}`; the request itself is for
/// `/bad/{n}` and must never reach the upstream either.
fn smugglers(n: usize) -> Vec<(&'static str, String)> {
    let sm = format!("GET /smuggled/{n} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let head = format!("POST /bad/{n} HTTP/1.1\r\nHost: localhost\r\n");
    let z = format!("0\r\n\r\n{sm}");
    let inner = format!("{sm}x=");
    let chunked = format!("{:x}\r\n{inner}\r\n0\r\n\r\n", inner.len());
    vec![
        (
            "CL.TE",
            format!(
                "{head}Content-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{z}",
                z.len()
            ),
        ),
        (
            "TE.CL",
            format!("{head}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{chunked}"),
        ),
        (
            "two equal Content-Lengths",
            format!("{head}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello{sm}"),
        ),
    ]
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Everything in one write.
    Pipelined,
    /// Each request after the previous response.
    Turns,
    /// Five bytes per write.
    Trickle,
}

/// What a 400 from the guard looks like (SPEC §4): JSON body, a request id, close.
fn check_bad_request(r: &Reply, what: &str) -> Vec<String> {
    check_refusal(r, 400, "Bad Request", what)
}

fn check_refusal(r: &Reply, status: u16, detail: &str, what: &str) -> Vec<String> {
    let mut p = Vec::new();
    if r.status != status {
        p.push(format!("{what}: status {}, expected {status}", r.status));
    }
    let body = format!("{{\"detail\": \"{detail}\"}}");
    if r.body != body.as_bytes() {
        p.push(format!(
            "{what}: body {:?}, expected {body}",
            String::from_utf8_lossy(&r.body)
        ));
    }
    if r.header("content-type") != Some("application/json") {
        p.push(format!(
            "{what}: content-type {:?}",
            r.header("content-type")
        ));
    }
    let rid = r.header("x-request-id").unwrap_or("");
    if rid.len() != 32 || !rid.bytes().all(|b| b.is_ascii_hexdigit()) {
        p.push(format!("{what}: x-request-id {rid:?}"));
    }
    if !r
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    {
        p.push(format!("{what}: connection {:?}", r.header("connection")));
    }
    p
}

/// SPEC §4: the smuggling checks hold for every request of every connection,
/// whatever came before: one or all of the innocent requests, then an ambiguous one,
/// pipelined, in turns and trickled in small writes. Every innocent request is
/// answered 200 and forwarded; the ambiguous one gets the guard's 400 and the
/// connection closes; the upstream never sees it nor what it hides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guard_holds_for_every_request_of_a_connection() {
    let rec = spawn_upstream().await;
    let up = rec.addr;
    let proxy = Proxy::builder().start(&routes(up)).await;
    let addr = proxy.addr;
    let inn = innocents();
    // (label, requests before the ambiguous one, the ambiguous one, mode)
    let mut cases = Vec::new();
    for mode in [Mode::Pipelined, Mode::Turns, Mode::Trickle] {
        let prefixes: Vec<(String, Vec<&str>)> = inn
            .iter()
            .map(|(name, r)| (name.to_string(), vec![*r]))
            .chain([(
                "all of them".to_string(),
                inn.iter().map(|(_, r)| *r).collect(),
            )])
            .collect();
        for (pname, reqs) in prefixes {
            for j in 0..smugglers(0).len() {
                let n = cases.len();
                let (sname, bad) = smugglers(n).swap_remove(j);
                let before: Vec<String> = reqs
                    .iter()
                    .enumerate()
                    .map(|(k, r)| r.replace("{p}", &format!("/ok/{n}/{k}")))
                    .collect();
                cases.push((
                    format!("{mode:?}: {pname}, then {sname}"),
                    before,
                    bad,
                    mode,
                ));
            }
        }
    }
    let jobs = cases.clone();
    let results = tokio::task::spawn_blocking(move || {
        std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .chunks(jobs.len().div_ceil(8))
                .map(|chunk| {
                    s.spawn(move || {
                        chunk
                            .iter()
                            .map(|(_, before, bad, mode)| {
                                let mut turns: Vec<Vec<u8>> =
                                    before.iter().map(|r| r.as_bytes().to_vec()).collect();
                                turns.push(bad.as_bytes().to_vec());
                                let quiet = Duration::from_millis(400);
                                match mode {
                                    Mode::Pipelined => exchange(addr, &turns.concat(), quiet),
                                    Mode::Turns => exchange_turns(addr, &turns, quiet),
                                    Mode::Trickle => exchange_trickle(addr, &turns.concat(), 5),
                                }
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        })
    })
    .await
    .unwrap();

    let seen = rec.requests();
    let mut failures = Vec::new();
    for (n, ((label, before, _, _), ex)) in cases.iter().zip(&results).enumerate() {
        let k = before.len();
        let mut p = Vec::new();
        for i in 0..k {
            match ex.responses.get(i) {
                Some(r) if r.status == 200 => {}
                r => p.push(format!("request {i}: {:?}", r.map(|r| r.status))),
            }
            let path = format!("/ok/{n}/{i}");
            if !seen.iter().any(|s| s.path == path) {
                p.push(format!("{path} not forwarded"));
            }
        }
        match ex.responses.get(k) {
            Some(r) => p.extend(check_bad_request(r, "the ambiguous request")),
            None => p.push("no answer to the ambiguous request".into()),
        }
        if ex.responses.len() > k + 1 {
            p.push(format!("{} responses", ex.responses.len()));
        }
        if !ex.closed {
            p.push("connection left open".into());
        }
        if seen.iter().any(|s| s.path == format!("/bad/{n}")) {
            p.push("the ambiguous request reached the upstream".into());
        }
        if !p.is_empty() {
            failures.push(format!(
                "#{n} {label}: {}\n  raw: {:?}",
                p.join("; "),
                ex.raw
            ));
        }
    }
    let smuggled: Vec<&str> = seen
        .iter()
        .map(|s| s.path.as_str())
        .filter(|p| p.starts_with("/smuggled") || p.starts_with("/bad"))
        .collect();
    assert!(
        failures.is_empty() && smuggled.is_empty(),
        "reached the upstream: {smuggled:?}\n{} of {} sequences failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

// ------------------------------------------------------------ library-written errors

/// Heads hyper would refuse itself (with an empty body) are answered by the guard
/// instead, SPEC §4 style: JSON body, `X-Request-Id`, `Connection: close`, then the
/// connection closes; nothing reaches the upstream. Also pipelined after a good
/// request and trickled over many small reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_rejections_are_answered_in_json() {
    let rec = spawn_upstream().await;
    let up = rec.addr;
    let proxy = Proxy::builder()
        .server("max_header_bytes = 16384\n")
        .start(&routes(up))
        .await;
    let addr = proxy.addr;
    let get = |extra: &str| format!("GET /lib HTTP/1.1\r\nHost: localhost\r\n{extra}\r\n");
    let big = format!("X-Big: {}\r\n", "a".repeat(20_000));
    let many: String = (0..101).map(|i| format!("X-H{i}: v\r\n")).collect();
    let bad = "Bad Request";
    let large = "Request Header Fields Too Large";
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("space before colon", get("X-A : b\r\n"), 400, bad),
        ("tab before colon", get("X-A\t: b\r\n"), 400, bad),
        ("obs-fold", get("X-A: b\r\n  c\r\n"), 400, bad),
        (
            "leading whitespace on the first header",
            "GET /lib HTTP/1.1\r\n Host: localhost\r\n\r\n".into(),
            400,
            bad,
        ),
        ("bare CR in a header value", get("X-A: b\rc\r\n"), 400, bad),
        ("NUL in a header value", get("X-A: b\0c\r\n"), 400, bad),
        ("header name with a slash", get("X/A: b\r\n"), 400, bad),
        ("empty header name", get(": b\r\n"), 400, bad),
        (
            "bad method",
            "G(T /lib HTTP/1.1\r\nHost: localhost\r\n\r\n".into(),
            400,
            bad,
        ),
        (
            "HTTP/1.2",
            "GET /lib HTTP/1.2\r\nHost: localhost\r\n\r\n".into(),
            400,
            bad,
        ),
        (
            "HTTP/2.0 request line",
            "GET /lib HTTP/2.0\r\nHost: localhost\r\n\r\n".into(),
            400,
            bad,
        ),
        (
            "CR not followed by LF before the request",
            "\rGET /lib HTTP/1.1\r\nHost: localhost\r\n\r\n".into(),
            400,
            bad,
        ),
        (
            "Content-Length +5",
            format!("{}hello", get("Content-Length: +5\r\n")),
            400,
            bad,
        ),
        (
            "Content-Length list",
            format!("{}hello", get("Content-Length: 5, 5\r\n")),
            400,
            bad,
        ),
        (
            "Transfer-Encoding gzip",
            get("Transfer-Encoding: gzip\r\n"),
            400,
            bad,
        ),
        (
            "Transfer-Encoding chunked, gzip",
            get("Transfer-Encoding: chunked, gzip\r\n"),
            400,
            bad,
        ),
        (
            "Transfer-Encoding on HTTP/1.0",
            "POST /lib HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                .into(),
            400,
            bad,
        ),
        ("head over max_header_bytes", get(&big), 431, large),
        ("101 header fields", get(&many), 431, large),
    ];
    let good = get("").into_bytes();
    let jobs = cases.clone();
    let results = tokio::task::spawn_blocking(move || {
        jobs.iter()
            .map(|(_, bytes, _, _)| {
                let q = Duration::from_millis(400);
                let alone = exchange(addr, bytes.as_bytes(), q);
                let after_good = exchange(
                    addr,
                    &[good.clone(), bytes.clone().into_bytes()].concat(),
                    q,
                );
                let piece = if bytes.len() > 4096 { 997 } else { 3 };
                let trickled = exchange_trickle(addr, bytes.as_bytes(), piece);
                (alone, after_good, trickled)
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let mut failures = Vec::new();
    for ((name, _, status, detail), (alone, after_good, trickled)) in cases.iter().zip(&results) {
        let mut p = Vec::new();
        for (how, ex, k) in [
            ("alone", alone, 0),
            ("after a good request", after_good, 1),
            ("trickled", trickled, 0),
        ] {
            if k == 1 && ex.first_status() != 200 {
                p.push(format!("{how}: the good request got {}", ex.first_status()));
            }
            match ex.responses.get(k) {
                Some(r) => p.extend(check_refusal(r, *status, detail, how)),
                None => p.push(format!("{how}: no response")),
            }
            if ex.responses.len() > k + 1 || !ex.closed {
                p.push(format!(
                    "{how}: {} responses, closed: {}",
                    ex.responses.len(),
                    ex.closed
                ));
            }
        }
        if !p.is_empty() {
            failures.push(format!("{name}: {}\n  raw: {:?}", p.join("; "), alone.raw));
        }
    }
    let forwarded: Vec<String> = rec.requests().into_iter().map(|s| s.path).collect();
    assert_eq!(
        forwarded.len(),
        cases.len(),
        "only the good requests may be forwarded: {forwarded:?}"
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// A request target longer than hyper accepts (65534 bytes) with a head limit above
/// it: 414 with the JSON body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlong_target_is_answered_in_json() {
    let rec = spawn_upstream().await;
    let up = rec.addr;
    let proxy = Proxy::builder()
        .server("max_header_bytes = 131072\n")
        .start(&routes(up))
        .await;
    let addr = proxy.addr;
    let req = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(70_000)
    );
    let ex = tokio::task::spawn_blocking(move || {
        exchange(addr, req.as_bytes(), Duration::from_millis(400))
    })
    .await
    .unwrap();
    let r = ex.responses.first().expect("no response");
    let p = check_refusal(r, 414, "URI Too Long", "overlong target");
    assert!(
        p.is_empty(),
        "{p:?}\n{:?}",
        &ex.raw[..ex.raw.len().min(500)]
    );
    assert!(ex.closed);
    assert_eq!(rec.count(), 0);
}
