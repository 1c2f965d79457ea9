//! `[identity.assertion]` -> [`Assertion`] (SPEC §10): its header joins the identity
//! headers (client copies stripped), its issuer must hold an asymmetric private key
//! (RS256, ES256, EdDSA) and must not also be the `[token_endpoint] issuer` (an
//! assertion must never pass as an access token), and its ttl has a floor.

use super::issuers::Issuers;
use super::{dur, Cx};
use crate::config::file::RawAssertion;
use crate::config::{Assertion, Identity, TokenEndpoint};
use crate::defaults;
use http::header::HeaderName;
use jsonwebtoken::Algorithm;
use toml::Spanned;

/// Compiles the table into `identity` (reported problems leave it without one).
pub(super) fn compile(
    cx: &mut Cx<'_>,
    raw: Spanned<RawAssertion>,
    issuers: &Issuers,
    token_endpoint: Option<&crate::config::TokenEndpoint>,
    identity: &mut Identity,
) {
    let span = raw.span();
    let raw = raw.into_inner();
    let header = match &raw.header {
        Some(h) => cx.header_name(h.get_ref(), h.span()),
        None => Some(HeaderName::from_static(defaults::ASSERTION_HEADER)),
    };
    let issuer = signing_issuer(cx, &raw, issuers, token_endpoint);
    let ttl = dur(raw.ttl, defaults::ASSERTION_TTL);
    if ttl < defaults::ASSERTION_TTL_MIN {
        cx.rep.at(
            span,
            format!(
                "`[identity.assertion] ttl` must be at least {}s",
                defaults::ASSERTION_TTL_MIN.as_secs()
            ),
        );
        return;
    }
    let (Some(header), Some(issuer)) = (header, issuer) else {
        return;
    };
    let folded = header.as_str().replace('_', "-");
    if !identity.strip.contains(&folded) {
        identity.strip.push(folded);
        identity.strip.sort();
    }
    identity.assertion = Some(Assertion {
        header,
        issuer,
        ttl,
    });
}

/// The index of the signing issuer: one with an RS256, ES256 or EdDSA private key,
/// not the token endpoint's.
fn signing_issuer(
    cx: &mut Cx<'_>,
    raw: &RawAssertion,
    issuers: &Issuers,
    token_endpoint: Option<&TokenEndpoint>,
) -> Option<usize> {
    let name: &str = raw.issuer.get_ref();
    let at = raw.issuer.span();
    let Some(idx) = issuers.list.iter().position(|i| i.name == name) else {
        if !issuers.maybe_broken(name) {
            cx.rep.at(
                at,
                format!("unknown issuer `{name}` (no [[issuers]] has this name)"),
            );
        }
        return None;
    };
    if token_endpoint.is_some_and(|t| t.issuer == idx) {
        cx.rep.at(
            at,
            format!("issuer `{name}` signs the token endpoint's tokens: the assertion issuer must be another `[[issuers]]` entry (an assertion must never pass as an access token)"),
        );
        return None;
    }
    if issuers.pending.iter().any(|p| p == name) {
        return Some(idx);
    }
    let fits = issuers
        .list
        .get(idx)
        .and_then(|i| i.signing.as_ref())
        .is_some_and(|s| {
            s.public_jwk.is_some()
                && matches!(
                    s.alg,
                    Algorithm::RS256 | Algorithm::ES256 | Algorithm::EdDSA
                )
        });
    if !fits {
        cx.rep.at(
            at,
            format!("issuer `{name}` cannot sign assertions: give it a `private_key` (RSA for RS256, EC P-256 for ES256, or Ed25519)"),
        );
        return None;
    }
    Some(idx)
}
