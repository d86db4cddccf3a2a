//! The trust store's types: certificates and certificate add tokens.

use serde::{Deserialize, Serialize};

/// Writable fields of a trusted certificate (`CertificatePut`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CertificatePut {
    /// Name (defaults to the certificate's common name).
    pub name: String,
    /// `client` (full API) or `metrics` (metrics only).
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether the client sees only `projects`.
    pub restricted: bool,
    /// The projects a restricted client may use.
    #[serde(deserialize_with = "super::null_default")]
    pub projects: Vec<String>,
    /// The certificate itself, PEM (or base64 DER on input).
    pub certificate: String,
    /// Description.
    pub description: String,
}

/// A trusted certificate (`Certificate`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Certificate {
    /// Writable fields.
    #[serde(flatten)]
    pub put: CertificatePut,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub fingerprint: String,
}

/// Adding a certificate (`CertificatesPost`): a certificate, the caller's own TLS certificate
/// with a `trust_token`, or (`token: true`) a request for a token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CertificatesPost {
    /// Writable fields.
    #[serde(flatten)]
    pub put: CertificatePut,
    /// A token issued earlier (untrusted callers).
    pub trust_token: String,
    /// Issue a token instead of adding a certificate.
    pub token: bool,
}

/// What a certificate add token carries (`CertificateAddToken`), sent base64-encoded JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CertificateAddToken {
    /// The name the client will be trusted under.
    pub client_name: String,
    /// SHA-256 fingerprint of the server's certificate (the client pins it).
    pub fingerprint: String,
    /// Addresses the server listens on.
    #[serde(deserialize_with = "super::null_default")]
    pub addresses: Vec<String>,
    /// The single-use secret.
    pub secret: String,
    /// Expiry (absent or zero time: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl CertificateAddToken {
    /// The token as users pass it around: base64 of its JSON.
    pub fn encode(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// The token a `token` operation stands for (its metadata: `fingerprint`, `addresses`,
    /// `secret`, `expiresAt`), for client `name`.
    pub fn from_operation(
        name: &str,
        metadata: &serde_json::Map<String, serde_json::Value>,
    ) -> CertificateAddToken {
        let text = |k: &str| {
            metadata
                .get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        CertificateAddToken {
            client_name: name.to_string(),
            fingerprint: text("fingerprint"),
            addresses: metadata
                .get("addresses")
                .and_then(|a| serde_json::from_value(a.clone()).ok())
                .unwrap_or_default(),
            secret: text("secret"),
            expires_at: text("expiresAt").parse().ok(),
        }
    }

    /// Decodes a token; `None` when it is not one.
    pub fn decode(token: &str) -> Option<CertificateAddToken> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(token.trim())
            .ok()?;
        let t: CertificateAddToken = serde_json::from_slice(&raw).ok()?;
        (!t.secret.is_empty() && !t.fingerprint.is_empty()).then_some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trip_and_garbage() {
        let t = CertificateAddToken {
            client_name: "laptop".into(),
            fingerprint: "ab".repeat(32),
            addresses: vec!["127.0.0.1:8443".into()],
            secret: "cd".repeat(32),
            expires_at: None,
        };
        assert_eq!(CertificateAddToken::decode(&t.encode()), Some(t));
        assert_eq!(CertificateAddToken::decode("not base64!"), None);
        assert_eq!(CertificateAddToken::decode("e30="), None); // "{}"
    }

    #[test]
    fn put_fields_as_incus_names_them() {
        let c: CertificatesPost =
            serde_json::from_str(r#"{"name":"n","type":"client","token":true,"projects":null}"#)
                .unwrap();
        assert!(c.token && c.put.kind == "client" && c.put.projects.is_empty());
    }
}
