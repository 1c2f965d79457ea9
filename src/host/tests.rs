use super::*;

#[test]
fn accepted() {
    // (input, normalized name[:port], name, borrowed)
    let cases: &[(&str, &str, &str, bool)] = &[
        (
            "secure.example.com",
            "secure.example.com",
            "secure.example.com",
            true,
        ),
        (
            "secure.example.com:8443",
            "secure.example.com:8443",
            "secure.example.com",
            true,
        ),
        (
            "Secure.Example.COM",
            "secure.example.com",
            "secure.example.com",
            false,
        ),
        (
            "secure.example.com.",
            "secure.example.com",
            "secure.example.com",
            false,
        ),
        (
            "SECURE.example.com.:80",
            "secure.example.com:80",
            "secure.example.com",
            false,
        ),
        (
            "a.internal.example.com.",
            "a.internal.example.com",
            "a.internal.example.com",
            false,
        ),
        ("localhost", "localhost", "localhost", true),
        ("my_service-1", "my_service-1", "my_service-1", true),
        ("127.0.0.1:65535", "127.0.0.1:65535", "127.0.0.1", true),
        ("h:0", "h:0", "h", true),
        ("h:00080", "h:00080", "h", true),
        ("[::1]", "[::1]", "[::1]", true),
        ("[::1]:8080", "[::1]:8080", "[::1]", true),
        ("[2001:DB8::A]", "[2001:db8::a]", "[2001:db8::a]", false),
        (
            "[::ffff:1.2.3.4]:1",
            "[::ffff:1.2.3.4]:1",
            "[::ffff:1.2.3.4]",
            true,
        ),
    ];
    for (raw, full, name, borrowed) in cases {
        let h = parse(raw.as_bytes()).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
        assert_eq!(h.as_str(), *full, "{raw:?}");
        assert_eq!(h.name(), *name, "{raw:?}");
        assert_eq!(h.is_borrowed(), *borrowed, "{raw:?}");
        let again = parse(h.as_str().as_bytes()).expect("normalized parses");
        assert_eq!(again, h, "{raw:?} not idempotent");
        assert!(again.is_borrowed(), "{raw:?}");
    }
    assert_eq!(
        parse(b"h:8080").map(|h| h.port().map(str::to_owned)),
        Ok(Some("8080".into()))
    );
    assert_eq!(parse(b"h").map(|h| h.port().map(str::to_owned)), Ok(None));
}

#[test]
fn refused() {
    use HostError::*;
    let cases: &[(&[u8], HostError)] = &[
        (b"", Empty),
        (b":80", Empty),
        (b".", Empty),
        (b".:80", Empty),
        (b"evil@secure.example.com", Userinfo),
        (b"user:pw@secure.example.com", Userinfo),
        (b"secure.example.com@evil", Userinfo),
        (b"secure.example.com/x", Path),
        (b"secure.example.com\\x", Path),
        (b"secure.example.com?x", Path),
        (b"secure.example.com#x", Path),
        (b"a,b", BadChar),
        (b"secure.example.com,evil", BadChar),
        (b"secure%2eexample.com", BadChar),
        (b"secure.example.com ", BadChar),
        (b" secure.example.com", BadChar),
        (b"secure.example.com\t", BadChar),
        (b"a b", BadChar),
        (b"*.example.com", BadChar),
        (b"s\xc3\xa9cure.example.com", BadChar),
        (b"secure.example.com\x00", BadChar),
        (b"a;b", BadChar),
        (b"a..b", EmptyLabel),
        (b"host..", EmptyLabel),
        (b".a", EmptyLabel),
        (b"a.example.com..:80", EmptyLabel),
        (b"secure.example.com:", BadPort),
        (b"secure.example.com:abc", BadPort),
        (b"secure.example.com:80:80", BadPort),
        (b"secure.example.com:-1", BadPort),
        (b"secure.example.com:+80", BadChar),
        (b"secure.example.com:65536", BadPort),
        (b"secure.example.com:123456", BadPort),
        (b"secure.example.com:99999", BadPort),
        (b"[::1]:", BadPort),
        (b"[::1]:x", BadPort),
        (b"[::1]:80:80", BadPort),
        (b"[::1", BadIpLiteral),
        (b"[::1]x", BadIpLiteral),
        (b"[::1].", BadIpLiteral),
        (b"[::1]]", BadIpLiteral),
        (b"[[::1]]", BadIpLiteral),
        (b"[1.2.3.4]", BadIpLiteral),
        (b"[v1.abc]", BadIpLiteral),
        (b"[]", BadIpLiteral),
        (b"a[::1]", BadIpLiteral),
        (b"a]", BadIpLiteral),
        (b"::1", Empty),
    ];
    for (raw, want) in cases {
        assert_eq!(parse(raw), Err(*want), "{:?}", String::from_utf8_lossy(raw));
    }
}

