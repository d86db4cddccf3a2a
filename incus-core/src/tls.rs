//! Certificates as Incus makes and names them: SHA-256 fingerprints, and the self-signed
//! ECDSA P-384 key pairs the daemon (`server.crt`) and the client (`client.crt`, in the
//! client configuration directory) create on first use.

use crate::error::{Error, Result};
use std::path::Path;

/// The SHA-256 fingerprint of a DER certificate, lower-case hex (how Incus names
/// certificates).
pub fn fingerprint(der: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(der))
}

/// A DER certificate as PEM (64-column base64 between `CERTIFICATE` markers).
pub fn certificate_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// The DER bytes of a certificate given as PEM or as base64 DER (both accepted by Incus).
pub fn certificate_der(text: &str) -> Result<Vec<u8>> {
    let bad = |why: String| Error::invalid(format!("Invalid certificate material: {why}"));
    let text = text.trim();
    if text.starts_with("-----BEGIN") {
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(text.as_bytes()).map_err(|e| bad(e.to_string()))?;
        if pem.label != "CERTIFICATE" {
            return Err(bad(format!("a PEM block of type {:?}", pem.label)));
        }
        return Ok(pem.contents);
    }
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text.split_whitespace().collect::<String>())
        .map_err(|e| bad(e.to_string()))
}

/// What `incus config trust list` shows of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The subject's common name (empty when it has none).
    pub common_name: String,
    /// Start of validity, seconds since the epoch.
    pub not_before: i64,
    /// End of validity, seconds since the epoch.
    pub not_after: i64,
    /// Whether it is valid at this moment.
    pub valid_now: bool,
}

/// Parses `der` as one X.509 certificate (nothing after it).
pub fn describe(der: &[u8]) -> Result<CertificateInfo> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| Error::invalid(format!("Invalid certificate material: {e}")))?;
    if !rest.is_empty() {
        return Err(Error::invalid(
            "Invalid certificate material: trailing data",
        ));
    }
    let validity = cert.validity();
    Ok(CertificateInfo {
        common_name: cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_string(),
        not_before: validity.not_before.timestamp(),
        not_after: validity.not_after.timestamp(),
        valid_now: validity.is_valid(),
    })
}

/// What a generated certificate is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// A server's (`server.crt`): names the host, `localhost`, 127.0.0.1 and ::1.
    Server,
    /// A client's (`client.crt`): TLS client authentication.
    Client,
}

/// The host name (`/proc/sys/kernel/hostname`), or `localhost`.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// A new self-signed ECDSA P-384 certificate `CN=root@<hostname>, O=Linux Containers` (as
/// Incus makes them) and its private key, both PEM.
pub fn generate(usage: Usage) -> Result<(String, String)> {
    let tls = |e: rcgen::Error| Error::internal(format!("generating a certificate: {e}"));
    let host = hostname();
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).map_err(tls)?;
    let names = match usage {
        Usage::Server => vec![host.clone(), "localhost".into()],
        Usage::Client => Vec::new(),
    };
    let mut params = rcgen::CertificateParams::new(names).map_err(tls)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, format!("root@{host}"));
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "Linux Containers");
    // Valid for ten years, as Incus's; from yesterday, so a peer whose clock is a little
    // behind does not see it as not yet valid.
    {
        use chrono::Datelike;
        let now = chrono::Utc::now();
        let from = now - chrono::Duration::days(1);
        let month = |d: &chrono::DateTime<chrono::Utc>| u8::try_from(d.month()).unwrap_or(1);
        let day = |d: &chrono::DateTime<chrono::Utc>| u8::try_from(d.day().min(28)).unwrap_or(1);
        params.not_before = rcgen::date_time_ymd(from.year(), month(&from), day(&from));
        params.not_after = rcgen::date_time_ymd(now.year() + 10, month(&now), day(&now));
    }
    match usage {
        Usage::Server => {
            for ip in [
                std::net::IpAddr::from([127, 0, 0, 1]),
                std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ] {
                params.subject_alt_names.push(rcgen::SanType::IpAddress(ip));
            }
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        }
        Usage::Client => {
            params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        }
    }
    let cert = params.self_signed(&pair).map_err(tls)?;
    Ok((cert.pem(), pair.serialize_pem()))
}

/// Loads the pair at `crt`/`key`, generating and writing it first when either is missing
/// (the key with mode 0600, the certificate 0644). Returns both PEM texts.
pub fn load_or_create(crt: &Path, key: &Path, usage: Usage) -> Result<(String, String)> {
    if !crt.exists() || !key.exists() {
        let (cert_pem, key_pem) = generate(usage)?;
        write(key, &key_pem, 0o600)?;
        write(crt, &cert_pem, 0o644)?;
    }
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| Error::io(p.display(), e));
    Ok((read(crt)?, read(key)?))
}

fn write(path: &Path, text: &str, mode: u32) -> Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    opts.mode(mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(|e| Error::io(path.display(), e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| Error::io(path.display(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_pairs_that_load_back() {
        let dir = tempfile::tempdir().unwrap();
        let (crt, key) = (dir.path().join("c.crt"), dir.path().join("c.key"));
        let (c1, k1) = load_or_create(&crt, &key, Usage::Client).unwrap();
        assert!(c1.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(k1.contains("PRIVATE KEY"));
        // A second call loads, it does not regenerate.
        let (c2, _) = load_or_create(&crt, &key, Usage::Client).unwrap();
        assert_eq!(c1, c2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(fingerprint(b"abc").len(), 64);
        let der = certificate_der(&c1).unwrap();
        let info = describe(&der).unwrap();
        assert!(info.common_name.starts_with("root@"));
        assert!(info.valid_now && info.not_before < info.not_after);
        assert_eq!(certificate_pem(&der).trim(), c1.trim());
        assert!(describe(b"junk").is_err());
    }
}
