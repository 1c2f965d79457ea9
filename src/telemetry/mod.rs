//! Logs: one JSON object per line on stdout, level from `RUST_LOG` (default `info`).
//! Access lines (target `access`) carry exactly the SPEC §6 fields: time, request_id,
//! method, path, route, status, decision, user, upstream, duration_ms. No line ever
//! carries a token, password, key or cookie: the request path is logged normalized and
//! without its query, and no header value is logged.
//!
//! Third-party crates log request bytes below `info` (h2 logs a malformed `:path` raw at
//! debug, token-bearing query included), so `RUST_LOG` is rewritten before use: a
//! directive that names no target applies to our own targets ([`OWN_TARGETS`]) as
//! written and to every other target at most at `info`. A directive that names a target
//! (`h2=debug`) is kept as written: turning a crate's debug lines on is the operator's
//! explicit choice.

use serde_json::{Map, Value};
use std::fmt;
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// The targets our own code logs under (every `target:` in `src/` is one of these; the
/// rest default to the crate's module paths, `portcullis::...`).
pub const OWN_TARGETS: &[&str] = &["portcullis", "access", "issuer"];

/// The most a target that `RUST_LOG` does not name may log at.
const THIRD_PARTY_CAP: LevelFilter = LevelFilter::INFO;

/// Installs the JSON logger (once per process) and, with `traces` (`[telemetry]`),
/// the span exporter ([`crate::otel`]; its spans pass whatever `RUST_LOG` says). An
/// exporter that cannot start is returned as the error; logging is installed anyway.
pub fn init(traces: Option<&crate::otel::Settings>) -> Result<(), crate::otel::OtelError> {
    let spec = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let (layer, err) = match traces.map(crate::otel::layer).transpose() {
        Ok(l) => (l, None),
        Err(e) => (None, Some(e)),
    };
    let mut filter = filter(spec.as_deref());
    if let (true, Ok(d)) = (layer.is_some(), crate::otel::DIRECTIVE.parse()) {
        filter = filter.add_directive(d);
    }
    let registry = tracing_subscriber::registry().with(filter).with(JsonLines);
    if registry.with(layer).try_init().is_ok() {
        let on = tracing::enabled!(target: "access", tracing::Level::INFO);
        ACCESS.store(if on { 2 } else { 1 }, Ordering::Relaxed);
    }
    err.map_or(Ok(()), Err)
}

/// Runs `f` with the JSON logger as this thread's default: for start-up work logged
/// before the config (and so [`init`]'s `traces`) is known.
pub fn early<T>(f: impl FnOnce() -> T) -> T {
    let spec = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let sub = tracing_subscriber::registry()
        .with(filter(spec.as_deref()))
        .with(JsonLines);
    tracing::subscriber::with_default(sub, f)
}

/// The filter for a `RUST_LOG` value: `info` when unset, empty or invalid, and third-party
/// targets capped as the module doc says.
pub fn filter(spec: Option<&str>) -> EnvFilter {
    let spec = spec
        .filter(|s| !s.trim().is_empty() && EnvFilter::builder().parse(s).is_ok())
        .unwrap_or("info");
    EnvFilter::builder()
        .parse(capped(spec))
        .unwrap_or_else(|_| EnvFilter::new(capped("info")))
}

/// Rewrites `RUST_LOG` directives (`target[span{field=value}]=level`, comma-separated):
/// one without a target becomes one per [`OWN_TARGETS`] entry at its level plus itself at
/// no more than [`THIRD_PARTY_CAP`]; one with a target is kept, and put last: of two
/// directives for the same target EnvFilter keeps the later, so `access=off,info` still
/// turns access lines off.
fn capped(spec: &str) -> String {
    let mut out = Vec::new();
    let mut named = Vec::new();
    for d in spec.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let (selector, level) = if let Ok(level) = d.parse::<LevelFilter>() {
            ("", level)
        } else {
            match d.rsplit_once('=') {
                Some((sel, "")) => (sel, LevelFilter::TRACE),
                Some((sel, l)) => match l.parse::<LevelFilter>() {
                    Ok(level) => (sel, level),
                    Err(_) => (d, LevelFilter::TRACE),
                },
                None => (d, LevelFilter::TRACE),
            }
        };
        if !selector.starts_with('[') && !selector.is_empty() {
            named.push(d.to_owned());
            continue;
        }
        for own in OWN_TARGETS {
            out.push(format!("{own}{selector}={level}"));
        }
        let cap = level.min(THIRD_PARTY_CAP);
        out.push(if selector.is_empty() {
            cap.to_string()
        } else {
            format!("{selector}={cap}")
        });
    }
    out.append(&mut named);
    out.join(",")
}

