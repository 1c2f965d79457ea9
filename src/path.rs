//! Request-path normalization (SPEC §2 "Path handling"), the most security-critical
//! code we own: the path a route is matched on is exactly the path forwarded, so a
//! backend can never be shown a path that a different route would have matched.
//!
//! Guarantees, for every input `p` where `normalize(p) == Ok(n)`:
//! - `n` starts with `/`, has no empty segment except a trailing slash, no `.` or
//!   `..` segment, and no percent-escape of an unreserved character (RFC 3986 §2.3);
//! - every other escape is kept exactly as sent (same hex case);
//! - `normalize(n) == Ok(n)` (idempotent), borrowed (no allocation).
//!
//! Refused (400): not origin-form, `%2F`/`%5C` (an encoded separator means different
//! things to different backends), a raw `\`, NUL, `..` above the root, a malformed
//! escape, and bytes that are not UTF-8 once every escape is decoded.
//!
//! Order: decode unreserved escapes, then collapse `//`, then resolve dot segments
//! (RFC 3986 §5.2.4), so `/a//..` is `/` and `/%2e%2e/` is `..`.

use std::borrow::Cow;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Does not start with `/` (e.g. `*`, empty, authority-form).
    #[error("path is not origin-form")]
    NotAbsolute,
    /// `%2F` or `%5C` in either hex case.
    #[error("encoded slash or backslash")]
    EncodedSeparator,
    /// A raw `\`.
    #[error("backslash in path")]
    Backslash,
    /// `%00` or a raw NUL.
    #[error("NUL byte in path")]
    Nul,
    /// `..` above the root.
    #[error("dot-segment above the root")]
    AboveRoot,
    /// Not UTF-8 once every escape is decoded.
    #[error("path is not valid UTF-8 once decoded")]
    NotUtf8,
    /// `%` not followed by two hex digits.
    #[error("malformed percent-escape")]
    BadEscape,
    /// Longer than [`MAX_PATH_LEN`].
    #[error("path too long")]
    TooLong,
}

/// Longest path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 8192;

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Checks the raw path and returns it with unreserved escapes decoded.
fn validate_and_decode(raw: &str) -> Result<Cow<'_, str>, PathError> {
    let b = raw.as_bytes();
    let mut decoded_all: Vec<u8> = Vec::new(); // only used when escapes exist
    let mut out: Option<String> = None;
    let mut any_escape = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'%' => {
                let (Some(h), Some(l)) = (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let v = h * 16 + l;
                match v {
                    b'/' | b'\\' => return Err(PathError::EncodedSeparator),
                    0 => return Err(PathError::Nul),
                    _ => {}
                }
                if !any_escape {
                    any_escape = true;
                    decoded_all.extend_from_slice(&b[..i]);
                }
                decoded_all.push(v);
                if unreserved(v) {
                    let o = out.get_or_insert_with(|| raw[..i].to_owned());
                    o.push(char::from(v));
                } else if let Some(o) = &mut out {
                    o.push_str(&raw[i..i + 3]);
                }
                i += 3;
                continue;
            }
            b'\\' => return Err(PathError::Backslash),
            0 => return Err(PathError::Nul),
            _ => {}
        }
        if any_escape {
            decoded_all.push(c);
        }
        if let Some(o) = &mut out {
            // `raw` is a &str, so copying byte runs between ASCII delimiters keeps UTF-8;
            // push the char starting here (multi-byte chars are copied whole).
            let ch_len = utf8_len(c);
            o.push_str(raw.get(i..i + ch_len).ok_or(PathError::NotUtf8)?);
            if any_escape {
                decoded_all.extend_from_slice(b.get(i + 1..i + ch_len).unwrap_or_default());
            }
            i += ch_len;
            continue;
        }
        if any_escape && c >= 0x80 {
            let ch_len = utf8_len(c);
            decoded_all.extend_from_slice(b.get(i + 1..i + ch_len).unwrap_or_default());
            i += ch_len;
            continue;
        }
        i += 1;
    }
    if any_escape && std::str::from_utf8(&decoded_all).is_err() {
        return Err(PathError::NotUtf8);
    }
    Ok(match out {
        Some(o) => Cow::Owned(o),
        None => Cow::Borrowed(raw),
    })
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Whether the path has `//`, or a `.`/`..` segment.
fn needs_resolution(p: &str) -> bool {
    p.contains("//") || p.split('/').skip(1).any(|s| s == "." || s == "..")
}

/// Normalizes the path of a request target (without its query).
pub fn normalize(raw: &str) -> Result<Cow<'_, str>, PathError> {
    if raw.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let decoded = validate_and_decode(raw)?;
    if !needs_resolution(&decoded) {
        return Ok(decoded);
    }
    let segs: Vec<&str> = decoded.split('/').skip(1).collect();
    let last = segs.len().saturating_sub(1);
    let mut out: Vec<&str> = Vec::with_capacity(segs.len());
    let mut trailing_slash = false;
    for (i, s) in segs.iter().enumerate() {
        let is_last = i == last;
        match *s {
            "" => {
                // Collapsed, except that a final empty segment is a trailing slash.
                trailing_slash = is_last;
            }
            "." => trailing_slash = true,
            ".." => {
                if out.pop().is_none() {
                    return Err(PathError::AboveRoot);
                }
                trailing_slash = true;
            }
            seg => {
                out.push(seg);
                trailing_slash = false;
            }
        }
    }
    let mut n = String::with_capacity(decoded.len());
    for s in &out {
        n.push('/');
        n.push_str(s);
    }
    if trailing_slash || out.is_empty() {
        n.push('/');
    }
    Ok(Cow::Owned(n))
}

