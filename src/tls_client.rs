//! TLS as a client (rustls): the config and connector for https upstreams and JWKS /
//! discovery fetches (webpki roots plus an optional `ca` file), and the PEM certificate
//! reader both sides use. Depends on no config type, so the key fetchers in
//! `auth/` can use it without depending on the server side.

use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::crypto::aws_lc_rs;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A TLS set-up problem, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TlsError {
    /// The file at fault.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

pub(crate) fn err(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// Reads a PEM certificate chain.
pub(crate) fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes =
        std::fs::read(path).map_err(|e| err(path, format!("cannot read certificate: {e}")))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| err(path, format!("invalid PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(err(
            path,
            "no certificate found (expected `-----BEGIN CERTIFICATE-----`)",
        ));
    }
    Ok(certs)
}

/// A rustls client config trusting the webpki roots plus `ca` (for https upstreams
/// and JWKS fetches). No ALPN is set: hyper-rustls sets it from the enabled versions.
pub(crate) fn client_config(ca: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = ca {
        for c in load_certs(ca)? {
            roots
                .add(c)
                .map_err(|e| err(ca, format!("invalid CA certificate: {e}")))?;
        }
    }
    let provider = Arc::new(aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| err(Path::new("tls"), e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A connector for `http://` and `https://` URLs, TLS verified with
/// [`client_config`] (webpki roots plus `ca`); `TCP_NODELAY` on. `all_versions` lets
/// ALPN choose HTTP/2 (upstreams: gRPC passes); else HTTP/1.1 only (key fetches).
pub(crate) fn https_connector(
    connect_timeout: Duration,
    ca: Option<&Path>,
    all_versions: bool,
) -> Result<HttpsConnector<HttpConnector>, TlsError> {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    http.enforce_http(false);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(client_config(ca)?)
        .https_or_http();
    Ok(if all_versions {
        builder.enable_all_versions().wrap_connector(http)
    } else {
        builder.enable_http1().wrap_connector(http)
    })
}
