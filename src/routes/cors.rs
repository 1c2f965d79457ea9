//! A route's `cors` (SPEC §11), compiled: the origins it answers, and the header
//! values of its preflight and actual responses, made once at load time.

use http::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_MAX_AGE, VARY,
};
use http::HeaderMap;

/// `cors = { origins, methods, headers, credentials, max_age }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    /// Listed origins, lower case, `scheme://host[:port]`.
    pub origins: Vec<String>,
    /// `"*"` was listed: any origin (never with `credentials`).
    pub any: bool,
    /// `Access-Control-Allow-Methods`.
    pub methods: HeaderValue,
    /// `Access-Control-Allow-Headers` (`None`: none listed).
    pub headers: Option<HeaderValue>,
    /// `Access-Control-Allow-Credentials: true`.
    pub credentials: bool,
    /// `Access-Control-Max-Age` in seconds (`None`: not set).
    pub max_age: Option<HeaderValue>,
}

impl Cors {
    /// Whether `origin` (the request's `Origin`) is one this route answers.
    pub fn allows(&self, origin: &HeaderValue) -> bool {
        let Ok(o) = origin.to_str() else { return false };
        // `null` (sandboxed frames, file: pages) is never an allowed origin.
        if o.is_empty() || o == "null" {
            return false;
        }
        self.any || self.origins.iter().any(|l| l.eq_ignore_ascii_case(o))
    }

    /// The headers of a preflight answer to the allowed `origin`.
    pub fn preflight(&self, origin: &HeaderValue, h: &mut HeaderMap) {
        self.actual(origin, h);
        h.insert(ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone());
        if let Some(v) = &self.headers {
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, v.clone());
        }
        if let Some(v) = &self.max_age {
            h.insert(ACCESS_CONTROL_MAX_AGE, v.clone());
        }
    }

    /// The headers of an actual response (denials included) to the allowed `origin`:
    /// ours replace any the upstream set; `Origin` is added to `Vary`.
    pub fn actual(&self, origin: &HeaderValue, h: &mut HeaderMap) {
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
        if self.credentials {
            h.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        } else {
            h.remove(ACCESS_CONTROL_ALLOW_CREDENTIALS);
        }
        let varies = h
            .get_all(VARY)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case("origin") || v.trim() == "*");
        if !varies {
            h.append(VARY, HeaderValue::from_static("Origin"));
        }
    }
}
