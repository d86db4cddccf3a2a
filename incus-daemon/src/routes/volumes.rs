//! `/1.0/storage-pools/<pool>/volumes/...`: listing every volume type, and custom volumes
//! with their snapshots (create, copy, update, restore, rename, move, delete, state).

use super::misc::{Patchable, new_put};
use super::{Q, St, names_or_objects, project};
use crate::response::{ApiError, ApiResult, etag, operation, parse, sync, sync_empty, sync_etag};
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::HeaderMap;
use incus_core::api;
use incus_core::error::Error;
use std::collections::HashMap;

impl Patchable for api::StorageVolumePut {
    fn config(&mut self) -> &mut api::ConfigMap {
        &mut self.config
    }
    fn description(&mut self) -> &mut String {
        &mut self.description
    }
}

/// Only custom volumes can be written to.
fn custom_only(kind: &str) -> Result<(), ApiError> {
    match kind {
        "custom" => Ok(()),
        "container" | "virtual-machine" | "image" => Err(ApiError(Error::invalid(format!(
            "Storage volumes of type {kind:?} are managed through their instance or image"
        )))),
        _ => Err(ApiError(Error::invalid(format!(
            "Invalid storage volume type {kind:?}"
        )))),
    }
}

/// `GET /1.0/storage-pools/<pool>/volumes[/<type>]`.
pub(crate) async fn volumes(
    st: St,
    q: Q,
    Path(params): Path<HashMap<String, String>>,
) -> ApiResult {
    let pool = params.get("name").cloned().unwrap_or_default();
    let mut list = st.host.list_storage_volumes(&project(&q), &pool).await?;
    if let Some(kind) = params.get("type") {
        list.retain(|v| &v.kind == kind);
    }
    names_or_objects(&q, list, |v| {
        format!(
            "/1.0/storage-pools/{pool}/volumes/{}/{}",
            v.kind,
            v.name.replace('/', "%2F")
        )
    })
}

