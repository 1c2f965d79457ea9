//! `[[routes]]` -> the [`RouteTable`], in file order: path pattern, host rule,
//! methods, access, upstream, token sources and claim rules, each compiled once
//! here. A route with an error still has its other keys checked; table-wide checks
//! (shadowing, duplicate names) are in [`super::route_checks`].
//!
//! Methods are HTTP tokens (RFC 9110 §5.6.2; anything else is an error). One written
//! in lower case is matched upper case, and one outside the registered set is
//! accepted (an extension method): both get a warning, since methods are
//! case-sensitive (RFC 9110 §9.1) and a typo silently sends those requests on to
//! later routes.

use super::route_checks::Checks;
use super::upstreams::Upstreams;
use super::Cx;
use crate::config::error::line_col;
use crate::config::file::{OneOrMany, RawRoute};
use crate::config::values::EnvStr;
use crate::defaults;
use crate::routes::{Access, ClaimRule, HostMatch, PathPattern, Route, RouteTable, TokenSource};
use http::Method;
use std::ops::Range;
use toml::Spanned;

/// Methods defined by RFC 9110 §9, PATCH (RFC 5789) and WebDAV's (RFC 4918 §9).
const REGISTERED: &[&str] = &[
    "GET",
    "HEAD",
    "POST",
    "PUT",
    "DELETE",
    "CONNECT",
    "OPTIONS",
    "TRACE",
    "PATCH",
    "PROPFIND",
    "PROPPATCH",
    "MKCOL",
    "COPY",
    "MOVE",
    "LOCK",
    "UNLOCK",
];

/// Compiles the routes; `numbers` are their 1-based positions in the file. With
/// `decisions` (`[forward_auth]` configured) a route may omit `upstream` (SPEC §2).
pub(super) fn compile(
    cx: &mut Cx<'_>,
    raw: Vec<Spanned<RawRoute>>,
    numbers: &[usize],
    upstreams: &Upstreams,
    decisions: bool,
    has_login: bool,
) -> RouteTable {
    let mut checks = Checks::default();
    for (i, r) in raw.into_iter().enumerate() {
        let span = r.span();
        let number = numbers.get(i).copied().unwrap_or(i + 1);
        let before = cx.problems();
        let r = r.into_inner();
        let name_span = r.name.as_ref().map_or_else(|| span.clone(), Spanned::span);
        if let Some(l) = r.login.as_ref().filter(|l| *l.get_ref()) {
            let access = r.access.as_ref().map_or("protected", |a| &**a.get_ref());
            if !matches!(access, "protected" | "optional") {
                cx.rep.at(
                    l.span(),
                    format!(
                        "`login = true` needs access `protected` or `optional`, not `{access}`"
                    ),
                );
            } else if !has_login {
                cx.rep
                    .at(l.span(), "`login = true` needs a [login] section (SPEC §9)");
            }
        }
        let Some(route) = r.compile(cx, number, span.clone(), upstreams, decisions) else {
            continue;
        };
        // A route that lost a mistyped key (parse poisoned its start) is broken too.
        let broken = cx.problems() > before || cx.rep.is_poisoned(&span);
        checks.push(cx, route, span, name_span, broken);
    }
    checks.into_table()
}

impl RawRoute {
    /// `None` when the path pattern is invalid (other keys are still checked).
    fn compile(
        self,
        cx: &mut Cx<'_>,
        number: usize,
        span: Range<usize>,
        upstreams: &Upstreams,
        decisions: bool,
    ) -> Option<Route> {
        let (line, _) = line_col(cx.rep.src(), span.start);
        let name = self
            .name
            .map_or_else(|| defaults::route_name(number), |s| s.into_inner().0);
        let path = PathPattern::parse(self.path.get_ref())
            .map_err(|e| cx.rep.at(self.path.span(), e))
            .ok();
        let host = self.host.as_ref().and_then(|h| {
            HostMatch::parse(h.get_ref())
                .map_err(|e| cx.rep.at(h.span(), e))
                .ok()
        });
        let methods = self.methods.as_ref().map(|ms| methods(cx, ms));
        let access = access(cx, self.access.as_ref());
        let upstream = match upstream(cx, self.upstream.as_ref(), upstreams) {
            Some(found) => found,
            None if access == Access::Deny || decisions => None,
            None => {
                cx.rep.at(
                    span,
                    format!("route `{name}` needs `upstream` (a route without one is allowed only with [forward_auth], which decides for an ingress)"),
                );
                None
            }
        };
        let token_from = token_from(cx, self.token_from.as_deref());
        let scopes: Vec<String> = self.scopes.into_iter().map(|s| s.0).collect();
        let dpop_required = dpop_required(cx, self.dpop.as_ref());
        let cors = self
            .cors
            .and_then(|c| super::cors::compile(cx, c))
            .map(Box::new);
        Some(Route {
            cors,
            name,
            host,
            path: path?,
            methods,
            access,
            scope_param: scopes.join(" "),
            scopes,
            claims: claims(self.claims),
            token_from,
            upstream,
            line,
            login: self.login.is_some_and(|l| l.into_inner()),
            dpop_required,
        })
    }
}

