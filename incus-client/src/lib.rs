//! # incus-client
//!
//! The Rust client for the Incus REST API 1.0, as `incusd` (ours or the real one) serves it on
//! its unix socket. It speaks the envelopes (sync, async operations, errors with their HTTP
//! status mapped onto [`ErrorKind`]), ETags, projects, operation waiting, the exec websockets
//! and file transfer, using only the [`incus_core::api`] types.
//!
//! ```no_run
//! # async fn demo() -> Result<(), incus_client::Error> {
//! let client = incus_client::Client::from_env()?;
//! for inst in client.instances().await? {
//!     println!("{} {}", inst.name, inst.status);
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Not yet: HTTPS remotes (the remote-API issue), the console websocket, image upload progress
//! callbacks. The unix socket transport builds on unix platforms only; the types build
//! everywhere.

mod exec;
mod files;

pub use exec::{ExecArgs, ExecIo};
pub use incus_core::error::{Error, ErrorKind};
pub use incus_core::file::FileContent;

use incus_core::api;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// The API version this client speaks.
pub const API_VERSION: &str = "1.0";

/// Result with the client's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// A connection to one Incus daemon on its unix socket.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    socket: PathBuf,
    project: Option<String>,
}

/// A decoded API answer: the envelope and the `ETag` header.
#[derive(Debug, Clone)]
pub struct Response {
    /// The envelope.
    pub raw: api::ResponseRaw,
    /// The `ETag` header, when the object has one.
    pub etag: Option<String>,
}

/// Where the local daemon's socket is: `INCUS_SOCKET`, else `$INCUS_DIR/unix.socket`, else
/// `/var/lib/incus/unix.socket`, else `/run/incus/unix.socket` (as the Incus client looks).
pub fn default_socket() -> PathBuf {
    if let Some(s) = std::env::var_os("INCUS_SOCKET").filter(|s| !s.is_empty()) {
        return PathBuf::from(s);
    }
    if let Some(d) = std::env::var_os("INCUS_DIR").filter(|s| !s.is_empty()) {
        return Path::new(&d).join("unix.socket");
    }
    let var = Path::new("/var/lib/incus/unix.socket");
    if var.exists() {
        return var.to_path_buf();
    }
    let run = Path::new("/run/incus/unix.socket");
    if run.exists() {
        return run.to_path_buf();
    }
    var.to_path_buf()
}

fn kind_of(status: u16) -> ErrorKind {
    match status {
        404 => ErrorKind::NotFound,
        409 => ErrorKind::AlreadyExists,
        400 => ErrorKind::InvalidInput,
        403 => ErrorKind::Forbidden,
        412 => ErrorKind::PreconditionFailed,
        501 => ErrorKind::Unsupported,
        _ => ErrorKind::Internal,
    }
}

fn transport(socket: &Path, e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("Failed to talk to the daemon on {}: {e}", socket.display()),
    )
}

