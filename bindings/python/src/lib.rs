//! # incus-python
//!
//! The native half of the Python package `incus` (built by maturin as `incus._native`). It
//! offers one class, [`Connection`], over two transports (a daemon's unix socket, or the
//! engine embedded in the Python process), with four kinds of call: JSON requests, raw
//! requests, exec and events; each has a blocking form (which releases the GIL while Rust
//! works) and an `_async` form returning an asyncio awaitable. Both forms run on one tokio
//! runtime, the module's own; asyncio futures are completed on the event loop's thread, never
//! from tokio's (see `aio`). The object API users see (`Client`, `Host`,
//! `instances`, ...) is the pure-Python layer in `python/incus/`.

mod aio;
mod backend;
mod exec;

use backend::{Backend, Embedded, EventSource, ExecSpec};
use incus_client::RawBody;
use incus_core::error::{Error, ErrorKind};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

pyo3::create_exception!(
    _native,
    IncusError,
    PyException,
    "Any error the engine reported."
);
pyo3::create_exception!(
    _native,
    NotFound,
    IncusError,
    "The object does not exist (404)."
);
pyo3::create_exception!(
    _native,
    AlreadyExists,
    IncusError,
    "An object of that name exists already (409)."
);
pyo3::create_exception!(
    _native,
    InvalidInput,
    IncusError,
    "The request or a value in it is invalid (400)."
);
pyo3::create_exception!(
    _native,
    Busy,
    IncusError,
    "The object is in use or in the wrong state for this (409)."
);
pyo3::create_exception!(_native, Forbidden, IncusError, "Not allowed (403).");
pyo3::create_exception!(
    _native,
    PreconditionFailed,
    IncusError,
    "The object changed since it was read (ETag mismatch, 412)."
);
pyo3::create_exception!(
    _native,
    Unsupported,
    IncusError,
    "The engine or host cannot do this (501)."
);
pyo3::create_exception!(
    _native,
    Cancelled,
    IncusError,
    "The operation was cancelled."
);
pyo3::create_exception!(
    _native,
    InternalError,
    IncusError,
    "Something failed inside the engine, on the host or on the way (500)."
);

/// The Python exception for an engine error.
fn py_err(e: Error) -> PyErr {
    let msg = e.message().to_string();
    match e.kind() {
        ErrorKind::NotFound => NotFound::new_err(msg),
        ErrorKind::AlreadyExists => AlreadyExists::new_err(msg),
        ErrorKind::InvalidInput => InvalidInput::new_err(msg),
        ErrorKind::Busy => Busy::new_err(msg),
        ErrorKind::Forbidden => Forbidden::new_err(msg),
        ErrorKind::PreconditionFailed => PreconditionFailed::new_err(msg),
        ErrorKind::Unsupported => Unsupported::new_err(msg),
        ErrorKind::Cancelled => Cancelled::new_err(msg),
        ErrorKind::Internal => InternalError::new_err(msg),
    }
}

/// Runs `f` on the shared runtime with the GIL released.
fn block<T: Send>(
    py: Python<'_>,
    f: impl std::future::Future<Output = Result<T, Error>> + Send,
) -> PyResult<T> {
    let rt = aio::runtime()?;
    py.detach(|| rt.block_on(f)).map_err(py_err)
}

/// Runs `f` on the shared runtime as an asyncio awaitable (see [`aio`]).
fn future<'py, T>(
    py: Python<'py>,
    f: impl std::future::Future<Output = Result<T, Error>> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    aio::spawn(py, f, |py, r| match r {
        Ok(v) => Ok(pyo3::IntoPyObjectExt::into_py_any(v, py)?),
        Err(e) => Err(py_err(e)),
    })
}

/// A JSON value handed to Python as dicts, lists, strings and numbers.
struct Json(serde_json::Value);

impl<'py> IntoPyObject<'py> for Json {
    type Target = PyAny;
    type Output = Bound<'py, PyAny>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(pythonize::pythonize(py, &self.0)?)
    }
}

/// Bytes handed to Python as `bytes`.
struct Bytes(Vec<u8>);

impl<'py> IntoPyObject<'py> for Bytes {
    type Target = PyBytes;
    type Output = Bound<'py, PyBytes>;
    type Error = std::convert::Infallible;

    fn into_pyobject(self, py: Python<'py>) -> Result<Self::Output, Self::Error> {
        Ok(PyBytes::new(py, &self.0))
    }
}

