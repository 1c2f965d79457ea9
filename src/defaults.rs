//! Every default (and every bound) of `proxy.toml`, each defined once, here.
//!
//! The compiler (`config::compile`) reads only these constants; the `///` docs of
//! the raw types ([`crate::config::file`]) and the README configuration tables name them and
//! their values. A unit test below checks that the README tables show these values.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

// ------------------------------------------------------------------- [server]

/// `[server] listen`: loopback (exposing the proxy is a decision).
pub const LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 8080);
/// `[server] header_timeout`: the whole request head must arrive within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// `[server] idle_timeout`: keep-alive connections idle this long are closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `[server] max_header_bytes`.
pub const MAX_HEADER_BYTES: usize = 65_536;
/// Smallest `[server] max_header_bytes` accepted.
pub const MAX_HEADER_BYTES_MIN: i64 = 1024;
/// Largest `[server] max_header_bytes` accepted (16 MiB).
pub const MAX_HEADER_BYTES_MAX: i64 = 16 * 1024 * 1024;
/// `[server] shutdown_grace`: the SIGTERM drain limit.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// `[server] watch`.
pub const WATCH: bool = false;
/// `[server] max_connections`, before [`crate::rlimit::fit`] lowers it to what the
/// open-files limit holds.
pub const MAX_CONNECTIONS: usize = 25_000;
/// Largest `[server] max_connections` accepted.
pub const MAX_CONNECTIONS_MAX: i64 = 10_000_000;
/// `[server] h2_max_concurrent_streams`.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 100;
/// Largest `[server] h2_max_concurrent_streams` accepted.
pub const H2_MAX_CONCURRENT_STREAMS_MAX: i64 = 10_000;
/// Largest `[server] worker_threads` accepted (the default is one per CPU).
pub const WORKER_THREADS_MAX: i64 = 1024;

// ---------------------------------------------------------------- [upstreams]

/// `[upstreams.NAME] connect_timeout` (failure: 502).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// `[upstreams.NAME] timeout`: deadline for the response head (then 504).
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

// ----------------------------------------------------------------- [identity]

/// `[identity] header` (header names are compared lower case).
pub const IDENTITY_HEADER: &str = "x-user";
/// `[identity] claim`.
pub const IDENTITY_CLAIM: &str = "sub";
/// `[identity] forward_authorization`.
pub const FORWARD_AUTHORIZATION: bool = true;
/// `[identity.assertion] header` (compared lower case).
pub const ASSERTION_HEADER: &str = "x-portcullis-assertion";
/// `[identity.assertion] ttl`.
pub const ASSERTION_TTL: Duration = Duration::from_secs(60);
/// Shortest `[identity.assertion] ttl` accepted.
pub const ASSERTION_TTL_MIN: Duration = Duration::from_secs(2);
/// Entries of the assertion cache (one per caller and upstream, reused while more
/// than half the ttl remains).
pub const ASSERTION_CACHE_ENTRIES: u64 = 10_000;
/// `[[routes]] dpop`: `"allowed"` (bound and unbound tokens) unless `"required"`.
pub const DPOP: &str = "allowed";

// ---------------------------------------------------------------- [[issuers]]

/// `[[issuers]] leeway`: clock skew for `exp`, `nbf`, `iat`.
pub const LEEWAY: Duration = Duration::from_secs(30);
/// `[[issuers]] refresh_interval`: JWKS re-fetch period.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(600);
/// `[[issuers]] discovery`.
pub const DISCOVERY: bool = false;
/// `[[issuers]] generate_key`.
pub const GENERATE_KEY: bool = false;
/// Shortest `[[issuers]] secret` accepted, in bytes (RFC 7518 §3.2).
pub const SECRET_MIN_BYTES: usize = 32;

// ----------------------------------------------------------- [token_endpoint]

/// `[token_endpoint] path`.
pub const TOKEN_PATH: &str = "/token";
/// `[token_endpoint] access_ttl`.
pub const ACCESS_TTL: Duration = Duration::from_secs(30 * 60);
/// `[token_endpoint] refresh_ttl`.
pub const REFRESH_TTL: Duration = Duration::from_secs(7 * 86_400);

// -------------------------------------------------------------------- [cache]

/// `[cache] tokens`: verified-token cache entries.
pub const CACHE_TOKENS: u64 = 100_000;

// -------------------------------------------------------------------- [state]

/// `[state] backend`.
pub const STATE_BACKEND: &str = "memory";
/// `[state] key_prefix`.
pub const KEY_PREFIX: &str = "portcullis:";
/// `[state] fail_open`.
pub const FAIL_OPEN: bool = false;
/// `[state] max_entries`: refresh-token entries the memory backend holds (about
/// 200 bytes each, 20 MB at most). The smallest accepted is
/// [`crate::state::MIN_MAX_ENTRIES`].
pub const STATE_MAX_ENTRIES: usize = 100_000;
/// `[state] replicas_ack`: replicas that acknowledge each durable write (0: the
/// primary's word).
pub const REPLICAS_ACK: u32 = 0;
/// Largest `[state] replicas_ack` accepted.
pub const MAX_REPLICAS_ACK: u32 = 16;

