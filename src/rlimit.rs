//! The open-files limit (`RLIMIT_NOFILE`). Every client connection is a file
//! descriptor, and so is the upstream connection it may hold; at the limit `accept()`
//! fails with EMFILE (see [`crate::server::accept`]). [`raise`] lifts the soft limit to the
//! hard one at start (the soft default, often 1024, is far below what a proxy needs,
//! and the hard limit is what the operator or systemd's `LimitNOFILE` allows), and
//! [`fit`] bounds the default `max_connections` by what the soft limit can hold, so a
//! default setup meets the connection cap (clients wait in the listen backlog) before
//! it meets EMFILE. An explicit `max_connections` is kept as written.

/// File descriptors left for everything but client connections: listeners, the
/// runtime's poller and wakers, signal pipes, the file watcher, JWKS and Redis
/// connections, files read at reload, stdio.
pub const RESERVE: u64 = 64;

/// The `(soft, hard)` limit now; `None` where the platform has none or it cannot be read.
pub fn current() -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        rlimit::Resource::NOFILE.get().ok()
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Raises the soft limit to the hard limit and returns `(soft, hard)` after (a failure
/// is logged and the limit left as it was).
pub fn raise() -> Option<(u64, u64)> {
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        tracing::warn!(error = %e, "cannot raise the open-files limit");
    }
    current()
}

/// Client connections that fit in `soft` descriptors: half of what [`RESERVE`] leaves
/// (each may hold an upstream connection), at least 1.
pub fn connections_within(soft: u64) -> usize {
    let n = soft.saturating_sub(RESERVE) / 2;
    usize::try_from(n).unwrap_or(usize::MAX).max(1)
}

/// `default` lowered to what the current soft limit holds.
pub fn fit(default: usize) -> usize {
    current().map_or(default, |(soft, _)| default.min(connections_within(soft)))
}

/// Warns once when `max_connections` cannot all be open within the soft limit.
pub fn warn_if_short(max_connections: usize) {
    if let Some((soft, _)) = current() {
        let fits = connections_within(soft);
        if max_connections > fits {
            tracing::warn!(
                max_connections,
                open_files_limit = soft,
                fits,
                "max_connections is more than the open-files limit holds: at the limit, \
                 accept fails (EMFILE) and is retried with back-off; raise the hard \
                 limit (ulimit -Hn, systemd LimitNOFILE) or lower max_connections"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::connections_within;

    #[test]
    fn connections_fit_the_limit() {
        assert_eq!(connections_within(0), 1);
        assert_eq!(connections_within(64), 1);
        assert_eq!(connections_within(128), 32);
        assert_eq!(connections_within(1024), 480);
        assert_eq!(connections_within(1_048_576), 524_256);
        assert_eq!(
            connections_within(u64::MAX),
            usize::try_from((u64::MAX - 64) / 2).unwrap_or(usize::MAX)
        );
    }

    #[test]
    fn fit_never_raises_the_default() {
        assert!(super::fit(10) <= 10);
        assert!(super::fit(1) == 1);
    }
}
