//! Request-smuggling corpus (issue #9, SECURITY.md "Smuggling"): ambiguous HTTP/1.1
//! framing sent byte for byte. Each case carries a second request to `/smuggled/N`
//! hidden where a differently-framing parser would find it. `/smuggled/**` is a deny
//! route, so if the proxy itself parses that request it answers 403; the upstream
//! seeing `/smuggled/...` would mean the proxy and the upstream disagreed about
//! where a request ended. Expectations: the listed status for the first response
//! (0 = the connection was closed without one) and never a smuggled request upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod security_support;

use common::Proxy;
use security_support::*;
use std::time::Duration;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smuggling_corpus() {
    let (up, rec) = recording_upstream().await;
    let body = format!(
        "[upstreams.app]\nurl = \"http://{up}\"\n\
         [[routes]]\nname = \"smuggled\"\npath = \"/smuggled/**\"\naccess = \"deny\"\n\
         [[routes]]\nname = \"public\"\npath = \"/**\"\naccess = \"public\"\nupstream = \"app\"\n"
    );
    let proxy = Proxy::start("", &body, tempfile::tempdir().unwrap());
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

    let seen = rec.all();
    let mut failures = Vec::new();
    for (n, (c, ex)) in cases.iter().zip(&results).enumerate() {
        let status = ex.first_status();
        let mine: Vec<&Seen> = seen
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
    let smuggled: Vec<&Seen> = seen
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
