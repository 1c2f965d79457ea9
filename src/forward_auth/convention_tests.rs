//! [`super::read`]: each convention's headers, its defaults, and every bad input
//! (SPEC §8), without a socket.

use super::{read, Asking};
use crate::config::Convention::{self, Envoy, XForwarded, XOriginal};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};

/// `(method, host, path, query, tls)` of the original, or the access-log reason.
type Read = Result<(String, Option<String>, String, Option<String>, bool), &'static str>;
/// A convention, the decision request's headers, the reason it is refused.
type Case<'a> = (Convention, &'a [(&'a str, &'a str)], &'a str);

fn run(c: Convention, target: &str, version: Version, headers: &[(&str, &str)]) -> Read {
    let uri: Uri = target.parse().expect("uri");
    let mut h = HeaderMap::new();
    for (k, v) in headers {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_bytes(v.as_bytes()).expect("value"),
        );
    }
    let asking = Asking {
        method: &Method::GET,
        version,
        uri: &uri,
        headers: &h,
    };
    read(c, &asking)
        .map(|n| {
            (
                n.method.to_string(),
                n.host.map(|v| v.to_str().expect("host").to_owned()),
                n.path.into_owned(),
                n.query.map(|q| q.into_owned()),
                n.tls,
            )
        })
        .map_err(|d| d.decision())
}

fn h1(c: Convention, headers: &[(&str, &str)]) -> Read {
    run(c, "/decide", Version::HTTP_11, headers)
}

fn ok(m: &str, host: Option<&str>, path: &str, query: Option<&str>, tls: bool) -> Read {
    Ok((
        m.into(),
        host.map(Into::into),
        path.into(),
        query.map(Into::into),
        tls,
    ))
}

#[test]
fn x_forwarded_reads_its_four_headers() {
    let h = [
        ("host", "portcullis:9000"),
        ("x-forwarded-method", "POST"),
        ("x-forwarded-uri", "/api/a%20b?x=1&y"),
        ("x-forwarded-host", "App.Example.com"),
        ("x-forwarded-proto", "https"),
    ];
    assert_eq!(
        h1(XForwarded, &h),
        ok(
            "POST",
            Some("App.Example.com"),
            "/api/a%20b",
            Some("x=1&y"),
            true
        )
    );
    // Defaults: the decision request's method and Host; not https.
    let h = [("host", "portcullis:9000"), ("x-forwarded-uri", "/a")];
    assert_eq!(
        h1(XForwarded, &h),
        ok("GET", Some("portcullis:9000"), "/a", None, false)
    );
    let h = [
        ("host", "p"),
        ("x-forwarded-uri", "/a"),
        ("x-forwarded-proto", "WSS"),
    ];
    assert!(h1(XForwarded, &h).unwrap().4);
}

#[test]
fn x_original_reads_uri_or_url() {
    let h = [
        ("host", "app.example.com"),
        ("x-original-method", "DELETE"),
        ("x-original-uri", "/x?q"),
    ];
    assert_eq!(
        h1(XOriginal, &h),
        ok("DELETE", Some("app.example.com"), "/x", Some("q"), false)
    );
    let h = [
        ("host", "portcullis"),
        ("x-original-url", "https://app.example.com:8443/x/y?q=1"),
    ];
    assert_eq!(
        h1(XOriginal, &h),
        ok(
            "GET",
            Some("app.example.com:8443"),
            "/x/y",
            Some("q=1"),
            true
        )
    );
    let h = [("host", "p"), ("x-original-url", "http://app.example.com")];
    assert_eq!(
        h1(XOriginal, &h),
        ok("GET", Some("app.example.com"), "/", None, false)
    );
    // Both, agreeing: the URL's host.
    let h = [
        ("host", "p"),
        ("x-original-uri", "/x?q=1"),
        ("x-original-url", "http://a.example/x?q=1"),
    ];
    assert_eq!(
        h1(XOriginal, &h),
        ok("GET", Some("a.example"), "/x", Some("q=1"), false)
    );
}

#[test]
fn envoy_is_the_decision_request_itself() {
    let h = [
        ("host", "app.example.com"),
        ("x-forwarded-uri", "/public/x"),
        ("x-original-uri", "/public/x"),
    ];
    assert_eq!(
        run(Envoy, "/admin/x?t=1", Version::HTTP_11, &h),
        ok(
            "GET",
            Some("app.example.com"),
            "/admin/x",
            Some("t=1"),
            false
        )
    );
    // HTTP/2: `:authority`.
    assert_eq!(
        run(Envoy, "http://app.example.com/a", Version::HTTP_2, &[]),
        ok("GET", Some("app.example.com"), "/a", None, false)
    );
}

#[test]
fn headers_of_another_convention_are_ignored() {
    // An x-original listener does not read X-Forwarded-Uri (the oauth2-proxy#3506
    // shape: a client-sent X-Forwarded-Uri must change nothing).
    let h = [
        ("host", "p"),
        ("x-original-uri", "/admin"),
        ("x-forwarded-uri", "/public"),
        ("x-forwarded-host", "evil"),
        ("x-forwarded-method", "OPTIONS"),
    ];
    assert_eq!(
        h1(XOriginal, &h),
        ok("GET", Some("p"), "/admin", None, false)
    );
    let h = [
        ("host", "p"),
        ("x-forwarded-uri", "/admin"),
        ("x-original-uri", "/public"),
        ("x-original-url", "http://evil/public"),
        ("x-original-method", "OPTIONS"),
    ];
    assert_eq!(
        h1(XForwarded, &h),
        ok("GET", Some("p"), "/admin", None, false)
    );
    // Without its own URI header, the other convention's does not stand in.
    assert_eq!(
        h1(XForwarded, &[("host", "p"), ("x-original-uri", "/a")]),
        Err("bad_request:missing_original_uri")
    );
    assert_eq!(
        h1(XOriginal, &[("host", "p"), ("x-forwarded-uri", "/a")]),
        Err("bad_request:missing_original_uri")
    );
}