/// A decoded answer handed to Python as a dict: `type`, `status_code`, `metadata`, `etag`,
/// `operation` (for an operation that was not waited for).
fn answer(r: incus_client::Response) -> Json {
    Json(serde_json::json!({
        "type": r.raw.kind,
        "status_code": r.raw.status_code,
        "metadata": r.raw.metadata,
        "etag": r.etag,
        "operation": r.raw.operation,
    }))
}

async fn request(
    b: Backend,
    method: String,
    path: String,
    body: Option<serde_json::Value>,
    etag: Option<String>,
    wait: bool,
) -> Result<Json, Error> {
    let r = b
        .request(&method, &path, body.as_ref(), etag.as_deref())
        .await?;
    if wait && r.raw.kind == "async" {
        let op = b.wait_operation(&r.raw.operation).await?;
        return Ok(Json(serde_json::json!({
            "type": "sync",
            "status_code": 200,
            "metadata": op,
            "etag": null,
            "operation": r.raw.operation,
        })));
    }
    Ok(answer(r))
}

fn json_arg(v: Option<&Bound<'_, PyAny>>) -> PyResult<Option<serde_json::Value>> {
    match v {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) => Ok(Some(pythonize::depythonize(v)?)),
    }
}

fn raw_body(body: Option<Vec<u8>>, body_file: Option<PathBuf>) -> PyResult<RawBody> {
    match (body, body_file) {
        (Some(_), Some(_)) => Err(pyo3::exceptions::PyValueError::new_err(
            "give body or body_file, not both",
        )),
        (Some(b), None) => Ok(RawBody::Bytes(b)),
        (None, Some(f)) => Ok(RawBody::File(f)),
        (None, None) => Ok(RawBody::Empty),
    }
}

/// `(status, headers, body)` of a raw answer.
type RawTuple = (u16, BTreeMap<String, String>, Bytes);

fn raw_tuple(r: incus_client::RawResponse) -> RawTuple {
    (r.status, r.headers.into_iter().collect(), Bytes(r.body))
}

/// What to run, as the Python layer passes it (a dict).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
struct ExecArgs {
    command: Vec<String>,
    #[pyo3(default)]
    environment: Option<BTreeMap<String, String>>,
    #[pyo3(default)]
    cwd: Option<String>,
    #[pyo3(default)]
    user: Option<u32>,
    #[pyo3(default)]
    group: Option<u32>,
}

impl ExecArgs {
    fn spec(self) -> PyResult<ExecSpec> {
        if self.command.is_empty() {
            return Err(InvalidInput::new_err("The command is empty"));
        }
        Ok(ExecSpec {
            command: self.command,
            environment: self.environment.unwrap_or_default().into_iter().collect(),
            cwd: self.cwd,
            user: self.user,
            group: self.group,
        })
    }
}

async fn raw_call(
    b: Backend,
    method: String,
    path: String,
    headers: Option<BTreeMap<String, String>>,
    body: RawBody,
) -> Result<RawTuple, Error> {
    let headers: Vec<_> = headers.unwrap_or_default().into_iter().collect();
    b.raw(&method, &path, &headers, body).await.map(raw_tuple)
}

async fn run_exec(
    b: Backend,
    name: String,
    spec: ExecSpec,
    stdin: Option<Vec<u8>>,
) -> Result<(i32, Bytes, Bytes), Error> {
    let (code, out, err) =
        backend::exec_collect(&b, &name, spec, stdin.unwrap_or_default()).await?;
    Ok((code, Bytes(out), Bytes(err)))
}

async fn start_exec(
    b: Backend,
    name: String,
    spec: ExecSpec,
    stdin: Option<Vec<u8>>,
) -> Result<exec::ExecSession, Error> {
    let h = b.exec(&name, spec).await?;
    Ok(exec::ExecSession::start(h, stdin))
}

/// A connection to an engine: a daemon on its unix socket, or one embedded in this process.
#[pyclass(frozen, module = "incus._native")]
struct Connection {
    /// `None` once closed.
    backend: std::sync::Mutex<Option<Backend>>,
}

impl Connection {
    fn new(backend: Backend) -> Connection {
        Connection {
            backend: std::sync::Mutex::new(Some(backend)),
        }
    }

    /// The backend (a cheap clone), or `Cancelled` once closed.
    fn b(&self) -> PyResult<Backend> {
        self.backend
            .lock()
            .map_err(|_| InternalError::new_err("connection lock poisoned"))?
            .clone()
            .ok_or_else(|| Cancelled::new_err("This connection is closed"))
    }
}

