//! OpenTelemetry traces (SPEC §11 `[telemetry]`): `tracing` spans of target
//! `portcullis::otel` become OpenTelemetry spans ([`tracing_opentelemetry`]), batched
//! by the SDK's [`BatchSpanProcessor`] and sent over OTLP/HTTP (protobuf) to
//! `{otlp_endpoint}/v1/traces` by `opentelemetry-otlp`.
//!
//! Spans: a server span per request on the inline proxy ([`server_span`], `request`)
//! and per decision on the decision listener (`decision`), with the route name, the
//! decision and the status ([`finish`]); children for token verification
//! ([`verify_span`]), JWKS and discovery fetches ([`jwks_span`]; a scheduled refresh
//! is a trace of its own) and the upstream call ([`upstream_span`]). Attributes are
//! only the ones written here: never a header value, so never a token, cookie or
//! `Authorization`.
//!
//! Context: a client's W3C `traceparent` (and `tracestate`) is continued; the upstream
//! gets a `traceparent` naming the upstream span ([`inject`]: the client's own
//! `traceparent` / `tracestate` are replaced, not passed on). Sampling is parent-based:
//! a client's sampled flag decides for its trace, `sample_ratio` for new ones.
//!
//! Cost: export runs on the batch processor's own thread with a blocking HTTP client
//! (reqwest's, which runs its own runtime): never on a request task or a runtime worker.
//! A span's end is a non-blocking send to the processor's bounded queue (a full queue
//! drops the span). A collector that is down or never answers costs a failed export on
//! that thread (bounded by [`EXPORT_TIMEOUT`]) and a count in
//! `portcullis_trace_export_failures_total`. Without `[telemetry]` every function here
//! returns at once ([`on`] is false): no span is created per request.

use http::{HeaderMap, HeaderName, HeaderValue, Method};
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;
use tracing::field::Empty;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// The target of every span exported (and of nothing else).
pub const TARGET: &str = "portcullis::otel";

/// Longest one export (retries included) may take before it counts as failed.
pub const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the graceful exit waits for the last spans to be sent.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

static ON: AtomicBool = AtomicBool::new(false);
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

/// What `[telemetry]` configures (SPEC §11), as the pipeline takes it.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `{otlp_endpoint}/v1/traces`.
    pub traces_url: String,
    /// `service.name`.
    pub service_name: String,
    /// Share of new traces sampled, in `[0, 1]`.
    pub sample_ratio: f64,
}

/// The `RUST_LOG`-style directive that keeps the exported spans on whatever
/// `RUST_LOG` says (added to the filter when traces are on).
pub const DIRECTIVE: &str = "portcullis::otel=info";

/// The exporter could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the OTLP exporter: {0}")]
pub struct OtelError(String);

/// Whether traces are exported (`[telemetry]` at start-up).
#[inline]
pub fn on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Builds the pipeline for `cfg` and turns spans on: the layer to add to the
/// subscriber (it sees only spans of [`TARGET`]). Call once, outside an async context,
/// after [`crate::metrics::install`].
pub fn layer<S>(cfg: &Settings) -> Result<impl Layer<S>, OtelError>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(cfg.traces_url.clone())
        .with_timeout(EXPORT_TIMEOUT)
        .build()
        .map_err(|e| OtelError(e.to_string()))?;
    let processor = BatchSpanProcessor::builder(Counted {
        inner: exporter,
        failing: AtomicBool::new(false),
    })
    .build();
    let root = Sampler::TraceIdRatioBased(cfg.sample_ratio);
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(Sampler::ParentBased(Box::new(root)))
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(cfg.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("portcullis");
    if PROVIDER.set(provider).is_err() {
        return Err(OtelError("already started".into()));
    }
    // Exported at 0 from the start, so a rate can be taken before the first failure.
    crate::metrics::trace_export_failures().increment(0);
    ON.store(true, Ordering::SeqCst);
    Ok(tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_tracked_inactivity(false)
        .with_threads(false)
        .with_location(false)
        .with_level(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|m| {
            m.is_span() && m.target() == TARGET
        })))
}

/// Sends the spans still queued and stops the exporter (the graceful exit).
pub fn shutdown() {
    if let Some(p) = PROVIDER.get() {
        let _ = p.shutdown_with_timeout(SHUTDOWN_TIMEOUT);
    }
}

/// Which front door a server span is for.
#[derive(Debug, Clone, Copy)]
pub enum Door {
    /// The inline proxy (span `request`).
    Proxy,
    /// The decision listener (span `decision`).
    Decision,
}

