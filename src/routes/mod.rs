//! The compiled route matcher: host, path pattern and methods -> first matching route.
//!
//! Patterns are compiled once at load time. Matching walks the routes in file order
//! over the *normalized* path ([`crate::path::normalize`]) and allocates nothing.
//! [`shadowed_by`] decides at load time whether an earlier route always wins over a
//! later one (a config error: the later route could never apply).

use http::Method;

pub mod cors;
mod pattern;
pub use pattern::{HostMatch, PathPattern, Seg};

/// Who may pass a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A valid token is required.
    Protected,
    /// A token is verified if sent; none is fine.
    Optional,
    /// No token is looked at.
    Public,
    /// 403 always.
    Deny,
}

impl Access {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Protected => "protected",
            Access::Optional => "optional",
            Access::Public => "public",
            Access::Deny => "deny",
        }
    }
}

/// Where a route takes its token from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// `Authorization: Bearer ...`.
    Header,
    /// A query parameter (removed from the forwarded query).
    Query(String),
    /// A cookie.
    Cookie(String),
}

impl TokenSource {
    /// Parses `header`, `query:NAME` or `cookie:NAME`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "header" {
            return Ok(TokenSource::Header);
        }
        let valid = |n: &str| {
            !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~".contains(&b))
        };
        if let Some(n) = s.strip_prefix("query:") {
            if valid(n) {
                return Ok(TokenSource::Query(n.to_owned()));
            }
        }
        if let Some(n) = s.strip_prefix("cookie:") {
            if valid(n) {
                return Ok(TokenSource::Cookie(n.to_owned()));
            }
        }
        Err(format!(
            "invalid token source `{s}` (use \"header\", \"query:NAME\" or \"cookie:NAME\")"
        ))
    }
}

/// A claim rule: the claim equals, or (for an array claim) contains, one of `values`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRule {
    /// Claim name.
    pub claim: String,
    /// Accepted values.
    pub values: Vec<serde_json::Value>,
}

/// A compiled route.
#[derive(Debug, Clone)]
pub struct Route {
    /// Name for logs and metrics.
    pub name: String,
    /// Host rule, if any.
    pub host: Option<HostMatch>,
    /// Path pattern.
    pub path: PathPattern,
    /// Methods, if restricted.
    pub methods: Option<Vec<Method>>,
    /// Access rule.
    pub access: Access,
    /// Scopes that must all be granted.
    pub scopes: Vec<String>,
    /// `scope="..."` value for `WWW-Authenticate` (the route's scopes, space-separated).
    pub scope_param: String,
    /// Claim rules, all must hold.
    pub claims: Vec<ClaimRule>,
    /// Token sources in order.
    pub token_from: Vec<TokenSource>,
    /// Index into the upstream list (`None` only for `deny`).
    pub upstream: Option<usize>,
    /// Line of the route in the config (for `check`).
    pub line: usize,
    /// A `[login]` session stands in for a token (SPEC §9).
    pub login: bool,
    /// `dpop = "required"`: only DPoP-bound tokens with a valid proof (SPEC §10).
    pub dpop_required: bool,
    /// `cors` (SPEC §11), when set.
    pub cors: Option<Box<cors::Cors>>,
}

impl Route {
    /// Whether host, method and path all match.
    pub fn matches(&self, host: Option<&str>, method: &Method, path: &str) -> bool {
        if let Some(h) = &self.host {
            match host {
                Some(host) if h.matches(host) => {}
                _ => return false,
            }
        }
        if let Some(ms) = &self.methods {
            if !ms.contains(method) {
                return false;
            }
        }
        self.path.matches(path)
    }
}

/// Whether `earlier` matches every request `later` matches (so `later` never applies).
pub fn shadowed_by(later: &Route, earlier: &Route) -> bool {
    let methods = match (&earlier.methods, &later.methods) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => b.iter().all(|m| a.contains(m)),
    };
    methods && covers_host_and_path(later, earlier)
}

/// The methods `earlier` takes from `later` when it matches every host and path
/// `later` does but only some of its methods (`later` then applies to the others
/// alone); `None` when it takes none of them, or all ([`shadowed_by`]).
pub fn shadowed_methods(later: &Route, earlier: &Route) -> Option<Vec<Method>> {
    let taken = earlier.methods.as_ref()?;
    if !covers_host_and_path(later, earlier) {
        return None;
    }
    let ms: Vec<Method> = match &later.methods {
        None => taken.clone(),
        Some(own) => own.iter().filter(|m| taken.contains(m)).cloned().collect(),
    };
    let all = later
        .methods
        .as_ref()
        .is_some_and(|own| own.iter().all(|m| ms.contains(m)));
    (!ms.is_empty() && !all).then_some(ms)
}

