//! The built-in issuer's documents (SPEC §5, §10): the OIDC discovery document
//! (OpenID Connect Discovery 1.0 §3, RFC 8414) with its endpoint URLs on the issuer's
//! origin, or on the request's scheme and Host when `iss` is not an http(s) URL.

use super::Endpoint;

/// The request's scheme and Host, as an origin (`localhost` for a Host that is not
/// a plain host name, address and port).
pub(super) fn request_origin(tls: bool, host: Option<&str>) -> String {
    let host = host
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{}://{host}", if tls { "https" } else { "http" })
}

/// The OIDC discovery document (fields of OpenID Connect Discovery 1.0 §3 and
/// RFC 8414), its endpoint URLs on `base`: the issuer's origin when `iss` is an
/// http(s) URL, else the request's scheme and Host.
pub(super) fn discovery(ep: &Endpoint, base: &str) -> String {
    let alg = ep
        .issuer
        .signing
        .as_ref()
        .map(|s| format!("{:?}", s.alg))
        .unwrap_or_default();
    serde_json::json!({
        "issuer": ep.issuer.iss,
        "token_endpoint": format!("{base}{}", ep.path),
        "jwks_uri": format!("{base}{}", super::JWKS_PATH),
        "revocation_endpoint": format!("{base}{}", super::REVOKE_PATH),
        "grant_types_supported": ["password", "refresh_token"],
        "response_types_supported": ["none"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [alg],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "claims_supported": ["sub", "iss", "aud", "iat", "exp", "jti", "scope", "email", "name"],
        "dpop_signing_alg_values_supported": crate::auth::dpop::ALGS.split(' ').collect::<Vec<_>>(),
    })
    .to_string()
}

/// `scheme://authority` of an http(s) URL.
pub(super) fn origin_of(iss: &str) -> Option<String> {
    let uri: http::Uri = iss.parse().ok()?;
    let scheme = uri.scheme_str().filter(|s| *s == "http" || *s == "https")?;
    Some(format!("{scheme}://{}", uri.authority()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins() {
        assert_eq!(
            origin_of("https://auth.example.com/realm/").as_deref(),
            Some("https://auth.example.com")
        );
        assert_eq!(origin_of("portcullis"), None);
        assert_eq!(origin_of("ftp://x"), None);
    }
}