/// Percent-encodes a path segment or query value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Client {
    /// A client for the daemon listening on `socket`.
    pub fn new(socket: impl Into<PathBuf>) -> Result<Client> {
        let socket = socket.into();
        let http = reqwest::Client::builder()
            .unix_socket(socket.clone())
            .build()
            .map_err(|e| transport(&socket, e))?;
        Ok(Client {
            http,
            socket,
            project: None,
        })
    }

    /// A client for the local daemon (see [`default_socket`]).
    pub fn from_env() -> Result<Client> {
        Client::new(default_socket())
    }

    /// The same client, scoped to `project` (sent as `?project=` on every request).
    pub fn with_project(mut self, project: impl Into<String>) -> Client {
        let p = project.into();
        self.project = (!p.is_empty()).then_some(p);
        self
    }

    /// The project this client is scoped to (`default` when none).
    pub fn project(&self) -> &str {
        self.project.as_deref().unwrap_or("default")
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The full URL of an API path (`/1.0/...`), with the project added.
    pub fn url(&self, path: &str) -> String {
        let mut url = format!("http://incus{path}");
        if let Some(p) = &self.project {
            let sep = if path.contains('?') { '&' } else { '?' };
            url.push_str(&format!("{sep}project={}", escape(p)));
        }
        url
    }

    /// Sends one request and decodes the envelope; an `error` envelope becomes an [`Error`]
    /// with the kind of its HTTP status.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        etag: Option<&str>,
    ) -> Result<Response> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| Error::invalid(format!("Invalid method {method:?}")))?;
        let mut req = self.http.request(method, self.url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(e) = etag.filter(|e| !e.is_empty()) {
            req = req.header("If-Match", e);
        }
        let resp = req.send().await.map_err(|e| transport(&self.socket, e))?;
        decode(&self.socket, resp).await
    }

    /// `GET path` and decode its metadata.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        let r = self.request("GET", path, None, None).await?;
        metadata(r.raw)
    }

    /// `GET path`, decoded, with the ETag.
    pub async fn get_with_etag<T: DeserializeOwned>(&self, path: &str) -> Result<(T, String)> {
        let r = self.request("GET", path, None, None).await?;
        let etag = r.etag.clone().unwrap_or_default();
        Ok((metadata(r.raw)?, etag))
    }

    /// Sends `body` with `method` to `path`; for an async answer, waits for the operation.
    pub async fn send<B: Serialize>(
        &self,
        method: &str,
        path: &str,
        body: &B,
        etag: Option<&str>,
    ) -> Result<Response> {
        let v = serde_json::to_value(body).map_err(|e| Error::invalid(e.to_string()))?;
        let r = self.request(method, path, Some(&v), etag).await?;
        self.finish(r).await
    }

    /// Sends a request without a body; for an async answer, waits for the operation.
    pub async fn send_empty(&self, method: &str, path: &str) -> Result<Response> {
        let r = self.request(method, path, None, None).await?;
        self.finish(r).await
    }

    async fn finish(&self, r: Response) -> Result<Response> {
        if r.raw.kind == "async" {
            let op = self.wait_operation(&r.raw.operation).await?;
            return Ok(Response {
                raw: api::ResponseRaw::sync(serde_json::to_value(op).unwrap_or_default()),
                etag: None,
            });
        }
        Ok(r)
    }

    /// Waits for an operation (its id or URL) to end; a failed one becomes an [`Error`].
    pub async fn wait_operation(&self, op: &str) -> Result<api::Operation> {
        let id = op.rsplit('/').next().unwrap_or(op);
        let id = id.split('?').next().unwrap_or(id);
        let op: api::Operation = self
            .get(&format!("/1.0/operations/{}/wait?timeout=-1", escape(id)))
            .await?;
        if op.status == "Failure" || op.status == "Cancelled" {
            return Err(Error::new(
                if op.status == "Cancelled" {
                    ErrorKind::Cancelled
                } else {
                    ErrorKind::Internal
                },
                op.err.clone(),
            ));
        }
        Ok(op)
    }

    /// The server's environment and configuration (`GET /1.0`).
    pub async fn server(&self) -> Result<(api::Server, String)> {
        self.get_with_etag("/1.0").await
    }

    /// All instances of the project with their state, snapshots and backups
    /// (`recursion=2`).
    pub async fn instances_full(&self, filter: Option<&str>) -> Result<Vec<api::InstanceFull>> {
        let mut path = "/1.0/instances?recursion=2".to_string();
        if let Some(f) = filter.filter(|f| !f.is_empty()) {
            path.push_str(&format!("&filter={}", escape(f)));
        }
        self.get(&path).await
    }

    /// All instances of the project (`recursion=1`).
    pub async fn instances(&self) -> Result<Vec<api::Instance>> {
        self.get("/1.0/instances?recursion=1").await
    }

    /// One instance and its ETag.
    pub async fn instance(&self, name: &str) -> Result<(api::Instance, String)> {
        self.get_with_etag(&format!("/1.0/instances/{}", escape(name)))
            .await
    }

    /// One instance's live state.
    pub async fn instance_state(&self, name: &str) -> Result<api::InstanceState> {
        self.get(&format!("/1.0/instances/{}/state", escape(name)))
            .await
    }

    /// Creates an instance (and starts it when `req.start`), waiting for the operation.
    pub async fn create_instance(&self, req: &api::InstancesPost) -> Result<()> {
        self.send("POST", "/1.0/instances", req, None).await?;
        Ok(())
    }

    /// Replaces an instance's configuration (`PUT`, with `If-Match` when `etag` is given).
    pub async fn update_instance(
        &self,
        name: &str,
        put: &api::InstancePut,
        etag: Option<&str>,
    ) -> Result<()> {
        self.send(
            "PUT",
            &format!("/1.0/instances/{}", escape(name)),
            put,
            etag,
        )
        .await?;
        Ok(())
    }

    /// Changes an instance's state: `start`, `stop`, `restart`, `freeze`, `unfreeze`.
    pub async fn set_state(
        &self,
        name: &str,
        action: &str,
        force: bool,
        timeout: i64,
    ) -> Result<()> {
        let body = api::InstanceStatePut {
            action: action.into(),
            timeout,
            force,
            stateful: false,
        };
        self.send(
            "PUT",
            &format!("/1.0/instances/{}/state", escape(name)),
            &body,
            None,
        )
        .await?;
        Ok(())
    }

    /// Renames an instance.
    pub async fn rename_instance(&self, name: &str, new_name: &str) -> Result<()> {
        let body = serde_json::json!({ "name": new_name });
        self.send(
            "POST",
            &format!("/1.0/instances/{}", escape(name)),
            &body,
            None,
        )
        .await?;
        Ok(())
    }

    /// Deletes a (stopped) instance.
    pub async fn delete_instance(&self, name: &str) -> Result<()> {
        self.send_empty("DELETE", &format!("/1.0/instances/{}", escape(name)))
            .await?;
        Ok(())
    }

    /// An instance's snapshots.
    pub async fn snapshots(&self, name: &str) -> Result<Vec<api::InstanceSnapshot>> {
        self.get(&format!(
            "/1.0/instances/{}/snapshots?recursion=1",
            escape(name)
        ))
        .await
    }

    /// Takes a snapshot.
    pub async fn create_snapshot(&self, name: &str, snapshot: &str) -> Result<()> {
        let body = serde_json::json!({ "name": snapshot, "stateful": false });
        self.send(
            "POST",
            &format!("/1.0/instances/{}/snapshots", escape(name)),
            &body,
            None,
        )
        .await?;
        Ok(())
    }

    /// Restores a snapshot into its instance.
    pub async fn restore_snapshot(&self, name: &str, snapshot: &str) -> Result<()> {
        let (inst, etag) = self.instance(name).await?;
        let mut put = inst.put;
        put.restore = snapshot.to_string();
        self.update_instance(name, &put, Some(&etag)).await
    }

    /// Images of the project.
    pub async fn images(&self) -> Result<Vec<api::Image>> {
        self.get("/1.0/images?recursion=1").await
    }

    /// The fingerprint an alias (or fingerprint prefix) names.
    pub async fn resolve_image(&self, name: &str) -> Result<String> {
        match self
            .get::<api::ImageAliasesEntry>(&format!("/1.0/images/aliases/{}", escape(name)))
            .await
        {
            Ok(a) => Ok(a.put.target),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let img: api::Image = self
                    .get(&format!("/1.0/images/{}", escape(name)))
                    .await
                    .map_err(|_| Error::not_found(format!("Image {name:?} not found")))?;
                Ok(img.fingerprint)
            }
            Err(e) => Err(e),
        }
    }

    /// Uploads an image: a unified tarball (`rootfs` = `None`) or split metadata and rootfs.
    /// Returns the fingerprint.
    pub async fn import_image(
        &self,
        meta: &Path,
        rootfs: Option<&Path>,
        public: bool,
    ) -> Result<String> {
        let req = self
            .http
            .post(self.url("/1.0/images"))
            .header("X-Incus-public", if public { "1" } else { "0" });
        let req = match rootfs {
            None => {
                let f = tokio::fs::File::open(meta)
                    .await
                    .map_err(|e| Error::io(meta.display(), e))?;
                req.header("Content-Type", "application/octet-stream")
                    .body(reqwest::Body::wrap_stream(reader_stream(f)))
            }
            Some(rootfs) => {
                let body = multipart(meta, rootfs)?;
                req.header(
                    "Content-Type",
                    format!("multipart/form-data; boundary={MULTIPART_BOUNDARY}"),
                )
                .body(body)
            }
        };
        let resp = req.send().await.map_err(|e| transport(&self.socket, e))?;
        let r = decode(&self.socket, resp).await?;
        let op = match r.raw.kind.as_str() {
            "async" => self.wait_operation(&r.raw.operation).await?,
            _ => return Err(Error::internal("Image upload did not start an operation")),
        };
        op.metadata
            .as_ref()
            .and_then(|m| m.get("fingerprint"))
            .and_then(|f| f.as_str())
            .map(str::to_string)
            .ok_or_else(|| Error::internal("Image upload returned no fingerprint"))
    }

    /// Creates an image alias.
    pub async fn create_alias(&self, name: &str, target: &str, description: &str) -> Result<()> {
        let body = serde_json::json!({"name": name, "target": target, "description": description});
        self.send("POST", "/1.0/images/aliases", &body, None)
            .await?;
        Ok(())
    }

    /// Downloads the raw bytes of `path` (for image export and log files).
    pub async fn get_raw(&self, path: &str) -> Result<(reqwest::header::HeaderMap, Vec<u8>)> {
        let resp = self
            .http
            .get(self.url(path))
            .send()
            .await
            .map_err(|e| transport(&self.socket, e))?;
        if !resp.status().is_success() {
            decode(&self.socket, resp).await?;
            return Err(Error::internal("unexpected answer"));
        }
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| transport(&self.socket, e))?;
        Ok((headers, bytes.to_vec()))
    }

    /// Opens a websocket on `path` (an operation's `/websocket?secret=` or `/1.0/events`).
    pub async fn websocket(
        &self,
        path: &str,
    ) -> Result<tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>> {
        let stream = tokio::net::UnixStream::connect(&self.socket)
            .await
            .map_err(|e| transport(&self.socket, e))?;
        let url = self.url(path).replacen("http://", "ws://", 1);
        let (ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .map_err(|e| transport(&self.socket, e))?;
        Ok(ws)
    }
}

