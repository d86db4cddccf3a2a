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
//! Remotes over HTTPS work too ([`Client::https`], with a [`RemoteTls`] identity and a
//! pinned server certificate, as `incus remote add` sets them up). The unix socket transport
//! builds on unix platforms only; the types build everywhere.

mod backups;
mod console;
mod exec;
mod files;
mod objects;
#[cfg(feature = "tls")]
pub mod tls;

pub use backups::BackupOptions;
pub use console::ConsoleIo;
pub use exec::{ExecArgs, ExecIo};
#[cfg(feature = "tls")]
pub use tls::RemoteTls;

/// An operation progress callback: the text of its `*_progress` metadata.
pub type ProgressText = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// An upload progress callback: `(bytes sent, bytes in all)`.
pub type Progress = std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>;

/// A byte stream to the daemon.
pub trait Connection: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Connection for T {}

/// A websocket to the daemon.
pub type Ws = tokio_tungstenite::WebSocketStream<Box<dyn Connection>>;
pub use incus_core::error::{Error, ErrorKind};
pub use incus_core::file::FileContent;

use futures_util::StreamExt;
use incus_core::api;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The API version this client speaks.
pub const API_VERSION: &str = "1.0";

/// Result with the client's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// A connection to one Incus daemon: on its unix socket, or over HTTPS.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoint: Endpoint,
    project: Option<String>,
}

/// Where a [`Client`] sends its requests.
#[derive(Debug, Clone)]
enum Endpoint {
    /// A unix socket.
    Unix(PathBuf),
    /// An HTTPS server.
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    Https {
        /// `https://host:port`.
        base: String,
        /// `host:port`, to connect to.
        addr: String,
        /// The TLS server name and configuration (identity, server trust).
        tls: TlsParts,
    },
}

/// What an HTTPS endpoint needs to open a TLS connection of its own (websockets).
#[cfg(feature = "tls")]
type TlsParts = (
    rustls::pki_types::ServerName<'static>,
    std::sync::Arc<rustls::ClientConfig>,
);
/// Without the `tls` feature there are no HTTPS endpoints.
#[cfg(not(feature = "tls"))]
type TlsParts = std::convert::Infallible;

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "{}", p.display()),
            Endpoint::Https { base, .. } => f.write_str(base),
        }
    }
}

/// A decoded API answer: the envelope and the `ETag` header.
#[derive(Debug, Clone)]
pub struct Response {
    /// The envelope.
    pub raw: api::ResponseRaw,
    /// The `ETag` header, when the object has one.
    pub etag: Option<String>,
}

/// The body of a [`Client::raw_request`].
#[derive(Debug, Clone, Default)]
pub enum RawBody {
    /// No body.
    #[default]
    Empty,
    /// These bytes.
    Bytes(Vec<u8>),
    /// The content of this file, streamed.
    File(PathBuf),
}

/// An answer as it came (see [`Client::raw_request`]).
#[derive(Debug, Clone, Default)]
pub struct RawResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// An answer from its parts (headers that are not text are left out).
    pub fn new(status: u16, headers: &reqwest::header::HeaderMap, body: Vec<u8>) -> RawResponse {
        let headers = headers
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect();
        RawResponse {
            status,
            headers,
            body,
        }
    }

    /// The value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// An error envelope (status 400 and up) as an [`Error`]; otherwise `Ok`.
    pub fn check(&self) -> Result<()> {
        if self.status >= 400 {
            decode_envelope(self.status, None, &self.body)?;
            return Err(Error::new(
                kind_of(self.status),
                format!("HTTP {}", self.status),
            ));
        }
        Ok(())
    }
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

