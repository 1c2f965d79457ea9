//! Reads `proxy.toml` text into the raw types of [`super::file`], one section and one
//! entry (`[upstreams.NAME]`, `[[issuers]]`, `[[routes]]`) at a time, so that every
//! independent error is reported in one run, each at its `line:col`:
//!
//! 1. The text is parsed into a spanned document ([`DeTable`]); a TOML syntax error
//!    stops here (what follows it cannot be trusted).
//! 2. Every string is checked for `${ENV}` expansion first (the values are expanded
//!    later by [`super::values::EnvStr`]). A failing one is reported, blanked and its
//!    span poisoned, so its follow-on errors (an empty URL, an invalid duration) are
//!    not reported again and it hides no other error. Route `claims` values are not
//!    `${ENV}` strings and are left alone.
//! 3. Each section, and each entry of the three lists, is deserialized on its own
//!    (as a [`RawConfig`] holding just it, so the rules are exactly the derived
//!    ones). An unknown key is reported, removed and the entry tried again, so every
//!    unknown key is named (and errors at the entry itself, such as a required key
//!    missing, are taken for its follow-ons); any other error drops the section or
//!    entry.
//!
//! What was dropped is listed in [`Damage`], so the compiler can keep quiet about
//! its consequences (a route naming an upstream whose table did not parse).

use super::error::Reporter;
use super::file::RawConfig;
use super::values::expand_env;
use serde::Deserialize;
use std::borrow::Cow;
use std::ops::Range;
use toml::de::{DeArray, DeString, DeTable, DeValue};
use toml::Spanned;

/// Sections and entries that did not parse.
#[derive(Debug, Default)]
pub(super) struct Damage {
    /// Names of `[upstreams.NAME]` tables that did not parse.
    pub upstreams: Vec<String>,
    /// Some `[[issuers]]` entry did not parse.
    pub issuers: bool,
    /// Some `[token_endpoint]` did not parse.
    pub token_endpoint: bool,
    /// `[forward_auth]` did not parse (routes without `upstream` are then no error:
    /// they may be meant for it).
    pub forward_auth: bool,
    /// The 1-based position in the file of each route in [`RawConfig::routes`]
    /// (routes that did not parse leave gaps): default names count every route.
    pub route_numbers: Vec<usize>,
}

type Key<'i> = Spanned<DeString<'i>>;
type Value<'i> = Spanned<DeValue<'i>>;

/// Parses `src`; `None` when nothing usable came out (a syntax error).
pub(super) fn parse(rep: &mut Reporter<'_>, src: &str) -> Option<(RawConfig, Damage)> {
    let doc = match DeTable::parse(src) {
        Ok(d) => d,
        Err(e) => {
            rep.at(e.span().unwrap_or(0..0), e.message().trim());
            return None;
        }
    };
    let doc_span = doc.span();
    let mut doc = doc.into_inner();
    for (key, value) in doc.iter_mut() {
        let skip = (key.get_ref() == "routes").then_some("claims");
        check_env(rep, value, skip);
    }
    let mut damage = Damage::default();
    let mut good = DeTable::new();
    for (key, value) in doc {
        let span = value.span();
        let kept = match (key.get_ref().as_ref(), value.into_inner()) {
            ("upstreams", DeValue::Table(t)) => Some(upstreams(rep, &key, t, span, &mut damage)),
            ("issuers", DeValue::Array(items)) => {
                let total = items.len();
                let (v, numbers) = entries(rep, &key, items, span);
                damage.issuers |= numbers.len() < total;
                Some(v)
            }
            ("routes", DeValue::Array(items)) => {
                let (v, numbers) = entries(rep, &key, items, span);
                damage.route_numbers = numbers;
                Some(v)
            }
            (name, v) => {
                let kept = section(rep, &key, Spanned::new(span.clone(), v), &span);
                damage.token_endpoint |= name == "token_endpoint" && kept.is_none();
                damage.forward_auth |= name == "forward_auth" && kept.is_none();
                kept
            }
        };
        if let Some(v) = kept {
            good.insert(key, v);
        }
    }
    match RawConfig::deserialize(document(good, doc_span)) {
        Ok(raw) => Some((raw, damage)),
        Err(e) => {
            // Each part deserialized alone; together they cannot fail. Report anyway.
            rep.at(e.span().unwrap_or(0..0), e.message().trim());
            None
        }
    }
}

