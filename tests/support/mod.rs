//! The one harness of the integration suites, a file per role:
//!
//! - [`proxy`]: the proxy under test, in-process by default (`portcullis::serve` on
//!   port-0 listeners the harness binds) or the real binary when a test needs a
//!   process (signals, reload, drain, exit codes, logs, memory, limits); the CLI.
//! - [`upstream`]: recording and streaming upstreams.
//! - [`idp`]: a reconfigurable JWKS/discovery server and a real OpenID provider.
//! - [`client`]: raw HTTP/1.1 over TCP (one response, or every response of a
//!   connection), reqwest helpers, token-endpoint calls.
//! - [`tokens`]: keys, JWKs and hand-signed JWTs (hostile ones included).
//! - [`pki`]: a test CA and certificates.
//! - [`redis`]: real Redis topologies (standalone, Cluster, Sentinel).
//! - [`nginx`]: a real nginx.
//! - [`browser`]: headless Chromium (playwright-core) running a page script.
//! - [`grpc`]: a real Envoy ext_authz gRPC client (tonic) for the decision listener.
//! - [`disk`]: the repository's configs, and snapshots of a directory tree (a command
//!   that must write nothing).
//!
//! Everything listens on `127.0.0.1`, on port 0 wherever the server can be handed a
//! listener or reports its port; [`free_port`] is for the external servers that can
//! do neither.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod browser;
pub mod client;
pub mod cookie_client;
pub mod craft_idp;
pub mod disk;
pub mod dpop;
pub mod grpc;
pub mod idp;
pub mod nginx;
pub mod oidc;
pub mod pki;
pub mod proxy;
pub mod redis;
pub mod tokens;
pub mod upstream;

// Each suite uses some of these: the others are not "unused" in the harness.
#[allow(unused_imports)]
pub use {client::*, idp::*, pki::*, proxy::*, tokens::*, upstream::*};

use std::net::SocketAddr;
use std::time::Duration;

/// Upper bound for any single network exchange in the suites.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for a server to start accepting connections.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound for a CLI invocation (`check`, `token`, ...).
pub const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// A port that was free a moment ago (bind port 0, read it, release it). The only
/// such helper, and racy by nature: only for servers that must be told a port and
/// cannot report the one they bound (redis-server, nginx, node, uvicorn), for a
/// config whose port a test shows or checks ([`ProxyBuilder::on_free_port`], a
/// refused config). Portcullis and the harness's own servers otherwise bind port 0.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An address where nothing listens, and nothing will while this lives: a socket
/// bound to a port-0 address without listening, so connections to it are refused
/// (a dead upstream, an unreachable state backend).
pub struct ClosedPort {
    _socket: tokio::net::TcpSocket,
    pub addr: SocketAddr,
}

pub fn closed_port() -> ClosedPort {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    ClosedPort {
        _socket: socket,
        addr,
    }
}

/// Polls `f` every 50 ms until it holds (`true`) or `within` passes (`false`).
pub async fn eventually<F, Fu>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fu,
    Fu: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if std::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// 1-based number of the first line of `text` containing `needle`.
pub fn line_of(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not in config text"))
        + 1
}

/// Deterministic pseudo-random bytes (xorshift), for body pass-through checks.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
