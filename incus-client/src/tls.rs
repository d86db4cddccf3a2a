//! TLS for HTTPS remotes, as the Incus client does it: the client proves who it is with its
//! own certificate (`client.crt`/`client.key`, self-signed, trusted by the server through
//! its trust store), and it trusts the server either by the one certificate pinned for that
//! remote (`servercerts/<remote>.crt`) or, when none is pinned, by the system's roots.

use incus_core::error::{Error, Result};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::sync::{Arc, Mutex};

/// How an HTTPS remote is reached: the client's identity and how the server is trusted.
#[derive(Clone, Default)]
pub struct RemoteTls {
    /// The client certificate, PEM (`None`: connect without one, as an untrusted caller).
    pub client_cert: Option<String>,
    /// Its private key, PEM.
    pub client_key: Option<String>,
    /// The server certificate to accept, PEM: that certificate and no other (the
    /// fingerprint pinned by `remote add`). `None`: the system's certificate authorities.
    pub server_cert: Option<String>,
}

impl std::fmt::Debug for RemoteTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key stays out of logs.
        f.debug_struct("RemoteTls")
            .field("client_cert", &self.client_cert.is_some())
            .field("server_cert", &self.server_cert.is_some())
            .finish_non_exhaustive()
    }
}

/// The one crypto provider used (aws-lc-rs), passed explicitly so no process-wide default is
/// needed.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn tls_err(e: impl std::fmt::Display) -> Error {
    Error::invalid(format!("TLS configuration: {e}"))
}

/// The DER of the first certificate in `pem`.
pub fn pem_certificate(pem: &str) -> Result<Vec<u8>> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .map(|c| c.to_vec())
        .map_err(|e| Error::invalid(format!("Invalid certificate: {e}")))
}

impl RemoteTls {
    /// The rustls client configuration: TLS 1.3 (Incus servers require it), HTTP/1.1.
    pub(crate) fn client_config(&self) -> Result<rustls::ClientConfig> {
        let provider = provider();
        let verifier: Arc<dyn ServerCertVerifier> = match &self.server_cert {
            Some(pem) => Arc::new(ServerCheck::new(
                Some(pem_certificate(pem)?),
                provider.clone(),
            )),
            None => Arc::new(
                rustls_platform_verifier::Verifier::new(provider.clone()).map_err(tls_err)?,
            ),
        };
        self.config_with(provider, verifier)
    }

