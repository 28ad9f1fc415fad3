//! [`ServerTls`]: the certificate and key a server speaks TLS (`wss://`) with.

use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What a server needs to serve `wss://`: a rustls server configuration, usually built from a
/// PEM certificate chain and private key. TLS 1.2 and 1.3 with the `ring` provider; ALPN
/// `http/1.1`.
///
/// ```
/// # fn demo(cert_pem: &[u8], key_pem: &[u8]) -> Result<(), krmx_driver::TlsError> {
/// use krmx_driver::{ServerTls, TransportConfig};
/// let transport = TransportConfig::default().tls(ServerTls::from_pem(cert_pem, key_pem)?);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
}

/// Why a [`ServerTls`] could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate PEM holds no `CERTIFICATE` block, or one is malformed.
    #[error("no valid certificate in the PEM: {0}")]
    Certificate(String),
    /// The key PEM holds no private key (PKCS #8, PKCS #1 or SEC1), or it is malformed.
    #[error("no valid private key in the PEM: {0}")]
    Key(String),
    /// rustls refused the pair (for example a key that does not match the certificate).
    #[error("the certificate and key are not usable: {0}")]
    Rustls(#[from] rustls::Error),
}

impl ServerTls {
    /// From a PEM certificate chain (the server's certificate first) and a PEM private key.
    ///
    /// # Errors
    /// [`TlsError::Certificate`], [`TlsError::Key`] or [`TlsError::Rustls`].
    pub fn from_pem(cert_chain: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let chain = CertificateDer::pem_slice_iter(cert_chain)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| TlsError::Certificate(error.to_string()))?;
        if chain.is_empty() {
            return Err(TlsError::Certificate("no CERTIFICATE block".into()));
        }
        let key =
            PrivateKeyDer::from_pem_slice(key).map_err(|error| TlsError::Key(error.to_string()))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self::from_config(Arc::new(config)))
    }

    /// From PEM files: the certificate chain and the private key.
    ///
    /// # Errors
    /// [`TlsError::Read`], or as [`from_pem`](Self::from_pem).
    pub fn from_pem_files(cert_chain: &Path, key: &Path) -> Result<Self, TlsError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
        };
        Self::from_pem(&read(cert_chain)?, &read(key)?)
    }

    /// From a rustls configuration built by the application (client certificates, certificate
    /// resolvers, another crypto provider).
    #[must_use]
    pub fn from_config(config: Arc<ServerConfig>) -> Self {
        Self { config }
    }

    /// A new server-side TLS session.
    pub(crate) fn session(&self) -> Result<rustls::ServerConnection, rustls::Error> {
        rustls::ServerConnection::new(Arc::clone(&self.config))
    }
}
