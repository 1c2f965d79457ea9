//! The running state built from one config: compiled config, verifier with its
//! cache, one pooled client per upstream. Held behind an `ArcSwap` so a reload can
//! swap it atomically while in-flight requests keep the one they started with.

use crate::auth::verify::Verifier;
use crate::config::Config;
use crate::proxy::upstream::{self, UpstreamClient};
use arc_swap::ArcSwap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Everything a request needs, built once per config.
pub struct Runtime {
    /// The compiled config.
    pub config: Config,
    /// Token verification and cache.
    pub verifier: Verifier,
    /// Clients, index-aligned with `config.upstreams` (`None` for `echo:`).
    pub clients: Vec<Option<UpstreamClient>>,
}

impl Runtime {
    /// Builds the runtime for a config (fails on an unusable upstream `ca`).
    pub fn new(config: Config) -> Result<Self, crate::tls::TlsError> {
        let verifier = Verifier::new(
            config.issuers.clone(),
            config.identity.claim.clone(),
            config.cache_tokens,
        );
        let clients = config
            .upstreams
            .iter()
            .map(upstream::client_for)
            .collect::<Result<_, _>>()?;
        Ok(Runtime {
            config,
            verifier,
            clients,
        })
    }
}

/// The application: the current runtime, swappable on reload.
pub struct App {
    /// Current runtime.
    pub runtime: ArcSwap<Runtime>,
}

impl App {
    /// An app serving `config`.
    pub fn new(config: Config) -> Result<Arc<Self>, crate::tls::TlsError> {
        Ok(Arc::new(App {
            runtime: ArcSwap::from_pointee(Runtime::new(config)?),
        }))
    }
}

/// Facts about the client connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The peer address.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The smuggling guard saw an ambiguously framed request on this connection.
    pub ambiguous: bool,
}