#[test]
fn bad_input_is_a_400_naming_the_rule() {
    let cases: &[Case<'_>] = &[
        (
            XForwarded,
            &[("host", "p")],
            "bad_request:missing_original_uri",
        ),
        (
            XOriginal,
            &[("host", "p")],
            "bad_request:missing_original_uri",
        ),
        (
            XForwarded,
            &[
                ("host", "p"),
                ("x-forwarded-uri", "/a"),
                ("x-forwarded-uri", "/b"),
            ],
            "bad_request:repeated_original_header",
        ),
        (
            XForwarded,
            &[
                ("host", "p"),
                ("x-forwarded-uri", "/a"),
                ("x-forwarded-host", "a"),
                ("x-forwarded-host", "b"),
            ],
            "bad_request:repeated_original_header",
        ),
        (
            XForwarded,
            &[
                ("host", "p"),
                ("x-forwarded-uri", "/a"),
                ("x-forwarded-method", "GET"),
                ("x-forwarded-method", "GET"),
            ],
            "bad_request:repeated_original_header",
        ),
        (
            XForwarded,
            &[
                ("host", "p"),
                ("x-forwarded-uri", "/a"),
                ("x-forwarded-proto", "http"),
                ("x-forwarded-proto", "https"),
            ],
            "bad_request:repeated_original_header",
        ),
        (
            XOriginal,
            &[
                ("host", "p"),
                ("x-original-uri", "/a"),
                ("x-original-uri", "/a"),
            ],
            "bad_request:repeated_original_header",
        ),
        (
            XOriginal,
            &[
                ("host", "p"),
                ("x-original-url", "http://a/"),
                ("x-original-url", "http://a/"),
            ],
            "bad_request:repeated_original_header",
        ),
        (
            XForwarded,
            &[("host", "p"), ("x-forwarded-uri", "a/b")],
            "bad_request:original_uri_not_a_path",
        ),
        (
            XForwarded,
            &[("host", "p"), ("x-forwarded-uri", "")],
            "bad_request:original_uri_not_a_path",
        ),
        (
            XForwarded,
            &[("host", "p"), ("x-forwarded-uri", "http://a/b")],
            "bad_request:original_uri_not_a_path",
        ),
        (
            XForwarded,
            &[("host", "p"), ("x-forwarded-uri", "*")],
            "bad_request:original_uri_not_a_path",
        ),
        (
            XForwarded,
            &[("host", "p"), ("x-forwarded-uri", "/a b")],
            "bad_request:original_uri_not_a_path",
        ),
        (
            XForwarded,
            &[("host", "p"), ("x-forwarded-uri", "/a#frag")],
            "bad_request:original_uri_not_a_path",
        ),
        (
            XForwarded,
            &[("host", "p"), ("x-forwarded-uri", "/caf\u{e9}")],
            "bad_request:original_uri_not_a_path",
        ),
        (
            XOriginal,
            &[("host", "p"), ("x-original-uri", "admin")],
            "bad_request:original_uri_not_a_path",
        ),
        (
            XOriginal,
            &[("host", "p"), ("x-original-url", "/admin")],
            "bad_request:original_uri_not_a_path",
        ),
        (
            XOriginal,
            &[("host", "p"), ("x-original-url", "ftp://a/admin")],
            "bad_request:original_uri_not_a_path",
        ),
        (
            XOriginal,
            &[
                ("host", "p"),
                ("x-original-uri", "/public"),
                ("x-original-url", "http://a/admin"),
            ],
            "bad_request:original_uri_disagrees",
        ),
        (
            XOriginal,
            &[
                ("host", "p"),
                ("x-original-uri", "/a?x=1"),
                ("x-original-url", "http://a/a?x=2"),
            ],
            "bad_request:original_uri_disagrees",
        ),
        (
            XOriginal,
            &[
                ("host", "p"),
                ("x-original-uri", "/a"),
                ("x-original-url", "http://a/a?"),
            ],
            "bad_request:original_uri_disagrees",
        ),
        (
            XForwarded,
            &[
                ("host", "p"),
                ("x-forwarded-uri", "/a"),
                ("x-forwarded-method", "G E T"),
            ],
            "bad_request:original_method",
        ),
        (
            XOriginal,
            &[
                ("host", "p"),
                ("x-original-uri", "/a"),
                ("x-original-method", ""),
            ],
            "bad_request:original_method",
        ),
        // The decision request's host stands in only when valid (SPEC §2 rules).
        (
            XForwarded,
            &[("x-forwarded-uri", "/a")],
            "bad_request:missing_host",
        ),
        (
            XOriginal,
            &[("host", "a"), ("host", "b"), ("x-original-uri", "/a")],
            "bad_request:several_hosts",
        ),
        (Envoy, &[("host", "a@b")], "bad_request:bad_host"),
    ];
    for (c, headers, want) in cases {
        assert_eq!(h1(*c, headers), Err(*want), "{c:?} {headers:?}");
    }
}
