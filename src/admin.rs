//! The admin listener (`[admin] listen`, SPEC §6): a separate plain-HTTP/1.1
//! listener, never behind auth, for probes and operators.
//!
//! - `GET /healthz`: 200 while the process lives;
//! - `GET /readyz`: 200 once the config is loaded and every JWKS issuer has keys,
//!   503 before that, while draining, and while the Redis state backend is
//!   unreachable (unless `[state] fail_open`);
//! - `GET /metrics`: Prometheus text format;
//! - `GET /`: the read-only status page; `GET /config`: the running config, redacted;
//! - anything else: 404 (`HEAD` is answered like `GET`, other methods 405).
//!
//! [`admin_router`] is a plain function from (app, method, path) to a response, so
//! pages are added as match arms and tested without a socket.

use crate::app::App;
use bytes::Bytes;
use http::{header, Method, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

fn owned(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    r
}

/// Answers one admin request.
pub(crate) fn admin_router(app: &App, method: &Method, path: &str) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if app.ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" if app.is_draining() => text(StatusCode::SERVICE_UNAVAILABLE, "draining\n"),
        "/readyz" if !app.runtime.load().state_ok() => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "state backend unreachable\n",
        ),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "waiting for JWKS keys\n"),
        "/metrics" => owned(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            crate::metrics::render(),
        ),
        "/" => owned(
            StatusCode::OK,
            "text/html; charset=utf-8",
            crate::status::page(app),
        ),
        "/config" => owned(
            StatusCode::OK,
            "application/json",
            crate::status::config_json(&app.runtime.load().config).to_string(),
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

/// Serves the admin listener until the process ends.
pub(crate) async fn serve(listener: TcpListener, app: Arc<App>) {
    let mut backoff = crate::server::accept::Backoff::new("admin");
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => {
                backoff.succeeded();
                x
            }
            Err(e) => {
                tokio::time::sleep(backoff.failed(&e)).await;
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let resp = admin_router(&app, req.method(), req.uri().path());
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
}
