//! Command line (SPEC §1): run, `check`, `hash-password`, `token`.

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
}
