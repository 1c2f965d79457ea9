//! The compiled, immutable configuration: plain data, no runtime state. [`load`]
//! reads `proxy.toml` ([`parse`], section by section into the raw types of [`file`]),
//! checks every key, resolves defaults ([`defaults`]) and relative paths, reads key
//! and users files and compiles routes ([`compile`]); it reports every independent
//! problem it finds as `file:line:col: message`, and warnings beside them. Request
//! handling reads only this form, never the raw TOML.
//!
//! Loading has no side effects: nothing is written (a `generate_key` key that is
//! missing is listed in [`Config::keys_to_generate`]; [`provision`] creates it for
//! `run` and `token`). Secrets are [`crate::secret::Secret`]s: `{:?}` of a `Config` shows
//! none.

mod compile;
pub mod error;
pub mod file;
mod parse;
pub mod provision;
pub mod users;
pub mod values;

use crate::auth::issuer::Issuer;
use crate::defaults;
use crate::routes::RouteTable;
use crate::secret::Secret;
use error::Reporter;
pub use error::{ConfigError, ConfigErrors};
use http::header::HeaderName;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `[server]`, compiled.
#[derive(Debug, Clone)]
pub struct Server {
    /// Main listener.
    pub listen: SocketAddr,
    /// Request-head deadline.
    pub header_timeout: Duration,
    /// Keep-alive idle limit.
    pub idle_timeout: Duration,
    /// Request-head size limit.
    pub max_header_bytes: usize,
    /// Drain limit on SIGTERM.
    pub shutdown_grace: Duration,
    /// Reload on file change.
    pub watch: bool,
    /// Most client connections open at once.
    pub max_connections: usize,
    /// HTTP/2 concurrent streams per connection.
    pub h2_max_concurrent_streams: u32,
    /// Runtime worker threads (`None`: one per available CPU).
    pub worker_threads: Option<usize>,
    /// TLS, when configured.
    pub tls: Option<Tls>,
    /// `trusted_proxies` (SPEC §11): peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// `[server.tls]`, with paths resolved.
#[derive(Debug, Clone)]
pub struct Tls {
    /// Default certificate chain.
    pub cert: PathBuf,
    /// Default key.
    pub key: PathBuf,
    /// SNI certificates: hosts, cert, key.
    pub sni: Vec<(Vec<String>, PathBuf, PathBuf)>,
}

/// How an upstream is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpstreamKind {
    /// The built-in echo upstream.
    Echo,
    /// HTTP or HTTPS.
    Http {
        /// `http` or `https`.
        scheme: http::uri::Scheme,
        /// `host:port`.
        authority: http::uri::Authority,
        /// Path prefix prepended to forwarded paths (`""` for none).
        prefix: String,
    },
}

/// `[upstreams.NAME]`, compiled.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Config name.
    pub name: String,
    /// Where.
    pub kind: UpstreamKind,
    /// Connect deadline.
    pub connect_timeout: Duration,
    /// Response deadline.
    pub timeout: Duration,
    /// Extra trust root.
    pub ca: Option<PathBuf>,
    /// `aud` of the identity assertions it receives (SPEC §10).
    pub audience: String,
}

/// `[identity]`, compiled.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The identity header.
    pub header: HeaderName,
    /// The claim it comes from.
    pub claim: String,
    /// Keep `Authorization` for the upstream.
    pub forward_authorization: bool,
    /// More claims into headers.
    pub claims_to_headers: Vec<(HeaderName, String)>,
    /// Every identity header name, lowercase with `_` written as `-`: a client-sent
    /// header equal to one of these (after the same folding) is removed.
    pub strip: Vec<String>,
    /// `[identity.assertion]` (SPEC §10).
    pub assertion: Option<Assertion>,
}

/// `[identity.assertion]`, compiled.
#[derive(Debug, Clone)]
pub struct Assertion {
    /// The header carrying it (an identity header: client copies are stripped).
    pub header: HeaderName,
    /// Index of the signing issuer in [`Config::issuers`].
    pub issuer: usize,
    /// Lifetime of one assertion.
    pub ttl: Duration,
}

/// `[token_endpoint]`, compiled.
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    /// Endpoint path.
    pub path: String,
    /// Index of the signing issuer.
    pub issuer: usize,
    /// Users file.
    pub users: Option<PathBuf>,
    /// The accounts read from `users` (none without a file); re-read on every load.
    pub accounts: Arc<users::Users>,
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
}

/// `[forward_auth]`, compiled (SPEC §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAuth {
    /// The decision listener.
    pub listen: SocketAddr,
    /// Where the original request is read from.
    pub headers: Convention,
}

/// A forward-auth header convention: where a decision request names the original
/// request (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convention {
    /// `X-Forwarded-Method`, `-Uri`, `-Host`, `-Proto` (Traefik, Caddy).
    XForwarded,
    /// `X-Original-Method` with `X-Original-URI` (path and query) or `X-Original-URL`
    /// (absolute) (nginx `auth_request`, ingress-nginx).
    XOriginal,
    /// The decision request itself: its method, path and query, `Host` (Envoy's HTTP
    /// ext_authz service).
    Envoy,
}

impl Convention {
    /// Every convention, as `headers` names it.
    pub const ALL: [Convention; 3] = [
        Convention::XForwarded,
        Convention::XOriginal,
        Convention::Envoy,
    ];

    /// The name `headers` gives it.
    pub fn as_str(self) -> &'static str {
        match self {
            Convention::XForwarded => "x-forwarded",
            Convention::XOriginal => "x-original",
            Convention::Envoy => "envoy",
        }
    }

    /// The convention `headers = "name"` names.
    pub fn parse(name: &str) -> Option<Convention> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }
}

