//! The access log line of one request (SPEC §6, §11), written once its response body
//! is done ([`crate::body::ProxyBody::on_finish`]), so that `bytes_out` and
//! `duration_ms` cover the whole response; `bytes_in` is the request body bytes read
//! by then (0 for a request refused before its body was read).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The fields of one access line, owned (they outlive the handler).
pub struct Line {
    /// `X-Request-Id`.
    pub request_id: http::HeaderValue,
    /// The method.
    pub method: String,
    /// The normalized path (never the query).
    pub path: String,
    /// The route name or built-in label.
    pub route: String,
    /// The response status.
    pub status: u16,
    /// The decision label.
    pub decision: &'static str,
    /// The caller's identity.
    pub user: String,
    /// The upstream's name.
    pub upstream: String,
    /// The client address (SPEC §11).
    pub client: std::net::IpAddr,
    /// `User-Agent` ([`crate::telemetry::user_agent`]).
    pub user_agent: String,
    /// When the request arrived.
    pub started: Instant,
    /// Request body bytes read so far.
    pub bytes_in: Option<Arc<AtomicU64>>,
}

impl Line {
    /// Writes the line, with the response body's `bytes_out`.
    pub fn emit(self, bytes_out: u64) {
        crate::telemetry::AccessLine {
            request_id: &self.request_id,
            method: &self.method,
            client: Some(self.client),
            path: &self.path,
            route: &self.route,
            status: self.status,
            decision: self.decision,
            user: &self.user,
            upstream: &self.upstream,
            user_agent: &self.user_agent,
            bytes_in: self
                .bytes_in
                .as_ref()
                .map_or(0, |n| n.load(Ordering::Relaxed)),
            bytes_out,
            started: Some(self.started),
        }
        .write();
    }
}