/// `upstream`: `Some(index)` when named (an unknown name is reported, `Some(None)`);
/// `None` when the key is absent (the caller decides whether that is allowed).
fn upstream(
    cx: &mut Cx<'_>,
    raw: Option<&Spanned<EnvStr>>,
    upstreams: &Upstreams,
) -> Option<Option<usize>> {
    let u = raw?;
    Some(match upstreams.find(u.get_ref()) {
        Ok(i) => i,
        Err(defined) => {
            let msg = format!("unknown upstream `{}` (defined: {defined})", &**u.get_ref());
            cx.rep.at(u.span(), msg);
            None
        }
    })
}

/// `token_from` (default [`defaults::TOKEN_FROM`]).
fn token_from(cx: &mut Cx<'_>, raw: Option<&[Spanned<EnvStr>]>) -> Vec<TokenSource> {
    let Some(list) = raw else {
        return vec![defaults::TOKEN_FROM];
    };
    list.iter()
        .filter_map(|s| {
            TokenSource::parse(s.get_ref())
                .map_err(|e| cx.rep.at(s.span(), e))
                .ok()
        })
        .collect()
}

/// `dpop`: `required` or `allowed` (default [`defaults::DPOP`]).
fn dpop_required(cx: &mut Cx<'_>, raw: Option<&Spanned<EnvStr>>) -> bool {
    match raw.map(|d| (&**d.get_ref(), d.span())) {
        None => defaults::DPOP == "required",
        Some(("required", _)) => true,
        Some(("allowed", _)) => false,
        Some((other, at)) => {
            cx.rep
                .at(at, format!("unknown dpop `{other}` (required or allowed)"));
            false
        }
    }
}

/// `methods`: tokens, matched upper case (warnings for lower case and for methods
/// outside [`REGISTERED`]).
fn methods(cx: &mut Cx<'_>, raw: &[Spanned<EnvStr>]) -> Vec<Method> {
    let mut out = Vec::new();
    for m in raw {
        let written: &str = m.get_ref();
        let upper = written.to_ascii_uppercase();
        let Ok(method) = Method::from_bytes(upper.as_bytes()) else {
            cx.rep.at(
                m.span(),
                format!("invalid method `{written}` (a method is an HTTP token: letters, digits and !#$%&'*+-.^_`|~)"),
            );
            continue;
        };
        if written != upper {
            cx.rep.warn(
                m.span(),
                format!("method `{written}` is not upper case: the route matches `{upper}` (methods are case-sensitive, RFC 9110 §9.1)"),
            );
        }
        if !REGISTERED.contains(&upper.as_str()) {
            cx.rep.warn(
                m.span(),
                format!("method `{upper}` is not a registered HTTP method (a typo?): other requests fall through to later routes"),
            );
        }
        out.push(method);
    }
    out
}

fn access(cx: &mut Cx<'_>, raw: Option<&Spanned<EnvStr>>) -> Access {
    let Some(a) = raw else {
        return defaults::ACCESS;
    };
    match &**a.get_ref() {
        "protected" => Access::Protected,
        "optional" => Access::Optional,
        "public" => Access::Public,
        "deny" => Access::Deny,
        other => {
            cx.rep.at(
                a.span(),
                format!("unknown access `{other}` (protected, optional, public or deny)"),
            );
            defaults::ACCESS
        }
    }
}

fn claims(raw: std::collections::BTreeMap<String, Spanned<OneOrMany>>) -> Vec<ClaimRule> {
    raw.into_iter()
        .map(|(claim, v)| {
            let vals = match v.into_inner() {
                OneOrMany::One(x) => vec![x],
                OneOrMany::Many(xs) => xs,
            };
            ClaimRule {
                claim,
                values: vals
                    .into_iter()
                    .filter_map(|x| serde_json::to_value(x).ok())
                    .collect(),
            }
        })
        .collect()
}
