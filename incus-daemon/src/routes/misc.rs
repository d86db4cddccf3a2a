//! `/1.0/profiles`, `/1.0/projects` and `/1.0/storage-pools` (read side).

use super::{Q, St, project, recursion};
use crate::response::{ApiResult, sync};
use axum::extract::Path;

fn names_or_objects<T: serde::Serialize>(
    q: &Q,
    items: Vec<T>,
    url: impl Fn(&T) -> String,
) -> ApiResult {
    if recursion(q) >= 1 {
        sync(&items)
    } else {
        sync(&items.iter().map(url).collect::<Vec<_>>())
    }
}

pub(crate) async fn profiles(st: St, q: Q) -> ApiResult {
    let list = st.host.list_profiles(&project(&q))?;
    names_or_objects(&q, list, |p| format!("/1.0/profiles/{}", p.name))
}

pub(crate) async fn profile(st: St, q: Q, Path(name): Path<String>) -> ApiResult {
    sync(&st.host.get_profile(&project(&q), &name)?)
}

pub(crate) async fn projects(st: St, q: Q) -> ApiResult {
    let list = st.host.list_projects()?;
    names_or_objects(&q, list, |p| format!("/1.0/projects/{}", p.name))
}

pub(crate) async fn project_get(st: St, Path(name): Path<String>) -> ApiResult {
    sync(&st.host.get_project(&name)?)
}

pub(crate) async fn pools(st: St, q: Q) -> ApiResult {
    let list = st.host.list_storage_pools()?;
    names_or_objects(&q, list, |p| format!("/1.0/storage-pools/{}", p.name))
}

pub(crate) async fn pool(st: St, Path(name): Path<String>) -> ApiResult {
    sync(&st.host.get_storage_pool(&name)?)
}