/// Reports (and blanks) every string under `v` whose `${ENV}` expansion fails, except
/// under a table key named `skip`.
fn check_env(rep: &mut Reporter<'_>, v: &mut Value<'_>, skip: Option<&str>) {
    let span = v.span();
    match v.get_mut() {
        DeValue::String(s) => {
            if let Err(e) = expand_env(s) {
                rep.at(span.clone(), e);
                rep.poison(span);
                *s = Cow::Borrowed("");
            }
        }
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                check_env(rep, item, skip);
            }
        }
        DeValue::Table(t) => {
            for (k, item) in t.iter_mut() {
                if Some(k.get_ref().as_ref()) != skip {
                    check_env(rep, item, None);
                }
            }
        }
        _ => {}
    }
}

/// `[upstreams]`: each `[upstreams.NAME]` alone; the names of those that fail are
/// recorded.
fn upstreams<'i>(
    rep: &mut Reporter<'_>,
    key: &Key<'i>,
    table: DeTable<'i>,
    span: Range<usize>,
    damage: &mut Damage,
) -> Value<'i> {
    let mut good = DeTable::new();
    for (name, entry) in table {
        let at = entry.span();
        let mut one = DeTable::new();
        one.insert(name.clone(), entry);
        let wrapped = Spanned::new(span.clone(), DeValue::Table(one));
        match section(rep, key, wrapped, &at).map(Spanned::into_inner) {
            Some(DeValue::Table(t)) => good.extend(t),
            _ => damage.upstreams.push(name.get_ref().to_string()),
        }
    }
    Spanned::new(span, DeValue::Table(good))
}

/// `[[issuers]]` or `[[routes]]`: each entry alone. Returns the entries that parse
/// and their 1-based positions.
fn entries<'i>(
    rep: &mut Reporter<'_>,
    key: &Key<'i>,
    items: DeArray<'i>,
    span: Range<usize>,
) -> (Value<'i>, Vec<usize>) {
    let mut good = DeArray::new();
    let mut numbers = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        let at = item.span();
        let mut one = DeArray::new();
        one.push(item);
        let wrapped = Spanned::new(span.clone(), DeValue::Array(one));
        if let Some(DeValue::Array(a)) = section(rep, key, wrapped, &at).map(Spanned::into_inner) {
            for item in a {
                good.push(item);
                numbers.push(i + 1);
            }
        }
    }
    (Spanned::new(span, DeValue::Array(good)), numbers)
}

/// Deserializes `key = value` alone as a [`RawConfig`]. On an unknown key (at any
/// depth) reports it, removes it and tries again; on another error reports it and
/// gives up. Returns the value (unknown keys removed) when it deserialized.
///
/// A removed key may have been meant as a required one: the start of `entry` (the
/// section or list entry) is poisoned, so an error reported at the entry itself (a
/// route that "needs `upstream`") is taken for a follow-on and the compiler treats
/// the entry as broken.
fn section<'i>(
    rep: &mut Reporter<'_>,
    key: &Key<'i>,
    mut value: Value<'i>,
    entry: &Range<usize>,
) -> Option<Value<'i>> {
    loop {
        let mut one = DeTable::new();
        one.insert(key.clone(), value.clone());
        let span = value.span();
        let Err(e) = RawConfig::deserialize(document(one, span)) else {
            return Some(value);
        };
        let at = e.span().unwrap_or(0..0);
        rep.at(at.clone(), e.message().trim());
        let unknown = e.message().starts_with("unknown field `");
        if !(unknown && at != key.span() && remove_key_at(&mut value, &at)) {
            return None;
        }
        rep.poison(entry.start..entry.start);
    }
}

/// Removes the table key whose span is `at`, anywhere under `v`.
fn remove_key_at(v: &mut Value<'_>, at: &Range<usize>) -> bool {
    match v.get_mut() {
        DeValue::Table(t) => {
            let key = t.keys().find(|k| k.span() == *at).cloned();
            match key {
                Some(k) => t.remove(&k).is_some(),
                None => t.iter_mut().any(|(_, x)| remove_key_at(x, at)),
            }
        }
        DeValue::Array(items) => items.iter_mut().any(|x| remove_key_at(x, at)),
        _ => false,
    }
}

fn document(table: DeTable<'_>, span: Range<usize>) -> toml::de::Deserializer<'_> {
    toml::de::Deserializer::from(Spanned::new(span, table))
}
