//! The decision (SPEC §2–§4): is this request allowed, and as whom? One function
//! from the request's parts ([`RequestFacts`]) to a [`Decision`], asked by every
//! front door: the inline proxy ([`crate::proxy::handler`]) today, `portcullis
//! explain` and the forward-auth listener (SPEC §8) with the very same code.
//!
//! Phases, each a function of its own:
//! 1. [`normalize::normalize`]: `CONNECT` refused, the host validated and normalized,
//!    at most one `Authorization`, the path normalized (SPEC §2; 400 naming the rule).
//!    A front door answers its built-in endpoints here, before route matching (§2, §5);
//! 2. [`match_route`]: the first route on host, method and normalized path (404);
//! 3. [`authenticate::authenticate`]: the route's access and token sources, then
//!    verification (cache, keys), revocation and, for the built-in issuer's tokens,
//!    the user's account (401, 403 `deny`, 503);
//!    on a `login = true` route without a token, the `[login]` session stands in
//!    ([`session::authenticate`]: the caller from its ID token, or a redirect to the
//!    provider for a browser navigation, SPEC §9);
//! 4. [`authorize::authorize`]: every route scope and claim rule (403).
//!
//! [`decide`] runs 2–4 on an [`Engine`] (references into the runtime of one config:
//! routes with their upstream handles, verifier, revocations, identity rules, the
//! users file) and returns the route matched, the caller (also on a denial, for the
//! access log) and the verdict. An allowed request's [`Allow`] borrows the route and
//! its upstream; the identity headers are computed from the verified token when set
//! ([`identity::headers`]), and the signed identity assertion, when configured, is
//! looked up (or signed) here for every front door ([`assertion`], SPEC §10); a
//! bound token's DPoP proof is checked in phase 3 ([`dpop`]). Nothing here allocates for an allowed request beyond what
//! verification itself needs: the normalized path is borrowed from the request unless
//! normalizing changed it, and no route, upstream or issuer is looked up by index.

pub mod assertion;
pub mod authenticate;
pub mod authorize;
pub mod cors;
pub mod dpop;
pub mod identity;
pub mod normalize;
pub mod session;

use crate::auth::issuer::Verified;
use crate::auth::revocation::Revocations;
use crate::auth::verify::Verifier;
use crate::config::Identity;
use crate::deny::Denial;
use crate::routes::{Access, Route};
use crate::upstream::Target;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, Version};
use std::sync::Arc;

pub use normalize::Normalized;

/// Where the request's host comes from.
#[derive(Debug, Clone, Copy)]
pub enum HostSource<'a> {
    /// A request as received: HTTP/2 `:authority` or an absolute-form target's
    /// authority, else `Host` (SPEC §2 "Host handling"); `headers` holds `Host`.
    Request {
        /// The request's HTTP version (`Host` is required on HTTP/1.1).
        version: Version,
        /// The request target.
        uri: &'a Uri,
    },
    /// Named by one header of a forward-auth convention (SPEC §8); `None`: no host.
    Named(Option<&'a HeaderValue>),
}

/// The parts of a request a decision reads; buildable without a hyper `Request`
/// (a forward-auth convention fills it from `X-Forwarded-*`).
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// The method.
    pub method: &'a Method,
    /// The host, not yet validated.
    pub host: HostSource<'a>,
    /// The path as sent (before the first `?`).
    pub path: &'a str,
    /// The query as sent, without the `?` (`Some("")` for a bare `?`).
    pub query: Option<&'a str>,
    /// The request headers (`Authorization`, cookies).
    pub headers: &'a HeaderMap,
    /// Whether the request counts as https: TLS, or `X-Forwarded-Proto: https` from a
    /// trusted proxy (SPEC §11; the scheme of cookies' `Secure` and `redirect_uri`,
    /// §9, and of `htu`, §10).
    pub tls: bool,
    /// The client address: the TCP peer, or from a trusted proxy the rightmost
    /// untrusted `X-Forwarded-For` entry (SPEC §11; [`crate::proxy::client`]).
    pub client: std::net::IpAddr,
}

/// The route a request matched.
#[derive(Clone, Copy)]
pub struct Matched<'r> {
    /// Its index in match order (metrics).
    pub index: usize,
    /// The route.
    pub route: &'r Route,
}

/// What was decided.
pub struct Decision<'r> {
    /// The route matched; `None` when none did (404).
    pub matched: Option<Matched<'r>>,
    /// The verified caller, when a token was presented and verified (kept on a
    /// scope denial too: the access log names the user).
    pub caller: Option<Arc<Verified>>,
    /// Allowed or denied.
    pub verdict: Result<Allow<'r>, Denial>,
    /// When a `[login]` session stood in for a token (SPEC §9): its access token and
    /// the cookies to set on the response.
    pub session: Option<session::SessionUse>,
}

/// An allowed request: where it goes and what to do to it on the way.
pub struct Allow<'r> {
    /// `allowed` (with a caller), `public`, or `anonymous` (optional, no token).
    pub label: &'static str,
    /// The route's upstream; `None` for a route without one (allowed only with
    /// `[forward_auth]`, SPEC §2: a decision front door needs none, the inline proxy
    /// answers such a route 404).
    pub target: Option<&'r Target>,
    /// The route (its `token_from` names the query parameters to remove:
    /// [`crate::auth::extract::strip_query`]).
    pub route: &'r Route,
    /// The identity headers: stripped from what the client sent, then set from the
    /// caller ([`identity::headers`]).
    pub identity: &'r Identity,
    /// The signed identity assertion for the caller, when `[identity.assertion]` is
    /// configured (SPEC §10), sent in [`assertion::Assertions::header`].
    pub assertion: Option<(&'r HeaderName, HeaderValue)>,
}

