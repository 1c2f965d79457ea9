//! The request host (SPEC §2 "Host handling"): validated once, normalized once, and
//! that one value is what host-scoped routes match and what the upstream is sent in
//! `Host` and `X-Forwarded-Host`. A backend's virtual hosts (nginx `server_name`,
//! which also ignores case and a trailing dot) therefore see the host that was
//! matched, never a spelling that skipped a `deny` route.
//!
//! # What [`parse`] accepts (RFC 3986 §3.2.2 and §3.2.3)
//! `host [":" port]` where `host` is
//! - an IP literal: `[` IPv6address `]` (no zone id, no IPvFuture), or
//! - a reg-name restricted to the DNS-style subset ALPHA / DIGIT / `-` / `.` / `_`
//!   (IPv4 dotted-decimal is one of these), of non-empty labels, optionally ending
//!   in one `.` (the fully-qualified spelling);
//!
//! and `port` is 1–5 digits, at most 65535. Everything else is refused: userinfo
//! (`@`), a path, query or fragment (`/`, `\`, `?`, `#`), a comma or any other
//! sub-delimiter, percent-encoding, whitespace, non-ASCII bytes, an empty host, an
//! empty port, a second port, an empty label (`a..b`, `host..`, `.a`).
//!
//! # Normalization
//! ASCII case is folded and one trailing `.` of the name is removed; the port is
//! kept as sent. [`Host::name`] is the normalized name (port removed), what routes
//! match; [`Host::as_str`] is the normalized `name[:port]`, what is forwarded.
//!
//! # Guarantees (table tests in `host/tests.rs`; fuzzed by `fuzz_targets/host_parse.rs`)
//! For every input with `parse(raw) == Ok(h)`:
//! - `h.as_str()` is ASCII, non-empty, free of upper case and of `@ / \ ? # , %`,
//!   whitespace and control bytes, and `h.name()` neither ends in `.` nor has an
//!   empty label;
//! - `parse(h.as_str())` is `Ok`, equal, and borrowed (idempotent); `parse(raw)` is
//!   borrowed exactly when `raw` was already normalized, so the common request costs
//!   no allocation.
//!
//! [`of_request`] picks the source per version (`:authority` or the absolute-form
//! target, else `Host`) and refuses several `Host` fields, a missing `Host` on
//! HTTP/1.1 (RFC 9112 §3.2) and a `Host` that disagrees with the target's authority.
//! No `unsafe`, no `unwrap`, no indexing that input could push out of bounds.

use http::header::HOST;
use http::{HeaderMap, HeaderValue, Uri, Version};
use std::borrow::Cow;
use std::net::Ipv6Addr;

/// Why a host was refused; every variant is answered 400 (SPEC §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    /// No host at all (`""`, `:80`, `.`).
    #[error("empty host")]
    Empty,
    /// `user@host`.
    #[error("userinfo in host")]
    Userinfo,
    /// `/`, `\`, `?` or `#`: a path, query or fragment.
    #[error("path in host")]
    Path,
    /// A byte outside the accepted set (comma, `%`, space, non-ASCII, ...).
    #[error("character not allowed in a host")]
    BadChar,
    /// `a..b`, `.a`, `host..`.
    #[error("empty label in host")]
    EmptyLabel,
    /// Empty, non-numeric, longer than 5 digits, above 65535, or a second port.
    #[error("invalid port")]
    BadPort,
    /// `[...]` that is not an IPv6 address, or text after `]` other than a port.
    #[error("invalid IP literal")]
    BadIpLiteral,
    /// HTTP/1.1 without `Host`.
    #[error("missing Host")]
    Missing,
    /// More than one `Host` field.
    #[error("several Host fields")]
    Several,
    /// `:authority` (or the absolute-form target) and `Host` name different hosts.
    #[error("Host disagrees with the request target")]
    Disagree,
}

