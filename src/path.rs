//! Request-path normalization (SPEC §2 "Path handling"): the most security-critical,
//! most fuzzed code we own. The path a route is matched on is exactly the path
//! forwarded upstream, so a backend is never shown a path that another route (or
//! no route) would have matched.
//!
//! # What [`normalize`] does, in order
//! 1. Refuse more than [`MAX_PATH_LEN`] bytes, then anything not starting with `/`
//!    (`*`, empty, authority- or absolute-form).
//! 2. One left-to-right scan that refuses a raw `\` or NUL, a `%` not followed by two
//!    hex digits, `%2F`/`%5C` in either case (an encoded separator means different
//!    things to different backends), `%00`, and bytes that are not UTF-8 once *every*
//!    escape is decoded (overlong `%C0%AE`, `%FF`, a truncated `%E2%82`).
//! 3. Decode the escapes of unreserved characters (ALPHA / DIGIT / `-` `.` `_` `~`,
//!    RFC 3986 §2.3 and §6.2.2.2); every other escape is kept byte for byte, hex case
//!    included. Decoding happens exactly once: `%252e` stays `%252e`.
//! 4. Refuse a dot-segment carrying `;` parameters (`..;x`, `.;`, also when spelled
//!    `%2e%2e;` or `..%3B`): see "Path parameters" below.
//! 5. Collapse runs of `/`, *then* resolve `.` and `..` (RFC 3986 §5.2.4), so empty
//!    segments never count as a level: `/a//..` is `/` (plain RFC 3986 would give
//!    `/a/`). A `..` above the root is refused, never clamped. A path ending in `/`,
//!    `/.` or `/..` keeps (or gains) its trailing slash: `/a/.` is `/a/`, `/a/b/..`
//!    is `/a/`.
//!
//! When the scan reports several problems, the first one found wins; `AboveRoot` is
//! only reported for a path that passed every byte-level check.
//!
//! # Guarantees (checked by the tests below, and by fuzzing)
//! For every `p` with `normalize(p) == Ok(n)`:
//! - `n` starts with `/`, has no `//`, no `.` or `..` segment, and no escape of an
//!   unreserved character; its other escapes are exactly those of `p`;
//! - `n` is no longer than `p`, and `normalize(n)` is `Ok(Cow::Borrowed(n))`
//!   (idempotent); `normalize(p)` is borrowed exactly when `n == p`, so the common,
//!   already-normal path costs no allocation.
//!
//! The code holds no `unsafe`, no `unwrap`, and no indexing or slicing that hostile
//! input could push out of bounds.
//!
//! # Path parameters
//! `;` is otherwise an ordinary character (RFC 3986 keeps path parameters opaque):
//! `/a;b/c` is matched and forwarded as is. Backends that strip `;params` before
//! resolving dots (Tomcat, some Spring setups) would read `/public/..;/admin` as
//! `/admin` while we matched `/public/**`: the classic proxy-to-Tomcat bypass. A
//! dot-segment with parameters has no legitimate use, and neither reading (literal
//! or stripped) is safe to pick for every backend, so it is refused with 400.
//! Parameters on ordinary segments (`/admin;x/`) stay literal; SECURITY.md explains
//! how to write routes in front of a backend that strips them.

use std::borrow::Cow;

/// Why a path was refused; every variant is answered 400 (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Does not start with `/` (e.g. `*`, empty, `a/b`, `http://host/a`).
    #[error("path is not origin-form")]
    NotAbsolute,
    /// `%2F` or `%5C`, in either hex case, anywhere.
    #[error("encoded slash or backslash")]
    EncodedSeparator,
    /// A raw `\`.
    #[error("backslash in path")]
    Backslash,
    /// `%00` or a raw NUL.
    #[error("NUL byte in path")]
    Nul,
    /// A `..` segment that would climb above the root.
    #[error("dot-segment above the root")]
    AboveRoot,
    /// Not UTF-8 once every percent-escape is decoded.
    #[error("path is not valid UTF-8 once decoded")]
    NotUtf8,
    /// A `%` not followed by two hex digits.
    #[error("malformed percent-escape")]
    BadEscape,
    /// A `.` or `..` segment with `;` parameters (`..;x`), once unreserved escapes
    /// are decoded.
    #[error("dot-segment with path parameters")]
    DotParams,
    /// More than [`MAX_PATH_LEN`] bytes of input.
    #[error("path too long")]
    TooLong,
}

