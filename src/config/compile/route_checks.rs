//! Checks across the route table, as routes are added in file order:
//! - a route an earlier one always shadows is an error (it could never apply);
//! - a route an earlier one shadows for some of its methods only (a GET-only `/**`
//!   before a public `/docs`) gets a warning naming those methods;
//! - two routes with one name get a warning (logs and metrics cannot tell them apart).
//!
//! A route that had an error of its own takes no part in the shadowing checks, so a
//! broken host or method list causes no second error.

use super::Cx;
use crate::routes::{self, Route, RouteTable};
use http::Method;
use std::collections::HashMap;
use std::ops::Range;

/// The table so far.
#[derive(Default)]
pub(super) struct Checks {
    routes: Vec<Route>,
    /// Routes with an error of their own.
    broken: Vec<bool>,
    /// Name -> line of the first route with it.
    names: HashMap<String, usize>,
}

impl Checks {
    /// Adds `route` (at `span`, its name at `name_span`), checking it against the
    /// earlier ones.
    pub(super) fn push(
        &mut self,
        cx: &mut Cx<'_>,
        route: Route,
        span: Range<usize>,
        name_span: Range<usize>,
        broken: bool,
    ) {
        if let Some(line) = self.names.get(&route.name) {
            cx.rep.warn(
                name_span,
                format!(
                    "route name `{}` is also the name of the route at line {line}: logs and metrics cannot tell them apart",
                    route.name
                ),
            );
        } else {
            self.names.insert(route.name.clone(), route.line);
        }
        if !broken {
            self.shadowing(cx, &route, span);
        }
        self.routes.push(route);
        self.broken.push(broken);
    }

    fn shadowing(&self, cx: &mut Cx<'_>, route: &Route, span: Range<usize>) {
        let earlier = || {
            self.routes
                .iter()
                .zip(&self.broken)
                .filter(|(_, broken)| !**broken)
                .map(|(e, _)| e)
        };
        if let Some(e) = earlier().find(|e| routes::shadowed_by(route, e)) {
            cx.rep.at(
                span,
                format!(
                    "route `{}` is never used: route `{}` (line {}) matches everything it matches",
                    route.name, e.name, e.line
                ),
            );
            return;
        }
        for e in earlier() {
            if let Some(ms) = routes::shadowed_methods(route, e) {
                cx.rep.warn(
                    span.clone(),
                    format!(
                        "route `{}` is shadowed for {} by route `{}` (line {}): those requests match it first, so `{}` applies only to its other methods",
                        route.name,
                        list(&ms),
                        e.name,
                        e.line,
                        route.name
                    ),
                );
            }
        }
    }

    pub(super) fn into_table(self) -> RouteTable {
        RouteTable {
            routes: self.routes,
        }
    }
}

fn list(ms: &[Method]) -> String {
    ms.iter().map(Method::as_str).collect::<Vec<_>>().join(", ")
}