fn transport(endpoint: &Endpoint, e: impl std::error::Error) -> Error {
    // reqwest's own message is only "error sending request"; the causes say what happened
    // (a refused connection, a certificate the remote does not trust).
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    Error::new(
        ErrorKind::Internal,
        format!("Failed to talk to the daemon on {endpoint}: {text}"),
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
        let builder = reqwest::Client::builder();
        #[cfg(unix)]
        let builder = builder.unix_socket(socket.clone());
        let endpoint = Endpoint::Unix(socket);
        let http = builder.build().map_err(|e| transport(&endpoint, e))?;
        Ok(Client {
            http,
            endpoint,
            project: None,
        })
    }

    /// A client for the daemon at `url` (`https://host[:port]`, port 8443 by default),
    /// authenticating with `tls`'s client certificate and trusting the server as `tls` says.
    /// Nothing is sent until the first request.
    #[cfg(feature = "tls")]
    pub fn https(url: &str, tls: &RemoteTls) -> Result<Client> {
        let (base, addr, name) = tls::authority(url)?;
        let config = std::sync::Arc::new(tls.client_config()?);
        let endpoint = Endpoint::Https {
            base,
            addr,
            tls: (name, config.clone()),
        };
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured((*config).clone())
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| transport(&endpoint, e))?;
        Ok(Client {
            http,
            endpoint,
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

    /// The socket path (`None` for an HTTPS client).
    pub fn socket(&self) -> Option<&Path> {
        match &self.endpoint {
            Endpoint::Unix(p) => Some(p),
            Endpoint::Https { .. } => None,
        }
    }

    /// Where this client connects: `unix://<socket>` or `https://host:port`.
    pub fn endpoint(&self) -> String {
        match &self.endpoint {
            Endpoint::Unix(p) => format!("unix://{}", p.display()),
            Endpoint::Https { base, .. } => base.clone(),
        }
    }

    /// The full URL of an API path (`/1.0/...`), with the project added.
    pub fn url(&self, path: &str) -> String {
        let mut url = match &self.endpoint {
            Endpoint::Unix(_) => format!("http://incus{path}"),
            Endpoint::Https { base, .. } => format!("{base}{path}"),
        };
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
        let resp = req.send().await.map_err(|e| transport(&self.endpoint, e))?;
        decode(&self.endpoint, resp).await
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
        operation_outcome(self.get(&operation_wait_path(op)).await?)
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

    /// [`Client::create_instance`], passing the text of the operation's progress metadata
    /// (`create_instance_from_image_unpack_progress`: "Unpacking image: 45% (12.30MB/s)") to
    /// `progress` as it changes.
    pub async fn create_instance_with_progress(
        &self,
        req: &api::InstancesPost,
        progress: ProgressText,
    ) -> Result<()> {
        // Listen first, so no update is missed.
        let mut events = self.events("/1.0/events?type=operation").await?;
        let v = serde_json::to_value(req).map_err(|e| Error::invalid(e.to_string()))?;
        let r = self
            .request("POST", "/1.0/instances", Some(&v), None)
            .await?;
        if r.raw.kind != "async" {
            return Ok(());
        }
        let id = r
            .raw
            .operation
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string();
        // Until the operation's last event (events come in order: every progress update
        // precedes it).
        let watch = async {
            while let Some(Ok(ev)) = events.next().await {
                let op = &ev["metadata"];
                if op["id"].as_str() != Some(id.as_str()) {
                    continue;
                }
                if let Some(meta) = op["metadata"].as_object() {
                    for (k, v) in meta {
                        if let (true, Some(text)) = (k.ends_with("_progress"), v.as_str()) {
                            progress(text);
                        }
                    }
                }
                if op["status"].as_str() != Some("Running") {
                    break;
                }
            }
        };
        let (r, _) = tokio::join!(
            self.wait_operation(&id),
            tokio::time::timeout(std::time::Duration::from_secs(2), watch)
        );
        r.map(|_| ())
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
        self.import_image_with_progress(meta, rootfs, public, None)
            .await
    }

    /// [`Client::import_image`], calling `progress(sent, total)` (bytes) as the upload goes.
    /// Both forms are streamed from the files, never held in memory.
    pub async fn import_image_with_progress(
        &self,
        meta: &Path,
        rootfs: Option<&Path>,
        public: bool,
        progress: Option<Progress>,
    ) -> Result<String> {
        let req = self
            .http
            .post(self.url("/1.0/images"))
            .header("X-Incus-public", if public { "1" } else { "0" });
        let (body, total, content_type) = match rootfs {
            None => {
                let (stream, len) = file_stream(meta).await?;
                (stream, len, "application/octet-stream".to_string())
            }
            Some(rootfs) => {
                let (stream, len) = multipart(meta, rootfs).await?;
                (
                    stream,
                    len,
                    format!("multipart/form-data; boundary={MULTIPART_BOUNDARY}"),
                )
            }
        };
        let mut sent = 0u64;
        let body = body.inspect(move |chunk| {
            if let (Ok(c), Some(p)) = (chunk, progress.as_ref()) {
                sent += c.len() as u64;
                p(sent, total);
            }
        });
        let resp = req
            .header("Content-Type", content_type)
            .header("Content-Length", total)
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await
            .map_err(|e| transport(&self.endpoint, e))?;
        let r = decode(&self.endpoint, resp).await?;
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

    /// `GET path` answered with a body rather than an envelope (an error envelope becomes an
    /// [`Error`]).
    pub(crate) async fn get_body(&self, path: &str) -> Result<reqwest::Response> {
        let resp = self
            .http
            .get(self.url(path))
            .send()
            .await
            .map_err(|e| transport(&self.endpoint, e))?;
        if !resp.status().is_success() {
            decode(&self.endpoint, resp).await?;
            return Err(Error::internal("unexpected answer"));
        }
        Ok(resp)
    }

    /// Downloads the raw bytes of `path` (for image export and log files).
    pub async fn get_raw(&self, path: &str) -> Result<(reqwest::header::HeaderMap, Vec<u8>)> {
        let resp = self.get_body(path).await?;
        let headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| transport(&self.endpoint, e))?;
        Ok((headers, bytes.to_vec()))
    }

    /// Sends one request with raw bytes (or a file streamed from disk) as its body and
    /// returns the answer as it came: HTTP status, headers (lower-case names) and body. An
    /// error envelope (status 400 and up) becomes an [`Error`]. For file transfer, image
    /// upload and export, logs: anything that is not a JSON envelope.
    pub async fn raw_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: RawBody,
    ) -> Result<RawResponse> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| Error::invalid(format!("Invalid method {method:?}")))?;
        let mut req = self.http.request(method, self.url(path));
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        req = match body {
            RawBody::Empty => req,
            RawBody::Bytes(b) => req.body(b),
            RawBody::File(p) => {
                let (stream, len) = file_stream(&p).await?;
                req.header("Content-Length", len)
                    .body(reqwest::Body::wrap_stream(stream))
            }
        };
        let resp = req.send().await.map_err(|e| transport(&self.endpoint, e))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport(&self.endpoint, e))?
            .to_vec();
        let raw = RawResponse::new(status, &headers, body);
        raw.check()?;
        Ok(raw)
    }

    /// A new connection to the daemon: its unix socket, or TLS over TCP. Unix sockets do not
    /// exist elsewhere (Windows); that is reported.
    async fn connect(&self) -> Result<Box<dyn Connection>> {
        match &self.endpoint {
            #[cfg(feature = "tls")]
            Endpoint::Https {
                addr,
                tls: (name, config),
                ..
            } => {
                let tcp = tokio::net::TcpStream::connect(addr)
                    .await
                    .map_err(|e| transport(&self.endpoint, e))?;
                let s = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|e| transport(&self.endpoint, e))?;
                Ok(Box::new(s))
            }
            #[cfg(not(feature = "tls"))]
            Endpoint::Https { tls, .. } => match *tls {},
            #[cfg(unix)]
            Endpoint::Unix(path) => {
                let s = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|e| transport(&self.endpoint, e))?;
                Ok(Box::new(s))
            }
            #[cfg(not(unix))]
            Endpoint::Unix(path) => Err(Error::invalid(format!(
                "Unix sockets are not supported on this platform ({})",
                path.display()
            ))),
        }
    }

    /// Starts a `websocket` operation with a POST of `body` to `path`; returns it with its
    /// stream secrets (`metadata.fds`).
    pub(crate) async fn websocket_operation<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(api::Operation, BTreeMap<String, String>)> {
        let v = serde_json::to_value(body).map_err(|e| Error::invalid(e.to_string()))?;
        let r = self.request("POST", path, Some(&v), None).await?;
        let op: api::Operation = serde_json::from_value(r.raw.metadata)
            .map_err(|e| Error::internal(format!("Unexpected answer to POST {path}: {e}")))?;
        let fds = op
            .metadata
            .as_ref()
            .and_then(|m| m.get("fds"))
            .and_then(|f| serde_json::from_value(f.clone()).ok())
            .unwrap_or_default();
        Ok((op, fds))
    }

    /// Connects to one stream of a websocket operation.
    pub(crate) async fn operation_websocket(&self, op: &str, secret: &str) -> Result<Ws> {
        self.websocket(&format!(
            "/1.0/operations/{}/websocket?secret={}",
            escape(op),
            escape(secret)
        ))
        .await
    }

    /// POSTs raw bytes (`application/octet-stream`) to `path`.
    pub(crate) async fn post_raw(&self, path: &str, body: Vec<u8>) -> Result<()> {
        let resp = self
            .http
            .post(self.url(path))
            .header("Content-Type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| transport(&self.endpoint, e))?;
        decode(&self.endpoint, resp).await?;
        Ok(())
    }

    /// Opens a websocket on `path` (an operation's `/websocket?secret=` or `/1.0/events`).
    pub async fn websocket(&self, path: &str) -> Result<Ws> {
        let stream = self.connect().await?;
        let url = self.url(path);
        let url = match url.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => url.replacen("http://", "ws://", 1),
        };
        let (ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .map_err(|e| transport(&self.endpoint, e))?;
        Ok(ws)
    }
}

