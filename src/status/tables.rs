//! The status page's route and issuer tables.

use super::{esc, host_text, source_text, token_source};
use crate::app::Runtime;
use crate::auth::issuer::{Issuer, TrustedIssuer};
use crate::auth::keys::{KeyFamily, KeySet, VerifyKey};
use crate::routes::Access;
use jsonwebtoken::Algorithm;
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The routes in match order, with their token sources and request counts.
pub(super) fn routes(h: &mut String, rt: &Runtime) {
    let cfg = &rt.config;
    h.push_str(
        "<section id=\"routes\"><h2>Routes <small>in match order; counts since the process \
         started, per route name (as in /metrics)</small></h2><table><thead><tr>\
         <th>#</th><th>name</th><th>host</th><th>path</th><th>methods</th><th>access</th>\
         <th>token from</th><th>upstream</th><th>requests</th><th>denied</th></tr></thead><tbody>",
    );
    for (i, r) in cfg.routes.routes.iter().enumerate() {
        let (reqs, denied) = rt
            .counters
            .route(i)
            .map_or((0, 0), |t| (t.requests(), t.denied()));
        let mut access = r.access.as_str().to_string();
        if !r.scopes.is_empty() {
            let _ = write!(access, " [{}]", r.scopes.join(" "));
        }
        // Public and deny routes look at no token.
        let token_from = match r.access {
            Access::Public | Access::Deny => "-".to_string(),
            Access::Protected | Access::Optional => r
                .token_from
                .iter()
                .map(token_source)
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = write!(
            h,
            "<tr data-route=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td><code>{}</code></td><td>{}</td>\
             <td class=\"access {}\">{}</td><td class=\"token-from\">{}</td><td>{}</td>\
             <td class=\"num requests\">{reqs}</td><td class=\"num denied\">{denied}</td></tr>",
            esc(&r.name),
            i + 1,
            esc(&r.name),
            esc(&host_text(r.host.as_ref())),
            esc(&r.path.source),
            r.methods.as_ref().map_or("all".into(), |m| {
                esc(&m.iter().map(http::Method::as_str).collect::<Vec<_>>().join(" "))
            }),
            r.access.as_str(),
            esc(&access),
            esc(&token_from),
            r.upstream
                .and_then(|u| cfg.upstreams.get(u))
                .map_or("-".into(), |u| esc(&u.name)),
        );
    }
    let _ = write!(
        h,
        "</tbody></table><p class=\"note\">requests matching no route (or refused before \
         routing): <span id=\"unmatched\">{}</span>; the token endpoint's are counted below</p>\
         </section>",
        rt.counters.unmatched().requests()
    );
}

/// The JWK-style family name, except that an HMAC secret is called one.
fn family_name(f: KeyFamily) -> &'static str {
    match f {
        KeyFamily::Hmac => "HMAC",
        other => other.as_str(),
    }
}

/// What `key` may verify for `iss`: its family's algorithms, narrowed by the key's
/// own `alg` and the issuer's `algorithms`.
fn key_algorithms(iss: &Issuer, key: &VerifyKey) -> Vec<Algorithm> {
    key.family
        .algorithms()
        .iter()
        .copied()
        .filter(|a| key.allows(*a) && (iss.algorithms.is_empty() || iss.algorithms.contains(a)))
        .collect()
}

fn alg_list(algs: &[Algorithm]) -> String {
    algs.iter()
        .map(|a| format!("{a:?}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The key ids with what each verifies, and the algorithms the issuer's tokens are
/// accepted with (the union over its keys).
fn keys_and_algorithms(iss: &Issuer, keys: &KeySet) -> (String, String) {
    if keys.keys.is_empty() {
        let algs = if iss.algorithms.is_empty() {
            "none yet (from the keys)".to_string()
        } else {
            esc(&alg_list(&iss.algorithms))
        };
        return ("<span class=\"err\">none yet</span>".into(), algs);
    }
    let mut all: Vec<Algorithm> = Vec::new();
    let kids: Vec<String> = keys
        .keys
        .iter()
        .map(|k| {
            let algs = key_algorithms(iss, k);
            for a in &algs {
                if !all.contains(a) {
                    all.push(*a);
                }
            }
            format!(
                "{} ({}: {})",
                k.kid.as_deref().unwrap_or("no kid"),
                family_name(k.family),
                if algs.is_empty() {
                    "none allowed".into()
                } else {
                    alg_list(&algs)
                }
            )
        })
        .collect();
    let algs = if all.is_empty() {
        "<span class=\"err\">none: no key fits `algorithms`</span>".to_string()
    } else {
        esc(&alg_list(&all))
    };
    (esc(&kids.join(", ")), algs)
}

fn ago(unix: u64) -> String {
    if unix == 0 {
        return "never".into();
    }
    crate::telemetry::rfc3339(unix, 0)
}

/// Last JWKS fetch (time and result) and fetch counts of `trusted`.
fn fetches(rt: &Runtime, trusted: &Arc<TrustedIssuer>) -> (String, String) {
    let Some(src) = rt.verifier.jwks.source_for(trusted) else {
        return ("-".to_string(), "-".to_string());
    };
    let st = src.stats();
    let at = st.last_fetch_unix.load(Ordering::Relaxed);
    let result = if at == 0 {
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
        format!("{}{result}", esc(&ago(at))),
        format!(
            "{} / {}",
            st.ok.load(Ordering::Relaxed),
            st.error.load(Ordering::Relaxed)
        ),
    )
}

/// Each issuer with its key source, keys, algorithms and fetches.
pub(super) fn issuers(h: &mut String, rt: &Runtime) {
    h.push_str(
        "<section id=\"issuers\"><h2>Issuers</h2><table><thead><tr><th>name</th><th>iss</th>\
         <th>key source</th><th>key ids</th><th>algorithms</th><th>last fetch</th>\
         <th>fetches ok / failed</th></tr></thead><tbody>",
    );
    for trusted in &rt.verifier.issuers {
        let iss = &trusted.config;
        let (kids, algs) = keys_and_algorithms(iss, &trusted.keys());
        let (fetch, counts) = fetches(rt, trusted);
        let _ = write!(
            h,
            "<tr data-issuer=\"{}\"><td>{}</td><td><code>{}</code></td><td>{}</td>\
             <td class=\"keys\">{kids}</td><td class=\"algorithms\">{algs}</td>\
             <td>{fetch}</td><td>{counts}</td></tr>",
            esc(&iss.name),
            esc(&iss.name),
            esc(&iss.iss),
            esc(&source_text(&iss.source)),
        );
    }
    h.push_str("</tbody></table></section>");
}
