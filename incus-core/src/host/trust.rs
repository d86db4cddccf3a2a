//! The trust store (`/1.0/certificates`): client certificates trusted by SHA-256
//! fingerprint, optionally restricted to projects, and single-use certificate add tokens.
//!
//! Certificates live in the `certificates` table and in an in-memory map the HTTPS listener
//! consults on every request. Tokens are `token`-class operations (as in Incus: listing
//! operations shows them, cancelling one revokes it); their secrets are kept beside them and
//! compared in constant time, and redeeming one removes it atomically, so two clients racing
//! with the same token cannot both get in.

use super::Host;
use super::db::Table;
use crate::api;
use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};

/// Server config key: how long certificate add tokens stay valid (Incus expiry syntax,
/// e.g. `1d 2H`); empty means until used or revoked.
pub const TOKEN_EXPIRY_KEY: &str = "core.remote_token_expiry";

/// An outstanding certificate add token.
struct Token {
    secret: String,
    request: api::CertificatePut,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The in-memory half of the trust store.
#[derive(Default)]
pub(crate) struct Trust {
    certs: RwLock<HashMap<String, Arc<api::Certificate>>>,
    /// Outstanding tokens by operation id.
    tokens: Mutex<HashMap<String, Token>>,
}

impl Trust {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<api::Certificate>>> {
        self.certs
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<api::Certificate>>> {
        self.certs
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, Token>> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Constant-time equality of two secrets (the length is not hidden).
pub fn secrets_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub use crate::tls::{certificate_der, certificate_pem, fingerprint};

/// Parses `der` as an X.509 certificate that is valid now; returns its common name.
fn validate(der: &[u8]) -> Result<String> {
    let info = crate::tls::describe(der)?;
    if !info.valid_now {
        return Err(Error::invalid("Certificate is expired or not yet valid"));
    }
    Ok(info.common_name)
}

fn check_put(put: &api::CertificatePut) -> Result<()> {
    if !matches!(put.kind.as_str(), "client" | "metrics") {
        return Err(Error::invalid(format!(
            "Invalid certificate type {:?}: use \"client\" or \"metrics\"",
            put.kind
        )));
    }
    if put.name.len() > 255 || put.name.chars().any(char::is_control) {
        return Err(Error::invalid("Invalid certificate name"));
    }
    if put.description.len() > 4096 {
        return Err(Error::invalid("Certificate description too long"));
    }
    Ok(())
}

impl Host {
    /// Loads the trust store into memory (engine start).
    pub(crate) fn load_trust(&self) -> Result<()> {
        let certs = self
            .inner
            .db
            .list::<api::Certificate>(Table::Certificates, Some(""))?;
        *self.inner.trust.write() = certs
            .into_iter()
            .map(|(_, c)| (c.fingerprint.clone(), Arc::new(c)))
            .collect();
        Ok(())
    }

    /// Every trusted certificate, by name.
    pub fn list_certificates(&self) -> Vec<api::Certificate> {
        let mut v: Vec<api::Certificate> = self
            .inner
            .trust
            .read()
            .values()
            .map(|c| api::Certificate::clone(c))
            .collect();
        v.sort_by(|a, b| (&a.put.name, &a.fingerprint).cmp(&(&b.put.name, &b.fingerprint)));
        v
    }

    /// The certificate whose fingerprint is `fingerprint` or starts with it (unambiguously).
    pub fn get_certificate(&self, fingerprint: &str) -> Result<api::Certificate> {
        let fp = fingerprint.to_ascii_lowercase();
        let certs = self.inner.trust.read();
        let mut found = certs
            .values()
            .filter(|c| !fp.is_empty() && c.fingerprint.starts_with(&fp));
        match (found.next(), found.next()) {
            (Some(c), None) => Ok(api::Certificate::clone(c)),
            (Some(_), Some(_)) => Err(Error::invalid(format!(
                "More than one certificate matches {fingerprint:?}"
            ))),
            (None, _) => Err(Error::not_found("Certificate not found")),
        }
    }

    /// The trusted certificate with exactly this fingerprint (the per-request check: shared,
    /// not copied).
    pub fn trusted_certificate(&self, fingerprint: &str) -> Option<Arc<api::Certificate>> {
        self.inner.trust.read().get(fingerprint).cloned()
    }

    /// Adds a certificate: `put.certificate` (PEM or base64 DER), else `peer_der` (the
    /// caller's own TLS client certificate). The name defaults to the common name.
    pub fn add_certificate(
        &self,
        mut put: api::CertificatePut,
        peer_der: Option<&[u8]>,
    ) -> Result<api::Certificate> {
        if put.kind.is_empty() {
            put.kind = "client".into();
        }
        check_put(&put)?;
        let der = match (put.certificate.trim().is_empty(), peer_der) {
            (false, _) => certificate_der(&put.certificate)?,
            (true, Some(d)) => d.to_vec(),
            (true, None) => return Err(Error::invalid("No client certificate provided")),
        };
        let cn = validate(&der)?;
        if put.name.is_empty() {
            put.name = cn;
        }
        if !put.restricted {
            put.projects.clear();
        }
        for p in &put.projects {
            self.get_project(p)?;
        }
        put.certificate = certificate_pem(&der);
        let cert = api::Certificate {
            fingerprint: fingerprint(&der),
            put,
        };
        if self.trusted_certificate(&cert.fingerprint).is_some() {
            return Err(Error::already_exists("Certificate already in trust store"));
        }
        self.inner
            .db
            .insert(Table::Certificates, "", &cert.fingerprint, &cert)?;
        self.inner
            .trust
            .write()
            .insert(cert.fingerprint.clone(), Arc::new(cert.clone()));
        self.inner.events.lifecycle(
            "certificate-created",
            &format!("/1.0/certificates/{}", cert.fingerprint),
            "",
            None,
        );
        Ok(cert)
    }

    /// Replaces a certificate's writable fields (the certificate itself cannot change).
    pub fn update_certificate(&self, fingerprint: &str, put: api::CertificatePut) -> Result<()> {
        let mut cert = self.get_certificate(fingerprint)?;
        check_put(&put)?;
        if !put.certificate.trim().is_empty()
            && self::fingerprint(&certificate_der(&put.certificate)?) != cert.fingerprint
        {
            return Err(Error::invalid("The certificate itself cannot be changed"));
        }
        for p in &put.projects {
            self.get_project(p)?;
        }
        let pem = std::mem::take(&mut cert.put.certificate);
        cert.put = api::CertificatePut {
            certificate: pem,
            projects: if put.restricted {
                put.projects
            } else {
                Vec::new()
            },
            ..put
        };
        self.inner
            .db
            .update(Table::Certificates, "", &cert.fingerprint, &cert)?;
        let fp = cert.fingerprint.clone();
        self.inner.trust.write().insert(fp.clone(), Arc::new(cert));
        self.inner.events.lifecycle(
            "certificate-updated",
            &format!("/1.0/certificates/{fp}"),
            "",
            None,
        );
        Ok(())
    }

    /// Removes a certificate from the trust store.
    pub fn delete_certificate(&self, fingerprint: &str) -> Result<()> {
        let cert = self.get_certificate(fingerprint)?;
        self.inner
            .db
            .delete(Table::Certificates, "", &cert.fingerprint)?;
        self.inner.trust.write().remove(&cert.fingerprint);
        self.inner.events.lifecycle(
            "certificate-deleted",
            &format!("/1.0/certificates/{}", cert.fingerprint),
            "",
            None,
        );
        Ok(())
    }

    /// Issues a certificate add token for `request` (a `token`-class operation in the default
    /// project, as Incus) carrying the server's certificate fingerprint and addresses. It
    /// lasts until redeemed, revoked (the operation cancelled) or `core.remote_token_expiry`.
    pub fn issue_trust_token(
        &self,
        mut request: api::CertificatePut,
        server_fingerprint: &str,
        addresses: Vec<String>,
    ) -> Result<super::ops::Operation> {
        if request.kind.is_empty() {
            request.kind = "client".into();
        }
        if request.kind != "client" {
            return Err(Error::invalid(
                "Tokens can only be issued for client certificates",
            ));
        }
        if !request.certificate.is_empty() {
            return Err(Error::invalid(
                "Can't use certificate if token is requested",
            ));
        }
        check_put(&request)?;
        for p in &request.projects {
            self.get_project(p)?;
        }
        let expiry = self
            .server_config()?
            .get(TOKEN_EXPIRY_KEY)
            .filter(|v| !v.trim().is_empty())
            .map(|v| crate::config::parse_expiry(v))
            .transpose()?;
        let expires_at = expiry.map(|d| chrono::Utc::now() + d);
        let secret = random_secret();
        let mut meta = serde_json::Map::new();
        meta.insert("secret".into(), secret.clone().into());
        meta.insert("fingerprint".into(), server_fingerprint.into());
        meta.insert("addresses".into(), addresses.into());
        meta.insert(
            "request".into(),
            serde_json::to_value(api::CertificatesPost {
                put: request.clone(),
                trust_token: String::new(),
                token: true,
            })
            .unwrap_or_default(),
        );
        if let Some(at) = expires_at {
            meta.insert(
                "expiresAt".into(),
                serde_json::to_value(at).unwrap_or_default(),
            );
        }
        let host = self.clone();
        let op = self.inner.ops.spawn_class(
            super::DEFAULT_PROJECT,
            "token",
            "Certificate add token",
            BTreeMap::new(),
            Some(meta),
            true,
            move |ctx| async move {
                let id = ctx.id();
                let left = expires_at
                    .map(|at| (at - chrono::Utc::now()).to_std().unwrap_or_default())
                    .unwrap_or(std::time::Duration::MAX);
                let expired = tokio::select! {
                    _ = ctx.cancelled() => false,
                    _ = tokio::time::sleep(left) => true,
                };
                host.inner.trust.tokens().remove(&id);
                Err(if expired {
                    Error::cancelled("Token has expired")
                } else {
                    Error::cancelled("Token was used or revoked")
                })
            },
        );
        self.inner.trust.tokens().insert(
            op.id(),
            Token {
                secret,
                request,
                expires_at,
            },
        );
        Ok(op)
    }

    /// Redeems a certificate add token: the request it was issued for, once. `Forbidden` when
    /// no outstanding token matches or it expired.
    pub fn redeem_trust_token(&self, token: &str) -> Result<api::CertificatePut> {
        let decoded = api::CertificateAddToken::decode(token)
            .ok_or_else(|| Error::forbidden("Invalid trust token"))?;
        let (id, t) = {
            let mut tokens = self.inner.trust.tokens();
            // Every entry is compared so the time taken does not depend on which matched.
            let mut hit = None;
            for (id, t) in tokens.iter() {
                if secrets_equal(&t.secret, &decoded.secret) {
                    hit = Some(id.clone());
                }
            }
            let id =
                hit.ok_or_else(|| Error::forbidden("No matching certificate add operation found"))?;
            let t = tokens
                .remove(&id)
                .ok_or_else(|| Error::forbidden("No matching certificate add operation found"))?;
            (id, t)
        };
        if let Ok(op) = self.inner.ops.get(&id) {
            let _ = op.cancel();
        }
        if t.expires_at.is_some_and(|at| chrono::Utc::now() > at) {
            return Err(Error::forbidden("Token has expired"));
        }
        Ok(t.request)
    }
}

/// A fresh random secret: 64 hex digits (244 random bits from the kernel's generator).
pub fn random_secret() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_time_compare() {
        assert!(secrets_equal("abc", "abc"));
        assert!(!secrets_equal("abc", "abd"));
        assert!(!secrets_equal("abc", "abcd"));
        assert!(!secrets_equal("", "a"));
    }

    #[test]
    fn der_from_base64_and_garbage() {
        assert_eq!(certificate_der("AQID").unwrap(), vec![1, 2, 3]);
        assert!(
            certificate_der("-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----").is_err()
        );
        assert!(validate(&[1, 2, 3]).is_err());
    }

    #[test]
    fn pem_round_trip() {
        let der: Vec<u8> = (0..200u8).collect();
        assert_eq!(certificate_der(&certificate_pem(&der)).unwrap(), der);
    }
}
