//! `normalize` on a corpus of known inputs, with the invariants the module docs
//! promise; generated and random inputs are in `generated.rs`.

use super::*;
use PathError::*;

/// (input, expected). `Ok` values equal to the input must come back borrowed.
const CORPUS: &[(&str, Result<&str, PathError>)] = &[
    // Already normal.
    ("/", Ok("/")),
    ("/a", Ok("/a")),
    ("/a/", Ok("/a/")),
    ("/a/b", Ok("/a/b")),
    ("/a/b/", Ok("/a/b/")),
    ("/health", Ok("/health")),
    ("/a-b_c~d.e", Ok("/a-b_c~d.e")),
    ("/a/...", Ok("/a/...")),
    ("/a/..b", Ok("/a/..b")),
    ("/a/b..", Ok("/a/b..")),
    ("/.a", Ok("/.a")),
    ("/a;b", Ok("/a;b")),
    ("/public/..;/admin", Err(DotParams)),
    ("/public/..;x=1/admin", Err(DotParams)),
    ("/public/.;/admin", Err(DotParams)),
    ("/public/%2e%2e;/admin", Err(DotParams)),
    ("/public/%2E.;jsessionid=1/admin", Err(DotParams)),
    ("/..;/admin", Err(DotParams)),
    ("/public/...;/a", Ok("/public/...;/a")),
    ("/public/;../a", Ok("/public/;../a")),
    ("/public/a..;/b", Ok("/public/a..;/b")),
    ("/public/..%3b/admin", Err(DotParams)),
    ("/public/.%3B/admin", Err(DotParams)),
    ("/public/a%3b/b", Ok("/public/a%3b/b")),
    ("/caf\u{e9}", Ok("/caf\u{e9}")),
    ("/a:b@c!$&'()*+,=", Ok("/a:b@c!$&'()*+,=")),
    // Collapsing empty segments.
    ("//", Ok("/")),
    ("///", Ok("/")),
    ("//a", Ok("/a")),
    ("/a//b", Ok("/a/b")),
    ("//a///b//", Ok("/a/b/")),
    ("//admin", Ok("/admin")),
    // Dot segments.
    ("/.", Ok("/")),
    ("/./", Ok("/")),
    ("/./a", Ok("/a")),
    ("/a/.", Ok("/a/")),
    ("/a/./", Ok("/a/")),
    ("/a/./b", Ok("/a/b")),
    ("/a/..", Ok("/")),
    ("/a/../", Ok("/")),
    ("/a/b/..", Ok("/a/")),
    ("/a/./b/../c", Ok("/a/c")),
    ("/a/b/../../c/", Ok("/c/")),
    ("/public/../admin", Ok("/admin")),
    ("/public/./../admin/", Ok("/admin/")),
    // Collapse first, then resolve: an empty segment is not a level.
    ("/a//..", Ok("/")),
    ("/a//../b", Ok("/b")),
    ("/a/b//../c", Ok("/a/c")),
    // Unreserved escapes are decoded (either hex case)...
    ("/%61dmin", Ok("/admin")),
    ("/%41", Ok("/A")),
    ("/%7E", Ok("/~")),
    ("/%7e", Ok("/~")),
    ("/%2D%5F%2E%30", Ok("/-_.0")),
    ("/%7a%5A", Ok("/zZ")),
    ("/%2e", Ok("/")),
    ("/a/%2e/b", Ok("/a/b")),
    ("/public/%2e%2e/admin", Ok("/admin")),
    ("/public/%2E%2e/admin", Ok("/admin")),
    ("/public/%2E%2e/", Ok("/")),
    ("/public/.%2e/admin", Ok("/admin")),
    ("/public/%2e./admin", Ok("/admin")),
    ("/%2e%2e%2e", Ok("/...")),
    ("/caf\u{e9}/%61", Ok("/caf\u{e9}/a")),
    ("/%C3%A9/%61", Ok("/%C3%A9/a")),
    // ...every other escape is kept exactly as sent.
    ("/a%3Bb", Ok("/a%3Bb")),
    ("/a%3bb", Ok("/a%3bb")),
    ("/%20", Ok("/%20")),
    ("/a%3Fb%23c", Ok("/a%3Fb%23c")),
    ("/%25", Ok("/%25")),
    ("/%252e%252e", Ok("/%252e%252e")),
    ("/%252e%252e/admin", Ok("/%252e%252e/admin")),
    ("/%252F", Ok("/%252F")),
    ("/%2541", Ok("/%2541")),
    ("/%e2%82%ac", Ok("/%e2%82%ac")),
    ("/%E2%82%AC", Ok("/%E2%82%AC")),
    ("/%C3%A9", Ok("/%C3%A9")),
    ("/%F0%9F%A6%80", Ok("/%F0%9F%A6%80")),
    ("/%7F", Ok("/%7F")),
    ("/%01", Ok("/%01")),
    // Encoded separators, anywhere, either case.
    ("/%2F", Err(EncodedSeparator)),
    ("/%2f", Err(EncodedSeparator)),
    ("/public%2Fx", Err(EncodedSeparator)),
    ("/public/..%2fadmin", Err(EncodedSeparator)),
    ("/public/%2e%2e%2fadmin", Err(EncodedSeparator)),
    ("/%5C", Err(EncodedSeparator)),
    ("/a%5cb", Err(EncodedSeparator)),
    ("/..%5c..%5cwindows", Err(EncodedSeparator)),
    // Raw backslash and NUL.
    ("/a\\b", Err(Backslash)),
    ("/\\\\host/share", Err(Backslash)),
    ("/..\\admin", Err(Backslash)),
    ("/a%00", Err(Nul)),
    ("/a%00.html", Err(Nul)),
    ("/a\0", Err(Nul)),
    // Above the root.
    ("/..", Err(AboveRoot)),
    ("/../", Err(AboveRoot)),
    ("/../admin", Err(AboveRoot)),
    ("/a/../..", Err(AboveRoot)),
    ("/a/../../b", Err(AboveRoot)),
    ("/./..", Err(AboveRoot)),
    ("//..", Err(AboveRoot)),
    ("/%2e%2e", Err(AboveRoot)),
    ("/%2E%2E/etc/passwd", Err(AboveRoot)),
    // Malformed escapes.
    ("/%", Err(BadEscape)),
    ("/a%", Err(BadEscape)),
    ("/%4", Err(BadEscape)),
    ("/%zz", Err(BadEscape)),
    ("/%g1", Err(BadEscape)),
    ("/%%41", Err(BadEscape)),
    ("/% 41", Err(BadEscape)),
    ("/%\u{e9}", Err(BadEscape)),
    ("/%+1", Err(BadEscape)),
    // Not UTF-8 once fully decoded.
    ("/%C0%AE%C0%AE", Err(NotUtf8)),
    ("/%c0%ae%c0%ae/admin", Err(NotUtf8)),
    ("/%C0%AF", Err(NotUtf8)),
    ("/%E0%80%AF", Err(NotUtf8)),
    ("/%FF", Err(NotUtf8)),
    ("/%80", Err(NotUtf8)),
    ("/%e2%82", Err(NotUtf8)),
    ("/%e2%82/x", Err(NotUtf8)),
    ("/%ED%A0%80", Err(NotUtf8)),
    ("/%F4%90%80%80", Err(NotUtf8)),
    ("/%C3A", Err(NotUtf8)),
    ("/%C3\u{e9}", Err(NotUtf8)),
    ("/\u{e9}%A9", Err(NotUtf8)),
    // Not origin-form.
    ("", Err(NotAbsolute)),
    ("*", Err(NotAbsolute)),
    ("a/b", Err(NotAbsolute)),
    ("../a", Err(NotAbsolute)),
    ("%2Fa", Err(NotAbsolute)),
    ("http://x/a", Err(NotAbsolute)),
    ("example.com:443", Err(NotAbsolute)),
];

