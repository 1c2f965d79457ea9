//! What the admin listener shows an operator: the read-only status page (`GET /`,
//! plain HTML + CSS, no script, no external asset) and the running config as JSON
//! (`GET /config`) with every secret redacted. Neither ever contains a secret: the
//! page is built from names, paths, counters and key ids only.

use crate::app::App;
use crate::auth::issuer::KeySource;
use crate::config::{Config, UpstreamKind};
use crate::routes::HostMatch;
use serde_json::{json, Value};
use std::fmt::Write;
use std::sync::atomic::Ordering;

const REDACTED: &str = "[redacted]";

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

fn host_text(h: Option<&HostMatch>) -> String {
    match h {
        None => "*".into(),
        Some(HostMatch::Exact(e)) => e.clone(),
        Some(HostMatch::Suffix(s)) => format!("*{s}"),
    }
}

fn upstream_url(k: &UpstreamKind) -> String {
    match k {
        UpstreamKind::Echo => "echo:".into(),
        UpstreamKind::Http {
            scheme,
            authority,
            prefix,
        } => format!("{scheme}://{authority}{prefix}"),
    }
}

/// Removes a password from `redis://user:pass@host` style URLs.
fn redact_url(u: &str) -> String {
    match (u.find("://"), u.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}{REDACTED}@{}", &u[..s + 3], &u[at + 1..]),
        _ => u.to_owned(),
    }
}

fn source_text(s: &KeySource) -> String {
    match s {
        KeySource::Static => "static".into(),
        KeySource::Jwks(u) => format!("jwks {}", redact_url(u)),
        KeySource::Discovery => "oidc discovery".into(),
    }
}

/// The running config as JSON, secrets redacted (HMAC secrets, Redis passwords).
pub fn config_json(cfg: &Config) -> Value {
    let d = crate::config::values::format_duration;
    json!({
        "path": cfg.path.display().to_string(),
        "server": {
            "listen": cfg.server.listen.to_string(),
            "header_timeout": d(cfg.server.header_timeout),
            "idle_timeout": d(cfg.server.idle_timeout),
            "max_header_bytes": cfg.server.max_header_bytes,
            "shutdown_grace": d(cfg.server.shutdown_grace),
            "watch": cfg.server.watch,
            "max_connections": cfg.server.max_connections,
            "h2_max_concurrent_streams": cfg.server.h2_max_concurrent_streams,
            "worker_threads": cfg.server.worker_threads,
            "tls": cfg.server.tls.as_ref().map(|t| json!({
                "cert": t.cert.display().to_string(),
                "key": t.key.display().to_string(),
                "sni": t.sni.iter().map(|(h, c, k)| json!({
                    "hosts": h, "cert": c.display().to_string(), "key": k.display().to_string()
                })).collect::<Vec<_>>(),
            })),
        },
        "admin": cfg.admin.map(|a| json!({"listen": a.to_string()})),
        "upstreams": cfg.upstreams.iter().map(|u| json!({
            "name": u.name,
            "url": upstream_url(&u.kind),
            "connect_timeout": d(u.connect_timeout),
            "timeout": d(u.timeout),
            "ca": u.ca.as_ref().map(|c| c.display().to_string()),
        })).collect::<Vec<_>>(),
        "identity": {
            "header": cfg.identity.header.as_str(),
            "claim": cfg.identity.claim,
            "forward_authorization": cfg.identity.forward_authorization,
            "claims_to_headers": cfg.identity.claims_to_headers.iter()
                .map(|(h, c)| (h.as_str().to_owned(), Value::String(c.clone())))
                .collect::<serde_json::Map<_, _>>(),
        },
        "issuers": cfg.issuers.iter().map(|i| json!({
            "name": i.name,
            "issuer": i.iss,
            "audiences": i.audiences,
            "algorithms": i.algorithms.iter().map(|a| format!("{a:?}")).collect::<Vec<_>>(),
            "leeway": d(i.leeway),
            "keys": source_text(&i.source),
            "refresh_interval": d(i.refresh_interval),
            "signing": i.signing.as_ref().map(|s| json!({
                "alg": format!("{:?}", s.alg),
                "kid": s.kid,
                "key": REDACTED,
            })),
        })).collect::<Vec<_>>(),
        "token_endpoint": cfg.token_endpoint.as_ref().map(|t| json!({
            "path": t.path,
            "issuer": cfg.issuers.get(t.issuer).map(|i| i.name.clone()),
            "users": t.users.as_ref().map(|u| u.display().to_string()),
            "access_ttl": d(t.access_ttl),
            "refresh_ttl": d(t.refresh_ttl),
        })),
        "cache": {"tokens": cfg.cache_tokens},
        "state": {
            "backend": if cfg.state.redis_url.is_some() { "redis" } else { "memory" },
            "url": cfg.state.redis_url.as_deref().map(redact_url),
            "topology": cfg.state.redis_url.as_deref().map(crate::state::topology::name),
            "replicas_ack": cfg.state.replicas_ack,
            "key_prefix": cfg.state.key_prefix,
            "fail_open": cfg.state.fail_open,
        },
        "routes": cfg.routes.routes.iter().map(|r| json!({
            "name": r.name,
            "host": host_text(r.host.as_ref()),
            "path": r.path.source,
            "methods": r.methods.as_ref().map(|m| m.iter().map(|x| x.as_str().to_owned()).collect::<Vec<_>>()),
            "access": r.access.as_str(),
            "scopes": r.scopes,
            "upstream": r.upstream.and_then(|u| cfg.upstreams.get(u)).map(|u| u.name.clone()),
        })).collect::<Vec<_>>(),
    })
}

