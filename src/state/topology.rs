//! `[state] url` → which Redis topology the state lives on (SPEC §6, §11).
//!
//! - `redis://` / `rediss://`: one server (standalone, or one address that follows
//!   failover itself).
//! - `redis+cluster://[user:password@]h1:6379,h2:6379[/]`: seed nodes of a Redis
//!   Cluster; the rest of the cluster is discovered from them.
//! - `redis+sentinel://[user:password@]s1:26379,s2:26379/NAME[/db]`: Sentinels, and
//!   the name of the primary they monitor. The credentials and `db` are the primary's
//!   (the Sentinels are asked without credentials).
//!
//! A `rediss` scheme (`rediss+cluster://`, `rediss+sentinel://`) speaks TLS to every
//! node, Sentinels included. Parsing never echoes the URL (it may hold a password).

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server: the URL as given (`redis://` or `rediss://`).
    Standalone(String),
    /// Redis Cluster: one `redis[s]://[userinfo@]host:port` URL per seed node.
    Cluster(Vec<String>),
    /// Sentinel discovery of a primary.
    Sentinel(Sentinel),
}

/// A `redis[s]+sentinel://` URL, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentinel {
    /// Each Sentinel as a `redis[s]://host:port` URL (no credentials).
    pub sentinels: Vec<String>,
    /// The monitored primary's name (`sentinel monitor NAME ...`).
    pub master: String,
    /// `redis[s]://[userinfo@]localhost/db`: the primary's credentials and database,
    /// still percent-encoded (the host is a placeholder).
    pub node: String,
    /// TLS to the Sentinels and to the primary.
    pub tls: bool,
}

/// What a malformed URL should look like, in words that never quote it.
const SHAPES: &str = "redis[s]://[user:password@]host[:port][/db], \
     redis[s]+cluster://[user:password@]host:port,host:port, or \
     redis[s]+sentinel://[user:password@]host:port,host:port/MASTER_NAME[/db]";

/// Parses a `[state] url`.
pub fn parse(url: &str) -> Result<Topology, String> {
    let bad = || format!("not a valid Redis URL ({SHAPES})");
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let (tls, kind) = match scheme {
        "redis" | "rediss" => {
            // The parser's message may quote the URL, password included.
            redis::Client::open(url).map_err(|_| bad())?;
            return Ok(Topology::Standalone(url.to_owned()));
        }
        "redis+cluster" => (false, "cluster"),
        "rediss+cluster" => (true, "cluster"),
        "redis+sentinel" => (false, "sentinel"),
        "rediss+sentinel" => (true, "sentinel"),
        _ => {
            return Err(format!(
                "must start with redis://, rediss:// (TLS), redis[s]+cluster:// or redis[s]+sentinel:// ({SHAPES})"
            ))
        }
    };
    if rest.contains(['?', '#']) {
        return Err(format!("no query or fragment allowed here ({SHAPES})"));
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let node_scheme = if tls { "rediss" } else { "redis" };
    let default_port = if kind == "cluster" { 6379 } else { 26379 };
    let mut nodes = Vec::new();
    for h in hosts.split(',') {
        let hp = host_port(h, default_port).ok_or_else(bad)?;
        nodes.push(hp);
    }
    let with_user = |hp: &str| match userinfo {
        Some(u) => format!("{node_scheme}://{u}@{hp}"),
        None => format!("{node_scheme}://{hp}"),
    };
    if kind == "cluster" {
        if !matches!(path, "" | "0") {
            return Err("Redis Cluster has only database 0: no path after the hosts".into());
        }
        let urls: Vec<String> = nodes.iter().map(|hp| with_user(hp)).collect();
        for u in &urls {
            redis::Client::open(u.as_str()).map_err(|_| bad())?;
        }
        return Ok(Topology::Cluster(urls));
    }
    let (master, db) = path.split_once('/').unwrap_or((path, ""));
    if master.is_empty() {
        return Err(format!(
            "a Sentinel URL names the monitored primary after the hosts ({SHAPES})"
        ));
    }
    if !db.is_empty() && db.parse::<u16>().is_err() {
        return Err("the database after the primary's name must be a number".into());
    }
    let node = format!("{}/{}", with_user("localhost"), db);
    redis::Client::open(node.as_str()).map_err(|_| bad())?;
    let sentinels: Vec<String> = nodes
        .iter()
        .map(|hp| format!("{node_scheme}://{hp}"))
        .collect();
    for u in &sentinels {
        redis::Client::open(u.as_str()).map_err(|_| bad())?;
    }
    Ok(Topology::Sentinel(Sentinel {
        sentinels,
        master: master.to_owned(),
        node,
        tls,
    }))
}

/// `host[:port]` or `[v6][:port]`, checked, with the port made explicit.
fn host_port(s: &str, default_port: u16) -> Option<String> {
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let v6_ok = |b: u8| b.is_ascii_hexdigit() || b == b':' || b == b'.';
        if h.is_empty() || !h.bytes().all(v6_ok) {
            return None;
        }
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (format!("[{h}]"), port)
    } else {
        let (h, p) = match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        };
        let name_ok = |b: u8| b.is_ascii_alphanumeric() || b"-._".contains(&b);
        if h.is_empty() || !h.bytes().all(name_ok) {
            return None;
        }
        (h.to_owned(), p)
    };
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0)?,
        None => default_port,
    };
    Some(format!("{host}:{port}"))
}

