//! The two ways the module reaches an engine, behind one interface: a daemon on its unix socket
//! ([`incus_client::Client`]) or an engine in this process ([`incus_core::host::Host`] with
//! `incusd`'s router, [`incus_daemon::local::LocalApi`], answering without a socket).
//!
//! Everything the Python layer does goes through four calls: a JSON request, a raw request
//! (files, image upload and export), exec, and events. Both transports answer them with the
//! same envelopes, status codes and errors, because the embedded one runs the daemon's own
//! route code.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request};
use incus_client::{RawBody, RawResponse, Response};
use incus_core::api;
use incus_core::drivers::{BoxReader, BoxWriter};
use incus_core::error::{Error, Result};
use incus_core::host::{Host, HostConfig};
use incus_daemon::local::{EventFilter, LocalApi};
use std::path::PathBuf;
use std::sync::Arc;

/// An engine in this process.
pub(crate) struct Embedded {
    api: LocalApi,
    housekeeping: tokio::task::JoinHandle<()>,
}

impl Drop for Embedded {
    fn drop(&mut self) {
        self.housekeeping.abort();
    }
}

impl Embedded {
    /// Opens the engine on `state_dir` with every storage and network driver, brings its
    /// managed networks up and starts the daemon's housekeeping (scheduled snapshots,
    /// expiry). Instances are not autostarted: the embedding program decides.
    pub(crate) async fn open(
        state_dir: PathBuf,
        helper: Option<PathBuf>,
        default_dir_pool: bool,
    ) -> Result<Embedded> {
        let mut drivers = incus_core::drivers::DriverRegistry::new();
        incus_storage::register_all(&mut drivers);
        incus_network::register_all(&mut drivers);
        let mut config = HostConfig::new(state_dir, drivers);
        config.helper = helper;
        config.default_dir_pool = default_dir_pool;
        let host = Host::open(config).await?;
        for e in host.start_networks().await {
            host.events().log("error", &e);
        }
        let log = host.clone();
        let housekeeping = incus_daemon::local::spawn_housekeeping(host.clone(), move |e| {
            log.events().log("error", &e);
        });
        Ok(Embedded {
            api: LocalApi::new(incus_daemon::Daemon::new(host)),
            housekeeping,
        })
    }

    fn host(&self) -> &Host {
        &self.api.daemon().host
    }

    async fn call(
        &self,
        method: &str,
        uri: &str,
        headers: &[(String, String)],
        body: RawBody,
    ) -> Result<RawResponse> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| Error::invalid(format!("Invalid method {method:?}")))?;
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| Error::invalid(format!("Invalid header name {k:?}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| Error::invalid(format!("Invalid value for header {k}")))?;
            req = req.header(name, value);
        }
        let body = match body {
            RawBody::Empty => Body::empty(),
            RawBody::Bytes(b) => Body::from(b),
            RawBody::File(p) => {
                let (stream, len) = incus_client::file_stream(&p).await?;
                req = req.header("content-length", len);
                Body::from_stream(stream)
            }
        };
        let req = req
            .body(body)
            .map_err(|e| Error::invalid(format!("Invalid request: {e}")))?;
        let resp = self.api.call(req).await;
        let (parts, body) = resp.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .map_err(|e| Error::internal(format!("Reading the answer: {e}")))?
            .to_vec();
        Ok(RawResponse::new(
            parts.status.as_u16(),
            &parts.headers,
            body,
        ))
    }
}

#[derive(Clone)]
enum Transport {
    Remote(incus_client::Client),
    Embedded(Arc<Embedded>),
}

/// A connection to an engine, scoped to one project.
#[derive(Clone)]
pub(crate) struct Backend {
    transport: Transport,
    project: String,
}

/// A running command's streams and its exit status to come.
pub(crate) struct ExecHandle {
    /// Standard input; dropping it gives the command end-of-file.
    pub stdin: Option<BoxWriter>,
    /// Standard output.
    pub stdout: Option<BoxReader>,
    /// Standard error.
    pub stderr: Option<BoxReader>,
    /// The exit status, once the command ends.
    pub status: tokio::task::JoinHandle<Result<i32>>,
}

/// What to run (the subset of exec options the Python API offers).
#[derive(Debug, Clone, Default)]
pub(crate) struct ExecSpec {
    pub command: Vec<String>,
    pub environment: api::ConfigMap,
    pub cwd: Option<String>,
    pub user: Option<u32>,
    pub group: Option<u32>,
}

