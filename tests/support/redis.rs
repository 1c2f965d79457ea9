//! Real Redis topologies for the state suites, from Debian's `redis-server`
//! (`PORTCULLIS_REDIS_SERVER`, else `redis-server` on PATH; `scripts/test-all.sh`
//! installs it) on free loopback ports. Every process is killed on drop.
//!
//! - [`Redis`]: one server, plain or TLS (a fresh CA), restartable on its port.
//! - [`Cluster`]: N masters joined by `redis-cli --cluster create`
//!   (`PORTCULLIS_REDIS_CLI`, else PATH), and a slot moved by hand
//!   ([`Cluster::migrate_slot`]: `CLUSTER SETSLOT ... MIGRATING/IMPORTING` + `MIGRATE`).
//! - [`Sentinels`]: a primary, replicas and three Sentinels with short timeouts
//!   (down after 1 s, failover timeout 5 s).
//!
//! No persistence anywhere (`--save "" --appendonly no`): state lives as long as the
//! process. redis-server must be told its port, so it gets [`free_port`] (cluster
//! nodes: a port below 55535 whose bus port, +10000, is free too); a server that
//! cannot bind it is started again on another. TLS material comes from [`Pki`].

use super::{free_port, Pki};
use std::ffi::OsString;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a topology may take to come up.
const UP_WITHIN: Duration = Duration::from_secs(30);

/// The `redis-server` binary.
pub fn redis_server() -> String {
    std::env::var("PORTCULLIS_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into())
}

/// The `redis-cli` binary.
pub fn redis_cli() -> String {
    std::env::var("PORTCULLIS_REDIS_CLI").unwrap_or_else(|_| "redis-cli".into())
}

/// A free port whose cluster bus port (+10000) is free as well.
fn free_port_with_bus() -> u16 {
    loop {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p < 55535 && TcpListener::bind(("127.0.0.1", p + 10000)).is_ok() {
            return p;
        }
    }
}

/// Polls `f` every 20 ms until it holds; panics with `what` after `within`.
pub fn wait_until(within: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `redis[s]+{kind}://127.0.0.1:P1,127.0.0.1:P2,...{path}` for `nodes`.
fn multi_url(tls: bool, kind: &str, nodes: &[Node], path: &str) -> String {
    let scheme = if tls { "rediss" } else { "redis" };
    let hosts: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.port))
        .collect();
    format!("{scheme}+{kind}://{}{path}", hosts.join(","))
}

// ---- TLS material ---------------------------------------------------------------

/// A fresh CA, and a certificate for 127.0.0.1 signed by it (server and client).
pub struct Tls {
    dir: tempfile::TempDir,
    /// The CA certificate (PEM).
    pub ca_pem: String,
}

