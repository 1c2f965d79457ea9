//! The status page's token endpoint section: where it answers, who signs, and what
//! it did since the process started (requests per built-in endpoint, logins by
//! result, lockouts), from the same totals as `/metrics`.

use super::esc;
use crate::app::Runtime;
use crate::issuer::{Builtin, DISCOVERY_PATH, JWKS_PATH, REVOKE_PATH};
use crate::metrics::{login_totals, route_totals, Login};
use std::fmt::Write;

/// The section, when the config has a `[token_endpoint]`.
pub(super) fn section(h: &mut String, rt: &Runtime) {
    let Some(ep) = rt.endpoint.as_ref() else {
        return;
    };
    let d = crate::config::values::format_duration;
    let signing = ep.issuer.signing.as_ref().map_or("-".to_string(), |s| {
        format!(
            "{:?}, {}",
            s.alg,
            s.kid
                .as_deref()
                .map_or("no kid".to_string(), |k| format!("kid {k}"))
        )
    });
    let logins = login_totals();
    let count = |which: Login| logins.iter().find(|(l, _)| *l == which).map_or(0, |x| x.1);
    let _ = write!(
        h,
        "<section id=\"token-endpoint\"><h2>Token endpoint</h2><dl>\
         <dt>issuer</dt><dd>{} (<code>{}</code>)</dd><dt>signing</dt><dd class=\"signing\">{}</dd>\
         <dt>users</dt><dd>{}</dd><dt>lifetimes</dt><dd>access {}, refresh {}</dd>\
         <dt>logins ok</dt><dd class=\"num\" id=\"logins-ok\">{}</dd>\
         <dt>lockouts</dt><dd class=\"num\" id=\"lockouts\">{}</dd></dl>",
        esc(&ep.issuer.name),
        esc(&ep.issuer.iss),
        esc(&signing),
        ep.users.len(),
        d(ep.access_ttl),
        d(ep.refresh_ttl),
        count(Login::Ok),
        count(Login::RateLimited),
    );
    h.push_str(
        "<table id=\"builtins\"><thead><tr><th>endpoint</th><th>path</th><th>requests</th>\
         </tr></thead><tbody>",
    );
    let mut builtins = vec![
        (Builtin::Token, ep.path.as_str()),
        (Builtin::Revoke, REVOKE_PATH),
    ];
    if ep.jwks.is_some() {
        builtins.push((Builtin::Jwks, JWKS_PATH));
        builtins.push((Builtin::Discovery, DISCOVERY_PATH));
    }
    for (b, path) in builtins {
        let _ = write!(
            h,
            "<tr data-route=\"{0}\"><td>{0}</td><td><code>{1}</code></td>\
             <td class=\"num requests\">{2}</td></tr>",
            b.name(),
            esc(path),
            route_totals(b.name()).requests(),
        );
    }
    h.push_str(
        "</tbody></table><table id=\"logins\"><thead><tr><th>login result</th><th>count</th>\
         </tr></thead><tbody>",
    );
    for (l, n) in logins {
        let _ = write!(
            h,
            "<tr data-result=\"{0}\"><td>{0}</td><td class=\"num\">{n}</td></tr>",
            l.label()
        );
    }
    h.push_str(
        "</tbody></table><p class=\"note\">lockouts: logins refused with 429 while the \
         username or the client address is over its failed-login limit; \
         <code>portcullis_logins_total{result}</code> in /metrics</p></section>",
    );
}
