//! Raw `proxy.toml` types: exactly the file's shape, nothing resolved.
//!
//! Every table denies unknown keys (a typo must never silently disable a security
//! setting). Every string goes through `${ENV}` expansion ([`EnvStr`]). These types
//! exist only here; the rest of the program reads the compiled [`super::Config`].
//! [`super::parse`] reads them section by section; defaults are the constants of
//! [`crate::defaults`], named in each field's doc. Secrets are [`Secret`]s, so not
//! even `{:?}` of a raw section shows them.

use super::values::{Dur, EnvStr};
use crate::secret::Secret;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

/// The whole file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Main listener.
    #[serde(default)]
    pub server: RawServer,
    /// Optional admin listener (health, readiness, metrics); never behind auth.
    pub admin: Option<RawAdmin>,
    /// Named upstreams that routes forward to.
    #[serde(default)]
    pub upstreams: BTreeMap<String, Spanned<RawUpstream>>,
    /// Which claim becomes the identity header.
    #[serde(default)]
    pub identity: RawIdentity,
    /// Trusted token issuers, chosen by the token's `iss`.
    #[serde(default)]
    pub issuers: Vec<Spanned<RawIssuer>>,
    /// The optional built-in token endpoint (SPEC §5).
    pub token_endpoint: Option<Spanned<RawTokenEndpoint>>,
    /// Verified-token cache.
    #[serde(default)]
    pub cache: RawCache,
    /// Where revocations, refresh tokens and rate limits live.
    #[serde(default)]
    pub state: Option<Spanned<RawState>>,
    /// The forward-authentication decision listener (SPEC §8).
    pub forward_auth: Option<Spanned<RawForwardAuth>>,
    /// Routes, first match in file order wins.
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
    /// Browser sign-in at an OpenID Connect provider (SPEC §9).
    pub login: Option<Spanned<RawLogin>>,
    /// OpenTelemetry traces over OTLP/HTTP (SPEC §11).
    pub telemetry: Option<Spanned<RawTelemetry>>,
}

/// `[telemetry]` (SPEC §11).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelemetry {
    /// The collector's base URL `http(s)://host:port[/prefix]`: spans go to `{it}/v1/traces`.
    pub otlp_endpoint: Spanned<EnvStr>,
    /// `service.name` (default [`TELEMETRY_SERVICE_NAME`](crate::defaults::TELEMETRY_SERVICE_NAME)).
    pub service_name: Option<Spanned<EnvStr>>,
    /// Share of new traces sampled, 0 to 1 (default [`TELEMETRY_SAMPLE_RATIO`](crate::defaults::TELEMETRY_SAMPLE_RATIO)).
    pub sample_ratio: Option<Spanned<f64>>,
}

/// `[login]` (SPEC §9).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogin {
    /// Name of the `[[issuers]]` entry (with `discovery = true`) users sign in at.
    pub issuer: Spanned<EnvStr>,
    /// The client id registered at the provider.
    pub client_id: Spanned<EnvStr>,
    /// The client secret (`client_secret_basic`); without it, a public client (PKCE).
    pub client_secret: Option<Spanned<Secret<EnvStr>>>,
    /// Scopes asked for (default [`LOGIN_SCOPES`](crate::defaults::LOGIN_SCOPES),
    /// `openid profile email`; `openid` is added when missing).
    pub scopes: Option<Vec<EnvStr>>,
    /// Where the provider sends the browser back (default
    /// [`LOGIN_CALLBACK_PATH`](crate::defaults::LOGIN_CALLBACK_PATH)).
    pub callback_path: Option<Spanned<EnvStr>>,
    /// `GET`/`POST` here ends the session (default
    /// [`LOGIN_LOGOUT_PATH`](crate::defaults::LOGIN_LOGOUT_PATH)).
    pub logout_path: Option<Spanned<EnvStr>>,
    /// Session cookie name (default [`LOGIN_COOKIE_NAME`](crate::defaults::LOGIN_COOKIE_NAME)).
    pub cookie_name: Option<Spanned<EnvStr>>,
    /// Secret the cookie key is derived from, at least
    /// [`COOKIE_SECRET_MIN_BYTES`](crate::defaults::COOKIE_SECRET_MIN_BYTES) bytes.
    pub cookie_secret: Spanned<Secret<EnvStr>>,
    /// Absolute lifetime of a session (default
    /// [`LOGIN_SESSION_TTL`](crate::defaults::LOGIN_SESSION_TTL), `12h`).
    pub session_ttl: Option<Dur>,
    /// `cookie` or `state` (default [`LOGIN_SESSION_STORE`](crate::defaults::LOGIN_SESSION_STORE)).
    pub session_store: Option<Spanned<EnvStr>>,
    /// The external URL of the callback, when `{scheme}://{Host}{callback_path}` is not it.
    pub redirect_url: Option<Spanned<EnvStr>>,
}

