//! Command line (SPEC §1): run, `check`, `hash-password`, `token`, `explain`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Edge authentication reverse proxy.
#[derive(Debug, Parser)]
#[command(name = "portcullis", version, about, long_about = None)]
pub struct Cli {
    /// Config file (default: $PORTCULLIS_CONFIG, then ./proxy.toml).
    #[arg(
        long,
        global = true,
        env = "PORTCULLIS_CONFIG",
        default_value = "proxy.toml"
    )]
    pub config: PathBuf,
    /// What to do (default: run the proxy).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the config and print the route table in match order.
    Check,
    /// Read a password from stdin (one trailing newline stripped), or at a terminal
    /// from a prompt that does not echo it, and print its hash for users.toml.
    HashPassword {
        /// argon2id (PHC string) instead of bcrypt; needed for passwords over 72 bytes.
        #[arg(long)]
        argon2: bool,
        /// bcrypt cost (work factor, 4 to 31).
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(4..=31))]
        cost: u32,
    },
    /// Mint a token with the configured built-in issuer key.
    Token {
        /// Subject (the identity).
        #[arg(long)]
        sub: String,
        /// Space-separated scopes.
        #[arg(long)]
        scope: Option<String>,
        /// Lifetime, e.g. `15m`.
        #[arg(long, default_value = "15m")]
        ttl: String,
        /// Issuer name (default: `[token_endpoint] issuer`, else the first that can sign).
        #[arg(long)]
        issuer: Option<String>,
    },
    /// Show how a request would be decided: the normalized path, the route that
    /// matches (or why none), its access, token sources, scopes and claims, and the
    /// decision. Exit 0 when allowed, 1 when denied or invalid, 2 on usage errors.
    Explain {
        /// The request's host (routes with a `host` rule match only with one).
        #[arg(long)]
        host: Option<String>,
        /// A token to decide with, sent the way the matched route reads tokens; `-`
        /// reads it from stdin (keeps it out of the process list and shell history).
        #[arg(long)]
        token: Option<String>,
        /// The request method, e.g. `GET`.
        method: String,
        /// The request path, with an optional `?query`, e.g. `/admin/users`.
        path: String,
    },
}

/// The issuer that signs: `[token_endpoint] issuer`, else the first that can sign.
pub fn signing_issuer<'a>(
    config: &'a crate::config::Config,
    name: Option<&str>,
) -> Result<&'a crate::auth::issuer::Issuer, String> {
    let found = match name {
        Some(n) => config.issuers.iter().find(|i| i.name == n),
        None => match &config.token_endpoint {
            Some(t) => config.issuers.get(t.issuer),
            None => config.issuers.iter().find(|i| i.signing.is_some()),
        },
    };
    let iss = found.ok_or_else(|| match name {
        Some(n) => format!("no issuer named `{n}`"),
        None => "no issuer with a `secret` or `private_key` to sign with".to_string(),
    })?;
    if iss.signing.is_none() {
        return Err(format!(
            "issuer `{}` has no `secret` or `private_key` to sign with",
            iss.name
        ));
    }
    Ok(iss)
}
