//! A route's `cors` -> [`Cors`] (SPEC §11): every origin `scheme://host[:port]` (no
//! path, query or user info) or `"*"`, and `"*"` never with `credentials = true`
//! (browsers refuse that pair); methods and headers HTTP tokens.

use super::Cx;
use crate::config::file::RawCors;
use crate::routes::cors::Cors;
use http::HeaderValue;
use toml::Spanned;

/// Default `Access-Control-Allow-Methods` (the CORS-safelisted methods).
const DEFAULT_METHODS: &str = "GET, HEAD, POST";

/// `None` after an error (reported at its span).
pub(super) fn compile(cx: &mut Cx<'_>, raw: Spanned<RawCors>) -> Option<Cors> {
    let span = raw.span();
    let raw = raw.into_inner();
    let before = cx.problems();
    let mut origins = Vec::new();
    let mut any = false;
    for o in &raw.origins {
        match origin(o.get_ref()) {
            Ok(None) => any = true,
            Ok(Some(s)) => origins.push(s),
            Err(e) => cx.rep.at(o.span(), e),
        }
    }
    let credentials = raw.credentials.as_ref().is_some_and(|c| *c.get_ref());
    if any && credentials {
        let at = raw.credentials.as_ref().map_or(span.clone(), Spanned::span);
        cx.rep.at(
            at,
            "`cors`: `origins = [\"*\"]` cannot be combined with `credentials = true` (browsers refuse it): list the origins",
        );
    }
    if raw.origins.is_empty() {
        cx.rep.at(span.clone(), "`cors` needs at least one origin");
    }
    let methods = match &raw.methods {
        None => Some(HeaderValue::from_static(DEFAULT_METHODS)),
        Some(ms) => tokens(ms.iter().map(|m| m.0.to_ascii_uppercase())),
    };
    let headers = if raw.headers.is_empty() {
        Some(None)
    } else {
        tokens(raw.headers.iter().map(|h| h.0.clone())).map(Some)
    };
    let (Some(methods), Some(headers)) = (methods, headers) else {
        cx.rep
            .at(span, "`cors`: methods and headers must be HTTP tokens");
        return None;
    };
    let max_age = raw.max_age.map(|d| HeaderValue::from(d.0.as_secs()));
    (cx.problems() == before).then_some(Cors {
        origins,
        any,
        methods,
        headers,
        credentials,
        max_age,
    })
}

/// `Ok(None)` for `"*"`; the origin lower-cased; an error naming what is wrong.
fn origin(s: &str) -> Result<Option<String>, String> {
    if s == "*" {
        return Ok(None);
    }
    let bad = |why: &str| {
        Err(format!(
            "`cors` origin `{s}` {why}: write `scheme://host[:port]` (e.g. `https://app.example.com`)"
        ))
    };
    let Some((scheme, rest)) = s.split_once("://") else {
        return bad("has no scheme");
    };
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return bad("has an invalid scheme");
    }
    if rest.contains(['/', '?', '#']) {
        return bad("has a path");
    }
    if rest.is_empty() || rest.contains('@') || rest.bytes().any(|b| !b.is_ascii_graphic()) {
        return bad("has no valid host");
    }
    Ok(Some(s.to_ascii_lowercase()))
}

/// Tokens joined by `, ` as one header value (`None` if one is not a token).
fn tokens(list: impl Iterator<Item = String>) -> Option<HeaderValue> {
    let list: Vec<String> = list.collect();
    let token = |t: &str| !t.is_empty() && http::HeaderName::from_bytes(t.as_bytes()).is_ok();
    if !list.iter().all(|t| token(t)) {
        return None;
    }
    HeaderValue::from_str(&list.join(", ")).ok()
}

#[cfg(test)]
mod tests {
    use super::origin;

    #[test]
    fn origins() {
        assert_eq!(origin("*"), Ok(None));
        assert_eq!(
            origin("https://App.example.com:8443"),
            Ok(Some("https://app.example.com:8443".into()))
        );
        assert!(origin("https://app.example.com/").is_err());
        assert!(origin("https://app.example.com/x").is_err());
        assert!(origin("app.example.com").is_err());
        assert!(origin("https://user@app.example.com").is_err());
    }
}