#[test]
fn corpus() {
    for (input, want) in CORPUS {
        let got = normalize(input);
        assert_eq!(got.as_deref().map_err(|e| *e), *want, "input {input:?}");
        if let Ok(n) = &got {
            assert_eq!(matches!(n, Cow::Borrowed(_)), n == input, "{input:?}");
            check_invariants(input, n);
        }
    }
    assert!(CORPUS.len() >= 100, "{}", CORPUS.len());
}

#[test]
fn length_limit() {
    let at_limit = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
    assert!(matches!(normalize(&at_limit), Ok(Cow::Borrowed(_))));
    let over = format!("/{}", "a".repeat(MAX_PATH_LEN));
    assert_eq!(normalize(&over), Err(TooLong));
    // The limit is on raw input, before anything else.
    assert_eq!(normalize(&"%".repeat(MAX_PATH_LEN + 1)), Err(TooLong));
    let deep = "/a".repeat(MAX_PATH_LEN / 5) + &"/..".repeat(MAX_PATH_LEN / 5);
    assert!(deep.len() <= MAX_PATH_LEN);
    assert_eq!(normalize(&deep).as_deref(), Ok("/"));
    let dots = "/..".repeat(MAX_PATH_LEN / 3);
    assert_eq!(normalize(&dots), Err(AboveRoot));
}

