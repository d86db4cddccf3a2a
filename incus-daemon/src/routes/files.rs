//! `/1.0/instances/<name>/files?path=`: GET, HEAD, POST and DELETE with the `X-Incus-*` (or
//! `X-LXD-*`) headers, as the LXD client and pylxd use them; and `/sftp`, the raw SFTP
//! connection the incus 6.0.4 client uses for every file command.

use super::{Q, St, project};
use crate::response::{ApiError, ApiResult, sync, sync_empty};
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use incus_core::error::Error;
use incus_core::host::{FileAttrs, FileContent, FilePut};

use super::incus_header as header;

/// A numeric header where -1 (or absence) means "unset".
fn id_header(h: &HeaderMap, name: &str) -> Result<Option<u32>, ApiError> {
    match header(h, name) {
        None => Ok(None),
        Some(v) if v == "-1" || v.is_empty() => Ok(None),
        Some(v) => v.parse::<u32>().map(Some).map_err(|_| {
            ApiError(Error::invalid(format!(
                "Invalid X-Incus-{name} header {v:?}"
            )))
        }),
    }
}

fn path_param(q: &Q) -> Result<String, ApiError> {
    let p = q.get("path").cloned().unwrap_or_default();
    if p.is_empty() {
        return Err(ApiError(Error::invalid("Missing path")));
    }
    // The LXD client sends paths without the leading slash.
    Ok(if p.starts_with('/') {
        p
    } else {
        format!("/{p}")
    })
}

fn with_headers(mut r: Response, uid: u32, gid: u32, mode: u32, kind: &str) -> Response {
    let h = r.headers_mut();
    for (prefix, k, v) in [
        ("incus", "uid", uid.to_string()),
        ("incus", "gid", gid.to_string()),
        ("incus", "mode", format!("{mode:04o}")),
        ("incus", "type", kind.to_string()),
        ("lxd", "uid", uid.to_string()),
        ("lxd", "gid", gid.to_string()),
        ("lxd", "mode", format!("{mode:04o}")),
        ("lxd", "type", kind.to_string()),
    ] {
        if let (Ok(name), Ok(val)) = (
            axum::http::HeaderName::from_bytes(format!("x-{prefix}-{k}").as_bytes()),
            HeaderValue::from_str(&v),
        ) {
            h.insert(name, val);
        }
    }
    r
}

pub(crate) async fn get(st: St, q: Q, method: Method, Path(name): Path<String>) -> ApiResult {
    let path = path_param(&q)?;
    let head = method == Method::HEAD;
    match st.host.file_get(&project(&q), &name, &path).await? {
        FileContent::File {
            data,
            uid,
            gid,
            mode,
        } => {
            let body = if head { Vec::new() } else { data };
            let r = crate::response::raw(body);
            Ok(with_headers(r, uid, gid, mode, "file"))
        }
        FileContent::Symlink { target, uid, gid } => {
            let r = crate::response::raw(target);
            Ok(with_headers(r, uid, gid, 0o777, "symlink"))
        }
        FileContent::Directory {
            entries,
            uid,
            gid,
            mode,
        } => Ok(with_headers(sync(&entries)?, uid, gid, mode, "directory")),
    }
}

/// What a file POST asks for, from its `X-Incus-*` headers (`uid`, `gid`, `mode`, `type`,
/// `write`) and body. Malformed headers are a 400.
pub(crate) fn put_request(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(FileAttrs, FilePut), ApiError> {
    let attrs = FileAttrs {
        uid: id_header(headers, "uid")?,
        gid: id_header(headers, "gid")?,
        mode: match header(headers, "mode") {
            None => None,
            Some(m) if m == "-1" || m.is_empty() => None,
            Some(m) => Some(
                u32::from_str_radix(m.trim_start_matches("0o"), 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| {
                        ApiError(Error::invalid(format!("Invalid X-Incus-mode header {m:?}")))
                    })?,
            ),
        },
    };
    let what = match header(headers, "type").as_deref().unwrap_or("file") {
        "file" => FilePut::File {
            data: body.to_vec(),
            append: header(headers, "write").as_deref() == Some("append"),
        },
        "directory" => FilePut::Directory,
        "symlink" => FilePut::Symlink {
            target: String::from_utf8_lossy(body).into_owned(),
        },
        other => {
            return Err(ApiError(Error::invalid(format!(
                "Invalid X-Incus-type {other:?}"
            ))));
        }
    };
    Ok((attrs, what))
}

pub(crate) async fn post(
    st: St,
    q: Q,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult {
    let path = path_param(&q)?;
    let (attrs, what) = put_request(&headers, &body)?;
    st.host
        .file_put(&project(&q), &name, &path, what, attrs)
        .await?;
    sync_empty()
}

pub(crate) async fn delete(
    st: St,
    q: Q,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult {
    let path = path_param(&q)?;
    let recursive = header(&headers, "force").is_some_and(|v| v == "true" || v == "1");
    st.host
        .file_delete(&project(&q), &name, &path, recursive)
        .await?;
    sync_empty()
}

/// `GET /1.0/instances/<name>/sftp` with `Upgrade: sftp`: answers 101 and serves SFTP on
/// the upgraded connection (the instance's root, confined; see [`incus_core::host::SftpSession`]).
pub(crate) async fn sftp(
    st: St,
    Path(name): Path<String>,
    q: Q,
    mut req: axum::extract::Request,
) -> ApiResult {
    let upgrade = req
        .headers()
        .get(axum::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !upgrade.eq_ignore_ascii_case("sftp") {
        return Err(ApiError(Error::invalid(
            "Missing or wrong Upgrade header (expected \"sftp\")",
        )));
    }
    let session = st.host.sftp_session(&project(&q), &name).await?;
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            session.serve(hyper_util::rt::TokioIo::new(upgraded)).await;
        }
    });
    let mut r = axum::http::StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = r.headers_mut();
    h.insert(
        axum::http::header::UPGRADE,
        HeaderValue::from_static("sftp"),
    );
    h.insert(
        axum::http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    Ok(r)
}
