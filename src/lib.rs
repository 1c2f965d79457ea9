//! portcullis: an edge authentication reverse proxy.
//!
//! [`config::load`] compiles `proxy.toml` and writes nothing ([`config::provision`] creates
//! the `generate_key` keys of `run` and `token`); [`app::App`] holds the running state;
//! [`server::serve`] accepts connections and runs [`proxy::handler`] per request.
#![warn(clippy::unwrap_used, unreachable_pub)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub(crate) mod admin;
pub mod app;
pub mod auth;
pub(crate) mod body;
pub mod cli;
pub mod config;
pub mod decide;
pub mod defaults;
pub(crate) mod deny;
pub mod explain;
pub mod forward_auth;
pub(crate) mod h1;
pub mod host;
pub mod issuer;
pub mod login;
pub mod metrics;
pub mod mint;
pub mod otel;
pub mod password;
pub mod path;
pub mod proxy;
pub mod reload;
pub mod rlimit;
pub mod routes;
pub mod secret;
pub mod server;
pub mod state;
pub(crate) mod status;
pub mod telemetry;
pub mod tls;
pub(crate) mod tls_client;
pub(crate) mod upstream;

/// The listeners an [`App`](app::App) is served on, bound by the caller (the binary binds
/// the configured addresses; tests bind port 0 and keep the addresses).
pub struct Listeners {
    /// The main listener (`[server] listen`).
    pub main: tokio::net::TcpListener,
    /// The admin listener (`[admin] listen`), when wanted.
    pub admin: Option<tokio::net::TcpListener>,
    /// The forward-auth decision listener (`[forward_auth] listen`, SPEC §8), when
    /// configured.
    pub forward_auth: Option<tokio::net::TcpListener>,
}

/// Serves `app` on `listeners` until `shutdown` resolves, then drains (SPEC §6):
/// readiness fails at once, the listeners close, in-flight requests get
/// `[server] shutdown_grace`. Returns `Ok(true)` when everything finished in time,
/// `Ok(false)` when the grace period cut requests off. With `[server] watch`, config
/// changes are reloaded while it runs. This is what the binary runs and what in-process
/// tests drive.
pub async fn serve(
    app: std::sync::Arc<app::App>,
    listeners: Listeners,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<bool, tls::TlsError> {
    let tls = match &app.certs {
        Some(c) => Some(tls::server_config(c.clone())?),
        None => None,
    };
    let admin = listeners.admin.map(|l| {
        let local = l.local_addr().ok();
        tokio::spawn(admin::serve(l, app.clone()));
        local
    });
    let decisions = listeners.forward_auth.map(|l| {
        let rt = app.runtime.load();
        let convention = rt
            .config
            .forward_auth
            .as_ref()
            .map_or(defaults_convention(), |f| f.headers);
        (l, convention)
    });
    {
        let rt = app.runtime.load();
        tracing::info!(
            listen = listeners.main.local_addr().ok().map(|a| a.to_string()),
            admin = admin.flatten().map(|a| a.to_string()),
            forward_auth = decisions
                .as_ref()
                .and_then(|(l, _)| l.local_addr().ok())
                .map(|a| a.to_string()),
            tls = app.certs.is_some(),
            routes = rt.config.routes.routes.len(),
            issuers = rt.config.issuers.len(),
            upstreams = rt.config.upstreams.len(),
            "portcullis listening"
        );
    }
    let _watcher = reload::spawn_watcher(app.clone());
    let drain_app = app.clone();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let decisions = decisions.map(|(l, convention)| {
        tokio::spawn(forward_auth::listener::serve(
            l,
            app.clone(),
            convention,
            stopped,
        ))
    });
    let shutdown = async move {
        shutdown.await;
        // Readiness fails at once; the listeners close when they stop accepting.
        drain_app
            .draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
        tracing::info!("shutdown signal received");
        stop.send_replace(true);
    };
    let main = server::serve(listeners.main, app, tls, shutdown).await;
    // Drained side by side with the main listener, within the same grace period.
    let decided = match decisions {
        Some(task) => task.await.unwrap_or(false),
        None => true,
    };
    Ok(main && decided)
}

/// `[forward_auth] headers` when the config has no `[forward_auth]` but a decision
/// listener was handed over anyway.
fn defaults_convention() -> config::Convention {
    config::Convention::parse(defaults::FORWARD_AUTH_HEADERS)
        .unwrap_or(config::Convention::XForwarded)
}

/// Installs the process-wide crypto providers for rustls and jsonwebtoken (both
/// aws-lc-rs). Safe to call more than once.
pub fn install_crypto_providers() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
}