impl Tls {
    pub fn new() -> Tls {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new();
        pki.leaf(dir.path(), "tls", &["127.0.0.1"]);
        pki.write_ca(&dir.path().join("ca.crt"));
        Tls {
            dir,
            ca_pem: pki.ca_pem,
        }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// Config directives for a TLS-only server on `port` (replication and cluster
    /// bus over TLS too; clients need no certificate).
    fn directives(&self, port: u16) -> Vec<(String, String)> {
        let f = |n: &str| self.dir.path().join(n).display().to_string();
        [
            ("port", "0".to_owned()),
            ("tls-port", port.to_string()),
            ("tls-cert-file", f("tls.crt")),
            ("tls-key-file", f("tls.key")),
            ("tls-ca-cert-file", f("ca.crt")),
            ("tls-auth-clients", "no".to_owned()),
            ("tls-replication", "yes".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

impl Default for Tls {
    fn default() -> Self {
        Self::new()
    }
}

// ---- one process ------------------------------------------------------------------

/// One `redis-server` (or Sentinel) process on a loopback port.
pub struct Node {
    pub port: u16,
    child: Option<Child>,
    args: Vec<OsString>,
    tls: bool,
    /// Its working directory unless told another (a replica writes the RDB it
    /// received there).
    dir: tempfile::TempDir,
}

/// What a [`Node`] is started as.
enum Role<'a> {
    /// A server (standalone, primary or replica).
    Server,
    /// A cluster node: its bus port (+10000) must be free too.
    ClusterNode,
    /// A Sentinel, with its (rewritable) config file in this directory.
    Sentinel(&'a Path),
}

impl Node {
    /// Starts `redis-server` with `directives` on a fresh port, again on another if
    /// it could not bind; waits until it answers.
    fn start(
        role: &Role<'_>,
        tls: Option<&Tls>,
        mut directives: impl FnMut(u16) -> Vec<(String, String)>,
    ) -> Node {
        for _ in 0..5 {
            let dir = tempfile::tempdir().unwrap();
            let port = match role {
                Role::ClusterNode => free_port_with_bus(),
                _ => free_port(),
            };
            let mut d: Vec<(String, String)> = vec![
                ("bind".into(), "127.0.0.1".into()),
                ("dir".into(), dir.path().display().to_string()),
            ];
            if !matches!(role, Role::Sentinel(_)) {
                d.push(("save".into(), String::new()));
                d.push(("appendonly".into(), "no".into()));
            }
            match tls {
                Some(t) => d.extend(t.directives(port)),
                None => d.push(("port".into(), port.to_string())),
            }
            d.extend(directives(port));
            let args: Vec<OsString> = match role {
                Role::Sentinel(dir) => {
                    let p = dir.join(format!("sentinel-{port}.conf"));
                    let text: String = d.iter().map(|(k, v)| format!("{k} {v}\n")).collect();
                    std::fs::write(&p, text).unwrap();
                    vec![p.into_os_string(), "--sentinel".into()]
                }
                _ => d
                    .iter()
                    .flat_map(|(k, v)| [OsString::from(format!("--{k}")), OsString::from(v)])
                    .collect(),
            };
            let mut n = Node {
                port,
                child: None,
                args,
                tls: tls.is_some(),
                dir,
            };
            if n.spawn() {
                return n;
            }
        }
        panic!("redis-server did not start on 5 ports in a row");
    }

    /// (Re)starts the process on its port; `false` when it exited (port taken).
    fn spawn(&mut self) -> bool {
        assert!(self.child.is_none(), "already running");
        let child = Command::new(redis_server())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server not found: scripts/test-all.sh installs it (apt-get)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return false;
                }
            }
            if self.answers() {
                return true;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Restarts a killed node on the same port.
    pub fn restart(&mut self) {
        assert!(self.spawn(), "redis-server could not take its port again");
    }

    /// `PING` answered (TLS: the port accepts).
    fn answers(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        if self.tls {
            return true;
        }
        let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
        let mut buf = [0u8; 7];
        s.write_all(b"PING\r\n").is_ok() && s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// SIGKILL (no shutdown, no last write).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id();
        let st = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(pid.to_string())
            .status()
            .unwrap();
        assert!(st.success(), "kill -{sig}");
    }

    /// SIGSTOP: the process holds its connections but answers nothing.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// SIGCONT after [`Node::pause`].
    pub fn resume(&self) {
        self.signal("CONT");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One command on a node, `None` when it cannot be run or fails.
pub fn query<T: redis::FromRedisValue>(
    port: u16,
    tls: Option<&Tls>,
    cmd: &redis::Cmd,
) -> Option<T> {
    let info = match tls {
        Some(t) => redis::Client::build_with_tls(
            format!("rediss://127.0.0.1:{port}"),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(t.ca_pem.clone().into_bytes()),
            },
        ),
        None => redis::Client::open(format!("redis://127.0.0.1:{port}")),
    };
    let mut c = info
        .ok()?
        .get_connection_with_timeout(Duration::from_secs(2))
        .ok()?;
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    cmd.query(&mut c).ok()
}

// ---- standalone -------------------------------------------------------------------

/// A `redis-server` on a loopback port, without persistence; killed on drop.
pub struct Redis {
    pub node: Node,
    pub tls: Option<Tls>,
}

impl Redis {
    pub fn start() -> Redis {
        Redis {
            node: Node::start(&Role::Server, None, |_| Vec::new()),
            tls: None,
        }
    }

    /// TLS only, with a certificate for 127.0.0.1 from a fresh CA.
    pub fn start_tls() -> Redis {
        let tls = Tls::new();
        Redis {
            node: Node::start(&Role::Server, Some(&tls), |_| Vec::new()),
            tls: Some(tls),
        }
    }

    pub fn port(&self) -> u16 {
        self.node.port
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.node.port)
    }

    /// The CA's PEM (TLS only).
    pub fn ca_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(|t| t.ca_pem.as_str())
    }

    /// Starts the killed server again, empty, on the same port.
    pub fn restart(&mut self) {
        self.node.restart();
    }

    pub fn kill(&mut self) {
        self.node.kill();
    }
}

// ---- cluster ----------------------------------------------------------------------

/// A Redis Cluster of masters only (no replicas), all slots assigned.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub tls: Option<Tls>,
    dir: tempfile::TempDir,
}

impl Cluster {
    /// `masters` nodes joined by `redis-cli --cluster create ... --cluster-yes`;
    /// returns once every node reports `cluster_state:ok`.
    pub fn start(masters: usize, tls: bool) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let tls = tls.then(Tls::new);
        let d: &Path = dir.path();
        let nodes: Vec<Node> = (0..masters)
            .map(|_| {
                Node::start(&Role::ClusterNode, tls.as_ref(), |port| {
                    let mut v = vec![
                        ("cluster-enabled".to_owned(), "yes".to_owned()),
                        (
                            "cluster-config-file".to_owned(),
                            d.join(format!("nodes-{port}.conf")).display().to_string(),
                        ),
                        ("cluster-node-timeout".to_owned(), "2000".to_owned()),
                        ("dir".to_owned(), d.display().to_string()),
                    ];
                    if tls.is_some() {
                        v.push(("tls-cluster".to_owned(), "yes".to_owned()));
                    }
                    v
                })
            })
            .collect();
        let mut cli = Command::new(redis_cli());
        cli.arg("--cluster").arg("create");
        for n in &nodes {
            cli.arg(format!("127.0.0.1:{}", n.port));
        }
        cli.args(["--cluster-replicas", "0", "--cluster-yes"]);
        if let Some(t) = &tls {
            cli.arg("--tls").arg("--cacert").arg(t.ca_file());
        }
        let out = cli
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli not found: scripts/test-all.sh installs it (apt-get redis-tools)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let c = Cluster { nodes, tls, dir };
        for n in &c.nodes {
            wait_until(UP_WITHIN, "cluster not ok", || {
                c.query::<String>(n.port, redis::cmd("CLUSTER").arg("INFO"))
                    .is_some_and(|i| {
                        i.contains("cluster_state:ok")
                            && i.contains(&format!("cluster_known_nodes:{masters}"))
                    })
            });
        }
        c
    }

    /// `redis[s]+cluster://` with every node as a seed.
    pub fn url(&self) -> String {
        multi_url(self.tls.is_some(), "cluster", &self.nodes, "")
    }

    pub fn query<T: redis::FromRedisValue>(&self, port: u16, cmd: &redis::Cmd) -> Option<T> {
        query(port, self.tls.as_ref(), cmd)
    }

    /// The slot of `key`.
    pub fn keyslot(&self, key: &str) -> u16 {
        self.query(
            self.nodes[0].port,
            redis::cmd("CLUSTER").arg("KEYSLOT").arg(key),
        )
        .unwrap()
    }

    /// Index of the node that owns `slot` (by `CLUSTER COUNTKEYSINSLOT` being
    /// answerable: only the owner serves the slot; asked through `CLUSTER SLOTS`).
    pub fn owner(&self, slot: u16) -> usize {
        let slots: Vec<(u16, u16, (String, u16))> = self
            .query::<Vec<redis::Value>>(self.nodes[0].port, redis::cmd("CLUSTER").arg("SLOTS"))
            .unwrap()
            .into_iter()
            .filter_map(|v| {
                let redis::Value::Array(items) = v else {
                    return None;
                };
                let lo: u16 = redis::from_redis_value(items.first()?.clone()).ok()?;
                let hi: u16 = redis::from_redis_value(items.get(1)?.clone()).ok()?;
                let redis::Value::Array(node) = items.get(2)?.clone() else {
                    return None;
                };
                let host: String = redis::from_redis_value(node.first()?.clone()).ok()?;
                let port: u16 = redis::from_redis_value(node.get(1)?.clone()).ok()?;
                Some((lo, hi, (host, port)))
            })
            .collect();
        let port = slots
            .iter()
            .find(|(lo, hi, _)| (*lo..=*hi).contains(&slot))
            .map(|(_, _, (_, p))| *p)
            .expect("slot not served");
        self.nodes.iter().position(|n| n.port == port).unwrap()
    }

    /// Every key of every node (test sized data only).
    pub fn keys(&self) -> Vec<String> {
        self.nodes
            .iter()
            .flat_map(|n| {
                self.query::<Vec<String>>(n.port, redis::cmd("KEYS").arg("*"))
                    .unwrap_or_default()
            })
            .collect()
    }

    fn node_id(&self, i: usize) -> String {
        self.query(self.nodes[i].port, redis::cmd("CLUSTER").arg("MYID"))
            .unwrap()
    }

    /// Moves `slot` to node `to` the way `redis-cli --cluster reshard` does,
    /// `batch` keys per `MIGRATE` with `pause` between them, so the slot stays
    /// half-migrated (`MIGRATING` on the source, `IMPORTING` on the target) for a
    /// while. Returns the number of keys moved.
    pub fn migrate_slot(&self, slot: u16, to: usize, batch: usize, pause: Duration) -> usize {
        let from = self.owner(slot);
        assert_ne!(from, to, "slot already there");
        let (src, dst) = (self.nodes[from].port, self.nodes[to].port);
        let (from_id, to_id) = (self.node_id(from), self.node_id(to));
        let setslot = |port: u16, how: &str, id: &str| {
            let r: Option<String> = self.query(
                port,
                redis::cmd("CLUSTER")
                    .arg("SETSLOT")
                    .arg(slot)
                    .arg(how)
                    .arg(id),
            );
            assert_eq!(r.as_deref(), Some("OK"), "CLUSTER SETSLOT {how}");
        };
        setslot(dst, "IMPORTING", &from_id);
        setslot(src, "MIGRATING", &to_id);
        let mut moved = 0;
        loop {
            let keys: Vec<String> = self
                .query(
                    src,
                    redis::cmd("CLUSTER")
                        .arg("GETKEYSINSLOT")
                        .arg(slot)
                        .arg(batch),
                )
                .unwrap();
            if keys.is_empty() {
                break;
            }
            let mut m = redis::cmd("MIGRATE");
            m.arg("127.0.0.1").arg(dst).arg("").arg(0).arg(5000);
            m.arg("REPLACE").arg("KEYS").arg(&keys);
            let r: Option<String> = self.query(src, &m);
            assert!(r.is_some(), "MIGRATE failed");
            moved += keys.len();
            std::thread::sleep(pause);
        }
        // Target first, then source, then everyone (as redis-cli does).
        setslot(dst, "NODE", &to_id);
        setslot(src, "NODE", &to_id);
        for (i, n) in self.nodes.iter().enumerate() {
            if i != from && i != to {
                setslot(n.port, "NODE", &to_id);
            }
        }
        moved
    }
}

// ---- sentinel ---------------------------------------------------------------------

/// The name the Sentinels monitor.
pub const MASTER_NAME: &str = "pcmaster";

/// A primary, `replicas` replicas and three Sentinels (quorum 2).
pub struct Sentinels {
    /// Data nodes; `data[0]` starts as the primary.
    pub data: Vec<Node>,
    pub sentinels: Vec<Node>,
    pub tls: Option<Tls>,
    dir: tempfile::TempDir,
}

impl Sentinels {
    /// Returns once every Sentinel knows the replicas and the other two Sentinels,
    /// and every replica is in sync.
    pub fn start(replicas: usize, tls: bool) -> Sentinels {
        let dir = tempfile::tempdir().unwrap();
        let tls = tls.then(Tls::new);
        let primary = Node::start(&Role::Server, tls.as_ref(), |_| Vec::new());
        let pport = primary.port;
        let mut data = vec![primary];
        for _ in 0..replicas {
            data.push(Node::start(&Role::Server, tls.as_ref(), |_| {
                vec![("replicaof".to_owned(), format!("127.0.0.1 {pport}"))]
            }));
        }
        let dd = dir.path().display().to_string();
        let sentinels: Vec<Node> = (0..3)
            .map(|_| {
                Node::start(&Role::Sentinel(dir.path()), tls.as_ref(), |_| {
                    [
                        ("dir", dd.clone()),
                        (
                            "sentinel monitor",
                            format!("{MASTER_NAME} 127.0.0.1 {pport} 2"),
                        ),
                        (
                            "sentinel down-after-milliseconds",
                            format!("{MASTER_NAME} 1000"),
                        ),
                        ("sentinel failover-timeout", format!("{MASTER_NAME} 5000")),
                        ("sentinel parallel-syncs", format!("{MASTER_NAME} 1")),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect()
                })
            })
            .collect();
        let s = Sentinels {
            data,
            sentinels,
            tls,
            dir,
        };
        for n in &s.data[1..] {
            s.wait_synced(n.port);
        }
        for sn in &s.sentinels {
            wait_until(UP_WITHIN, "sentinels did not find each other", || {
                s.master_info(sn.port).is_some_and(|m| {
                    m.get("num-slaves").map(String::as_str) == Some(&replicas.to_string())
                        && m.get("num-other-sentinels").map(String::as_str) == Some("2")
                })
            });
        }
        s
    }

    fn master_info(&self, sentinel: u16) -> Option<std::collections::HashMap<String, String>> {
        query(
            sentinel,
            self.tls.as_ref(),
            redis::cmd("SENTINEL").arg("MASTER").arg(MASTER_NAME),
        )
    }

    /// Waits until replica `port` has a live link to its primary.
    pub fn wait_synced(&self, port: u16) {
        wait_until(UP_WITHIN, "replica never in sync", || {
            query::<String>(
                port,
                self.tls.as_ref(),
                redis::cmd("INFO").arg("replication"),
            )
            .is_some_and(|i| i.contains("master_link_status:up"))
        });
    }

    /// `redis[s]+sentinel://s1,s2,s3/NAME`.
    pub fn url(&self) -> String {
        multi_url(
            self.tls.is_some(),
            "sentinel",
            &self.sentinels,
            &format!("/{MASTER_NAME}"),
        )
    }

    /// The primary's port as the first Sentinel that answers names it.
    pub fn primary_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let (_, port): (String, String) = query(
                s.port,
                self.tls.as_ref(),
                redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(MASTER_NAME),
            )?;
            port.parse().ok()
        })
    }

