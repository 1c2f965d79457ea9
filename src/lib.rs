//! portcullis: an edge authentication reverse proxy.
//!
//! [`config::load`] compiles `proxy.toml`; [`app::App`] holds the running state;
//! [`server::serve`] accepts connections and runs [`proxy::handler`] per request.
#![warn(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod accept;
pub mod admin;
pub mod app;
pub mod auth;
pub mod body;
pub mod cli;
pub mod config;
pub mod deny;
pub mod fdlimit;
pub mod host;
pub mod issuer;
pub mod metrics;
pub mod mint;
pub mod path;
pub mod proxy;
pub mod reload;
pub mod routes;
pub mod server;
pub mod smuggle;
pub mod sniff;
pub mod state;
pub mod status;
pub mod telemetry;
pub mod tls;

/// Installs the process-wide crypto providers for rustls and jsonwebtoken (both
/// aws-lc-rs). Safe to call more than once.
pub fn install_crypto_providers() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}
