//! Header-spoofing corpus (issue #9, SECURITY.md "Headers"): identity headers in
//! every spelling a backend might fold together, obs-fold and whitespace tricks,
//! identity in chunked trailers, `X-Forwarded-*` / `Forwarded` spoofing, Host
//! disagreements (HTTP/1.1 absolute-form and HTTP/2 `:authority`). Every case names
//! the status and what the recording upstream may receive.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;
use support::*;

/// Identity headers configured below, folded (lowercase, `_` as `-`).
const IDENTITY: &[&str] = &["x-user", "x-user-email"];

fn folds_to_identity(name: &str) -> bool {
    let f = name.to_ascii_lowercase().replace('_', "-");
    IDENTITY.contains(&f.trim())
}

type Check = fn(&Recorded) -> Result<(), String>;

/// `request`: the bytes after the request line's target (`{path}` is substituted).
struct Case {
    name: &'static str,
    request: String,
    /// Allowed statuses (the first response).
    status: &'static [u16],
    /// `None`: the upstream must not see the request. `Some(check)`: it may (when
    /// the status is 200) and what it saw must pass the check.
    check: Option<Check>,
}

/// The identity the upstream sees: exactly one `X-User: alice`, no other spelling
/// of an identity header anywhere (headers or trailers), X-User-Email only ours.
fn only_alice(s: &Recorded) -> Result<(), String> {
    let ids: Vec<_> = s
        .headers
        .iter()
        .chain(&s.trailers)
        .filter(|(n, _)| folds_to_identity(n))
        .collect();
    if ids.len() == 2
        && ids.iter().any(|(n, v)| n == "x-user" && v == "alice")
        && ids
            .iter()
            .any(|(n, v)| n == "x-user-email" && v == "alice@example.com")
    {
        Ok(())
    } else {
        Err(format!("identity headers at the upstream: {ids:?}"))
    }
}

/// Public route: no identity header of any spelling reaches the upstream.
fn no_identity(s: &Recorded) -> Result<(), String> {
    let ids: Vec<_> = s
        .headers
        .iter()
        .chain(&s.trailers)
        .filter(|(n, _)| folds_to_identity(n))
        .collect();
    if ids.is_empty() {
        Ok(())
    } else {
        Err(format!("identity headers at the upstream: {ids:?}"))
    }
}

fn xff_appended(s: &Recorded) -> Result<(), String> {
    only_alice(s)?;
    let xff = s.header_all("x-forwarded-for");
    let proto = s.header_all("x-forwarded-proto");
    let host = s.header_all("x-forwarded-host");
    if xff == ["10.0.0.1, 127.0.0.1"] && proto == ["http"] && host == ["localhost"] {
        Ok(())
    } else {
        Err(format!("xff {xff:?} proto {proto:?} host {host:?}"))
    }
}

fn no_forwarded(s: &Recorded) -> Result<(), String> {
    only_alice(s)?;
    match s.header_all("forwarded").as_slice() {
        [] => Ok(()),
        f => Err(format!(
            "client Forwarded header reached the upstream: {f:?}"
        )),
    }
}

fn host_is_target(s: &Recorded) -> Result<(), String> {
    only_alice(s)?;
    let host = s.header_all("host");
    let xfh = s.header_all("x-forwarded-host");
    if host == ["a.example"] && xfh == ["a.example"] {
        Ok(())
    } else {
        Err(format!("Host {host:?}, X-Forwarded-Host {xfh:?}"))
    }
}

