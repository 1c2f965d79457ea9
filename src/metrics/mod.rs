//! Prometheus metrics (SPEC §6) through the `metrics` facade and
//! `metrics-exporter-prometheus`. Handles are created once and cached, so the
//! request path pays an atomic add, not a label lookup.
//!
//! Every family is listed in [`FAMILIES`] with its help text and described when the
//! recorder is installed, so `/metrics` has a `# HELP` and a `# TYPE` line for each
//! (a unit test checks that every `portcullis_*` name in `src/` is listed).
//!
//! `portcullis_requests_total{route}` is the route's name, `builtin:token`,
//! `builtin:revoke`, `builtin:jwks` or `builtin:openid-configuration` for the built-in
//! endpoints (as in the access log), and empty for requests no route matched. What
//! the status page shows beside it ([`RouteTotals`], [`login_totals`]) is kept per
//! label value for the whole process, like the Prometheus series, so the page and
//! `/metrics` agree across reloads.

use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

mod logins;
mod routes;

pub use logins::{login, login_series, login_totals, Login};
pub use routes::{route_totals, RouteCounters, RouteTotals, DECISIONS};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// What a family is (which `describe_*` it gets).
#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric family portcullis exports: name, kind, `# HELP` text.
const FAMILIES: &[(&str, Kind, &str)] = &[
    ("portcullis_requests_total", Kind::Counter,
     "Requests answered, by route name (builtin:NAME for the built-in endpoints, empty when no route matched), status class and decision"),
    ("portcullis_verify_seconds", Kind::Histogram,
     "Token verification time in seconds, verified-token cache hits included"),
    ("portcullis_upstream_seconds", Kind::Histogram,
     "Time from sending a request upstream to its response head, in seconds"),
    ("portcullis_token_cache_hits_total", Kind::Counter,
     "Tokens found in the verified-token cache"),
    ("portcullis_token_cache_misses_total", Kind::Counter,
     "Tokens not in the verified-token cache (verified in full)"),
    ("portcullis_reloads_total", Kind::Counter,
     "Config reloads, by result (ok or error; an error keeps the running config)"),
    ("portcullis_open_connections", Kind::Gauge,
     "Client connections open on the main listener now"),
    ("portcullis_jwks_fetches_total", Kind::Counter,
     "JWKS and OIDC discovery fetches, by issuer and result (ok or error)"),
    ("portcullis_logins_total", Kind::Counter,
     "Password logins at the token endpoint, by result: ok, failed, inactive, rate_limited, busy, bad_request, unavailable"),
    ("portcullis_state_errors_total", Kind::Counter,
     "State backend operations that failed or timed out, by operation"),
    ("portcullis_accept_errors_total", Kind::Counter,
     "Failed accept() calls, by listener (main or admin)"),
    ("portcullis_state_entries", Kind::Gauge,
     "Refresh-token entries the memory state backend holds"),
    ("portcullis_state_evictions_total", Kind::Counter,
     "Entries the memory state backend evicted under its cap before they expired, by kind"),
    ("portcullis_trace_export_failures_total", Kind::Counter,
     "Batches of spans the OTLP exporter could not send ([telemetry]: collector down, slow or refusing); their spans are dropped"),
];

/// Buckets of `portcullis_verify_seconds`: a cache hit takes microseconds, a full
/// signature check tens of microseconds to a few milliseconds (RSA-4096).
const VERIFY_BUCKETS: [f64; 12] = [
    0.000_002, 0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001,
    0.002_5, 0.005, 0.01,
];

/// Buckets of `portcullis_upstream_seconds`: backends answer in milliseconds to
/// seconds (up to a route's timeout).
const UPSTREAM_BUCKETS: [f64; 14] = [
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Installs the process-wide recorder (first call wins) and describes every
/// family. Returns whether metrics are being recorded.
pub fn install() -> bool {
    HANDLE
        .get_or_init(|| {
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("portcullis_verify_seconds".into()),
                    &VERIFY_BUCKETS,
                )
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full("portcullis_upstream_seconds".into()),
                    &UPSTREAM_BUCKETS,
                )
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics disabled"))
                .ok()?;
            for (name, kind, help) in FAMILIES {
                match kind {
                    Kind::Counter => metrics::describe_counter!(*name, *help),
                    Kind::Gauge => metrics::describe_gauge!(*name, *help),
                    Kind::Histogram => metrics::describe_histogram!(*name, *help),
                }
            }
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

cached!(
    trace_export_failures,
    Counter,
    metrics::counter!("portcullis_trace_export_failures_total")
);

/// Counts a batch of spans the OTLP exporter could not send.
pub fn trace_export_failed() {
    trace_export_failures().increment(1);
}

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
    use super::FAMILIES;
    use std::path::Path;

    fn sources(dir: &Path, out: &mut Vec<(String, String)>) {
        for e in std::fs::read_dir(dir).expect("src dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).expect("source file");
                out.push((p.display().to_string(), text));
            }
        }
    }

    /// A metric added anywhere in `src/` without a `FAMILIES` entry would have no
    /// `# HELP` line.
    #[test]
    fn every_metric_in_the_source_is_described() {
        let mut files = Vec::new();
        sources(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut files,
        );
        let mut seen = 0;
        for (path, text) in &files {
            for (at, _) in text.match_indices("\"portcullis_") {
                let name: String = text[at + 1..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                    .collect();
                if name == "portcullis_" {
                    continue; // this test's own needle
                }
                seen += 1;
                assert!(
                    FAMILIES.iter().any(|(n, _, _)| *n == name),
                    "{path}: metric `{name}` is not in metrics::FAMILIES"
                );
            }
        }
        assert!(seen > FAMILIES.len(), "the scan found the metric names");
    }
}
