//! Browser sign-in behind an ingress (SPEC §8 with §9): the decision listener answers
//! a decision request whose original path is `[login] callback_path` or `logout_path`
//! with the very code the main listener runs ([`crate::login::redirect`]), and hands
//! the ingress the `302` with its `Set-Cookie` values to pass to the client.
//!
//! Every `Location` this front door sends is absolute, on the original scheme and
//! host: an ingress resolves a relative one against the address of the decision
//! listener it called (Traefik's ForwardAuth does: traefik/traefik#11313), which
//! would send the browser to portcullis's decision port. The path part is the one
//! the login code chose, only ever a path on this host (`/`, not `//` or `/\`), so
//! the scheme and host put before it stay the original ones: no open redirect.

use crate::app::Runtime;
use crate::decide::Normalized;
use crate::deny::{Denial, Redirect};
use crate::login::Endpoint;
use http::HeaderValue;

/// What answering a login endpoint reports for the access line.
pub struct Served {
    /// The endpoint's route label.
    pub route: &'static str,
    /// The user signed in, after a callback.
    pub user: Option<String>,
}

/// The login endpoint the original request names, if `[login]` is configured and
/// the normalized path is one.
pub fn endpoint(rt: &Runtime, req: &Normalized<'_>) -> Option<Endpoint> {
    rt.login.as_ref()?.endpoint(&req.path)
}

/// Answers login endpoint `which` for `original` (normalized `req`): `Ok` with the
/// redirect made absolute, or the §4 / §9 denial (400 for a bad callback, 502 when
/// the provider cannot be reached).
pub async fn serve(
    rt: &Runtime,
    which: Endpoint,
    original: &super::Original<'_>,
    req: &Normalized<'_>,
) -> (Result<Redirect, Denial>, Served) {
    let mut served = Served {
        route: which.name(),
        user: None,
    };
    let Some(login) = rt.login.as_ref() else {
        return (Err(Denial::NoRoute), served);
    };
    let host = req.host.as_ref().map(crate::host::RequestHost::as_str);
    let asked = (original.method, original.headers, req.query, original.tls);
    let r = crate::login::redirect(login, &rt.verifier, which, asked, host).await;
    let r = r.map(|(r, user)| {
        served.user = user;
        r
    });
    let r = r.map(|r| match host {
        Some(h) => absolute(r, original.tls, h),
        None => r,
    });
    (r, served)
}

/// `r` with a path-only `Location` made `{scheme}://{host}{path}`; an absolute one
/// (the provider's) is kept. A `Location` that is neither (never made by the login
/// code) becomes `{scheme}://{host}/`.
pub fn absolute(mut r: Redirect, tls: bool, host: &str) -> Redirect {
    let loc = r.location.as_bytes();
    let path_only = loc.first() == Some(&b'/') && !matches!(loc.get(1), Some(b'/' | b'\\'));
    let external = loc.starts_with(b"https://") || loc.starts_with(b"http://");
    if external {
        return r;
    }
    let path = if path_only {
        r.location.to_str().unwrap_or("/")
    } else {
        "/"
    };
    let scheme = if tls { "https" } else { "http" };
    r.location = HeaderValue::from_str(&format!("{scheme}://{host}{path}"))
        .unwrap_or_else(|_| HeaderValue::from_static("/"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(location: &'static str) -> Redirect {
        Redirect {
            location: HeaderValue::from_static(location),
            cookies: Vec::new(),
        }
    }

    #[test]
    fn path_locations_go_to_the_original_scheme_and_host() {
        let cases = [
            (
                "/app?x=1",
                true,
                "app.example:8443",
                "https://app.example:8443/app?x=1",
            ),
            ("/", false, "127.0.0.1:8080", "http://127.0.0.1:8080/"),
            (
                "//evil.example/x",
                true,
                "app.example",
                "https://app.example/",
            ),
            (
                "/\\evil.example",
                true,
                "app.example",
                "https://app.example/",
            ),
            ("evil.example", false, "app.example", "http://app.example/"),
            (
                "https://idp.example/logout?x=1",
                false,
                "app.example",
                "https://idp.example/logout?x=1",
            ),
        ];
        for (given, tls, host, want) in cases {
            let got = absolute(to(given), tls, host);
            assert_eq!(got.location, want, "{given}");
        }
    }
}
