//! Raw sections ([`super::file`]) -> the compiled [`Config`], one file per section:
//! each raw type gets a `compile` method here (the shape of rust-rpxy's
//! `config/toml.rs` and sozu's `FileClusterConfig::to_cluster_config`).
//!
//! Guarantees: every default comes from [`crate::defaults`]; every problem is
//! reported through the [`Reporter`] at the span it was found at, and compiling goes
//! on after one, so one run reports every independent error (a section that did not
//! parse, see [`Damage`], causes no second error elsewhere). Compiling has no side
//! effects: it reads the files the config names and never writes one (a key to be
//! generated is only recorded, see [`super::provision`]).

mod assertion;
mod cache;
mod cors;
mod forward_auth;
mod identity;
mod issuer_keys;
mod issuers;
mod login;
mod route_checks;
mod routes;
mod server;
mod state;
mod telemetry;
mod token_endpoint;
mod upstreams;

use super::error::Reporter;
use super::file::RawConfig;
use super::parse::Damage;
use super::values::{Dur, EnvStr};
use super::{Config, KeyToGenerate};
use http::header::HeaderName;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use toml::Spanned;

/// What compiling one file carries along.
pub(super) struct Cx<'a> {
    /// Errors and warnings.
    pub rep: Reporter<'a>,
    /// Directory relative paths resolve against.
    base: PathBuf,
    /// Every file named so far (for reload watching).
    files: Vec<PathBuf>,
    /// `generate_key` private keys that do not exist yet.
    keys_to_generate: Vec<KeyToGenerate>,
}

impl<'a> Cx<'a> {
    pub(super) fn new(rep: Reporter<'a>, config: &Path) -> Self {
        Cx {
            rep,
            base: config.parent().map(Path::to_path_buf).unwrap_or_default(),
            files: vec![config.to_path_buf()],
            keys_to_generate: Vec::new(),
        }
    }

    /// `p` resolved against the config's directory, and remembered for watching.
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

    /// Reads the file `s` names; an error (with the resolved path) at `s` otherwise.
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

    /// An `ip:port` listen address.
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

    fn header_name(&mut self, name: &str, span: Range<usize>) -> Option<HeaderName> {
        match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                self.rep.at(span, format!("invalid header name `{name}`"));
                None
            }
        }
    }

    /// Errors reported so far, counting those dropped as follow-ons: a change tells
    /// that something compiled since is broken.
    fn problems(&self) -> usize {
        self.rep.errors.len() + self.rep.suppressed
    }
}

/// A duration, or its default.
fn dur(d: Option<Dur>, default: Duration) -> Duration {
    d.map_or(default, |d| d.0)
}

/// Compiles every section; `None` only when a required part could not be built
/// (the errors say why).
pub(super) fn compile(
    cx: &mut Cx<'_>,
    raw: RawConfig,
    damage: &Damage,
    path: &Path,
) -> Option<Config> {
    let server = raw.server.compile(cx);
    let admin = raw.admin.and_then(|a| cx.addr(&a.listen));
    let upstreams = upstreams::compile(cx, raw.upstreams, &damage.upstreams);
    let mut raw_identity = raw.identity;
    let raw_assertion = raw_identity.assertion.take();
    let mut identity = raw_identity.compile(cx);
    let issuers = issuers::compile(cx, raw.issuers, damage.issuers);
    let token_endpoint = raw
        .token_endpoint
        .and_then(|t| t.into_inner().compile(cx, &issuers));
    if let Some(a) = raw_assertion {
        assertion::compile(cx, a, &issuers, token_endpoint.as_ref(), &mut identity);
    }
    let cache_tokens = raw.cache.compile(cx);
    let state = raw
        .state
        .map(|s| s.into_inner().compile(cx))
        .unwrap_or_default();
    // Routes without `upstream` serve decisions only: fine with `[forward_auth]`, even
    // one that did not compile (its errors are reported there).
    let decisions = raw.forward_auth.is_some() || damage.forward_auth;
    let forward_auth = raw.forward_auth.and_then(|f| f.into_inner().compile(cx));
    let has_login = raw.login.is_some();
    let routes = routes::compile(
        cx,
        raw.routes,
        &damage.route_numbers,
        &upstreams,
        decisions,
        has_login,
    );
    let login = login::compile(cx, raw.login, &issuers);
    let telemetry = raw.telemetry.and_then(|t| t.into_inner().compile(cx));
    Some(Config {
        path: path.to_path_buf(),
        server: server?,
        admin,
        upstreams: upstreams.list,
        identity,
        issuers: issuers.list,
        token_endpoint,
        cache_tokens,
        state,
        forward_auth,
        routes,
        login,
        telemetry,
        files: std::mem::take(&mut cx.files),
        keys_to_generate: std::mem::take(&mut cx.keys_to_generate),
        warnings: Vec::new(),
    })
}
