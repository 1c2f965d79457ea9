//! DPoP at the token endpoint (SPEC §10, RFC 9449 §5): a `/token` request with a
//! `DPoP` proof (`htm` POST, `htu` the endpoint's URL, no `ath`) gets an access
//! token bound to the proof key (`cnf.jkt`, `token_type: DPoP`), and the refresh
//! family is bound to the same key: the family id carries the key's thumbprint, so
//! every refresh of that family must come with a proof by that key.

use super::reply::GrantError;
use super::Endpoint;
use crate::auth::dpop::{self, htu, replay, Expect};
use crate::auth::verify::now_secs;
use http::HeaderMap;

/// The thumbprint of the request's valid proof key; `None` without a proof. `tls` and
/// `host` (normalized, port kept) give the endpoint's URL, the proof's `htu`.
pub(super) async fn proof_key(
    ep: &Endpoint,
    (tls, host): (bool, Option<&str>),
    headers: &HeaderMap,
) -> Result<Option<String>, GrantError> {
    let invalid = |_| GrantError::InvalidDpopProof;
    let Some(proof) = dpop::header(headers).map_err(invalid)? else {
        return Ok(None);
    };
    let htu = htu::expected(tls, host.unwrap_or(""), &ep.path);
    let leeway = ep.issuer.leeway;
    let expect = Expect {
        method: "POST",
        htu: &htu,
        access_token: None,
        leeway,
    };
    let checked = dpop::check(proof, &expect, now_secs()).map_err(invalid)?;
    let fail_open = ep.fail_open;
    replay::remember(ep.shared.store.as_ref(), fail_open, &checked, leeway)
        .await
        .map_err(|e| match e {
            replay::Refused::Proof(_) => GrantError::InvalidDpopProof,
            replay::Refused::Unavailable => GrantError::Unavailable,
        })?;
    Ok(Some(checked.jkt))
}

/// A refresh family id bound to `jkt` (random hex, `.`, the thumbprint), or a plain one.
pub(super) fn family_id(jkt: Option<&str>) -> String {
    let id = crate::mint::random_id();
    match jkt {
        Some(k) => format!("{id}.{k}"),
        None => id,
    }
}

/// The key thumbprint a family is bound to, if any.
pub(super) fn family_jkt(family: &str) -> Option<&str> {
    family.split_once('.').map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn family_binding() {
        let f = family_id(Some("abc-_"));
        assert_eq!(family_jkt(&f), Some("abc-_"));
        assert_eq!(family_jkt(&family_id(None)), None);
    }
}
