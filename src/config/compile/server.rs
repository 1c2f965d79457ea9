//! `[server]` and `[server.tls]` -> [`Server`] and [`Tls`]: the listen address, the
//! connection limits (each checked against its bounds in [`defaults`]) and the
//! certificate paths, resolved (the certificates themselves are read by
//! [`crate::tls::Certs::load`]).

use super::{dur, Cx};
use crate::config::file::{RawServer, RawTls};
use crate::config::values::EnvStr;
use crate::config::{Server, Tls};
use crate::defaults;
use toml::Spanned;

impl RawServer {
    /// `None` when `listen` is invalid (nothing can start without it).
    pub(super) fn compile(self, cx: &mut Cx<'_>) -> Option<Server> {
        let listen = match &self.listen {
            Some(l) => cx.addr(l),
            None => Some(defaults::LISTEN),
        };
        let max_header_bytes = bounded(
            cx,
            self.max_header_bytes.as_ref(),
            "max_header_bytes",
            defaults::MAX_HEADER_BYTES_MIN,
            defaults::MAX_HEADER_BYTES_MAX,
        )
        .map_or(defaults::MAX_HEADER_BYTES, |n| n as usize);
        let tls = self.tls.map(|t| t.into_inner().compile(cx));
        // The default also fits the open-files limit (see crate::rlimit).
        let max_connections = bounded(
            cx,
            self.max_connections.as_ref(),
            "max_connections",
            1,
            defaults::MAX_CONNECTIONS_MAX,
        )
        .map_or_else(
            || crate::rlimit::fit(defaults::MAX_CONNECTIONS),
            |n| n as usize,
        );
        let h2_max_concurrent_streams = bounded(
            cx,
            self.h2_max_concurrent_streams.as_ref(),
            "h2_max_concurrent_streams",
            1,
            defaults::H2_MAX_CONCURRENT_STREAMS_MAX,
        )
        .map_or(defaults::H2_MAX_CONCURRENT_STREAMS, |n| n as u32);
        let worker_threads = bounded(
            cx,
            self.worker_threads.as_ref(),
            "worker_threads",
            1,
            defaults::WORKER_THREADS_MAX,
        )
        .map(|n| n as usize);
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .filter_map(|c| cidr(cx, c))
            .collect();
        Some(Server {
            listen: listen?,
            trusted_proxies,
            max_connections,
            h2_max_concurrent_streams,
            worker_threads,
            header_timeout: dur(self.header_timeout, defaults::HEADER_TIMEOUT),
            idle_timeout: dur(self.idle_timeout, defaults::IDLE_TIMEOUT),
            max_header_bytes,
            shutdown_grace: dur(self.shutdown_grace, defaults::SHUTDOWN_GRACE),
            watch: self.watch.unwrap_or(defaults::WATCH),
            tls,
        })
    }
}

impl RawTls {
    fn compile(self, cx: &mut Cx<'_>) -> Tls {
        Tls {
            cert: cx.resolve(self.cert.get_ref()),
            key: cx.resolve(self.key.get_ref()),
            sni: self
                .sni
                .into_iter()
                .map(|s| {
                    let s = s.into_inner();
                    let hosts = s
                        .hosts
                        .into_iter()
                        .map(|h| h.0.to_ascii_lowercase())
                        .collect();
                    (
                        hosts,
                        cx.resolve(s.cert.get_ref()),
                        cx.resolve(s.key.get_ref()),
                    )
                })
                .collect(),
        }
    }
}

/// One `trusted_proxies` entry: a CIDR (`10.0.0.0/8`, `::1/128`); an error at it
/// otherwise (a bare address is not one: it must say `/32` or `/128`).
fn cidr(cx: &mut Cx<'_>, s: &Spanned<EnvStr>) -> Option<ipnet::IpNet> {
    match s.get_ref().parse::<ipnet::IpNet>() {
        Ok(n) => Some(n.trunc()),
        Err(_) => {
            cx.rep.at(
                s.span(),
                format!(
                    "`trusted_proxies` entry `{}` is not a CIDR (e.g. `10.0.0.0/8`, `192.0.2.1/32`)",
                    s.get_ref().0
                ),
            );
            None
        }
    }
}

/// An integer setting within `min..=max`; an error at it otherwise (`None`: use the
/// default).
fn bounded(
    cx: &mut Cx<'_>,
    v: Option<&Spanned<i64>>,
    key: &str,
    min: i64,
    max: i64,
) -> Option<i64> {
    let n = v?;
    if (min..=max).contains(n.get_ref()) {
        Some(*n.get_ref())
    } else {
        cx.rep
            .at(n.span(), format!("`{key}` must be between {min} and {max}"));
        None
    }
}
