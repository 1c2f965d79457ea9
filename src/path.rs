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
//! # Guarantees (checked by the unit tests in `path/`, and by fuzzing)
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
    if already_normal(raw.as_bytes()) {
        return Ok(Cow::Borrowed(raw));
    }
    checked(raw)
}

/// The full checks, decoding and resolution of [`normalize`].
fn checked(raw: &str) -> Result<Cow<'_, str>, PathError> {
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

/// The common case in one pass (issue 20): plain ASCII (no `%`, `\`, `;` or NUL), no
/// empty segment but a final one, no `.` or `..` segment. Such a path is what
/// [`normalize`]'s full checks would return unchanged. `raw` starts with `/`.
fn already_normal(raw: &[u8]) -> bool {
    let mut start = 1;
    for i in 1..=raw.len() {
        match raw.get(i).copied() {
            end @ (None | Some(b'/')) => {
                let seg = &raw[start..i];
                if (seg.is_empty() && end.is_some()) || seg == b"." || seg == b".." {
                    return false;
                }
                start = i + 1;
            }
            Some(b'%' | b'\\' | b';' | 0 | 0x80..=0xFF) => return false,
            Some(_) => {}
        }
    }
    true
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
pub(crate) mod tests;
