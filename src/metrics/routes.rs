//! `portcullis_requests_total{route,status,decision,method,code}` and the per-route totals the
//! status page shows. Both are kept per `route` label value for the whole process:
//! the Prometheus series live in the recorder, and [`RouteTotals`] in a process-wide
//! table, so a reload hands the new runtime the same totals and the page never
//! disagrees with `/metrics`. Label values come from the config (route names) and
//! the four built-in endpoints, so the table is as bounded as the series are; `method`
//! is one of [`METHODS`] (any other is `OTHER`) and `code` the exact status (100–999),
//! `status` its class.

use http::Method;
use metrics::Counter;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

/// Every decision a request can end in (the `decision` label).
pub const DECISIONS: [&str; 19] = [
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
    "cors_preflight",
    "denied_cors_origin",
];

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The `method` label values: the methods of RFC 9110 and PATCH; any other (and a
/// request refused before its method was read) counts as `OTHER`.
pub(super) const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];

fn method_index(m: Option<&Method>) -> usize {
    let other = METHODS.len() - 1;
    m.and_then(|m| METHODS[..other].iter().position(|x| *x == m.as_str()))
        .unwrap_or(other)
}

/// One series of a route: decision, method and exact status.
type SeriesKey = (u8, u8, u16);

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
    /// Per decision and method, the handle of the first status seen with them: the
    /// hot path (one route, one decision, one status) is a lock-free array lookup.
    first: Box<[OnceLock<(u16, Counter)>]>,
    /// Every other series, created on first use.
    handles: RwLock<HashMap<SeriesKey, Counter>>,
}

impl RouteTotals {
    fn new(label: &str) -> Self {
        RouteTotals {
            label: label.to_owned(),
            requests: AtomicU64::new(0),
            denied: AtomicU64::new(0),
            first: (0..DECISIONS.len() * METHODS.len())
                .map(|_| OnceLock::new())
                .collect(),
            handles: RwLock::default(),
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

    fn record(&self, method: Option<&Method>, status: u16, decision: &str) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if decision.starts_with("denied") {
            self.denied.fetch_add(1, Ordering::Relaxed);
        }
        let (d, m) = (decision_index(decision), method_index(method));
        if let Some(slot) = self.first.get(d * METHODS.len() + m) {
            let (code, counter) = slot.get_or_init(|| (status, self.series(d, m, status)));
            if *code == status {
                counter.increment(1);
                return;
            }
        }
        self.series(d, m, status).increment(1);
    }

    /// The handle of one series (the recorder hands out the same one for the same
    /// labels; it is kept here so that the labels are built once).
    fn series(&self, d: usize, m: usize, status: u16) -> Counter {
        let key = (d as u8, m as u8, status);
        let known = self
            .handles
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .cloned();
        known.unwrap_or_else(|| {
            let mut w = self.handles.write().unwrap_or_else(PoisonError::into_inner);
            w.entry(key)
                .or_insert_with(|| {
                    metrics::counter!(
                        "portcullis_requests_total",
                        "route" => self.label.clone(),
                        "status" => CLASSES[class_index(status)],
                        "decision" => DECISIONS[d],
                        "method" => METHODS[m],
                        "code" => status.to_string(),
                    )
                })
                .clone()
        })
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
    pub fn record(
        &self,
        route: Option<usize>,
        method: Option<&Method>,
        status: u16,
        decision: &str,
    ) {
        route
            .and_then(|i| self.routes.get(i))
            .unwrap_or(&self.unmatched)
            .record(method, status, decision);
    }

    /// Counts one request to a built-in endpoint (`label`: `builtin:token`, ...).
    pub fn record_builtin(
        &self,
        label: &str,
        method: Option<&Method>,
        status: u16,
        decision: &str,
    ) {
        route_totals(label).record(method, status, decision);
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
    fn methods_are_a_fixed_set() {
        assert_eq!(METHODS[method_index(Some(&Method::PATCH))], "PATCH");
        let odd = Method::from_bytes(b"PROPFIND").expect("method");
        assert_eq!(METHODS[method_index(Some(&odd))], "OTHER");
        assert_eq!(METHODS[method_index(None)], "OTHER");
    }

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
        first.record(Some(0), Some(&Method::GET), 200, "allowed");
        first.record(Some(1), None, 401, "denied_no_token");
        first.record(None, Some(&Method::POST), 404, "no_route");
        first.record_builtin("builtin:rt-test", None, 200, "token_endpoint");
        // A reload: routes reordered, one added; the totals follow the names.
        let second = RouteCounters::new(["rt-c".to_string(), "rt-b".to_string()].into_iter());
        second.record(Some(1), Some(&Method::GET), 403, "denied_route");
        assert_eq!(second.route(0).map(RouteTotals::requests), Some(0));
        let b = second.route(1).expect("rt-b");
        assert_eq!((b.requests(), b.denied()), (2, 2));
        assert_eq!(route_totals("rt-a").requests(), 1);
        assert!(second.unmatched().requests() >= 1);
        assert_eq!(route_totals("builtin:rt-test").requests(), 1);
    }
}
