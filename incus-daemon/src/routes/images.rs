//! `/1.0/images`: upload, read, edit, export, delete, aliases. Untrusted callers (HTTPS
//! without a trusted certificate) read public images and their aliases only.

use super::{Q, St, names_or_objects, project};
use crate::auth::Access;
use crate::response::{ApiResult, operation, sync};
use axum::Extension;
use axum::extract::Path;

/// Untrusted callers see public images only, as with Incus; to them a private image does
/// not exist.
fn visible(access: &Access, img: &incus_core::api::Image) -> bool {
    access.trusted() || img.put.public
}

/// The image `fp` if the caller may see it.
fn image_for(
    st: &St,
    access: &Access,
    project: &str,
    fp: &str,
) -> Result<incus_core::api::Image, incus_core::Error> {
    let img = st.host.get_image(project, fp)?;
    if !visible(access, &img) {
        return Err(incus_core::Error::not_found("Image not found"));
    }
    Ok(img)
}

pub(crate) async fn list(st: St, Extension(access): Extension<Access>, q: Q) -> ApiResult {
    let mut images = st.host.list_images(&project(&q))?;
    images.retain(|i| visible(&access, i));
    names_or_objects(&q, images, |i| format!("/1.0/images/{}", i.fingerprint))
}

pub(crate) async fn get(
    st: St,
    Extension(access): Extension<Access>,
    q: Q,
    Path(fp): Path<String>,
) -> ApiResult {
    let img = image_for(&st, &access, &project(&q), &fp)?;
    crate::response::sync_etag(&img, &crate::response::etag(&img.put))
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

pub(crate) async fn aliases(st: St, Extension(access): Extension<Access>, q: Q) -> ApiResult {
    let p = project(&q);
    let mut aliases = st.host.list_image_aliases(&p)?;
    if !access.trusted() {
        let public: std::collections::HashSet<String> = st
            .host
            .list_images(&p)?
            .into_iter()
            .filter(|i| i.put.public)
            .map(|i| i.fingerprint)
            .collect();
        aliases.retain(|a| public.contains(&a.put.target));
    }
    names_or_objects(&q, aliases, |a| format!("/1.0/images/aliases/{}", a.name))
}

pub(crate) async fn alias(
    st: St,
    Extension(access): Extension<Access>,
    q: Q,
    Path(name): Path<String>,
) -> ApiResult {
    let p = project(&q);
    let alias = st.host.get_image_alias(&p, &name)?;
    if !access.trusted() && image_for(&st, &access, &p, &alias.put.target).is_err() {
        return Err(incus_core::Error::not_found("Image alias not found").into());
    }
    sync(&alias)
}

/// `POST /1.0/images` with the image as the raw body (a unified tarball), or as
/// `multipart/form-data` with parts `metadata` and `rootfs` (a split image), as `incus image
/// import` sends them. Bodies are streamed to files under `images/`, never held in memory.
pub(crate) async fn upload(
    st: St,
    q: Q,
    headers: axum::http::HeaderMap,
    request: axum::extract::Request,
) -> ApiResult {
    use axum::extract::FromRequest;
    let ctype0 = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    if ctype0.starts_with("multipart/") {
        let multipart = axum::extract::Multipart::from_request(request, &())
            .await
            .map_err(|e| incus_core::Error::invalid(format!("Invalid multipart upload: {e}")))?;
        return upload_split(st, q, headers, multipart).await;
    }
    let body = request.into_body();
    let header = |n: &str| super::incus_header(&headers, n);
    if ctype0.starts_with("application/json") {
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
    super::save_body(body, &tmp).await?;
    let public = header("public").is_some_and(|v| v == "true" || v == "1");
    let filename = header("filename").unwrap_or_default();
    let tmp_path = tmp.clone();
    let req = incus_core::host::ImageImport {
        metadata: tmp_path.clone(),
        public,
        filename,
        move_files: true,
        ..Default::default()
    };
    import_operation(&st, p, req, vec![tmp_path])
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

/// `GET /1.0/images/<fp>/export`: the original file of a unified image, byte-identical; for a
/// split image, the metadata and rootfs files as `multipart/form-data` parts `metadata` and
/// `rootfs`, as Incus sends them.
pub(crate) async fn export(
    st: St,
    Extension(access): Extension<Access>,
    q: Q,
    Path(fp): Path<String>,
) -> ApiResult {
    use axum::response::IntoResponse;
    let p = project(&q);
    let img = image_for(&st, &access, &p, &fp)?;
    let (meta, rootfs) = st.host.image_files(&p, &img.fingerprint)?;
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| incus_core::Error::io(path.display(), e))
    };
    match rootfs {
        None => {
            let name = if img.filename.is_empty() {
                format!("{}.tar.xz", img.fingerprint)
            } else {
                img.filename.clone()
            };
            Ok((
                [
                    (
                        axum::http::header::CONTENT_TYPE,
                        "application/octet-stream".to_string(),
                    ),
                    (
                        axum::http::header::CONTENT_DISPOSITION,
                        format!("attachment; filename={name}"),
                    ),
                ],
                read(&meta)?,
            )
                .into_response())
        }
        Some(rootfs) => {
            let boundary = format!("incus{}", uuid::Uuid::new_v4().simple());
            let mut body = Vec::new();
            for (part, file, fname) in [
                (
                    "metadata",
                    &meta,
                    format!("meta-{}.tar.xz", img.fingerprint),
                ),
                ("rootfs", &rootfs, format!("{}.squashfs", img.fingerprint)),
            ] {
                body.extend_from_slice(
                    format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{part}\"; filename=\"{fname}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
                );
                body.extend(read(file)?);
                body.extend_from_slice(b"\r\n");
            }
            body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
            Ok((
                [(
                    axum::http::header::CONTENT_TYPE,
                    format!("multipart/form-data; boundary={boundary}"),
                )],
                body,
            )
                .into_response())
        }
    }
}

/// `PUT /1.0/images/<fp>`
pub(crate) async fn put(
    st: St,
    q: Q,
    Path(fp): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult {
    let p = project(&q);
    let current = st.host.get_image(&p, &fp)?;
    crate::response::check_if_match(&headers, &crate::response::etag(&current.put))?;
    let put: incus_core::api::ImagePut = crate::response::parse(&body)?;
    st.host.update_image(&p, &fp, put)?;
    crate::response::sync_empty()
}

/// `PATCH /1.0/images/<fp>`: merges `properties`, replaces the other given fields.
pub(crate) async fn patch(
    st: St,
    q: Q,
    Path(fp): Path<String>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> ApiResult {
    let p = project(&q);
    let current = st.host.get_image(&p, &fp)?;
    crate::response::check_if_match(&headers, &crate::response::etag(&current.put))?;
    let patch: serde_json::Value = crate::response::parse(&body)?;
    let mut put = current.put.clone();
    if let Some(props) = patch.get("properties").and_then(|v| v.as_object()) {
        for (k, v) in props {
            put.properties
                .insert(k.clone(), v.as_str().unwrap_or_default().to_string());
        }
    }
    if let Some(b) = patch.get("public").and_then(|v| v.as_bool()) {
        put.public = b;
    }
    if let Some(b) = patch.get("auto_update").and_then(|v| v.as_bool()) {
        put.auto_update = b;
    }
    if let Some(list) = patch.get("profiles") {
        put.profiles = serde_json::from_value(list.clone())
            .map_err(|e| incus_core::Error::invalid(format!("Invalid profiles: {e}")))?;
    }
    st.host.update_image(&p, &fp, put)?;
    crate::response::sync_empty()
}

/// Streams one multipart field to `path`.
async fn save_field(
    mut field: axum::extract::multipart::Field<'_>,
    path: &std::path::Path,
) -> Result<(), incus_core::Error> {
    use tokio::io::AsyncWriteExt;
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|e| incus_core::Error::io(path.display(), e))?;
    while let Some(chunk) = field
        .chunk()
        .await
        .map_err(|e| incus_core::Error::invalid(format!("Failed reading the upload: {e}")))?
    {
        file.write_all(&chunk)
            .await
            .map_err(|e| incus_core::Error::io(path.display(), e).context(super::STORE_FAILED))?;
    }
    // tokio's File writes in the background: the last chunk must land before anyone reads.
    file.flush()
        .await
        .map_err(|e| incus_core::Error::io(path.display(), e))
}

async fn upload_split(
    st: St,
    q: Q,
    headers: axum::http::HeaderMap,
    mut multipart: axum::extract::Multipart,
) -> ApiResult {
    let p = project(&q);
    st.host.get_project(&p)?;
    let dir = st.host.state_dir().join("images");
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (meta, rootfs) = (
        dir.join(format!("upload-{id}.meta")),
        dir.join(format!("upload-{id}.rootfs")),
    );
    let cleanup = || {
        let _ = std::fs::remove_file(&meta);
        let _ = std::fs::remove_file(&rootfs);
    };
    let mut seen = (false, false);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                cleanup();
                return Err(
                    incus_core::Error::invalid(format!("Invalid multipart upload: {e}")).into(),
                );
            }
        };
        let r = match field.name() {
            Some("metadata") => {
                seen.0 = true;
                save_field(field, &meta).await
            }
            Some("rootfs") | Some("rootfs.img") => {
                seen.1 = true;
                save_field(field, &rootfs).await
            }
            other => Err(incus_core::Error::invalid(format!(
                "Unexpected upload part {other:?}"
            ))),
        };
        if let Err(e) = r {
            cleanup();
            // Read what the client still sends (bounded), so it gets this error.
            let rest = futures_util::stream::unfold(multipart, |mut m| async move {
                let mut field = m.next_field().await.ok().flatten()?;
                let mut n = 0usize;
                while let Ok(Some(c)) = field.chunk().await {
                    n += c.len();
                }
                drop(field);
                Some((Ok::<usize, ()>(n), m))
            });
            super::drain(rest).await;
            return Err(e.into());
        }
    }
    if seen != (true, true) {
        cleanup();
        return Err(incus_core::Error::invalid(
            "A split image upload needs a metadata and a rootfs part",
        )
        .into());
    }
    let public = super::incus_header(&headers, "public").is_some_and(|v| v == "true" || v == "1");
    let req = incus_core::host::ImageImport {
        metadata: meta.clone(),
        rootfs: Some(rootfs.clone()),
        public,
        move_files: true,
        ..Default::default()
    };
    import_operation(&st, p, req, vec![meta, rootfs])
}

/// Imports uploaded files as an operation, removing them afterwards; the operation's metadata
/// carries the new image's `fingerprint` and `size`.
fn import_operation(
    st: &St,
    p: String,
    req: incus_core::host::ImageImport,
    uploads: Vec<std::path::PathBuf>,
) -> ApiResult {
    let host = st.host.clone();
    let op = st.host.spawn_operation(
        &p.clone(),
        "task",
        "Downloading image",
        Default::default(),
        None,
        move |_| async move {
            let r = host.import_image(&p, req).await;
            for f in &uploads {
                let _ = std::fs::remove_file(f);
            }
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