    /// The configuration with this identity and `verifier` judging the server.
    fn config_with(
        &self,
        provider: Arc<CryptoProvider>,
        verifier: Arc<dyn ServerCertVerifier>,
    ) -> Result<rustls::ClientConfig> {
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .map_err(tls_err)?
            .dangerous()
            .with_custom_certificate_verifier(verifier);
        let mut config = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let cert = CertificateDer::from_pem_slice(cert.as_bytes())
                    .map_err(|e| tls_err(format!("client certificate: {e}")))?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map_err(|e| tls_err(format!("client key: {e}")))?;
                builder
                    .with_client_auth_cert(vec![cert], key)
                    .map_err(tls_err)?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(tls_err("a client certificate needs its key")),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

/// Checks the server's certificate: with `pinned`, accepts exactly that one (compared byte
/// for byte), which is what pinning a remote's certificate means; without, accepts any and
/// keeps it in `seen`, so it can be shown to the user and compared with a known fingerprint.
/// Either way the certificate's key must sign the handshake.
#[derive(Debug)]
struct ServerCheck {
    pinned: Option<Vec<u8>>,
    seen: Mutex<Option<Vec<u8>>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCheck {
    fn new(pinned: Option<Vec<u8>>, provider: Arc<CryptoProvider>) -> ServerCheck {
        ServerCheck {
            pinned,
            seen: Mutex::new(None),
            provider,
        }
    }
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match &self.pinned {
            Some(der) if end_entity.as_ref() != der.as_slice() => {
                Err(rustls::Error::General(format!(
                    "the server's certificate ({}) is not the one trusted for this remote ({})",
                    incus_core::tls::fingerprint(end_entity),
                    incus_core::tls::fingerprint(der)
                )))
            }
            Some(_) => Ok(ServerCertVerified::assertion()),
            None => {
                if let Ok(mut seen) = self.seen.lock() {
                    *seen = Some(end_entity.to_vec());
                }
                Ok(ServerCertVerified::assertion())
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not used".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The parts of an `https://host[:port]` URL (port 8443 when none is given, as Incus; an
/// IPv6 host bracketed or bare): the normalized base URL `https://host:port`, the
/// `host:port` to connect to, and the TLS server name.
pub fn authority(url: &str) -> Result<(String, String, ServerName<'static>)> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| Error::invalid(format!("Not an HTTPS URL: {url}")))?;
    let hostport = rest.split('/').next().unwrap_or_default();
    if hostport.is_empty() || hostport.contains('@') {
        return Err(Error::invalid(format!("Invalid URL: {url}")));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| Error::invalid(format!("Invalid URL: {url}")))?;
        let port = match after.strip_prefix(':') {
            Some(p) => p,
            None if after.is_empty() => "8443",
            None => return Err(Error::invalid(format!("Invalid URL: {url}"))),
        };
        (h.to_string(), port)
    } else if hostport.matches(':').count() > 1 {
        (hostport.to_string(), "8443")
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), p),
            None => (hostport.to_string(), "8443"),
        }
    };
    let port: u16 = port
        .parse()
        .map_err(|_| Error::invalid(format!("Invalid port in URL: {url}")))?;
    let name = ServerName::try_from(host.clone())
        .map_err(|_| Error::invalid(format!("Invalid host in URL: {url}")))?;
    let shown = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok((format!("https://{shown}"), shown, name))
}

/// Connects to `url` over TLS without trusting it yet and returns the server's certificate
/// (DER): what `incus remote add` shows (or compares with a token's fingerprint) before it
/// pins the certificate. `identity` is sent when given.
pub async fn fetch_server_certificate(url: &str, identity: &RemoteTls) -> Result<Vec<u8>> {
    let (_, addr, name) = authority(url)?;
    let provider = provider();
    let capture = Arc::new(ServerCheck::new(None, provider.clone()));
    let config = identity.config_with(provider, capture.clone())?;
    let tcp = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    .map_err(|_| Error::internal(format!("Timed out connecting to {addr}")))?
    .map_err(|e| Error::internal(format!("Failed to connect to {addr}: {e}")))?;
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| Error::internal(format!("TLS handshake with {addr}: {e}")))?;
    let seen = capture.seen.lock().ok().and_then(|mut s| s.take());
    seen.ok_or_else(|| Error::internal(format!("{addr} sent no certificate")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let a = |u: &str| authority(u).map(|(b, hp, _)| (b, hp));
        assert_eq!(
            a("https://127.0.0.1").unwrap(),
            ("https://127.0.0.1:8443".into(), "127.0.0.1:8443".into())
        );
        assert_eq!(
            a("https://host.example:9000/").unwrap().1,
            "host.example:9000"
        );
        assert_eq!(a("https://[::1]:8444").unwrap().1, "[::1]:8444");
        assert_eq!(a("https://[::1]").unwrap().1, "[::1]:8443");
        assert_eq!(a("https://::1").unwrap().0, "https://[::1]:8443");
        assert!(a("http://x").is_err());
        assert!(a("https://").is_err());
        assert!(a("https://u@h").is_err());
        assert!(a("https://h:99999").is_err());
    }

    #[test]
    fn configs() {
        let (cert, key) = incus_core::tls::generate(incus_core::tls::Usage::Client).unwrap();
        let tls = RemoteTls {
            client_cert: Some(cert.clone()),
            client_key: Some(key),
            server_cert: Some(cert.clone()),
        };
        assert!(tls.client_config().is_ok());
        let half = RemoteTls {
            client_cert: Some(cert),
            ..RemoteTls::default()
        };
        assert!(half.client_config().is_err());
        assert!(!format!("{tls:?}").contains("PRIVATE"));
    }
}
