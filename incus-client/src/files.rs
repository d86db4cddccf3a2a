//! Files inside instances through `/1.0/instances/<name>/files` and its `X-Incus-*` headers.

use crate::{Client, Error, Result, escape};
use incus_core::file::FileContent;

fn files_path(name: &str, path: &str) -> String {
    format!(
        "/1.0/instances/{}/files?path={}",
        escape(name),
        escape(path)
    )
}

impl Client {
    /// Reads a path inside an instance.
    pub async fn file_get(&self, name: &str, path: &str) -> Result<FileContent> {
        let (h, body) = self.get_raw(&files_path(name, path)).await?;
        let num = |k: &str| {
            h.get(format!("x-incus-{k}"))
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0)
        };
        let mode = h
            .get("x-incus-mode")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| u32::from_str_radix(v.trim_start_matches("0o"), 8).ok())
            .unwrap_or(0);
        let kind = h
            .get("x-incus-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("file")
            .to_string();
        Ok(match kind.as_str() {
            "directory" => {
                let raw: incus_core::api::ResponseRaw = serde_json::from_slice(&body)
                    .map_err(|e| Error::internal(format!("Unexpected directory answer: {e}")))?;
                FileContent::Directory {
                    entries: serde_json::from_value(raw.metadata).unwrap_or_default(),
                    uid: num("uid"),
                    gid: num("gid"),
                    mode,
                }
            }
            "symlink" => FileContent::Symlink {
                target: String::from_utf8_lossy(&body).trim_end().to_string(),
                uid: num("uid"),
                gid: num("gid"),
            },
            _ => FileContent::File {
                data: body,
                uid: num("uid"),
                gid: num("gid"),
                mode,
            },
        })
    }

    /// Writes a path inside an instance. `kind` is `file`, `directory` or `symlink` (whose
    /// `data` is the target); `None` ids and mode keep Incus's defaults.
    #[allow(clippy::too_many_arguments)]
    pub async fn file_put(
        &self,
        name: &str,
        path: &str,
        kind: &str,
        data: Vec<u8>,
        uid: Option<u32>,
        gid: Option<u32>,
        mode: Option<u32>,
        append: bool,
    ) -> Result<()> {
        let mut req = self
            .http
            .post(self.url(&files_path(name, path)))
            .header("X-Incus-type", kind)
            .header("X-Incus-write", if append { "append" } else { "overwrite" })
            .header("Content-Type", "application/octet-stream")
            .body(data);
        if let Some(u) = uid {
            req = req.header("X-Incus-uid", u.to_string());
        }
        if let Some(g) = gid {
            req = req.header("X-Incus-gid", g.to_string());
        }
        if let Some(m) = mode {
            req = req.header("X-Incus-mode", format!("{m:04o}"));
        }
        let resp = req
            .send()
            .await
            .map_err(|e| crate::transport(&self.endpoint, e))?;
        crate::decode(&self.endpoint, resp).await?;
        Ok(())
    }

    /// Deletes a path inside an instance (a directory must be empty).
    pub async fn file_delete(&self, name: &str, path: &str) -> Result<()> {
        self.request("DELETE", &files_path(name, path), None, None)
            .await?;
        Ok(())
    }
}
