//! Front door 2 (SPEC §8): forward authentication, the decision API. An ingress that
//! forwards traffic itself (nginx `auth_request`, Traefik `ForwardAuth`, Caddy
//! `forward_auth`, Envoy / Istio `ext_authz`) asks portcullis "is this request
//! allowed, and as whom?"; portcullis decides and forwards nothing.
//!
//! Every wire this front door speaks reads the original request into an
//! [`Original`] and asks [`decide`], which runs the very decision the inline proxy
//! runs ([`crate::decide`]: normalize, match, authenticate, authorize) and turns it
//! into an [`Answer`] any wire can carry: `Allow` with every identity header (each
//! with its value, or none), or `Deny` with exactly the SPEC §4 status, headers and
//! JSON body. [`decide`] also counts the decision in `portcullis_requests_total` and
//! writes its access line (with `upstream` empty), so every wire is counted and
//! logged alike; a request refused before it names an original request is answered
//! by [`refuse`], counted and logged the same way.
//!
//! | file | owns |
//! |---|---|
//! | [`listener`] | the decision listener: accept, HTTP/1.1 + h2c, limits, drain |
//! | [`wire`] | one decision request over HTTP: body refused, convention read, answer on the wire |
//! | [`convention`] | the original request out of `x-forwarded`, `x-original` or `envoy` headers |
//! | [`login`] | the §9 callback and logout answered as decisions, with absolute `Location`s |

pub mod convention;
pub mod listener;
pub mod login;
pub mod wire;

use crate::app::Runtime;
use crate::decide::{self, Engine, HostSource, RequestFacts};
use crate::deny::Denial;
use crate::telemetry::{access_enabled, AccessLine};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use std::time::Instant;
use tracing::Instrument;

/// The original request, as a header convention or a gRPC `CheckRequest` names it.
#[derive(Debug, Clone, Copy)]
pub struct Original<'a> {
    /// The original method.
    pub method: &'a Method,
    /// The original host ([`HostSource::Named`] in decide): `None` = no host.
    pub host: Option<&'a HeaderValue>,
    /// The original path as sent (before the first `?`).
    pub path: &'a str,
    /// The original query, without `?`.
    pub query: Option<&'a str>,
    /// Headers the token sources read (`Authorization`, `Cookie`): the decision
    /// request's.
    pub headers: &'a HeaderMap,
    /// The original scheme was https.
    pub tls: bool,
}

/// One decision, ready to be put on any wire.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Allowed: every identity header (`[identity] header`, each `claims_to_headers`
    /// header, and the §10 assertion header when `[identity.assertion]` is
    /// configured: [`decide::identity::answer`]), `None` when it has no value in this
    /// decision (public route, optional route without token).
    Allow {
        /// The identity headers, in config order, each once.
        identity: Vec<(HeaderName, Option<HeaderValue>)>,
        /// `Set-Cookie` values for the client's response: a §9 session refreshed by
        /// this decision (Traefik `addAuthCookiesToResponse`, Envoy
        /// `response_headers_to_add`).
        set_cookie: Vec<HeaderValue>,
    },
    /// Denied: exactly SPEC §4: status, headers (`WWW-Authenticate`,
    /// `Content-Type`), JSON body; or a §9 `302` (`Location`, `Set-Cookie`, no body)
    /// for the ingress to pass to the client.
    Deny {
        /// The §4 status.
        status: StatusCode,
        /// `Content-Type` and, for a 401 / 403 of a token, `WWW-Authenticate`.
        headers: HeaderMap,
        /// `{"detail": "..."}`.
        body: Bytes,
    },
}

/// A decision and the request id it was made under.
#[derive(Debug, Clone)]
pub struct Decided {
    /// Allowed or denied.
    pub answer: Answer,
    /// `X-Request-Id` of this decision.
    pub request_id: HeaderValue,
}

impl Decided {
    /// The length of the body the answer carries (the §4 JSON of a denial).
    pub fn body_len(&self) -> u64 {
        match &self.answer {
            Answer::Allow { .. } => 0,
            Answer::Deny { body, .. } => body.len() as u64,
        }
    }

    /// The HTTP status the answer stands for (`200` when allowed).
    pub fn status(&self) -> StatusCode {
        match &self.answer {
            Answer::Allow { .. } => StatusCode::OK,
            Answer::Deny { status, .. } => *status,
        }
    }
}

/// What the access line of one decision reports (filled only when it is written).
#[derive(Default)]
struct Line {
    route_idx: Option<usize>,
    path: Option<String>,
    route: Option<String>,
    user: Option<String>,
    /// The original request's `User-Agent`.
    user_agent: Option<String>,
    /// The client the ingress reports (its `X-Forwarded-For`'s nearest entry).
    client: Option<std::net::IpAddr>,
}

