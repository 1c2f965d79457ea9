//! An [`Answer`] as a `CheckResponse` (SPEC §8 gRPC). Allowed: `status.code` 0,
//! `ok_response.headers` the identity headers with a value (overwrite, never append),
//! `ok_response.headers_to_remove` the ones without, `ok_response.response_headers_to_add`
//! the `Set-Cookie` of a refreshed §9 session (appended). Denied: the gRPC code for the
//! HTTP status, and `denied_response` with that status, the §4 headers and JSON body
//! (a §9 `302`: `Location` and each `Set-Cookie`, appended, no body), so Envoy hands
//! the client the very answer the main listener would. Never an
//! `error_response`: Envoy treats that as a failure, which `failure_mode_allow` lets
//! through.

use super::super::{Answer, Decided};
use crate::proxy::request_id::X_REQUEST_ID;
use envoy_types::pb::envoy::config::core::v3::header_value_option::HeaderAppendAction;
use envoy_types::pb::envoy::config::core::v3::{HeaderValue as EnvoyHeader, HeaderValueOption};
use envoy_types::pb::envoy::r#type::v3::HttpStatus;
use envoy_types::pb::envoy::service::auth::v3::check_response::HttpResponse;
use envoy_types::pb::envoy::service::auth::v3::{
    CheckResponse, DeniedHttpResponse, OkHttpResponse,
};
use envoy_types::pb::google::protobuf::BoolValue;
use envoy_types::pb::google::rpc::Status;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

/// gRPC status codes (google.rpc.Code) a decision answers with.
mod code {
    pub(super) const OK: i32 = 0;
    pub(super) const UNKNOWN: i32 = 2;
    pub(super) const INVALID_ARGUMENT: i32 = 3;
    pub(super) const NOT_FOUND: i32 = 5;
    pub(super) const PERMISSION_DENIED: i32 = 7;
    pub(super) const RESOURCE_EXHAUSTED: i32 = 8;
    pub(super) const INTERNAL: i32 = 13;
    pub(super) const UNAVAILABLE: i32 = 14;
    pub(super) const UNAUTHENTICATED: i32 = 16;
}

/// The `CheckResponse` for one decision.
pub(super) fn check_response(decided: &Decided) -> CheckResponse {
    match &decided.answer {
        Answer::Allow {
            identity,
            set_cookie,
        } => match allowed(identity, set_cookie) {
            Some(ok) => CheckResponse {
                status: Some(status(code::OK, "")),
                http_response: Some(HttpResponse::OkResponse(ok)),
                ..Default::default()
            },
            // Identity values come from JSON strings, so this is unreachable; were it
            // not, the request must not pass without its identity.
            None => denied(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json_content_type(),
                br#"{"detail": "Internal Server Error"}"#,
                &decided.request_id,
            ),
        },
        Answer::Deny {
            status,
            headers,
            body,
        } => denied(*status, headers, body, &decided.request_id),
    }
}

/// The gRPC code of a denial with HTTP `status`: SPEC §8 for 401/403/400/404; the
/// nearest code otherwise (README "Envoy / Istio ext_authz"). Never OK.
pub(super) fn grpc_code(status: StatusCode) -> i32 {
    match status.as_u16() {
        401 => code::UNAUTHENTICATED,
        403 => code::PERMISSION_DENIED,
        400 => code::INVALID_ARGUMENT,
        404 => code::NOT_FOUND,
        // A sign-in redirect (SPEC §9): the caller is not authenticated yet.
        300..=399 => code::UNAUTHENTICATED,
        429 => code::RESOURCE_EXHAUSTED,
        402 | 405..=428 | 430..=499 => code::INVALID_ARGUMENT,
        502..=504 => code::UNAVAILABLE,
        500 | 501 | 505..=599 => code::INTERNAL,
        _ => code::UNKNOWN,
    }
}

fn allowed(
    identity: &[(HeaderName, Option<HeaderValue>)],
    set_cookie: &[HeaderValue],
) -> Option<OkHttpResponse> {
    let mut ok = OkHttpResponse::default();
    for (name, value) in identity {
        match value {
            Some(v) => ok.headers.push(overwrite(name, v)?),
            None => ok.headers_to_remove.push(name.as_str().to_owned()),
        }
    }
    // A refreshed §9 session's cookie, to the client with the upstream's response.
    ok.response_headers_to_add.extend(
        set_cookie
            .iter()
            .filter_map(|v| option(&http::header::SET_COOKIE, v, true)),
    );
    Some(ok)
}

