//! Test PKI: a fresh CA ([`Pki::new`]) and leaf certificates it signs, as PEM text, as
//! files for a config to name, or as a rustls server config for a TLS test server; and
//! clients that trust this CA only (reqwest, or a raw TLS stream: [`tls_connect`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A test CA and leaf certificates signed by it.
pub struct Pki {
    /// The CA certificate (PEM).
    pub ca_pem: String,
    pub issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Default for Pki {
    fn default() -> Self {
        Self::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "portcullis test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A leaf for `names` (DNS names or IP addresses; the first is also the CN), signed
    /// by the CA: the certificate and its key.
    pub fn leaf_cert(&self, names: &[&str]) -> (rcgen::Certificate, rcgen::KeyPair) {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0].clone());
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert, key)
    }

    /// Writes `{file}.crt` / `{file}.key` (PEM) for `names` into `dir`.
    pub fn leaf(&self, dir: &Path, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let (cert, key) = self.leaf_cert(names);
        let c = dir.join(format!("{file}.crt"));
        let k = dir.join(format!("{file}.key"));
        if let Some(parent) = c.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c, k)
    }

    /// Writes the CA certificate to `path` (a config's `ca = "..."`).
    pub fn write_ca(&self, path: &Path) -> PathBuf {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, &self.ca_pem).unwrap();
        path.to_path_buf()
    }

    /// A rustls server config presenting a leaf for `names` (for TLS test servers).
    pub fn server_config(&self, names: &[&str]) -> Arc<rustls::ServerConfig> {
        let (cert, key) = self.leaf_cert(names);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls_pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            )
            .unwrap();
        Arc::new(cfg)
    }

    /// A reqwest client builder trusting only this CA (HTTP/1.1 only unless `http2`).
    pub fn builder(&self, http2: bool) -> reqwest::ClientBuilder {
        let b = reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap())
            .use_rustls_tls()
            .timeout(std::time::Duration::from_secs(30));
        if http2 {
            b
        } else {
            b.http1_only()
        }
    }

    pub fn client(&self, http2: bool) -> reqwest::Client {
        self.builder(http2).build().unwrap()
    }
}

/// A TLS connection to `addr` for `server_name`, trusting only the CA certificates in
/// `ca_pem` and offering `alpn` (none: no ALPN extension).
pub async fn tls_connect(
    addr: std::net::SocketAddr,
    ca_pem: &str,
    server_name: &str,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = rustls_pki_types::ServerName::try_from(server_name.to_owned()).unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(name, tcp)
        .await
        .unwrap()
}
