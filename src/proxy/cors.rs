//! CORS on the inline proxy (SPEC §11): a preflight for a route with `cors` is
//! answered here (`204` with the CORS headers for a listed origin, `403` without
//! them for another), and actual responses to a listed origin, denials included,
//! get `Access-Control-Allow-Origin`, `Vary: Origin` and, when set,
//! `-Allow-Credentials` ([`decorate`]).

use crate::body::ProxyBody;
use crate::decide::cors::Preflight;
use crate::deny::Denial;
use crate::routes::Route;
use http::{HeaderValue, Response, StatusCode};

/// The answer to a preflight, and its decision label.
pub fn answer(p: &Preflight<'_, '_>) -> (Response<ProxyBody>, &'static str) {
    if !p.cors.allows(p.origin) {
        return (Denial::DenyRoute.response(), "denied_cors_origin");
    }
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = StatusCode::NO_CONTENT;
    p.cors.preflight(p.origin, resp.headers_mut());
    (resp, "cors_preflight")
}

/// Adds the actual-response CORS headers when `route` has `cors` listing `origin`.
pub fn decorate(route: &Route, origin: Option<&HeaderValue>, resp: &mut Response<ProxyBody>) {
    if let (Some(cors), Some(o)) = (crate::decide::cors::allowed(route, origin), origin) {
        cors.actual(o, resp.headers_mut());
    }
}
