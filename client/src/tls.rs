//! [`ClientTls`]: which servers a client trusts on `wss://` URLs.

use crate::ClientFailure;
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::{Arc, OnceLock};

/// How a client checks the server's certificate on `wss://` URLs (`ws://` URLs ignore it):
/// against the platform's root certificates (the default), against given roots only, or as
/// an application's own rustls configuration says. TLS 1.2 and 1.3 with the `ring` provider.
///
/// ```
/// use krmx_client::{ClientOptions, ClientTls};
/// # fn demo(ca_pem: &[u8]) -> Result<(), krmx_client::ClientFailure> {
/// let options = ClientOptions::new().tls(ClientTls::root_pem(ca_pem)?);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// `None`: the platform's roots, loaded on the first `wss://` connection.
    config: Option<Arc<ClientConfig>>,
}

/// The platform's roots, loaded once per process.
static PLATFORM: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();

impl ClientTls {
    /// Trusts the platform's root certificates (the operating system's store, as
    /// `rustls-native-certs` finds it; `SSL_CERT_FILE` and `SSL_CERT_DIR` override it).
    #[must_use]
    pub fn platform_roots() -> Self {
        Self::default()
    }

    /// Trusts only the certificates in `pem` (one or more `CERTIFICATE` blocks): a private
    /// certificate authority, or a self-signed server certificate.
    ///
    /// # Errors
    /// [`ClientFailure::Tls`]: no certificate in the PEM, or one rustls cannot use.
    pub fn root_pem(pem: &[u8]) -> Result<Self, ClientFailure> {
        let failure = |message: String| ClientFailure::Tls { message };
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|error| failure(format!("invalid root PEM: {error}")))?;
            roots
                .add(cert)
                .map_err(|error| failure(format!("unusable root certificate: {error}")))?;
        }
        if roots.is_empty() {
            return Err(failure("no CERTIFICATE block in the root PEM".into()));
        }
        Ok(Self::from_config(config_with(roots)?))
    }

    /// An application's own rustls configuration (client certificates, another verifier).
    #[must_use]
    pub fn from_config(config: Arc<ClientConfig>) -> Self {
        Self {
            config: Some(config),
        }
    }

    /// The configuration to connect with.
    pub(crate) fn config(&self) -> Result<Arc<ClientConfig>, ClientFailure> {
        if let Some(config) = &self.config {
            return Ok(Arc::clone(config));
        }
        PLATFORM
            .get_or_init(platform_config)
            .clone()
            .map_err(|message| ClientFailure::Tls { message })
    }
}

/// The server name to check the certificate against: the URL's host.
pub(crate) fn server_name(host: &str) -> Result<ServerName<'static>, ClientFailure> {
    ServerName::try_from(host.to_owned()).map_err(|error| ClientFailure::Tls {
        message: format!("{host} is not a valid TLS server name: {error}"),
    })
}

fn platform_config() -> Result<Arc<ClientConfig>, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let errors: Vec<String> = found.errors.iter().map(ToString::to_string).collect();
        return Err(format!(
            "no platform root certificates found ({})",
            errors.join("; ")
        ));
    }
    config_with(roots).map_err(|failure| failure.to_string())
}

fn config_with(roots: rustls::RootCertStore) -> Result<Arc<ClientConfig>, ClientFailure> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ClientFailure::Tls {
            message: error.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