/// The event stream of `/1.0/events` (see [`Client::events`]).
#[derive(Debug)]
pub struct Events {
    ws: tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>,
}

impl Events {
    /// The next event, or `None` when the daemon closes the stream (it does so for a
    /// listener that cannot keep up).
    pub async fn next(&mut self) -> Option<Result<serde_json::Value>> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(t)) => {
                    return Some(
                        serde_json::from_str(&t)
                            .map_err(|e| Error::internal(format!("Bad event: {e}"))),
                    );
                }
                Ok(Message::Close(_)) => return None,
                Ok(_) => continue,
                Err(e) => return Some(Err(Error::internal(format!("Event stream: {e}")))),
            }
        }
    }
}

impl Client {
    /// Subscribes to events; `path` is `/1.0/events` with optional `?type=` filters.
    pub async fn events(&self, path: &str) -> Result<Events> {
        Ok(Events {
            ws: self.websocket(path).await?,
        })
    }
}

/// A request body streamed from `r` in 256 KiB chunks.
fn reader_stream<R: tokio::io::AsyncRead + Unpin + Send + 'static>(
    r: R,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
    use tokio::io::AsyncReadExt;
    futures_util::stream::unfold(r, |mut r| async move {
        let mut buf = vec![0u8; 256 * 1024];
        match r.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(buf), r))
            }
            Err(e) => Some((Err(e), r)),
        }
    })
}