/// Longest path accepted, in bytes of raw input.
pub const MAX_PATH_LEN: usize = 8192;

/// Normalizes the path part of a request target (no query string: the caller splits
/// at `?`). Returns `Cow::Borrowed(raw)` when nothing changed.
///
/// # Errors
/// The [`PathError`] describing the first problem found (see the module docs).
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if raw.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = if scan(raw)? {
        Cow::Owned(decode_unreserved(raw)?)
    } else {
        Cow::Borrowed(raw)
    };
    if decoded.contains([';', '%']) && segments(&decoded).any(is_dot_with_params) {
        return Err(PathError::DotParams);
    }
    if !needs_resolution(&decoded) {
        return Ok(decoded);
    }
    resolve(&decoded).map(Cow::Owned)
}

/// Iterates the segments the route matcher sees: the normalized path without its
/// leading `/`, split on `/`. `/` -> `[""]`, `/a` -> `["a"]`, `/a/` -> `["a", ""]`,
/// `/a/b` -> `["a", "b"]`.
pub fn segments(normalized: &str) -> impl Iterator<Item = &str> {
    normalized
        .strip_prefix('/')
        .unwrap_or(normalized)
        .split('/')
}

/// Byte-level checks. Returns whether some escape encodes an unreserved character
/// (that is, whether decoding will change the path).
fn scan(raw: &str) -> Result<bool, PathError> {
    let mut utf8 = Utf8Check::default();
    let mut decodes = false;
    let mut bytes = raw.bytes();
    while let Some(b) = bytes.next() {
        let value = match b {
            b'%' => {
                let value = hex_pair(bytes.next(), bytes.next()).ok_or(PathError::BadEscape)?;
                match value {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0 => return Err(PathError::Nul),
                    v if is_unreserved(v) => decodes = true,
                    _ => {}
                }
                value
            }
            b'\\' => return Err(PathError::Backslash),
            0 => return Err(PathError::Nul),
            other => other,
        };
        utf8.push(value)?;
    }
    utf8.finish()?;
    Ok(decodes)
}

