//! Route table and the small helpers every handler shares.

mod certificates;
mod console;
pub(crate) mod exec;
pub(crate) mod files;
mod images;
pub(crate) mod instances;
mod metadata;
mod misc;
mod networks;
mod operations;
mod server;
mod volumes;

use crate::Daemon;
use axum::Router;
use axum::routing::get;
use std::collections::HashMap;
use std::sync::Arc;

/// The largest image upload accepted (bytes).
const IMAGE_UPLOAD_LIMIT: usize = 64 << 30;

pub(crate) type St = axum::extract::State<Arc<Daemon>>;
pub(crate) type Q = axum::extract::Query<HashMap<String, String>>;

/// The `project` query parameter (default `default`).
pub(crate) fn project(q: &HashMap<String, String>) -> String {
    q.get("project")
        .filter(|p| !p.is_empty())
        .cloned()
        .unwrap_or_else(|| "default".into())
}

/// The `recursion` query parameter (0 when absent or invalid).
pub(crate) fn recursion(q: &HashMap<String, String>) -> u8 {
    q.get("recursion").and_then(|r| r.parse().ok()).unwrap_or(0)
}

/// The value of an `X-Incus-<name>` header (or its `X-LXD-` spelling), trimmed.
pub(crate) fn incus_header(h: &axum::http::HeaderMap, name: &str) -> Option<String> {
    h.get(format!("x-incus-{name}"))
        .or_else(|| h.get(format!("x-lxd-{name}")))
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim().to_string())
}

/// Streams a request body into a new file at `path` (never held in memory); on failure the
/// file is removed.
/// What a failure to store an upload on disk is reported as (before the cause).
pub(crate) const STORE_FAILED: &str = "Failed storing the upload";

/// How much of a failed upload is still read (and thrown away) so that the client, still
/// sending, can read the error: at most this many bytes, for at most [`DRAIN_TIME`].
const DRAIN_BYTES: u64 = 1 << 30;
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(30);

/// Reads and discards the rest of a request body, bounded by [`DRAIN_BYTES`] and
/// [`DRAIN_TIME`]: a server that closes the connection while the client is still writing
/// makes it report a broken pipe instead of the error the response holds.
pub(crate) async fn drain<S, E>(stream: S)
where
    S: futures_util::Stream<Item = Result<usize, E>>,
{
    use futures_util::StreamExt;
    let mut stream = std::pin::pin!(stream);
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut total = 0u64;
        while let Some(Ok(n)) = stream.next().await {
            total += n as u64;
            if total > DRAIN_BYTES {
                break;
            }
        }
    })
    .await;
}

pub(crate) async fn save_body(
    body: axum::body::Body,
    path: &std::path::Path,
) -> Result<(), crate::response::ApiError> {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| incus_core::Error::io(path.display(), e))?;
    let mut stream = body.into_data_stream();
    let mut failed = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => {
                if let Err(e) = file.write_all(&c).await {
                    failed = Some(incus_core::Error::io(path.display(), e).context(STORE_FAILED));
                    // The client is still sending: read the rest (bounded), so it gets the
                    // error instead of a broken pipe.
                    drain(stream.map(|c| c.map(|b| b.len()))).await;
                    break;
                }
            }
            Err(e) => {
                failed = Some(incus_core::Error::invalid(format!(
                    "Failed reading the upload: {e}"
                )));
                break;
            }
        }
    }
    // tokio's File writes in the background: without this flush the last chunk can still be
    // in flight when the caller reads the file (seen as a truncated image upload).
    if failed.is_none()
        && let Err(e) = file.flush().await
    {
        failed = Some(incus_core::Error::io(path.display(), e));
    }
    drop(file);
    if let Some(e) = failed {
        let _ = std::fs::remove_file(path);
        return Err(e.into());
    }
    Ok(())
}

/// Whether a request carries a raw upload (`Content-Type: application/octet-stream`).
pub(crate) fn is_octet_stream(h: &axum::http::HeaderMap) -> bool {
    h.get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/octet-stream"))
}

/// A new file under `$INCUS_DIR/backups/` to receive an uploaded backup.
pub(crate) async fn upload_file(st: &St) -> Result<std::path::PathBuf, crate::response::ApiError> {
    let dir = st.host.state_dir().join("backups");
    tokio::fs::create_dir_all(&dir)
        .await
        .map_err(|e| incus_core::Error::io(dir.display(), e))?;
    Ok(dir.join(format!("upload-{}", uuid::Uuid::new_v4().simple())))
}

