//! What the admin listener shows an operator: the read-only status page (`GET /`,
//! plain HTML + CSS, no script, no external asset) and the running config as JSON
//! (`GET /config`, [`config_json`]) with every secret redacted. Neither ever contains
//! a secret: the page is built from names, paths, counters, key ids and algorithms.
//!
//! The page's counters are the process's totals, the same as `/metrics` (kept per
//! route name across reloads, see [`crate::metrics::RouteTotals`]). Its sections:
//! process, routes ([`tables::routes`]), token endpoint ([`token::section`]),
//! issuers ([`tables::issuers`]), verified-token cache.

mod config;
mod tables;
mod token;

pub(crate) use config::config_json;

use crate::app::App;
use crate::auth::issuer::KeySource;
use crate::routes::{HostMatch, TokenSource};
use std::fmt::Write;

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

/// A `token_from` entry in the config's spelling.
fn token_source(t: &TokenSource) -> String {
    match t {
        TokenSource::Header => "header".into(),
        TokenSource::Query(n) => format!("query:{n}"),
        TokenSource::Cookie(n) => format!("cookie:{n}"),
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

/// The status page.
pub(crate) fn page(app: &App) -> String {
    let rt = app.runtime.load();
    let mut h = String::with_capacity(8192);
    let ready = app.ready();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>portcullis status</title><style>{CSS}</style></head><body>\
         <header><h1>portcullis</h1><span class=\"badge {}\">{}</span></header>",
        if ready { "ok" } else { "bad" },
        if app.is_draining() {
            "draining"
        } else if ready {
            "ready"
        } else {
            "not ready"
        },
    );
    process(&mut h, app, &rt.config);
    tables::routes(&mut h, &rt);
    token::section(&mut h, &rt);
    tables::issuers(&mut h, &rt);
    let cache = &rt.verifier.cache;
    let _ = write!(
        h,
        "<section id=\"cache\"><h2>Verified-token cache</h2><dl><dt>capacity</dt><dd>{}</dd>\
         <dt>entries</dt><dd>{}</dd><dt>hit ratio</dt><dd>{}</dd></dl></section>\
         <footer>read-only; metrics at <a href=\"/metrics\">/metrics</a>, running config at \
         <a href=\"/config\">/config</a></footer></body></html>",
        if cache.enabled() {
            rt.config.cache_tokens.to_string()
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

/// Version, uptime, listeners, config file, last reload.
fn process(h: &mut String, app: &App, cfg: &crate::config::Config) {
    let up = app.started.elapsed().as_secs();
    let _ = write!(
        h,
        "<section id=\"process\"><h2>Process</h2><dl>\
         <dt>version</dt><dd>{}</dd><dt>uptime</dt><dd>{}h {}m {}s</dd>\
         <dt>listener</dt><dd>{}{}</dd><dt>admin</dt><dd>{}</dd><dt>config</dt><dd>{}</dd>\
         <dt>last reload</dt><dd id=\"last-reload\">{}</dd></dl></section>",
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
}
