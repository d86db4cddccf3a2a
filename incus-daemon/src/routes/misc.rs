//! `/1.0/profiles`, `/1.0/projects` and `/1.0/storage-pools` (volumes: `volumes.rs`).

use super::{Q, St, names_or_objects, project};
use crate::response::{
    ApiError, ApiResult, check_if_match, etag, parse, sync, sync_empty, sync_etag,
};
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::HeaderMap;
use incus_core::api;

/// Writable parts that PATCH merges: config keys are added or replaced, a non-empty
/// description replaces, devices (profiles) are added or replaced.
pub(super) trait Patchable: serde::de::DeserializeOwned {
    fn config(&mut self) -> &mut api::ConfigMap;
    fn description(&mut self) -> &mut String;
    fn merge_devices(&mut self, _patch: &mut Self) {}
}

impl Patchable for api::ProjectPut {
    fn config(&mut self) -> &mut api::ConfigMap {
        &mut self.config
    }
    fn description(&mut self) -> &mut String {
        &mut self.description
    }
}

impl Patchable for api::StoragePoolPut {
    fn config(&mut self) -> &mut api::ConfigMap {
        &mut self.config
    }
    fn description(&mut self) -> &mut String {
        &mut self.description
    }
}

impl Patchable for api::ProfilePut {
    fn config(&mut self) -> &mut api::ConfigMap {
        &mut self.config
    }
    fn description(&mut self) -> &mut String {
        &mut self.description
    }
    fn merge_devices(&mut self, patch: &mut Self) {
        self.devices.extend(std::mem::take(&mut patch.devices));
    }
}

/// `current` with the PATCH body applied.
fn patched<P: Patchable>(mut current: P, body: &Bytes) -> Result<P, crate::response::ApiError> {
    let mut patch: P = parse(body)?;
    current.config().extend(std::mem::take(patch.config()));
    let d = std::mem::take(patch.description());
    if !d.is_empty() {
        *current.description() = d;
    }
    current.merge_devices(&mut patch);
    Ok(current)
}

/// The new writable fields of a `PUT` (the body) or a `PATCH` (the body merged into
/// `current`), after checking `If-Match` against `current`.
pub(super) fn new_put<P: Patchable + serde::Serialize>(
    current: P,
    headers: &HeaderMap,
    body: &Bytes,
    patch: bool,
) -> Result<P, ApiError> {
    check_if_match(headers, &etag(&current))?;
    if patch {
        patched(current, body)
    } else {
        parse(body)
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
    write_profile(&st, &project(&q), &name, &headers, &body, false)
}

pub(crate) async fn patch_profile(
    st: St,
    q: Q,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    write_profile(&st, &project(&q), &name, &headers, &body, true)
}

fn write_profile(
    st: &St,
    p: &str,
    name: &str,
    headers: &HeaderMap,
    body: &Bytes,
    patch: bool,
) -> ApiResult {
    let current = st.host.get_profile(p, name)?;
    st.host
        .update_profile(p, name, new_put(current.put, headers, body, patch)?)?;
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

pub(crate) async fn projects(
    st: St,
    q: Q,
    axum::Extension(access): axum::Extension<crate::auth::Access>,
) -> ApiResult {
    let mut list = st.host.list_projects()?;
    // A restricted client sees only its own projects.
    if let Some(allowed) = access.projects() {
        list.retain(|p| allowed.contains(&p.name));
    }
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
    write_project(&st, &name, &headers, &body, false)
}

pub(crate) async fn patch_project(
    st: St,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    write_project(&st, &name, &headers, &body, true)
}

fn write_project(st: &St, name: &str, headers: &HeaderMap, body: &Bytes, patch: bool) -> ApiResult {
    let current = st.host.get_project(name)?;
    st.host
        .update_project(name, new_put(current.put, headers, body, patch)?)?;
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
    write_pool(&st, &name, &headers, &body, false)
}

pub(crate) async fn patch_pool(
    st: St,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    write_pool(&st, &name, &headers, &body, true)
}

fn write_pool(st: &St, name: &str, headers: &HeaderMap, body: &Bytes, patch: bool) -> ApiResult {
    let current = st.host.get_storage_pool(name)?;
    st.host
        .update_storage_pool(name, new_put(current.put, headers, body, patch)?)?;
    sync_empty()
}

pub(crate) async fn delete_pool(st: St, Path(name): Path<String>) -> ApiResult {
    st.host.delete_storage_pool(&name).await?;
    sync_empty()
}

/// `GET /1.0/storage-pools/<pool>/resources`.
pub(crate) async fn pool_resources(st: St, Path(name): Path<String>) -> ApiResult {
    sync(&st.host.storage_pool_resources(&name)?)
}

/// `GET /internal/ready` (what `incus admin waitready` polls): the engine is open once the
/// socket answers.
pub(crate) async fn ready() -> ApiResult {
    sync_empty()
}
