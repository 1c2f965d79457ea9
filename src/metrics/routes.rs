//! `portcullis_requests_total{route,status,decision}` and the per-route totals the
//! status page shows. Both are kept per `route` label value for the whole process:
//! the Prometheus series live in the recorder, and [`RouteTotals`] in a process-wide
//! table, so a reload hands the new runtime the same totals and the page never
//! disagrees with `/metrics`. Label values come from the config (route names) and
//! the four built-in endpoints, so the table is as bounded as the series are.

use metrics::Counter;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Every decision a request can end in (the `decision` label).
pub const DECISIONS: [&str; 17] = [
    "allowed",
    "public",
    "anonymous",
    "denied_no_token",
    "denied_expired",
    "denied_revoked",
    "denied_invalid_token",
    "denied_insufficient_scope",
    "denied_route",
    "no_route",
    "bad_request",
    "upstream_error",
    "upstream_timeout",
    "unavailable",
    "token_endpoint",
    "login_redirect",
    "login",
];

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The label of a decision: the part before `:` (`bad_request:encoded_slash` counts
/// as `bad_request`, so the rule names do not multiply the series).
fn decision_index(d: &str) -> usize {
    let d = d.split_once(':').map_or(d, |(coarse, _)| coarse);
    DECISIONS.iter().position(|x| *x == d).unwrap_or(0)
}

fn class_index(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5)) - 1
}

/// The counts of one `route` label value: requests, denials, and its Prometheus
/// handles (created on first use).
pub struct RouteTotals {
    label: String,
    requests: AtomicU64,
    denied: AtomicU64,
    handles: Vec<OnceLock<Counter>>,
}

impl RouteTotals {
    fn new(label: &str) -> Self {
        RouteTotals {
            label: label.to_owned(),
            requests: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            handles: (0..DECISIONS.len() * CLASSES.len())
                .map(|_| OnceLock::new())
                .collect(),
        }
    }

    /// Requests counted under this label since the process started.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Of those, the ones whose decision was a denial (`denied_*`).
    pub fn denied(&self) -> u64 {
        self.denied.load(Ordering::Relaxed)
    }

    fn record(&self, status: u16, decision: &str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if decision.starts_with("denied") {
            self.denied.fetch_add(1, Ordering::Relaxed);
        }
        let (d, c) = (decision_index(decision), class_index(status));
        if let Some(cell) = self.handles.get(d * CLASSES.len() + c) {
            cell.get_or_init(|| {
                metrics::counter!(
                    "portcullis_requests_total",
                    "route" => self.label.clone(),
                    "status" => CLASSES[c],
                    "decision" => DECISIONS[d],
                )
            })
            .increment(1);
        }
    }
}

/// The totals of `label` (a route name, `builtin:NAME`, or `""` for no route),
/// created at zero on first use and kept for the process.
pub fn route_totals(label: &str) -> Arc<RouteTotals> {
    static TABLE: OnceLock<Mutex<HashMap<String, Arc<RouteTotals>>>> = OnceLock::new();
    let mut table = TABLE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(t) = table.get(label) {
        return t.clone();
    }
    let t = Arc::new(RouteTotals::new(label));
    table.insert(label.to_owned(), t.clone());
    t
}

/// The totals of one config's routes, index-aligned with them, plus "no route".
pub struct RouteCounters {
    routes: Vec<Arc<RouteTotals>>,
    unmatched: Arc<RouteTotals>,
}

impl RouteCounters {
    /// Counters for these route names (two routes of one name share them, as they
    /// share the Prometheus series).
    pub fn new(route_names: impl Iterator<Item = String>) -> Self {
        RouteCounters {
            routes: route_names.map(|n| route_totals(&n)).collect(),
            unmatched: route_totals(""),
        }
    }

    /// Counts one request; `route` is `None` when no route matched.
    pub fn record(&self, route: Option<usize>, status: u16, decision: &str) {
        route
            .and_then(|i| self.routes.get(i))
            .unwrap_or(&self.unmatched)
            .record(status, decision);
    }

    /// Counts one request to a built-in endpoint (`label`: `builtin:token`, ...).
    pub fn record_builtin(&self, label: &str, status: u16, decision: &str) {
        route_totals(label).record(status, decision);
    }

    /// The totals of route `i` (in config order).
    pub fn route(&self, i: usize) -> Option<&RouteTotals> {
        self.routes.get(i).map(|t| &**t)
    }

    /// The totals of requests no route matched (and of those refused before routing).
    pub fn unmatched(&self) -> &RouteTotals {
        &self.unmatched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_counts_under_its_coarse_label() {
        let coarse = decision_index("bad_request");
        assert_eq!(DECISIONS[coarse], "bad_request");
        assert_eq!(decision_index("bad_request:encoded_slash"), coarse);
        assert_eq!(DECISIONS[decision_index("allowed")], "allowed");
    }

    #[test]
    fn totals_outlive_the_counters_of_one_config() {
        let first = RouteCounters::new(["rt-a".to_string(), "rt-b".to_string()].into_iter());
        first.record(Some(0), 200, "allowed");
        first.record(Some(1), 401, "denied_no_token");
        first.record(None, 404, "no_route");
        first.record_builtin("builtin:rt-test", 200, "token_endpoint");
        // A reload: routes reordered, one added; the totals follow the names.
        let second = RouteCounters::new(["rt-c".to_string(), "rt-b".to_string()].into_iter());
        second.record(Some(1), 403, "denied_route");
        assert_eq!(second.route(0).map(RouteTotals::requests), Some(0));
        let b = second.route(1).expect("rt-b");
        assert_eq!((b.requests(), b.denied()), (2, 2));
        assert_eq!(route_totals("rt-a").requests(), 1);
        assert!(second.unmatched().requests() >= 1);
        assert_eq!(route_totals("builtin:rt-test").requests(), 1);
    }
}