/// Whether `url` speaks TLS (`rediss`, `rediss+cluster`, `rediss+sentinel`).
pub fn is_tls(url: &str) -> bool {
    url.starts_with("rediss://") || url.starts_with("rediss+")
}

/// The topology's name for logs and `/config`.
pub fn name(url: &str) -> &'static str {
    match parse(url) {
        Ok(Topology::Cluster(_)) => "cluster",
        Ok(Topology::Sentinel(_)) => "sentinel",
        _ => "standalone",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standalone() {
        assert_eq!(
            parse("redis://127.0.0.1:6379/0"),
            Ok(Topology::Standalone("redis://127.0.0.1:6379/0".into()))
        );
        assert!(parse("rediss://redis.example.com:6380/1").is_ok());
        assert!(parse("http://x").is_err());
        assert!(parse("redis+cluster").is_err());
    }

    #[test]
    fn cluster() {
        assert_eq!(
            parse("redis+cluster://h1:7000,h2,[::1]:7002"),
            Ok(Topology::Cluster(vec![
                "redis://h1:7000".into(),
                "redis://h2:6379".into(),
                "redis://[::1]:7002".into()
            ]))
        );
        assert_eq!(
            parse("rediss+cluster://u:p%40ss@h1:7000/"),
            Ok(Topology::Cluster(vec!["rediss://u:p%40ss@h1:7000".into()]))
        );
        for bad in [
            "redis+cluster://",
            "redis+cluster://h1:7000,",
            "redis+cluster://h1:7000/3",
            "redis+cluster://h1:0",
            "redis+cluster://h1:99999",
            "redis+cluster://h1:7000?x=1",
            "redis+cluster://h 1:7000",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sentinel() {
        let Ok(Topology::Sentinel(s)) = parse("redis+sentinel://:pw@s1:26379,s2/mymaster/2") else {
            panic!("not parsed");
        };
        assert_eq!(s.sentinels, ["redis://s1:26379", "redis://s2:26379"]);
        assert_eq!(s.master, "mymaster");
        assert_eq!(s.node, "redis://:pw@localhost/2");
        assert!(!s.tls);
        let Ok(Topology::Sentinel(s)) = parse("rediss+sentinel://s1:26380/m") else {
            panic!("not parsed");
        };
        assert_eq!(s.sentinels, ["rediss://s1:26380"]);
        assert!(s.tls);
        for bad in [
            "redis+sentinel://s1:26379",
            "redis+sentinel://s1:26379/",
            "redis+sentinel://s1:26379/m/x",
            "redis+sentinel:///m",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_never_quote_the_url() {
        for u in [
            "redis+cluster://user:hunter2@h1:bad",
            "redis+sentinel://user:hunter2@s1/",
            "redis://user:hunter2@[bad",
        ] {
            let e = parse(u).unwrap_err();
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn tls_schemes() {
        assert!(is_tls("rediss://h"));
        assert!(is_tls("rediss+cluster://h:1"));
        assert!(is_tls("rediss+sentinel://h:1/m"));
        assert!(!is_tls("redis+cluster://h:1"));
    }
}
