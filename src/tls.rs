//! [`TlsConfig`]: what a server needs to speak `wss://` (rustls, ring).

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::{Error, Result};

/// TLS settings for a server: a rustls [`ServerConfig`](rustls::ServerConfig)
/// shared by every connection.
///
/// The handshake runs on the server's loop like the HTTP upgrade does and
/// counts against the same
/// [`handshake_timeout`](crate::ServerConfig::handshake_timeout).
///
/// ```no_run
/// use pawl::{App, EchoServer, TlsConfig};
///
/// App::new("127.0.0.1", 8443)
///     .tls(TlsConfig::from_pem_files("cert.pem", "key.pem")?)
///     .route("/echo", EchoServer, &["*"])
///     .run()?;
/// # Ok::<(), pawl::Error>(())
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    pub(crate) rustls: Arc<rustls::ServerConfig>,
}

impl TlsConfig {
    /// Uses a rustls configuration built by the caller (client
    /// certificates, several certificates by SNI, another crypto provider).
    pub fn new(config: Arc<rustls::ServerConfig>) -> TlsConfig {
        TlsConfig { rustls: config }
    }

    /// Loads a PEM certificate chain (the server's certificate first, then
    /// intermediates) and its PEM private key (PKCS#8, PKCS#1 or SEC1).
    ///
    /// Fails with [`Error::Tls`] naming the file when one cannot be read,
    /// holds no certificate or key, or the key does not belong to the
    /// certificate. ALPN offers `http/1.1`, the protocol WebSocket upgrades
    /// from.
    pub fn from_pem_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<TlsConfig> {
        let (cert_path, key_path) = (cert_chain.as_ref(), key.as_ref());
        let chain = read_certs(cert_path)?;
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
            Error::Tls(format!(
                "cannot read a private key from {}: {e}",
                key_path.display()
            ))
        })?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Tls(format!("TLS protocol versions: {e}")))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| {
                Error::Tls(format!(
                    "certificate {} and key {} do not go together: {e}",
                    cert_path.display(),
                    key_path.display()
                ))
            })?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsConfig::new(Arc::new(config)))
    }

    /// The rustls configuration in use.
    pub fn rustls_config(&self) -> &Arc<rustls::ServerConfig> {
        &self.rustls
    }
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let bad = |e: &dyn fmt::Display| {
        Error::Tls(format!(
            "cannot read certificates from {}: {e}",
            path.display()
        ))
    };
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    if chain.is_empty() {
        return Err(bad(&"no CERTIFICATE block in the file"));
    }
    Ok(chain)
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("alpn_protocols", &self.rustls.alpn_protocols.len())
            .finish_non_exhaustive()
    }
}
