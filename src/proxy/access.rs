//! The access log line of one request (SPEC §6, §11), written once its response body
//! is done ([`crate::body::ProxyBody::on_finish`]), so that `bytes_out` and
//! `duration_ms` cover the whole response; `bytes_in` is the request body bytes read
//! by then (0 for a request refused before its body was read).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Longest `user_agent` logged (longer ones are cut at a character boundary).
const MAX_USER_AGENT: usize = 256;

/// The fields of one access line, owned (they outlive the handler).
pub struct Line {
    /// `X-Request-Id`.
    pub request_id: String,
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
    pub client: String,
    /// `User-Agent`, cut to [`MAX_USER_AGENT`] bytes.
    pub user_agent: String,
    /// When the request arrived.
    pub started: Instant,
    /// Request body bytes read so far.
    pub bytes_in: Arc<AtomicU64>,
}

/// `User-Agent` as logged: visible ASCII only (else empty), at most
/// [`MAX_USER_AGENT`] bytes.
pub fn user_agent(h: &http::HeaderMap) -> String {
    let ua = h
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ua.get(..MAX_USER_AGENT.min(ua.len()))
        .unwrap_or_default()
        .to_owned()
}

impl Line {
    /// Writes the line, with the response body's `bytes_out`.
    pub fn emit(self, bytes_out: u64) {
        tracing::info!(
            target: "access",
            request_id = self.request_id,
            method = self.method,
            path = self.path,
            route = self.route,
            status = self.status,
            decision = self.decision,
            user = self.user,
            upstream = self.upstream,
            client = self.client,
            user_agent = self.user_agent,
            bytes_in = self.bytes_in.load(Ordering::Relaxed),
            bytes_out,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
        );
    }
}