#[test]
fn errors_have_messages() {
    assert_eq!(NotAbsolute.to_string(), "path is not origin-form");
    assert_eq!(TooLong.to_string(), "path too long");
}

#[test]
fn segment_split() {
    let cases: &[(&str, &[&str])] = &[
        ("/", &[""]),
        ("/a", &["a"]),
        ("/a/", &["a", ""]),
        ("/a/b", &["a", "b"]),
        ("/a/b/", &["a", "b", ""]),
    ];
    for (path, want) in cases {
        assert_eq!(segments(path).collect::<Vec<_>>(), *want, "{path:?}");
    }
}

/// The properties the module docs promise, for one successful normalization.
fn check_invariants(input: &str, n: &str) {
    assert!(n.starts_with('/'), "{input:?} -> {n:?}");
    assert!(!n.contains("//"), "{input:?} -> {n:?}");
    assert!(n.len() <= input.len(), "{input:?} -> {n:?}");
    for s in segments(n) {
        assert!(s != "." && s != "..", "{input:?} -> {n:?}");
    }
    assert!(!has_unreserved_escape(n), "{input:?} -> {n:?}");
    assert_eq!(escapes(n), kept_escapes(input), "{input:?} -> {n:?}");
    let again = normalize(n);
    assert!(
        matches!(&again, Ok(Cow::Borrowed(x)) if *x == n),
        "not idempotent: {input:?} -> {n:?} -> {again:?}"
    );
}

/// Every `%XX` in `p`, in order, as written.
fn escapes(p: &str) -> Vec<&str> {
    p.match_indices('%')
        .filter_map(|(i, _)| p.get(i..i + 3))
        .collect()
}

/// The escapes of `p` that normalization keeps: those of bytes that are not
/// unreserved (exact when no segment holding one is removed by `..`).
fn kept_escapes(p: &str) -> Vec<&str> {
    escapes(p)
        .into_iter()
        .filter(|e| !escape_is_unreserved(e))
        .collect()
}

fn escape_is_unreserved(e: &str) -> bool {
    let mut d = e.bytes().skip(1);
    hex_pair(d.next(), d.next()).is_some_and(is_unreserved)
}

fn has_unreserved_escape(p: &str) -> bool {
    escapes(p).into_iter().any(escape_is_unreserved)
}

/// The generated and random inputs.
mod generated;

/// Every string over `alphabet` of `0..=max` bytes.
pub(crate) fn every_string(alphabet: &[u8], max: usize) -> Vec<Vec<u8>> {
    let mut all: Vec<Vec<u8>> = vec![Vec::new()];
    let mut last = all.clone();
    for _ in 0..max {
        last = last
            .iter()
            .flat_map(|s| {
                alphabet.iter().map(move |&c| {
                    let mut t = s.clone();
                    t.push(c);
                    t
                })
            })
            .collect();
        all.extend(last.iter().cloned());
    }
    all
}

#[test]
fn the_one_pass_fast_path_agrees_with_the_full_checks() {
    // Every path of up to 7 bytes after the `/` over the bytes that matter to it.
    let mut fast = 0;
    for tail in every_string(b"/a.%2e;\\", 7) {
        let mut raw = b"/".to_vec();
        raw.extend_from_slice(&tail);
        let raw = String::from_utf8(raw).unwrap();
        let full = checked(&raw);
        if already_normal(raw.as_bytes()) {
            fast += 1;
            assert!(
                matches!(&full, Ok(Cow::Borrowed(p)) if *p == raw),
                "{raw:?}: the fast path says normal, the full checks give {full:?}"
            );
        }
        assert_eq!(normalize(&raw), full, "{raw:?}");
    }
    assert!(fast > 1000, "the fast path was taken {fast} times");
    // Bytes it must leave to the full checks: NUL and non-ASCII.
    assert!(!already_normal(b"/a\0"));
    assert!(!already_normal("/é".as_bytes()));
}
