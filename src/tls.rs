//! TLS termination (rustls), the server-certificate side (the client side, for
//! upstreams and JWKS, is [`crate::tls_client`]): the default certificate plus extra ones chosen by SNI,
//! ALPN `h2` and `http/1.1`, TLS 1.2 and 1.3 only. Loading checks that each key
//! matches its certificate and names the file at fault.

use crate::config::Tls;
pub use crate::tls_client::TlsError;
use crate::tls_client::{err, load_certs};
use rustls::crypto::aws_lc_rs;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Loads a certificate chain and its key, checking they belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = load_certs(cert)?;
    let kb = std::fs::read(key).map_err(|e| err(key, format!("cannot read key: {e}")))?;
    let der = PrivateKeyDer::from_pem_slice(&kb)
        .map_err(|_| err(key, "no PEM private key found (PKCS#8, RSA or SEC1)"))?;
    let signing = aws_lc_rs::sign::any_supported_type(&der)
        .map_err(|e| err(key, format!("unsupported private key: {e}")))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|_| {
        err(
            key,
            format!(
                "private key does not match the certificate `{}`",
                cert.display()
            ),
        )
    })?;
    Ok(Arc::new(ck))
}

/// Picks the certificate by SNI, falling back to the default one.
#[derive(Debug)]
struct SniResolver {
    default: Arc<CertifiedKey>,
    by_name: HashMap<String, Arc<CertifiedKey>>,
    wildcard: Vec<(String, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = hello.server_name() else {
            return Some(self.default.clone());
        };
        let name = name.to_ascii_lowercase();
        if let Some(k) = self.by_name.get(&name) {
            return Some(k.clone());
        }
        for (suffix, k) in &self.wildcard {
            if name.len() > suffix.len() && name.ends_with(suffix.as_str()) {
                return Some(k.clone());
            }
        }
        Some(self.default.clone())
    }
}

/// The listener's certificates, swappable on reload: the next handshake sees the
/// new ones, connections already established keep theirs.
#[derive(Debug)]
pub struct Certs {
    current: arc_swap::ArcSwap<SniResolver>,
}

impl Certs {
    /// Loads every certificate and key of `[server.tls]`.
    pub fn load(tls: &Tls) -> Result<Self, TlsError> {
        Ok(Certs {
            current: arc_swap::ArcSwap::from_pointee(SniResolver::load(tls)?),
        })
    }

    /// Re-reads the certificates; on error the old ones stay.
    pub fn reload(&self, tls: &Tls) -> Result<(), TlsError> {
        self.current.store(Arc::new(SniResolver::load(tls)?));
        Ok(())
    }
}

impl ResolvesServerCert for Certs {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load().resolve(hello)
    }
}

impl SniResolver {
    fn load(tls: &Tls) -> Result<Self, TlsError> {
        let default = load_certified_key(&tls.cert, &tls.key)?;
        let mut by_name = HashMap::new();
        let mut wildcard = Vec::new();
        for (hosts, cert, key) in &tls.sni {
            let ck = load_certified_key(cert, key)?;
            for h in hosts {
                match h.strip_prefix('*') {
                    Some(sfx) => wildcard.push((sfx.to_owned(), ck.clone())),
                    None => {
                        by_name.insert(h.clone(), ck.clone());
                    }
                }
            }
        }
        Ok(SniResolver {
            default,
            by_name,
            wildcard,
        })
    }
}

/// Builds the rustls server config around (reloadable) certificates.
pub fn server_config(certs: Arc<Certs>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| err(Path::new("tls"), format!("TLS set-up failed: {e}")))?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
