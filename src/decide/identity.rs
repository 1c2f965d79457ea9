//! The identity headers of an allowed request (SPEC §4): `[identity] header` from
//! the identity claim, then each `claims_to_headers` header from its claim, then the
//! §10 assertion header when `[identity.assertion]` is configured. Values are
//! computed from the verified token when a front door sets them; an empty or
//! unrepresentable claim yields no header (the client's copy is stripped anyway).

use super::Allow;
use crate::auth::issuer::Verified;
use crate::config::Identity;
use http::{HeaderName, HeaderValue};
use serde_json::Value;
use std::borrow::Cow;

/// Each identity header with the caller's value, in config order.
pub fn headers<'a>(
    identity: &'a Identity,
    v: &'a Verified,
) -> impl Iterator<Item = (&'a HeaderName, HeaderValue)> + 'a {
    // verify() only accepts identities without control characters, so this cannot
    // fail; the header is stripped by the front door either way.
    let main = v.identity_value.clone().map(|val| (&identity.header, val));
    let more = identity
        .claims_to_headers
        .iter()
        .filter_map(|(name, claim)| {
            let text = if claim == "scope" && v.claims.get("scope").is_none() {
                Some(Cow::Owned(v.scopes.join(" ")))
            } else {
                v.claims.get(claim).and_then(claim_text)
            };
            let text = text.filter(|t| !t.is_empty())?;
            HeaderValue::from_bytes(text.as_bytes())
                .ok()
                .map(|val| (name, val))
        });
    main.into_iter().chain(more)
}

/// Every identity header name in config order, each once, with the caller's value,
/// or `None` when it has none in this decision (no caller, or the claim is missing):
/// what a forward-auth answer carries (SPEC §8), so that an ingress copying these
/// headers always overwrites what the client sent.
pub fn all(
    identity: &Identity,
    caller: Option<&Verified>,
) -> Vec<(HeaderName, Option<HeaderValue>)> {
    let names =
        std::iter::once(&identity.header).chain(identity.claims_to_headers.iter().map(|(n, _)| n));
    let mut out: Vec<(HeaderName, Option<HeaderValue>)> = Vec::new();
    for name in names {
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name.clone(), None));
        }
    }
    if let Some(v) = caller {
        for (name, value) in headers(identity, v) {
            if let Some(slot) = out.iter_mut().find(|(n, _)| n == name) {
                slot.1 = Some(value);
            }
        }
    }
    out
}

/// [`all`] for an allowed decision, and the §10 assertion header when
/// `[identity.assertion]` is configured: the caller's assertion (the one
/// [`super::decide`] looked up or signed, [`Allow::assertion`]), or `None` without a
/// caller (public route, optional route without token). What a forward-auth answer
/// carries (SPEC §8). As on the inline proxy, the assertion is set last: it wins
/// over an identity header of the same name.
pub fn answer(
    allow: &Allow<'_>,
    caller: Option<&Verified>,
) -> Vec<(HeaderName, Option<HeaderValue>)> {
    let mut out = all(allow.identity, caller);
    if let Some(a) = &allow.identity.assertion {
        let value = allow.assertion.as_ref().map(|(_, v)| v.clone());
        match out.iter_mut().find(|(n, _)| *n == a.header) {
            Some(slot) => slot.1 = value,
            None => out.push((a.header.clone(), value)),
        }
    }
    out
}

fn claim_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Array(a) => {
            let items: Vec<Cow<'_, str>> = a.iter().filter_map(claim_text).collect();
            Some(Cow::Owned(items.join(" ")))
        }
        _ => None,
    }
}
