//! The inline proxy, front door 1. [`handle`] is the outer function (request id,
//! error -> response, access log, metrics); [`forward`] is the inner `?` chain:
//! 1. the connection's smuggling verdict and this request's framing (SPEC §4: 400);
//! 2. the decision ([`crate::decide`]): normalize, then the built-in endpoints
//!    (answered before route matching), then match, authenticate, authorize;
//! 3. [`rewrite`]: strip identity and hop-by-hop headers, set identity and forwarding
//!    headers, forward exactly the matched path (plus the query minus `query:` tokens);
//! 4. [`send`] to the route's upstream and stream the answer back.

use crate::app::{ConnInfo, Runtime};
use crate::auth::extract;
use crate::auth::issuer::Verified;
use crate::body::{ProxyBody, ReqBody};
use crate::decide::{self, Allow, HostSource, RequestFacts};
use crate::deny::{BadRequest, Denial};
use crate::host::RequestHost;
use crate::issuer::endpoint::Caller;
use crate::proxy::client::{self, Client};
use crate::proxy::outcome::Outcome;
use crate::proxy::{access, builtin, cors, headers, upgrade};
use crate::upstream::Target;
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderValue, Request, Response, Version};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// Handles one request end to end; never fails (errors become SPEC §4 responses).
pub async fn handle(
    rt: Arc<Runtime>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let started = Instant::now();
    let rid = headers::request_id(req.headers());
    let method = req.method().clone();
    let client = client::resolve(
        &rt.config.server.trusted_proxies,
        conn.peer.ip(),
        conn.tls,
        req.headers(),
    );
    let mut out = Outcome {
        log: crate::telemetry::access_enabled(),
        ..Outcome::default()
    };
    let user_agent = if out.log {
        crate::telemetry::user_agent(req.headers()).to_owned()
    } else {
        String::new()
    };
    let origin = req.headers().get(http::header::ORIGIN).cloned();
    // Request body bytes are counted only for the access line.
    let bytes_in = out.log.then(|| Arc::new(AtomicU64::new(0)));
    let req = req.map(|b| ReqBody::new(b, bytes_in.clone()));
    let span = crate::otel::server_span(crate::otel::Door::Proxy, &method, req.headers());
    let inner = forward(&rt, (&conn, &client), req, &rid, &mut out);
    let mut resp = match inner.instrument(span.clone()).await {
        Ok(r) => r,
        Err(d) => {
            out.decision = d.decision();
            d.response()
        }
    };
    resp.headers_mut()
        .insert(headers::X_REQUEST_ID.clone(), rid.clone());
    if let Some(routed) = out.route_idx.and_then(|i| rt.routes.get(i)) {
        if !out.preflight {
            cors::decorate(&routed.route, origin.as_ref(), &mut resp);
        }
    }
    let status = resp.status().as_u16();
    let routed = out.route_idx.and_then(|i| rt.routes.get(i));
    let route = out.builtin.or(routed.map(|r| r.route.name.as_str()));
    crate::otel::finish(&span, route, out.decision, status);
    match out.builtin {
        Some(label) => rt
            .counters
            .record_builtin(label, Some(&method), status, out.decision),
        None => rt
            .counters
            .record(out.route_idx, Some(&method), status, out.decision),
    }
    if !out.log {
        return Ok(resp);
    }
    let line = access::Line {
        request_id: rid.clone(),
        method: method.as_str().to_owned(),
        path: out.path.unwrap_or_default(),
        route: out.route.unwrap_or_default(),
        status,
        decision: out.decision,
        user: out.user.unwrap_or_default(),
        upstream: out.upstream.unwrap_or_default(),
        client: client.addr,
        user_agent,
        started,
        bytes_in,
    };
    Ok(resp.map(|b| b.on_finish(move |n| line.emit(n))))
}