/// A validated, normalized host (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host<'a> {
    text: Cow<'a, str>,
    name_len: usize,
}

impl Host<'_> {
    /// The normalized `name[:port]`: what is forwarded in `Host` and `X-Forwarded-Host`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The normalized name without the port: what host-scoped routes match.
    pub fn name(&self) -> &str {
        self.text.get(..self.name_len).unwrap_or_default()
    }

    /// The port as sent, if any.
    pub fn port(&self) -> Option<&str> {
        self.text.get(self.name_len..)?.strip_prefix(':')
    }

    /// Whether the input was already normalized (no allocation was made).
    pub fn is_borrowed(&self) -> bool {
        matches!(self.text, Cow::Borrowed(_))
    }
}

/// Validates and normalizes an authority as sent in `Host` or `:authority`.
pub fn parse(raw: &[u8]) -> Result<Host<'_>, HostError> {
    if let Some(text) = plain_name(raw) {
        return Ok(Host {
            text: Cow::Borrowed(text),
            name_len: text.len(),
        });
    }
    checked(raw)
}

/// The full checks and normalization of [`parse`].
fn checked(raw: &[u8]) -> Result<Host<'_>, HostError> {
    // One scan for the bytes that are never part of a host, so that
    // `evil@secure.example.com` reports userinfo whatever follows.
    for &b in raw {
        match b {
            b'@' => return Err(HostError::Userinfo),
            b'/' | b'\\' | b'?' | b'#' => return Err(HostError::Path),
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b':' | b'[' | b']' => {}
            _ => return Err(HostError::BadChar),
        }
    }
    // Every byte is now ASCII, so this cannot fail.
    let text = std::str::from_utf8(raw).map_err(|_| HostError::BadChar)?;
    let (name, port) = split_port(text)?;
    let bare = if let Some(inner) = name.strip_prefix('[') {
        let addr = inner.strip_suffix(']').ok_or(HostError::BadIpLiteral)?;
        addr.parse::<Ipv6Addr>()
            .map_err(|_| HostError::BadIpLiteral)?;
        name
    } else {
        if name.contains(['[', ']']) {
            return Err(HostError::BadIpLiteral);
        }
        let bare = name.strip_suffix('.').unwrap_or(name);
        if bare.is_empty() {
            return Err(HostError::Empty);
        }
        if bare.split('.').any(str::is_empty) {
            return Err(HostError::EmptyLabel);
        }
        bare
    };
    if let Some(p) = port {
        check_port(p)?;
    }
    Ok(normalized(text, name, bare, port))
}

/// The common case in one pass (issue 20): a lowercase name of letters, digits and
/// `-` in non-empty labels, no trailing dot, no port: already normal, as the full
/// checks of [`parse`] would find.
fn plain_name(raw: &[u8]) -> Option<&str> {
    let mut label = 0usize;
    for &b in raw {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'-' => label += 1,
            b'.' if label > 0 => label = 0,
            _ => return None,
        }
    }
    if label == 0 {
        return None; // empty, or a trailing dot
    }
    std::str::from_utf8(raw).ok()
}

/// `name[:port]` -> (name, port). The name ends at the first `:`, or after the `]`
/// of an IP literal; whatever follows must be `:` and the port (a second `:` is then
/// part of the port and refused there).
fn split_port(text: &str) -> Result<(&str, Option<&str>), HostError> {
    let at = if text.starts_with('[') {
        text.find(']')
            .map(|i| i + 1)
            .ok_or(HostError::BadIpLiteral)?
    } else {
        text.find(':').unwrap_or(text.len())
    };
    let (name, rest) = text.split_at_checked(at).ok_or(HostError::BadChar)?;
    if name.is_empty() {
        return Err(HostError::Empty);
    }
    if rest.is_empty() {
        return Ok((name, None));
    }
    rest.strip_prefix(':')
        .map(|port| (name, Some(port)))
        .ok_or(HostError::BadIpLiteral)
}