/// `[state]`, compiled.
#[derive(Debug, Clone)]
pub struct State {
    /// Redis URL (it may hold a password); `None` = in memory.
    pub redis_url: Option<Secret<String>>,
    /// Key prefix.
    pub key_prefix: String,
    /// Serve when the backend is down.
    pub fail_open: bool,
    /// Trust roots (PEM, read at load) for `rediss`; `None`: the webpki roots.
    pub ca: Option<Vec<u8>>,
    /// Cap on the memory backend's refresh-token entries.
    pub max_entries: crate::state::MaxEntries,
    /// Replicas that acknowledge each durable write (`WAIT`); 0: none.
    pub replicas_ack: u32,
}

/// No `[state]` table: in memory, with the default key prefix.
impl Default for State {
    fn default() -> Self {
        State {
            redis_url: None,
            key_prefix: defaults::KEY_PREFIX.to_owned(),
            fail_open: defaults::FAIL_OPEN,
            ca: None,
            max_entries: crate::state::MaxEntries::default(),
            replicas_ack: defaults::REPLICAS_ACK,
        }
    }
}

/// `[login] session_store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStore {
    /// The whole session, encrypted, in the cookie.
    Cookie,
    /// The session in the `[state]` backend, an id in the cookie.
    State,
}

/// `[login]`, compiled (SPEC §9).
#[derive(Debug, Clone)]
pub struct Login {
    /// Index of the issuer users sign in at (a discovery issuer).
    pub issuer: usize,
    /// Client id.
    pub client_id: String,
    /// Client secret; `None`: a public client.
    pub client_secret: Option<Secret<String>>,
    /// Scopes asked for, `openid` among them.
    pub scopes: Vec<String>,
    /// Callback path.
    pub callback_path: String,
    /// Logout path.
    pub logout_path: String,
    /// Session cookie name.
    pub cookie_name: String,
    /// Secret the cookie key is derived from.
    pub cookie_secret: Secret<String>,
    /// Absolute session lifetime.
    pub session_ttl: Duration,
    /// Where sessions live.
    pub session_store: SessionStore,
    /// External callback URL, when set.
    pub redirect_url: Option<String>,
}

/// The whole compiled configuration.
#[derive(Debug)]
pub struct Config {
    /// The config file.
    pub path: PathBuf,
    /// Main listener.
    pub server: Server,
    /// Admin listener.
    pub admin: Option<SocketAddr>,
    /// Upstreams; routes refer to them by index.
    pub upstreams: Vec<Upstream>,
    /// Identity headers.
    pub identity: Identity,
    /// Issuers.
    pub issuers: Vec<Arc<Issuer>>,
    /// The built-in token endpoint.
    pub token_endpoint: Option<TokenEndpoint>,
    /// Verified-token cache size.
    pub cache_tokens: u64,
    /// State backend.
    pub state: State,
    /// The forward-auth decision listener.
    pub forward_auth: Option<ForwardAuth>,
    /// Routes.
    pub routes: RouteTable,
    /// Browser sign-in.
    pub login: Option<Login>,
    /// OpenTelemetry traces (SPEC §11).
    pub telemetry: Option<Telemetry>,
    /// Every file the config names (for reload watching).
    pub files: Vec<PathBuf>,
    /// `generate_key` private keys that do not exist yet (the issuers naming them
    /// have no key): [`provision::load_creating_keys`] creates them.
    pub keys_to_generate: Vec<KeyToGenerate>,
    /// Problems that do not fail the config (`check` prints them as `warning: ...`).
    pub warnings: Vec<ConfigError>,
}

/// `[telemetry]`, compiled (SPEC §11).
#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    /// The collector's base URL, without a trailing `/`.
    pub otlp_endpoint: String,
    /// `service.name`.
    pub service_name: String,
    /// Share of new traces sampled, in `[0, 1]`.
    pub sample_ratio: f64,
}

impl Telemetry {
    /// Where spans are posted: `{otlp_endpoint}/v1/traces`.
    pub fn traces_url(&self) -> String {
        format!("{}/v1/traces", self.otlp_endpoint)
    }
}

/// A `generate_key` private key that does not exist yet.
#[derive(Debug, Clone)]
pub struct KeyToGenerate {
    /// Where it goes (resolved).
    pub path: PathBuf,
    /// The `private_key` line naming it (the message says what happens).
    pub at: ConfigError,
}

/// Reads and compiles a config file. Writes nothing.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let src = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: path.to_path_buf(),
            line: 1,
            col: 1,
            message: format!("cannot read config file: {e}"),
        }])
    })?;
    load_str(path, &src)
}

/// Compiles config text; `path` names it in errors and anchors relative paths.
pub fn load_str(path: &Path, src: &str) -> Result<Config, ConfigErrors> {
    let mut rep = Reporter::new(path, src);
    let Some((raw, damage)) = parse::parse(&mut rep, src) else {
        return Err(rep.into_errors());
    };
    let mut cx = compile::Cx::new(rep, path);
    let cfg = compile::compile(&mut cx, raw, &damage, path);
    let rep = cx.rep;
    if !rep.is_empty() {
        return Err(rep.into_errors());
    }
    let mut cfg = cfg.ok_or_else(|| ConfigErrors(Vec::new()))?;
    cfg.warnings = rep.into_warnings();
    Ok(cfg)
}

/// Keeps `Config` shareable across reloads.
pub type Shared = Arc<Config>;

#[cfg(test)]
mod tests;