async fn forward(
    rt: &Runtime,
    (conn, client): (&ConnInfo, &Client),
    req: Request<ReqBody>,
    rid: &HeaderValue,
    out: &mut Outcome,
) -> Result<Response<ProxyBody>, Denial> {
    let (parts, body) = req.into_parts();
    if conn.ambiguous {
        return Err(Denial::BadRequest(BadRequest::Smuggling));
    }
    reject_ambiguous_framing(&parts.headers)?;
    let facts = facts_of(&parts, client);
    let req = decide::normalize::normalize(&facts)?;
    if out.log {
        out.path = Some(req.path.clone().into_owned());
    }
    // Built-in endpoints (SPEC §2, §5, §10) are a front door of their own, answered
    // before route matching.
    if let (Some(doc), true) = (&rt.jwks, req.path == crate::issuer::JWKS_PATH) {
        return Ok(builtin::jwks(&parts.method, doc, out));
    }
    if let Some((ep, which)) = rt
        .endpoint
        .as_ref()
        .and_then(|ep| ep.builtin(&req.path).map(|w| (ep, w)))
    {
        let caller = Caller {
            peer: client.addr,
            tls: client.https,
            host: req.host.as_ref().map(RequestHost::as_str),
        };
        // Boxed, as the sign-in endpoints below: rare, and their state would
        // otherwise size every request's future (issue 20).
        let answer = builtin::token_endpoint(rt, ep, which, caller, (parts, body), out);
        return Ok(Box::pin(answer).await);
    }
    let engine = rt.engine();
    if let Some(answered) =
        builtin::login_or_preflight(rt, &engine, client, (&facts, &req), out).await
    {
        return answered;
    }
    // The decision's locals end with this block: the future that waits on the
    // upstream holds only what it needs (issue 20: smaller futures, fewer bytes moved).
    let (sending, session) = {
        let decision = decide::decide(&engine, &facts, &req).await;
        out.note(&decision);
        let session = decision.session;
        let allow = decision.verdict?;
        let (target, pq) = upstream_target(&allow, &req, out)?;
        let host = req.host;
        let edits = Edits {
            caller: decision.caller.as_deref(),
            host: host.as_ref(),
            rid,
            websocket: false,
            bearer: session.as_ref().and_then(|s| s.access_token.as_deref()),
            login_cookie: rt.login.as_ref().map(|l| l.config.cookie_name.as_str()),
        };
        let sending = hand_over(
            (conn, client),
            (parts, body),
            (&allow, target, pq),
            edits,
            out,
        );
        (sending, session)
    };
    let mut resp = sending.await?;
    // A refreshed session's cookie goes back with this response (SPEC §9).
    for c in session.iter().flat_map(|s| &s.set_cookie) {
        resp.headers_mut()
            .append(http::header::SET_COOKIE, c.clone());
    }
    Ok(resp)
}

/// What the decision reads of a request on the main listener: its own method, URI,
/// headers, and the client behind trusted proxies (SPEC §11).
fn facts_of<'a>(parts: &'a http::request::Parts, client: &Client) -> RequestFacts<'a> {
    RequestFacts {
        method: &parts.method,
        host: HostSource::Request {
            version: parts.version,
            uri: &parts.uri,
        },
        path: parts.uri.path(),
        query: parts.uri.query(),
        headers: &parts.headers,
        tls: client.https,
        client: client.addr,
    }
}

/// The allowed request's upstream and the path and query it is sent with: the
/// matched path under the upstream's prefix, the query minus `query:` tokens.
fn upstream_target<'r>(
    allow: &Allow<'r>,
    req: &decide::Normalized<'_>,
    out: &mut Outcome,
) -> Result<(&'r Target, String), Denial> {
    // A route without `upstream` serves forward-auth decisions only (SPEC §2).
    let target = allow.target.ok_or(Denial::NoRoute)?;
    out.decision = allow.label;
    if out.log {
        out.upstream = Some(target.name.clone());
    }
    let query = extract::strip_query(req.query, &allow.route.token_from);
    Ok((
        target,
        upstream_path(target.prefix(), &req.path, query.as_deref()),
    ))
}

/// Rewrites an allowed request ([`rewrite`]) and hands it to its upstream ([`send`]).
fn hand_over<'a>(
    (conn, client): (&'a ConnInfo, &Client),
    (mut parts, body): (http::request::Parts, ReqBody),
    (allow, target, pq): (&Allow<'_>, &'a Target, String),
    mut edits: Edits<'_>,
    out: &'a mut Outcome,
) -> impl std::future::Future<Output = Result<Response<ProxyBody>, Denial>> + Send + 'a {
    let ws_key = upgrade::websocket_key(&parts);
    edits.websocket = ws_key.is_some();
    rewrite(&mut parts, allow, (conn, client), &edits);
    super::send::send(
        target,
        parts,
        body,
        pq,
        (ws_key, conn.upgrades.as_ref()),
        out,
    )
}

