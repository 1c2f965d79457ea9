//! Prometheus metrics (SPEC §6) through the `metrics` facade and
//! `metrics-exporter-prometheus`. Handles are created once and cached, so the
//! request path pays an atomic add, not a label lookup.
//!
//! Exported: `portcullis_requests_total{route,status,decision}` (status = class,
//! `2xx`..`5xx`), `portcullis_verify_seconds`, `portcullis_upstream_seconds`,
//! `portcullis_token_cache_hits_total` / `_misses_total`,
//! `portcullis_reloads_total{result}`, `portcullis_open_connections`,
//! `portcullis_jwks_fetches_total{issuer,result}`, `portcullis_logins_total{result}`,
//! `portcullis_state_errors_total{op}`, `portcullis_accept_errors_total{listener}`,
//! `portcullis_state_entries`, `portcullis_state_evictions_total{kind}`.

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process-wide recorder (first call wins). Returns whether metrics
/// are being recorded.
pub fn install() -> bool {
    HANDLE
        .get_or_init(|| {
            let buckets = [
                0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005,
                0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
            ];
            let handle = PrometheusBuilder::new()
                .set_buckets(&buckets)
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics disabled"))
                .ok()?;
            // Histogram samples queue up until drained: do it every few seconds so
            // memory stays flat when nobody scrapes.
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(std::time::Duration::from_secs(5));
                    upkeep.run_upkeep();
                });
            Some(handle)
        })
        .is_some()
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    match HANDLE.get() {
        Some(Some(h)) => h.render(),
        _ => String::new(),
    }
}

/// Every decision a request can end in (the `decision` label).
pub const DECISIONS: [&str; 15] = [
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
];

/// The label of a decision: the part before `:` (`bad_request:encoded_slash` counts
/// as `bad_request`, so the rule names do not multiply the series).
fn decision_index(d: &str) -> usize {
    let d = d.split_once(':').map_or(d, |(coarse, _)| coarse);
    DECISIONS.iter().position(|x| *x == d).unwrap_or(0)
}

fn class_index(status: u16) -> usize {
    usize::from((status / 100).clamp(1, 5)) - 1
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// Per-route request counters: Prometheus handles (created on first use) and plain
/// totals for the status page.
pub struct RouteCounters {
    names: Vec<String>,
    handles: Vec<OnceLock<Counter>>,
    /// Requests per route (index `routes.len()` = no route).
    pub requests: Vec<AtomicU64>,
    /// Denied requests per route.
    pub denied: Vec<AtomicU64>,
}

impl RouteCounters {
    /// Counters for these route names (plus one slot for "no route").
    pub fn new(route_names: impl Iterator<Item = String>) -> Self {
        let mut names: Vec<String> = route_names.collect();
        names.push(String::new());
        let cells = names.len() * DECISIONS.len() * CLASSES.len();
        RouteCounters {
            requests: (0..names.len()).map(|_| AtomicU64::new(0)).collect(),
            denied: (0..names.len()).map(|_| AtomicU64::new(0)).collect(),
            handles: (0..cells).map(|_| OnceLock::new()).collect(),
            names,
        }
    }

    /// Counts one request; `route` is `None` when no route matched.
    pub fn record(&self, route: Option<usize>, status: u16, decision: &str) {
        let r = route
            .filter(|i| *i + 1 < self.names.len())
            .unwrap_or(self.names.len() - 1);
        if let Some(c) = self.requests.get(r) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        if decision.starts_with("denied") {
            if let Some(c) = self.denied.get(r) {
                c.fetch_add(1, Ordering::Relaxed);
            }
        }
        let (d, c) = (decision_index(decision), class_index(status));
        let idx = (r * DECISIONS.len() + d) * CLASSES.len() + c;
        if let Some(cell) = self.handles.get(idx) {
            cell.get_or_init(|| {
                metrics::counter!(
                    "portcullis_requests_total",
                    "route" => self.names.get(r).cloned().unwrap_or_default(),
                    "status" => CLASSES[c],
                    "decision" => DECISIONS[d],
                )
            })
            .increment(1);
        }
    }
}

macro_rules! cached {
    ($name:ident, $ty:ty, $make:expr) => {
        /// A cached metric handle.
        pub fn $name() -> &'static $ty {
            static H: OnceLock<$ty> = OnceLock::new();
            H.get_or_init(|| $make)
        }
    };
}

cached!(
    verify_seconds,
    Histogram,
    metrics::histogram!("portcullis_verify_seconds")
);
cached!(
    upstream_seconds,
    Histogram,
    metrics::histogram!("portcullis_upstream_seconds")
);
cached!(
    cache_hits,
    Counter,
    metrics::counter!("portcullis_token_cache_hits_total")
);
cached!(
    cache_misses,
    Counter,
    metrics::counter!("portcullis_token_cache_misses_total")
);
cached!(
    open_connections,
    Gauge,
    metrics::gauge!("portcullis_open_connections")
);
cached!(
    reloads_ok,
    Counter,
    metrics::counter!("portcullis_reloads_total", "result" => "ok")
);
cached!(
    reloads_error,
    Counter,
    metrics::counter!("portcullis_reloads_total", "result" => "error")
);

/// Counts a JWKS fetch for `issuer`.
pub fn jwks_fetch(issuer: &str, ok: bool) {
    metrics::counter!(
        "portcullis_jwks_fetches_total",
        "issuer" => issuer.to_owned(),
        "result" => if ok { "ok" } else { "error" },
    )
    .increment(1);
}

/// Counts a failed state-backend operation (`op`: is_revoked, refresh_rotate, ping...).
pub fn state_error(op: &'static str) {
    metrics::counter!("portcullis_state_errors_total", "op" => op).increment(1);
}

/// Counts a login attempt at the token endpoint (`result`: ok, invalid, disabled, limited...).
pub fn login(result: &'static str) {
    metrics::counter!("portcullis_logins_total", "result" => result).increment(1);
}

/// Sets `portcullis_state_entries`: refresh-token entries the memory store holds.
pub fn state_entries(n: usize) {
    #[allow(clippy::cast_precision_loss)]
    state_entries_gauge().set(n as f64);
}

cached!(
    state_entries_gauge,
    Gauge,
    metrics::gauge!("portcullis_state_entries")
);

/// Counts an entry evicted from the memory store under its cap before it expired
/// (`kind`: tombstone, access, refresh_token).
pub fn state_eviction(kind: &'static str) {
    metrics::counter!("portcullis_state_evictions_total", "kind" => kind).increment(1);
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
}
