//! OpenTelemetry traces (SPEC §11 `[telemetry]`), against a real OTLP/HTTP receiver:
//! [`Collector`] is a hyper server that accepts `POST /v1/traces` and decodes each
//! `ExportTraceServiceRequest` with the `opentelemetry-proto` messages (prost), as a
//! collector does. The proxy is the real binary (its exporter is process-wide); a
//! graceful exit (SIGTERM) flushes what is still batched, so every test reads the
//! spans after the process has exited.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

// ------------------------------------------------------------------ the receiver

/// An OTLP/HTTP trace receiver on a port-0 loopback listener: every span of every
/// `ExportTraceServiceRequest`, with its resource's `service.name`.
#[derive(Clone)]
struct Collector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<(String, Span)>>>,
    posts: Arc<AtomicUsize>,
}

impl Collector {
    async fn start() -> Collector {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let c = Collector {
            addr: listener.local_addr().unwrap(),
            spans: Arc::default(),
            posts: Arc::default(),
        };
        let me = c.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let me = me.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let me = me.clone();
                        async move { Ok::<_, std::convert::Infallible>(me.receive(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        c
    }

    async fn receive(
        &self,
        req: http::Request<hyper::body::Incoming>,
    ) -> http::Response<Full<Bytes>> {
        let reply = |status: u16, body: Vec<u8>| {
            http::Response::builder()
                .status(status)
                .header("content-type", "application/x-protobuf")
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        };
        let protobuf = req
            .headers()
            .get("content-type")
            .is_some_and(|v| v == "application/x-protobuf");
        if req.method() != http::Method::POST || req.uri().path() != "/v1/traces" || !protobuf {
            return reply(404, Vec::new());
        }
        let body = req.into_body().collect().await.unwrap().to_bytes();
        let Ok(export) = ExportTraceServiceRequest::decode(body) else {
            return reply(400, Vec::new());
        };
        let mut spans = self.spans.lock().unwrap();
        for rs in export.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref().and_then(|v| v.value.clone()))
                .map(|v| text(&v))
                .unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    spans.push((service.clone(), s));
                }
            }
        }
        self.posts.fetch_add(1, Ordering::SeqCst);
        reply(200, ExportTraceServiceResponse::default().encode_to_vec())
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn spans(&self) -> Vec<Span> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .map(|(_, s)| s.clone())
            .collect()
    }
}

