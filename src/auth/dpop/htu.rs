//! `htu` comparison (RFC 9449 §4.3 step 9, RFC 3986 §6.2.2–6.2.3): the proof's URI
//! and the request's `{scheme}://{Host}{path}` are both normalized — scheme and host
//! lower case, a default port (80 for http, 443 for https) dropped, a trailing dot
//! of the host dropped, the path normalized as routes see it ([`crate::path`]), query
//! and fragment ignored — and must then be equal.

/// The request's URI as a proof's `htu` must name it, normalized.
pub fn expected(tls: bool, host: &str, path: &str) -> String {
    let scheme = if tls { "https" } else { "http" };
    let lower = host.to_ascii_lowercase();
    let host = strip_default_port(scheme, &lower);
    let path = if path.is_empty() { "/" } else { path };
    format!("{scheme}://{host}{path}")
}

/// A proof's `htu`, normalized; `None` when it is no absolute http(s) URI.
pub fn normalize(htu: &str) -> Option<String> {
    if htu.len() > 8192 {
        return None;
    }
    let htu = htu.split('#').next().unwrap_or_default();
    let uri: http::Uri = htu.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = uri.authority()?.as_str();
    if authority.contains('@') {
        return None;
    }
    let mut host = authority.to_ascii_lowercase();
    if let Some(p) = host.find(':').filter(|_| !host.starts_with('[')) {
        // `name.:port` -> `name:port`
        if host[..p].ends_with('.') {
            host.remove(p - 1);
        }
    } else if host.ends_with('.') {
        host.pop();
    }
    let host = strip_default_port(&scheme, &host);
    let path = crate::path::normalize(uri.path()).ok()?;
    let path = if path.is_empty() { "/" } else { &path };
    Some(format!("{scheme}://{host}{path}"))
}

fn strip_default_port<'a>(scheme: &str, host: &'a str) -> &'a str {
    let default = if scheme == "https" { ":443" } else { ":80" };
    host.strip_suffix(default).unwrap_or(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization() {
        let want = expected(true, "API.example.com:443", "/items/1");
        assert_eq!(want, "https://api.example.com/items/1");
        for ok in [
            "https://api.example.com/items/1",
            "HTTPS://API.EXAMPLE.COM:443/items/1",
            "https://api.example.com/items/1?x=1",
            "https://api.example.com/items/1#frag",
            "https://api.example.com./items/1",
            "https://api.example.com/items/./1",
            "https://api.example.com/items/%31",
        ] {
            assert_eq!(normalize(ok).as_deref(), Some(want.as_str()), "{ok}");
        }
        for bad in [
            "http://api.example.com/items/1",
            "https://api.example.com:8443/items/1",
            "https://api.example.com/items/2",
            "https://api.example.com/Items/1",
            "https://evil.example.com/items/1",
        ] {
            assert_ne!(normalize(bad).as_deref(), Some(want.as_str()), "{bad}");
        }
        for junk in [
            "",
            "/items/1",
            "ftp://x/y",
            "https://u@api.example.com/",
            "not a uri",
        ] {
            assert_eq!(normalize(junk), None, "{junk}");
        }
        assert_eq!(expected(false, "h:80", ""), "http://h/");
        assert_eq!(expected(false, "h:8080", "/a"), "http://h:8080/a");
    }
}