/// What the rewrite sets beyond the route's rules.
struct Edits<'a> {
    /// The verified caller, whose identity headers are set.
    caller: Option<&'a Verified>,
    /// The normalized host, sent in `Host` and `X-Forwarded-Host`.
    host: Option<&'a RequestHost>,
    /// `X-Request-Id`.
    rid: &'a HeaderValue,
    /// The request is a WebSocket handshake (its `Upgrade` is kept).
    websocket: bool,
    /// A session's access token, sent as `Authorization: Bearer` (SPEC §9).
    bearer: Option<&'a str>,
    /// With `[login]`: its cookie name (those cookies stay here).
    login_cookie: Option<&'a str>,
}

/// Rewrites the request for the upstream (SPEC §4): identity and routing-override
/// headers stripped, hop-by-hop headers removed, HTTP/2 cookies joined, forwarding
/// headers, the caller's identity, `X-Request-Id`, and the normalized `Host`.
fn rewrite(
    parts: &mut http::request::Parts,
    allow: &Allow<'_>,
    (conn, client): (&ConnInfo, &Client),
    e: &Edits<'_>,
) {
    let (caller, host, rid) = (e.caller, e.host, e.rid);
    let h = &mut parts.headers;
    headers::strip_identity(h, allow.identity);
    headers::strip_hop_by_hop(h, e.websocket);
    if parts.version == Version::HTTP_2 {
        headers::join_cookies(h);
    }
    if let Some(name) = e.login_cookie {
        headers::strip_cookies(h, name);
    }
    headers::set_forwarded(h, &conn.peer_ip, client, host.map(RequestHost::value));
    if !allow.identity.forward_authorization {
        h.remove(AUTHORIZATION);
    } else if let Some(v) = e
        .bearer
        .and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok())
    {
        h.insert(AUTHORIZATION, v);
    }
    if let Some(v) = caller {
        for (name, value) in decide::identity::headers(allow.identity, v) {
            h.insert(name.clone(), value);
        }
    }
    if let Some((name, value)) = &allow.assertion {
        h.insert((*name).clone(), value.clone());
    }
    h.insert(headers::X_REQUEST_ID.clone(), rid.clone());
    // The Host the upstream sees is the host the route was matched on, normalized
    // (SPEC §2), whichever of `:authority`, the absolute-form target or `Host` named it.
    if let Some(rh) = host {
        h.insert(HOST, rh.value().clone());
    }
}

/// The upstream's prefix, the matched path, and the query minus `query:` tokens.
fn upstream_path(prefix: &str, path: &str, query: Option<&str>) -> String {
    let mut pq =
        String::with_capacity(prefix.len() + path.len() + query.map_or(0, |q| q.len() + 1));
    pq.push_str(prefix);
    pq.push_str(path);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    pq
}

/// Request smuggling shapes (RFC 9112 §6.3): `Content-Length` together with
/// `Transfer-Encoding`, or several `Content-Length` values, are refused with 400
/// rather than guessed at (hyper already refuses differing duplicates and unknown
/// transfer codings).
fn reject_ambiguous_framing(h: &http::HeaderMap) -> Result<(), Denial> {
    let cl = h.get_all(http::header::CONTENT_LENGTH).iter().count();
    if cl > 1 || (cl == 1 && h.contains_key(http::header::TRANSFER_ENCODING)) {
        return Err(Denial::BadRequest(BadRequest::Smuggling));
    }
    // `Transfer_Encoding` / `Content_Length`: meaningless to us, but CGI/WSGI-style
    // back ends fold `_` into `-` (HTTP_TRANSFER_ENCODING) and could frame by them.
    if h.keys().any(|k| {
        let k = k.as_str();
        k.contains('_')
            && matches!(
                k.replace('_', "-").as_str(),
                "transfer-encoding" | "content-length"
            )
    }) {
        return Err(Denial::BadRequest(BadRequest::Smuggling));
    }
    Ok(())
}
