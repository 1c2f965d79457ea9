//! CORS preflights (SPEC §11): an `OPTIONS` with `Origin` and
//! `Access-Control-Request-Method` is matched as the request it announces (the
//! requested method), and a route with `cors` answers it itself, without a token.
//! Without `cors` on that route the `OPTIONS` is judged like any other request.

use super::{match_route, Engine, Matched, Normalized, RequestFacts};
use crate::routes::cors::Cors;
use http::header::{ACCESS_CONTROL_REQUEST_METHOD, ORIGIN};
use http::{HeaderValue, Method};

/// A preflight for a route with `cors`: the route, its `cors`, and the `Origin`.
pub struct Preflight<'r, 'q> {
    /// The route it is for.
    pub matched: Matched<'r>,
    /// That route's `cors`.
    pub cors: &'r Cors,
    /// The request's `Origin`.
    pub origin: &'q HeaderValue,
}

/// The preflight `facts` is, when it is one for a route with `cors`.
pub fn preflight<'r, 'q>(
    engine: &Engine<'r>,
    facts: &RequestFacts<'q>,
    req: &Normalized<'_>,
) -> Option<Preflight<'r, 'q>> {
    if facts.method != Method::OPTIONS {
        return None;
    }
    let origin = facts.headers.get(ORIGIN)?;
    let asked = facts.headers.get(ACCESS_CONTROL_REQUEST_METHOD)?;
    let asked = Method::from_bytes(asked.as_bytes()).ok()?;
    let (index, routed) = match_route(engine.routes, &asked, req)?;
    let route = &routed.route;
    let cors = route.cors.as_deref()?;
    Some(Preflight {
        matched: Matched { index, route },
        cors,
        origin,
    })
}

/// The CORS headers for an actual response of `route` to a request with `origin`:
/// `Some` when the route has `cors` and lists the origin.
pub fn allowed<'r>(
    route: &'r crate::routes::Route,
    origin: Option<&HeaderValue>,
) -> Option<&'r Cors> {
    let cors = route.cors.as_deref()?;
    origin.is_some_and(|o| cors.allows(o)).then_some(cors)
}
