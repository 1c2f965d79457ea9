//! The connection one store operation runs on ([`Conn`]), over any topology; with
//! `[state] replicas_ack = N`, each script is sent with `WAIT N` in one pipeline, so
//! the wait covers that very write (`WAIT` counts the writes of the connection that
//! issues it); fewer than N acknowledgements within [`ACK_TIMEOUT`] fail the
//! operation. Other commands (checks, `SCRIPT LOAD`) pass through unchanged.

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, RedisError, RedisFuture, Value};
use std::time::Duration;

/// How long `WAIT` waits for `[state] replicas_ack` replicas.
pub const ACK_TIMEOUT: Duration = Duration::from_millis(500);

/// A connection of one of the topologies.
#[derive(Clone)]
pub(super) enum Raw {
    /// One server, or the primary Sentinel named.
    Manager(ConnectionManager),
    /// Redis Cluster.
    Cluster(ClusterConnection),
}

/// The connection an operation runs on; `acks > 0`: each script is followed by
/// `WAIT acks`.
#[derive(Clone)]
pub struct Conn {
    raw: Raw,
    acks: u32,
}

impl Conn {
    pub(super) fn new(raw: Raw, acks: u32) -> Conn {
        Conn { raw, acks }
    }
}

/// `EVAL`/`EVALSHA`: the store's writes (and nothing else) wait for replicas.
fn is_script(cmd: &Cmd) -> bool {
    matches!(
        cmd.args_iter().next(),
        Some(redis::Arg::Simple(name)) if name.eq_ignore_ascii_case(b"EVALSHA") || name.eq_ignore_ascii_case(b"EVAL")
    )
}

impl Raw {
    fn as_like(&mut self) -> &mut (dyn ConnectionLike + Send) {
        match self {
            Raw::Manager(c) => c,
            Raw::Cluster(c) => c,
        }
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        if self.acks == 0 || !is_script(cmd) {
            return self.raw.as_like().req_packed_command(cmd);
        }
        let acks = self.acks;
        let mut pipe = redis::pipe();
        pipe.add_command(cmd.clone())
            .cmd("WAIT")
            .arg(acks)
            .arg(u64::try_from(ACK_TIMEOUT.as_millis()).unwrap_or(u64::MAX));
        Box::pin(async move {
            let mut replies = self.raw.as_like().req_packed_commands(&pipe, 0, 2).await?;
            let (Some(waited), Some(reply)) = (replies.pop(), replies.pop()) else {
                return Err(RedisError::from((ErrorKind::Parse, "short pipeline reply")));
            };
            let reply = match reply {
                Value::ServerError(e) => return Err(e.into()),
                v => v,
            };
            match waited {
                Value::Int(n) if n >= i64::from(acks) => Ok(reply),
                Value::ServerError(e) => Err(e.into()),
                _ => Err(RedisError::from((
                    ErrorKind::Client,
                    "write not acknowledged by [state] replicas_ack replicas in time",
                ))),
            }
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.raw
            .as_like()
            .req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        match &self.raw {
            Raw::Manager(c) => c.get_db(),
            Raw::Cluster(c) => c.get_db(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_scripts_wait() {
        assert!(is_script(redis::cmd("EVALSHA").arg("abc").arg(0)));
        assert!(is_script(&redis::cmd("eval")));
        assert!(!is_script(redis::cmd("EXISTS").arg("k")));
        assert!(!is_script(redis::cmd("SCRIPT").arg("LOAD")));
    }
}
