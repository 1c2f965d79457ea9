//! Connections to the Redis topology of `[state] url` ([`super::topology`]), handed
//! to the store as one [`Conn`], and the health task behind `/readyz`.
//!
//! - Standalone: one multiplexed [`ConnectionManager`] (concurrent commands are
//!   pipelined on it; it reconnects by itself after a drop).
//! - Cluster: the crate's async cluster connection: a multiplexed connection per
//!   node, slots learned from the seeds, `MOVED`/`ASK` followed, `TRYAGAIN` (a slot
//!   half-migrated) retried with short waits, slots re-read after a failover.
//! - Sentinel: the Sentinels are asked for the primary (the crate checks that it
//!   answers `ROLE` as primary); a [`ConnectionManager`] to it serves until it stops
//!   answering as primary, then the Sentinels are asked again and the connection
//!   follows the new primary.
//!
//! With `[state] replicas_ack = N`, operations that must survive a failover run on a
//! second connection, whose scripts wait for N replicas ([`super::conn`]), so no
//! read queues behind a blocked `WAIT`.
//!
//! Guarantees: connection attempts are bounded by [`CONNECT_TIMEOUT`], a Sentinel
//! lookup by [`DISCOVERY_TIMEOUT`]; the health task pings every [`PING_INTERVAL`]
//! ([`PING_INTERVAL_DOWN`] while down, rediscovering the primary each time on
//! Sentinel) and holds only a weak reference, so it ends with the store.

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{Client, ErrorKind, IntoConnectionInfo, RedisError, RedisResult, TlsCertificates};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use super::conn::{Conn, Raw};
use super::topology::{self, Topology};

/// Deadline of one operation (connecting included), after which it fails.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline of one connection attempt.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Deadline of one Sentinel lookup of the primary (its `ROLE` check included).
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Health ping period while Redis answers.
pub const PING_INTERVAL: Duration = Duration::from_secs(1);
/// Health ping period while it does not (reconnection is attempted as often).
pub const PING_INTERVAL_DOWN: Duration = Duration::from_millis(250);

/// The everyday connection and, with `replicas_ack`, the one for durable writes.
#[derive(Clone)]
struct Pair {
    main: Raw,
    durable: Option<Raw>,
}

/// The primary Sentinel named last, and the connections to it.
struct Primary {
    addr: String,
    conns: Pair,
}

enum Target {
    /// The URL was unusable (config validation prevents it): every operation fails.
    Broken,
    Single(Client, OnceLock<Pair>),
    Cluster(ClusterClient, OnceLock<Pair>),
    Sentinel(tokio::sync::Mutex<SentinelClient>, ArcSwapOption<Primary>),
}

/// Connections to the configured topology, and whether it answers.
pub struct Link {
    target: Target,
    acks: u32,
    /// The last ping (or command) reached Redis.
    up: AtomicBool,
    /// The health task runs.
    started: AtomicBool,
}

impl Link {
    /// A link to `url` (see [`topology::parse`]); `ca` (PEM) replaces the webpki
    /// roots for TLS; `acks`: `[state] replicas_ack`. Nothing connects yet.
    pub fn new(url: &str, ca: Option<&[u8]>, acks: u32) -> Link {
        let target = match target(url, ca) {
            Ok(t) => t,
            Err(e) => {
                // The crate's message may quote the URL, password included: kind only.
                tracing::error!(kind = ?e.kind(), "[state] url unusable: state operations will fail");
                Target::Broken
            }
        };
        Link {
            target,
            acks,
            up: AtomicBool::new(false),
            started: AtomicBool::new(false),
        }
    }