/// The event stream of `/1.0/events` (see [`Client::events`]).
pub struct Events {
    ws: Ws,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events").finish_non_exhaustive()
    }
}

impl Events {
    /// The next event, or `None` when the daemon closes the stream (it does so for a
    /// listener that cannot keep up).
    pub async fn next(&mut self) -> Option<Result<serde_json::Value>> {
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

/// A boxed stream of body chunks.
pub type BodyStream =
    std::pin::Pin<Box<dyn futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static>>;

/// A file streamed as a request body (256 KiB chunks), and its length.
pub async fn file_stream(path: &Path) -> Result<(BodyStream, u64)> {
    let f = tokio::fs::File::open(path)
        .await
        .map_err(|e| Error::io(path.display(), e))?;
    let len = f
        .metadata()
        .await
        .map_err(|e| Error::io(path.display(), e))?
        .len();
    Ok((Box::pin(reader_stream(f)), len))
}

/// The multipart body of a split image upload (`metadata` then `rootfs`), streamed from the
/// two files, and its length.
async fn multipart(meta: &Path, rootfs: &Path) -> Result<(BodyStream, u64)> {
    use futures_util::stream::once;
    let mut body: BodyStream = Box::pin(futures_util::stream::empty());
    let mut total = 0u64;
    for (field, path) in [("metadata", meta), ("rootfs", rootfs)] {
        let fname = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let head = format!(
            "--{MULTIPART_BOUNDARY}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{fname}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .into_bytes();
        let (file, len) = file_stream(path).await?;
        total += head.len() as u64 + len + 2;
        body = Box::pin(
            body.chain(once(async move { Ok(head) }))
                .chain(file)
                .chain(once(async { Ok(b"\r\n".to_vec()) })),
        );
    }
    let tail = format!("--{MULTIPART_BOUNDARY}--\r\n").into_bytes();
    total += tail.len() as u64;
    Ok((Box::pin(body.chain(once(async move { Ok(tail) }))), total))
}

async fn decode(endpoint: &Endpoint, resp: reqwest::Response) -> Result<Response> {
    let status = resp.status().as_u16();
    let etag = resp
        .headers()
        .get("etag")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string());
    let bytes = resp.bytes().await.map_err(|e| transport(endpoint, e))?;
    decode_envelope(status, etag.as_deref(), &bytes)
}

/// The path that waits (without a time limit) for operation `op`, given by id or by URL, to
/// end.
pub fn operation_wait_path(op: &str) -> String {
    let id = op.rsplit('/').next().unwrap_or(op);
    let id = id.split('?').next().unwrap_or(id);
    format!("/1.0/operations/{}/wait?timeout=-1", escape(id))
}

/// An ended operation as a result: `Failure` becomes an internal error and `Cancelled` a
/// cancelled one, each with the operation's error message.
pub fn operation_outcome(op: api::Operation) -> Result<api::Operation> {
    let kind = match op.status.as_str() {
        "Failure" => ErrorKind::Internal,
        "Cancelled" => ErrorKind::Cancelled,
        _ => return Ok(op),
    };
    Err(Error::new(kind, op.err))
}

/// Decodes an API answer (HTTP status, `ETag` header, body) into its envelope; an `error`
/// envelope, or a status of 400 and up, becomes an [`Error`] with the kind of its code. Shared
/// by every transport (the unix socket here, the in-process API of an embedding program).
pub fn decode_envelope(status: u16, etag: Option<&str>, bytes: &[u8]) -> Result<Response> {
    let etag = etag.map(|s| s.trim_matches('"').to_string());
    let raw: api::ResponseRaw = serde_json::from_slice(bytes).map_err(|_| {
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
        let mut kind = kind_of(code);
        // 409 is both "exists already" and "busy" (running, in use) in Incus.
        if kind == ErrorKind::AlreadyExists && !raw.error.to_lowercase().contains("already exist") {
            kind = ErrorKind::Busy;
        }
        return Err(Error::new(kind, raw.error));
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
    fn envelopes_decode_to_kinds() {
        let err = |code: u16, msg: &str| {
            let body = serde_json::json!({"type": "error", "error": msg, "error_code": code,
                "status": "", "status_code": 0, "operation": "", "metadata": null});
            decode_envelope(code, None, body.to_string().as_bytes())
                .expect_err("error envelope")
                .kind()
        };
        assert_eq!(err(404, "Instance not found"), ErrorKind::NotFound);
        assert_eq!(
            err(409, "Profile \"p\" already exists"),
            ErrorKind::AlreadyExists
        );
        assert_eq!(
            err(409, "The instance is currently running"),
            ErrorKind::Busy
        );
        assert_eq!(
            err(412, "ETag doesn't match"),
            ErrorKind::PreconditionFailed
        );
        let ok = serde_json::json!({"type": "sync", "status": "Success", "status_code": 200,
            "operation": "", "error_code": 0, "error": "", "metadata": {"a": 1}});
        let r = decode_envelope(200, Some("\"abc\""), ok.to_string().as_bytes()).expect("ok");
        assert_eq!(r.etag.as_deref(), Some("abc"));
        assert_eq!(r.raw.metadata["a"], 1);
        let garbage = decode_envelope(502, None, b"<html>").expect_err("not json");
        assert_eq!(garbage.kind(), ErrorKind::Internal);
    }

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
