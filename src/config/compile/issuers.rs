//! `[[issuers]]` -> [`Issuer`]: exact `iss`, audiences, the algorithm allow-list
//! (which must fit the key's family), leeway, JWKS refresh and the key source
//! ([`super::issuer_keys`]). Names and `issuer` values must be unique.

use super::issuer_keys::{self, Material};
use super::{dur, Cx};
use crate::auth::issuer::Issuer;
use crate::auth::keys::{KeySet, VerifyKey};
use crate::config::file::RawIssuer;
use crate::defaults;
use jsonwebtoken::Algorithm;
use std::ops::Range;
use std::str::FromStr;
use std::sync::Arc;
use toml::Spanned;

/// The compiled issuers.
pub(super) struct Issuers {
    /// In file order; the token endpoint refers to one by index.
    pub list: Vec<Arc<Issuer>>,
    /// Issuers that did not compile (already reported).
    pub broken: Vec<String>,
    /// Some issuer did not parse, or its name was an unset `${ENV}` (reported): any
    /// name not found may be its.
    pub unnamed_broken: bool,
    /// Names of issuers whose `generate_key` key does not exist yet.
    pub pending: Vec<String>,
}

/// Compiles every issuer; `unparsed`: some entry did not parse.
pub(super) fn compile(cx: &mut Cx<'_>, raw: Vec<Spanned<RawIssuer>>, unparsed: bool) -> Issuers {
    let mut out = Issuers {
        list: Vec::new(),
        broken: Vec::new(),
        unnamed_broken: unparsed,
        pending: Vec::new(),
    };
    for s in raw {
        let span = s.span();
        let i = s.into_inner();
        let (name_span, iss_span) = (i.name.span(), i.issuer.span());
        out.unnamed_broken |= cx.rep.is_poisoned(&name_span);
        let name = i.name.get_ref().0.clone();
        let Some((iss, pending)) = i.compile(cx, span) else {
            out.broken.push(name);
            continue;
        };
        if out.list.iter().any(|x| x.name == iss.name) {
            cx.rep
                .at(name_span, format!("duplicate issuer name `{}`", iss.name));
        }
        if out.list.iter().any(|x| x.iss == iss.iss) {
            cx.rep.at(
                iss_span,
                format!("two issuers share `issuer = \"{}\"`", iss.iss),
            );
        }
        if pending {
            out.pending.push(iss.name.clone());
        }
        out.list.push(Arc::new(iss));
    }
    out
}

impl Issuers {
    /// Whether `name` may be an issuer that is broken (so not finding it is no news).
    pub(super) fn maybe_broken(&self, name: &str) -> bool {
        self.unnamed_broken || self.broken.iter().any(|b| b == name)
    }
}

impl RawIssuer {
    /// The issuer, and whether its key is still to be generated.
    fn compile(self, cx: &mut Cx<'_>, span: Range<usize>) -> Option<(Issuer, bool)> {
        let algorithms = algorithms(cx, self.algorithms.as_deref().unwrap_or_default());
        let mut material = issuer_keys::material(cx, &self, span.clone())?;
        check_fit(cx, &self, &material, &algorithms, span);
        let kid = self.kid.map(|k| k.0);
        let pending = material.pending;
        let source = material.source.clone();
        let keys = KeySet {
            keys: material
                .static_key
                .take()
                .map(|(family, key)| Arc::new(VerifyKey::new(kid.clone(), family, None, key)))
                .into_iter()
                .collect(),
        };
        let signing = material.signing_key(&algorithms, kid.as_deref());
        let ca = self.ca.as_ref().map(|c| cx.resolve(c.get_ref()));
        let issuer = Issuer {
            name: self.name.into_inner().0,
            iss: self.issuer.into_inner().0,
            audiences: self
                .audiences
                .unwrap_or_default()
                .into_iter()
                .map(|a| a.0)
                .collect(),
            algorithms,
            leeway: dur(self.leeway, defaults::LEEWAY),
            static_keys: Arc::new(keys),
            source,
            refresh_interval: dur(self.refresh_interval, defaults::REFRESH_INTERVAL),
            ca,
            signing,
        };
        Some((issuer, pending))
    }
}

/// The `algorithms` allow-list; unknown names are errors.
fn algorithms(cx: &mut Cx<'_>, raw: &[Spanned<crate::config::values::EnvStr>]) -> Vec<Algorithm> {
    let mut out = Vec::new();
    for a in raw {
        match Algorithm::from_str(a.get_ref()) {
            Ok(alg) => out.push(alg),
            Err(_) => cx.rep.at(
                a.span(),
                format!(
                    "unknown algorithm `{}` (HS256/384/512, RS256/384/512, PS256/384/512, ES256, ES384, EdDSA)",
                    &**a.get_ref()
                ),
            ),
        }
    }
    out
}

/// An allow-list must name an algorithm the static key can verify.
fn check_fit(
    cx: &mut Cx<'_>,
    i: &RawIssuer,
    m: &Material,
    algorithms: &[Algorithm],
    span: Range<usize>,
) {
    if let Some(family) = m.family() {
        if !algorithms.is_empty() && !algorithms.iter().any(|a| family.allows(*a)) {
            cx.rep.at(
                span,
                format!(
                    "issuer `{}`: none of `algorithms` fits its {} key",
                    &**i.name.get_ref(),
                    family.as_str()
                ),
            );
        }
    }
}
