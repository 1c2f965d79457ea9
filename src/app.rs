//! The running state built from one config: compiled config, verifier with its
//! cache, one pooled client per upstream. Held behind an `ArcSwap` so a reload can
//! swap it atomically while in-flight requests keep the one they started with.

use crate::auth::revocation::Revocations;
use crate::auth::verify::Verifier;
use crate::config::Config;
use crate::decide::authenticate::Accounts;
use crate::decide::{Engine, Routed};
use crate::upstream::Target;
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Everything a request needs, built once per config.
pub struct Runtime {
    /// The compiled config.
    pub config: Config,
    /// Token verification and cache.
    pub verifier: Verifier,
    /// The routes in match order, each with its upstream resolved (the decision
    /// yields the route's target: no index to look up at request time).
    pub routes: Vec<Routed>,
    /// Request counters per route.
    pub counters: crate::metrics::RouteCounters,
    /// Issuer state (revocations, refresh families, login counters): created with
    /// the first runtime and handed on to each reloaded one.
    pub state: Arc<crate::issuer::Shared>,
    /// The built-in token endpoint, with `[token_endpoint]`.
    pub endpoint: Option<crate::issuer::Endpoint>,
    /// Browser sign-in, with `[login]` (SPEC §9).
    pub login: Option<crate::login::Login>,
    /// The identity assertion signer, with `[identity.assertion]` (SPEC §10).
    pub assertions: Option<crate::decide::assertion::Assertions>,
    /// `/.well-known/jwks.json` (the token endpoint's and the assertion issuer's
    /// public keys), when either is configured with an asymmetric key.
    pub jwks: Option<String>,
}

impl Runtime {
    /// Builds the runtime for a config (fails on an unusable upstream or issuer `ca`)
    /// and starts the JWKS refresh tasks (when called inside a tokio runtime).
    pub fn new(config: Config) -> Result<Self, crate::tls::TlsError> {
        Self::build(config, None)
    }

    /// [`Runtime::new`] for a reload: issuers whose key source did not change keep
    /// their JWKS keys and fetch counters (no 401s or readiness dip meanwhile).
    pub fn reloaded(config: Config, previous: &Runtime) -> Result<Self, crate::tls::TlsError> {
        Self::build(config, Some(previous))
    }

    /// What the decision reads ([`crate::decide::decide`]), for the inline proxy (a
    /// route without `upstream` answers 404; a decision front door turns
    /// `needs_upstream` off).
    pub fn engine(&self) -> Engine<'_> {
        Engine {
            routes: &self.routes,
            verifier: &self.verifier,
            revocations: Revocations {
                store: self.state.store.as_ref(),
                fail_open: self.config.state.fail_open,
            },
            identity: &self.config.identity,
            accounts: self.endpoint.as_ref().map(|ep| Accounts {
                issuer: &ep.issuer,
                users: &ep.users,
            }),
            needs_upstream: true,
            login: self.login.as_ref(),
            assertions: self.assertions.as_ref(),
        }
    }

    /// The state backend answers, or its outages are tolerated (`fail_open`).
    pub fn state_ok(&self) -> bool {
        self.config.state.fail_open || self.state.store.reachable()
    }

    fn build(config: Config, previous: Option<&Runtime>) -> Result<Self, crate::tls::TlsError> {
        let assertions = crate::decide::assertion::Assertions::new(&config);
        // The assertion issuer signs assertions only: its tokens are never accepted
        // (SPEC §10), so the verifier does not know it (`iss` unknown: 401).
        let assertion_issuer = config.identity.assertion.as_ref().map(|a| a.issuer);
        let trusted = config
            .issuers
            .iter()
            .enumerate()
            .filter(|(i, _)| Some(*i) != assertion_issuer)
            .map(|(_, iss)| iss.clone())
            .collect();
        let mut verifier =
            Verifier::new(trusted, config.identity.claim.clone(), config.cache_tokens)?;
        if let Some(p) = previous {
            verifier.jwks.inherit(&p.verifier.jwks);
        }
        verifier.jwks.start();
        let targets = config
            .upstreams
            .iter()
            .map(|u| Target::new(u).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let routes = config
            .routes
            .routes
            .iter()
            .map(|r| Routed {
                route: r.clone(),
                target: r.upstream.and_then(|i| targets.get(i).cloned()),
                audience: r
                    .upstream
                    .and_then(|i| config.upstreams.get(i))
                    .map_or_else(|| r.name.as_str(), |u| u.audience.as_str())
                    .into(),
            })
            .collect();
        let counters =
            crate::metrics::RouteCounters::new(config.routes.routes.iter().map(|r| r.name.clone()));
        let state = match previous {
            Some(p) => {
                let (old, new) = (&p.config.state, &config.state);
                if old.redis_url != new.redis_url
                    || old.key_prefix != new.key_prefix
                    || old.ca != new.ca
                    || old.max_entries != new.max_entries
                    || old.replicas_ack != new.replicas_ack
                {
                    tracing::warn!(
                        "[state] backend, url, key_prefix, ca, max_entries and replicas_ack changes take effect at the next restart"
                    );
                }
                p.state.clone()
            }
            None => crate::issuer::Shared::new(&config),
        };
        let endpoint = crate::issuer::Endpoint::new(&config, state.clone());
        let login = crate::login::Login::new(&config, &verifier, state.store.clone())?;
        let jwks = jwks_document(endpoint.as_ref(), assertions.as_ref());
        Ok(Runtime {
            config,
            verifier,
            routes,
            counters,
            state,
            endpoint,
            login,
            assertions,
            jwks,
        })
    }
}

