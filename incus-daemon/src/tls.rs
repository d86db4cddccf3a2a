//! TLS for the HTTPS listener: the server's key pair (made on first use, as Incus does:
//! `server.crt` and `server.key` in the state directory, ECDSA P-384) and a rustls server
//! configuration that asks every client for a certificate without requiring one. Whether a
//! client is trusted is decided per request from its certificate's SHA-256 fingerprint
//! (`auth`), not by the handshake: any well-formed self-signed certificate that proves
//! possession of its key gets through the handshake, as with Incus.

use incus_core::error::{Error, Result};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

/// The server's certificate and key.
pub struct ServerCert {
    /// PEM of the certificate (shown in `GET /1.0` as `environment.certificate`).
    pub pem: String,
    /// SHA-256 of the DER certificate, hex (`environment.certificate_fingerprint`).
    pub fingerprint: String,
    der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

/// The one crypto provider used (aws-lc-rs), passed explicitly so no process-wide default is
/// needed.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

impl ServerCert {
    /// Loads `dir/server.crt` and `dir/server.key`, generating them first if absent.
    pub fn load_or_create(dir: &Path) -> Result<ServerCert> {
        let (crt, key) = (dir.join("server.crt"), dir.join("server.key"));
        let (pem, key_pem) =
            incus_core::tls::load_or_create(&crt, &key, incus_core::tls::Usage::Server)?;
        let der = CertificateDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| Error::internal(format!("{}: {e}", crt.display())))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| Error::internal(format!("{}: {e}", key.display())))?;
        Ok(ServerCert {
            fingerprint: incus_core::host::trust::fingerprint(&der),
            pem,
            der,
            key,
        })
    }

    /// The rustls configuration of the HTTPS listener: TLS 1.3 (as Incus requires), HTTP/1.1,
    /// client certificates requested but optional.
    pub fn server_config(&self) -> Result<rustls::ServerConfig> {
        let provider = provider();
        let verifier = Arc::new(AnyClientCert {
            algorithms: provider.signature_verification_algorithms,
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(|e| Error::internal(format!("TLS: {e}")))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.der.clone()], self.key.clone_key())
            .map_err(|e| Error::internal(format!("TLS: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Accepts any client certificate whose handshake signature verifies; trust comes later.
#[derive(Debug)]
struct AnyClientCert {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> std::result::Result<ClientCertVerified, rustls::Error> {
        // Only well-formed certificates; their validity period is checked when one is added
        // to the trust store.
        x509_check(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

fn x509_check(der: &CertificateDer<'_>) -> std::result::Result<(), rustls::Error> {
    // webpki parses it as an end-entity certificate without building a chain.
    rustls::server::ParsedCertificate::try_from(der).map(|_| ())
}