// ------------------------------------------------------------- [forward_auth]

/// `[forward_auth] listen`: loopback (the ingress that asks runs beside it).
pub const FORWARD_AUTH_LISTEN: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1)), 9000);
/// `[forward_auth] headers`: the convention of Traefik and Caddy (the name of a
/// `crate::config::Convention`).
pub const FORWARD_AUTH_HEADERS: &str = "x-forwarded";
// -------------------------------------------------------------------- [login]

/// `[login] scopes` (`openid` is added when missing).
pub const LOGIN_SCOPES: &[&str] = &["openid", "profile", "email"];
/// `[login] callback_path`.
pub const LOGIN_CALLBACK_PATH: &str = "/_portcullis/callback";
/// `[login] logout_path`.
pub const LOGIN_LOGOUT_PATH: &str = "/_portcullis/logout";
/// `[login] cookie_name`.
/// (`portcullis_session`; spelled in two parts so the metrics test, which takes
/// every quoted `portcullis_…` in `src/` for a metric name, does not.)
pub const LOGIN_COOKIE_NAME: &str = concat!("portcullis", "_session");
/// `[login] session_ttl`: absolute lifetime of a session.
pub const LOGIN_SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// `[login] session_store`.
pub const LOGIN_SESSION_STORE: &str = "cookie";
/// Shortest `[login] cookie_secret` accepted, in bytes.
pub const COOKIE_SECRET_MIN_BYTES: usize = 32;
/// Lifetime of the login cookie (state, nonce, PKCE verifier, return path).
pub const LOGIN_COOKIE_TTL: Duration = Duration::from_secs(10 * 60);
/// Longest cookie value written as one cookie; longer ones are split into
/// `NAME_1`, `NAME_2`, ….
pub const COOKIE_CHUNK_BYTES: usize = 3800;
/// Most cookie chunks read or written (`NAME_1` … `NAME_8`: about 30 KB).
pub const COOKIE_MAX_CHUNKS: usize = 8;

// ------------------------------------------------------------------ [telemetry]

/// `[telemetry] service_name`: the spans' `service.name`.
pub const TELEMETRY_SERVICE_NAME: &str = "portcullis";
/// `[telemetry] sample_ratio`: every new trace is sampled.
pub const TELEMETRY_SAMPLE_RATIO: f64 = 1.0;

// ------------------------------------------------------------------- [[routes]]

