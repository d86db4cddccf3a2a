//! # incus-daemon
//!
//! `incusd`: serves the `incus_core::host::Host` engine over the Incus REST API 1.0 on a unix
//! socket. Routes are thin: each parses its input, calls one `Host` method and renders the
//! Incus envelope. The websocket plumbing (events, exec streams) lives here.
//!
//! The endpoints served (server, events, operations, instances with exec/files/console/
//! snapshots/backups/metadata, images and aliases, profiles, projects, storage pools and
//! volumes, networks, warnings, resources) and their limits are listed in `docs/daemon.md`;
//! anything else answers 404 like an unknown endpoint.
//!
//! [`local`] serves the same router in-process, without a socket, for programs that embed the
//! engine (the Python module's `incus.Host`), with the daemon's event filter and housekeeping.

mod encoding;
pub mod local;
pub mod response;
mod routes;

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
}

impl Daemon {
    /// A daemon serving `host`.
    pub fn new(host: Host) -> Arc<Daemon> {
        Arc::new(Daemon {
            host,
            sessions: Mutex::new(HashMap::new()),
        })
    }
}

/// The API router.
pub fn router(daemon: Arc<Daemon>) -> Router {
    routes::router()
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