#[pymethods]
impl Connection {
    /// Connects to the daemon on `socket` (default: `INCUS_SOCKET`, `$INCUS_DIR/unix.socket`,
    /// `/var/lib/incus/unix.socket`, `/run/incus/unix.socket`, as the CLI looks). Nothing is
    /// sent until the first request.
    #[staticmethod]
    #[pyo3(signature = (socket=None, project=None))]
    fn unix(socket: Option<PathBuf>, project: Option<String>) -> PyResult<Connection> {
        let b = Backend::unix(socket).map_err(py_err)?;
        Ok(Connection::new(
            b.with_project(project.as_deref().unwrap_or("default")),
        ))
    }

    /// Connects to the daemon at `url` (`https://host[:port]`) with the client certificate
    /// and key given as PEM text, trusting exactly the server certificate `server_cert` (PEM)
    /// or, when it is `None`, the system's certificate authorities. Nothing is sent until the
    /// first request.
    #[staticmethod]
    #[pyo3(signature = (url, cert=None, key=None, server_cert=None, project=None))]
    fn https(
        url: &str,
        cert: Option<String>,
        key: Option<String>,
        server_cert: Option<String>,
        project: Option<String>,
    ) -> PyResult<Connection> {
        let tls = incus_client::RemoteTls {
            client_cert: cert,
            client_key: key,
            server_cert,
        };
        let b = Backend::https(url, &tls).map_err(py_err)?;
        Ok(Connection::new(
            b.with_project(project.as_deref().unwrap_or("default")),
        ))
    }

    /// Opens the engine on `state_dir` in this process (one engine per directory at a time:
    /// a second one fails with `Busy`). `helper` is the `incus-helper` binary.
    #[staticmethod]
    #[pyo3(signature = (state_dir, helper=None, project=None, default_dir_pool=true))]
    fn embedded(
        py: Python<'_>,
        state_dir: PathBuf,
        helper: Option<PathBuf>,
        project: Option<String>,
        default_dir_pool: bool,
    ) -> PyResult<Connection> {
        let e = block(py, Embedded::open(state_dir, helper, default_dir_pool))?;
        Ok(Connection::new(
            Backend::embedded(e).with_project(project.as_deref().unwrap_or("default")),
        ))
    }

    /// The same connection scoped to another project.
    fn with_project(&self, project: &str) -> PyResult<Connection> {
        Ok(Connection::new(self.b()?.with_project(project)))
    }

    /// The project requests are scoped to.
    #[getter]
    fn project(&self) -> PyResult<String> {
        Ok(self.b()?.project().to_string())
    }

