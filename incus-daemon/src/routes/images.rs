//! `/1.0/images` (read and delete; upload comes next).

use super::{Q, St, project, recursion};
use crate::response::{ApiResult, operation, sync};
use axum::extract::Path;

pub(crate) async fn list(st: St, q: Q) -> ApiResult {
    let images = st.host.list_images(&project(&q))?;
    if recursion(&q) >= 1 {
        sync(&images)
    } else {
        sync(
            &images
                .iter()
                .map(|i| format!("/1.0/images/{}", i.fingerprint))
                .collect::<Vec<_>>(),
        )
    }
}

pub(crate) async fn get(st: St, q: Q, Path(fp): Path<String>) -> ApiResult {
    sync(&st.host.get_image(&project(&q), &fp)?)
}

pub(crate) async fn delete(st: St, q: Q, Path(fp): Path<String>) -> ApiResult {
    let host = st.host.clone();
    let p = project(&q);
    host.get_image(&p, &fp)?;
    let h = host.clone();
    let op = host.spawn_operation(
        &p.clone(),
        "task",
        "Deleting image",
        Default::default(),
        None,
        move |_| async move { h.delete_image(&p, &fp).await.map(|_| None) },
    );
    operation(&op)
}

pub(crate) async fn aliases(st: St, q: Q) -> ApiResult {
    let aliases = st.host.list_image_aliases(&project(&q))?;
    if recursion(&q) >= 1 {
        sync(&aliases)
    } else {
        sync(
            &aliases
                .iter()
                .map(|a| format!("/1.0/images/aliases/{}", a.name))
                .collect::<Vec<_>>(),
        )
    }
}

pub(crate) async fn alias(st: St, q: Q, Path(name): Path<String>) -> ApiResult {
    sync(&st.host.get_image_alias(&project(&q), &name)?)
}

/// `POST /1.0/images` with the image as the raw body (a unified tarball), as `incus image
/// import` sends it. The body is streamed to a file under `images/` and never held in memory.
/// Split-image (multipart) upload is not supported yet.
pub(crate) async fn upload(
    st: St,
    q: Q,
    headers: axum::http::HeaderMap,
    body: axum::body::Body,
) -> ApiResult {
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;
    let header = |n: &str| {
        headers
            .get(format!("x-incus-{n}"))
            .or_else(|| headers.get(format!("x-lxd-{n}")))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let ctype = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if ctype.starts_with("multipart/") {
        return Err(incus_core::Error::unsupported(
            "Split image upload (multipart) is not supported yet",
        )
        .into());
    }
    if ctype.starts_with("application/json") {
        return Err(incus_core::Error::unsupported(
            "Image creation from a source is not supported yet",
        )
        .into());
    }
    let p = project(&q);
    st.host.get_project(&p)?;
    let tmp = st
        .host
        .state_dir()
        .join("images")
        .join(format!("upload-{}", uuid::Uuid::new_v4().simple()));
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| incus_core::Error::io(tmp.display(), e))?;
    let mut stream = body.into_data_stream();
    let mut failed = None;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => {
                if let Err(e) = file.write_all(&c).await {
                    failed = Some(incus_core::Error::io(tmp.display(), e));
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
    drop(file);
    if let Some(e) = failed {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.into());
    }
    let public = header("public").is_some_and(|v| v == "true" || v == "1");
    let filename = header("filename").unwrap_or_default();
    let host = st.host.clone();
    let tmp_path = tmp.clone();
    let op = st.host.spawn_operation(
        &p.clone(),
        "task",
        "Downloading image",
        Default::default(),
        None,
        move |_| async move {
            let req = incus_core::host::ImageImport {
                metadata: tmp_path.clone(),
                public,
                filename,
                ..Default::default()
            };
            let r = host.import_image(&p, req).await;
            let _ = std::fs::remove_file(&tmp_path);
            let img = r?;
            Ok(Some(serde_json::Map::from_iter([
                (
                    "fingerprint".to_string(),
                    serde_json::json!(img.fingerprint),
                ),
                ("size".to_string(), serde_json::json!(img.size)),
            ])))
        },
    );
    operation(&op)
}

/// `POST /1.0/images/aliases`
pub(crate) async fn create_alias(st: St, q: Q, body: axum::body::Bytes) -> ApiResult {
    let req: incus_core::api::ImageAliasesPost = crate::response::parse(&body)?;
    st.host.create_image_alias(
        &project(&q),
        &req.entry.name,
        &req.entry.put.target,
        &req.entry.put.description,
    )?;
    crate::response::sync_empty()
}

/// `DELETE /1.0/images/aliases/<name>`
pub(crate) async fn delete_alias(st: St, q: Q, Path(name): Path<String>) -> ApiResult {
    st.host.delete_image_alias(&project(&q), &name)?;
    crate::response::sync_empty()
}