/// An event subscription.
pub(crate) enum EventSource {
    Remote(Box<incus_client::Events>),
    Embedded {
        rx: tokio::sync::broadcast::Receiver<api::Event>,
        filter: EventFilter,
    },
}

impl EventSource {
    /// The next event, `None` once the stream has ended.
    pub(crate) async fn next(&mut self) -> Option<Result<serde_json::Value>> {
        match self {
            EventSource::Remote(ev) => ev.next().await,
            EventSource::Embedded { rx, filter } => loop {
                match rx.recv().await {
                    Ok(ev) if filter.wants(&ev) => {
                        return Some(
                            serde_json::to_value(&ev).map_err(|e| Error::internal(e.to_string())),
                        );
                    }
                    Ok(_) => continue,
                    // As the daemon does for a listener that fell behind: end the stream
                    // rather than skip events silently.
                    Err(_) => return None,
                }
            },
        }
    }
}

fn with_project(path: &str, project: &str) -> String {
    if project == "default" || path.contains("project=") {
        return path.to_string();
    }
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}project={}", incus_client::escape(project))
}

impl Backend {
    /// A daemon on its unix socket (`None`: where the CLI looks).
    pub(crate) fn unix(socket: Option<PathBuf>) -> Result<Backend> {
        let client = match socket {
            Some(s) => incus_client::Client::new(s)?,
            None => incus_client::Client::from_env()?,
        };
        Ok(Backend {
            transport: Transport::Remote(client),
            project: "default".into(),
        })
    }

    /// A daemon over HTTPS at `url`, with `tls`'s identity and server trust.
    pub(crate) fn https(url: &str, tls: &incus_client::RemoteTls) -> Result<Backend> {
        Ok(Backend {
            transport: Transport::Remote(incus_client::Client::https(url, tls)?),
            project: "default".into(),
        })
    }

    /// An engine opened in this process.
    pub(crate) fn embedded(e: Embedded) -> Backend {
        Backend {
            transport: Transport::Embedded(Arc::new(e)),
            project: "default".into(),
        }
    }

    /// The same connection, scoped to `project`.
    pub(crate) fn with_project(&self, project: &str) -> Backend {
        let project = if project.is_empty() {
            "default"
        } else {
            project
        };
        let transport = match &self.transport {
            Transport::Remote(c) => Transport::Remote(c.clone().with_project(project)),
            Transport::Embedded(e) => Transport::Embedded(e.clone()),
        };
        Backend {
            transport,
            project: project.to_string(),
        }
    }

    /// The project requests are scoped to.
    pub(crate) fn project(&self) -> &str {
        &self.project
    }

