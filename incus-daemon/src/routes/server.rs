//! `/` and `/1.0`.

use super::{Q, St};
use crate::auth::Access;
use crate::response::{ApiError, ApiResult, parse, sync, sync_empty};
use axum::Extension;
use axum::body::Bytes;
use incus_core::api;
use incus_core::error::Error;

/// API extensions this daemon implements (and only those).
pub const EXTENSIONS: &[&str] = &[
    "container_last_used_at",
    "container_exec_signal_handling",
    "container_full",
    "profile_usedby",
    "projects",
    "instances",
    "instance_get_full",
    "instance_all_projects",
    "api_filtering",
    "instance_create_start",
    "etag",
    "patch",
    "storage",
    "file_delete",
    "file_append",
    "directory_manipulation",
    "file_symlinks",
    "network",
    "warnings",
    "container_only_migration",
    "container_edit_metadata",
    "container_exec_recording",
    "resources",
    "resources_v2",
    "console",
    "storage_api_volume_rename",
    "storage_api_local_volume_handling",
    "storage_api_volume_snapshots",
    "custom_volume_snapshot_expiry",
    "storage_volume_state",
    "storage_api_project",
    "storage_volume_project_move",
    "storage_volume_state_total",
    "storage_volumes_created_at",
    "container_backup",
    "backup_compression",
    "backup_compression_algorithm",
    "backup_override_name",
    "container_backup_override_pool",
    "custom_volume_backup",
    "snapshot_scheduling",
    "snapshot_schedule_aliases",
    "snapshot_expiry",
    "snapshot_expiry_creation",
    "volume_snapshot_scheduling",
    "instance_pool_move",
    "network_state",
    "network_leases",
    "certificate_update",
    "certificate_project",
    "certificate_token",
    "certificate_description",
    "remote_token_expiry",
    "auth_user",
];

pub(crate) async fn root() -> ApiResult {
    sync(&["/1.0"])
}

pub(crate) async fn not_found() -> ApiError {
    ApiError(Error::not_found("not found"))
}

pub(crate) async fn get(st: St, Extension(access): Extension<Access>, _q: Q) -> ApiResult {
    let host = &st.host;
    let mut untrusted = api::ServerUntrusted {
        put: api::ServerPut::default(),
        api_extensions: EXTENSIONS.iter().map(|s| s.to_string()).collect(),
        api_status: "stable".into(),
        api_version: "1.0".into(),
        auth: "untrusted".into(),
        public: false,
        auth_methods: vec!["tls".into()],
    };
    if !access.trusted() {
        // What a stranger may know: the API version and extensions, nothing of the host.
        return sync(&untrusted);
    }
    untrusted.auth = "trusted".into();
    let mut config = host.server_config()?;
    if access.projects().is_some() {
        // Restricted clients do not see the server's configuration.
        config.clear();
    }
    untrusted.put.config = config;
    let (certificate, certificate_fingerprint, addresses) = match st.https.address().await {
        Some(addr) => {
            let cert = st.https.cert(host.state_dir())?;
            (
                cert.pem.clone(),
                cert.fingerprint.clone(),
                crate::https::client_addresses(addr),
            )
        }
        None => Default::default(),
    };
    let (auth_user_name, auth_user_method) = access.user();
    let uname = nix::sys::utsname::uname().map_err(|e| Error::internal(e.to_string()))?;
    let server = api::Server {
        untrusted,
        auth_user_name,
        auth_user_method: auth_user_method.into(),
        environment: api::ServerEnvironment {
            addresses,
            certificate,
            certificate_fingerprint,
            architectures: vec![uname.machine().to_string_lossy().into_owned()],
            driver: "lxc".into(),
            driver_version: incus_core::host::lxc::helper::lxc_version(),
            firewall: "nftables".into(),
            kernel: uname.sysname().to_string_lossy().into_owned(),
            kernel_architecture: uname.machine().to_string_lossy().into_owned(),
            kernel_version: uname.release().to_string_lossy().into_owned(),
            os_name: "Linux".into(),
            project: "default".into(),
            server: "incus".into(),
            server_event_mode: "full-mesh".into(),
            server_name: uname.nodename().to_string_lossy().into_owned(),
            server_pid: i64::from(std::process::id()),
            server_version: "6.0.4".into(),
            storage: "dir".into(),
            storage_version: "1".into(),
            storage_supported_drivers: vec![api::ServerStorageDriverInfo {
                name: "dir".into(),
                version: "1".into(),
                remote: false,
            }],
            ..Default::default()
        },
    };
    sync(&server)
}

pub(crate) async fn put(st: St, body: Bytes) -> ApiResult {
    let put: api::ServerPut = parse(&body)?;
    write_config(&st, put.config).await
}

pub(crate) async fn patch(st: St, body: Bytes) -> ApiResult {
    let put: api::ServerPut = parse(&body)?;
    let mut config = st.host.server_config()?;
    config.extend(put.config);
    write_config(&st, config).await
}

/// Stores the new server config; a changed `core.https_address` is listened on first (so an
/// address that cannot be bound is refused and nothing changes) when this daemon serves
/// HTTPS.
async fn write_config(st: &St, config: api::ConfigMap) -> ApiResult {
    let key = "core.https_address";
    let old = st
        .host
        .server_config()?
        .get(key)
        .cloned()
        .unwrap_or_default();
    let new = config.get(key).cloned().unwrap_or_default();
    let listen = old != new && st.https.enabled.load(std::sync::atomic::Ordering::SeqCst);
    if listen {
        crate::https::set_https_address(st, &new).await?;
    }
    if let Err(e) = st.host.update_server_config(config) {
        if listen {
            let _ = crate::https::set_https_address(st, &old).await;
        }
        return Err(e.into());
    }
    sync_empty()
}

pub(crate) async fn resources(st: St) -> ApiResult {
    sync(&st.host.resources()?)
}

/// `GET /1.0/warnings`: this engine records no warnings yet, so the list is empty.
pub(crate) async fn warnings(_q: Q) -> ApiResult {
    sync(&Vec::<api::Warning>::new())
}