struct JsonLines;

struct Fields(Map<String, Value>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64((value * 1000.0).round() / 1000.0)
            .map_or(Value::Null, Value::Number);
        self.0.insert(field.name().to_owned(), v);
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
}

impl<S: Subscriber> Layer<S> for JsonLines {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields(Map::new());
        fields.0.insert("time".into(), rfc3339_now().into());
        if meta.target() != "access" {
            fields
                .0
                .insert("level".into(), meta.level().as_str().into());
            fields.0.insert("target".into(), meta.target().into());
        }
        event.record(&mut fields);
        let mut line = Value::Object(fields.0).to_string();
        line.push('\n');
        let _ = std::io::stdout().lock().write_all(line.as_bytes());
    }
}

/// [`access_enabled`] as [`init`] found it: 0 not known, 1 off, 2 on.
static ACCESS: AtomicU8 = AtomicU8::new(0);

/// Whether access lines are written (the `access` target is on at `info`): a front
/// door fills the strings of an [`AccessLine`] only then. Asked once, by [`init`]
/// (`RUST_LOG` is read once): a `tracing::enabled!` per request would leave the
/// exporter's per-layer filter state stale and lose the request's span.
pub fn access_enabled() -> bool {
    match ACCESS.load(Ordering::Relaxed) {
        1 => false,
        2 => true,
        _ => tracing::enabled!(target: "access", tracing::Level::INFO),
    }
}

/// One access line (SPEC §6), written alike by every front door (the inline proxy,
/// the forward-auth decision listener, the connection guard's refusals). Empty
/// strings for what a request did not have (no route, no user, no upstream).
pub struct AccessLine<'a> {
    /// `X-Request-Id`.
    pub request_id: &'a http::HeaderValue,
    /// The request's method (the original one for a decision).
    pub method: &'a str,
    /// The client address (SPEC §11: behind trusted proxies, the forwarded one).
    pub client: Option<std::net::IpAddr>,
    /// The normalized path, never the query.
    pub path: &'a str,
    /// The route name (or built-in endpoint label).
    pub route: &'a str,
    /// The status answered.
    pub status: u16,
    /// The decision label ([`crate::deny::Denial::decision`], `allowed`, ...).
    pub decision: &'a str,
    /// The caller's identity.
    pub user: &'a str,
    /// The upstream forwarded to (empty for a decision).
    pub upstream: &'a str,
    /// `User-Agent` ([`user_agent`]).
    pub user_agent: &'a str,
    /// Request body bytes read.
    pub bytes_in: u64,
    /// Response body bytes sent.
    pub bytes_out: u64,
    /// When the request arrived (`None`: duration 0).
    pub started: Option<std::time::Instant>,
}

impl AccessLine<'_> {
    /// Writes the line (target `access`).
    pub fn write(&self) {
        tracing::info!(
            target: "access",
            request_id = self.request_id.to_str().unwrap_or(""),
            method = self.method,
            client = tracing::field::display(ClientField(self.client)),
            path = self.path,
            route = self.route,
            status = self.status,
            decision = self.decision,
            user = self.user,
            upstream = self.upstream,
            user_agent = self.user_agent,
            bytes_in = self.bytes_in,
            bytes_out = self.bytes_out,
            duration_ms = self.started.map_or(0.0, |s| s.elapsed().as_secs_f64() * 1000.0),
        );
    }
}

/// Longest `user_agent` logged (longer ones are cut at a character boundary).
const MAX_USER_AGENT: usize = 256;

/// `User-Agent` as logged: a visible-ASCII value (else empty), at most
/// [`MAX_USER_AGENT`] bytes.
pub fn user_agent(h: &http::HeaderMap) -> &str {
    let ua = h
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    ua.get(..MAX_USER_AGENT.min(ua.len())).unwrap_or_default()
}

/// An access line's `client`: the address, or empty.
struct ClientField(Option<std::net::IpAddr>);

impl std::fmt::Display for ClientField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) => a.fmt(f),
            None => Ok(()),
        }
    }
}

/// The current UTC time as RFC 3339 with milliseconds.
pub fn rfc3339_now() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(d.as_secs(), d.subsec_millis())
}

/// Formats seconds since the epoch as RFC 3339 (UTC).
pub fn rfc3339(secs: u64, millis: u32) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests;