    /// Keys of one script must share a hash tag (Redis Cluster).
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(..))
    }

    /// Whether Redis answered lately.
    pub fn reachable(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// The connection for one operation; `durable`: its effect must survive a
    /// failover (acknowledged by `replicas_ack` replicas).
    pub fn conn(self: &Arc<Self>, durable: bool) -> RedisResult<Conn> {
        let pair = match &self.target {
            Target::Broken => {
                return Err(RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "invalid [state] url",
                )))
            }
            Target::Single(client, conns) => match conns.get() {
                Some(p) => p.clone(),
                None => {
                    let made = self.single_pair(client)?;
                    conns.get_or_init(|| made).clone()
                }
            },
            Target::Cluster(client, conns) => conns
                .get_or_init(|| {
                    let open = || {
                        Raw::Cluster(client.get_pending_async_connection_with_config(
                            redis::cluster::ClusterConfig::new(),
                        ))
                    };
                    Pair {
                        main: open(),
                        durable: (self.acks > 0).then(open),
                    }
                })
                .clone(),
            Target::Sentinel(_, primary) => match primary.load().as_ref() {
                Some(p) => p.conns.clone(),
                None => {
                    self.start();
                    return Err(RedisError::from((
                        ErrorKind::MasterNameNotFoundBySentinel,
                        "no primary known yet",
                    )));
                }
            },
        };
        self.start();
        Ok(match (durable, pair.durable) {
            (true, Some(raw)) => Conn::new(raw, self.acks),
            _ => Conn::new(pair.main, 0),
        })
    }

    fn single_pair(&self, client: &Client) -> RedisResult<Pair> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            // One attempt per reconnection: the next command or ping starts another,
            // so commands never queue behind a long back-off.
            .set_number_of_retries(0);
        let open = || {
            ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                .map(Raw::Manager)
        };
        Ok(Pair {
            main: open()?,
            durable: if self.acks > 0 { Some(open()?) } else { None },
        })
    }

    /// Notes a failed command: a lost connection, or a node that is no longer the
    /// primary, makes the store unreachable until the next ping says otherwise.
    pub fn failed(&self, err: &RedisError) {
        let readonly = err.kind() == ErrorKind::Server(redis::ServerErrorKind::ReadOnly);
        if err.is_io_error() || err.is_timeout() || err.is_connection_dropped() || readonly {
            self.set_up(false);
        }
    }

    /// Notes a command that Redis answered.
    pub fn answered(&self) {
        self.set_up(true);
    }

    /// Starts the health task once (inside a tokio runtime only).
    pub fn start(self: &Arc<Self>) {
        if tokio::runtime::Handle::try_current().is_err()
            || self.started.swap(true, Ordering::Relaxed)
        {
            return;
        }
        let weak: Weak<Link> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(link) = weak.upgrade() else {
                    return;
                };
                let ok = link.check().await;
                link.set_up(ok);
                drop(link);
                let wait = if ok {
                    PING_INTERVAL
                } else {
                    PING_INTERVAL_DOWN
                };
                tokio::time::sleep(wait).await;
            }
        });
    }

    /// Records whether Redis answered; logs the changes.
    fn set_up(&self, ok: bool) {
        if self.up.load(Ordering::Relaxed) == ok || self.up.swap(ok, Ordering::Relaxed) == ok {
            return;
        }
        if ok {
            tracing::info!("state backend (redis) reachable");
        } else {
            tracing::error!("state backend (redis) unreachable");
        }
    }

    /// One health check: `PING` (every primary, on a cluster); on Sentinel, `ROLE`
    /// must say primary, else the Sentinels are asked again.
    async fn check(self: &Arc<Self>) -> bool {
        let ok = match &self.target {
            Target::Sentinel(..) => {
                self.is_primary().await || (self.discover().await && self.is_primary().await)
            }
            _ => self.ping().await,
        };
        if !ok {
            crate::metrics::state_error("ping");
        }
        ok
    }

    async fn ping(self: &Arc<Self>) -> bool {
        let Ok(mut c) = self.conn(false) else {
            return false;
        };
        let ping = redis::cmd("PING");
        let fut = ping.query_async::<String>(&mut c);
        matches!(tokio::time::timeout(COMMAND_TIMEOUT, fut).await, Ok(Ok(_)))
    }

    async fn is_primary(self: &Arc<Self>) -> bool {
        let Ok(mut c) = self.conn(false) else {
            return false;
        };
        let role = redis::cmd("ROLE");
        let fut = role.query_async::<redis::Role>(&mut c);
        matches!(
            tokio::time::timeout(COMMAND_TIMEOUT, fut).await,
            Ok(Ok(redis::Role::Primary { .. }))
        )
    }

    /// Asks the Sentinels for the primary; a new address gets new connections.
    async fn discover(&self) -> bool {
        let Target::Sentinel(sentinel, primary) = &self.target else {
            return false;
        };
        let Ok(mut sentinel) = sentinel.try_lock() else {
            return false; // a lookup is under way
        };
        let client =
            match tokio::time::timeout(DISCOVERY_TIMEOUT, sentinel.async_get_client()).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    tracing::debug!(kind = ?e.kind(), "no primary from the sentinels");
                    return false;
                }
                Err(_) => return false,
            };
        let addr = client.get_connection_info().addr().to_string();
        if primary.load().as_ref().is_some_and(|p| p.addr == addr) {
            return true; // the same primary: its connection manager reconnects
        }
        match self.single_pair(&client) {
            Ok(conns) => {
                tracing::warn!(primary = %addr, "state backend (redis sentinel): following the primary");
                primary.store(Some(Arc::new(Primary { addr, conns })));
                true
            }
            Err(_) => false,
        }
    }
}

