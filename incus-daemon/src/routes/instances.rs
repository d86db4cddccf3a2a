//! `/1.0/instances` and everything under it but exec.

use super::{Q, St, project, recursion};
use crate::response::{
    ApiError, ApiResult, check_if_match, etag, operation, parse, sync, sync_etag,
};
use axum::body::Bytes;
use axum::extract::Path;
use incus_core::api;
use incus_core::error::Error;
use std::collections::HashMap;

fn url(project: &str, name: &str) -> String {
    if project == "default" {
        format!("/1.0/instances/{name}")
    } else {
        format!("/1.0/instances/{name}?project={project}")
    }
}

/// The URL of `suffix` under an instance (`/1.0/instances/<n>/<suffix>`, with `?project=`
/// outside the default project).
fn sub_url(project: &str, name: &str, suffix: &str) -> String {
    let base = url(project, name);
    match base.split_once('?') {
        Some((path, query)) => format!("{path}/{suffix}?{query}"),
        None => format!("{base}/{suffix}"),
    }
}

fn filtered<T: serde::Serialize>(
    items: Vec<T>,
    q: &HashMap<String, String>,
) -> Result<Vec<T>, ApiError> {
    let Some(f) = incus_core::filter::parse(q.get("filter").map(String::as_str).unwrap_or(""))?
    else {
        return Ok(items);
    };
    Ok(items
        .into_iter()
        .filter(|i| {
            serde_json::to_value(i)
                .map(|v| f.matches(&v))
                .unwrap_or(false)
        })
        .collect())
}

pub(crate) async fn list(st: St, q: Q) -> ApiResult {
    let all = q.get("all-projects").is_some_and(|v| v == "true");
    let p = project(&q);
    if !all {
        st.host.get_project(&p)?;
    }
    let scope = if all { None } else { Some(p.as_str()) };
    let no_filter = q.get("filter").is_none_or(|f| f.trim().is_empty());
    match recursion(&q) {
        // Names only: one query, no live state.
        0 if no_filter => {
            let names = st.host.list_instance_names(scope)?;
            sync(&names.iter().map(|(p, n)| url(p, n)).collect::<Vec<_>>())
        }
        0 => {
            let list = filtered(st.host.list_instances(scope).await?, &q)?;
            sync(
                &list
                    .iter()
                    .map(|i| url(&i.project, &i.name))
                    .collect::<Vec<_>>(),
            )
        }
        1 => sync(&filtered(st.host.list_instances(scope).await?, &q)?),
        _ => sync(&filtered(st.host.list_instances_full(scope).await?, &q)?),
    }
}

/// `POST /1.0/instances`: a JSON creation request, or with `Content-Type:
/// application/octet-stream` a backup tarball to import (`incus import`; `X-Incus-name` and
/// `X-Incus-pool` override the archive's name and pool), streamed to a file first.
pub(crate) async fn create(
    st: St,
    q: Q,
    headers: axum::http::HeaderMap,
    request: axum::extract::Request,
) -> ApiResult {
    use axum::extract::FromRequest;
    if super::is_octet_stream(&headers) {
        let header = |n: &str| super::incus_header(&headers, n).filter(|v| !v.is_empty());
        let p = project(&q);
        st.host.get_project(&p)?;
        let tmp = super::upload_file(&st).await?;
        super::save_body(request.into_body(), &tmp).await?;
        let op = st
            .host
            .import_instance_backup(&p, tmp, header("name"), header("pool"))?;
        return operation(&op);
    }
    // The usual 2 MiB limit for JSON; its refusal (413) becomes an Incus error envelope.
    let body = match Bytes::from_request(request, &()).await {
        Ok(b) => b,
        Err(rejection) => return Ok(axum::response::IntoResponse::into_response(rejection)),
    };
    let req: api::InstancesPost = parse(&body)?;
    let op = st.host.create_instance(&project(&q), req).await?;
    operation(&op)
}

pub(crate) async fn get(st: St, q: Q, Path(name): Path<String>) -> ApiResult {
    let p = project(&q);
    if recursion(&q) >= 1 {
        let inst = st.host.get_instance(&p, &name).await?;
        let full = api::InstanceFull {
            state: st.host.instance_state(&p, &name).await.ok(),
            snapshots: st.host.list_snapshots(&p, &name)?,
            backups: st.host.list_instance_backups(&p, &name)?,
            instance: inst,
        };
        let tag = etag(&full.instance.put);
        return sync_etag(&full, &tag);
    }
    let inst = st.host.get_instance(&p, &name).await?;
    sync_etag(&inst, &etag(&inst.put))
}