/// RFC 3986 §3.2.3 port, bounded: 1–5 digits, at most 65535.
fn check_port(p: &str) -> Result<(), HostError> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(HostError::BadPort);
    }
    match p.parse::<u32>() {
        Ok(n) if n <= 65535 => Ok(()),
        _ => Err(HostError::BadPort),
    }
}

/// Builds the result: borrowed when `name` is already `bare` and lower case.
fn normalized<'a>(text: &'a str, name: &str, bare: &str, port: Option<&str>) -> Host<'a> {
    if name.len() == bare.len() && !bare.bytes().any(|b| b.is_ascii_uppercase()) {
        return Host {
            text: Cow::Borrowed(text),
            name_len: name.len(),
        };
    }
    let mut s = String::with_capacity(text.len());
    s.push_str(bare);
    s.make_ascii_lowercase();
    if let Some(p) = port {
        s.push(':');
        s.push_str(p);
    }
    Host {
        text: Cow::Owned(s),
        name_len: bare.len(),
    }
}

/// The request's host, validated and normalized, as a value ready to forward.
#[derive(Debug, Clone)]
pub struct RequestHost {
    value: HeaderValue,
    name_len: usize,
}

impl RequestHost {
    /// The normalized `name[:port]` as a header value.
    pub fn value(&self) -> &HeaderValue {
        &self.value
    }

    /// The normalized `name[:port]`.
    pub fn as_str(&self) -> &str {
        // Built from a parsed host: visible ASCII only, so this never falls back.
        self.value.to_str().unwrap_or_default()
    }

    /// The normalized name without the port (what routes match).
    pub fn name(&self) -> &str {
        self.as_str().get(..self.name_len).unwrap_or_default()
    }
}

/// The host a request is for (SPEC §2): HTTP/2 `:authority` or an absolute-form
/// target's authority, else `Host`. `Ok(None)` only for HTTP/1.0 or HTTP/2 requests
/// that name no host at all (host-scoped routes then never match).
pub fn of_request(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<RequestHost>, HostError> {
    let mut fields = headers.get_all(HOST).iter();
    let field = fields.next();
    if fields.next().is_some() {
        return Err(HostError::Several);
    }
    let from_field = field.map(|v| parse(v.as_bytes())).transpose()?;
    let from_uri = uri
        .authority()
        .map(|a| parse(a.as_str().as_bytes()))
        .transpose()?;
    let chosen = match (from_uri, from_field) {
        (Some(u), Some(f)) if u.as_str() != f.as_str() => return Err(HostError::Disagree),
        // Equal: prefer the field, whose value can be reused as is.
        (_, Some(f)) => (f, field),
        (Some(_), None) | (None, None) if version == Version::HTTP_11 => {
            return Err(HostError::Missing)
        }
        (Some(u), None) => (u, None),
        (None, None) => return Ok(None),
    };
    let (host, original) = chosen;
    request_host(host, original).map(Some)
}

/// The host named by one header value (a forward-auth convention's `X-Forwarded-Host`,
/// SPEC §8), validated and normalized as [`of_request`] does.
pub fn of_value(value: &HeaderValue) -> Result<RequestHost, HostError> {
    request_host(parse(value.as_bytes())?, Some(value))
}

fn request_host(host: Host<'_>, original: Option<&HeaderValue>) -> Result<RequestHost, HostError> {
    let name_len = host.name_len;
    // A field already normal is shared (no copy); a normalized one moves its String.
    let value = match (host.text, original) {
        (Cow::Borrowed(_), Some(v)) => Ok(v.clone()),
        (Cow::Borrowed(t), None) => HeaderValue::from_str(t),
        (Cow::Owned(t), _) => HeaderValue::try_from(t),
    }
    .map_err(|_| HostError::BadChar)?;
    Ok(RequestHost { value, name_len })
}

#[cfg(test)]
mod tests;