/// The target of a parsed URL.
fn target(url: &str, ca: Option<&[u8]>) -> RedisResult<Target> {
    let invalid = || RedisError::from((ErrorKind::InvalidClientConfig, "invalid [state] url"));
    let certs = || TlsCertificates {
        client_tls: None,
        root_cert: ca.map(<[u8]>::to_vec),
    };
    match topology::parse(url).map_err(|_| invalid())? {
        Topology::Standalone(u) => Ok(Target::Single(
            match ca {
                Some(_) => Client::build_with_tls(u, certs())?,
                None => Client::open(u)?,
            },
            OnceLock::new(),
        )),
        Topology::Cluster(nodes) => {
            let mut b = ClusterClientBuilder::new(nodes)
                .connection_timeout(CONNECT_TIMEOUT)
                .response_timeout(COMMAND_TIMEOUT)
                // Redirections and TRYAGAIN are retried quickly, within the deadline.
                .retries(8)
                .min_retry_wait(5)
                .max_retry_wait(100)
                .retry_wait_formula(5, 2);
            if ca.is_some() {
                b = b.certs(certs());
            }
            Ok(Target::Cluster(b.build()?, OnceLock::new()))
        }
        Topology::Sentinel(s) => {
            let addrs = s
                .sentinels
                .iter()
                .map(|u| u.as_str().into_connection_info().map(|i| i.addr().clone()))
                .collect::<RedisResult<Vec<_>>>()?;
            let node = s.node.as_str().into_connection_info()?;
            let node = node.redis_settings();
            let mut b = SentinelClientBuilder::new(addrs, &s.master, SentinelServerType::Master)?
                .set_client_to_redis_db(node.db());
            if let Some(u) = node.username() {
                b = b.set_client_to_redis_username(u);
            }
            if let Some(p) = node.password() {
                b = b.set_client_to_redis_password(p);
            }
            if s.tls {
                b = b.set_client_to_redis_tls_mode(redis::TlsMode::Secure);
                if ca.is_some() {
                    b = b
                        .set_client_to_sentinel_certificates(certs())
                        .set_client_to_redis_certificates(certs());
                }
            }
            Ok(Target::Sentinel(
                tokio::sync::Mutex::new(b.build()?),
                ArcSwapOption::empty(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topologies() {
        let l = Link::new("redis+cluster://127.0.0.1:7000,127.0.0.1:7001", None, 0);
        assert!(l.is_cluster());
        let l = Link::new("redis+sentinel://127.0.0.1:26379/m", None, 1);
        assert!(!l.is_cluster());
        assert!(matches!(l.target, Target::Sentinel(..)));
        let l = Link::new("nope://x", None, 0);
        assert!(matches!(l.target, Target::Broken));
    }
}
