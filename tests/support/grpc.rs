//! A real Envoy ext_authz gRPC client (tonic, with the `envoy-types` messages the
//! server uses) for the decision listener: connects over h2c, builds the
//! `CheckRequest` Envoy sends, and reads a `CheckResponse` back into plain values.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::HeaderValueOption;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{AttributeContext, CheckRequest, CheckResponse};
use envoy_types::pb::google::protobuf::BoolValue;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// gRPC codes the decisions use (google.rpc.Code).
pub const OK: i32 = 0;
pub const INVALID_ARGUMENT: i32 = 3;
pub const NOT_FOUND: i32 = 5;
pub const PERMISSION_DENIED: i32 = 7;
pub const UNAUTHENTICATED: i32 = 16;

/// An `Authorization` client on `addr` (h2c). The decision listener starts with the
/// main one; connecting is the readiness signal, retried for up to ten seconds.
pub async fn client(addr: SocketAddr) -> AuthorizationClient<Channel> {
    let deadline = Instant::now() + Duration::from_secs(10);
    let endpoint = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10));
    loop {
        match endpoint.connect().await {
            Ok(ch) => return AuthorizationClient::new(ch),
            Err(e) if Instant::now() > deadline => panic!("gRPC connect {addr}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
        }
    }
}

/// What Envoy sends for a request: method, path with query, host, lowercased
/// headers (with `:authority` and `:path` among them, as Envoy does), scheme.
pub fn check(method: &str, host: &str, path: &str, headers: &[(&str, &str)]) -> CheckRequest {
    let mut map: std::collections::HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
        .collect();
    map.insert(":authority".into(), host.into());
    map.insert(":path".into(), path.into());
    map.insert(":method".into(), method.into());
    with_http(HttpRequest {
        method: method.into(),
        path: path.into(),
        host: host.into(),
        scheme: "https".into(),
        protocol: "HTTP/1.1".into(),
        headers: map,
        ..Default::default()
    })
}

/// A `CheckRequest` around `http`.
pub fn with_http(http: HttpRequest) -> CheckRequest {
    CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(http),
                ..Default::default()
            }),
            ..Default::default()
        }),
    }
}

/// Sends `req`; the RPC itself must succeed (a decision is in the `CheckResponse`).
pub async fn ask(c: &mut AuthorizationClient<Channel>, req: CheckRequest) -> CheckResponse {
    match c.check(req).await {
        Ok(r) => r.into_inner(),
        Err(s) => panic!("Check RPC failed: {s:?}"),
    }
}

/// An allowed `CheckResponse`: the headers set (each an overwrite) and the names
/// removed.
pub fn allowed(r: &CheckResponse) -> (Vec<(String, String)>, Vec<String>) {
    assert_eq!(r.status.as_ref().map(|s| s.code), Some(OK), "{r:?}");
    let Some(HttpResponse::OkResponse(ok)) = &r.http_response else {
        panic!("allowed without ok_response: {r:?}");
    };
    let set = ok.headers.iter().map(overwrite).collect();
    (set, ok.headers_to_remove.clone())
}

/// A denied `CheckResponse`.
#[derive(Debug)]
pub struct Denied {
    /// `status.code`.
    pub code: i32,
    /// `denied_response.status.code`.
    pub status: i32,
    /// `denied_response.headers`, by lowercase name.
    pub headers: BTreeMap<String, String>,
    /// `denied_response.body`.
    pub body: String,
}

impl Denied {
    /// The header's value, if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Reads a denied `CheckResponse` (every header an overwrite, JSON content type).
pub fn denied(r: &CheckResponse) -> Denied {
    let code = r.status.as_ref().map_or(0, |s| s.code);
    assert_ne!(code, OK, "denied with status OK: {r:?}");
    let Some(HttpResponse::DeniedResponse(d)) = &r.http_response else {
        panic!("denied without denied_response: {r:?}");
    };
    let headers: BTreeMap<String, String> = d.headers.iter().map(overwrite).collect();
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some("application/json")
    );
    Denied {
        code,
        status: d.status.as_ref().map_or(0, |s| s.code),
        headers,
        body: d.body.clone(),
    }
}

/// `(key, value)` of an option that replaces the request's copy (append false for
/// older Envoys, OVERWRITE_IF_EXISTS_OR_ADD for newer ones).
#[allow(deprecated)]
fn overwrite(o: &HeaderValueOption) -> (String, String) {
    assert_eq!(o.append, Some(BoolValue { value: false }), "{o:?}");
    assert_eq!(
        o.append_action,
        HeaderAppendAction::OverwriteIfExistsOrAdd as i32,
        "{o:?}"
    );
    let h = o.header.as_ref().expect("header");
    assert!(h.raw_value.is_empty(), "Envoy reads `value`: {o:?}");
    (h.key.clone(), h.value.clone())
}
