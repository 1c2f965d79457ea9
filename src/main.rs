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
        Some(Command::HashPassword { argon2, cost }) => hash_password(argon2, cost),
        Some(Command::Token {
            ref sub,
            ref scope,
            ref ttl,
            ref issuer,
        }) => token(&cli, sub, scope.as_deref(), ttl, issuer.as_deref()),
        Some(Command::Explain {
            ref host,
            ref token,
            ref method,
            ref path,
        }) => explain(&cli, host.as_deref(), token.as_deref(), method, path),
    }
}

/// `explain`: the decision for one request, printed; exit 0 allowed, 1 denied or
/// invalid, 2 usage.
fn explain(
    cli: &Cli,
    host: Option<&str>,
    token: Option<&str>,
    method: &str,
    path: &str,
) -> ExitCode {
    let stdin_token;
    let token = match token {
        Some("-") => {
            let mut t = String::new();
            use std::io::Read;
            if let Err(e) = std::io::stdin().take(64 * 1024).read_to_string(&mut t) {
                eprintln!("explain: cannot read the token from stdin: {e}");
                return ExitCode::from(2);
            }
            stdin_token = t.trim().to_owned();
            Some(stdin_token.as_str())
        }
        other => other,
    };
    let cfg = match load(cli, false) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let ask = portcullis::explain::Ask {
        method,
        target: path,
        host,
        token,
    };
    match rt.block_on(portcullis::explain::explain(cfg, &ask)) {
        Ok(e) => {
            print!("{}", e.text);
            ExitCode::from(u8::from(!e.allowed))
        }
        Err(e @ portcullis::explain::Failed::Usage(_)) => {
            eprintln!("explain: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("{}: {e}", cli.config.display());
            ExitCode::from(1)
        }
    }
}

/// `hash-password`: the hash on stdout. The password comes from stdin, or, when stdin
/// is a terminal, from a prompt on the terminal that does not echo it (asked twice, so a
/// typo does not end up in users.toml). The password is never echoed or printed.
fn hash_password(argon2: bool, cost: u32) -> ExitCode {
    let input = match read_password() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("hash-password: {e}");
            return ExitCode::from(1);
        }
    };
    // 4 KiB is far beyond any password; more is refused rather than read forever.
    if input.len() > 4096 {
        eprintln!("hash-password: the input is over 4096 bytes");
        return ExitCode::from(1);
    }
    match portcullis::password::hash_password(&input, argon2, cost) {
        Ok(h) => {
            println!("{h}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hash-password: {e}");
            ExitCode::from(1)
        }
    }
}

/// The password for `hash-password`: at a terminal from a no-echo prompt (twice),
/// else all of stdin (at most 4097 bytes read).
fn read_password() -> Result<Vec<u8>, String> {
    use std::io::{IsTerminal, Read};
    if std::io::stdin().is_terminal() {
        let ask = |prompt: &str| {
            rpassword::prompt_password(prompt).map_err(|e| format!("cannot read the password: {e}"))
        };
        let first = ask("Password: ")?;
        if ask("Retype password: ")? != first {
            return Err("the passwords do not match".into());
        }
        return Ok(first.into_bytes());
    }
    let mut input = Vec::new();
    std::io::stdin()
        .take(4097)
        .read_to_end(&mut input)
        .map_err(|e| format!("cannot read stdin: {e}"))?;
    Ok(input)
}

/// Loads the config; with `create_keys` (run, token) first creating the missing
/// `generate_key` keys it names. `check` creates nothing.
fn load(cli: &Cli, create_keys: bool) -> Result<Config, ExitCode> {
    let loaded = if create_keys {
        config::provision::load_creating_keys(&cli.config)
    } else {
        config::load(&cli.config)
    };
    loaded.map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(1)
    })
}

fn check(cli: &Cli) -> ExitCode {
    let cfg = match load(cli, false) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Certificates and keys are checked the way start-up loads them.
    if let Some(tls) = &cfg.server.tls {
        if let Err(e) = portcullis::tls::Certs::load(tls) {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    }
    // Warnings do not fail the check (exit 0).
    for w in &cfg.warnings {
        eprintln!("warning: {w}");
    }
    for k in &cfg.keys_to_generate {
        eprintln!("note: {}", k.at);
    }
    if let Some(te) = &cfg.token_endpoint {
        for w in te.accounts.warnings() {
            eprintln!("warning: {w}");
        }
    }
    println!("{}: ok", cli.config.display());
    let mut rows = vec![[
        "#", "route", "host", "path", "methods", "access", "upstream",
    ]
    .map(String::from)];
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
        rows.push([
            (i + 1).to_string(),
            r.name.clone(),
            host,
            r.path.source.clone(),
            methods,
            access,
            upstream,
        ]);
    }
    print!("{}", columns(&rows));
    ExitCode::SUCCESS
}

/// Rows as a table: each column as wide as its widest cell plus two spaces, the last
/// one unpadded (so no cell, however long, pushes the next column out of line).
fn columns<const N: usize>(rows: &[[String; N]]) -> String {
    let mut widths = [0; N];
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < N {
                let pad = widths[i] + 2 - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn token(cli: &Cli, sub: &str, scope: Option<&str>, ttl: &str, issuer: Option<&str>) -> ExitCode {
    let ttl = match config::values::parse_duration(ttl) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("--ttl: {e}");
            return ExitCode::from(2);
        }
    };
    let cfg = match load(cli, true) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let result = portcullis::cli::signing_issuer(&cfg, issuer)
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
    let loaded = portcullis::telemetry::early(|| {
        portcullis::metrics::install();
        // Before the config is compiled: the default max_connections follows the limit.
        portcullis::rlimit::raise();
        load(cli, true)
    });
    let cfg = match loaded {
        Ok(c) => c,
        Err(code) => return code,
    };
    let traces = cfg.telemetry.as_ref().map(|t| portcullis::otel::Settings {
        traces_url: t.traces_url(),
        service_name: t.service_name.clone(),
        sample_ratio: t.sample_ratio,
    });
    if let Err(e) = portcullis::telemetry::init(traces.as_ref()) {
        tracing::error!(error = %e, "traces are not exported");
    }
    for w in &cfg.warnings {
        tracing::warn!(warning = %w, "config warning");
    }
    portcullis::rlimit::warn_if_short(cfg.server.max_connections);
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cfg.server.worker_threads {
        builder.worker_threads(n);
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let served = rt.block_on(serve(cfg));
    // The last spans are sent before the process exits.
    portcullis::otel::shutdown();
    match served {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("portcullis: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// Runs until SIGTERM/SIGINT; `Ok(false)` when the drain cut requests off.
async fn serve(cfg: Config) -> anyhow::Result<bool> {
    let listen = cfg.server.listen;
    let admin_addr = cfg.admin;
    let fa_addr = cfg.forward_auth.as_ref().map(|f| f.listen);
    let app = portcullis::app::App::new(cfg)?;
    let main = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let admin = match admin_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} ([admin])"))?,
        ),
        None => None,
    };
    let forward_auth = match fa_addr {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} ([forward_auth])"))?,
        ),
        None => None,
    };
    #[cfg(unix)]
    portcullis::reload::spawn_sighup(app.clone());
    let listeners = portcullis::Listeners {
        main,
        admin,
        forward_auth,
    };
    Ok(portcullis::serve(app, listeners, shutdown_signal()).await?)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