fn denied(
    http_status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    request_id: &HeaderValue,
) -> CheckResponse {
    let mut out: Vec<HeaderValueOption> = headers
        .iter()
        .filter(|(n, _)| !HOP_BY_HOP.contains(n))
        // Each `Set-Cookie` of a §9 redirect is its own header: appended, not set.
        .filter_map(|(n, v)| option(n, v, n == http::header::SET_COOKIE))
        .collect();
    if !headers.contains_key(&X_REQUEST_ID) {
        out.extend(overwrite(&X_REQUEST_ID, request_id));
    }
    let grpc = grpc_code(http_status);
    CheckResponse {
        status: Some(status(grpc, http_status.canonical_reason().unwrap_or(""))),
        http_response: Some(HttpResponse::DeniedResponse(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(http_status.as_u16()),
            }),
            headers: out,
            body: String::from_utf8_lossy(body).into_owned(),
        })),
        ..Default::default()
    }
}

/// Headers of our HTTP connection, not of the denial Envoy sends its client (which
/// frames its own reply: RFC 9110 §7.6.1).
static HOP_BY_HOP: [HeaderName; 4] = [
    http::header::CONNECTION,
    http::header::CONTENT_LENGTH,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
];

fn status(code: i32, message: &str) -> Status {
    Status {
        code,
        message: message.to_owned(),
        details: Vec::new(),
    }
}

/// Set `name: value`, replacing any copy the request carries: `append` false for the
/// Envoys that read only the deprecated field (it wins when set, and false means
/// overwrite), `append_action` for the ones that read it. Envoy reads `value`, not
/// `raw_value`, so a value that is not UTF-8 is `None`.
fn overwrite(name: &HeaderName, value: &HeaderValue) -> Option<HeaderValueOption> {
    option(name, value, false)
}

/// [`overwrite`], or with `append` one more header of that name (`Set-Cookie`).
fn option(name: &HeaderName, value: &HeaderValue, append: bool) -> Option<HeaderValueOption> {
    let value = std::str::from_utf8(value.as_bytes()).ok()?;
    let action = if append {
        HeaderAppendAction::AppendIfExistsOrAdd
    } else {
        HeaderAppendAction::OverwriteIfExistsOrAdd
    };
    #[allow(deprecated)]
    Some(HeaderValueOption {
        header: Some(EnvoyHeader {
            key: name.as_str().to_owned(),
            value: value.to_owned(),
            raw_value: Vec::new(),
        }),
        append: Some(BoolValue { value: append }),
        append_action: action as i32,
        keep_empty_value: false,
    })
}