fn corpus(tok: &str) -> Vec<Case> {
    let auth = format!("Authorization: Bearer {tok}\r\n");
    let get = |extra: &str| {
        format!(
            "GET {{path}} HTTP/1.1\r\nHost: localhost\r\n{auth}{extra}Connection: close\r\n\r\n"
        )
    };
    let public = |extra: &str| {
        format!("GET /pub{{path}} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n")
    };
    let ok = |name, request| Case {
        name,
        request,
        status: &[200],
        check: Some(only_alice as Check),
    };
    let bad = |name, request| Case {
        name,
        request,
        status: &[400],
        check: None,
    };
    let mut c = vec![ok("control", get(""))];
    // ---- identity header spellings on a protected route (ours must win, alone).
    for h in [
        "X-User: admin\r\n",
        "x-user: admin\r\n",
        "X-USER: admin\r\n",
        "X_User: admin\r\n",
        "x_user: admin\r\n",
        "X-User_Email: admin@example.com\r\n",
        "X_USER_EMAIL: admin@example.com\r\n",
        "X-User: admin\r\nX-User: root\r\n",
        "X-User: admin\r\nx_user: root\r\nX-USER-EMAIL: e\r\n",
        "X-User:\tadmin\r\n",
        "X-User:admin\r\n",
        "X-User: \r\n",
        "X-User: alice, admin\r\n",
        "Connection: X-User\r\nX-User: admin\r\n",
        "Connection: keep-alive, X-User-Email\r\nX-User-Email: admin@example.com\r\n",
    ] {
        c.push(Case {
            name: "identity spelling",
            request: get(h),
            status: &[200],
            check: Some(only_alice),
        });
    }
    c.push(Case {
        name: "non-ASCII identity value",
        request: format!(
            "GET {{path}} HTTP/1.1\r\nHost: localhost\r\n{auth}X-User: adm\u{ff}in\r\nConnection: close\r\n\r\n"
        ),
        status: &[200],
        check: Some(only_alice),
    });
    // ---- public route: stripped too, whatever the access.
    for h in [
        "X-User: admin\r\n",
        "x_user: admin\r\n",
        "X-User-Email: e\r\nX_User: a\r\n",
    ] {
        c.push(Case {
            name: "identity on a public route",
            request: public(h),
            status: &[200],
            check: Some(no_identity),
        });
    }
    // ---- obs-fold and whitespace games (RFC 9112 §5.2: reject or replace with SP).
    c.push(Case {
        name: "obs-fold continuing into X-User",
        request: get("X-Note: a\r\n X-User: admin\r\n"),
        status: &[200, 400],
        check: Some(only_alice),
    });
    c.push(Case {
        name: "obs-fold with a tab",
        request: get("X-Note: a\r\n\tX-User: admin\r\n"),
        status: &[200, 400],
        check: Some(only_alice),
    });
    c.push(Case {
        name: "obs-fold of X-User itself",
        request: get("X-User: ad\r\n min\r\n"),
        status: &[200, 400],
        check: Some(only_alice),
    });
    c.push(bad(
        "leading whitespace on the first header line",
        format!("GET {{path}} HTTP/1.1\r\n X-User: admin\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n"),
    ));
    c.push(bad("space before the colon", get("X-User : admin\r\n")));
    c.push(bad("tab before the colon", get("X-User\t: admin\r\n")));
    c.push(bad("NUL in the name", get("X-User\0: admin\r\n")));
    c.push(bad("header without a colon", get("X-User admin\r\n")));
    c.push(bad(
        "bare CR in a value",
        get("X-Note: a\rX-User: admin\r\n"),
    ));
    // ---- identity in chunked trailers.
    for trailer in [
        "X-User: admin\r\n",
        "x_user: admin\r\n",
        "X-User-Email: admin@example.com\r\n",
        "Authorization: Bearer forged\r\n",
    ] {
        c.push(Case {
            name: "identity in a chunked trailer",
            request: format!(
                "POST {{path}} HTTP/1.1\r\nHost: localhost\r\n{auth}Transfer-Encoding: chunked\r\n\
                 Trailer: X-User\r\nTE: trailers\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n{trailer}\r\n"
            ),
            status: &[200, 400],
            check: Some(only_alice),
        });
    }
    c.push(Case {
        name: "identity in a trailer on a public route",
        request: "POST /pub{path} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\
                  Connection: close\r\n\r\n2\r\nhi\r\n0\r\nX-User: admin\r\n\r\n"
            .to_string(),
        status: &[200, 400],
        check: Some(no_identity),
    });
    // ---- X-Forwarded-* and Forwarded spoofing.
    c.push(Case {
        name: "X-Forwarded-* spoofed",
        request: get(
            "X-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: admin.internal\r\n",
        ),
        status: &[200],
        check: Some(xff_appended),
    });
    c.push(Case {
        name: "X-Forwarded-* duplicated",
        request: get(
            "X-Forwarded-Proto: https\r\nX-Forwarded-Proto: wss\r\nX-Forwarded-Host: a\r\nX-Forwarded-Host: b\r\nX-Forwarded-For: 10.0.0.1\r\n",
        ),
        status: &[200],
        check: Some(xff_appended),
    });
    c.push(Case {
        name: "Connection names X-Forwarded-For (dropped, then ours set)",
        request: get("Connection: X-Forwarded-For\r\nX-Forwarded-For: 10.0.0.1\r\n"),
        status: &[200],
        check: Some(|s| {
            only_alice(s)?;
            match s.header_all("x-forwarded-for").as_slice() {
                ["127.0.0.1"] => Ok(()),
                x => Err(format!("xff {x:?}")),
            }
        }),
    });
    c.push(Case {
        name: "RFC 7239 Forwarded spoofed",
        request: get("Forwarded: for=10.0.0.1;proto=https;host=admin.internal\r\n"),
        status: &[200],
        check: Some(no_forwarded),
    });
    // ---- Host disagreements (HTTP/1.1).
    // SPEC §2: a target authority and a `Host` that differ are refused.
    c.push(bad(
        "absolute-form target with a different Host",
        format!(
            "GET http://a.example{{path}} HTTP/1.1\r\nHost: b.example\r\n{auth}Connection: close\r\n\r\n"
        ),
    ));
    c.push(Case {
        name: "absolute-form target with the same Host",
        request: format!(
            "GET http://a.example{{path}} HTTP/1.1\r\nHost: A.Example.\r\n{auth}Connection: close\r\n\r\n"
        ),
        status: &[200],
        check: Some(host_is_target),
    });
    c.push(bad(
        "two Host headers",
        format!("GET {{path}} HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n{auth}Connection: close\r\n\r\n"),
    ));
    c
}

