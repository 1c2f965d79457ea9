//! `[state]` -> [`State`]: the backend (`memory`, or `redis` with a URL checked
//! here: one server, Redis Cluster or Sentinel, [`crate::state::topology`]), the key
//! prefix, fail-open, the trust roots of a `rediss` URL (read here), the replicas
//! that acknowledge durable writes and the memory backend's cap.

use super::Cx;
use crate::config::file::RawState;
use crate::config::values::EnvStr;
use crate::config::State;
use crate::defaults;
use crate::secret::Secret;
use toml::Spanned;

impl RawState {
    pub(super) fn compile(self, cx: &mut Cx<'_>) -> State {
        let s = self;
        let backend = s
            .backend
            .as_ref()
            .map_or(defaults::STATE_BACKEND, |b| &**b.get_ref());
        let redis_url = match backend {
            "memory" => None,
            "redis" => match &s.url {
                Some(u) => {
                    if let Err(e) = crate::state::redis::check_url(u.get_ref()) {
                        cx.rep.at(u.span(), format!("invalid [state] url: {e}"));
                    }
                    Some(Secret::new(u.get_ref().expose().0.clone()))
                }
                None => {
                    if let Some(b) = &s.backend {
                        cx.rep.at(b.span(), "`backend = \"redis\"` needs `url`");
                    }
                    None
                }
            },
            other => {
                if let Some(b) = &s.backend {
                    cx.rep.at(
                        b.span(),
                        format!("unknown state backend `{other}` (memory or redis)"),
                    );
                }
                None
            }
        };
        let ca =
            s.ca.as_ref()
                .and_then(|c| state_ca(cx, c, redis_url.as_deref()));
        let replicas_ack = replicas_ack(cx, s.replicas_ack.as_ref(), backend);
        let max_entries = max_entries(cx, s.max_entries.as_ref());
        State {
            redis_url,
            ca,
            max_entries,
            replicas_ack,
            key_prefix: s
                .key_prefix
                .map_or_else(|| defaults::KEY_PREFIX.to_owned(), |p| p.0),
            fail_open: s.fail_open.unwrap_or(defaults::FAIL_OPEN),
        }
    }
}

/// `[state] replicas_ack`: at most [`defaults::MAX_REPLICAS_ACK`], Redis only.
fn replicas_ack(cx: &mut Cx<'_>, n: Option<&Spanned<i64>>, backend: &str) -> u32 {
    let Some(n) = n else {
        return defaults::REPLICAS_ACK;
    };
    let max = defaults::MAX_REPLICAS_ACK;
    match u32::try_from(*n.get_ref()) {
        Ok(v) if v <= max => {
            if backend != "redis" {
                cx.rep
                    .at(n.span(), "`replicas_ack` needs `backend = \"redis\"`");
            }
            v
        }
        _ => {
            cx.rep.at(
                n.span(),
                format!("`replicas_ack` must be between 0 and {max}"),
            );
            defaults::REPLICAS_ACK
        }
    }
}

/// `[state] max_entries`.
fn max_entries(cx: &mut Cx<'_>, n: Option<&Spanned<i64>>) -> crate::state::MaxEntries {
    use crate::state::{MaxEntries, MIN_MAX_ENTRIES};
    let Some(n) = n else {
        return MaxEntries::default();
    };
    match usize::try_from(*n.get_ref()) {
        Ok(v) if v >= MIN_MAX_ENTRIES => MaxEntries(v),
        _ => {
            cx.rep.at(
                n.span(),
                format!("`max_entries` must be at least {MIN_MAX_ENTRIES}"),
            );
            MaxEntries::default()
        }
    }
}

/// Reads `[state] ca`: PEM certificates, only with a `rediss` url.
fn state_ca(cx: &mut Cx<'_>, c: &Spanned<EnvStr>, url: Option<&str>) -> Option<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    if !url.is_some_and(crate::state::topology::is_tls) {
        cx.rep.at(
            c.span(),
            "`ca` needs a rediss:// (or rediss+cluster://, rediss+sentinel://) `url` (TLS to Redis)",
        );
        return None;
    }
    let path = cx.resolve(&c.get_ref().0);
    let pem = match std::fs::read(&path) {
        Ok(p) => p,
        Err(e) => {
            cx.rep
                .at(c.span(), format!("cannot read {}: {e}", path.display()));
            return None;
        }
    };
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_default();
    if certs.is_empty() {
        cx.rep.at(
            c.span(),
            format!("{}: no PEM certificate found", path.display()),
        );
        return None;
    }
    Some(pem)
}