/// `[server]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Address to listen on, `ip:port` (default [`LISTEN`](crate::defaults::LISTEN),
    /// `127.0.0.1:8080`).
    pub listen: Option<Spanned<EnvStr>>,
    /// The whole request head must arrive within this time (default
    /// [`HEADER_TIMEOUT`](crate::defaults::HEADER_TIMEOUT), `10s`).
    pub header_timeout: Option<Dur>,
    /// Keep-alive connections idle this long are closed (default
    /// [`IDLE_TIMEOUT`](crate::defaults::IDLE_TIMEOUT), `60s`).
    pub idle_timeout: Option<Dur>,
    /// Larger request heads get 431 (default
    /// [`MAX_HEADER_BYTES`](crate::defaults::MAX_HEADER_BYTES), 65536; 1024 to 16 MiB).
    pub max_header_bytes: Option<Spanned<i64>>,
    /// SIGTERM drain limit (default [`SHUTDOWN_GRACE`](crate::defaults::SHUTDOWN_GRACE),
    /// `30s`).
    pub shutdown_grace: Option<Dur>,
    /// Reload when the config or a file it names changes (default
    /// [`WATCH`](crate::defaults::WATCH), false).
    pub watch: Option<bool>,
    /// Most client connections open at once; further ones wait in the listen
    /// backlog (default [`MAX_CONNECTIONS`](crate::defaults::MAX_CONNECTIONS), 25000, or
    /// fewer when the open-files limit holds fewer: half of
    /// the soft `RLIMIT_NOFILE` left after 64 reserved descriptors).
    pub max_connections: Option<Spanned<i64>>,
    /// HTTP/2 streams one connection may have open at once (default
    /// [`H2_MAX_CONCURRENT_STREAMS`](crate::defaults::H2_MAX_CONCURRENT_STREAMS), 100).
    pub h2_max_concurrent_streams: Option<Spanned<i64>>,
    /// Worker threads of the async runtime (default: the CPUs this process may use).
    pub worker_threads: Option<Spanned<i64>>,
    /// TLS termination; omit for plain HTTP.
    pub tls: Option<Spanned<RawTls>>,
    /// Proxies (CIDRs) whose `X-Forwarded-For` / `-Proto` are believed (SPEC §11;
    /// default none).
    #[serde(default)]
    pub trusted_proxies: Vec<Spanned<EnvStr>>,
}

/// `[server.tls]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain.
    pub cert: Spanned<EnvStr>,
    /// PEM private key (PKCS#8, RSA or SEC1).
    pub key: Spanned<EnvStr>,
    /// Extra certificates chosen by SNI.
    #[serde(default)]
    pub sni: Vec<Spanned<RawSni>>,
}

/// `[[server.tls.sni]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSni {
    /// Server names this certificate answers for.
    pub hosts: Vec<EnvStr>,
    /// PEM certificate chain.
    pub cert: Spanned<EnvStr>,
    /// PEM private key.
    pub key: Spanned<EnvStr>,
}