/// The JWKS document of the keys portcullis signs with (SPEC §5, §10).
fn jwks_document(
    ep: Option<&crate::issuer::Endpoint>,
    assertions: Option<&crate::decide::assertion::Assertions>,
) -> Option<String> {
    let keys: Vec<serde_json::Value> = ep
        .and_then(|e| e.issuer.signing.as_ref())
        .and_then(|s| s.public_jwk.clone())
        .into_iter()
        .chain(assertions.map(|a| a.jwk.clone()))
        .collect();
    (!keys.is_empty()).then(|| serde_json::json!({ "keys": keys }).to_string())
}

/// What the last reload did (for logs, `/readyz`-adjacent status and the admin page).
#[derive(Debug, Clone)]
pub struct ReloadOutcome {
    /// When it happened (RFC 3339).
    pub at: String,
    /// `ok` or the errors, one per line.
    pub result: Result<(), String>,
}

/// The application: the current runtime (swapped atomically on reload) and the
/// process-wide state that outlives a reload.
pub struct App {
    /// Current runtime.
    pub runtime: ArcSwap<Runtime>,
    /// Certificates for the TLS listener, swapped on reload.
    pub certs: Option<Arc<crate::tls::Certs>>,
    /// Set on SIGTERM/SIGINT: readiness fails, listeners close.
    pub draining: AtomicBool,
    /// Process start.
    pub started: Instant,
    /// The last reload, if any.
    pub last_reload: Mutex<Option<ReloadOutcome>>,
}

impl App {
    /// An app serving `config` (with TLS certificates loaded when configured).
    pub fn new(config: Config) -> Result<Arc<Self>, crate::tls::TlsError> {
        let certs = match &config.server.tls {
            Some(t) => Some(Arc::new(crate::tls::Certs::load(t)?)),
            None => None,
        };
        Ok(Arc::new(App {
            runtime: ArcSwap::from_pointee(Runtime::new(config)?),
            certs,
            draining: AtomicBool::new(false),
            started: Instant::now(),
            last_reload: Mutex::new(None),
        }))
    }

    /// Whether the proxy should receive traffic (`/readyz`): not draining, every
    /// JWKS issuer has keys, and the state backend answers (unless `[state] fail_open`).
    pub fn ready(&self) -> bool {
        let rt = self.runtime.load();
        !self.is_draining() && rt.verifier.jwks.ready() && rt.state_ok()
    }

    /// Whether the process is shutting down.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Facts about the client connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The peer address.
    pub peer: SocketAddr,
    /// `peer`'s IP as a header value, formatted once per connection.
    pub peer_ip: http::HeaderValue,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// This request stands in for (or follows) a head the smuggling guard refused;
    /// serve_conn answers such a request itself, so the handler refusing it too is
    /// defence in depth.
    pub ambiguous: bool,
    /// Where the handler spawns the task that splices a protocol switch (WebSocket), so
    /// that the server's drain waits for it. Set for the requests hyper may switch
    /// protocols on (`server::smuggle::wants_upgrade`), `None` for the others.
    pub upgrades: Option<tokio_util::task::TaskTracker>,
}