fn req(
    version: Version,
    uri: &str,
    hosts: &[&[u8]],
) -> Result<Option<(String, String)>, HostError> {
    let uri: Uri = uri.parse().expect("uri");
    let mut h = HeaderMap::new();
    for v in hosts {
        h.append(HOST, HeaderValue::from_bytes(v).expect("value"));
    }
    of_request(version, &uri, &h).map(|o| o.map(|r| (r.as_str().to_owned(), r.name().to_owned())))
}

#[test]
fn request_sources() {
    use HostError::*;
    let v11 = Version::HTTP_11;
    let v2 = Version::HTTP_2;
    let ok = |full: &str, name: &str| Ok(Some((full.to_owned(), name.to_owned())));
    assert_eq!(
        req(v11, "/", &[b"A.example:80"]),
        ok("a.example:80", "a.example")
    );
    assert_eq!(req(v11, "/", &[]), Err(Missing));
    assert_eq!(req(v11, "/", &[b"a.example", b"a.example"]), Err(Several));
    assert_eq!(req(v11, "/", &[b""]), Err(Empty));
    assert_eq!(req(v11, "/", &[b"a.example\xff"]), Err(BadChar));
    assert_eq!(
        req(v11, "http://a.example/", &[b"a.example"]),
        ok("a.example", "a.example")
    );
    assert_eq!(
        req(v11, "http://a.example/", &[b"A.Example."]),
        ok("a.example", "a.example")
    );
    assert_eq!(
        req(v11, "http://a.example/", &[b"b.example"]),
        Err(Disagree)
    );
    assert_eq!(
        req(v11, "http://a.example/", &[b"a.example:80"]),
        Err(Disagree)
    );
    assert_eq!(req(v11, "http://a.example/", &[]), Err(Missing));
    assert_eq!(
        req(v11, "http://u@a.example/", &[b"a.example"]),
        Err(Userinfo)
    );
    assert_eq!(req(Version::HTTP_10, "/", &[]), Ok(None));
    assert_eq!(
        req(Version::HTTP_10, "http://a.example./", &[]),
        ok("a.example", "a.example")
    );
    assert_eq!(
        req(v2, "http://a.example./x", &[]),
        ok("a.example", "a.example")
    );
    assert_eq!(req(v2, "http://a.example:abc/x", &[]), Err(BadPort));
    assert_eq!(
        req(v2, "http://a.example/x", &[b"b.example"]),
        Err(Disagree)
    );
    assert_eq!(
        req(v2, "http://a.example/x", &[b"a.example"]),
        ok("a.example", "a.example")
    );
    assert_eq!(req(v2, "/x", &[b"a.example"]), ok("a.example", "a.example"));
    assert_eq!(req(v2, "/x", &[]), Ok(None));
}

#[test]
fn field_value_is_reused_when_normalized() {
    let mut h = HeaderMap::new();
    let v = HeaderValue::from_static("a.example:8080");
    h.insert(HOST, v.clone());
    let got = of_request(Version::HTTP_11, &Uri::from_static("/"), &h)
        .expect("ok")
        .expect("host");
    assert_eq!(got.value(), &v);
    assert_eq!(got.name(), "a.example");
}

#[test]
fn the_one_pass_fast_path_agrees_with_the_full_checks() {
    // Every host of up to 6 bytes over the bytes that matter to it.
    let all = crate::path::tests::every_string(b"aZ0-._:[]1", 6);
    let mut fast = 0;
    for raw in &all {
        let full = checked(raw);
        if let Some(text) = plain_name(raw) {
            fast += 1;
            let want = Host {
                text: Cow::Borrowed(text),
                name_len: text.len(),
            };
            assert_eq!(full.as_ref(), Ok(&want), "{raw:?}");
            assert!(matches!(
                full,
                Ok(Host {
                    text: Cow::Borrowed(_),
                    ..
                })
            ));
        }
        assert_eq!(parse(raw), full, "{raw:?}");
    }
    assert!(fast > 1000, "the fast path was taken {fast} times");
}
