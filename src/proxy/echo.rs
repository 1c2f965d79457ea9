//! The built-in `echo:` upstream (SPEC §2): answers 200 with a JSON dump of the
//! request exactly as it would have been forwarded, so a demo needs no backend.

use crate::body::ProxyBody;
use crate::body::ReqBody;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response};
use http_body_util::BodyExt;
use serde_json::{Map, Value};

/// How much of the request body the echo shows.
pub const MAX_ECHO_BODY: usize = 64 * 1024;

/// Answers with a JSON description of `req`.
pub async fn respond(req: Request<ReqBody>) -> Response<ProxyBody> {
    let (parts, mut body) = req.into_parts();
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        // Credentials are shown redacted: the echo is a demo page, not a token oracle.
        let text = match name.as_str() {
            "authorization" | "proxy-authorization" => redact_auth(value.as_bytes()),
            "cookie" => "[redacted]".to_owned(),
            _ => String::from_utf8_lossy(value.as_bytes()).into_owned(),
        };
        let v = Value::String(text);
        match headers.get_mut(name.as_str()) {
            Some(Value::Array(a)) => a.push(v),
            Some(prev) => {
                let first = prev.take();
                *prev = Value::Array(vec![first, v]);
            }
            None => {
                headers.insert(name.as_str().to_owned(), v);
            }
        }
    }
    // Read at most MAX_ECHO_BODY bytes; the rest is drained without being kept.
    let mut kept = Vec::new();
    let mut total: u64 = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            let room = MAX_ECHO_BODY.saturating_sub(kept.len());
            kept.extend_from_slice(&data[..data.len().min(room)]);
        }
    }
    let dump = serde_json::json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "uri": parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        "version": "HTTP/1.1",
        "headers": headers,
        "body": String::from_utf8_lossy(&kept),
        "body_bytes": total,
    });
    let mut r = Response::new(ProxyBody::full(dump.to_string()));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn redact_auth(v: &[u8]) -> String {
    let s = String::from_utf8_lossy(v);
    match s.split_once(' ') {
        Some((scheme, _)) => format!("{scheme} [redacted]"),
        None => "[redacted]".to_owned(),
    }
}
