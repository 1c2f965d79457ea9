//! The compiled, immutable configuration. [`load`] reads `proxy.toml`, checks every
//! key, resolves defaults and relative paths, reads key files and compiles routes;
//! it reports every problem it finds as `file:line:col: message`. Request handling
//! reads only this form, never the raw TOML.

pub mod error;
pub mod file;
pub mod values;

use crate::auth::issuer::{Issuer, KeySource};
use crate::auth::keys::{self, KeyFamily, KeySet, SigningKey, VerifyKey};
use crate::routes::{
    self, Access, ClaimRule, HostMatch, PathPattern, Route, RouteTable, TokenSource,
};
use error::Reporter;
pub use error::{ConfigError, ConfigErrors};
use file::{OneOrMany, RawConfig};
use http::header::HeaderName;
use http::Method;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use toml::Spanned;
use values::EnvStr;

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
    pub accounts: Arc<crate::issuer::users::Users>,
    /// Access token lifetime.
    pub access_ttl: Duration,
    /// Refresh token lifetime.
    pub refresh_ttl: Duration,
}

/// Most replicas `[state] replicas_ack` may ask for.
pub const MAX_REPLICAS_ACK: u32 = 16;
/// `[state] key_prefix` when none is set.
pub const DEFAULT_KEY_PREFIX: &str = "portcullis:";

/// `[state]`, compiled.
#[derive(Debug, Clone)]
pub struct State {
    /// Redis URL; `None` = in memory.
    pub redis_url: Option<String>,
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
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            fail_open: false,
            ca: None,
            max_entries: crate::state::MaxEntries::default(),
            replicas_ack: 0,
        }
    }
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
    /// Routes.
    pub routes: RouteTable,
    /// Every file the config names (for reload watching).
    pub files: Vec<PathBuf>,
}

/// Reads and compiles a config file.
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
    let raw: RawConfig = match toml::from_str(src) {
        Ok(r) => r,
        Err(e) => {
            let msg = e.message().trim().to_string();
            rep.at(e.span().unwrap_or(0..0), msg);
            return Err(ConfigErrors(rep.errors));
        }
    };
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut c = Compiler {
        rep,
        base,
        files: vec![path.to_path_buf()],
    };
    let cfg = c.compile(raw, path);
    if c.rep.is_empty() {
        cfg.ok_or_else(|| ConfigErrors(Vec::new()))
    } else {
        Err(ConfigErrors(c.rep.errors))
    }
}

struct Compiler<'a> {
    rep: Reporter<'a>,
    base: PathBuf,
    files: Vec<PathBuf>,
}

fn dur(d: Option<values::Dur>, default: Duration) -> Duration {
    d.map_or(default, |d| d.0)
}