fn config(up: SocketAddr) -> String {
    format!(
        "[upstreams.app]\nurl = \"http://{up}\"\n\
         [identity]\nheader = \"X-User\"\nclaim = \"sub\"\n\
         [identity.claims_to_headers]\n\"X-User-Email\" = \"email\"\n\
         [[routes]]\nname = \"a-host\"\nhost = \"a.example\"\npath = \"/**\"\nupstream = \"app\"\n\
         [[routes]]\nname = \"pub\"\npath = \"/pub/**\"\naccess = \"public\"\nupstream = \"app\"\n\
         [[routes]]\nname = \"all\"\npath = \"/**\"\nupstream = \"app\"\n{}",
        hs_issuer()
    )
}

fn alice_token() -> String {
    token("alice", serde_json::json!({"email": "alice@example.com"}))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_corpus() {
    let rec = spawn_upstream().await;
    let up = rec.addr;
    let proxy = Proxy::builder().start(&config(up)).await;
    let tok = alice_token();
    let cases = corpus(&tok);
    let addr = proxy.addr;
    let reqs: Vec<String> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| c.request.replace("{path}", &format!("/h/{i}")))
        .collect();
    let results = tokio::task::spawn_blocking(move || {
        reqs.iter()
            .map(|r| exchange(addr, r.as_bytes(), Duration::from_millis(500)))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let seen = rec.requests();
    let mut failures = Vec::new();
    for (i, (c, ex)) in cases.iter().zip(&results).enumerate() {
        let suffix = format!("/h/{i}");
        let hits: Vec<&Recorded> = seen.iter().filter(|s| s.path.ends_with(&suffix)).collect();
        let status = ex.first_status();
        let problem = if !c.status.contains(&status) {
            Some(format!("status {status}, expected one of {:?}", c.status))
        } else {
            match (c.check, status, hits.as_slice()) {
                (_, 200, [one]) => c.check.map_or(Ok(()), |f| f(one)).err(),
                (Some(_), 200, h) => Some(format!("{} upstream requests", h.len())),
                (_, _, []) => None,
                (_, _, h) => Some(format!("refused but {} upstream requests", h.len())),
            }
        };
        if let Some(p) = problem {
            failures.push(format!("#{i} {}: {p}\n  request: {:?}", c.name, c.request));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// HTTP/2 (h2c prior knowledge): a `host` header that disagrees with `:authority`
/// must not reach the upstream; routing and the forwarded Host use one value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_host_and_authority_disagree() {
    let rec = spawn_upstream().await;
    let up = rec.addr;
    let proxy = Proxy::builder().start(&config(up)).await;
    let tok = alice_token();
    let mut send = h2_connect(proxy.addr).await;
    /// (:authority, host header, allowed statuses, Host the upstream must see)
    type H2Case<'a> = (&'a str, Option<&'a str>, &'a [u16], Option<&'a str>);
    let cases: &[H2Case] = &[
        // (:authority, host header, allowed statuses, Host the upstream must see)
        ("a.example", None, &[200], Some("a.example")),
        ("a.example", Some("a.example"), &[200], Some("a.example")),
        ("a.example", Some("A.example."), &[200], Some("a.example")),
        // SPEC §2: `:authority` and a different `host` field -> 400.
        ("a.example", Some("b.example"), &[400], None),
        ("b.example", Some("a.example"), &[400], None),
    ];
    for (i, (authority, host, statuses, want)) in cases.iter().enumerate() {
        let mut b = http::Request::builder()
            .version(http::Version::HTTP_2)
            .uri(format!("http://{authority}/h2/{i}"))
            .header("authorization", format!("Bearer {tok}"))
            .header("x-user", "admin");
        if let Some(h) = host {
            b = b.header("host", *h);
        }
        let resp = send
            .send_request(
                b.body(http_body_util::Empty::<bytes::Bytes>::new())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status().as_u16();
        assert!(statuses.contains(&status), "case {i}: status {status}");
        let seen = rec.with_prefix(&format!("/h2/{i}"));
        if status == 200 {
            assert_eq!(seen.len(), 1, "case {i}");
            assert_eq!(seen[0].header_all("host"), vec![want.unwrap()], "case {i}");
            assert_eq!(
                seen[0].header_all("x-forwarded-host"),
                vec![want.unwrap()],
                "case {i}"
            );
            only_alice(&seen[0]).unwrap();
        } else {
            assert!(seen.is_empty(), "case {i}");
        }
    }
}