/// Decodes the escapes of unreserved characters and keeps every other escape as
/// sent. `raw` must have passed [`scan`].
fn decode_unreserved(raw: &str) -> Result<String, PathError> {
    let mut out = String::with_capacity(raw.len());
    let mut parts = raw.split('%');
    out.push_str(parts.next().unwrap_or_default());
    for part in parts {
        // Each part after a '%' starts with the escape's two (ASCII) hex digits.
        let (escape, rest) = part.split_at_checked(2).ok_or(PathError::BadEscape)?;
        let mut digits = escape.bytes();
        match hex_pair(digits.next(), digits.next()) {
            Some(v) if is_unreserved(v) => out.push(char::from(v)),
            Some(_) => {
                out.push('%');
                out.push_str(escape);
            }
            None => return Err(PathError::BadEscape),
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// `.;x` or `..;x`: a dot-segment once `;` parameters are stripped, as Tomcat does.
/// `..%3Bx` too: a backend that decodes before stripping reads it the same way.
fn is_dot_with_params(seg: &str) -> bool {
    let rest = seg.strip_prefix("..").or_else(|| seg.strip_prefix('.'));
    rest.is_some_and(|r| {
        r.starts_with(';') || r.get(..3).is_some_and(|e| e.eq_ignore_ascii_case("%3b"))
    })
}

/// Whether the path has a `//`, or a `.` or `..` segment.
fn needs_resolution(path: &str) -> bool {
    path.contains("//") || segments(path).any(|s| s == "." || s == "..")
}

/// Collapses empty segments, then resolves dot segments (RFC 3986 §5.2.4, except
/// that climbing above the root is an error). `path` starts with `/`.
fn resolve(path: &str) -> Result<String, PathError> {
    // Invariant: `out` is empty or a sequence of "/segment" with non-empty segments.
    let mut out = String::with_capacity(path.len());
    let mut trailing_slash = false;
    for seg in segments(path) {
        match seg {
            // An empty segment is collapsed; it only survives as a final `/`.
            "" | "." => trailing_slash = true,
            ".." => {
                let parent = out.rfind('/').ok_or(PathError::AboveRoot)?;
                // `parent` indexes an ASCII '/', always a char boundary: no panic.
                out.truncate(parent);
                trailing_slash = true;
            }
            seg => {
                out.push('/');
                out.push_str(seg);
                trailing_slash = false;
            }
        }
    }
    if trailing_slash || out.is_empty() {
        out.push('/');
    }
    Ok(out)
}

/// The byte two hex digits spell, if both are hex digits.
fn hex_pair(hi: Option<u8>, lo: Option<u8>) -> Option<u8> {
    Some((hex_digit(hi?)? << 4) | hex_digit(lo?)?)
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 3986 §2.3: ALPHA / DIGIT / "-" / "." / "_" / "~".
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Incremental UTF-8 validation (Unicode 15 Table 3-7, well-formed byte sequences):
/// refuses overlong forms, surrogates, code points above U+10FFFF and truncated
/// sequences without buffering the decoded bytes.
#[derive(Default)]
struct Utf8Check {
    /// Continuation bytes still expected.
    pending: u8,
    /// Allowed range of the next continuation byte.
    lo: u8,
    hi: u8,
}

impl Utf8Check {
    fn push(&mut self, b: u8) -> Result<(), PathError> {
        if self.pending > 0 {
            if b < self.lo || b > self.hi {
                return Err(PathError::NotUtf8);
            }
            self.pending -= 1;
            (self.lo, self.hi) = (0x80, 0xBF);
            return Ok(());
        }
        let (pending, lo, hi) = match b {
            0x00..=0x7F => return Ok(()),
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE..=0xEF => (2, 0x80, 0xBF),
            0xED => (2, 0x80, 0x9F),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            _ => return Err(PathError::NotUtf8),
        };
        *self = Self { pending, lo, hi };
        Ok(())
    }

    fn finish(&self) -> Result<(), PathError> {
        if self.pending == 0 {
            Ok(())
        } else {
            Err(PathError::NotUtf8)
        }
    }
}

#[cfg(test)]
mod tests {
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

    /// A second, deliberately different implementation for the segment grammar of
    /// [`generated_paths_match_model`]: a stack of decoded segments.
    fn model(atoms: &[&str]) -> Result<String, PathError> {
        let mut stack: Vec<String> = Vec::new();
        let mut trailing = false;
        for atom in atoms {
            let decoded = atom
                .replace("%2e", ".")
                .replace("%2E", ".")
                .replace("%41", "A");
            match decoded.as_str() {
                "" | "." => trailing = true,
                ".." => {
                    stack.pop().ok_or(AboveRoot)?;
                    trailing = true;
                }
                _ => {
                    stack.push(decoded);
                    trailing = false;
                }
            }
        }
        let mut out = String::new();
        for s in &stack {
            out.push('/');
            out.push_str(s);
        }
        if trailing || stack.is_empty() {
            out.push('/');
        }
        Ok(out)
    }

    #[test]
    fn generated_paths_match_model() {
        let atoms = [
            "a", ".", "..", "%2e", "", "%41", "%20", "%2E%2e", "b;c", ".%2E",
        ];
        let n = atoms.len();
        let (mut ok, mut err) = (0, 0);
        for len in 1..=5u32 {
            for code in 0..n.pow(len) {
                let mut picked = Vec::new();
                let mut c = code;
                for _ in 0..len {
                    picked.push(atoms[c % n]);
                    c /= n;
                }
                let path: String = picked.iter().flat_map(|a| ["/", a]).collect();
                let got = normalize(&path);
                assert_eq!(
                    got.as_deref().map_err(|e| *e),
                    model(&picked).as_deref().map_err(|e| *e),
                    "{path:?}"
                );
                match got {
                    Ok(norm) => {
                        ok += 1;
                        assert!(norm.starts_with('/') && !norm.contains("//"));
                        assert!(segments(&norm).all(|s| s != "." && s != ".."));
                        assert!(!has_unreserved_escape(&norm), "{path:?} -> {norm:?}");
                        let again = normalize(&norm);
                        assert!(matches!(&again, Ok(Cow::Borrowed(x)) if *x == norm));
                    }
                    Err(_) => err += 1,
                }
            }
        }
        assert!(ok > 50_000 && err > 10_000, "ok {ok} err {err}");
    }

    /// xorshift64*: a small deterministic generator, so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33;
            usize::try_from(x).unwrap_or(0) % n
        }
    }

    #[test]
    fn random_paths_keep_invariants() {
        let pieces = [
            "/",
            "/",
            "/",
            ".",
            ".",
            "a",
            "b",
            "%",
            "2",
            "e",
            "E",
            "f",
            "F",
            "5",
            "c",
            "%2e",
            "%2E",
            "%2F",
            "%5c",
            "%41",
            "%7e",
            "%20",
            "%25",
            "%00",
            "\\",
            "\0",
            ";",
            "\u{e9}",
            "%C3",
            "%A9",
            "%C3%A9",
            "%E2%82%AC",
            "%C0%AE",
            "%FF",
            "..",
            "//",
            "*",
        ];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut seen = [0usize; 9];
        for _ in 0..50_000 {
            let mut p = String::new();
            if rng.below(10) != 0 {
                p.push('/');
            }
            for _ in 0..rng.below(16) {
                p.push_str(pieces[rng.below(pieces.len())]);
            }
            let slot = match normalize(&p) {
                Ok(n) => {
                    assert!(n.starts_with('/') && !n.contains("//"), "{p:?} -> {n:?}");
                    assert!(segments(&n).all(|s| s != "." && s != ".."), "{p:?}");
                    assert!(!has_unreserved_escape(&n), "{p:?} -> {n:?}");
                    assert!(n.len() <= p.len(), "{p:?} -> {n:?}");
                    assert_eq!(matches!(n, Cow::Borrowed(_)), n == p, "{p:?}");
                    let again = normalize(&n);
                    assert!(matches!(&again, Ok(Cow::Borrowed(x)) if *x == n), "{p:?}");
                    0
                }
                Err(e) => 1 + e as usize,
            };
            if let Some(s) = seen.get_mut(slot) {
                *s += 1;
            }
        }
        // Every outcome but TooLong was exercised.
        assert!(seen.iter().take(8).all(|&c| c > 0), "{seen:?}");
    }

    #[test]
    fn utf8_check_agrees_with_std() {
        // Random sequences of up to 4 bytes, then every 2-byte sequence, against std.
        let mut rng = Rng(7);
        for _ in 0..200_000 {
            let len = 1 + rng.below(4);
            let bytes: Vec<u8> = (0..len)
                .map(|_| u8::try_from(rng.below(256)).unwrap_or(0))
                .collect();
            let mut check = Utf8Check::default();
            let ours = bytes
                .iter()
                .try_for_each(|&b| check.push(b))
                .and_then(|()| check.finish());
            assert_eq!(
                ours.is_ok(),
                std::str::from_utf8(&bytes).is_ok(),
                "{bytes:02X?}"
            );
        }
        for b0 in 0x80..=0xFFu8 {
            for b1 in 0..=0xFFu8 {
                let mut check = Utf8Check::default();
                let ours = check
                    .push(b0)
                    .and_then(|()| check.push(b1))
                    .and_then(|()| check.finish());
                assert_eq!(
                    ours.is_ok(),
                    std::str::from_utf8(&[b0, b1]).is_ok(),
                    "{b0:02X} {b1:02X}"
                );
            }
        }
    }
}