fn text(v: &Any) -> String {
    match v {
        Any::StringValue(s) => s.clone(),
        Any::IntValue(i) => i.to_string(),
        Any::BoolValue(b) => b.to_string(),
        Any::DoubleValue(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// The attribute `key` of `s`, as text.
fn attr(s: &Span, key: &str) -> Option<String> {
    s.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref().and_then(|v| v.value.as_ref()))
        .map(text)
}

/// The attribute `key` of `s` is `want`.
#[track_caller]
fn assert_attr(s: &Span, key: &str, want: &str) {
    assert_eq!(attr(s, key).as_deref(), Some(want));
}

/// `s` records `decision` and the response status `status`.
#[track_caller]
fn assert_decision(s: &Span, decision: &str, status: &str) {
    assert_attr(s, "portcullis.decision", decision);
    assert_attr(s, "http.response.status_code", status);
}

/// `s` is a server span whose parent is the client's span [`CLIENT_SPAN`], with
/// its route, decision and status.
#[track_caller]
fn assert_server_span(s: &Span, route: &str, decision: &str, status: &str) {
    assert_eq!(hex(&s.parent_span_id), CLIENT_SPAN);
    assert_eq!(s.kind, 2, "SPAN_KIND_SERVER");
    assert_attr(s, "http.route", route);
    assert_decision(s, decision, status);
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The one span named `name` in `trace`.
fn one<'a>(spans: &'a [Span], trace: &str, name: &str) -> &'a Span {
    let found: Vec<_> = spans
        .iter()
        .filter(|s| s.name == name && hex(&s.trace_id) == trace)
        .collect();
    assert_eq!(found.len(), 1, "one `{name}` span in {trace}: {spans:#?}");
    found[0]
}

/// A `traceparent` naming `trace` and `parent`, `sampled` or not.
fn traceparent(trace: &str, parent: &str, sampled: bool) -> String {
    format!("00-{trace}-{parent}-0{}", u8::from(sampled))
}

/// `(trace id, parent id, flags)` of a `traceparent`.
fn parse_traceparent(v: &str) -> (String, String, String) {
    let p: Vec<&str> = v.split('-').collect();
    assert_eq!(p.len(), 4, "traceparent {v}");
    assert_eq!(p[0], "00", "traceparent {v}");
    (p[1].into(), p[2].into(), p[3].into())
}

// ------------------------------------------------------------------ the proxy

fn telemetry(collector: &str, extra: &str) -> String {
    format!("[telemetry]\notlp_endpoint = \"{collector}\"\nservice_name = \"edge-test\"\n{extra}\n")
}

/// The binary with one protected route `api` to `upstream`, the HS issuer and
/// `[telemetry]` sending to `collector`.
async fn proxy(upstream: &Upstream, collector: &str, extra: &str) -> Proxy {
    let body = format!(
        "{ADMIN}[upstreams.app]\nurl = \"{}\"\n{}{}\n\
         [[routes]]\nname = \"api\"\npath = \"/api/**\"\nupstream = \"app\"\n",
        upstream.url(),
        hs_issuer(),
        telemetry(collector, extra),
    );
    Proxy::builder().binary().start(&body).await
}

/// SIGTERM, and the exit that flushes the batched spans.
async fn stop(mut p: Proxy) -> String {
    p.signal("TERM");
    let st = p.wait_exit(Duration::from_secs(30)).await;
    assert!(
        st.is_some_and(|s| s.success()),
        "no clean exit: {st:?}\n{}",
        p.logs()
    );
    p.logs()
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN: &str = "00f067aa0ba902b7";

/// SPEC §11: a client's `traceparent` is continued: portcullis's server span has the
/// client's trace id and the client's span as parent; the upstream receives a
/// `traceparent` of the same trace whose parent is portcullis's upstream span (the
/// client's header replaced), and that span's parent is the server span, as is the
/// verification span's. Route, decision and status are attributes; no token,
/// `Authorization` or cookie value is in any attribute.
#[tokio::test]
async fn a_trace_runs_from_the_client_through_portcullis_to_the_upstream() {
    let up = spawn_upstream().await;
    let collector = Collector::start().await;
    let p = proxy(&up, &collector.url(), "").await;
    let tok = token("alice", json!({}));
    let r = p
        .send(
            Req::get("/api/items?q=1")
                .bearer(&tok)
                .header("traceparent", &traceparent(TRACE, CLIENT_SPAN, true))
                .header("cookie", "session=cookie-secret-value"),
        )
        .await;
    r.assert_status(200);
    let sent = up.last();
    let tp = sent
        .header("traceparent")
        .expect("upstream got a traceparent");
    assert_eq!(
        sent.header_all("traceparent").len(),
        1,
        "{:?}",
        sent.headers
    );
    let (trace, parent, flags) = parse_traceparent(tp);
    assert_eq!(trace, TRACE, "the client's trace id goes upstream");
    assert_ne!(
        parent, CLIENT_SPAN,
        "the client's traceparent was passed through"
    );
    assert_eq!(flags, "01");
    // A denied request is a span too.
    p.get("/api/denied", None).await.assert_status(401);
    stop(p).await;

    let spans = collector.spans();
    let server = one(&spans, TRACE, "request");
    assert_server_span(server, "api", "allowed", "200");
    assert_attr(server, "http.request.method", "GET");
    let upstream = one(&spans, TRACE, "upstream");
    assert_eq!(
        hex(&upstream.span_id),
        parent,
        "the upstream's parent is portcullis's span"
    );
    assert_eq!(upstream.parent_span_id, server.span_id);
    assert_eq!(upstream.kind, 3, "SPAN_KIND_CLIENT");
    assert_attr(upstream, "portcullis.upstream", "app");
    assert_attr(upstream, "http.response.status_code", "200");
    let verify = one(&spans, TRACE, "verify");
    assert_eq!(verify.parent_span_id, server.span_id);
    assert_attr(verify, "portcullis.result", "ok");
    assert_attr(verify, "portcullis.issuer", "test");
    // The denial: a trace of its own (no traceparent), with its decision and status.
    let denied = spans
        .iter()
        .find(|s| s.name == "request" && hex(&s.trace_id) != TRACE)
        .expect("the denied request's span");
    assert!(denied.parent_span_id.is_empty());
    assert_decision(denied, "denied_no_token", "401");
    assert_eq!(
        denied.status.as_ref().map_or(0, |s| s.code),
        0,
        "a 401 is no error"
    );
    let services: Vec<String> = collector
        .spans
        .lock()
        .unwrap()
        .iter()
        .map(|(s, _)| s.clone())
        .collect();
    assert!(services.iter().all(|s| s == "edge-test"), "{services:?}");
    assert_no_secret(&spans, &[&tok, "Bearer", "cookie-secret-value", "q=1"]);
}

/// No attribute (nor span name, nor event) of `spans` contains one of `secrets`.
fn assert_no_secret(spans: &[Span], secrets: &[&str]) {
    let all = format!("{spans:?}");
    for s in secrets {
        assert!(!all.contains(s), "`{s}` exported in a span: {all}");
    }
}

/// SPEC §11: a JWKS fetch is a child of the verification that needed it (a token
/// with an unknown `kid` re-fetches once the rate-limit window since the start-up
/// fetch has passed); the start-up fetch is a trace of its own. The denial of an
/// invalid token is recorded on the verification span.
#[tokio::test]
async fn a_jwks_fetch_is_a_child_of_the_verification() {
    let up = spawn_upstream().await;
    let (old, new) = (TestKey::rsa(), TestKey::rsa());
    let idp = Idp::start(vec![old.jwk_with("old", "RS256")]).await;
    let collector = Collector::start().await;
    let body = format!(
        "{ADMIN}[upstreams.app]\nurl = \"{}\"\n{}{}\n\
         [[routes]]\nname = \"api\"\npath = \"/api/**\"\nupstream = \"app\"\n",
        up.url(),
        idp.issuer("idp", "https://idp.test/", ""),
        telemetry(&collector.url(), ""),
    );
    let p = Proxy::builder().binary().start(&body).await;
    p.wait_ready().await;
    idp.set_keys(vec![
        old.jwk_with("old", "RS256"),
        new.jwk_with("new", "RS256"),
    ]);
    // The unknown-kid re-fetch is rate-limited to one per 10 s per issuer (start-up's
    // fetch counts): wait the window out.
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    let claims =
        json!({"iss": "https://idp.test/", "sub": "bob", "aud": "api", "exp": now() + 600});
    let tok = jwt(
        &json!({"alg": "RS256", "kid": "new"}),
        &claims,
        Signer::Key(&new),
    );
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let r = p
        .send(
            Req::get("/api/x")
                .bearer(&tok)
                .header("traceparent", &traceparent(trace, CLIENT_SPAN, true)),
        )
        .await;
    r.assert_status(200);
    let bad = format!("{}x", &tok[..tok.len() - 2]);
    let trace2 = "1af7651916cd43dd8448eb211c80319c";
    p.send(
        Req::get("/api/x")
            .bearer(&bad)
            .header("traceparent", &traceparent(trace2, CLIENT_SPAN, true)),
    )
    .await
    .assert_status(401);
    stop(p).await;

    let spans = collector.spans();
    let server = one(&spans, trace, "request");
    let verify = one(&spans, trace, "verify");
    assert_eq!(verify.parent_span_id, server.span_id);
    let fetch = one(&spans, trace, "jwks.fetch");
    assert_eq!(
        fetch.parent_span_id, verify.span_id,
        "the fetch is the verification's child"
    );
    assert_attr(fetch, "portcullis.issuer", "idp");
    assert_attr(fetch, "portcullis.result", "ok");
    let startup = spans
        .iter()
        .filter(|s| s.name == "jwks.fetch" && s.parent_span_id.is_empty())
        .count();
    assert!(
        startup >= 1,
        "the start-up fetch is a root span: {spans:#?}"
    );
    let refused = one(&spans, trace2, "verify");
    assert_attr(refused, "portcullis.result", "denied_invalid_token");
    assert_no_secret(&spans, &[&tok, &bad, "Bearer"]);
}

/// SPEC §11 `sample_ratio`, parent-based: with 0, no trace portcullis starts is
/// exported (nor one whose `traceparent` is not sampled), while a client's sampled
/// trace still is; the upstream gets the `traceparent` either way. The positive
/// control: the same requests with the default ratio 1 are exported.
#[tokio::test]
async fn sample_ratio_zero_exports_only_sampled_client_traces() {
    let up = spawn_upstream().await;
    let (none, all) = (Collector::start().await, Collector::start().await);
    let p0 = proxy(&up, &none.url(), "sample_ratio = 0.0").await;
    let p1 = proxy(&up, &all.url(), "").await;
    let tok = token("alice", json!({}));
    let unsampled = "5bf92f3577b34da6a3ce929d0e0e4736";
    for p in [&p0, &p1] {
        for _ in 0..5 {
            p.get("/api/a", Some(&tok)).await.assert_status(200);
        }
        let r = Req::get("/api/a")
            .bearer(&tok)
            .header("traceparent", &traceparent(unsampled, CLIENT_SPAN, false));
        p.send(r).await.assert_status(200);
        let (trace, _, flags) = parse_traceparent(up.last().header("traceparent").unwrap());
        assert_eq!((trace.as_str(), flags.as_str()), (unsampled, "00"));
    }
    let r = Req::get("/api/a")
        .bearer(&tok)
        .header("traceparent", &traceparent(TRACE, CLIENT_SPAN, true));
    p0.send(r).await.assert_status(200);
    stop(p0).await;
    stop(p1).await;

    let exported = none.spans();
    assert!(
        !exported.is_empty(),
        "the client's sampled trace is exported"
    );
    assert!(
        exported.iter().all(|s| hex(&s.trace_id) == TRACE),
        "ratio 0 exported traces of its own: {exported:#?}"
    );
    one(&exported, TRACE, "request");
    let control = all.spans();
    let requests = control.iter().filter(|s| s.name == "request").count();
    assert_eq!(
        requests, 5,
        "ratio 1: each new trace, not the unsampled one: {control:#?}"
    );
    assert!(control.iter().all(|s| hex(&s.trace_id) != unsampled));
}

/// `portcullis_trace_export_failures_total` from the admin listener.
async fn export_failures(p: &Proxy) -> f64 {
    let text = p
        .admin_get("/metrics")
        .await
        .map(|r| r.text())
        .unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with("portcullis_trace_export_failures_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(-1.0)
}

/// SPEC §11: "export is batched and never delays a request; an unreachable collector
/// costs nothing but a metric". A collector that accepts connections and never
/// answers, and one where nothing listens: every request still succeeds (the
/// timeout is a hang detector, not a timing assertion), and the failed exports are
/// counted (at 0 before any failure).
#[tokio::test]
async fn a_collector_that_never_answers_or_is_down_costs_only_a_metric() {
    let up = spawn_upstream().await;
    let silent = silent_upstream().await;
    let closed = closed_port();
    let tok = token("alice", json!({}));
    for collector in [
        format!("http://{silent}"),
        format!("http://{}", closed.addr),
    ] {
        let body = format!(
            "{ADMIN}[upstreams.app]\nurl = \"{}\"\n{}{}\n\
             [[routes]]\nname = \"api\"\npath = \"/api/**\"\nupstream = \"app\"\n",
            up.url(),
            hs_issuer(),
            telemetry(&collector, ""),
        );
        // Batches every 50 ms, so exports are attempted while requests run.
        let p = Proxy::builder()
            .env("OTEL_BSP_SCHEDULE_DELAY", "50")
            .start(&body)
            .await;
        assert_eq!(
            export_failures(&p).await,
            0.0,
            "exported at 0 from the start"
        );
        let all = async {
            for i in 0..300 {
                let tp = traceparent(TRACE, &format!("{:016x}", i + 1), true);
                let r = p
                    .send(Req::get("/api/a").bearer(&tok).header("traceparent", &tp))
                    .await;
                r.assert_status(200);
            }
        };
        tokio::time::timeout(Duration::from_secs(120), all)
            .await
            .unwrap_or_else(|_| panic!("requests hung with collector {collector}\n{}", p.logs()));
        let counted = eventually(Duration::from_secs(30), || async {
            export_failures(&p).await >= 1.0
        })
        .await;
        assert!(
            counted,
            "failed exports counted for {collector}\n{}",
            p.logs()
        );
    }
}

/// SPEC §11 on the decision listener: a server span per decision, continuing the
/// ingress's `traceparent` (HTTP, and Envoy's gRPC `ext_authz`), with route, decision
/// and status, and the verification as its child; a denial is recorded with its status.
#[tokio::test]
async fn the_decision_listener_has_a_server_span_per_decision() {
    let collector = Collector::start().await;
    let body = format!(
        "[forward_auth]\nlisten = \"127.0.0.1:0\"\n{}{}\n\
         [[routes]]\nname = \"api\"\npath = \"/api/**\"\n",
        hs_issuer(),
        telemetry(&collector.url(), ""),
    );
    let p = Proxy::builder().binary().start(&body).await;
    let fa = p.forward_auth.expect("decision listener");
    let tok = token("alice", json!({}));
    let ask = |bearer: Option<&str>, trace: &str| {
        let mut r = Req::get("/auth")
            .header("X-Forwarded-Method", "GET")
            .header("X-Forwarded-Uri", "/api/a")
            .header("X-Forwarded-Host", "app.example.com")
            .header("X-Forwarded-Proto", "https")
            .header("traceparent", &traceparent(trace, CLIENT_SPAN, true));
        if let Some(t) = bearer {
            r = r.bearer(t);
        }
        r
    };
    let denied_trace = "6bf92f3577b34da6a3ce929d0e0e4736";
    send(fa, &ask(Some(&tok), TRACE), &p.logs())
        .await
        .assert_status(200);
    send(fa, &ask(None, denied_trace), &p.logs())
        .await
        .assert_status(401);
    // Envoy's gRPC ext_authz on the same listener: the original request's traceparent.
    let grpc_trace = "7bf92f3577b34da6a3ce929d0e0e4736";
    let mut c = support::grpc::client(fa).await;
    let (b, tp) = (
        format!("Bearer {tok}"),
        traceparent(grpc_trace, CLIENT_SPAN, true),
    );
    let req = support::grpc::check(
        "GET",
        "app.example.com",
        "/api/g",
        &[("authorization", &b), ("traceparent", &tp)],
    );
    let r = support::grpc::ask(&mut c, req).await;
    support::grpc::allowed(&r);
    stop(p).await;

    let spans = collector.spans();
    let decision = one(&spans, TRACE, "decision");
    assert_server_span(decision, "api", "allowed", "200");
    let verify = one(&spans, TRACE, "verify");
    assert_eq!(verify.parent_span_id, decision.span_id);
    let grpc = one(&spans, grpc_trace, "decision");
    assert_eq!(hex(&grpc.parent_span_id), CLIENT_SPAN);
    assert_attr(grpc, "portcullis.decision", "allowed");
    let denied = one(&spans, denied_trace, "decision");
    assert_decision(denied, "denied_no_token", "401");
    assert_no_secret(&spans, &[&tok, "Bearer"]);
}

/// The exporter is set up at start: a reload that changes `[telemetry]` says it takes
/// effect at the next restart, and the rest of the reload applies.
#[tokio::test]
async fn a_reload_that_changes_telemetry_warns() {
    let up = spawn_upstream().await;
    let collector = Collector::start().await;
    let p = proxy(&up, &collector.url(), "").await;
    let body = format!(
        "{ADMIN}[upstreams.app]\nurl = \"{}\"\n{}{}\n\
         [[routes]]\nname = \"api2\"\npath = \"/api/**\"\nupstream = \"app\"\n",
        up.url(),
        hs_issuer(),
        telemetry(&collector.url(), "sample_ratio = 0.5"),
    );
    p.rewrite(&body);
    p.signal("HUP");
    p.wait_log_line("the [telemetry] warning", |l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.contains("[telemetry] changes take effect"))
    })
    .await;
    let tok = token("alice", json!({}));
    let ok = eventually(Duration::from_secs(10), || async {
        p.get("/api/a", Some(&tok)).await.status == 200 && p.logs().contains("\"route\":\"api2\"")
    })
    .await;
    assert!(ok, "the reload applied: {}", p.logs());
    stop(p).await;
}
