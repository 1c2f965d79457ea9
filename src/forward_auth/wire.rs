//! One decision request over HTTP (SPEC §8), whatever its path: the body refused,
//! the original request read by the listener's convention ([`super::convention`]),
//! decided by [`super::decide`], and the [`Decided`] put on the wire:
//!
//! - allowed: `200`, empty body, `X-Request-Id`, and **every** identity header: with
//!   the caller's value, or present and empty when there is none (public route,
//!   optional route without token), so an ingress copying them always overwrites what
//!   the client sent; and the `Set-Cookie` of a §9 session this decision refreshed;
//! - denied: exactly SPEC §4: status, `Content-Type: application/json`,
//!   `WWW-Authenticate` where the table has one, `{"detail": ...}`, `X-Request-Id`;
//!   or a §9 `302` with `Location` and `Set-Cookie` (a sign-in, a callback, logout).
//!
//! A decision request never has a body (ingresses send none): one that announces a
//! body is a 400, the body is never read, and on HTTP/1.1 the connection is closed
//! after the answer (`Connection: close`), so no unread bytes can be taken for a
//! next request.

use super::convention::{self, Asking};
use super::{Answer, Decided};
use crate::app::App;
use crate::body::BoxError;
use crate::config::Convention;
use crate::deny::{BadRequest, Denial, OriginalError};
use crate::proxy::request_id::{request_id, X_REQUEST_ID};
use bytes::Bytes;
use http::header::CONNECTION;
use http::{HeaderValue, Request, Response, Version};
use http_body::Body as _;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

/// The response body of the decision listener (a gRPC answer streams its own).
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// Any body, as the listener's [`Body`].
pub fn boxed<B>(b: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    b.map_err(Into::into).boxed_unsync()
}

/// Answers one request of the decision listener with the current runtime (reloads
/// apply); `started_with` is the convention the listener started with, used when a
/// reload dropped `[forward_auth]`.
pub async fn respond(
    app: &App,
    started_with: Convention,
    req: Request<Incoming>,
) -> Response<Body> {
    let rt = app.runtime.load_full();
    // gRPC (Envoy / Istio ext_authz `Authorization/Check`) is dispatched here, before
    // anything reads the request as a header convention.
    if super::grpc::is_check(&req) {
        return super::grpc::serve(rt, req).await.map(boxed);
    }
    let convention = rt
        .config
        .forward_auth
        .as_ref()
        .map_or(started_with, |f| f.headers);
    let (req, body) = req.into_parts();
    // Never read: only whether one was announced.
    let has_body = !(body.is_end_stream() || body.size_hint().exact() == Some(0));
    drop(body);
    let id = request_id(&req.headers);
    let method = req.method.as_str();
    let decided = if has_body {
        let why = Denial::BadRequest(BadRequest::Original(OriginalError::Body));
        super::refuse(&rt, method, &why, id)
    } else {
        let asking = Asking {
            method: &req.method,
            version: req.version,
            uri: &req.uri,
            headers: &req.headers,
        };
        match convention::read(convention, &asking) {
            Ok(named) => super::decide(&rt, &named.original(&req.headers), id).await,
            Err(why) => super::refuse(&rt, method, &why, id),
        }
    };
    let mut resp = response(decided);
    if has_body && req.version < Version::HTTP_2 {
        resp.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A decision as an HTTP answer (the module doc).
pub fn response(decided: Decided) -> Response<Body> {
    let empty = HeaderValue::from_static("");
    let mut resp = match decided.answer {
        Answer::Allow {
            identity,
            set_cookie,
        } => {
            let mut r = Response::new(boxed(Full::new(Bytes::new())));
            let h = r.headers_mut();
            for (name, value) in identity {
                h.insert(name, value.unwrap_or_else(|| empty.clone()));
            }
            for c in set_cookie {
                h.append(http::header::SET_COOKIE, c);
            }
            r
        }
        Answer::Deny {
            status,
            headers,
            body,
        } => {
            let mut r = Response::new(boxed(Full::new(body)));
            *r.status_mut() = status;
            *r.headers_mut() = headers;
            r
        }
    };
    resp.headers_mut()
        .insert(X_REQUEST_ID.clone(), decided.request_id);
    resp
}

/// The answer to a head the smuggling guard refused (hyper was handed a stand-in
/// request): the SPEC §4 answer with a fresh `X-Request-Id` and `Connection: close`,
/// counted and logged like a decision.
pub fn refused(app: &App, why: crate::server::smuggle::Refusal) -> Response<Body> {
    use crate::server::smuggle::Refusal;
    let d = match why {
        Refusal::BadRequest => Denial::BadRequest(BadRequest::Framing),
        Refusal::TooLarge => Denial::HeaderTooLarge,
        Refusal::UriTooLong => Denial::UriTooLong,
    };
    let rt = app.runtime.load();
    let id = crate::proxy::request_id::new_request_id();
    let mut resp = response(super::refuse(&rt, "", &d, id));
    resp.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}