pub(crate) async fn put(
    st: St,
    q: Q,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> ApiResult {
    let current = st.host.get_instance(&project(&q), &name).await?;
    check_if_match(&headers, &etag(&current.put))?;
    let put: api::InstancePut = parse(&body)?;
    updated(&st, &project(&q), &name, put).await
}

/// Applies an update and answers with an operation, as Incus does for `PUT` and `PATCH`
/// (clients wait on it). Validation happens first, so bad input is a plain 400.
async fn updated(st: &St, p: &str, name: &str, put: api::InstancePut) -> ApiResult {
    match st.host.update_instance(p, name, put).await? {
        Some(op) => operation(&op),
        None => {
            let resources =
                std::collections::BTreeMap::from([("instances".to_string(), vec![url(p, name)])]);
            let op = st.host.spawn_operation(
                p,
                "task",
                "Updating instance",
                resources,
                None,
                |_| async { Ok(None) },
            );
            operation(&op)
        }
    }
}

pub(crate) async fn patch(
    st: St,
    q: Q,
    Path(name): Path<String>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> ApiResult {
    let p = project(&q);
    let current = st.host.get_instance(&p, &name).await?;
    check_if_match(&headers, &etag(&current.put))?;
    let mut merged =
        serde_json::to_value(&current.put).map_err(|e| Error::internal(e.to_string()))?;
    let patch: serde_json::Value = parse(&body)?;
    let (Some(m), Some(pm)) = (merged.as_object_mut(), patch.as_object()) else {
        return Err(ApiError(Error::invalid(
            "The PATCH body must be a JSON object",
        )));
    };
    for (k, v) in pm {
        match (k.as_str(), v, m.get_mut(k)) {
            (
                "config" | "devices",
                serde_json::Value::Object(new),
                Some(serde_json::Value::Object(old)),
            ) => {
                for (nk, nv) in new {
                    old.insert(nk.clone(), nv.clone());
                }
            }
            _ => {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    let put: api::InstancePut = serde_json::from_value(merged)
        .map_err(|e| ApiError(Error::invalid(format!("Invalid JSON body: {e}"))))?;
    updated(&st, &p, &name, put).await
}

pub(crate) async fn rename(st: St, q: Q, Path(name): Path<String>, body: Bytes) -> ApiResult {
    let req: api::InstancePost = parse(&body)?;
    if !req.project.is_empty() || req.target.is_some() {
        return Err(ApiError(Error::unsupported(
            "Migration and moves between projects or servers are not supported yet",
        )));
    }
    if !req.pool.is_empty() {
        // `incus move NAME --storage POOL` (`instance_pool_move`; the client asks for `live`
        // when the instance runs, which the move refuses with a clear message).
        let op = st
            .host
            .move_instance_to_pool(&project(&q), &name, &req.pool, &req.name, req.instance_only)
            .await?;
        return operation(&op);
    }
    if req.migration || req.live {
        return Err(ApiError(Error::unsupported(
            "Migration between servers is not supported yet",
        )));
    }
    let op = st
        .host
        .rename_instance(&project(&q), &name, &req.name)
        .await?;
    operation(&op)
}

pub(crate) async fn delete(st: St, q: Q, Path(name): Path<String>) -> ApiResult {
    let op = st.host.delete_instance(&project(&q), &name).await?;
    operation(&op)
}

pub(crate) async fn state(st: St, q: Q, Path(name): Path<String>) -> ApiResult {
    sync(&st.host.instance_state(&project(&q), &name).await?)
}

pub(crate) async fn set_state(st: St, q: Q, Path(name): Path<String>, body: Bytes) -> ApiResult {
    let req: api::InstanceStatePut = parse(&body)?;
    let op = st
        .host
        .update_instance_state(&project(&q), &name, req)
        .await?;
    operation(&op)
}

pub(crate) async fn snapshots(st: St, q: Q, Path(name): Path<String>) -> ApiResult {
    let p = project(&q);
    let snaps = st.host.list_snapshots(&p, &name)?;
    if recursion(&q) >= 1 {
        sync(&snaps)
    } else {
        sync(
            &snaps
                .iter()
                .map(|s| sub_url(&p, &name, &format!("snapshots/{}", s.name)))
                .collect::<Vec<_>>(),
        )
    }
}

pub(crate) async fn create_snapshot(
    st: St,
    q: Q,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: api::InstanceSnapshotsPost = if body.is_empty() {
        Default::default()
    } else {
        parse(&body)?
    };
    let op = st.host.create_snapshot(&project(&q), &name, req).await?;
    operation(&op)
}

pub(crate) async fn snapshot(
    st: St,
    q: Q,
    Path((name, snap)): Path<(String, String)>,
) -> ApiResult {
    sync(&st.host.get_snapshot(&project(&q), &name, &snap)?)
}

pub(crate) async fn rename_snapshot(
    st: St,
    q: Q,
    Path((name, snap)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let req: api::InstanceSnapshotPost = parse(&body)?;
    if req.migration {
        return Err(ApiError(Error::unsupported(
            "Snapshot migration is not supported yet",
        )));
    }
    let op = st
        .host
        .rename_snapshot(&project(&q), &name, &snap, &req.name)
        .await?;
    operation(&op)
}

pub(crate) async fn delete_snapshot(
    st: St,
    q: Q,
    Path((name, snap)): Path<(String, String)>,
) -> ApiResult {
    let op = st.host.delete_snapshot(&project(&q), &name, &snap).await?;
    operation(&op)
}

/// URLs of `files` under `/1.0/instances/<n>/<dir>/`.
fn file_urls(project: &str, name: &str, dir: &str, files: &[String]) -> ApiResult {
    sync(
        &files
            .iter()
            .map(|f| sub_url(project, name, &format!("{dir}/{f}")))
            .collect::<Vec<_>>(),
    )
}

pub(crate) async fn logs(st: St, q: Q, Path(name): Path<String>) -> ApiResult {
    let p = project(&q);
    file_urls(&p, &name, "logs", &st.host.instance_log_files(&p, &name)?)
}

pub(crate) async fn log(st: St, q: Q, Path((name, file)): Path<(String, String)>) -> ApiResult {
    let data = st.host.instance_log(&project(&q), &name, &file)?;
    Ok(crate::response::raw(data))
}

/// `GET /1.0/instances/<n>/logs/exec-output`: recorded exec output files.
pub(crate) async fn exec_outputs(st: St, q: Q, Path(name): Path<String>) -> ApiResult {
    let p = project(&q);
    let files = st.host.exec_output_files(&p, &name)?;
    file_urls(&p, &name, "logs/exec-output", &files)
}

/// `GET /1.0/instances/<n>/logs/exec-output/<file>`.
pub(crate) async fn exec_output(
    st: St,
    q: Q,
    Path((name, file)): Path<(String, String)>,
) -> ApiResult {
    let data = st.host.exec_output_file(&project(&q), &name, &file)?;
    Ok(crate::response::raw(data))
}

/// `DELETE /1.0/instances/<n>/logs/exec-output/<file>`.
pub(crate) async fn delete_exec_output(
    st: St,
    q: Q,
    Path((name, file)): Path<(String, String)>,
) -> ApiResult {
    st.host
        .delete_exec_output_file(&project(&q), &name, &file)?;
    crate::response::sync_empty()
}

/// The URL of a recorded output file, as exec operations report it.
pub(crate) fn exec_output_url(project: &str, name: &str, file: &str) -> String {
    sub_url(project, name, &format!("logs/exec-output/{file}"))
}

/// `GET /1.0/instances/<name>/backups`.
pub(crate) async fn backups(st: St, q: Q, Path(name): Path<String>) -> ApiResult {
    let p = project(&q);
    let list = st.host.list_instance_backups(&p, &name)?;
    super::names_or_objects(&q, list, |b| {
        format!("{}/backups/{}", url(&p, &name), b.name)
    })
}

/// `POST /1.0/instances/<name>/backups` (an operation; its resources name the backup).
pub(crate) async fn create_backup(
    st: St,
    q: Q,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: api::InstanceBackupsPost = parse(&body)?;
    operation(&st.host.create_instance_backup(&project(&q), &name, req)?)
}

/// `GET /1.0/instances/<name>/backups/<backup>`.
pub(crate) async fn backup(
    st: St,
    q: Q,
    Path((name, backup)): Path<(String, String)>,
) -> ApiResult {
    sync(&st.host.get_instance_backup(&project(&q), &name, &backup)?)
}

/// `POST /1.0/instances/<name>/backups/<backup>`: rename (an operation).
pub(crate) async fn rename_backup(
    st: St,
    q: Q,
    Path((name, backup)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let req: api::BackupPost = parse(&body)?;
    operation(
        &st.host
            .rename_instance_backup(&project(&q), &name, &backup, &req.name)?,
    )
}

/// `DELETE /1.0/instances/<name>/backups/<backup>` (an operation).
pub(crate) async fn delete_backup(
    st: St,
    q: Q,
    Path((name, backup)): Path<(String, String)>,
) -> ApiResult {
    operation(
        &st.host
            .delete_instance_backup(&project(&q), &name, &backup)?,
    )
}

/// `GET /1.0/instances/<name>/backups/<backup>/export`: the tarball, streamed from its file.
pub(crate) async fn export_backup(
    st: St,
    q: Q,
    Path((name, backup)): Path<(String, String)>,
) -> ApiResult {
    let path = st.host.instance_backup_file(&project(&q), &name, &backup)?;
    super::stream_file(&path).await
}