    /// The data node on `port`.
    pub fn node(&mut self, port: u16) -> &mut Node {
        self.data.iter_mut().find(|n| n.port == port).unwrap()
    }

    /// The data nodes other than `port`.
    pub fn others(&self, port: u16) -> impl Iterator<Item = &Node> {
        self.data.iter().filter(move |n| n.port != port)
    }

    /// Cuts the replicas of primary `port` off the replication stream: each is
    /// paused (SIGSTOP), then the primary drops their links, so no write made from
    /// now on reaches them (what the socket buffers held before the cut still does).
    /// Undone by [`Node::resume`] of each (they resync from whichever primary).
    pub fn cut_replicas(&self, port: u16) {
        for n in self.others(port) {
            n.pause();
        }
        let killed: Option<i64> = query(
            port,
            self.tls.as_ref(),
            redis::cmd("CLIENT").arg("KILL").arg("TYPE").arg("replica"),
        );
        assert_eq!(
            killed,
            Some(i64::try_from(self.data.len() - 1).unwrap()),
            "replica links not cut"
        );
    }

    /// Waits (up to `within`) until every Sentinel names a primary other than `old`
    /// that answers `ROLE` as primary; its port.
    pub fn wait_new_primary(&self, old: u16, within: Duration) -> u16 {
        let mut found = 0;
        wait_until(within, "no failover", || {
            let named: Vec<Option<u16>> = self
                .sentinels
                .iter()
                .map(|s| {
                    let (_, p): (String, String) = query(
                        s.port,
                        self.tls.as_ref(),
                        redis::cmd("SENTINEL")
                            .arg("get-master-addr-by-name")
                            .arg(MASTER_NAME),
                    )?;
                    p.parse().ok()
                })
                .collect();
            let Some(Some(p)) = named.first().copied() else {
                return false;
            };
            let all = named.iter().all(|n| *n == Some(p));
            let role: Option<Vec<redis::Value>> = query(p, self.tls.as_ref(), &redis::cmd("ROLE"));
            let primary = role.is_some_and(|r| {
                r.first()
                    .and_then(|v| redis::from_redis_value::<String>(v.clone()).ok())
                    .as_deref()
                    == Some("master")
            });
            found = p;
            p != old && all && primary
        });
        found
    }
}