fn ago(unix: u64) -> String {
    if unix == 0 {
        return "never".into();
    }
    crate::telemetry::rfc3339(unix, 0)
}

/// The status page.
pub fn page(app: &App) -> String {
    let rt = app.runtime.load();
    let cfg = &rt.config;
    let mut h = String::with_capacity(8192);
    let up = app.started.elapsed().as_secs();
    let ready = app.ready();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>portcullis status</title><style>{CSS}</style></head><body>\
         <header><h1>portcullis</h1><span class=\"badge {}\">{}</span></header>\
         <section><h2>Process</h2><dl>\
         <dt>version</dt><dd>{}</dd><dt>uptime</dt><dd>{}h {}m {}s</dd>\
         <dt>listener</dt><dd>{}{}</dd><dt>admin</dt><dd>{}</dd><dt>config</dt><dd>{}</dd>\
         <dt>last reload</dt><dd>{}</dd></dl></section>",
        if ready { "ok" } else { "bad" },
        if app.is_draining() {
            "draining"
        } else if ready {
            "ready"
        } else {
            "not ready"
        },
        env!("CARGO_PKG_VERSION"),
        up / 3600,
        up % 3600 / 60,
        up % 60,
        esc(&cfg.server.listen.to_string()),
        if cfg.server.tls.is_some() {
            " (TLS, h2 + http/1.1)"
        } else {
            " (plain HTTP)"
        },
        cfg.admin.map_or("-".into(), |a| esc(&a.to_string())),
        esc(&cfg.path.display().to_string()),
        match app.last_reload.lock().ok().and_then(|l| l.clone()) {
            None => "none since start".to_string(),
            Some(r) => match r.result {
                Ok(()) => format!("{} ok", esc(&r.at)),
                Err(e) => format!(
                    "{} <span class=\"err\">failed: {}</span>",
                    esc(&r.at),
                    esc(&e)
                ),
            },
        },
    );
    h.push_str(
        "<section><h2>Routes <small>in match order</small></h2><table><thead><tr>\
         <th>#</th><th>name</th><th>host</th><th>path</th><th>methods</th><th>access</th>\
         <th>upstream</th><th>requests</th><th>denied</th></tr></thead><tbody>",
    );
    for (i, r) in cfg.routes.routes.iter().enumerate() {
        let reqs = rt
            .counters
            .requests
            .get(i)
            .map_or(0, |c| c.load(Ordering::Relaxed));
        let denied = rt
            .counters
            .denied
            .get(i)
            .map_or(0, |c| c.load(Ordering::Relaxed));
        let mut access = r.access.as_str().to_string();
        if !r.scopes.is_empty() {
            let _ = write!(access, " [{}]", r.scopes.join(" "));
        }
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td>\
             <td class=\"{}\">{}</td><td>{}</td><td class=\"num\">{reqs}</td><td class=\"num\">{denied}</td></tr>",
            i + 1,
            esc(&r.name),
            esc(&host_text(r.host.as_ref())),
            esc(&r.path.source),
            r.methods.as_ref().map_or("all".into(), |m| {
                esc(&m.iter().map(http::Method::as_str).collect::<Vec<_>>().join(" "))
            }),
            r.access.as_str(),
            esc(&access),
            r.upstream
                .and_then(|u| cfg.upstreams.get(u))
                .map_or("-".into(), |u| esc(&u.name)),
        );
    }
    let unmatched = rt
        .counters
        .requests
        .get(cfg.routes.routes.len())
        .map_or(0, |c| c.load(Ordering::Relaxed));
    let _ = write!(
        h,
        "</tbody></table><p class=\"note\">requests matching no route: {unmatched}</p></section>"
    );
    h.push_str(
        "<section><h2>Issuers</h2><table><thead><tr><th>name</th><th>iss</th><th>key source</th>\
         <th>key ids</th><th>algorithms</th><th>last fetch</th><th>fetches ok / failed</th></tr></thead><tbody>",
    );
    for trusted in &rt.verifier.issuers {
        let iss = &trusted.config;
        let keys = trusted.keys();
        let kids: Vec<String> = keys
            .keys
            .iter()
            .map(|k| {
                format!(
                    "{} ({})",
                    k.kid.as_deref().unwrap_or("no kid"),
                    k.family.as_str()
                )
            })
            .collect();
        let algs = if iss.algorithms.is_empty() {
            "what the keys allow".to_string()
        } else {
            iss.algorithms
                .iter()
                .map(|a| format!("{a:?}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (fetch, counts) = match rt.verifier.jwks.source_for(trusted) {
            None => ("-".to_string(), "-".to_string()),
            Some(src) => {
                let st = src.stats();
                let last = ago(st.last_fetch_unix.load(Ordering::Relaxed));
                let result = if st.last_fetch_unix.load(Ordering::Relaxed) == 0 {
                    String::new()
                } else if st.last_ok.load(Ordering::Relaxed) {
                    " <span class=\"okt\">ok</span>".into()
                } else {
                    let e = st
                        .last_error
                        .lock()
                        .ok()
                        .and_then(|e| e.clone())
                        .unwrap_or_default();
                    format!(" <span class=\"err\">error: {}</span>", esc(&e))
                };
                (
                    format!("{}{result}", esc(&last)),
                    format!(
                        "{} / {}",
                        st.ok.load(Ordering::Relaxed),
                        st.error.load(Ordering::Relaxed)
                    ),
                )
            }
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{fetch}</td><td>{counts}</td></tr>",
            esc(&iss.name),
            esc(&iss.iss),
            esc(&source_text(&iss.source)),
            if kids.is_empty() { "<span class=\"err\">none yet</span>".into() } else { esc(&kids.join(", ")) },
            esc(&algs),
        );
    }
    h.push_str("</tbody></table></section>");
    let cache = &rt.verifier.cache;
    let _ = write!(
        h,
        "<section><h2>Verified-token cache</h2><dl><dt>capacity</dt><dd>{}</dd>\
         <dt>entries</dt><dd>{}</dd><dt>hit ratio</dt><dd>{}</dd></dl></section>\
         <footer>read-only; metrics at <a href=\"/metrics\">/metrics</a>, running config at \
         <a href=\"/config\">/config</a></footer></body></html>",
        if cache.enabled() {
            cfg.cache_tokens.to_string()
        } else {
            "off".into()
        },
        cache.len(),
        cache
            .hit_ratio()
            .map_or("-".into(), |r| format!("{:.1}%", r * 100.0)),
    );
    h
}

const CSS: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1rem 1.5rem;color:#1d232a;background:#f7f8fa}\
header{display:flex;align-items:center;gap:1rem}h1{margin:.2rem 0}h2{font-size:1.05rem;margin:1.4rem 0 .5rem}\
h2 small{font-weight:normal;color:#5b6670}section{background:#fff;border:1px solid #dde2e7;border-radius:8px;padding:.4rem 1rem .8rem;margin-bottom:1rem}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.3rem .5rem;border-bottom:1px solid #eef1f4;vertical-align:top}\
th{font-weight:600;color:#5b6670}td.num{text-align:right;font-variant-numeric:tabular-nums}\
dl{display:grid;grid-template-columns:10rem 1fr;gap:.2rem .8rem;margin:.4rem 0}dt{color:#5b6670}dd{margin:0}\
code{font:13px ui-monospace,monospace}.badge{padding:.15rem .6rem;border-radius:99px;font-weight:600}\
.badge.ok{background:#d7f5df;color:#11632c}.badge.bad{background:#fde2e1;color:#8c1d18}\
.err{color:#8c1d18}.okt{color:#11632c}td.deny{color:#8c1d18}td.public{color:#5b6670}.note{color:#5b6670;margin:.4rem 0 0}\
footer{color:#5b6670;font-size:12px}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_redaction() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(
            redact_url("redis://u:pw@h:6379/0"),
            "redis://[redacted]@h:6379/0"
        );
        assert_eq!(redact_url("redis://h:6379/0"), "redis://h:6379/0");
    }

    #[test]
    fn config_json_has_no_secret() {
        let secret = "s3cret-s3cret-s3cret-s3cret-s3cret-42";
        let toml = format!(
            "[upstreams.e]\nurl = \"echo:\"\n[[issuers]]\nname = \"l\"\nissuer = \"x\"\nsecret = \"{secret}\"\n\
             [state]\nbackend = \"redis\"\nurl = \"redis://user:hunter2@redis:6379/0\"\n\
             [[routes]]\npath = \"/**\"\nupstream = \"e\"\n"
        );
        let cfg = crate::config::load_str(std::path::Path::new("t.toml"), &toml).expect("config");
        let text = config_json(&cfg).to_string();
        assert!(!text.contains(secret), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains(REDACTED));
    }

    #[test]
    fn config_json_in_config_notation() {
        let toml = "[upstreams.e]\nurl = \"echo:\"\n[[issuers]]\nname = \"l\"\nissuer = \"x\"\n\
                    secret = \"0123456789abcdef0123456789abcdef\"\n[token_endpoint]\nissuer = \"l\"\n\
                    refresh_ttl = \"36h\"\n[[routes]]\npath = \"/**\"\nupstream = \"e\"\n";
        let cfg = crate::config::load_str(std::path::Path::new("t.toml"), toml).expect("config");
        let v = config_json(&cfg);
        assert_eq!(v["server"]["header_timeout"], "10s");
        assert_eq!(v["issuers"][0]["leeway"], "30s");
        assert_eq!(v["token_endpoint"]["access_ttl"], "30m");
        assert_eq!(v["token_endpoint"]["refresh_ttl"], "36h");
        assert_eq!(v["upstreams"][0]["connect_timeout"], "2s");
        assert_eq!(v["state"]["key_prefix"], "portcullis:");
    }
}
