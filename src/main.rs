//! The `portcullis` binary: parse the command line, load the config, run.

use anyhow::Context;
use clap::Parser;
use portcullis::cli::{Cli, Command};
use portcullis::config::{self, Config};
use portcullis::routes::Access;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    portcullis::install_crypto_providers();
    match cli.command {
        None => run(&cli),
        Some(Command::Check) => check(&cli),
        Some(Command::Token {
            ref sub,
            ref scope,
            ref ttl,
            ref issuer,
        }) => token(&cli, sub, scope.as_deref(), ttl, issuer.as_deref()),
    }
}

fn load(cli: &Cli) -> Result<Config, ExitCode> {
    config::load(&cli.config).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(1)
    })
}

fn check(cli: &Cli) -> ExitCode {
    let cfg = match load(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    println!("{}: ok", cli.config.display());
    println!(
        "{:<3} {:<16} {:<20} {:<24} {:<14} {:<10} upstream",
        "#", "route", "host", "path", "methods", "access"
    );
    for (i, r) in cfg.routes.routes.iter().enumerate() {
        let host = match &r.host {
            None => "*".to_string(),
            Some(portcullis::routes::HostMatch::Exact(h)) => h.clone(),
            Some(portcullis::routes::HostMatch::Suffix(s)) => format!("*{s}"),
        };
        let methods = r.methods.as_ref().map_or_else(
            || "ALL".to_string(),
            |m| {
                m.iter()
                    .map(http::Method::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            },
        );
        let mut access = r.access.as_str().to_string();
        if !r.scopes.is_empty() {
            access.push_str(&format!(" scopes={}", r.scopes.join(",")));
        }
        let upstream = match (r.access, r.upstream) {
            (Access::Deny, _) | (_, None) => "-".to_string(),
            (_, Some(u)) => cfg.upstreams.get(u).map_or("-".into(), |u| u.name.clone()),
        };
        println!(
            "{:<3} {:<16} {:<20} {:<24} {:<14} {:<10} {}",
            i + 1,
            r.name,
            host,
            r.path.source,
            methods,
            access,
            upstream
        );
    }
    ExitCode::SUCCESS
}

fn token(cli: &Cli, sub: &str, scope: Option<&str>, ttl: &str, issuer: Option<&str>) -> ExitCode {
    let ttl = match config::values::parse_duration(ttl) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("--ttl: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = match load(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = portcullis::mint::signing_issuer(&cfg, issuer)
        .and_then(|iss| portcullis::mint::mint(iss, sub, scope, ttl, &[]));
    match result {
        Ok(t) => {
            println!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", cli.config.display());
            ExitCode::from(1)
        }
    }
}

fn run(cli: &Cli) -> ExitCode {
    init_tracing();
    let cfg = match load(cli) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match rt.block_on(serve(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("portcullis: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let listen = cfg.server.listen;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    tracing::info!(
        listen = %listener.local_addr().unwrap_or(listen),
        routes = cfg.routes.routes.len(),
        issuers = cfg.issuers.len(),
        upstreams = cfg.upstreams.len(),
        "portcullis listening"
    );
    let tls = match &cfg.server.tls {
        Some(t) => Some(portcullis::tls::server_config(t)?),
        None => None,
    };
    let app = portcullis::app::App::new(cfg)?;
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    portcullis::server::serve(listener, app, tls, shutdown).await;
    Ok(())
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .init();
}
