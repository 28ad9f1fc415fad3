//! Certificates made at test time for the TLS tests: a certificate authority, a server
//! certificate it signed for `localhost` and `127.0.0.1`, and an unrelated authority a client
//! can wrongly trust. Written as PEM files under a fresh temporary folder for `krmx serve`.

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// A test PKI on disk.
pub struct TestCerts {
    dir: PathBuf,
    /// The PEM of the authority that signed the server's certificate.
    pub ca_pem: String,
    /// The PEM of an authority that signed nothing the server has.
    pub other_ca_pem: String,
}

impl TestCerts {
    /// Makes a fresh set under the temporary folder.
    #[must_use]
    pub fn generate() -> Self {
        static SERIAL: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "krmx-tls-{}-{}",
            std::process::id(),
            SERIAL.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = authority("krmx test CA");
        let other = authority("krmx other CA");
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "krmx test server");
        let server = params.signed_by(&key, &ca).unwrap();
        // The chain: the server's certificate first.
        std::fs::write(dir.join("cert.pem"), server.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        Self {
            dir,
            ca_pem: ca.pem(),
            other_ca_pem: other.pem(),
        }
    }

    /// The server's certificate chain file.
    #[must_use]
    pub fn cert_file(&self) -> PathBuf {
        self.dir.join("cert.pem")
    }

    /// The server's key file.
    #[must_use]
    pub fn key_file(&self) -> PathBuf {
        self.dir.join("key.pem")
    }

    /// The authority's certificate file (for `NODE_EXTRA_CA_CERTS`).
    #[must_use]
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// `--tls-cert FILE --tls-key FILE`.
    #[must_use]
    pub fn serve_args(&self) -> Vec<String> {
        vec![
            "--tls-cert".to_owned(),
            path_arg(&self.cert_file()),
            "--tls-key".to_owned(),
            path_arg(&self.key_file()),
        ]
    }

    /// A rustls client configuration trusting `ca_pem`.
    #[must_use]
    pub fn client_config(ca_pem: &str) -> Arc<rustls::ClientConfig> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }

    /// One plain HTTP/1.1 request over TLS (trusting the test authority); the whole response.
    #[must_use]
    pub fn https_request(&self, addr: SocketAddr, request: &str) -> String {
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let session =
            rustls::ClientConnection::new(Self::client_config(&self.ca_pem), name).unwrap();
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(crate::TIMEOUT)).unwrap();
        let mut tls = rustls::StreamOwned::new(session, tcp);
        tls.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        // The server closes after its answer (with or without close_notify).
        let _ = tls.read_to_end(&mut response);
        String::from_utf8_lossy(&response).into_owned()
    }
}

impl Drop for TestCerts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn authority(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn path_arg(path: &Path) -> String {
    path.to_str().unwrap().to_owned()
}

/// Waits until the server closes `stream` (a read returns the end, or the connection is
/// reset), at most `within`; whether it did.
#[must_use]
pub fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    let mut sink = [0_u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut sink) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false;
            }
            Err(_) => return true,
        }
    }
}