fn covers_host_and_path(later: &Route, earlier: &Route) -> bool {
    let host = match (&earlier.host, &later.host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(a), Some(b)) => a.covers(b),
    };
    host && earlier.path.covers(&later.path)
}

/// The routes in match order.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    /// Routes, first match wins.
    pub routes: Vec<Route>,
}

impl RouteTable {
    /// The first route matching host (normalized, port removed: [`crate::host`]),
    /// method and normalized path.
    pub fn find(&self, host: Option<&str>, method: &Method, path: &str) -> Option<(usize, &Route)> {
        self.routes
            .iter()
            .enumerate()
            .find(|(_, r)| r.matches(host, method, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(p: &str) -> PathPattern {
        PathPattern::parse(p).expect("pattern")
    }

    #[test]
    fn path_patterns() {
        let cases: &[(&str, &str, bool)] = &[
            ("/health", "/health", true),
            ("/health", "/health/", false),
            ("/health", "/healthz", false),
            ("/health", "/Health", false),
            ("/", "/", true),
            ("/", "/a", false),
            ("/**", "/", true),
            ("/**", "/a/b/c", true),
            ("/admin/**", "/admin", true),
            ("/admin/**", "/admin/", true),
            ("/admin/**", "/admin/a/b", true),
            ("/admin/**", "/administrator", false),
            ("/admin/**", "/", false),
            ("/users/*", "/users/1", true),
            ("/users/*", "/users/", false),
            ("/users/*", "/users", false),
            ("/users/*", "/users/1/x", false),
            ("/users/*/items/**", "/users/7/items", true),
            ("/users/*/items/**", "/users/7/items/9", true),
            ("/users/*/items/**", "/users/7/other", false),
            ("/a;b", "/a;b", true),
        ];
        for (p, path, want) in cases {
            assert_eq!(pat(p).matches(path), *want, "{p} vs {path}");
        }
    }

    #[test]
    fn bad_patterns() {
        for p in [
            "admin", "/a/**/b", "/a*", "/a//b", "/a/../b", "/%61", "/a\\b", "/a/***",
        ] {
            assert!(PathPattern::parse(p).is_err(), "{p}");
        }
    }

    #[test]
    fn coverage() {
        let cases = [
            ("/**", "/admin", true),
            ("/**", "/**", true),
            ("/admin/**", "/admin/x", true),
            ("/admin/**", "/admin", true),
            ("/admin/**", "/**", false),
            ("/admin", "/admin/**", false),
            ("/*", "/a", true),
            ("/a", "/*", false),
            ("/*/x/**", "/a/x/b", true),
            ("/a/b/**", "/a/**", false),
            ("/a/b", "/a/c", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(pat(a).covers(&pat(b)), want, "{a} covers {b}");
        }
    }

    #[test]
    fn hosts() {
        let w = HostMatch::parse("*.Example.com").expect("host");
        assert!(w.matches("a.example.com"));
        assert!(w.matches("A.B.EXAMPLE.COM"));
        assert!(!w.matches("example.com"));
        assert!(!w.matches("badexample.com"));
        let e = HostMatch::parse("api.example.com").expect("host");
        assert!(e.matches("API.example.com"));
        assert!(!e.matches("x.api.example.com"));
        assert!(HostMatch::parse("api.example.com:80").is_err());
        assert!(HostMatch::parse("*.").is_err());
        // Written the way requests are normalized; never a spelling no request has.
        assert_eq!(
            HostMatch::parse("Secure.Example.com."),
            Ok(HostMatch::Exact("secure.example.com".into()))
        );
        assert_eq!(
            HostMatch::parse("*.internal.example.com."),
            Ok(HostMatch::Suffix(".internal.example.com".into()))
        );
        for bad in [
            "a..b", "host..", "*..a", "*.a..b", "a b", "a,b", "*.[::1]", "", "*",
        ] {
            assert!(HostMatch::parse(bad).is_err(), "{bad}");
        }
        assert!(w.covers(&e) || !e.matches("api.example.com"));
    }

    #[test]
    fn token_sources() {
        assert_eq!(TokenSource::parse("header"), Ok(TokenSource::Header));
        assert_eq!(
            TokenSource::parse("query:access_token"),
            Ok(TokenSource::Query("access_token".into()))
        );
        assert_eq!(
            TokenSource::parse("cookie:at"),
            Ok(TokenSource::Cookie("at".into()))
        );
        for bad in ["Header", "query:", "cookie:a b", "body"] {
            assert!(TokenSource::parse(bad).is_err(), "{bad}");
        }
    }
}