/// The server span of one request, continuing the client's `traceparent` in
/// `headers`. [`Span::none`] without `[telemetry]`.
pub fn server_span(door: Door, method: &Method, headers: &HeaderMap) -> Span {
    if !on() {
        return Span::none();
    }
    let span = match door {
        Door::Proxy => tracing::info_span!(target: "portcullis::otel", "request",
            otel.kind = "server", http.request.method = method.as_str(),
            http.route = Empty, portcullis.decision = Empty,
            http.response.status_code = Empty, otel.status_code = Empty),
        Door::Decision => tracing::info_span!(target: "portcullis::otel", "decision",
            otel.kind = "server", http.request.method = method.as_str(),
            http.route = Empty, portcullis.decision = Empty,
            http.response.status_code = Empty, otel.status_code = Empty),
    };
    let parent = TraceContextPropagator::new().extract(&Headers(headers));

    let _ = span.set_parent(parent);
    span
}

/// Records what a server span reports: the matched route's name (empty: none), the
/// decision label and the status (a 5xx marks the span as an error).
pub fn finish(span: &Span, route: Option<&str>, decision: &str, status: u16) {
    if span.is_none() {
        return;
    }
    if let Some(r) = route {
        span.record("http.route", r);
    }
    span.record("portcullis.decision", decision);
    span.record("http.response.status_code", status);
    if status >= 500 {
        span.record("otel.status_code", "error");
    }
}

/// The token verification span (cache lookup, signature and claims, an unknown-`kid`
/// re-fetch); [`verified`] records its outcome.
pub fn verify_span() -> Span {
    if !on() {
        return Span::none();
    }
    tracing::info_span!(target: "portcullis::otel", "verify",
        portcullis.issuer = Empty, portcullis.result = Empty)
}

/// Records a verification's issuer (when verified) and result (`ok` or the denial's
/// decision label).
pub fn verified(span: &Span, issuer: Option<&str>, result: &str) {
    if span.is_none() {
        return;
    }
    if let Some(i) = issuer {
        span.record("portcullis.issuer", i);
    }
    span.record("portcullis.result", result);
}

/// A JWKS (or discovery, then JWKS) fetch for the issuer named `issuer`.
pub fn jwks_span(issuer: &str) -> Span {
    if !on() {
        return Span::none();
    }
    tracing::info_span!(target: "portcullis::otel", "jwks.fetch",
        otel.kind = "client", portcullis.issuer = issuer,
        portcullis.result = Empty, otel.status_code = Empty)
}

/// Records a fetch's result.
pub fn fetched(span: &Span, ok: bool) {
    if span.is_none() {
        return;
    }
    span.record("portcullis.result", if ok { "ok" } else { "error" });
    if !ok {
        span.record("otel.status_code", "error");
    }
}

/// The upstream call to the upstream named `upstream`.
pub fn upstream_span(upstream: &str, method: &Method) -> Span {
    if !on() {
        return Span::none();
    }
    tracing::info_span!(target: "portcullis::otel", "upstream",
        otel.kind = "client", portcullis.upstream = upstream,
        http.request.method = method.as_str(), http.response.status_code = Empty,
        otel.status_code = Empty)
}

/// Records the upstream's status (`None`: no answer, an error).
pub fn answered(span: &Span, status: Option<u16>) {
    if span.is_none() {
        return;
    }
    match status {
        Some(s) => span.record("http.response.status_code", s),
        None => span.record("otel.status_code", "error"),
    };
}

/// Replaces `traceparent` / `tracestate` in `headers` with the context of `span` (the
/// upstream span). Nothing without `[telemetry]`.
pub fn inject(span: &Span, headers: &mut HeaderMap) {
    if span.is_none() {
        return;
    }
    headers.remove("traceparent");
    headers.remove("tracestate");
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeadersMut(headers));
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

struct HeadersMut<'a>(&'a mut HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(key.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            self.0.insert(k, v);
        }
    }
}

/// The OTLP exporter, counting failed exports in
/// `portcullis_trace_export_failures_total` and logging when exports start and stop
/// failing (once each, not per batch).
#[derive(Debug)]
struct Counted {
    inner: opentelemetry_otlp::SpanExporter,
    failing: AtomicBool,
}

impl opentelemetry_sdk::trace::SpanExporter for Counted {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len();
        let result = self.inner.export(batch).await;
        match &result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("trace export recovered");
                }
            }
            Err(e) => {
                crate::metrics::trace_export_failed();
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, spans, "trace export failed; spans are dropped until the collector answers");
                }
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}
