//! `/1.0/instances/<name>/metadata` and `/metadata/templates?path=`.

use super::{Q, St, project};
use crate::response::{
    ApiError, ApiResult, check_if_match, etag, parse, sync, sync_empty, sync_etag,
};
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::HeaderMap;
use incus_core::api;
use incus_core::error::Error;

pub(crate) async fn get(st: St, q: Q, Path(name): Path<String>) -> ApiResult {
    let m = st.host.instance_metadata(&project(&q), &name)?;
    sync_etag(&m, &etag(&m))
}

pub(crate) async fn put(
    st: St,
    q: Q,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let p = project(&q);
    let current = st.host.instance_metadata(&p, &name)?;
    check_if_match(&headers, &etag(&current))?;
    let m: api::ImageMetadata = parse(&body)?;
    st.host.update_instance_metadata(&p, &name, &m)?;
    sync_empty()
}

pub(crate) async fn patch(
    st: St,
    q: Q,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let p = project(&q);
    let mut current = st.host.instance_metadata(&p, &name)?;
    check_if_match(&headers, &etag(&current))?;
    let m: api::ImageMetadata = parse(&body)?;
    if !m.architecture.is_empty() {
        current.architecture = m.architecture;
    }
    if m.creation_date != 0 {
        current.creation_date = m.creation_date;
    }
    if m.expiry_date != 0 {
        current.expiry_date = m.expiry_date;
    }
    current.properties.extend(m.properties);
    current.templates.extend(m.templates);
    st.host.update_instance_metadata(&p, &name, &current)?;
    sync_empty()
}

fn template_path(q: &Q) -> Option<String> {
    q.get("path").filter(|p| !p.is_empty()).cloned()
}

fn missing_path() -> ApiError {
    ApiError(Error::invalid("Missing template path"))
}

pub(crate) async fn templates(st: St, q: Q, Path(name): Path<String>) -> ApiResult {
    let p = project(&q);
    match template_path(&q) {
        None => sync(&st.host.instance_templates(&p, &name)?),
        Some(file) => {
            let data = st.host.instance_template(&p, &name, &file)?;
            Ok(crate::response::raw(data))
        }
    }
}

pub(crate) async fn post_template(
    st: St,
    q: Q,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult {
    let file = template_path(&q).ok_or_else(missing_path)?;
    st.host
        .put_instance_template(&project(&q), &name, &file, &body)?;
    sync_empty()
}

pub(crate) async fn delete_template(st: St, q: Q, Path(name): Path<String>) -> ApiResult {
    let file = template_path(&q).ok_or_else(missing_path)?;
    st.host
        .delete_instance_template(&project(&q), &name, &file)?;
    sync_empty()
}