    /// `unix`, `https` or `embedded`.
    #[getter]
    fn kind(&self) -> PyResult<&'static str> {
        Ok(self.b()?.kind())
    }

    /// The embedded engine's state directory (`None` for a socket connection).
    #[getter]
    fn state_dir(&self) -> PyResult<Option<PathBuf>> {
        Ok(self.b()?.state_dir())
    }

    /// Drops this connection. For an embedded engine, then waits up to `timeout` seconds
    /// for the engine to let go of its state directory (work still in flight, such as an
    /// operation or exec session ending, holds it a moment longer; so do other connections
    /// made from this one with `with_project`). Returns whether the directory is free.
    #[pyo3(signature = (timeout=10.0))]
    fn close(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        let taken = self
            .backend
            .lock()
            .map_err(|_| InternalError::new_err("connection lock poisoned"))?
            .take();
        let Some(dir) = taken.and_then(|b| b.state_dir()) else {
            return Ok(true);
        };
        block(py, async move {
            let deadline =
                std::time::Instant::now() + std::time::Duration::from_secs_f64(timeout.max(0.0));
            loop {
                if !incus_core::host::engine_in_use(&dir) {
                    return Ok(true);
                }
                if std::time::Instant::now() >= deadline {
                    return Ok(false);
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
    }

    /// Sends a JSON request; returns the decoded answer as a dict (`type`, `status_code`,
    /// `metadata`, `etag`, `operation`). With `wait`, an operation is waited for and its
    /// final state is the metadata; a failed one raises.
    #[pyo3(signature = (method, path, body=None, etag=None, wait=true))]
    fn request(
        &self,
        py: Python<'_>,
        method: String,
        path: String,
        body: Option<&Bound<'_, PyAny>>,
        etag: Option<String>,
        wait: bool,
    ) -> PyResult<Json> {
        let body = json_arg(body)?;
        block(py, request(self.b()?, method, path, body, etag, wait))
    }

    /// `request` as an awaitable.
    #[pyo3(signature = (method, path, body=None, etag=None, wait=true))]
    fn request_async<'py>(
        &self,
        py: Python<'py>,
        method: String,
        path: String,
        body: Option<&Bound<'py, PyAny>>,
        etag: Option<String>,
        wait: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let body = json_arg(body)?;
        future(py, request(self.b()?, method, path, body, etag, wait))
    }

    /// Waits for an operation (id or URL); returns its final state, raises if it failed.
    fn wait_operation(&self, py: Python<'_>, operation: String) -> PyResult<Json> {
        let b = self.b()?;
        block(
            py,
            async move { b.wait_operation(&operation).await.map(Json) },
        )
    }

    /// `wait_operation` as an awaitable.
    fn wait_operation_async<'py>(
        &self,
        py: Python<'py>,
        operation: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        let b = self.b()?;
        future(
            py,
            async move { b.wait_operation(&operation).await.map(Json) },
        )
    }

    /// Sends a request with a raw body (`body` bytes, or `body_file` streamed from disk);
    /// returns `(status, headers, body)`. An error answer raises.
    #[pyo3(signature = (method, path, headers=None, body=None, body_file=None))]
    fn raw(
        &self,
        py: Python<'_>,
        method: String,
        path: String,
        headers: Option<BTreeMap<String, String>>,
        body: Option<Vec<u8>>,
        body_file: Option<PathBuf>,
    ) -> PyResult<RawTuple> {
        let body = raw_body(body, body_file)?;
        block(py, raw_call(self.b()?, method, path, headers, body))
    }

    /// `raw` as an awaitable.
    #[pyo3(signature = (method, path, headers=None, body=None, body_file=None))]
    fn raw_async<'py>(
        &self,
        py: Python<'py>,
        method: String,
        path: String,
        headers: Option<BTreeMap<String, String>>,
        body: Option<Vec<u8>>,
        body_file: Option<PathBuf>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let body = raw_body(body, body_file)?;
        future(py, raw_call(self.b()?, method, path, headers, body))
    }

    /// Runs a command in instance `name` to completion; returns `(exit status, stdout,
    /// stderr)` (127: command not found, as Incus reports it). `args` is a dict: `command`
    /// (a list), optional `environment`, `cwd`, `user`, `group`.
    #[pyo3(signature = (name, args, stdin=None))]
    fn exec(
        &self,
        py: Python<'_>,
        name: String,
        args: ExecArgs,
        stdin: Option<Vec<u8>>,
    ) -> PyResult<(i32, Bytes, Bytes)> {
        block(py, run_exec(self.b()?, name, args.spec()?, stdin))
    }

    /// `exec` as an awaitable.
    #[pyo3(signature = (name, args, stdin=None))]
    fn exec_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
        args: ExecArgs,
        stdin: Option<Vec<u8>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        future(py, run_exec(self.b()?, name, args.spec()?, stdin))
    }

    /// Starts a command (`args` as for `exec`) and returns its streams as an
    /// [`exec::ExecSession`]. With `stdin`, that is fed in the background and standard
    /// input then closed; without, the session's `write` feeds it.
    #[pyo3(signature = (name, args, stdin=None))]
    fn exec_stream(
        &self,
        py: Python<'_>,
        name: String,
        args: ExecArgs,
        stdin: Option<Vec<u8>>,
    ) -> PyResult<exec::ExecSession> {
        block(py, start_exec(self.b()?, name, args.spec()?, stdin))
    }

    /// `exec_stream` as an awaitable.
    #[pyo3(signature = (name, args, stdin=None))]
    fn exec_stream_async<'py>(
        &self,
        py: Python<'py>,
        name: String,
        args: ExecArgs,
        stdin: Option<Vec<u8>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        future(py, start_exec(self.b()?, name, args.spec()?, stdin))
    }

    /// `events` as an awaitable.
    #[pyo3(signature = (types=None, all_projects=false))]
    fn events_async<'py>(
        &self,
        py: Python<'py>,
        types: Option<String>,
        all_projects: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        future(py, subscribe(self.b()?, types, all_projects))
    }

    /// Subscribes to events (`types`: comma-separated `lifecycle`, `operation`, `logging`;
    /// all when `None`). Events that happen after this returns are all seen.
    #[pyo3(signature = (types=None, all_projects=false))]
    fn events(
        &self,
        py: Python<'_>,
        types: Option<String>,
        all_projects: bool,
    ) -> PyResult<EventStream> {
        block(py, subscribe(self.b()?, types, all_projects))
    }
}

