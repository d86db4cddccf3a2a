//! The client configuration (`$INCUS_CONF/config.yml`, else `~/.config/incus/config.yml`):
//! remotes, the default remote and each remote's current project, in the file format the
//! Incus client uses, so both clients share it. Beside it, as Incus keeps them: the client's
//! own certificate (`client.crt`, `client.key`) and each HTTPS remote's pinned server
//! certificate (`servercerts/<remote>.crt`).

use crate::CliError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One remote.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Remote {
    /// `unix://` (the local socket), `unix:///path/to/socket` or `https://host:port`.
    pub addr: String,
    /// `tls` for HTTPS remotes (client certificates); empty for unix sockets.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_type: String,
    /// Kept as the Incus client wrote it (connection keep-alive; not used here).
    #[serde(skip_serializing_if = "is_zero")]
    pub keepalive: u64,
    /// The project commands use.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub project: String,
    /// Protocol (`incus`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// Whether it is a public image server.
    pub public: bool,
    /// Keys this client does not know, kept so a rewrite loses nothing.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The whole file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// The remote used when a name has no `remote:` prefix.
    #[serde(rename = "default-remote")]
    pub default_remote: String,
    /// Remotes by name.
    pub remotes: BTreeMap<String, Remote>,
    /// Command aliases (kept, not used yet).
    pub aliases: BTreeMap<String, String>,
}

impl Default for Config {
    fn default() -> Self {
        let mut remotes = BTreeMap::new();
        remotes.insert(
            "local".to_string(),
            Remote {
                addr: "unix://".into(),
                protocol: "incus".into(),
                ..Remote::default()
            },
        );
        Config {
            default_remote: "local".into(),
            remotes,
            aliases: BTreeMap::new(),
        }
    }
}

/// The configuration directory.
pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("INCUS_CONF").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".config/incus")
}

/// The client certificate and key (`client.crt`, `client.key`).
pub fn client_cert_paths() -> (PathBuf, PathBuf) {
    let d = dir();
    (d.join("client.crt"), d.join("client.key"))
}

/// Where remote `name`'s server certificate is pinned.
pub fn server_cert_path(name: &str) -> PathBuf {
    dir().join("servercerts").join(format!("{name}.crt"))
}

/// Whether a remote is built in (`local`): it can be neither removed nor changed.
pub fn is_static(name: &str) -> bool {
    name == "local"
}

/// Makes the client certificate when there is none yet (telling the user, as Incus does).
pub fn ensure_client_certificate(quiet: bool) -> Result<(), CliError> {
    let (crt, key) = client_cert_paths();
    if crt.exists() && key.exists() {
        return Ok(());
    }
    if !quiet {
        eprintln!("Generating a client certificate. This may take a minute...");
    }
    std::fs::create_dir_all(dir())?;
    incus_core::tls::load_or_create(&crt, &key, incus_core::tls::Usage::Client)?;
    Ok(())
}

/// How to reach HTTPS remote `name`: the client certificate (when there is one) and the
/// pinned server certificate (when one is pinned; otherwise the system's authorities).
pub fn remote_tls(name: &str) -> Result<incus_client::RemoteTls, CliError> {
    let read = |p: &std::path::Path| -> Result<Option<String>, CliError> {
        match std::fs::read_to_string(p) {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(CliError::msg(format!("{}: {e}", p.display()))),
        }
    };
    let (crt, key) = client_cert_paths();
    let (client_cert, client_key) = match (read(&crt)?, read(&key)?) {
        (Some(c), Some(k)) => (Some(c), Some(k)),
        _ => (None, None),
    };
    Ok(incus_client::RemoteTls {
        client_cert,
        client_key,
        server_cert: read(&server_cert_path(name))?,
    })
}

impl Config {
    /// Loads the file, or the defaults when it does not exist.
    pub fn load() -> Result<Config, CliError> {
        let path = dir().join("config.yml");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut c: Config = serde_saphyr::from_str(&text).map_err(|e| {
                    CliError::msg(format!("Invalid configuration {}: {e}", path.display()))
                })?;
                c.remotes.entry("local".into()).or_insert(Remote {
                    addr: "unix://".into(),
                    ..Remote::default()
                });
                if c.default_remote.is_empty() {
                    c.default_remote = "local".into();
                }
                Ok(c)
            }
            Err(_) => Ok(Config::default()),
        }
    }

    /// Writes the file.
    pub fn save(&self) -> Result<(), CliError> {
        let d = dir();
        std::fs::create_dir_all(&d).map_err(|e| CliError::msg(format!("{}: {e}", d.display())))?;
        let text = crate::format::to_yaml(self)?;
        // Written whole, then renamed: an interrupted save leaves the old file.
        let tmp = d.join(format!(".config.yml.{}", std::process::id()));
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, d.join("config.yml")))
            .map_err(|e| {
                let _ = std::fs::remove_file(&tmp);
                CliError::msg(format!("{}: {e}", d.display()))
            })
    }

    /// Splits `remote:rest` when `remote` names a remote; otherwise the default remote.
    pub fn split<'a>(&self, arg: &'a str) -> (String, &'a str) {
        if let Some((r, rest)) = arg.split_once(':')
            && self.remotes.contains_key(r)
        {
            return (r.to_string(), rest);
        }
        (self.default_remote.clone(), arg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_this_client_does_not_know_survive_a_rewrite() {
        let text = "default-remote: srv\nremotes:\n  srv:\n    addr: https://10.0.0.1:8443\n    auth_type: tls\n    credentials_helper: /bin/helper\n    protocol: incus\n    public: false\naliases: {}\n";
        let c: Config = serde_saphyr::from_str(text).expect("parse");
        assert_eq!(c.remotes["srv"].auth_type, "tls");
        let out = crate::format::to_yaml(&c).expect("yaml");
        assert!(out.contains("credentials_helper: /bin/helper"), "{out}");
        assert!(out.contains("auth_type: tls"), "{out}");
        assert!(!out.contains("keepalive"), "{out}");
    }
}