const MULTIPART_BOUNDARY: &str = "incus-rs-image-upload-boundary-7c1e";

/// The multipart body of a split image upload (`metadata` then `rootfs`).
fn multipart(meta: &Path, rootfs: &Path) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    for (field, path) in [("metadata", meta), ("rootfs", rootfs)] {
        let data = std::fs::read(path).map_err(|e| Error::io(path.display(), e))?;
        let fname = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        body.extend_from_slice(
            format!(
                "--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{fname}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{MULTIPART_BOUNDARY}--\r\n").as_bytes());
    Ok(body)
}

async fn decode(socket: &Path, resp: reqwest::Response) -> Result<Response> {
    let status = resp.status().as_u16();
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.trim_matches('"').to_string());
    let bytes = resp.bytes().await.map_err(|e| transport(socket, e))?;
    let raw: api::ResponseRaw = serde_json::from_slice(&bytes).map_err(|_| {
        Error::new(
            kind_of(status),
            format!(
                "Unexpected answer (HTTP {status}): {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
            ),
        )
    })?;
    if raw.kind == "error" || status >= 400 {
        let code = if raw.error_code > 0 {
            raw.error_code as u16
        } else {
            status
        };
        return Err(Error::new(kind_of(code), raw.error));
    }
    Ok(Response { raw, etag })
}

fn metadata<T: DeserializeOwned>(raw: api::ResponseRaw) -> Result<T> {
    serde_json::from_value(raw.metadata)
        .map_err(|e| Error::internal(format!("Unexpected answer from the daemon: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape("a b/c"), "a%20b%2Fc");
        assert_eq!(escape("status=running"), "status%3Drunning");
    }

    #[test]
    fn project_in_url() {
        let c = Client::new("/nonexistent")
            .expect("client")
            .with_project("p 1");
        assert_eq!(c.url("/1.0"), "http://incus/1.0?project=p%201");
        assert_eq!(
            c.url("/1.0/instances?recursion=1"),
            "http://incus/1.0/instances?recursion=1&project=p%201"
        );
        assert_eq!(
            Client::new("/x").expect("client").url("/1.0"),
            "http://incus/1.0"
        );
    }

    #[test]
    fn error_kinds() {
        assert_eq!(kind_of(404), ErrorKind::NotFound);
        assert_eq!(kind_of(412), ErrorKind::PreconditionFailed);
        assert_eq!(kind_of(500), ErrorKind::Internal);
    }
}
