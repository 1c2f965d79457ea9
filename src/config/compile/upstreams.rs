//! `[upstreams.NAME]` -> [`Upstream`]: the URL split into scheme, authority and path
//! prefix (no userinfo, no query), or the built-in `echo:`.
//!
//! An upstream that fails to compile (or to parse) still counts as declared, so the
//! routes naming it cause no second "unknown upstream" error.

use super::{dur, Cx};
use crate::config::file::RawUpstream;
use crate::config::{Upstream, UpstreamKind};
use crate::defaults;
use std::collections::BTreeMap;
use std::str::FromStr;
use toml::Spanned;

/// The compiled upstreams, and what routes may name.
pub(super) struct Upstreams {
    /// Compiled, in name order; routes refer to them by index.
    pub list: Vec<Upstream>,
    /// Declared but broken (already reported).
    pub broken: Vec<String>,
}

impl Upstreams {
    /// What a route's `upstream = "name"` refers to: `Ok(Some(index))`, `Ok(None)`
    /// for a broken one, `Err` (the names defined) for an unknown one.
    pub(super) fn find(&self, name: &str) -> Result<Option<usize>, String> {
        if let Some(i) = self.list.iter().position(|u| u.name == name) {
            return Ok(Some(i));
        }
        if self.broken.iter().any(|b| b == name) {
            return Ok(None);
        }
        let mut names: Vec<&str> = self.list.iter().map(|u| u.name.as_str()).collect();
        names.extend(self.broken.iter().map(String::as_str));
        names.sort_unstable();
        Err(if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        })
    }
}

/// Compiles every upstream; `unparsed` are the names whose table did not parse.
pub(super) fn compile(
    cx: &mut Cx<'_>,
    raw: BTreeMap<String, Spanned<RawUpstream>>,
    unparsed: &[String],
) -> Upstreams {
    let mut out = Upstreams {
        list: Vec::new(),
        broken: unparsed.to_vec(),
    };
    for (name, u) in raw {
        match u.into_inner().compile(cx, &name) {
            Some(up) => out.list.push(up),
            None => out.broken.push(name),
        }
    }
    out
}

impl RawUpstream {
    fn compile(self, cx: &mut Cx<'_>, name: &str) -> Option<Upstream> {
        let url: &str = self.url.get_ref();
        let ca = self.ca.as_ref().map(|c| cx.resolve(c.get_ref()));
        let kind = if url == "echo:" {
            UpstreamKind::Echo
        } else if let Some(kind) = http_kind(url) {
            kind
        } else {
            cx.rep.at(
                self.url.span(),
                format!(
                    "invalid upstream url `{url}` (expected http://host:port[/prefix], https://... or echo:)"
                ),
            );
            return None;
        };
        Some(Upstream {
            name: name.to_owned(),
            kind,
            connect_timeout: dur(self.connect_timeout, defaults::CONNECT_TIMEOUT),
            timeout: dur(self.timeout, defaults::UPSTREAM_TIMEOUT),
            ca,
            audience: self.audience.map_or_else(|| name.to_owned(), |a| a.0),
        })
    }
}

/// `http://host:port[/prefix]` or `https://...`: no userinfo, no query.
fn http_kind(url: &str) -> Option<UpstreamKind> {
    let uri = http::Uri::from_str(url).ok()?;
    let p = uri.clone().into_parts();
    let scheme = p.scheme?;
    let authority = p.authority?;
    if scheme != http::uri::Scheme::HTTP && scheme != http::uri::Scheme::HTTPS {
        return None;
    }
    if uri.query().is_some() || authority.as_str().contains('@') {
        return None;
    }
    let prefix = uri.path().trim_end_matches('/').to_string();
    Some(UpstreamKind::Http {
        scheme,
        authority,
        prefix,
    })
}
