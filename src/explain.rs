//! `portcullis explain [--host HOST] [--token TOKEN] METHOD PATH` (SPEC §8): how a
//! request would be decided, by the decision code every front door runs
//! ([`crate::decide`]: normalize, match, authenticate, authorize), on a runtime of the
//! config (its issuers' keys, JWKS fetched; its `[state]` backend for revocations).
//!
//! It prints the normalized path, the route that matches or why none does (the
//! routes whose path matches but not the host or the method), the route's access,
//! token sources, required scopes and claims, its upstream, and the decision with its
//! reason (status, `detail`, `WWW-Authenticate`, the access log's decision label). A
//! `--token` is sent the way the matched route reads tokens (its first `token_from`
//! source); it is never printed. Nothing is counted or logged.

use crate::app::Runtime;
use crate::config::Config;
use crate::decide::{self, Engine, HostSource, RequestFacts};
use crate::routes::{Route, TokenSource};
use http::header::{AUTHORIZATION, COOKIE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Method};
use std::fmt::Write as _;
use std::time::Duration;

/// How long `explain` waits for JWKS issuers' keys before deciding without them.
const KEYS_WAIT: Duration = Duration::from_secs(10);

/// The request to explain, as given on the command line.
pub struct Ask<'a> {
    /// `METHOD`.
    pub method: &'a str,
    /// `PATH`, with an optional `?query`.
    pub target: &'a str,
    /// `--host`.
    pub host: Option<&'a str>,
    /// `--token`.
    pub token: Option<&'a str>,
}

/// What `explain` found: the text to print, and whether the request is allowed.
pub struct Explained {
    /// Lines for stdout.
    pub text: String,
    /// Allowed (exit 0), else denied or invalid (exit 1).
    pub allowed: bool,
}

/// Why `explain` could not explain.
#[derive(Debug, thiserror::Error)]
pub enum Failed {
    /// A usage error (exit 2): a method that is not a token, a host or token that is
    /// no header value.
    #[error("{0}")]
    Usage(String),
    /// The config's runtime cannot be built (exit 1): an unreadable `ca`.
    #[error("{0}")]
    Config(String),
}

/// The method, host, path and query an [`Ask`] names.
type Parsed<'a> = (Method, Option<HeaderValue>, &'a str, Option<&'a str>);

/// The method, host, path and query `ask` names (usage errors refused).
fn parse<'a>(ask: &Ask<'a>) -> Result<Parsed<'a>, Failed> {
    let method = Method::from_bytes(ask.method.as_bytes())
        .map_err(|_| Failed::Usage(format!("`{}` is not an HTTP method", ask.method)))?;
    let host = ask
        .host
        .map(|h| {
            HeaderValue::from_str(h).map_err(|_| Failed::Usage(format!("`{h}` is not a host")))
        })
        .transpose()?;
    let (path, query) = match ask.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (ask.target, None),
    };
    Ok((method, host, path, query))
}

/// Explains `ask` under `config` (call inside a tokio runtime: JWKS keys are fetched).
pub async fn explain(config: Config, ask: &Ask<'_>) -> Result<Explained, Failed> {
    let (method, host, path, query) = parse(ask)?;
    let rt = Runtime::new(config).map_err(|e| Failed::Config(e.to_string()))?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "request:    {method} {path}{} (host: {})",
        query.map_or(String::new(), |_| "?…".into()),
        ask.host.unwrap_or("none; give one with --host"),
    );
    let empty = HeaderMap::new();
    let facts = RequestFacts {
        method: &method,
        host: HostSource::Named(host.as_ref()),
        path,
        query,
        headers: &empty,
        tls: false,
        client: std::net::Ipv4Addr::UNSPECIFIED.into(),
    };
    let req = match decide::normalize::normalize(&facts) {
        Ok(r) => r,
        Err(d) => {
            let _ = writeln!(out, "path:       refused before route matching");
            decision(&mut out, &d);
            return Ok(Explained {
                text: out,
                allowed: false,
            });
        }
    };
    let _ = writeln!(out, "path:       {} (normalized)", req.path);
    let Some((index, routed)) = decide::match_route(&rt.routes, &method, &req) else {
        no_route(&mut out, &rt, &method, &req);
        decision(&mut out, &crate::deny::Denial::NoRoute);
        return Ok(Explained {
            text: out,
            allowed: false,
        });
    };
    describe(&mut out, &rt, index, &routed.route);
    let allowed = judge(&mut out, &rt, &routed.route, ask, (&facts, &req)).await?;
    Ok(Explained { text: out, allowed })
}

/// Decides the request with `ask`'s token placed where `route` reads it first, and
/// writes the caller and the decision; whether it is allowed.
async fn judge(
    out: &mut String,
    rt: &Runtime,
    route: &Route,
    ask: &Ask<'_>,
    (facts, req): (&RequestFacts<'_>, &decide::Normalized<'_>),
) -> Result<bool, Failed> {
    // The token, where the route looks first; the query and headers are rebuilt.
    let mut headers = HeaderMap::new();
    let mut with_token = facts.query.map(str::to_owned);
    if let Some(t) = ask.token {
        wait_for_keys(rt).await;
        place_token(route, t, &mut headers, &mut with_token)?;
    }
    let facts = RequestFacts {
        headers: &headers,
        query: with_token.as_deref(),
        ..*facts
    };
    let req = decide::normalize::Normalized {
        query: with_token.as_deref(),
        ..req.clone()
    };
    let engine = Engine {
        needs_upstream: rt.config.forward_auth.is_none(),
        ..rt.engine()
    };
    let decided = decide::decide(&engine, &facts, &req).await;
    if let Some(v) = &decided.caller {
        let _ = writeln!(
            out,
            "caller:     {} (issuer {}; scopes: {})",
            v.identity,
            v.issuer.config.name,
            none_if_empty(&v.scopes.join(" "))
        );
    }
    let allowed = match decided.verdict {
        Ok(allow) => {
            let _ = writeln!(out, "decision:   allowed ({})", allow.label);
            for (name, value) in decide::identity::all(allow.identity, decided.caller.as_deref()) {
                let value = value.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("");
                let _ = writeln!(out, "  {name}: {value}");
            }
            true
        }
        Err(d) => {
            decision(out, &d);
            false
        }
    };
    Ok(allowed)
}

