//! Backups: `incus export`/`incus import` of instances and `incus storage volume
//! export`/`import` of custom volumes, as the Incus client does them (a backup made by an
//! operation, downloaded, then deleted on the server; imports streamed as the request body).
//! Archives are streamed from and to files, never held in memory.

use crate::{Client, Progress, Result, decode, escape, file_stream, transport};
use futures_util::StreamExt;
use incus_core::api;
use incus_core::error::Error;
use std::path::Path;
use tokio::io::AsyncWriteExt;

/// How a backup is made.
#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    /// Leave the snapshots out (`--instance-only`, `--volume-only`).
    pub without_snapshots: bool,
    /// `gzip` (the server's default when empty), `none`, `xz` or `zstd`.
    pub compression: String,
}

/// A backup made for a download expires in a day, as the Incus client asks: one left behind
/// by an interrupted export is removed by the server.
fn expiry() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now() + chrono::Duration::days(1)
}

impl Client {
    /// Exports an instance into the file `dest` (`incus export`): a backup is made, downloaded
    /// and removed from the server. `progress(received, total)` follows the download.
    pub async fn export_instance(
        &self,
        name: &str,
        dest: &Path,
        opts: &BackupOptions,
        progress: Option<Progress>,
    ) -> Result<()> {
        let base = format!("/1.0/instances/{}/backups", escape(name));
        let body = serde_json::json!({
            "instance_only": opts.without_snapshots,
            "optimized_storage": false,
            "expires_at": expiry(),
            "compression_algorithm": opts.compression,
        });
        self.export_via_backup(&base, &body, dest, progress).await
    }

    /// Exports a custom volume into the file `dest` (`incus storage volume export`).
    pub async fn export_volume(
        &self,
        pool: &str,
        name: &str,
        dest: &Path,
        opts: &BackupOptions,
        progress: Option<Progress>,
    ) -> Result<()> {
        let base = format!(
            "/1.0/storage-pools/{}/volumes/custom/{}/backups",
            escape(pool),
            escape(name)
        );
        let body = serde_json::json!({
            "volume_only": opts.without_snapshots,
            "optimized_storage": false,
            "expires_at": expiry(),
            "compression_algorithm": opts.compression,
        });
        self.export_via_backup(&base, &body, dest, progress).await
    }

    async fn export_via_backup(
        &self,
        base: &str,
        body: &serde_json::Value,
        dest: &Path,
        progress: Option<Progress>,
    ) -> Result<()> {
        let r = self.request("POST", base, Some(body), None).await?;
        let op = self.wait_operation(&r.raw.operation).await?;
        let backup = op
            .resources
            .get("backups")
            .and_then(|l| l.first())
            .and_then(|u| u.split('?').next())
            .and_then(|u| u.rsplit('/').next())
            .map(str::to_string)
            .ok_or_else(|| Error::internal("The backup operation named no backup"))?;
        let path = format!("{base}/{backup}");
        let downloaded = self
            .download(&format!("{path}/export"), dest, progress)
            .await;
        // The server's copy goes whatever happened to the download, as the Incus client does.
        let removed = self.send_empty("DELETE", &path).await;
        downloaded?;
        removed.map(|_| ())
    }

    /// Streams the body of `GET path` into the file `dest` (created or truncated; removed
    /// again when the download fails).
    pub async fn download(
        &self,
        path: &str,
        dest: &Path,
        progress: Option<Progress>,
    ) -> Result<()> {
        let resp = self.get_body(path).await?;
        let total = resp.content_length().unwrap_or(0);
        let mut file = tokio::fs::File::create(dest)
            .await
            .map_err(|e| Error::io(dest.display(), e))?;
        let mut stream = resp.bytes_stream();
        let mut received = 0u64;
        let copied = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| transport(&self.endpoint, e))?;
                file.write_all(&chunk)
                    .await
                    .map_err(|e| Error::io(dest.display(), e))?;
                received += chunk.len() as u64;
                if let Some(p) = &progress {
                    p(received, total);
                }
            }
            file.flush().await.map_err(|e| Error::io(dest.display(), e))
        };
        if let Err(e) = copied.await {
            drop(file);
            let _ = tokio::fs::remove_file(dest).await;
            return Err(e);
        }
        Ok(())
    }

    /// Creates an instance from a backup file (`incus import`); `name` and `pool` override
    /// the archive's.
    pub async fn import_instance(
        &self,
        file: &Path,
        name: Option<&str>,
        pool: Option<&str>,
        progress: Option<Progress>,
    ) -> Result<api::Operation> {
        let mut headers = Vec::new();
        if let Some(n) = name {
            headers.push(("X-Incus-name", n));
        }
        if let Some(p) = pool {
            headers.push(("X-Incus-pool", p));
        }
        self.upload("/1.0/instances", file, &headers, progress)
            .await
    }

    /// Creates a custom volume of `pool` from a backup file (`incus storage volume import`);
    /// `name` overrides the archive's.
    pub async fn import_volume(
        &self,
        pool: &str,
        file: &Path,
        name: Option<&str>,
        progress: Option<Progress>,
    ) -> Result<api::Operation> {
        let headers: Vec<(&str, &str)> = name.map(|n| ("X-Incus-name", n)).into_iter().collect();
        let path = format!("/1.0/storage-pools/{}/volumes/custom", escape(pool));
        self.upload(&path, file, &headers, progress).await
    }

    /// `POST path` with a file as an `application/octet-stream` body, then waits for the
    /// operation it starts.
    async fn upload(
        &self,
        path: &str,
        file: &Path,
        headers: &[(&str, &str)],
        progress: Option<Progress>,
    ) -> Result<api::Operation> {
        let (body, total) = file_stream(file).await?;
        let mut sent = 0u64;
        let body = body.inspect(move |chunk| {
            if let (Ok(c), Some(p)) = (chunk, progress.as_ref()) {
                sent += c.len() as u64;
                p(sent, total);
            }
        });
        let mut req = self
            .http
            .post(self.url(path))
            .header("Content-Type", "application/octet-stream")
            .header("Content-Length", total);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(|e| transport(&self.endpoint, e))?;
        let r = decode(&self.endpoint, resp).await?;
        match r.raw.kind.as_str() {
            "async" => self.wait_operation(&r.raw.operation).await,
            _ => Err(Error::internal("The import did not start an operation")),
        }
    }
}
