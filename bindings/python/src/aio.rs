//! The tokio runtime the module runs everything on, and asyncio awaitables for Rust futures
//! that are completed **without the GIL on tokio's threads**.
//!
//! Why not the usual bridge (a tokio task that takes the GIL and calls
//! `loop.call_soon_threadsafe` when its future is done): when the interpreter exits while
//! such a task is between "result ready" and "GIL released", CPython (before 3.14) ends the
//! thread that asks for the GIL with `pthread_exit`, and a forced unwind through Rust frames
//! aborts the process — a SIGABRT after the script's last line. Here a tokio thread only
//! pushes the Rust result on a queue and writes a byte to a socket the event loop watches
//! (`loop.add_reader`); the loop's own thread, holding the GIL, converts the result and
//! completes the asyncio future. Tokio's threads never touch Python, so interpreter exit
//! cannot catch one inside it.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// The module's single multi-threaded tokio runtime (blocking and asyncio calls alike).
pub(crate) fn runtime() -> PyResult<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    if let Some(rt) = RUNTIME.get() {
        return Ok(rt);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("incus-rt")
        .build()
        .map_err(|e| {
            pyo3::exceptions::PyOSError::new_err(format!("cannot start a tokio runtime: {e}"))
        })?;
    // A racing thread may have set it first; then ours is dropped unused.
    let _ = RUNTIME.set(rt);
    RUNTIME
        .get()
        .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("tokio runtime missing"))
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Turns a finished Rust result into the Python value (or exception) on the loop's thread.
type Completion = Box<dyn FnOnce(Python<'_>) -> PyResult<Py<PyAny>> + Send>;

/// The half of a [`Bridge`] tokio tasks hold: no Python objects in it.
struct Shared {
    /// Written (one byte, non-blocking) when a completion is queued.
    wake: UnixStream,
    done: Mutex<Vec<(u64, Completion)>>,
}

impl Shared {
    fn complete(&self, id: u64, completion: Completion) {
        lock(&self.done).push((id, completion));
        // A full socket means a wake-up is pending already; a closed one means the loop
        // (and its bridge) is gone and nobody waits for the result.
        let _ = (&self.wake).write(&[1]);
    }
}

/// One event loop's end of the bridge: the socket it watches and the futures it owns.
#[pyclass(frozen)]
struct Bridge {
    shared: Arc<Shared>,
    watched: UnixStream,
    next: AtomicU64,
    pending: Mutex<HashMap<u64, Py<PyAny>>>,
}

#[pymethods]
impl Bridge {
    /// The loop's reader callback: completes every future whose result is queued.
    fn _drain(&self, py: Python<'_>) -> PyResult<()> {
        let mut buf = [0u8; 512];
        while matches!((&self.watched).read(&mut buf), Ok(n) if n > 0) {}
        let done = std::mem::take(&mut *lock(&self.shared.done));
        let mut first_error = None;
        for (id, completion) in done {
            let Some(fut) = lock(&self.pending).remove(&id) else {
                continue;
            };
            if let Err(e) = settle(py, fut.bind(py), completion) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Sets the result or exception of `fut` unless it was cancelled meanwhile.
fn settle(py: Python<'_>, fut: &Bound<'_, PyAny>, completion: Completion) -> PyResult<()> {
    if fut.call_method0("done")?.is_truthy()? {
        return Ok(());
    }
    match completion(py) {
        Ok(v) => fut.call_method1("set_result", (v,))?,
        Err(e) => fut.call_method1("set_exception", (e.into_value(py),))?,
    };
    Ok(())
}

/// The done-callback of each future: a cancelled future aborts its tokio task.
#[pyclass(frozen)]
struct OnDone {
    abort: tokio::task::AbortHandle,
    bridge: Py<Bridge>,
    id: u64,
}

#[pymethods]
impl OnDone {
    fn __call__(&self, fut: &Bound<'_, PyAny>) -> PyResult<()> {
        if fut.call_method0("cancelled")?.is_truthy()? {
            self.abort.abort();
        }
        lock(&self.bridge.get().pending).remove(&self.id);
        Ok(())
    }
}

/// The bridge of the running loop, made (and registered with `add_reader`) on first use.
/// Bridges live in a `WeakKeyDictionary` keyed by the loop, so they go with their loop.
fn bridge_for<'py>(
    py: Python<'py>,
    event_loop: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, Bridge>> {
    static BRIDGES: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let bridges = BRIDGES
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(
                py.import("weakref")?
                    .call_method0("WeakKeyDictionary")?
                    .unbind(),
            )
        })?
        .bind(py);
    let found = bridges.call_method1("get", (event_loop,))?;
    if !found.is_none() {
        return Ok(found.cast_into::<Bridge>()?);
    }
    let (wake, watched) = UnixStream::pair()?;
    wake.set_nonblocking(true)?;
    watched.set_nonblocking(true)?;
    let fd = watched.as_raw_fd();
    let bridge = Bound::new(
        py,
        Bridge {
            shared: Arc::new(Shared {
                wake,
                done: Mutex::new(Vec::new()),
            }),
            watched,
            next: AtomicU64::new(0),
            pending: Mutex::new(HashMap::new()),
        },
    )?;
    event_loop.call_method1("add_reader", (fd, bridge.getattr("_drain")?))?;
    bridges.set_item(event_loop, &bridge)?;
    Ok(bridge)
}

/// Runs `f` on the runtime and returns an asyncio future of the running loop for its
/// value; `convert` turns the value (or error) into Python on the loop's thread.
pub(crate) fn spawn<'py, T, E>(
    py: Python<'py>,
    f: impl std::future::Future<Output = Result<T, E>> + Send + 'static,
    convert: impl FnOnce(Python<'_>, Result<T, E>) -> PyResult<Py<PyAny>> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>>
where
    T: Send + 'static,
    E: Send + 'static,
{
    let rt = runtime()?;
    let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
    let bridge = bridge_for(py, &event_loop)?;
    let fut = event_loop.call_method0("create_future")?;
    let b = bridge.get();
    let id = b.next.fetch_add(1, Ordering::Relaxed);
    lock(&b.pending).insert(id, fut.clone().unbind());
    let shared = b.shared.clone();
    let task = rt.spawn(async move {
        let r = f.await;
        shared.complete(id, Box::new(move |py| convert(py, r)));
    });
    let on_done = OnDone {
        abort: task.abort_handle(),
        bridge: bridge.unbind(),
        id,
    };
    fut.call_method1("add_done_callback", (on_done,))?;
    Ok(fut)
}
