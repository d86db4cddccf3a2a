//! # incus-daemon
//!
//! `incusd`: serves the `incus_core::host::Host` engine over the Incus REST API 1.0 on a unix
//! socket and, when `core.https_address` is set, over HTTPS with TLS client certificates
//! checked against the trust store ([`https`], [`tls`], [`auth`]). Routes are thin: each parses its input, calls one `Host` method and renders the
//! Incus envelope. The websocket plumbing (events, exec streams) lives here.
//!
//! The endpoints served (server, events, operations, instances with exec/files/console/
//! snapshots/backups/metadata, images and aliases, profiles, projects, storage pools and
//! volumes, networks, warnings, resources) and their limits are listed in `docs/daemon.md`;
//! anything else answers 404 like an unknown endpoint.
//!
//! [`local`] serves the same router in-process, without a socket, for programs that embed the
//! engine (the Python module's `incus.Host`), with the daemon's event filter and housekeeping.

pub mod auth;
mod encoding;
pub mod fuzzing;
pub mod https;
pub mod local;
pub mod response;
mod routes;
pub mod tls;

use axum::Router;
use incus_core::host::Host;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// The daemon's shared state.
pub struct Daemon {
    /// The engine.
    pub host: Host,
    /// Websocket sessions of running websocket operations, by operation id.
    pub(crate) sessions: Mutex<HashMap<String, Arc<routes::exec::Session>>>,
    /// The HTTPS listener and the server certificate.
    pub(crate) https: https::Https,
}

impl Daemon {
    /// A daemon serving `host`.
    pub fn new(host: Host) -> Arc<Daemon> {
        Arc::new(Daemon {
            host,
            sessions: Mutex::new(HashMap::new()),
            https: Default::default(),
        })
    }

    /// Lets this daemon listen for HTTPS: from now on `core.https_address` is honoured (at
    /// once, and whenever it changes). `incusd` calls this; an embedded engine does not, and
    /// then only stores the key.
    pub async fn enable_https(self: &Arc<Self>) -> incus_core::error::Result<()> {
        self.https
            .enabled
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let address = self
            .host
            .server_config()?
            .get("core.https_address")
            .cloned()
            .unwrap_or_default();
        https::set_https_address(self, &address).await
    }
}

/// The API router.
pub fn router(daemon: Arc<Daemon>) -> Router {
    routes::router()
        .layer(axum::middleware::from_fn_with_state(
            daemon.clone(),
            auth::authorize,
        ))
        .with_state(daemon)
        .layer(axum::middleware::from_fn(encoding::decode))
        .layer(axum::middleware::map_response(response::envelope_errors))
}

/// Serves the API on the unix socket at `path` (mode 0660, owned by `group` when given,
/// replacing a stale socket) until `shutdown` resolves.
pub async fn serve_unix(
    daemon: Arc<Daemon>,
    path: &Path,
    group: Option<&str>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let gid = match group {
        Some(g) => Some(
            nix::unistd::Group::from_name(g)
                .map_err(std::io::Error::other)?
                .ok_or_else(|| std::io::Error::other(format!("no group named {g:?}")))?
                .gid,
        ),
        None => None,
    };
    let _ = std::fs::remove_file(path);
    let listener = tokio::net::UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    if let Some(gid) = gid {
        nix::unistd::chown(path, None, Some(gid)).map_err(std::io::Error::other)?;
    }
    axum::serve(listener, router(daemon))
        .with_graceful_shutdown(shutdown)
        .await
}
