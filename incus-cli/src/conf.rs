//! The client configuration (`$INCUS_CONF/config.yml`, else `~/.config/incus/config.yml`):
//! remotes, the default remote and each remote's current project, in the file format the
//! Incus client uses, so both clients share it.

use crate::CliError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One remote.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Remote {
    /// `unix://` (the local socket) or `unix:///path/to/socket`; HTTPS remotes come later.
    pub addr: String,
    /// The project commands use.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub project: String,
    /// Protocol (`incus`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    /// Whether it is a public image server.
    pub public: bool,
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
                project: String::new(),
                protocol: "incus".into(),
                public: false,
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
        std::fs::write(d.join("config.yml"), text)
            .map_err(|e| CliError::msg(format!("{}: {e}", d.display())))
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