/// The segments the route matcher sees: the normalized path without its leading `/`,
/// split on `/`. `/` -> `[""]`, `/a/` -> `["a", ""]`.
pub fn segments(normalized: &str) -> impl Iterator<Item = &str> {
    normalized
        .strip_prefix('/')
        .unwrap_or(normalized)
        .split('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corpus() {
        use PathError::*;
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("/", Ok("/")),
            ("/a", Ok("/a")),
            ("/a/", Ok("/a/")),
            ("/a/b", Ok("/a/b")),
            ("//a", Ok("/a")),
            ("//a///b//", Ok("/a/b/")),
            ("/public/../admin", Ok("/admin")),
            ("/public/%2e%2e/admin", Ok("/admin")),
            ("/public/%2E%2e/admin", Ok("/admin")),
            ("/public/.%2e/admin", Ok("/admin")),
            ("/%61dmin", Ok("/admin")),
            ("/%41", Ok("/A")),
            ("/%7E/%7e", Ok("/~/~")),
            ("/%2D%5F%2E", Ok("/-_.")),
            ("/./", Ok("/")),
            ("/.", Ok("/")),
            ("/a/.", Ok("/a/")),
            ("/a/..", Ok("/")),
            ("/a/./b/../c", Ok("/a/c")),
            ("/a//..", Ok("/")),
            ("/a/b/../../c/", Ok("/c/")),
            ("/a;b", Ok("/a;b")),
            ("/a%3Bb", Ok("/a%3Bb")),
            ("/a%3bb", Ok("/a%3bb")),
            ("/%20", Ok("/%20")),
            ("/%252e%252e", Ok("/%252e%252e")),
            ("/%25", Ok("/%25")),
            ("/%e2%82%ac", Ok("/%e2%82%ac")),
            ("/%C3%A9/%61", Ok("/%C3%A9/a")),
            ("/caf\u{e9}", Ok("/caf\u{e9}")),
            ("/caf\u{e9}/%61", Ok("/caf\u{e9}/a")),
            ("/a/...", Ok("/a/...")),
            ("/a/..b", Ok("/a/..b")),
            ("/..", Err(AboveRoot)),
            ("/../admin", Err(AboveRoot)),
            ("/a/../..", Err(AboveRoot)),
            ("/%2e%2e", Err(AboveRoot)),
            ("/public%2Fx", Err(EncodedSeparator)),
            ("/public/..%2fadmin", Err(EncodedSeparator)),
            ("/a%5Cb", Err(EncodedSeparator)),
            ("/a%5cb", Err(EncodedSeparator)),
            ("/a\\b", Err(Backslash)),
            ("/a%00", Err(Nul)),
            ("/a\0", Err(Nul)),
            ("/%", Err(BadEscape)),
            ("/%4", Err(BadEscape)),
            ("/%zz", Err(BadEscape)),
            ("/%%41", Err(BadEscape)),
            ("/%C0%AE%C0%AE", Err(NotUtf8)),
            ("/%C0%AF", Err(NotUtf8)),
            ("/%FF", Err(NotUtf8)),
            ("/%e2%82", Err(NotUtf8)),
            ("", Err(NotAbsolute)),
            ("*", Err(NotAbsolute)),
            ("a/b", Err(NotAbsolute)),
            ("http://x/a", Err(NotAbsolute)),
        ];
        for (input, want) in cases {
            let got = normalize(input);
            assert_eq!(got.as_deref().map_err(|e| *e), *want, "{input:?}");
        }
        assert_eq!(
            normalize(&format!("/{}", "a".repeat(MAX_PATH_LEN))),
            Err(TooLong)
        );
    }

    #[test]
    fn unchanged_paths_do_not_allocate() {
        for p in ["/", "/a/b", "/a/b/", "/%20x", "/caf\u{e9}"] {
            assert!(matches!(normalize(p), Ok(Cow::Borrowed(_))), "{p}");
        }
    }

    #[test]
    fn invariants_over_generated_paths() {
        let atoms = ["a", ".", "..", "%2e", "", "%41", "%20", "%2E%2e", "b;c"];
        let mut checked = 0;
        // Every path of up to 4 segments over the atoms.
        let n = atoms.len();
        for len in 1..=4u32 {
            for mut code in 0..n.pow(len) {
                let mut p = String::new();
                for _ in 0..len {
                    p.push('/');
                    p.push_str(atoms[code % n]);
                    code /= n;
                }
                if let Ok(norm) = normalize(&p) {
                    checked += 1;
                    let again = normalize(&norm);
                    assert!(
                        matches!(&again, Ok(Cow::Borrowed(x)) if *x == norm),
                        "{p:?} -> {norm:?} -> {again:?}"
                    );
                    assert!(norm.starts_with('/'));
                    assert!(!norm.contains("//"), "{p:?} -> {norm:?}");
                    for s in segments(&norm) {
                        assert!(s != "." && s != "..", "{p:?} -> {norm:?}");
                    }
                    for esc in ["%2e", "%2E", "%41"] {
                        assert!(!norm.contains(esc), "{p:?} -> {norm:?}");
                    }
                }
            }
        }
        assert!(checked > 1000);
    }

    #[test]
    fn segment_split() {
        assert_eq!(segments("/").collect::<Vec<_>>(), vec![""]);
        assert_eq!(segments("/a").collect::<Vec<_>>(), vec!["a"]);
        assert_eq!(segments("/a/").collect::<Vec<_>>(), vec!["a", ""]);
        assert_eq!(segments("/a/b").collect::<Vec<_>>(), vec!["a", "b"]);
    }
}
