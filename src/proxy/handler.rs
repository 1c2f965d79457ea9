//! The request path. [`handle`] is the outer function (request id, error ->
//! response, access log); [`forward`] is the inner `?` chain. Phases:
//! 1. validate and normalize the host ([`crate::host`]) and the path (SPEC §2; 400 on
//!    anything ambiguous);
//! 2. match the route on host, method and the normalized path;
//! 3. authenticate per the route's access and `token_from`;
//! 4. authorize scopes and claim rules;
//! 5. rewrite: strip identity and hop-by-hop headers, set identity and forwarding
//!    headers, forward exactly the matched path (plus the query minus `query:` tokens);
//! 6. send to the upstream and stream the answer back.

use crate::app::{ConnInfo, Runtime};
use crate::auth::extract;
use crate::auth::verify::Verified;
use crate::body::ProxyBody;
use crate::config::UpstreamKind;
use crate::deny::Denial;
use crate::host::RequestHost;
use crate::proxy::{echo, headers, upgrade, upstream};
use crate::routes::{Access, Route};
use http::header::{AUTHORIZATION, HOST};
use http::{HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;
use serde_json::Value;
use std::borrow::Cow;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Instant;

/// What the access log line reports.
#[derive(Default)]
struct Outcome {
    /// Whether an access line will be written (the strings below are filled only then).
    log: bool,
    route_idx: Option<usize>,
    /// The built-in endpoint answered (its `route` label), if one was.
    builtin: Option<&'static str>,
    path: Option<String>,
    route: Option<String>,
    user: Option<String>,
    upstream: Option<String>,
    decision: &'static str,
}

/// Handles one request end to end; never fails (errors become SPEC §4 responses).
pub async fn handle(
    rt: Arc<Runtime>,
    conn: ConnInfo,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    let start = Instant::now();
    let rid = headers::request_id(req.headers());
    let method = req.method().clone();
    let mut out = Outcome {
        log: tracing::enabled!(target: "access", tracing::Level::INFO),
        ..Outcome::default()
    };
    let mut resp = match forward(&rt, &conn, req, &rid, &mut out).await {
        Ok(r) => r,
        Err(d) => {
            out.decision = d.decision();
            d.response()
        }
    };
    resp.headers_mut()
        .insert(headers::X_REQUEST_ID.clone(), rid.clone());
    match out.builtin {
        Some(label) => rt
            .counters
            .record_builtin(label, resp.status().as_u16(), out.decision),
        None => rt
            .counters
            .record(out.route_idx, resp.status().as_u16(), out.decision),
    }
    if out.log {
        tracing::info!(
            target: "access",
            request_id = rid.to_str().unwrap_or(""),
            method = method.as_str(),
            path = out.path.as_deref().unwrap_or(""),
            route = out.route.as_deref().unwrap_or(""),
            status = resp.status().as_u16(),
            decision = out.decision,
            user = out.user.as_deref().unwrap_or(""),
            upstream = out.upstream.as_deref().unwrap_or(""),
            duration_ms = start.elapsed().as_secs_f64() * 1000.0,
        );
    }
    Ok(resp)
}

async fn forward(
    rt: &Runtime,
    conn: &ConnInfo,
    req: Request<Incoming>,
    rid: &HeaderValue,
    out: &mut Outcome,
) -> Result<Response<ProxyBody>, Denial> {
    let (mut parts, body) = req.into_parts();
    upgrade::reject_connect(&parts.method)?;
    if conn.ambiguous {
        return Err(Denial::BadRequest);
    }
    reject_ambiguous_framing(&parts.headers)?;
    // SPEC §2 "Host handling": one validated, normalized host for routing,
    // the built-in endpoints, `Host` and `X-Forwarded-Host`.
    let req_host = crate::host::of_request(parts.version, &parts.uri, &parts.headers)
        .map_err(|_| Denial::BadRequest)?;
    extract::check_authorization(&parts.headers).map_err(|_| Denial::BadRequest)?;
    let path = crate::path::normalize(parts.uri.path())
        .map_err(|_| Denial::BadRequest)?
        .into_owned();
    if out.log {
        out.path = Some(path.clone());
    }
    let host_full = req_host.as_ref().map(RequestHost::as_str);
    // Built-in endpoints (SPEC §2, §5) are answered before route matching.
    if let Some((ep, which)) = rt
        .endpoint
        .as_ref()
        .and_then(|ep| ep.builtin(&path).map(|w| (ep, w)))
    {
        out.route = Some(which.name().to_owned());
        out.builtin = Some(which.name());
        let (resp, served) =
            crate::issuer::endpoint::serve(rt, ep, which, conn, host_full, parts, body).await;
        // One decision label for the built-ins (the route label says which one; logins
        // are counted by result in portcullis_logins_total); the finer outcome goes to
        // the debug log.
        out.decision = "token_endpoint";
        tracing::debug!(target: "issuer", outcome = served.decision, "built-in endpoint");
        out.user = served.user;
        return Ok(resp);
    }
    let (route_idx, route) = rt
        .config
        .routes
        .find(
            req_host.as_ref().map(RequestHost::name),
            &parts.method,
            &path,
        )
        .ok_or(Denial::NoRoute)?;
    out.route_idx = Some(route_idx);
    if out.log {
        out.route = Some(route.name.clone());
    }

    let verified = authenticate(rt, route, &parts).await?;
    if let Some(v) = &verified {
        crate::issuer::check_revoked(rt, v).await?;
    }
    out.decision = match (&verified, route.access) {
        (Some(_), _) => "allowed",
        (None, Access::Public) => "public",
        (None, _) => "anonymous",
    };
    if let Some(v) = &verified {
        if out.log {
            out.user = Some(v.identity.clone());
        }
        authorize(route, v)?;
    }

    // Rewrite the request for the upstream.
    let identity = &rt.config.identity;
    let ws_key = upgrade::websocket_key(&parts);
    let websocket = ws_key.is_some();
    let client_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    let h = &mut parts.headers;
    headers::strip_identity(h, identity);
    headers::strip_hop_by_hop(h, websocket);
    if parts.version == Version::HTTP_2 {
        headers::join_cookies(h);
    }
    headers::set_forwarded(
        h,
        &conn.peer_ip,
        conn.tls,
        req_host.as_ref().map(RequestHost::value),
    );
    if !identity.forward_authorization {
        h.remove(AUTHORIZATION);
    }
    if let Some(v) = &verified {
        set_identity(h, rt, v);
    }
    h.insert(headers::X_REQUEST_ID.clone(), rid.clone());
    // The Host the upstream sees is the host the route was matched on, normalized
    // (SPEC §2), whichever of `:authority`, the absolute-form target or `Host` named it.
    if let Some(rh) = &req_host {
        h.insert(HOST, rh.value().clone());
    }

    let up_idx = route.upstream.ok_or(Denial::DenyRoute)?;
    let up = rt.config.upstreams.get(up_idx).ok_or(Denial::BadGateway)?;
    if out.log {
        out.upstream = Some(up.name.clone());
    }
    let query = extract::strip_query(parts.uri.query(), &route.token_from);
    let prefix = match &up.kind {
        UpstreamKind::Http { prefix, .. } => prefix.as_str(),
        UpstreamKind::Echo => "",
    };
    let mut pq = String::with_capacity(
        prefix.len() + path.len() + query.as_ref().map_or(0, |q| q.len() + 1),
    );
    pq.push_str(prefix);
    pq.push_str(&path);
    if let Some(q) = &query {
        pq.push('?');
        pq.push_str(q);
    }
    parts.version = Version::HTTP_11;
    match &up.kind {
        UpstreamKind::Echo => {
            parts.uri = Uri::try_from(pq).map_err(|_| Denial::BadRequest)?;
            Ok(echo::respond(Request::from_parts(parts, body)).await)
        }
        UpstreamKind::Http {
            scheme, authority, ..
        } => {
            parts.uri = Uri::builder()
                .scheme(scheme.clone())
                .authority(authority.clone())
                .path_and_query(pq)
                .build()
                .map_err(|_| Denial::BadRequest)?;
            let client = rt
                .clients
                .get(up_idx)
                .and_then(Option::as_ref)
                .ok_or(Denial::BadGateway)?;
            let started = Instant::now();
            let sent = upstream::send(client, Request::from_parts(parts, body), up.timeout).await;
            crate::metrics::upstream_seconds().record(started.elapsed().as_secs_f64());
            let mut resp = sent?;
            let switching = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
            if switching {
                // SPEC §4: only the WebSocket handshake that was asked for is spliced.
                if !ws_key.is_some_and(|k| upgrade::accepted(resp.headers(), &k)) {
                    tracing::warn!(upstream = %up.name, "upstream switched protocols without completing a WebSocket handshake: answered 502");
                    out.decision = Denial::BadGateway.decision();
                    return Ok(upgrade::refused());
                }
                if let Some(client_side) = client_upgrade {
                    splice(
                        client_side,
                        hyper::upgrade::on(&mut resp),
                        conn.upgrades.as_ref(),
                    );
                }
            }
            let (mut rparts, rbody) = resp.into_parts();
            headers::strip_hop_by_hop(&mut rparts.headers, switching);
            Ok(Response::from_parts(rparts, ProxyBody::stream(rbody)))
        }
    }
}

/// Request smuggling shapes (RFC 9112 §6.3): `Content-Length` together with
/// `Transfer-Encoding`, or several `Content-Length` values, are refused with 400
/// rather than guessed at (hyper already refuses differing duplicates and unknown
/// transfer codings).
fn reject_ambiguous_framing(h: &http::HeaderMap) -> Result<(), Denial> {
    let cl = h.get_all(http::header::CONTENT_LENGTH).iter().count();
    if cl > 1 || (cl == 1 && h.contains_key(http::header::TRANSFER_ENCODING)) {
        return Err(Denial::BadRequest);
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
        return Err(Denial::BadRequest);
    }
    Ok(())
}

/// Once both sides have switched protocols, copies bytes both ways until either
/// side closes, as a task of `tasks`, which the server's drain waits for.
fn splice(
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

/// Phase 3: the verified token, `None` when the route needs none and none was sent.
/// An unknown `kid` of a JWKS issuer may wait for a (rate-limited) key re-fetch.
async fn authenticate(
    rt: &Runtime,
    route: &Route,
    parts: &http::request::Parts,
) -> Result<Option<Arc<Verified>>, Denial> {
    match route.access {
        Access::Deny => Err(Denial::DenyRoute),
        Access::Public => Ok(None),
        Access::Optional | Access::Protected => {
            let token = extract::find_token(&route.token_from, &parts.headers, parts.uri.query());
            match token {
                None if route.access == Access::Optional => Ok(None),
                None => Err(Denial::NoToken),
                Some(t) => {
                    let started = Instant::now();
                    let v = rt.verifier.verify_async(&t).await;
                    crate::metrics::verify_seconds().record(started.elapsed().as_secs_f64());
                    v.map(Some).map_err(Denial::Invalid)
                }
            }
        }
    }
}

/// Phase 4: every route scope granted, every claim rule satisfied.
fn authorize(route: &Route, v: &Verified) -> Result<(), Denial> {
    let scopes_ok = route.scopes.iter().all(|s| v.scopes.iter().any(|g| g == s));
    let claims_ok = route
        .claims
        .iter()
        .all(|rule| match v.claims.get(&rule.claim) {
            Some(Value::Array(items)) => items.iter().any(|i| rule.values.contains(i)),
            Some(x) => rule.values.contains(x),
            None => false,
        });
    if scopes_ok && claims_ok {
        return Ok(());
    }
    Err(Denial::Insufficient(if scopes_ok {
        String::new()
    } else {
        route.scope_param.clone()
    }))
}

fn claim_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Array(a) => {
            let items: Vec<Cow<'_, str>> = a.iter().filter_map(claim_text).collect();
            Some(Cow::Owned(items.join(" ")))
        }
        _ => None,
    }
}

/// Sets the identity header and `claims_to_headers` (after the strip, so only ours remain).
fn set_identity(h: &mut http::HeaderMap, rt: &Runtime, v: &Verified) {
    let identity = &rt.config.identity;
    // verify() only accepts identities without control characters, so this cannot
    // fail; the header is stripped above either way.
    if let Ok(val) = HeaderValue::from_bytes(v.identity.as_bytes()) {
        h.insert(identity.header.clone(), val);
    }
    for (name, claim) in &identity.claims_to_headers {
        let text = if claim == "scope" && v.claims.get("scope").is_none() {
            Some(Cow::Owned(v.scopes.join(" ")))
        } else {
            v.claims.get(claim).and_then(claim_text)
        };
        // An empty claim adds no header (the client's was stripped above).
        let text = text.filter(|t| !t.is_empty());
        if let Some(val) = text.and_then(|t| HeaderValue::from_bytes(t.as_bytes()).ok()) {
            h.insert(name.clone(), val);
        }
    }
}