/// A file streamed as `application/octet-stream` (backup exports).
pub(crate) async fn stream_file(path: &std::path::Path) -> crate::response::ApiResult {
    use axum::response::IntoResponse;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| incus_core::Error::io(path.display(), e))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| incus_core::Error::io(path.display(), e))?
        .len();
    let body =
        axum::body::Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 1 << 16));
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/octet-stream".to_string(),
            ),
            (axum::http::header::CONTENT_LENGTH, len.to_string()),
        ],
        body,
    )
        .into_response())
}

/// A list response: URLs at `recursion=0`, objects otherwise.
pub(crate) fn names_or_objects<T: serde::Serialize>(
    q: &HashMap<String, String>,
    items: Vec<T>,
    url: impl Fn(&T) -> String,
) -> crate::response::ApiResult {
    if recursion(q) >= 1 {
        crate::response::sync(&items)
    } else {
        crate::response::sync(&items.iter().map(url).collect::<Vec<_>>())
    }
}

pub(crate) fn router() -> Router<Arc<Daemon>> {
    Router::new()
        .route("/", get(server::root))
        .route(
            "/1.0",
            get(server::get).put(server::put).patch(server::patch),
        )
        .route(
            "/1.0/certificates",
            get(certificates::list).post(certificates::create),
        )
        .route(
            "/1.0/certificates/{fingerprint}",
            get(certificates::get)
                .put(certificates::put)
                .patch(certificates::patch)
                .delete(certificates::delete),
        )
        .route("/1.0/events", get(operations::events))
        .route("/1.0/operations", get(operations::list))
        .route(
            "/1.0/operations/{id}",
            get(operations::get).delete(operations::cancel),
        )
        .route("/1.0/operations/{id}/wait", get(operations::wait))
        .route("/1.0/operations/{id}/websocket", get(exec::websocket))
        .route(
            "/1.0/instances",
            get(instances::list).post(instances::create),
        )
        .route(
            "/1.0/instances/{name}",
            get(instances::get)
                .put(instances::put)
                .patch(instances::patch)
                .post(instances::rename)
                .delete(instances::delete),
        )
        .route(
            "/1.0/instances/{name}/state",
            get(instances::state).put(instances::set_state),
        )
        .route(
            "/1.0/instances/{name}/exec",
            axum::routing::post(exec::exec),
        )
        .route(
            "/1.0/instances/{name}/console",
            get(console::log)
                .post(console::attach)
                .delete(console::clear),
        )
        .route("/1.0/instances/{name}/logs", get(instances::logs))
        .route("/1.0/instances/{name}/logs/{file}", get(instances::log))
        .route(
            "/1.0/instances/{name}/logs/exec-output",
            get(instances::exec_outputs),
        )
        .route(
            "/1.0/instances/{name}/logs/exec-output/{file}",
            get(instances::exec_output).delete(instances::delete_exec_output),
        )
        .route(
            "/1.0/instances/{name}/files",
            get(files::get)
                .head(files::get)
                .post(files::post)
                .delete(files::delete),
        )
        .route("/1.0/instances/{name}/sftp", get(files::sftp))
        .route(
            "/1.0/instances/{name}/metadata",
            get(metadata::get).put(metadata::put).patch(metadata::patch),
        )
        .route(
            "/1.0/instances/{name}/metadata/templates",
            get(metadata::templates)
                .post(metadata::post_template)
                .delete(metadata::delete_template),
        )
        .route(
            "/1.0/instances/{name}/snapshots",
            get(instances::snapshots).post(instances::create_snapshot),
        )
        .route(
            "/1.0/instances/{name}/backups",
            get(instances::backups).post(instances::create_backup),
        )
        .route(
            "/1.0/instances/{name}/backups/{backup}",
            get(instances::backup)
                .post(instances::rename_backup)
                .delete(instances::delete_backup),
        )
        .route(
            "/1.0/instances/{name}/backups/{backup}/export",
            get(instances::export_backup),
        )
        .route(
            "/1.0/instances/{name}/snapshots/{snap}",
            get(instances::snapshot)
                .post(instances::rename_snapshot)
                .delete(instances::delete_snapshot),
        )
        // Uploads are streamed to disk: a large limit of their own; JSON bodies elsewhere
        // keep axum's 2 MiB default.
        .route(
            "/1.0/images",
            get(images::list)
                .post(images::upload)
                .layer(axum::extract::DefaultBodyLimit::max(IMAGE_UPLOAD_LIMIT)),
        )
        .route(
            "/1.0/images/aliases",
            get(images::aliases).post(images::create_alias),
        )
        .route(
            "/1.0/images/aliases/{*name}",
            get(images::alias).delete(images::delete_alias),
        )
        .route(
            "/1.0/images/{fp}",
            get(images::get)
                .put(images::put)
                .patch(images::patch)
                .delete(images::delete),
        )
        .route("/1.0/images/{fp}/export", get(images::export))
        .route("/1.0/resources", get(server::resources))
        .route("/1.0/networks", get(networks::list).post(networks::create))
        .route(
            "/1.0/networks/{name}",
            get(networks::get)
                .put(networks::put)
                .patch(networks::patch)
                .post(networks::rename)
                .delete(networks::delete),
        )
        .route("/1.0/networks/{name}/state", get(networks::state))
        .route("/1.0/networks/{name}/leases", get(networks::leases))
        .route("/1.0/warnings", get(server::warnings))
        .route(
            "/1.0/profiles",
            get(misc::profiles).post(misc::create_profile),
        )
        .route(
            "/1.0/profiles/{name}",
            get(misc::profile)
                .put(misc::put_profile)
                .patch(misc::patch_profile)
                .post(misc::rename_profile)
                .delete(misc::delete_profile),
        )
        .route(
            "/1.0/projects",
            get(misc::projects).post(misc::create_project),
        )
        .route(
            "/1.0/projects/{name}",
            get(misc::project_get)
                .put(misc::put_project)
                .patch(misc::patch_project)
                .post(misc::rename_project)
                .delete(misc::delete_project),
        )
        .route(
            "/1.0/storage-pools",
            get(misc::pools).post(misc::create_pool),
        )
        .route(
            "/1.0/storage-pools/{name}",
            get(misc::pool)
                .put(misc::put_pool)
                .patch(misc::patch_pool)
                .delete(misc::delete_pool),
        )
        .route(
            "/1.0/storage-pools/{name}/resources",
            get(misc::pool_resources),
        )
        .route(
            "/1.0/storage-pools/{name}/volumes",
            get(volumes::volumes).post(volumes::create_volume),
        )
        .route(
            "/1.0/storage-pools/{name}/volumes/{type}",
            get(volumes::volumes).post(volumes::create_volume),
        )
        .route(
            "/1.0/storage-pools/{pool}/volumes/{type}/{vol}",
            get(volumes::volume)
                .put(volumes::put_volume)
                .patch(volumes::patch_volume)
                .post(volumes::post_volume)
                .delete(volumes::delete_volume),
        )
        .route(
            "/1.0/storage-pools/{pool}/volumes/{type}/{vol}/state",
            get(volumes::volume_state),
        )
        .route(
            "/1.0/storage-pools/{pool}/volumes/{type}/{vol}/backups",
            get(volumes::volume_backups).post(volumes::create_volume_backup),
        )
        .route(
            "/1.0/storage-pools/{pool}/volumes/{type}/{vol}/backups/{backup}",
            get(volumes::volume_backup)
                .post(volumes::rename_volume_backup)
                .delete(volumes::delete_volume_backup),
        )
        .route(
            "/1.0/storage-pools/{pool}/volumes/{type}/{vol}/backups/{backup}/export",
            get(volumes::export_volume_backup),
        )
        .route(
            "/1.0/storage-pools/{pool}/volumes/{type}/{vol}/snapshots",
            get(volumes::snapshots).post(volumes::create_snapshot),
        )
        .route(
            "/1.0/storage-pools/{pool}/volumes/{type}/{vol}/snapshots/{snap}",
            get(volumes::snapshot)
                .put(volumes::put_snapshot)
                .patch(volumes::patch_snapshot)
                .post(volumes::rename_snapshot)
                .delete(volumes::delete_snapshot),
        )
        .route("/internal/ready", get(misc::ready))
        .fallback(server::not_found)
}
