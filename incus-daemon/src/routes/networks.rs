//! `/1.0/networks`: managed networks (create, show, edit, rename, delete, state, leases) and
//! the host's unmanaged interfaces.

use super::misc::{Patchable, new_put};
use super::{Q, St, names_or_objects};
use crate::response::{ApiResult, etag, parse, sync, sync_empty, sync_etag};
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::HeaderMap;
use incus_core::api;

impl Patchable for api::NetworkPut {
    fn config(&mut self) -> &mut api::ConfigMap {
        &mut self.config
    }
    fn description(&mut self) -> &mut String {
        &mut self.description
    }
}

pub(crate) async fn list(st: St, q: Q) -> ApiResult {
    let nets = st.host.list_networks()?;
    names_or_objects(&q, nets, |n| format!("/1.0/networks/{}", n.name))
}

pub(crate) async fn create(st: St, body: Bytes) -> ApiResult {
    let req: api::NetworksPost = parse(&body)?;
    st.host.create_network(req).await?;
    sync_empty()
}

pub(crate) async fn get(st: St, Path(name): Path<String>) -> ApiResult {
    let n = st.host.get_network(&name)?;
    sync_etag(&n, &etag(&n.put))
}

pub(crate) async fn put(
    st: St,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    write(&st, &name, &headers, &body, false).await
}

pub(crate) async fn patch(
    st: St,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    write(&st, &name, &headers, &body, true).await
}

async fn write(st: &St, name: &str, headers: &HeaderMap, body: &Bytes, patch: bool) -> ApiResult {
    let current = st.host.get_network(name)?;
    if !current.managed {
        return Err(incus_core::Error::invalid(format!(
            "Network {name:?} is not managed: it cannot be edited"
        ))
        .into());
    }
    let put = new_put(current.put, headers, body, patch)?;
    st.host.update_network(name, put).await?;
    sync_empty()
}

/// `POST /1.0/networks/<name>`: rename.
pub(crate) async fn rename(st: St, Path(name): Path<String>, body: Bytes) -> ApiResult {
    let req: api::ProfilePost = parse(&body)?;
    st.host.rename_network(&name, &req.name).await?;
    sync_empty()
}

pub(crate) async fn delete(st: St, Path(name): Path<String>) -> ApiResult {
    st.host.delete_network(&name).await?;
    sync_empty()
}

pub(crate) async fn state(st: St, Path(name): Path<String>) -> ApiResult {
    sync(&st.host.network_state(&name)?)
}

pub(crate) async fn leases(st: St, Path(name): Path<String>) -> ApiResult {
    sync(&st.host.network_leases(&name)?)
}