impl Compiler<'_> {
    fn resolve(&mut self, p: &str) -> PathBuf {
        let p = Path::new(p);
        let full = if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        };
        self.files.push(full.clone());
        full
    }

    fn read_file(&mut self, s: &Spanned<EnvStr>, what: &str) -> Option<Vec<u8>> {
        let path = self.resolve(s.get_ref());
        match std::fs::read(&path) {
            Ok(b) => Some(b),
            Err(e) => {
                self.rep.at(
                    s.span(),
                    format!("cannot read {what} `{}`: {e}", path.display()),
                );
                None
            }
        }
    }

    fn compile(&mut self, raw: RawConfig, path: &Path) -> Option<Config> {
        let server = self.server(raw.server);
        let admin = raw.admin.and_then(|a| self.addr(&a.listen));
        let mut names = Vec::new();
        let mut upstreams = Vec::new();
        for (name, u) in raw.upstreams {
            if let Some(up) = self.upstream(&name, u) {
                names.push(name);
                upstreams.push(up);
            }
        }
        let identity = self.identity(raw.identity);
        let mut issuers = Vec::new();
        for i in raw.issuers {
            if let Some(iss) = self.issuer(i) {
                if issuers.iter().any(|x: &Arc<Issuer>| x.name == iss.name) {
                    self.rep
                        .at(0..0, format!("duplicate issuer name `{}`", iss.name));
                }
                if issuers.iter().any(|x: &Arc<Issuer>| x.iss == iss.iss) {
                    self.rep.at(
                        0..0,
                        format!("two issuers share `issuer = \"{}\"`", iss.iss),
                    );
                }
                issuers.push(Arc::new(iss));
            }
        }
        let token_endpoint = raw
            .token_endpoint
            .and_then(|t| self.token_endpoint(t, &issuers));
        let cache_tokens = match raw.cache.tokens {
            None => 100_000,
            Some(n) if *n.get_ref() >= 0 => *n.get_ref() as u64,
            Some(n) => {
                self.rep.at(n.span(), "`tokens` must be 0 or more");
                0
            }
        };
        let state = raw.state.map(|s| self.state(s)).unwrap_or_default();
        let routes = self.routes(raw.routes, &names, &upstreams);
        Some(Config {
            path: path.to_path_buf(),
            server: server?,
            admin,
            upstreams,
            identity,
            issuers,
            token_endpoint,
            cache_tokens,
            state,
            routes,
            files: std::mem::take(&mut self.files),
        })
    }

    fn addr(&mut self, s: &Spanned<EnvStr>) -> Option<SocketAddr> {
        match SocketAddr::from_str(s.get_ref()) {
            Ok(a) => Some(a),
            Err(_) => {
                self.rep.at(
                    s.span(),
                    format!(
                        "invalid listen address `{}` (expected `ip:port`)",
                        &**s.get_ref()
                    ),
                );
                None
            }
        }
    }

    fn server(&mut self, s: file::RawServer) -> Option<Server> {
        let listen = match &s.listen {
            Some(l) => self.addr(l)?,
            None => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let max_header_bytes = match s.max_header_bytes {
            None => 65_536,
            Some(n) if (1024..=16 * 1024 * 1024).contains(n.get_ref()) => *n.get_ref() as usize,
            Some(n) => {
                self.rep.at(
                    n.span(),
                    "`max_header_bytes` must be between 1024 and 16777216",
                );
                65_536
            }
        };
        let tls = s.tls.map(|t| {
            let t = t.into_inner();
            Tls {
                cert: self.resolve(t.cert.get_ref()),
                key: self.resolve(t.key.get_ref()),
                sni: t
                    .sni
                    .into_iter()
                    .map(|s| {
                        let s = s.into_inner();
                        let hosts = s
                            .hosts
                            .into_iter()
                            .map(|h| h.0.to_ascii_lowercase())
                            .collect();
                        (
                            hosts,
                            self.resolve(s.cert.get_ref()),
                            self.resolve(s.key.get_ref()),
                        )
                    })
                    .collect(),
            }
        });
        let mut count = |v: &Option<Spanned<i64>>, key: &str, min: i64, max: i64| -> Option<i64> {
            let n = v.as_ref()?;
            if (min..=max).contains(n.get_ref()) {
                Some(*n.get_ref())
            } else {
                self.rep
                    .at(n.span(), format!("`{key}` must be between {min} and {max}"));
                None
            }
        };
        // The default also fits the open-files limit (see crate::fdlimit).
        let max_connections = count(&s.max_connections, "max_connections", 1, 10_000_000)
            .map_or_else(|| crate::fdlimit::fit(25_000), |n| n as usize);
        let h2_max_concurrent_streams = count(
            &s.h2_max_concurrent_streams,
            "h2_max_concurrent_streams",
            1,
            10_000,
        )
        .map_or(100, |n| n as u32);
        let worker_threads =
            count(&s.worker_threads, "worker_threads", 1, 1024).map(|n| n as usize);
        Some(Server {
            listen,
            max_connections,
            h2_max_concurrent_streams,
            worker_threads,
            header_timeout: dur(s.header_timeout, Duration::from_secs(10)),
            idle_timeout: dur(s.idle_timeout, Duration::from_secs(60)),
            max_header_bytes,
            shutdown_grace: dur(s.shutdown_grace, Duration::from_secs(30)),
            watch: s.watch.unwrap_or(false),
            tls,
        })
    }

    fn upstream(&mut self, name: &str, u: Spanned<file::RawUpstream>) -> Option<Upstream> {
        let u = u.into_inner();
        let url: &str = u.url.get_ref();
        let kind = if url == "echo:" {
            UpstreamKind::Echo
        } else {
            let parsed = http::Uri::from_str(url).ok().and_then(|uri| {
                let p = uri.clone().into_parts();
                let scheme = p.scheme?;
                let authority = p.authority?;
                if scheme != http::uri::Scheme::HTTP && scheme != http::uri::Scheme::HTTPS {
                    return None;
                }
                if uri.query().is_some() || authority.as_str().contains('@') {
                    return None;
                }
                let prefix = uri.path().trim_end_matches('/').to_string();
                Some(UpstreamKind::Http {
                    scheme,
                    authority,
                    prefix,
                })
            });
            match parsed {
                Some(k) => k,
                None => {
                    self.rep.at(
                        u.url.span(),
                        format!(
                            "invalid upstream url `{url}` (expected http://host:port[/prefix], https://... or echo:)"
                        ),
                    );
                    return None;
                }
            }
        };
        let ca = u.ca.as_ref().map(|c| self.resolve(c.get_ref()));
        Some(Upstream {
            name: name.to_owned(),
            kind,
            connect_timeout: dur(u.connect_timeout, Duration::from_secs(2)),
            timeout: dur(u.timeout, Duration::from_secs(30)),
            ca,
        })
    }

    fn header_name(&mut self, name: &str, span: std::ops::Range<usize>) -> Option<HeaderName> {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                self.rep.at(span, format!("invalid header name `{name}`"));
                None
            }
        }
    }

    fn identity(&mut self, i: file::RawIdentity) -> Identity {
        let header = match &i.header {
            Some(h) => self
                .header_name(h.get_ref(), h.span())
                .unwrap_or(HeaderName::from_static("x-user")),
            None => HeaderName::from_static("x-user"),
        };
        let mut claims_to_headers = Vec::new();
        for (name, claim) in i.claims_to_headers {
            if let Some(h) = self.header_name(&name, claim.span()) {
                claims_to_headers.push((h, claim.into_inner().0));
            }
        }
        let fold = |h: &HeaderName| h.as_str().replace('_', "-");
        let mut strip: Vec<String> = std::iter::once(fold(&header))
            .chain(claims_to_headers.iter().map(|(h, _)| fold(h)))
            .collect();
        strip.sort();
        strip.dedup();
        Identity {
            header,
            claim: i.claim.map_or_else(|| "sub".to_owned(), |c| c.0),
            forward_authorization: i.forward_authorization.unwrap_or(true),
            claims_to_headers,
            strip,
        }
    }

    fn issuer(&mut self, s: Spanned<file::RawIssuer>) -> Option<Issuer> {
        let span = s.span();
        let i = s.into_inner();
        let mut algorithms = Vec::new();
        for a in i.algorithms.iter().flatten() {
            match Algorithm::from_str(a.get_ref()) {
                Ok(alg) => algorithms.push(alg),
                Err(_) => self.rep.at(
                    a.span(),
                    format!(
                        "unknown algorithm `{}` (HS256/384/512, RS256/384/512, PS256/384/512, ES256, ES384, EdDSA)",
                        &**a.get_ref()
                    ),
                ),
            }
        }
        let sources = [
            i.secret.is_some(),
            i.public_key.is_some(),
            i.private_key.is_some(),
            i.jwks_url.is_some(),
            i.discovery.as_ref().is_some_and(|d| *d.get_ref()),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if sources != 1 {
            self.rep.at(
                span.clone(),
                format!(
                    "issuer `{}` needs exactly one of `secret`, `public_key`, `private_key`, `jwks_url` or `discovery = true`",
                    &**i.name.get_ref()
                ),
            );
            return None;
        }
        let kid = i.kid.map(|k| k.0);
        let mut static_key: Option<(KeyFamily, DecodingKey)> = None;
        let mut signing: Option<(KeyFamily, EncodingKey, Option<serde_json::Value>)> = None;
        let mut source = KeySource::Static;
        if let Some(secret) = &i.secret {
            if secret.get_ref().len() < 32 {
                self.rep.at(
                    secret.span(),
                    "`secret` must be at least 32 bytes (RFC 7518 §3.2: as long as the hash)",
                );
            }
            let b = secret.get_ref().as_bytes();
            static_key = Some((KeyFamily::Hmac, DecodingKey::from_secret(b)));
            signing = Some((KeyFamily::Hmac, EncodingKey::from_secret(b), None));
        } else if let Some(pk) = &i.public_key {
            let pem = self.read_file(pk, "public key")?;
            match keys::public_key_from_pem(&pem) {
                Ok(k) => static_key = Some(k),
                Err(e) => self.rep.at(pk.span(), format!("public key: {e}")),
            }
        } else if let Some(pk) = &i.private_key {
            let path = self.resolve(pk.get_ref());
            if i.generate_key == Some(true) && !path.exists() {
                if let Err(e) = write_generated_key(&path) {
                    self.rep.at(
                        pk.span(),
                        format!("cannot create key `{}`: {e}", path.display()),
                    );
                    return None;
                }
            }
            let pem = self.read_file(pk, "private key")?;
            match keys::private_key_from_pem(&pem) {
                Ok(k) => {
                    static_key = Some((k.family, k.public));
                    signing = Some((k.family, k.signing, Some(k.jwk)));
                }
                Err(e) => self.rep.at(pk.span(), format!("private key: {e}")),
            }
        } else if let Some(url) = &i.jwks_url {
            source = KeySource::Jwks(url.get_ref().0.clone());
        } else {
            source = KeySource::Discovery;
        }
        if let Some((family, _)) = &static_key {
            if !algorithms.is_empty() && !algorithms.iter().any(|a| family.allows(*a)) {
                self.rep.at(
                    span.clone(),
                    format!(
                        "issuer `{}`: none of `algorithms` fits its {} key",
                        &**i.name.get_ref(),
                        family.as_str()
                    ),
                );
            }
        }
        let signing = signing.and_then(|(family, key, jwk)| {
            let alg = if algorithms.is_empty() {
                *family.algorithms().first()?
            } else {
                *algorithms.iter().find(|a| family.allows(**a))?
            };
            let public_jwk = jwk.map(|mut j| {
                if let Some(o) = j.as_object_mut() {
                    o.insert("alg".into(), format!("{alg:?}").into());
                    o.insert("use".into(), "sig".into());
                    if let Some(k) = &kid {
                        o.insert("kid".into(), k.clone().into());
                    }
                }
                j
            });
            Some(SigningKey {
                alg,
                kid: kid.clone(),
                key,
                public_jwk,
            })
        });
        let keys = KeySet {
            keys: static_key
                .map(|(family, key)| Arc::new(VerifyKey::new(kid.clone(), family, None, key)))
                .into_iter()
                .collect(),
        };
        let ca = i.ca.as_ref().map(|c| self.resolve(c.get_ref()));
        Some(Issuer {
            name: i.name.into_inner().0,
            iss: i.issuer.into_inner().0,
            audiences: i
                .audiences
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.0)
                .collect(),
            algorithms,
            leeway: dur(i.leeway, Duration::from_secs(30)),
            static_keys: Arc::new(keys),
            source,
            refresh_interval: dur(i.refresh_interval, Duration::from_secs(600)),
            ca,
            signing,
        })
    }

    fn token_endpoint(
        &mut self,
        t: Spanned<file::RawTokenEndpoint>,
        issuers: &[Arc<Issuer>],
    ) -> Option<TokenEndpoint> {
        let t = t.into_inner();
        let name: &str = t.issuer.get_ref();
        let Some(idx) = issuers.iter().position(|i| i.name == name) else {
            self.rep.at(
                t.issuer.span(),
                format!("unknown issuer `{name}` (no [[issuers]] has this name)"),
            );
            return None;
        };
        if issuers.get(idx).is_some_and(|i| i.signing.is_none()) {
            self.rep.at(
                t.issuer.span(),
                format!("issuer `{name}` cannot sign: give it a `secret` or `private_key`"),
            );
        }
        let path = t
            .path
            .map_or_else(|| "/token".to_owned(), |p| p.into_inner().0);
        let users = t.users.as_ref().map(|u| self.resolve(u.get_ref()));
        let accounts = match crate::issuer::users::load(users.as_deref()) {
            Ok(a) => a,
            Err(e) => {
                self.rep.errors.extend(e.0);
                crate::issuer::users::Users::default()
            }
        };
        Some(TokenEndpoint {
            path,
            issuer: idx,
            users,
            accounts: Arc::new(accounts),
            access_ttl: dur(t.access_ttl, Duration::from_secs(1800)),
            refresh_ttl: dur(t.refresh_ttl, Duration::from_secs(7 * 86_400)),
        })
    }

    fn state(&mut self, s: Spanned<file::RawState>) -> State {
        let s = s.into_inner();
        let backend = s.backend.as_ref().map_or("memory", |b| &**b.get_ref());
        let redis_url = match backend {
            "memory" => None,
            "redis" => match &s.url {
                Some(u) => {
                    if let Err(e) = crate::state::redis::check_url(&u.get_ref().0) {
                        self.rep.at(u.span(), format!("invalid [state] url: {e}"));
                    }
                    Some(u.get_ref().0.clone())
                }
                None => {
                    if let Some(b) = &s.backend {
                        self.rep.at(b.span(), "`backend = \"redis\"` needs `url`");
                    }
                    None
                }
            },
            other => {
                if let Some(b) = &s.backend {
                    self.rep.at(
                        b.span(),
                        format!("unknown state backend `{other}` (memory or redis)"),
                    );
                }
                None
            }
        };
        let ca =
            s.ca.as_ref()
                .and_then(|c| self.state_ca(c, redis_url.as_deref()));
        let replicas_ack = s.replicas_ack.as_ref().map_or(0, |n| {
            let v = u32::try_from(*n.get_ref())
                .ok()
                .filter(|v| *v <= MAX_REPLICAS_ACK);
            if v.is_none() {
                self.rep.at(
                    n.span(),
                    format!("`replicas_ack` must be between 0 and {MAX_REPLICAS_ACK}"),
                );
            } else if backend != "redis" {
                self.rep
                    .at(n.span(), "`replicas_ack` needs `backend = \"redis\"`");
            }
            v.unwrap_or(0)
        });
        let max_entries = self.max_entries(s.max_entries.as_ref());
        State {
            redis_url,
            ca,
            max_entries,
            replicas_ack,
            key_prefix: s
                .key_prefix
                .map_or_else(|| DEFAULT_KEY_PREFIX.to_owned(), |p| p.0),
            fail_open: s.fail_open.unwrap_or(false),
        }
    }

    /// `[state] max_entries`.
    fn max_entries(&mut self, n: Option<&Spanned<i64>>) -> crate::state::MaxEntries {
        use crate::state::{MaxEntries, MIN_MAX_ENTRIES};
        let Some(n) = n else {
            return MaxEntries::default();
        };
        match usize::try_from(*n.get_ref()) {
            Ok(v) if v >= MIN_MAX_ENTRIES => MaxEntries(v),
            _ => {
                self.rep.at(
                    n.span(),
                    format!("`max_entries` must be at least {MIN_MAX_ENTRIES}"),
                );
                MaxEntries::default()
            }
        }
    }

    /// Reads `[state] ca`: PEM certificates, only with a `rediss` url.
    fn state_ca(&mut self, c: &Spanned<values::EnvStr>, url: Option<&str>) -> Option<Vec<u8>> {
        use rustls_pki_types::pem::PemObject;
        if !url.is_some_and(crate::state::topology::is_tls) {
            self.rep.at(
                c.span(),
                "`ca` needs a rediss:// (or rediss+cluster://, rediss+sentinel://) `url` (TLS to Redis)",
            );
            return None;
        }
        let path = self.resolve(&c.get_ref().0);
        let pem = match std::fs::read(&path) {
            Ok(p) => p,
            Err(e) => {
                self.rep
                    .at(c.span(), format!("cannot read {}: {e}", path.display()));
                return None;
            }
        };
        let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_default();
        if certs.is_empty() {
            self.rep.at(
                c.span(),
                format!("{}: no PEM certificate found", path.display()),
            );
            return None;
        }
        Some(pem)
    }

    fn routes(
        &mut self,
        raw: Vec<Spanned<file::RawRoute>>,
        names: &[String],
        _upstreams: &[Upstream],
    ) -> RouteTable {
        let mut table = RouteTable::default();
        for (n, r) in raw.into_iter().enumerate() {
            let span = r.span();
            let (line, _) = error::line_col(self.rep_src(), span.start);
            let r = r.into_inner();
            let name = r.name.map_or_else(|| format!("route-{}", n + 1), |s| s.0);
            let path = match PathPattern::parse(r.path.get_ref()) {
                Ok(p) => p,
                Err(e) => {
                    self.rep.at(r.path.span(), e);
                    continue;
                }
            };
            let host = r
                .host
                .as_ref()
                .and_then(|h| match HostMatch::parse(h.get_ref()) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        self.rep.at(h.span(), e);
                        None
                    }
                });
            let methods = r.methods.as_ref().map(|ms| {
                ms.iter()
                    .filter_map(|m| {
                        let up = m.get_ref().to_ascii_uppercase();
                        match Method::from_bytes(up.as_bytes()) {
                            Ok(x) => Some(x),
                            Err(_) => {
                                self.rep
                                    .at(m.span(), format!("invalid method `{}`", &**m.get_ref()));
                                None
                            }
                        }
                    })
                    .collect::<Vec<_>>()
            });
            let access = match r.access.as_ref().map(|a| (&**a.get_ref(), a.span())) {
                None | Some(("protected", _)) => Access::Protected,
                Some(("optional", _)) => Access::Optional,
                Some(("public", _)) => Access::Public,
                Some(("deny", _)) => Access::Deny,
                Some((other, sp)) => {
                    self.rep.at(
                        sp,
                        format!("unknown access `{other}` (protected, optional, public or deny)"),
                    );
                    Access::Protected
                }
            };
            let upstream = match &r.upstream {
                Some(u) => match names.iter().position(|n| n == &**u.get_ref()) {
                    Some(i) => Some(i),
                    None => {
                        self.rep.at(
                            u.span(),
                            format!(
                                "unknown upstream `{}` (defined: {})",
                                &**u.get_ref(),
                                if names.is_empty() {
                                    "none".to_string()
                                } else {
                                    names.join(", ")
                                }
                            ),
                        );
                        None
                    }
                },
                None if access == Access::Deny => None,
                None => {
                    self.rep
                        .at(span.clone(), format!("route `{name}` needs `upstream`"));
                    None
                }
            };
            let token_from = match &r.token_from {
                None => vec![TokenSource::Header],
                Some(list) => list
                    .iter()
                    .filter_map(|s| match TokenSource::parse(s.get_ref()) {
                        Ok(t) => Some(t),
                        Err(e) => {
                            self.rep.at(s.span(), e);
                            None
                        }
                    })
                    .collect(),
            };
            let claims = r
                .claims
                .into_iter()
                .map(|(claim, v)| {
                    let vals = match v.into_inner() {
                        OneOrMany::One(x) => vec![x],
                        OneOrMany::Many(xs) => xs,
                    };
                    ClaimRule {
                        claim,
                        values: vals
                            .into_iter()
                            .filter_map(|x| serde_json::to_value(x).ok())
                            .collect(),
                    }
                })
                .collect();
            let scopes: Vec<String> = r.scopes.into_iter().map(|s| s.0).collect();
            let route = Route {
                name,
                host,
                path,
                methods,
                access,
                scope_param: scopes.join(" "),
                scopes,
                claims,
                token_from,
                upstream,
                line,
            };
            if let Some(earlier) = table.routes.iter().find(|e| routes::shadowed_by(&route, e)) {
                self.rep.at(
                    span,
                    format!(
                        "route `{}` is never used: route `{}` (line {}) matches everything it matches",
                        route.name, earlier.name, earlier.line
                    ),
                );
            }
            table.routes.push(route);
        }
        table
    }

    fn rep_src(&self) -> &str {
        self.rep.src()
    }
}

fn write_generated_key(path: &Path) -> Result<(), String> {
    let pem = keys::generate_ed25519_pem()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    {
        use std::io::Write;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| e.to_string())?;
        f.write_all(pem.as_bytes()).map_err(|e| e.to_string())?;
    }
    // Another process may have created it meanwhile: keep theirs.
    if path.exists() {
        let _ = std::fs::remove_file(&tmp);
        return Ok(());
    }
    std::fs::rename(&tmp, path).map_err(|e| e.to_string())
}

/// Keeps `Config` shareable across reloads.
pub type Shared = Arc<Config>;