    /// `unix`, `https` or `embedded`.
    pub(crate) fn kind(&self) -> &'static str {
        match &self.transport {
            Transport::Remote(c) if c.socket().is_none() => "https",
            Transport::Remote(_) => "unix",
            Transport::Embedded(_) => "embedded",
        }
    }

    /// The embedded engine's state directory; `None` for a daemon's socket.
    pub(crate) fn state_dir(&self) -> Option<PathBuf> {
        match &self.transport {
            Transport::Remote(_) => None,
            Transport::Embedded(e) => Some(e.host().state_dir().to_path_buf()),
        }
    }

    /// A raw request; an error envelope becomes an [`Error`].
    pub(crate) async fn raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(String, String)],
        body: RawBody,
    ) -> Result<RawResponse> {
        match &self.transport {
            Transport::Remote(c) => c.raw_request(method, path, headers, body).await,
            Transport::Embedded(e) => {
                let r = e
                    .call(method, &with_project(path, &self.project), headers, body)
                    .await?;
                r.check()?;
                Ok(r)
            }
        }
    }

    /// A JSON request, decoded into its envelope.
    pub(crate) async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
        etag: Option<&str>,
    ) -> Result<Response> {
        match &self.transport {
            Transport::Remote(c) => c.request(method, path, body, etag).await,
            Transport::Embedded(e) => {
                let mut headers = Vec::new();
                let mut raw = RawBody::Empty;
                if let Some(b) = body {
                    headers.push(("content-type".to_string(), "application/json".to_string()));
                    raw = RawBody::Bytes(
                        serde_json::to_vec(b).map_err(|e| Error::invalid(e.to_string()))?,
                    );
                }
                if let Some(t) = etag.filter(|t| !t.is_empty()) {
                    headers.push(("if-match".to_string(), t.to_string()));
                }
                let r = e
                    .call(method, &with_project(path, &self.project), &headers, raw)
                    .await?;
                incus_client::decode_envelope(r.status, r.header("etag"), &r.body)
            }
        }
    }

    /// Waits for an operation (id or URL) to end; a failed or cancelled one is an error.
    /// Returns the operation as the server sent it.
    pub(crate) async fn wait_operation(&self, op: &str) -> Result<serde_json::Value> {
        let r = self
            .request("GET", &incus_client::operation_wait_path(op), None, None)
            .await?;
        let parsed: api::Operation = serde_json::from_value(r.raw.metadata.clone())
            .map_err(|e| Error::internal(format!("Unexpected operation: {e}")))?;
        incus_client::operation_outcome(parsed)?;
        Ok(r.raw.metadata)
    }

    /// Starts a command in instance `name`.
    pub(crate) async fn exec(&self, name: &str, spec: ExecSpec) -> Result<ExecHandle> {
        match &self.transport {
            Transport::Remote(c) => {
                let (stdin_w, stdin_r) = tokio::io::duplex(64 * 1024);
                let (stdout_w, stdout_r) = tokio::io::duplex(64 * 1024);
                let (stderr_w, stderr_r) = tokio::io::duplex(64 * 1024);
                let args = incus_client::ExecArgs {
                    command: spec.command,
                    environment: spec.environment,
                    cwd: spec.cwd,
                    user: spec.user,
                    group: spec.group,
                    ..Default::default()
                };
                let io = incus_client::ExecIo {
                    stdin: Box::new(stdin_r),
                    stdout: Box::new(stdout_w),
                    stderr: Box::new(stderr_w),
                    control: None,
                };
                let client = c.clone();
                let name = name.to_string();
                let status = tokio::spawn(async move { client.exec(&name, &args, io).await });
                Ok(ExecHandle {
                    stdin: Some(Box::pin(stdin_w)),
                    stdout: Some(Box::pin(stdout_r)),
                    stderr: Some(Box::pin(stderr_r)),
                    status,
                })
            }
            Transport::Embedded(e) => {
                let req = api::InstanceExecPost {
                    command: spec.command,
                    environment: spec.environment,
                    cwd: spec.cwd,
                    user: spec.user,
                    group: spec.group,
                    ..Default::default()
                };
                let p = e.host().exec(&self.project, name, &req).await?;
                let mut control = p.control;
                let status = tokio::spawn(async move { control.wait().await });
                Ok(ExecHandle {
                    stdin: p.stdin,
                    stdout: p.stdout,
                    stderr: p.stderr,
                    status,
                })
            }
        }
    }

    /// Subscribes to events of `types` (comma-separated; all when `None`).
    pub(crate) async fn events(
        &self,
        types: Option<&str>,
        all_projects: bool,
    ) -> Result<EventSource> {
        match &self.transport {
            Transport::Remote(c) => {
                let mut path = String::from("/1.0/events");
                let mut q = Vec::new();
                if let Some(t) = types.filter(|t| !t.is_empty()) {
                    q.push(format!("type={}", incus_client::escape(t)));
                }
                if all_projects {
                    q.push("all-projects=true".into());
                }
                if !q.is_empty() {
                    path.push('?');
                    path.push_str(&q.join("&"));
                }
                Ok(EventSource::Remote(Box::new(c.events(&path).await?)))
            }
            Transport::Embedded(e) => Ok(EventSource::Embedded {
                rx: e.host().events().subscribe(),
                filter: EventFilter::new(types, all_projects, &self.project),
            }),
        }
    }
}

/// Runs a command to completion: `stdin` fed then closed, both outputs collected.
pub(crate) async fn exec_collect(
    backend: &Backend,
    name: &str,
    spec: ExecSpec,
    stdin: Vec<u8>,
) -> Result<(i32, Vec<u8>, Vec<u8>)> {
    let h = backend.exec(name, spec).await?;
    let (out, err) =
        incus_core::drivers::feed_and_collect(h.stdin, stdin, h.stdout, h.stderr).await;
    let code = h
        .status
        .await
        .map_err(|e| Error::internal(format!("exec task: {e}")))??;
    Ok((code, out, err))
}
