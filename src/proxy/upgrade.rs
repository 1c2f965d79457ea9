//! Tunnels (SPEC §2, §4). The one protocol switch passed on is the WebSocket opening
//! handshake (RFC 6455 §4.1): an HTTP/1.1 `GET` with `Connection: upgrade`,
//! `Upgrade: websocket` and one `Sec-WebSocket-Key`. Any other `Upgrade` (`h2c`,
//! `TLS/1.x`, anything) is removed by the header rewrite, so the upstream never sees
//! it. An upstream `101` is spliced only when it completes that handshake
//! (`Upgrade: websocket` and the `Sec-WebSocket-Accept` of RFC 6455 §4.2.2 for the key
//! sent); any other `101` is answered 502 and the client connection closed. So a
//! tunnel that could carry further, unauthenticated requests to the backend (h2c
//! smuggling) is never opened. `CONNECT` is refused by [`crate::decide::normalize`].

use crate::body::ProxyBody;
use crate::deny::Denial;
use base64::Engine as _;
use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, Version};

/// RFC 6455 §1.3: appended to the key before hashing.
const WEBSOCKET_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The client's `Sec-WebSocket-Key` when the request is a WebSocket opening
/// handshake; `None` for everything else, whose `Upgrade` is then removed.
pub fn websocket_key(parts: &http::request::Parts) -> Option<HeaderValue> {
    let h = &parts.headers;
    if parts.version != Version::HTTP_11
        || parts.method != Method::GET
        || !has_token(h, &CONNECTION, "upgrade")
        || !has_token(h, &UPGRADE, "websocket")
    {
        return None;
    }
    let mut keys = h.get_all(SEC_WEBSOCKET_KEY).iter();
    match (keys.next(), keys.next()) {
        (Some(k), None) => Some(k.clone()),
        _ => None,
    }
}

/// Whether an upstream `101` completes the WebSocket handshake for `key`: exactly
/// `Upgrade: websocket` and the one `Sec-WebSocket-Accept` that key calls for.
pub fn accepted(resp: &HeaderMap, key: &HeaderValue) -> bool {
    let one = |name: &HeaderName| {
        let mut it = resp.get_all(name).iter();
        match (it.next(), it.next()) {
            (Some(v), None) => Some(v),
            _ => None,
        }
    };
    one(&UPGRADE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"))
        && one(&SEC_WEBSOCKET_ACCEPT).is_some_and(|v| v.as_bytes() == accept_for(key).as_bytes())
}

/// The answer to an upstream `101` that is no accepted WebSocket handshake: 502 with
/// the SPEC §4 body, and the client connection closed (HTTP/1.1).
pub fn refused() -> Response<ProxyBody> {
    let mut r = Denial::BadGateway.response();
    r.headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    r
}

/// `Sec-WebSocket-Accept` for `key`: base64(SHA-1(key + GUID)) (RFC 6455 §4.2.2).
fn accept_for(key: &HeaderValue) -> String {
    use aws_lc_rs::digest;
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(key.as_bytes());
    ctx.update(WEBSOCKET_GUID);
    base64::engine::general_purpose::STANDARD.encode(ctx.finish())
}

/// Whether a comma-separated header lists `token` (ignoring case).
fn has_token(h: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    h.get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Once both sides have switched protocols, copies bytes both ways until either
/// side closes, as a task of `tasks`, which the server's drain waits for.
pub(crate) fn splice(
    client: hyper::upgrade::OnUpgrade,
    upstream: hyper::upgrade::OnUpgrade,
    tasks: Option<&tokio_util::task::TaskTracker>,
) {
    let Some(tasks) = tasks else {
        // The server passes `tasks` with every request hyper may switch protocols on.
        tracing::warn!(
            "protocol switch on a request the server did not expect to upgrade: not spliced"
        );
        return;
    };
    tasks.spawn(async move {
        let (c, u) = match tokio::try_join!(client, upstream) {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "upgrade failed");
                return;
            }
        };
        let mut c = hyper_util::rt::TokioIo::new(c);
        let mut u = hyper_util::rt::TokioIo::new(u);
        if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
            tracing::debug!(error = %e, "upgraded connection ended with an error");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: Method, version: Version, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder()
            .method(method)
            .version(version)
            .uri("/ws");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    const HANDSHAKE: &[(&str, &str)] = &[
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "WebSocket"),
        ("sec-websocket-key", KEY),
        ("sec-websocket-version", "13"),
    ];

    #[test]
    fn only_a_websocket_handshake_is_one() {
        let ok = parts(Method::GET, Version::HTTP_11, HANDSHAKE);
        assert_eq!(websocket_key(&ok).expect("handshake"), KEY);
        let with = |replace: (&str, &str)| {
            let h: Vec<(&str, &str)> = HANDSHAKE
                .iter()
                .map(|&(k, v)| if k == replace.0 { replace } else { (k, v) })
                .collect();
            parts(Method::GET, Version::HTTP_11, &h)
        };
        for p in [
            with(("upgrade", "h2c")),
            with(("upgrade", "TLS/1.2")),
            with(("connection", "keep-alive")),
            parts(Method::POST, Version::HTTP_11, HANDSHAKE),
            parts(Method::GET, Version::HTTP_10, HANDSHAKE),
            parts(Method::GET, Version::HTTP_2, HANDSHAKE),
        ] {
            assert!(websocket_key(&p).is_none(), "{p:?}");
        }
        let mut none = ok.clone();
        none.headers.remove(SEC_WEBSOCKET_KEY);
        assert!(websocket_key(&none).is_none());
        let mut two = ok;
        two.headers
            .append(SEC_WEBSOCKET_KEY, HeaderValue::from_static(KEY));
        assert!(websocket_key(&two).is_none());
    }

    #[test]
    fn accept_is_checked() {
        let key = HeaderValue::from_static(KEY);
        // RFC 6455 §1.3's example.
        assert_eq!(accept_for(&key), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let resp = |pairs: &[(&str, &str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.append(
                    HeaderName::from_bytes(k.as_bytes()).expect("name"),
                    HeaderValue::from_str(v).expect("value"),
                );
            }
            h
        };
        let good = ("sec-websocket-accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        assert!(accepted(&resp(&[("upgrade", "websocket"), good]), &key));
        assert!(accepted(&resp(&[("upgrade", "WebSocket"), good]), &key));
        for bad in [
            resp(&[("upgrade", "websocket")]),
            resp(&[("upgrade", "h2c"), good]),
            resp(&[good]),
            resp(&[("upgrade", "websocket"), ("upgrade", "h2c"), good]),
            resp(&[("upgrade", "websocket"), good, good]),
            resp(&[
                ("upgrade", "websocket"),
                ("sec-websocket-accept", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            ]),
        ] {
            assert!(!accepted(&bad, &key), "{bad:?}");
        }
    }
}
