//! HTTPS with rustls (ring, TLS 1.2 and 1.3) from PEM files, as a handshake for `jtc_shared::serve`.

use std::sync::Arc;

use jtc_shared::serve::Handshake;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsSettings;

/// The TLS handshake, for `jtc_shared::serve`.
#[derive(Clone)]
pub struct Tls(pub TlsAcceptor);

impl Handshake for Tls {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    async fn handshake(&self, tcp: tokio::net::TcpStream) -> std::io::Result<Self::Io> {
        self.0.accept(tcp).await
    }
}

/// Why the certificate or key could not be read or used (the message names the file and the variable).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// A rustls server configuration (ring, TLS 1.2 and 1.3) from the PEM files.
pub fn config(files: &TlsSettings) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let shown = |p: &std::path::Path| p.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert_file)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| TlsError(format!("TLS_CERT_FILE {}: {e}", shown(&files.cert_file))))?;
    if certs.is_empty() {
        return Err(TlsError(format!("TLS_CERT_FILE {}: no certificate in it", shown(&files.cert_file))));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key_file)
        .map_err(|e| TlsError(format!("TLS_KEY_FILE {}: {e}", shown(&files.key_file))))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError(format!("the certificate and key do not make a usable pair: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