async fn subscribe(
    b: Backend,
    types: Option<String>,
    all_projects: bool,
) -> Result<EventStream, Error> {
    let src = b.events(types.as_deref(), all_projects).await?;
    Ok(EventStream {
        src: Arc::new(tokio::sync::Mutex::new(Some(src))),
    })
}

/// An event subscription: `next(timeout)` blocks, `next_async()` awaits.
#[pyclass(frozen, module = "incus._native")]
struct EventStream {
    src: Arc<tokio::sync::Mutex<Option<EventSource>>>,
}

async fn next_event(
    src: Arc<tokio::sync::Mutex<Option<EventSource>>>,
    timeout: Option<f64>,
) -> Result<Option<Json>, Error> {
    let mut guard = src.lock().await;
    let Some(s) = guard.as_mut() else {
        return Err(Error::new(
            ErrorKind::Cancelled,
            "The event stream is closed",
        ));
    };
    let next = match timeout {
        Some(t) => {
            match tokio::time::timeout(std::time::Duration::from_secs_f64(t.max(0.0)), s.next())
                .await
            {
                Ok(n) => n,
                Err(_) => return Ok(None),
            }
        }
        None => s.next().await,
    };
    match next {
        Some(Ok(v)) => Ok(Some(Json(v))),
        Some(Err(e)) => Err(e),
        None => {
            *guard = None;
            Err(Error::new(ErrorKind::Cancelled, "The event stream ended"))
        }
    }
}

#[pymethods]
impl EventStream {
    /// The next event as a dict; `None` when `timeout` seconds pass first. Raises
    /// `Cancelled` once the stream has ended or was closed.
    #[pyo3(signature = (timeout=None))]
    fn next(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<Json>> {
        block(py, next_event(self.src.clone(), timeout))
    }

    /// `next` as an awaitable.
    #[pyo3(signature = (timeout=None))]
    fn next_async<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        future(py, next_event(self.src.clone(), timeout))
    }

    /// Ends the subscription.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let src = self.src.clone();
        block(py, async move {
            src.lock().await.take();
            Ok(())
        })
    }
}

/// The native module.
/// Makes a client certificate and key at `cert`/`key` (PEM; ECDSA P-384, valid ten years,
/// key mode 0600) unless both exist already. Returns the certificate's PEM text.
#[pyfunction]
fn generate_certificate(cert: PathBuf, key: PathBuf) -> PyResult<String> {
    let (pem, _) = incus_core::tls::load_or_create(&cert, &key, incus_core::tls::Usage::Client)
        .map_err(py_err)?;
    Ok(pem)
}

/// The text of the trust token that a `token` operation's `metadata` stands for, issued
/// for client `name` (base64 JSON, as `incus remote add` takes it).
#[pyfunction]
fn trust_token(name: &str, metadata: &Bound<'_, PyAny>) -> PyResult<String> {
    let meta: serde_json::Map<String, serde_json::Value> = pythonize::depythonize(metadata)?;
    Ok(incus_core::api::CertificateAddToken::from_operation(name, &meta).encode())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_function(wrap_pyfunction!(generate_certificate, m)?)?;
    m.add_function(wrap_pyfunction!(trust_token, m)?)?;
    m.add_class::<Connection>()?;
    m.add_class::<EventStream>()?;
    m.add_class::<exec::ExecSession>()?;
    let errors: [(&str, Bound<'_, pyo3::types::PyType>, u16); 10] = [
        ("IncusError", py.get_type::<IncusError>(), 500),
        ("NotFound", py.get_type::<NotFound>(), 404),
        ("AlreadyExists", py.get_type::<AlreadyExists>(), 409),
        ("InvalidInput", py.get_type::<InvalidInput>(), 400),
        ("Busy", py.get_type::<Busy>(), 409),
        ("Forbidden", py.get_type::<Forbidden>(), 403),
        (
            "PreconditionFailed",
            py.get_type::<PreconditionFailed>(),
            412,
        ),
        ("Unsupported", py.get_type::<Unsupported>(), 501),
        ("Cancelled", py.get_type::<Cancelled>(), 400),
        ("InternalError", py.get_type::<InternalError>(), 500),
    ];
    for (name, ty, status) in errors {
        ty.setattr("status", status)?;
        m.add(name, ty)?;
    }
    let version = PyDict::new(py);
    version.set_item("api", incus_client::API_VERSION)?;
    version.set_item("package", env!("CARGO_PKG_VERSION"))?;
    m.add("VERSION", version)?;
    Ok(())
}