/// `[admin]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Admin listener address (e.g. `127.0.0.1:9901`).
    pub listen: Spanned<EnvStr>,
}

/// `[upstreams.NAME]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    /// `http://host:port[/prefix]`, `https://...` or the built-in `echo:`.
    pub url: Spanned<EnvStr>,
    /// TCP connect deadline (default [`CONNECT_TIMEOUT`](crate::defaults::CONNECT_TIMEOUT),
    /// `2s`) -> 502.
    pub connect_timeout: Option<Dur>,
    /// Deadline for the upstream's response (default
    /// [`UPSTREAM_TIMEOUT`](crate::defaults::UPSTREAM_TIMEOUT), `30s`) -> 504.
    pub timeout: Option<Dur>,
    /// Extra trust root (PEM) for an `https://` upstream.
    pub ca: Option<Spanned<EnvStr>>,
    /// `aud` of the identity assertions sent to this upstream (SPEC §10; default:
    /// the upstream's name).
    pub audience: Option<EnvStr>,
}

/// `[identity]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawIdentity {
    /// Header set from `claim` on allowed requests (default
    /// [`IDENTITY_HEADER`](crate::defaults::IDENTITY_HEADER), `X-User`).
    pub header: Option<Spanned<EnvStr>>,
    /// Claim that names the caller (default [`IDENTITY_CLAIM`](crate::defaults::IDENTITY_CLAIM),
    /// `sub`).
    pub claim: Option<EnvStr>,
    /// Keep the `Authorization` header for the upstream (default
    /// [`FORWARD_AUTHORIZATION`](crate::defaults::FORWARD_AUTHORIZATION), true).
    pub forward_authorization: Option<bool>,
    /// More claims copied into headers: `"Header-Name" = "claim"`.
    #[serde(default)]
    pub claims_to_headers: BTreeMap<String, Spanned<EnvStr>>,
    /// A signed identity assertion on every allowed request with an identity (SPEC §10).
    pub assertion: Option<Spanned<RawAssertion>>,
}

/// `[identity.assertion]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAssertion {
    /// The header that carries it (default
    /// [`ASSERTION_HEADER`](crate::defaults::ASSERTION_HEADER), `X-Portcullis-Assertion`).
    pub header: Option<Spanned<EnvStr>>,
    /// The `[[issuers]]` entry whose `private_key` signs (RS256, ES256 or EdDSA); it
    /// signs assertions only: tokens with its `iss` are refused.
    pub issuer: Spanned<EnvStr>,
    /// Lifetime (default [`ASSERTION_TTL`](crate::defaults::ASSERTION_TTL), `60s`); an
    /// assertion is reused for the same caller and upstream while more than half of it
    /// remains.
    pub ttl: Option<Dur>,
}

