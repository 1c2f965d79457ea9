//! [`serve`] on the wire: which requests [`is_check`] dispatches, a call that fails as
//! an RPC (never an HTTP 200), and a real gRPC round trip (tonic's client over h2c to
//! [`serve`] on a loopback port).

use super::tests::{allowed, denied, get, runtime, token};
use super::*;
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use http::{HeaderValue, Version};
use std::time::Duration;

#[test]
fn only_h2_calls_of_check_go_to_the_service() {
    let call = |method, version, path: &str, ct: Option<&'static str>| {
        let mut b = http::Request::builder()
            .method(method)
            .version(version)
            .uri(path);
        if let Some(ct) = ct {
            b = b.header(http::header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
        is_check(&b.body(()).expect("request"))
    };
    let req = |version, path: &str, ct| call(Method::POST, version, path, ct);
    assert!(!call(
        Method::GET,
        Version::HTTP_2,
        CHECK_PATH,
        Some("application/grpc")
    ));
    let h2 = Version::HTTP_2;
    assert!(req(h2, CHECK_PATH, Some("application/grpc")));
    assert!(req(h2, CHECK_PATH, Some("application/grpc+proto")));
    assert!(req(h2, CHECK_PATH, Some("Application/GRPC; charset=utf-8")));
    assert!(!req(h2, CHECK_PATH, Some("application/grpc-web")));
    assert!(!req(h2, CHECK_PATH, Some("application/grpcx")));
    assert!(!req(h2, CHECK_PATH, Some("application/json")));
    assert!(!req(h2, CHECK_PATH, None));
    assert!(!req(Version::HTTP_11, CHECK_PATH, Some("application/grpc")));
    let v2 = "/envoy.service.auth.v2.Authorization/Check";
    assert!(!req(h2, v2, Some("application/grpc")));
    assert!(!req(h2, "/api/x", Some("application/grpc")));
}

/// A gRPC-framed body (uncompressed) around `message`.
fn framed(message: &[u8]) -> http_body_util::Full<bytes::Bytes> {
    let len = u32::try_from(message.len()).expect("small");
    let mut b = vec![0u8];
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(message);
    http_body_util::Full::new(b.into())
}

fn call<B>(body: B) -> http::Request<B> {
    http::Request::builder()
        .method("POST")
        .version(Version::HTTP_2)
        .uri(CHECK_PATH)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(body)
        .expect("request")
}

#[tokio::test]
async fn a_failed_rpc_is_no_http_200() {
    let rt = runtime();
    // Not a CheckRequest (a truncated varint), no message at all, one over 1 MiB.
    let cases = [
        (framed(&[0xff, 0xff]), "13"),
        (http_body_util::Full::default(), "13"),
        (framed(&vec![0; MAX_MESSAGE + 1]), "8"),
    ];
    for (body, code) in cases {
        let resp = serve(rt.clone(), call(body)).await;
        assert_eq!(resp.status(), 400);
        assert_eq!(resp.headers()["grpc-status"], code);
    }
    // An empty message is an empty CheckRequest: a decision (a 400), RPC status OK.
    let resp = serve(rt.clone(), call(framed(&[]))).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("grpc-status").is_none());
}

/// The decision listener's dispatch, in small: h2c, [`is_check`] to [`serve`].
async fn h2c_server(rt: Arc<Runtime>) -> std::net::SocketAddr {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let rt = rt.clone();
            let svc =
                hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let rt = rt.clone();
                    async move {
                        assert!(is_check(&req), "{req:?}");
                        Ok::<_, std::convert::Infallible>(serve(rt, req).await)
                    }
                });
            tokio::spawn(
                hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc),
            );
        }
    });
    addr
}

#[tokio::test]
async fn real_grpc_client_over_h2c() {
    let rt = runtime();
    let addr = h2c_server(rt.clone()).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .expect("connect");
    let mut client = AuthorizationClient::new(channel);
    let t = token(&rt, None);
    let bearer = format!("Bearer {t}");
    let ok = client
        .check(get("/api/x", &[("authorization", &bearer)]))
        .await
        .expect("RPC");
    let (set, removed) = allowed(ok.get_ref());
    assert_eq!(set[0], ("x-user".into(), "alice".into()));
    assert_eq!(removed, ["x-user-groups"]);
    let no = client.check(get("/api/x", &[])).await.expect("RPC");
    assert_eq!(denied(no.get_ref()).1, 401);
    let bad = client.check(CheckRequest::default()).await.expect("RPC");
    assert_eq!(denied(bad.get_ref()).0, 3);
}

#[tokio::test(start_paused = true)]
async fn a_message_that_never_comes_is_deadline_exceeded() {
    use http_body_util::StreamBody;
    // The head arrived, the message never does (the test's clock is paused: the
    // header_timeout of 1s passes at once).
    let pending = futures_util::stream::pending::<
        Result<http_body::Frame<bytes::Bytes>, std::convert::Infallible>,
    >();
    let req = call(()).map(|()| StreamBody::new(pending));
    let resp = serve(runtime(), req).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(resp.headers()["grpc-status"], "4", "DEADLINE_EXCEEDED");
}