/// `POST /1.0/storage-pools/<pool>/volumes[/custom]`: a new empty volume (synchronous), a
/// copy (`source.type: copy`, an operation), as in Incus, or with `Content-Type:
/// application/octet-stream` a backup tarball to import (an operation).
pub(crate) async fn create_volume(
    st: St,
    q: Q,
    Path(params): Path<HashMap<String, String>>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> ApiResult {
    use axum::extract::FromRequest;
    let pool = params.get("name").cloned().unwrap_or_default();
    if super::is_octet_stream(&headers) {
        // A backup tarball to import (`incus storage volume import`; `X-Incus-name`
        // overrides the archive's volume name), streamed to a file first.
        if let Some(kind) = params.get("type") {
            custom_only(kind)?;
        }
        let header = |n: &str| super::incus_header(&headers, n).filter(|v| !v.is_empty());
        if let Some(t) = header("type").filter(|t| t != "backup") {
            return Err(ApiError(Error::unsupported(format!(
                "Importing volumes of type {t:?} is not supported (backup tarballs only)"
            ))));
        }
        let p = project(&q);
        st.host.get_storage_pool(&pool)?;
        let tmp = super::upload_file(&st).await?;
        super::save_body(request.into_body(), &tmp).await?;
        return operation(
            &st.host
                .import_volume_backup(&p, &pool, tmp, header("name"))?,
        );
    }
    let body = match Bytes::from_request(request, &()).await {
        Ok(b) => b,
        Err(rejection) => return Ok(axum::response::IntoResponse::into_response(rejection)),
    };
    let mut req: api::StorageVolumesPost = parse(&body)?;
    if let Some(kind) = params.get("type") {
        custom_only(kind)?;
        if req.kind.is_empty() {
            req.kind = kind.clone();
        }
    }
    let p = project(&q);
    if req.source.name.is_empty() {
        st.host.create_custom_volume(&p, &pool, req).await?;
        sync_empty()
    } else {
        operation(&st.host.copy_custom_volume(&p, &pool, req)?)
    }
}

/// `GET /1.0/storage-pools/<pool>/volumes/<type>/<name>`.
pub(crate) async fn volume(
    st: St,
    q: Q,
    Path((pool, kind, name)): Path<(String, String, String)>,
) -> ApiResult {
    let v = st
        .host
        .get_storage_volume(&project(&q), &pool, &kind, &name)
        .await?;
    sync_etag(&v, &etag(&v.put))
}

async fn write_volume(
    st: &St,
    q: &Q,
    (pool, kind, name): (String, String, String),
    headers: &HeaderMap,
    body: &Bytes,
    patch: bool,
) -> ApiResult {
    custom_only(&kind)?;
    let p = project(q);
    let current = st.host.get_custom_volume(&p, &pool, &name)?;
    let put = new_put(current.put, headers, body, patch)?;
    st.host.update_custom_volume(&p, &pool, &name, put).await?;
    sync_empty()
}

/// `PUT /1.0/storage-pools/<pool>/volumes/custom/<name>` (also restores with `restore`).
pub(crate) async fn put_volume(
    st: St,
    q: Q,
    Path(path): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    write_volume(&st, &q, path, &headers, &body, false).await
}

/// `PATCH /1.0/storage-pools/<pool>/volumes/custom/<name>`.
pub(crate) async fn patch_volume(
    st: St,
    q: Q,
    Path(path): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    write_volume(&st, &q, path, &headers, &body, true).await
}

/// `POST /1.0/storage-pools/<pool>/volumes/custom/<name>`: rename in the pool
/// (synchronous), or move to another `pool` or `project` (an operation).
pub(crate) async fn post_volume(
    st: St,
    q: Q,
    Path((pool, kind, name)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult {
    custom_only(&kind)?;
    let req: api::StorageVolumePost = parse(&body)?;
    if req.migration {
        return Err(ApiError(Error::unsupported(
            "Volume migration between servers is not supported",
        )));
    }
    let p = project(&q);
    let moving =
        (!req.pool.is_empty() && req.pool != pool) || (!req.project.is_empty() && req.project != p);
    if moving {
        return operation(&st.host.move_custom_volume(&p, &pool, &name, req)?);
    }
    st.host
        .rename_custom_volume(&p, &pool, &name, &req.name)
        .await?;
    sync_empty()
}

/// `DELETE /1.0/storage-pools/<pool>/volumes/custom/<name>`.
pub(crate) async fn delete_volume(
    st: St,
    q: Q,
    Path((pool, kind, name)): Path<(String, String, String)>,
) -> ApiResult {
    custom_only(&kind)?;
    st.host
        .delete_custom_volume(&project(&q), &pool, &name)
        .await?;
    sync_empty()
}

/// `GET /1.0/storage-pools/<pool>/volumes/custom/<name>/state`.
pub(crate) async fn volume_state(
    st: St,
    q: Q,
    Path((pool, kind, name)): Path<(String, String, String)>,
) -> ApiResult {
    custom_only(&kind)?;
    sync(
        &st.host
            .custom_volume_state(&project(&q), &pool, &name)
            .await?,
    )
}

/// `GET /1.0/storage-pools/<pool>/volumes/custom/<name>/backups`.
pub(crate) async fn volume_backups(
    st: St,
    q: Q,
    Path((pool, kind, name)): Path<(String, String, String)>,
) -> ApiResult {
    custom_only(&kind)?;
    let list = st.host.list_volume_backups(&project(&q), &pool, &name)?;
    names_or_objects(&q, list, |b| {
        format!(
            "/1.0/storage-pools/{pool}/volumes/custom/{name}/backups/{}",
            b.name
        )
    })
}

/// `POST .../volumes/custom/<name>/backups` (an operation; its resources name the backup).
pub(crate) async fn create_volume_backup(
    st: St,
    q: Q,
    Path((pool, kind, name)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult {
    custom_only(&kind)?;
    let req: api::StorageVolumeBackupsPost = parse(&body)?;
    operation(
        &st.host
            .create_volume_backup(&project(&q), &pool, &name, req)?,
    )
}

type BackupPath = Path<(String, String, String, String)>;

/// `GET .../volumes/custom/<name>/backups/<backup>`.
pub(crate) async fn volume_backup(
    st: St,
    q: Q,
    Path((pool, kind, name, backup)): BackupPath,
) -> ApiResult {
    custom_only(&kind)?;
    sync(
        &st.host
            .get_volume_backup(&project(&q), &pool, &name, &backup)?,
    )
}

/// `POST .../volumes/custom/<name>/backups/<backup>`: rename (an operation).
pub(crate) async fn rename_volume_backup(
    st: St,
    q: Q,
    Path((pool, kind, name, backup)): BackupPath,
    body: Bytes,
) -> ApiResult {
    custom_only(&kind)?;
    let req: api::BackupPost = parse(&body)?;
    operation(
        &st.host
            .rename_volume_backup(&project(&q), &pool, &name, &backup, &req.name)?,
    )
}

/// `DELETE .../volumes/custom/<name>/backups/<backup>` (an operation).
pub(crate) async fn delete_volume_backup(
    st: St,
    q: Q,
    Path((pool, kind, name, backup)): BackupPath,
) -> ApiResult {
    custom_only(&kind)?;
    operation(
        &st.host
            .delete_volume_backup(&project(&q), &pool, &name, &backup)?,
    )
}

/// `GET .../volumes/custom/<name>/backups/<backup>/export`: the tarball.
pub(crate) async fn export_volume_backup(
    st: St,
    q: Q,
    Path((pool, kind, name, backup)): BackupPath,
) -> ApiResult {
    custom_only(&kind)?;
    let path = st
        .host
        .volume_backup_file(&project(&q), &pool, &name, &backup)?;
    super::stream_file(&path).await
}

/// `GET .../volumes/custom/<name>/snapshots`.
pub(crate) async fn snapshots(
    st: St,
    q: Q,
    Path((pool, kind, name)): Path<(String, String, String)>,
) -> ApiResult {
    custom_only(&kind)?;
    let list = st.host.list_volume_snapshots(&project(&q), &pool, &name)?;
    names_or_objects(&q, list, |s| {
        let snap = s.name.rsplit_once('/').map(|(_, n)| n).unwrap_or(&s.name);
        format!("/1.0/storage-pools/{pool}/volumes/custom/{name}/snapshots/{snap}")
    })
}

/// `POST .../volumes/custom/<name>/snapshots` (an operation).
pub(crate) async fn create_snapshot(
    st: St,
    q: Q,
    Path((pool, kind, name)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult {
    custom_only(&kind)?;
    let req: api::StorageVolumeSnapshotsPost = parse(&body)?;
    operation(
        &st.host
            .create_volume_snapshot(&project(&q), &pool, &name, req)?,
    )
}

type SnapPath = Path<(String, String, String, String)>;

/// `GET .../volumes/custom/<name>/snapshots/<snap>`.
pub(crate) async fn snapshot(st: St, q: Q, Path((pool, kind, name, snap)): SnapPath) -> ApiResult {
    custom_only(&kind)?;
    let s = st.host.volume_snapshot(&project(&q), &pool, &name, &snap)?;
    let put = api::StorageVolumeSnapshotPut {
        description: s.description.clone(),
        expires_at: s.expires_at,
    };
    sync_etag(&s, &etag(&put))
}

async fn write_snapshot(
    st: &St,
    q: &Q,
    path: (String, String, String, String),
    body: &Bytes,
    patch: bool,
) -> ApiResult {
    let (pool, kind, name, snap) = path;
    custom_only(&kind)?;
    let p = project(q);
    let s = st.host.volume_snapshot(&p, &pool, &name, &snap)?;
    let put = if patch {
        let v: serde_json::Value = parse(body)?;
        api::StorageVolumeSnapshotPut {
            description: v
                .get("description")
                .and_then(|d| d.as_str())
                .map(String::from)
                .unwrap_or(s.description),
            expires_at: match v.get("expires_at") {
                Some(e) => serde_json::from_value(e.clone())
                    .map_err(|e| ApiError(Error::invalid(format!("expires_at: {e}"))))?,
                None => s.expires_at,
            },
        }
    } else {
        parse(body)?
    };
    st.host
        .update_volume_snapshot(&p, &pool, &name, &snap, put)?;
    sync_empty()
}

/// `PUT .../volumes/custom/<name>/snapshots/<snap>` (description, expiry).
pub(crate) async fn put_snapshot(st: St, q: Q, Path(path): SnapPath, body: Bytes) -> ApiResult {
    write_snapshot(&st, &q, path, &body, false).await
}

/// `PATCH .../volumes/custom/<name>/snapshots/<snap>`.
pub(crate) async fn patch_snapshot(st: St, q: Q, Path(path): SnapPath, body: Bytes) -> ApiResult {
    write_snapshot(&st, &q, path, &body, true).await
}

/// `POST .../volumes/custom/<name>/snapshots/<snap>` `{"name": new}` (an operation).
pub(crate) async fn rename_snapshot(
    st: St,
    q: Q,
    Path((pool, kind, name, snap)): SnapPath,
    body: Bytes,
) -> ApiResult {
    custom_only(&kind)?;
    let req: api::StorageVolumePost = parse(&body)?;
    operation(
        &st.host
            .rename_volume_snapshot(&project(&q), &pool, &name, &snap, &req.name)?,
    )
}

/// `DELETE .../volumes/custom/<name>/snapshots/<snap>` (an operation).
pub(crate) async fn delete_snapshot(
    st: St,
    q: Q,
    Path((pool, kind, name, snap)): SnapPath,
) -> ApiResult {
    custom_only(&kind)?;
    operation(
        &st.host
            .delete_volume_snapshot(&project(&q), &pool, &name, &snap)?,
    )
}