/// `[[issuers]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawIssuer {
    /// Short name used by `[token_endpoint] issuer` and in logs.
    pub name: Spanned<EnvStr>,
    /// Exact value of the token's `iss`.
    pub issuer: Spanned<EnvStr>,
    /// The token's `aud` must contain one of these; omitted = no audience check.
    pub audiences: Option<Vec<EnvStr>>,
    /// JWKS endpoint.
    pub jwks_url: Option<Spanned<EnvStr>>,
    /// Find `jwks_uri` at `{issuer}/.well-known/openid-configuration` (default
    /// [`DISCOVERY`](crate::defaults::DISCOVERY), false).
    pub discovery: Option<Spanned<bool>>,
    /// Algorithm allow-list (default: what the keys allow).
    pub algorithms: Option<Vec<Spanned<EnvStr>>>,
    /// Clock skew allowed for exp / nbf / iat (default [`LEEWAY`](crate::defaults::LEEWAY),
    /// `30s`).
    pub leeway: Option<Dur>,
    /// JWKS refresh period (default [`REFRESH_INTERVAL`](crate::defaults::REFRESH_INTERVAL),
    /// `10m`).
    pub refresh_interval: Option<Dur>,
    /// Extra trust root for an https JWKS / discovery URL.
    pub ca: Option<Spanned<EnvStr>>,
    /// HMAC secret (HS256/384/512), at least
    /// [`SECRET_MIN_BYTES`](crate::defaults::SECRET_MIN_BYTES) bytes.
    pub secret: Option<Spanned<Secret<EnvStr>>>,
    /// PEM public key (SubjectPublicKeyInfo): RSA, EC P-256/P-384, Ed25519.
    pub public_key: Option<Spanned<EnvStr>>,
    /// PEM private key (PKCS#8; RSA also PKCS#1): verifies and lets portcullis sign.
    pub private_key: Option<Spanned<EnvStr>>,
    /// Key id of the static key: put in minted tokens, matched against a token's `kid`.
    pub kid: Option<EnvStr>,
    /// Demo convenience: create an Ed25519 `private_key` file when it does not exist,
    /// at `portcullis` start and `portcullis token`, never at `check` (default
    /// [`GENERATE_KEY`](crate::defaults::GENERATE_KEY), false).
    pub generate_key: Option<bool>,
}

/// `[token_endpoint]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTokenEndpoint {
    /// Path of the endpoint (default [`TOKEN_PATH`](crate::defaults::TOKEN_PATH), `/token`).
    pub path: Option<Spanned<EnvStr>>,
    /// Name of the `[[issuers]]` entry that signs.
    pub issuer: Spanned<EnvStr>,
    /// Users file (none: no one can log in).
    pub users: Option<Spanned<EnvStr>>,
    /// Access token lifetime (default [`ACCESS_TTL`](crate::defaults::ACCESS_TTL), `30m`).
    pub access_ttl: Option<Dur>,
    /// Refresh token lifetime (default [`REFRESH_TTL`](crate::defaults::REFRESH_TTL), `7d`).
    pub refresh_ttl: Option<Dur>,
}

/// `[cache]`.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    /// Verified-token cache entries; 0 turns the cache off (default
    /// [`CACHE_TOKENS`](crate::defaults::CACHE_TOKENS), 100000).
    pub tokens: Option<Spanned<i64>>,
}

/// `[state]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawState {
    /// `memory` or `redis` (default [`STATE_BACKEND`](crate::defaults::STATE_BACKEND),
    /// `memory`).
    pub backend: Option<Spanned<EnvStr>>,
    /// Redis URL: `redis[s]://` (one server), `redis[s]+cluster://h1:p1,h2:p2`
    /// (Redis Cluster) or `redis[s]+sentinel://s1:p1,s2:p2/NAME` (Sentinel); it may
    /// hold a password.
    pub url: Option<Spanned<Secret<EnvStr>>>,
    /// Prefix for every Redis key (default [`KEY_PREFIX`](crate::defaults::KEY_PREFIX),
    /// `portcullis:`).
    pub key_prefix: Option<EnvStr>,
    /// Serve when the state backend is unreachable (default
    /// [`FAIL_OPEN`](crate::defaults::FAIL_OPEN), false: fail closed).
    pub fail_open: Option<bool>,
    /// Extra trust root (PEM) for a `rediss` url (instead of the webpki roots).
    pub ca: Option<Spanned<EnvStr>>,
    /// Memory backend: refresh-token entries held at most (default
    /// [`STATE_MAX_ENTRIES`](crate::defaults::STATE_MAX_ENTRIES), 100000, at least 100);
    /// over it the oldest spent ones are evicted first.
    pub max_entries: Option<Spanned<i64>>,
    /// Replicas that must acknowledge (`WAIT`) a revocation or refresh-token write
    /// before it counts (default [`REPLICAS_ACK`](crate::defaults::REPLICAS_ACK), 0:
    /// the primary's word; at most
    /// [`MAX_REPLICAS_ACK`](crate::defaults::MAX_REPLICAS_ACK)).
    pub replicas_ack: Option<Spanned<i64>>,
}

