//! `/1.0/profiles`, `/1.0/projects` and `/1.0/storage-pools`.

use super::{Q, St, names_or_objects, project};
use crate::response::{ApiResult, check_if_match, etag, parse, sync_empty, sync_etag};
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::HeaderMap;
use incus_core::api;

/// PATCH semantics: keys are added or replaced, a non-empty description replaces.
fn merge(
    config: &mut api::ConfigMap,
    description: &mut String,
    patch_config: api::ConfigMap,
    patch_description: String,
) {
    config.extend(patch_config);
    if !patch_description.is_empty() {
        *description = patch_description;
    }
}

pub(crate) async fn profiles(st: St, q: Q) -> ApiResult {
    let list = st.host.list_profiles(&project(&q))?;
    names_or_objects(&q, list, |p| format!("/1.0/profiles/{}", p.name))
}

pub(crate) async fn create_profile(st: St, q: Q, body: Bytes) -> ApiResult {
    let req: api::ProfilesPost = parse(&body)?;
    st.host.create_profile(&project(&q), req)?;
    sync_empty()
}

pub(crate) async fn profile(st: St, q: Q, Path(name): Path<String>) -> ApiResult {
    let p = st.host.get_profile(&project(&q), &name)?;
    sync_etag(&p, &etag(&p.put))
}

pub(crate) async fn put_profile(
    st: St,
    q: Q,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let p = project(&q);
    let current = st.host.get_profile(&p, &name)?;
    check_if_match(&headers, &etag(&current.put))?;
    let put: api::ProfilePut = parse(&body)?;
    st.host.update_profile(&p, &name, put)?;
    sync_empty()
}

pub(crate) async fn patch_profile(
    st: St,
    q: Q,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let p = project(&q);
    let current = st.host.get_profile(&p, &name)?;
    check_if_match(&headers, &etag(&current.put))?;
    let patch: api::ProfilePut = parse(&body)?;
    let mut put = current.put;
    put.devices.extend(patch.devices);
    merge(
        &mut put.config,
        &mut put.description,
        patch.config,
        patch.description,
    );
    st.host.update_profile(&p, &name, put)?;
    sync_empty()
}

/// `POST /1.0/profiles/<name>` `{"name": new}`.
pub(crate) async fn rename_profile(
    st: St,
    q: Q,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let req: api::ProfilePost = parse(&body)?;
    st.host.rename_profile(&project(&q), &name, &req.name)?;
    sync_empty()
}

pub(crate) async fn delete_profile(st: St, q: Q, Path(name): Path<String>) -> ApiResult {
    st.host.delete_profile(&project(&q), &name)?;
    sync_empty()
}

pub(crate) async fn projects(st: St, q: Q) -> ApiResult {
    let list = st.host.list_projects()?;
    names_or_objects(&q, list, |p| format!("/1.0/projects/{}", p.name))
}

pub(crate) async fn create_project(st: St, body: Bytes) -> ApiResult {
    let req: api::ProjectsPost = parse(&body)?;
    st.host.create_project(req)?;
    sync_empty()
}

pub(crate) async fn project_get(st: St, Path(name): Path<String>) -> ApiResult {
    let p = st.host.get_project(&name)?;
    sync_etag(&p, &etag(&p.put))
}

pub(crate) async fn put_project(
    st: St,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let current = st.host.get_project(&name)?;
    check_if_match(&headers, &etag(&current.put))?;
    let put: api::ProjectPut = parse(&body)?;
    st.host.update_project(&name, put)?;
    sync_empty()
}

pub(crate) async fn patch_project(
    st: St,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let current = st.host.get_project(&name)?;
    check_if_match(&headers, &etag(&current.put))?;
    let patch: api::ProjectPut = parse(&body)?;
    let mut put = current.put;
    merge(
        &mut put.config,
        &mut put.description,
        patch.config,
        patch.description,
    );
    st.host.update_project(&name, put)?;
    sync_empty()
}

/// `POST /1.0/projects/<name>` `{"name": new}` (empty projects only).
pub(crate) async fn rename_project(st: St, Path(name): Path<String>, body: Bytes) -> ApiResult {
    let req: api::ProfilePost = parse(&body)?;
    crate::response::operation(&st.host.rename_project(&name, &req.name)?)
}

pub(crate) async fn delete_project(st: St, Path(name): Path<String>) -> ApiResult {
    st.host.delete_project(&name)?;
    sync_empty()
}

pub(crate) async fn pools(st: St, q: Q) -> ApiResult {
    let list = st.host.list_storage_pools()?;
    names_or_objects(&q, list, |p| format!("/1.0/storage-pools/{}", p.name))
}

pub(crate) async fn create_pool(st: St, body: Bytes) -> ApiResult {
    let req: api::StoragePoolsPost = parse(&body)?;
    st.host.create_storage_pool(req).await?;
    sync_empty()
}

pub(crate) async fn pool(st: St, Path(name): Path<String>) -> ApiResult {
    let p = st.host.get_storage_pool(&name)?;
    sync_etag(&p, &etag(&p.put))
}

pub(crate) async fn put_pool(
    st: St,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let current = st.host.get_storage_pool(&name)?;
    check_if_match(&headers, &etag(&current.put))?;
    let put: api::StoragePoolPut = parse(&body)?;
    st.host.update_storage_pool(&name, put)?;
    sync_empty()
}

pub(crate) async fn patch_pool(
    st: St,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let current = st.host.get_storage_pool(&name)?;
    check_if_match(&headers, &etag(&current.put))?;
    let patch: api::StoragePoolPut = parse(&body)?;
    let mut put = current.put;
    merge(
        &mut put.config,
        &mut put.description,
        patch.config,
        patch.description,
    );
    st.host.update_storage_pool(&name, put)?;
    sync_empty()
}

pub(crate) async fn delete_pool(st: St, Path(name): Path<String>) -> ApiResult {
    st.host.delete_storage_pool(&name).await?;
    sync_empty()
}

/// `GET /internal/ready` (what `incus admin waitready` polls): the engine is open once the
/// socket answers.
pub(crate) async fn ready() -> ApiResult {
    sync_empty()
}
