//! The inline proxy's built-in answers, given before route matching: the token
//! endpoint and the JWKS document (SPEC §5, §10), the sign-in callback and logout
//! (SPEC §9), and CORS preflights of a route with `cors` (SPEC §11).

use super::outcome::Outcome;
use crate::app::Runtime;
use crate::body::{ProxyBody, ReqBody};
use crate::decide::{self, Engine, Normalized, RequestFacts};
use crate::deny::Denial;
use crate::host::RequestHost;
use crate::issuer::endpoint::Caller;
use crate::issuer::{Builtin, Endpoint};
use crate::proxy::client::Client;
use crate::proxy::cors;
use http::Response;

/// The sign-in callback or logout, or a CORS preflight: the answer, or `None` when
/// the request is neither (it goes on to the decision).
pub(super) async fn login_or_preflight(
    rt: &Runtime,
    engine: &Engine<'_>,
    client: &Client,
    (facts, req): (&RequestFacts<'_>, &Normalized<'_>),
    out: &mut Outcome,
) -> Option<Result<Response<ProxyBody>, Denial>> {
    // The sign-in callback and logout (SPEC §9).
    if let Some((login, which)) = rt
        .login
        .as_ref()
        .and_then(|l| l.endpoint(&req.path).map(|w| (l, w)))
    {
        out.route = Some(which.name().to_owned());
        out.builtin = Some(which.name());
        out.decision = "login";
        let host = req.host.as_ref().map(RequestHost::as_str);
        // Boxed: rare, and its state (the code exchange) would otherwise size every
        // request's future (issue 20).
        let served = Box::pin(crate::login::serve(
            login,
            &rt.verifier,
            which,
            (facts.method, facts.headers, req.query, client.https),
            host,
        ))
        .await;
        let (resp, user) = match served {
            Ok(s) => s,
            Err(d) => return Some(Err(d)),
        };
        out.user = user;
        return Some(Ok(resp));
    }
    if let Some(p) = decide::cors::preflight(engine, facts, req) {
        out.route_idx = Some(p.matched.index);
        out.preflight = true;
        if out.log {
            out.route = Some(p.matched.route.name.clone());
        }
        let (resp, decision) = cors::answer(&p);
        out.decision = decision;
        return Some(Ok(resp));
    }
    None
}

/// Answers a built-in endpoint of the token issuer (SPEC §5).
pub(super) async fn token_endpoint(
    rt: &Runtime,
    ep: &Endpoint,
    which: Builtin,
    caller: Caller<'_>,
    (parts, body): (http::request::Parts, ReqBody),
    out: &mut Outcome,
) -> Response<ProxyBody> {
    out.route = Some(which.name().to_owned());
    out.builtin = Some(which.name());
    let (resp, served) =
        crate::issuer::endpoint::serve(ep, &rt.verifier, which, caller, parts, body).await;
    // One decision label for the built-ins (the route label says which one; logins
    // are counted by result in portcullis_logins_total); the finer outcome goes to
    // the debug log.
    out.decision = "token_endpoint";
    tracing::debug!(target: "issuer", outcome = served.decision, "built-in endpoint");
    out.user = served.user;
    resp
}

/// `GET /.well-known/jwks.json`: the keys of the token endpoint and of the identity
/// assertions (SPEC §5, §10).
pub(super) fn jwks(method: &http::Method, doc: &str, out: &mut Outcome) -> Response<ProxyBody> {
    let which = Builtin::Jwks;
    out.route = Some(which.name().to_owned());
    out.builtin = Some(which.name());
    out.decision = "token_endpoint";
    if *method != http::Method::GET && *method != http::Method::HEAD {
        return crate::issuer::reply::method_not_allowed("GET, HEAD");
    }
    crate::issuer::reply::document(doc.to_owned())
}