/// The decision for `original` on the runtime `rt` (the current one: reloads
/// apply): normalize -> match -> authenticate -> authorize via [`crate::decide`]
/// (the very code the inline proxy runs; a route without `upstream` is decided like
/// any other). Counted in `portcullis_requests_total` and logged as an access line
/// with `upstream` empty.
pub async fn decide(rt: &Runtime, original: &Original<'_>, request_id: HeaderValue) -> Decided {
    let started = Instant::now();
    let log = access_enabled();
    let mut line = Line {
        client: crate::proxy::client::forwarded(original.headers),
        user_agent: log.then(|| crate::telemetry::user_agent(original.headers).to_owned()),
        ..Line::default()
    };
    let span = crate::otel::server_span(
        crate::otel::Door::Decision,
        original.method,
        original.headers,
    );
    let verdict = judge(rt, original, log, &mut line)
        .instrument(span.clone())
        .await;
    let (answer, decision) = match verdict {
        Ok((answer, label)) => (answer, label),
        Err(d) => (deny(&d), d.decision()),
    };
    let decided = Decided { answer, request_id };
    let route = line.route_idx.and_then(|i| rt.routes.get(i));
    let route = route.map(|r| r.route.name.as_str());
    crate::otel::finish(&span, route, decision, decided.status().as_u16());
    finish(
        rt,
        &decided,
        decision,
        original.method.as_str(),
        &line,
        started,
    );
    decided
}

/// A decision request refused before it names an original request (a missing or
/// repeated convention header, a body, a gRPC request without its HTTP attributes):
/// the §4 answer for `why`, counted and logged like a decision (`method`: the
/// original method if known, else the decision request's).
pub fn refuse(rt: &Runtime, method: &str, why: &Denial, request_id: HeaderValue) -> Decided {
    let decided = Decided {
        answer: deny(why),
        request_id,
    };
    let line = Line::default();
    finish(rt, &decided, why.decision(), method, &line, Instant::now());
    decided
}

/// The inner chain: the answer (allowed, or a login endpoint's redirect) and the
/// decision label, or the denial.
async fn judge(
    rt: &Runtime,
    original: &Original<'_>,
    log: bool,
    line: &mut Line,
) -> Result<(Answer, &'static str), Denial> {
    let facts = RequestFacts {
        method: original.method,
        host: HostSource::Named(original.host),
        path: original.path,
        query: original.query,
        headers: original.headers,
        tls: original.tls,
        client: line
            .client
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
    };
    let req = decide::normalize::normalize(&facts)?;
    if log {
        line.path = Some(req.path.clone().into_owned());
    }
    // The §9 callback and logout, before route matching as on the main listener.
    if let Some(which) = login::endpoint(rt, &req) {
        let (r, served) = login::serve(rt, which, original, &req).await;
        line.route = log.then(|| served.route.to_owned());
        line.user = served.user.filter(|_| log);
        let r = r?;
        return Ok((deny(&Denial::Login(Box::new(r))), "login"));
    }
    let engine = Engine {
        needs_upstream: false,
        ..rt.engine()
    };
    let decision = decide::decide(&engine, &facts, &req).await;
    if let Some(m) = &decision.matched {
        line.route_idx = Some(m.index);
        if log {
            line.route = Some(m.route.name.clone());
        }
    }
    if let (Some(v), true) = (&decision.caller, log) {
        line.user = Some(v.identity.clone());
    }
    let allow = decision.verdict?;
    let identity = decide::identity::answer(&allow, decision.caller.as_deref());
    let set_cookie = decision.session.map(|s| s.set_cookie).unwrap_or_default();
    Ok((
        Answer::Allow {
            identity,
            set_cookie,
        },
        allow.label,
    ))
}

fn deny(d: &Denial) -> Answer {
    let (status, headers, body) = d.parts();
    Answer::Deny {
        status,
        headers,
        body,
    }
}

/// Counts the decision and writes its access line.
fn finish(
    rt: &Runtime,
    decided: &Decided,
    decision: &str,
    method: &str,
    line: &Line,
    started: Instant,
) {
    let status = decided.status().as_u16();
    let m = Method::from_bytes(method.as_bytes()).ok();
    rt.counters
        .record(line.route_idx, m.as_ref(), status, decision);
    if access_enabled() {
        AccessLine {
            request_id: &decided.request_id,
            method,
            client: line.client,
            path: line.path.as_deref().unwrap_or(""),
            route: line.route.as_deref().unwrap_or(""),
            status,
            decision,
            user: line.user.as_deref().unwrap_or(""),
            upstream: "",
            user_agent: line.user_agent.as_deref().unwrap_or(""),
            bytes_in: 0,
            bytes_out: decided.body_len(),
            started: Some(started),
        }
        .write();
    }
}

pub mod grpc;

#[cfg(test)]
mod tests;