/// The matched route: where it is, its access, token sources, scopes, claims, upstream.
fn describe(out: &mut String, rt: &Runtime, index: usize, r: &Route) {
    let methods = r.methods.as_ref().map_or_else(
        || "all".to_owned(),
        |m| m.iter().map(Method::as_str).collect::<Vec<_>>().join(", "),
    );
    let _ = writeln!(
        out,
        "route:      #{} `{}` (line {}): host {}, path {}, methods {methods}",
        index + 1,
        r.name,
        r.line,
        host_text(r),
        r.path.source,
    );
    let _ = writeln!(out, "access:     {}", r.access.as_str());
    let sources: Vec<String> = r.token_from.iter().map(source_text).collect();
    let _ = writeln!(out, "token from: {}", sources.join(", "));
    let _ = writeln!(out, "scopes:     {}", none_if_empty(&r.scopes.join(" ")));
    let claims: Vec<String> = r
        .claims
        .iter()
        .map(|c| {
            let vals: Vec<String> = c.values.iter().map(ToString::to_string).collect();
            format!("{} = one of {}", c.claim, vals.join(", "))
        })
        .collect();
    let _ = writeln!(out, "claims:     {}", none_if_empty(&claims.join("; ")));
    let upstream = match r.upstream.and_then(|u| rt.config.upstreams.get(u)) {
        Some(u) => u.name.clone(),
        None if r.access == crate::routes::Access::Deny => "none (deny)".to_owned(),
        None => {
            "none: decided by the [forward_auth] listener only, 404 on the main listener".to_owned()
        }
    };
    let _ = writeln!(out, "upstream:   {upstream}");
}

/// Why no route matches: the routes whose path matches, and what they need instead.
fn no_route(out: &mut String, rt: &Runtime, method: &Method, req: &decide::Normalized<'_>) {
    let _ = writeln!(out, "route:      none matches");
    let host = req.host.as_ref().map(crate::host::RequestHost::name);
    for (i, r) in rt.routes.iter().map(|r| &r.route).enumerate() {
        if !r.path.matches(&req.path) {
            continue;
        }
        let mut why = Vec::new();
        if r.host
            .as_ref()
            .is_some_and(|h| host.is_none_or(|x| !h.matches(x)))
        {
            why.push(format!("host {}", host_text(r)));
        }
        if r.methods.as_ref().is_some_and(|m| !m.contains(method)) {
            let m: Vec<&str> = r.methods.iter().flatten().map(Method::as_str).collect();
            why.push(format!("methods {}", m.join(", ")));
        }
        let _ = writeln!(
            out,
            "  #{} `{}` (line {}) matches the path {} but needs {}",
            i + 1,
            r.name,
            r.line,
            r.path.source,
            why.join(" and ")
        );
    }
}

/// The denial: status, detail, challenge and the access log's label.
fn decision(out: &mut String, d: &crate::deny::Denial) {
    let (status, headers, _) = d.parts();
    let _ = writeln!(
        out,
        "decision:   denied {} {} ({})",
        status.as_u16(),
        d.detail(),
        d.decision()
    );
    if let Some(c) = headers.get(WWW_AUTHENTICATE).and_then(|v| v.to_str().ok()) {
        let _ = writeln!(out, "  WWW-Authenticate: {c}");
    }
}

/// Puts `token` where `route` reads tokens first.
fn place_token(
    route: &Route,
    token: &str,
    headers: &mut HeaderMap,
    query: &mut Option<String>,
) -> Result<(), Failed> {
    let bad = || Failed::Usage("the token is not a valid header value".into());
    match route.token_from.first() {
        Some(TokenSource::Header) | None => {
            let v = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| bad())?;
            headers.insert(AUTHORIZATION, v);
        }
        Some(TokenSource::Cookie(name)) => {
            let v = HeaderValue::from_str(&format!("{name}={token}")).map_err(|_| bad())?;
            headers.insert(COOKIE, v);
        }
        Some(TokenSource::Query(name)) => {
            let pair = format!("{name}={token}");
            *query = Some(match query.take().filter(|q| !q.is_empty()) {
                Some(q) => format!("{q}&{pair}"),
                None => pair,
            });
        }
    }
    Ok(())
}

/// Waits (bounded) until every JWKS issuer has keys, so a token is judged on them.
async fn wait_for_keys(rt: &Runtime) {
    let deadline = tokio::time::Instant::now() + KEYS_WAIT;
    while !rt.verifier.jwks.ready() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn host_text(r: &Route) -> String {
    match &r.host {
        None => "any".into(),
        Some(crate::routes::HostMatch::Exact(e)) => e.clone(),
        Some(crate::routes::HostMatch::Suffix(s)) => format!("*{s}"),
    }
}

fn source_text(t: &TokenSource) -> String {
    match t {
        TokenSource::Header => "header".into(),
        TokenSource::Query(n) => format!("query:{n}"),
        TokenSource::Cookie(n) => format!("cookie:{n}"),
    }
}

fn none_if_empty(s: &str) -> &str {
    if s.is_empty() {
        "none"
    } else {
        s
    }
}