fn json_content_type() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rid() -> HeaderValue {
        HeaderValue::from_static("rid-1")
    }

    #[test]
    fn codes() {
        let cases = [
            (401, code::UNAUTHENTICATED),
            (403, code::PERMISSION_DENIED),
            (400, code::INVALID_ARGUMENT),
            (404, code::NOT_FOUND),
            (302, code::UNAUTHENTICATED),
            (429, code::RESOURCE_EXHAUSTED),
            (431, code::INVALID_ARGUMENT),
            (503, code::UNAVAILABLE),
            (500, code::INTERNAL),
            (200, code::UNKNOWN),
        ];
        for (http, grpc) in cases {
            assert_eq!(
                grpc_code(StatusCode::from_u16(http).unwrap()),
                grpc,
                "{http}"
            );
        }
    }

    #[test]
    fn allow_sets_and_removes() {
        let decided = Decided {
            answer: Answer::Allow {
                identity: vec![
                    (HeaderName::from_static("x-user"), Some(rid())),
                    (HeaderName::from_static("x-email"), None),
                ],
                set_cookie: Vec::new(),
            },
            request_id: rid(),
        };
        let r = check_response(&decided);
        assert_eq!(r.status.unwrap().code, 0);
        let Some(HttpResponse::OkResponse(ok)) = r.http_response else {
            panic!("not ok")
        };
        assert_eq!(ok.headers.len(), 1);
        let h = &ok.headers[0];
        let header = h.header.as_ref().unwrap();
        assert_eq!(
            (header.key.as_str(), header.value.as_str()),
            ("x-user", "rid-1")
        );
        assert_eq!(
            h.append_action,
            HeaderAppendAction::OverwriteIfExistsOrAdd as i32
        );
        #[allow(deprecated)]
        let append = h.append;
        assert_eq!(append, Some(BoolValue { value: false }));
        assert_eq!(ok.headers_to_remove, ["x-email"]);
    }

    fn appended(h: &HeaderValueOption) -> bool {
        #[allow(deprecated)]
        let append = h.append;
        append == Some(BoolValue { value: true })
            && h.append_action == HeaderAppendAction::AppendIfExistsOrAdd as i32
    }

    #[test]
    fn a_refreshed_session_cookie_goes_to_the_client_appended() {
        let decided = Decided {
            answer: Answer::Allow {
                identity: vec![(HeaderName::from_static("x-user"), Some(rid()))],
                set_cookie: vec![
                    HeaderValue::from_static("s_1=a; Path=/"),
                    HeaderValue::from_static("s_2=b; Path=/"),
                ],
            },
            request_id: rid(),
        };
        let Some(HttpResponse::OkResponse(ok)) = check_response(&decided).http_response else {
            panic!("not ok")
        };
        let cookies: Vec<&str> = ok
            .response_headers_to_add
            .iter()
            .inspect(|h| assert!(appended(h), "{h:?}"))
            .map(|h| h.header.as_ref().unwrap())
            .inspect(|h| assert_eq!(h.key, "set-cookie"))
            .map(|h| h.value.as_str())
            .collect();
        assert_eq!(cookies, ["s_1=a; Path=/", "s_2=b; Path=/"]);
        assert_eq!(
            ok.headers.len(),
            1,
            "identity only: cookies are not request headers"
        );
    }

    #[test]
    fn a_sign_in_redirect_keeps_its_location_and_every_cookie() {
        let r = crate::deny::Redirect {
            location: HeaderValue::from_static("https://idp.example/auth?x=1"),
            cookies: vec![
                HeaderValue::from_static("s_login=a; Max-Age=600"),
                HeaderValue::from_static("s=; Max-Age=0"),
            ],
        };
        let (status, headers, body) = r.parts();
        let decided = Decided {
            answer: Answer::Deny {
                status,
                headers,
                body,
            },
            request_id: rid(),
        };
        let r = check_response(&decided);
        assert_eq!(r.status.unwrap().code, code::UNAUTHENTICATED);
        let Some(HttpResponse::DeniedResponse(d)) = r.http_response else {
            panic!("not denied")
        };
        assert_eq!(d.status.unwrap().code, 302);
        assert_eq!(d.body, "");
        let find = |k: &str| -> Vec<(&str, bool)> {
            d.headers
                .iter()
                .filter(|h| h.header.as_ref().unwrap().key == k)
                .map(|h| (h.header.as_ref().unwrap().value.as_str(), appended(h)))
                .collect()
        };
        assert_eq!(find("location"), [("https://idp.example/auth?x=1", false)]);
        assert_eq!(
            find("set-cookie"),
            [("s_login=a; Max-Age=600", true), ("s=; Max-Age=0", true)]
        );
    }

    #[test]
    fn deny_carries_status_headers_body() {
        let mut headers = json_content_type();
        headers.insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        let decided = Decided {
            answer: Answer::Deny {
                status: StatusCode::UNAUTHORIZED,
                headers,
                body: bytes::Bytes::from_static(br#"{"detail": "Not authenticated"}"#),
            },
            request_id: rid(),
        };
        let r = check_response(&decided);
        assert_eq!(r.status.unwrap().code, code::UNAUTHENTICATED);
        let Some(HttpResponse::DeniedResponse(d)) = r.http_response else {
            panic!("not denied")
        };
        assert_eq!(d.status.unwrap().code, 401);
        assert_eq!(d.body, r#"{"detail": "Not authenticated"}"#);
        let pairs: Vec<(String, String)> = d
            .headers
            .iter()
            .map(|h| {
                let h = h.header.as_ref().unwrap();
                (h.key.clone(), h.value.clone())
            })
            .collect();
        for want in [
            ("content-type", "application/json"),
            ("www-authenticate", "Bearer"),
            ("x-request-id", "rid-1"),
        ] {
            assert!(
                pairs.contains(&(want.0.into(), want.1.into())),
                "{want:?} in {pairs:?}"
            );
        }
        assert!(!pairs.iter().any(|(k, _)| k == "connection"));
    }
}