/// What a decision reads, borrowed from the runtime of one config
/// ([`crate::app::Runtime::engine`]): a few references, built per request for free.
#[derive(Clone, Copy)]
pub struct Engine<'r> {
    /// The routes in match order, each with its upstream.
    pub routes: &'r [Routed],
    /// Token verification, with its cache and the issuers' keys.
    pub verifier: &'r Verifier,
    /// The revocation check.
    pub revocations: Revocations<'r>,
    /// `[identity]`: the headers set from the caller's claims.
    pub identity: &'r Identity,
    /// With `[token_endpoint]`: its issuer's tokens must name an enabled user.
    pub accounts: Option<authenticate::Accounts<'r>>,
    /// A route without `upstream` answers 404 (the inline proxy, SPEC §2), unless it
    /// is a `deny` route; `false` for a decision front door (SPEC §8), which
    /// forwards nothing.
    pub needs_upstream: bool,
    /// With `[login]`: sessions stand in for tokens on `login = true` routes (§9).
    pub login: Option<&'r crate::login::Login>,
    /// With `[identity.assertion]`: the signer and its per-caller cache.
    pub assertions: Option<&'r assertion::Assertions>,
}

/// A route and its upstream, resolved at load time (`None` for a route without one:
/// `deny`, or any route when `[forward_auth]` is configured).
pub struct Routed {
    /// The compiled route.
    pub route: Route,
    /// Where an allowed request goes.
    pub target: Option<Arc<Target>>,
    /// The `aud` of its identity assertions: the upstream's `audience`, else the
    /// route's name (SPEC §10).
    pub audience: Arc<str>,
}

/// Phases 2–4 for a normalized request.
pub async fn decide<'r>(
    engine: &Engine<'r>,
    facts: &RequestFacts<'_>,
    req: &Normalized<'_>,
) -> Decision<'r> {
    let Some((index, routed)) = match_route(engine.routes, facts.method, req) else {
        return Decision {
            matched: None,
            caller: None,
            verdict: Err(Denial::NoRoute),
            session: None,
        };
    };
    let route = &routed.route;
    let matched = Some(Matched { index, route });
    if engine.needs_upstream && routed.target.is_none() && route.access != Access::Deny {
        return Decision {
            matched,
            caller: None,
            verdict: Err(Denial::NoRoute),
            session: None,
        };
    }
    let (caller, session) = match caller(engine, route, facts, req).await {
        Ok(c) => c,
        Err(d) => {
            return Decision {
                matched,
                caller: None,
                verdict: Err(d),
                session: None,
            }
        }
    };
    let verdict = allow(engine, routed, caller.as_deref());
    Decision {
        matched,
        caller,
        verdict,
        session,
    }
}

/// Phase 3: the token, when one is sent; else, on a `login = true` route, the
/// session ([`session::authenticate`]).
async fn caller(
    engine: &Engine<'_>,
    route: &Route,
    facts: &RequestFacts<'_>,
    req: &Normalized<'_>,
) -> Result<(Option<Arc<Verified>>, Option<session::SessionUse>), Denial> {
    let by_token = authenticate::authenticate(engine, route, facts, req).await;
    match (engine.login, &by_token) {
        // Boxed: the session path (a refresh may ask the provider) is rare, and its
        // state would otherwise size every request's future (issue 20).
        (Some(login), Ok(None) | Err(Denial::NoToken)) if route.login => {
            Box::pin(session::authenticate(login, route, facts, req))
                .await
                .map(|(c, s)| (c, Some(s)))
        }
        _ => by_token.map(|c| (c, None)),
    }
}

/// Phase 2: the first route matching host (name without port), method and path.
pub fn match_route<'r>(
    routes: &'r [Routed],
    method: &Method,
    req: &Normalized<'_>,
) -> Option<(usize, &'r Routed)> {
    let host = req.host.as_ref().map(crate::host::RequestHost::name);
    routes
        .iter()
        .enumerate()
        .find(|(_, r)| r.route.matches(host, method, &req.path))
}

/// Phase 4 and the verdict: authorized (with the route's upstream, if it has one).
fn allow<'r>(
    engine: &Engine<'r>,
    routed: &'r Routed,
    caller: Option<&Verified>,
) -> Result<Allow<'r>, Denial> {
    let route = &routed.route;
    let label = match (caller, route.access) {
        (Some(v), _) => {
            authorize::authorize(route, v)?;
            "allowed"
        }
        (None, Access::Public) => "public",
        (None, _) => "anonymous",
    };
    let assertion = match (engine.assertions, caller) {
        (Some(a), Some(v)) => {
            let value = a.get(v, &routed.audience).ok_or(Denial::Unavailable)?;
            Some((&a.header, value))
        }
        // Configured but no signer (its key is missing): fail closed.
        (None, Some(_)) if engine.identity.assertion.is_some() => return Err(Denial::Unavailable),
        _ => None,
    };
    Ok(Allow {
        label,
        target: routed.target.as_deref(),
        route,
        identity: engine.identity,
        assertion,
    })
}
