//! Phase 3, sender constraint (SPEC §10, RFC 9449 §7): after the token verified
//! (cache hit or not), the token's binding, the scheme it came with and the route's
//! `dpop` rule must agree, and a bound token needs a fresh valid proof by its key
//! on *this* request: `htm`, `htu` (`{scheme}://{Host}{path}`), `ath`, and a `jti`
//! never seen before in the `[state]` backend. The verified-token cache holds the
//! token's verification only; nothing of a proof is ever cached.

use super::{Engine, Normalized, RequestFacts};
use crate::auth::dpop::{self, htu, replay, Expect, ProofError};
use crate::auth::extract::Presented;
use crate::auth::issuer::Verified;
use crate::auth::verify::now_secs;
use crate::deny::{Denial, DpopDenial};
use crate::routes::Route;

/// A verified token used as its binding allows, with its proof when bound.
pub async fn check(
    engine: &Engine<'_>,
    route: &Route,
    (facts, req): (&RequestFacts<'_>, &Normalized<'_>),
    presented: &Presented<'_>,
    v: &Verified,
) -> Result<(), Denial> {
    let binding = |why| Err(Denial::Dpop(DpopDenial::Binding(why)));
    let jkt = match (dpop::bound_jkt(&v.claims), presented.dpop_scheme) {
        (None, false) if route.dpop_required => {
            return binding("this route requires a DPoP-bound token")
        }
        (None, false) => return Ok(()),
        (None, true) => return binding("DPoP scheme with a token that is not DPoP-bound"),
        (Some(_), false) => return binding("DPoP-bound token presented as a bearer token"),
        (Some(jkt), true) => jkt,
    };
    let proof_err = |e| Denial::Dpop(DpopDenial::Proof(e));
    let proof = dpop::header(facts.headers)
        .map_err(proof_err)?
        .ok_or(proof_err(ProofError::Missing))?;
    let host = req.host.as_ref().map_or("", |h| h.as_str());
    let htu = htu::expected(facts.tls, host, &req.path);
    let leeway = v.issuer.config.leeway;
    let expect = Expect {
        method: facts.method.as_str(),
        htu: &htu,
        access_token: Some(presented.token.as_ref()),
        leeway,
    };
    let checked = dpop::check(proof, &expect, now_secs()).map_err(proof_err)?;
    if checked.jkt != jkt {
        return Err(proof_err(ProofError::Binding));
    }
    let r = engine.revocations;
    replay::remember(r.store, r.fail_open, &checked, leeway)
        .await
        .map_err(|e| match e {
            replay::Refused::Proof(p) => proof_err(p),
            replay::Refused::Unavailable => Denial::Unavailable,
        })
}

/// A token refusal on a request that uses or needs DPoP is challenged with `DPoP`.
pub fn challenge_dpop(d: Denial, dpop: bool) -> Denial {
    match d {
        Denial::Invalid(e) if dpop => Denial::Dpop(DpopDenial::Token(e)),
        other => other,
    }
}
