//! The hand-over to the upstream: the allowed, rewritten request is sent to its
//! [`Target`] (or the built-in echo) and the answer streamed back, a `101` spliced only
//! when it completes the WebSocket handshake that was asked for. Split from
//! [`super::handler`], which decides and rewrites.

use crate::body::{ProxyBody, ReqBody};
use crate::deny::{BadRequest, Denial};
use crate::proxy::outcome::Outcome;
use crate::proxy::{echo, headers, upgrade};
use crate::upstream::{self, Target, TargetKind};
use http::{HeaderValue, Request, Response, Uri, Version};
use std::time::Instant;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// Sends to the upstream and streams the answer back; a `101` is spliced only when
/// it completes the WebSocket handshake that was asked for (SPEC §4). The request is
/// built and handed to the upstream client here; the future returned holds only the
/// client's (boxed) response future and what the answer needs.
pub(super) fn send<'a>(
    target: &'a Target,
    mut parts: http::request::Parts,
    body: ReqBody,
    pq: String,
    (ws_key, upgrades): (Option<HeaderValue>, Option<&'a TaskTracker>),
    out: &'a mut Outcome,
) -> impl std::future::Future<Output = Result<Response<ProxyBody>, Denial>> + Send + 'a {
    fn target_err<E>(_: E) -> Denial {
        Denial::BadRequest(BadRequest::Target)
    }
    parts.version = Version::HTTP_11;
    let sent = match &target.kind {
        TargetKind::Http {
            client,
            scheme,
            authority,
            ..
        } => Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query(pq)
            .build()
            .map_err(target_err)
            .map(|uri| {
                parts.uri = uri;
                let client_upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
                let span = crate::otel::upstream_span(&target.name, &parts.method);
                crate::otel::inject(&span, &mut parts.headers);
                let req = Request::from_parts(parts, body);
                let upgrade = client_upgrade.is_some();
                let pending = upstream::send(client, req, target, upgrade).instrument(span.clone());
                Sending::Upstream(pending, client_upgrade, span)
            }),
        TargetKind::Echo => Uri::try_from(pq).map_err(target_err).map(|uri| {
            parts.uri = uri;
            Sending::Echo(Box::pin(echo::respond(Request::from_parts(parts, body))))
        }),
    };
    async move {
        let (pending, client_upgrade, span) = match sent? {
            Sending::Echo(answer) => return Ok(answer.await),
            Sending::Upstream(pending, client_upgrade, span) => (pending, client_upgrade, span),
        };
        let started = Instant::now();
        let sent = pending.await;
        crate::metrics::upstream_seconds().record(started.elapsed().as_secs_f64());
        crate::otel::answered(&span, sent.as_ref().ok().map(|r| r.status().as_u16()));
        let mut resp = sent?;
        let switching = resp.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        if switching {
            if !ws_key.is_some_and(|k| upgrade::accepted(resp.headers(), &k)) {
                tracing::warn!(upstream = %target.name, "upstream switched protocols without completing a WebSocket handshake: answered 502");
                out.decision = Denial::BadGateway.decision();
                return Ok(upgrade::refused());
            }
            if let Some(client_side) = client_upgrade {
                upgrade::splice(client_side, hyper::upgrade::on(&mut resp), upgrades);
            }
        }
        let (mut rparts, rbody) = resp.into_parts();
        headers::strip_hop_by_hop(&mut rparts.headers, switching);
        let body = match rbody {
            upstream::UpBody::Hyper(b) => ProxyBody::stream(b),
            upstream::UpBody::Raw(b) => ProxyBody::raw(b),
        };
        Ok(Response::from_parts(rparts, body))
    }
}

/// A request handed over: to the built-in echo, or to the upstream client (with the
/// client side of a protocol switch, if the request may switch).
enum Sending<E, U> {
    Echo(E),
    Upstream(U, Option<hyper::upgrade::OnUpgrade>, tracing::Span),
}