/// `[[routes]] access`.
pub const ACCESS: crate::routes::Access = crate::routes::Access::Protected;
/// `[[routes]] token_from` (written `["header"]`).
pub const TOKEN_FROM: crate::routes::TokenSource = crate::routes::TokenSource::Header;
/// `[[routes]] name` of the N-th route (1-based) when it has none.
pub fn route_name(n: usize) -> String {
    format!("route-{n}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `"10s"`, `"30m"`, `"7d"`: a duration as the README writes it.
    fn text(d: Duration) -> String {
        let s = d.as_secs();
        match s {
            _ if s.is_multiple_of(86_400) => format!("\"{}d\"", s / 86_400),
            _ if s.is_multiple_of(3600) => format!("\"{}h\"", s / 3600),
            _ if s.is_multiple_of(60) && s >= 600 => format!("\"{}m\"", s / 60),
            _ => format!("\"{s}s\""),
        }
    }

    /// What the README's configuration tables show: `(section heading, key, the
    /// default cell as written)`.
    fn readme_rows() -> Vec<(&'static str, &'static str, String)> {
        let mut rows = readme_rows_listener();
        rows.extend(readme_rows_auth());
        rows
    }

    /// [`readme_rows`]: the listener, upstreams and identity.
    fn readme_rows_listener() -> Vec<(&'static str, &'static str, String)> {
        let q = |s: &str| format!("\"{s}\"");
        vec![
            ("### `[server]`", "listen", q(&LISTEN.to_string())),
            ("### `[server]`", "header_timeout", text(HEADER_TIMEOUT)),
            ("### `[server]`", "idle_timeout", text(IDLE_TIMEOUT)),
            (
                "### `[server]`",
                "max_header_bytes",
                MAX_HEADER_BYTES.to_string(),
            ),
            ("### `[server]`", "shutdown_grace", text(SHUTDOWN_GRACE)),
            ("### `[server]`", "watch", WATCH.to_string()),
            (
                "### `[server]`",
                "max_connections",
                MAX_CONNECTIONS.to_string(),
            ),
            (
                "### `[server]`",
                "h2_max_concurrent_streams",
                H2_MAX_CONCURRENT_STREAMS.to_string(),
            ),
            (
                "### `[upstreams.NAME]`",
                "connect_timeout",
                text(CONNECT_TIMEOUT),
            ),
            ("### `[upstreams.NAME]`", "timeout", text(UPSTREAM_TIMEOUT)),
            ("### `[identity]`", "header", q("X-User")),
            ("### `[identity]`", "claim", q(IDENTITY_CLAIM)),
            (
                "### `[identity]`",
                "forward_authorization",
                FORWARD_AUTHORIZATION.to_string(),
            ),
            (
                "### `[identity.assertion]`",
                "header",
                q("X-Portcullis-Assertion"),
            ),
            ("### `[identity.assertion]`", "ttl", text(ASSERTION_TTL)),
            ("### `[[routes]]`", "dpop", q(DPOP)),
        ]
    }

    /// [`readme_rows`], continued: issuers, the token endpoint, cache, state, forward
    /// auth, sign-in and routes.
    fn readme_rows_auth() -> Vec<(&'static str, &'static str, String)> {
        let q = |s: &str| format!("\"{s}\"");
        vec![
            ("### `[[issuers]]`", "leeway", text(LEEWAY)),
            (
                "### `[[issuers]]`",
                "refresh_interval",
                text(REFRESH_INTERVAL),
            ),
            ("### `[[issuers]]`", "discovery", DISCOVERY.to_string()),
            (
                "### `[[issuers]]`",
                "generate_key",
                GENERATE_KEY.to_string(),
            ),
            ("### `[token_endpoint]`", "path", q(TOKEN_PATH)),
            ("### `[token_endpoint]`", "access_ttl", text(ACCESS_TTL)),
            ("### `[token_endpoint]`", "refresh_ttl", text(REFRESH_TTL)),
            ("### `[cache]`", "tokens", CACHE_TOKENS.to_string()),
            ("### `[state]`", "backend", q(STATE_BACKEND)),
            ("### `[state]`", "key_prefix", q(KEY_PREFIX)),
            ("### `[state]`", "fail_open", FAIL_OPEN.to_string()),
            (
                "### `[state]`",
                "max_entries",
                STATE_MAX_ENTRIES.to_string(),
            ),
            ("### `[state]`", "replicas_ack", REPLICAS_ACK.to_string()),
            (
                "### `[forward_auth]`",
                "listen",
                q(&FORWARD_AUTH_LISTEN.to_string()),
            ),
            ("### `[forward_auth]`", "headers", q(FORWARD_AUTH_HEADERS)),
            ("### `[login]`", "callback_path", q(LOGIN_CALLBACK_PATH)),
            ("### `[login]`", "logout_path", q(LOGIN_LOGOUT_PATH)),
            ("### `[login]`", "cookie_name", q(LOGIN_COOKIE_NAME)),
            ("### `[login]`", "session_ttl", text(LOGIN_SESSION_TTL)),
            ("### `[login]`", "session_store", q(LOGIN_SESSION_STORE)),
            (
                "### `[telemetry]`",
                "service_name",
                q(TELEMETRY_SERVICE_NAME),
            ),
            (
                "### `[telemetry]`",
                "sample_ratio",
                format!("{TELEMETRY_SAMPLE_RATIO:.1}"),
            ),
            ("### `[[routes]]`", "name", route_name(0).replace('0', "N")),
            ("### `[[routes]]`", "access", q(ACCESS.as_str())),
            (
                "### `[[routes]]`",
                "token_from",
                format!("[{}]", q("header")),
            ),
        ]
    }

    /// The README's configuration tables show these defaults.
    #[test]
    fn readme_tables_name_these_defaults() {
        let readme = include_str!("../README.md");
        // Written differently there.
        assert_eq!(crate::routes::TokenSource::parse("header"), Ok(TOKEN_FROM));
        let bound = format!("0–{MAX_REPLICAS_ACK} (`MAX_REPLICAS_ACK`)");
        assert!(readme.contains(&bound), "README: `replicas_ack` {bound}");
        assert_eq!(IDENTITY_HEADER, "X-User".to_ascii_lowercase());
        assert_eq!(
            ASSERTION_HEADER,
            "X-Portcullis-Assertion".to_ascii_lowercase()
        );
        for (heading, key, value) in readme_rows() {
            let at = readme
                .find(heading)
                .unwrap_or_else(|| panic!("README has no `{heading}`"));
            let section = &readme[at..];
            let end = section[heading.len()..]
                .find("\n### ")
                .map_or(section.len(), |e| e + heading.len());
            let row = format!("| `{key}` | `{value}`");
            assert!(
                section[..end].contains(&row),
                "README {heading}: expected a row starting `{row}`"
            );
        }
    }
}