/// `[forward_auth]` (SPEC §8).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForwardAuth {
    /// The decision listener, `ip:port`: plain HTTP/1.1 and h2c, never the main or
    /// admin listener (default [`FORWARD_AUTH_LISTEN`](crate::defaults::FORWARD_AUTH_LISTEN),
    /// `127.0.0.1:9000`).
    pub listen: Option<Spanned<EnvStr>>,
    /// Where the original request is read from, one convention per listener:
    /// `x-forwarded` (Traefik, Caddy), `x-original` (nginx, ingress-nginx) or `envoy`
    /// (Envoy's HTTP ext_authz) (default
    /// [`FORWARD_AUTH_HEADERS`](crate::defaults::FORWARD_AUTH_HEADERS), `x-forwarded`).
    pub headers: Option<Spanned<EnvStr>>,
}

/// A claim rule value: one value or several.
#[derive(Debug, Deserialize, Clone)]
#[serde(untagged)]
pub enum OneOrMany {
    /// Several accepted values (tried first: an array is not one value).
    Many(Vec<toml::Value>),
    /// One accepted value.
    One(toml::Value),
}

/// `[[routes]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Name for logs and metrics (default [`route_name`](crate::defaults::route_name),
    /// `route-N`).
    pub name: Option<Spanned<EnvStr>>,
    /// Exact host or `*.example.com`.
    pub host: Option<Spanned<EnvStr>>,
    /// Path pattern: literal segments, `*` for one segment, trailing `/**`.
    pub path: Spanned<EnvStr>,
    /// Methods this route applies to (default all): HTTP tokens, matched upper case.
    pub methods: Option<Vec<Spanned<EnvStr>>>,
    /// `protected`, `optional`, `public` or `deny` (default
    /// [`ACCESS`](crate::defaults::ACCESS), `protected`).
    pub access: Option<Spanned<EnvStr>>,
    /// Scopes that must all be granted.
    #[serde(default)]
    pub scopes: Vec<EnvStr>,
    /// Claim rules: the claim equals, or contains, one of the values.
    #[serde(default)]
    pub claims: BTreeMap<String, Spanned<OneOrMany>>,
    /// Where to look for the token, in order: `header`, `query:NAME`, `cookie:NAME`
    /// (default [`TOKEN_FROM`](crate::defaults::TOKEN_FROM), `["header"]`).
    pub token_from: Option<Vec<Spanned<EnvStr>>>,
    /// Name of an `[upstreams.*]` entry (not needed for `deny`, nor with
    /// `[forward_auth]`: a route without one serves decisions only, SPEC §2).
    pub upstream: Option<Spanned<EnvStr>>,
    /// Accept a `[login]` session instead of a token (SPEC §9; `protected` or
    /// `optional` routes only).
    pub login: Option<Spanned<bool>>,
    /// `required`: only DPoP-bound tokens with a valid proof (SPEC §10); `allowed`
    /// (default [`DPOP`](crate::defaults::DPOP)): bound and unbound tokens.
    pub dpop: Option<Spanned<EnvStr>>,
    /// Cross-origin requests from browsers (SPEC §11).
    pub cors: Option<Spanned<RawCors>>,
}

/// A route's `cors = { ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    /// `scheme://host[:port]` origins, or `"*"` (not with `credentials`).
    pub origins: Vec<Spanned<EnvStr>>,
    /// `Access-Control-Allow-Methods` (default `GET`, `HEAD`, `POST`).
    pub methods: Option<Vec<EnvStr>>,
    /// `Access-Control-Allow-Headers` (default none).
    #[serde(default)]
    pub headers: Vec<EnvStr>,
    /// `Access-Control-Allow-Credentials: true` (default false).
    pub credentials: Option<Spanned<bool>>,
    /// `Access-Control-Max-Age` (default unset).
    pub max_age: Option<Dur>,
}
