//! Envoy / Istio `ext_authz` over gRPC (SPEC §8): `envoy.service.auth.v3.Authorization/
//! Check` on the decision listener, over the same h2c connections as the header
//! conventions. The `CheckRequest`'s `attributes.request.http` is the original request
//! ([`request`]); the decision is [`super::decide`], the one every front door calls;
//! the answer is a `CheckResponse` ([`response`]). Every `CheckRequest` gets a
//! `CheckResponse` (the RPC itself succeeds): one that names no judgeable request is a
//! §4 400 with INVALID_ARGUMENT, never an allow and never an RPC error (Envoy lets RPC
//! errors through under `failure_mode_allow`).

mod request;
mod response;

use crate::app::Runtime;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::HttpRequest;
use envoy_types::pb::envoy::service::auth::v3::authorization_server::{
    Authorization, AuthorizationServer,
};
use envoy_types::pb::envoy::service::auth::v3::{CheckRequest, CheckResponse};
use http::{HeaderValue, Method};
use http_body_util::BodyExt;
use std::sync::Arc;
use tonic::codegen::Service;
use tonic::Status;

/// A `CheckRequest` is a few KiB of headers; Envoy's `with_request_body` adds at most
/// its `max_request_bytes`. Larger messages are refused (RESOURCE_EXHAUSTED) before
/// they are decoded.
const MAX_MESSAGE: usize = 1024 * 1024;

/// The one gRPC method served: `envoy.service.auth.v3.Authorization/Check`.
pub const CHECK_PATH: &str = "/envoy.service.auth.v3.Authorization/Check";

/// Whether `req` is a call of [`CHECK_PATH`]: an HTTP/2 `POST` of that exact path with
/// `content-type: application/grpc` (with or without a `+proto`-style suffix or
/// parameters). Such requests go to [`serve`]; anything else on the decision listener,
/// gRPC-looking or not, is decided by its header convention (which fails closed), so no
/// stray gRPC answer (`200` with an error in `grpc-status`) reaches a caller that reads
/// only HTTP statuses.
pub fn is_check<B>(req: &http::Request<B>) -> bool {
    req.version() == http::Version::HTTP_2
        && req.method() == Method::POST
        && req.uri().path() == CHECK_PATH
        && is_grpc(req.headers())
}

/// `content-type: application/grpc`, `application/grpc+proto`, `application/grpc;...`.
fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            let ct = ct.trim_start();
            ct.get(..16)
                .is_some_and(|p| p.eq_ignore_ascii_case("application/grpc"))
                && matches!(ct.as_bytes().get(16), None | Some(b'+' | b';'))
        })
}

/// Answers one `Check` call ([`is_check`]) with runtime `rt`. The message must arrive
/// within `[server] header_timeout` (the slowloris guard of request heads: a
/// `CheckRequest` is the decision request's head) and be at most [`MAX_MESSAGE`].
///
/// A call that fails as an RPC (a message late, too large, or no `CheckRequest`) keeps
/// its `grpc-status` but gets HTTP status `400` instead of gRPC's usual `200`: gRPC
/// clients read the `grpc-status` (Envoy) or map the `400` to INTERNAL (grpc-go), and
/// a caller that reads only the HTTP status (Envoy's HTTP ext_authz sending an
/// original request to this path) sees a denial, never an allow.
pub async fn serve<B>(rt: Arc<Runtime>, req: http::Request<B>) -> http::Response<tonic::body::Body>
where
    B: http_body::Body + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    let deadline = rt.config.server.header_timeout;
    let (parts, body) = req.into_parts();
    let read = http_body_util::Limited::new(body, FRAME_PREFIX + MAX_MESSAGE).collect();
    let message = match tokio::time::timeout(deadline, read).await {
        Ok(Ok(m)) => m.to_bytes(),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return failed(Status::resource_exhausted("CheckRequest over 1 MiB"));
        }
        Ok(Err(_)) => return failed(Status::cancelled("CheckRequest not received")),
        Err(_) => {
            return failed(Status::deadline_exceeded(
                "CheckRequest not received within header_timeout",
            ));
        }
    };
    let req = http::Request::from_parts(parts, http_body_util::Full::new(message));
    let mut svc = AuthorizationServer::new(Check { rt }).max_decoding_message_size(MAX_MESSAGE);
    let resp = match svc.call(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    not_ok_is_400(resp)
}

/// The 5-byte prefix of a gRPC message (compressed flag, length).
const FRAME_PREFIX: usize = 5;

fn failed(status: Status) -> http::Response<tonic::body::Body> {
    tracing::debug!(code = ?status.code(), message = status.message(), "Check RPC failed");
    not_ok_is_400(status.into_http())
}

/// HTTP `400` for a response whose `grpc-status` is in its head and not OK (a
/// trailers-only error: every failure of a unary call).
fn not_ok_is_400<B>(mut resp: http::Response<B>) -> http::Response<B> {
    let failed = resp
        .headers()
        .get("grpc-status")
        .is_some_and(|code| code.as_bytes() != b"0");
    if failed {
        *resp.status_mut() = http::StatusCode::BAD_REQUEST;
    }
    resp
}

/// The `Authorization` service for one request's runtime.
struct Check {
    rt: Arc<Runtime>,
}

#[tonic::async_trait]
impl Authorization for Check {
    async fn check(
        &self,
        req: tonic::Request<CheckRequest>,
    ) -> Result<tonic::Response<CheckResponse>, tonic::Status> {
        let check = req.into_inner();
        let decided = match request::read(&check) {
            Ok(original) => {
                let id = request_id(&original.headers, &check);
                super::decide(&self.rt, &original.original(), id).await
            }
            Err(why) => {
                let id = request_id(&http::HeaderMap::new(), &check);
                super::refuse(&self.rt, original_method(&check), &why.denial(), id)
            }
        };
        Ok(tonic::Response::new(response::check_response(&decided)))
    }
}

/// The original method for the access line of a refused `CheckRequest`, else the
/// gRPC request's own (`POST`).
fn original_method(check: &CheckRequest) -> &str {
    http_attributes(check)
        .map(|h| h.method.as_str())
        .filter(|m| Method::from_bytes(m.as_bytes()).is_ok())
        .unwrap_or("POST")
}

fn http_attributes(check: &CheckRequest) -> Option<&HttpRequest> {
    check.attributes.as_ref()?.request.as_ref()?.http.as_ref()
}

/// The original request's `X-Request-Id` (SPEC §4), else Envoy's `id` for it, else a
/// fresh one.
fn request_id(headers: &http::HeaderMap, check: &CheckRequest) -> HeaderValue {
    use crate::proxy::request_id::{request_id, X_REQUEST_ID};
    if headers.contains_key(&X_REQUEST_ID) {
        return request_id(headers);
    }
    let envoy = http_attributes(check).and_then(|h| HeaderValue::from_str(&h.id).ok());
    let mut h = http::HeaderMap::new();
    if let Some(id) = envoy {
        h.insert(&X_REQUEST_ID, id);
    }
    request_id(&h)
}

#[cfg(test)]
mod serve_tests;
#[cfg(test)]
mod tests;
