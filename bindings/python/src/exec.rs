//! Streaming exec: a running command whose output arrives in chunks as it is written and whose
//! input is written while it runs.

use crate::backend::ExecHandle;
use crate::{Bytes, block, future};
use incus_core::drivers::{BoxReader, BoxWriter};
use incus_core::error::{Error, Result};
use pyo3::prelude::*;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc};

/// An output chunk: stream number (1 stdout, 2 stderr) and bytes.
type Chunk = (u8, Vec<u8>);

struct Shared {
    stdin: Mutex<Option<BoxWriter>>,
    output: Mutex<mpsc::Receiver<Chunk>>,
    status: Mutex<Option<tokio::task::JoinHandle<Result<i32>>>>,
    code: std::sync::OnceLock<i32>,
}

/// A command running in an instance. Read its output (`read` until it returns `None`), write
/// its input (`write`, then `close_stdin`), then `wait` for its exit status. Output not read
/// stays buffered only up to a few chunks: a command writing more blocks until it is read.
#[pyclass(frozen, module = "incus._native")]
pub(crate) struct ExecSession {
    shared: Arc<Shared>,
}

fn pump(r: Option<BoxReader>, fd: u8, tx: mpsc::Sender<Chunk>) {
    let Some(mut r) = r else { return };
    tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((fd, buf[..n].to_vec())).await.is_err() {
                        break;
                    }
                }
            }
        }
    });
}

impl ExecSession {
    /// Starts pumping the command's output (must run inside the runtime). With `input`, that
    /// is fed to standard input in the background, which is then closed: a command that
    /// writes while it reads cannot block on output nobody reads yet.
    pub(crate) fn start(h: ExecHandle, input: Option<Vec<u8>>) -> ExecSession {
        let (tx, rx) = mpsc::channel(8);
        pump(h.stdout, 1, tx.clone());
        pump(h.stderr, 2, tx);
        let mut stdin = h.stdin;
        if let Some(data) = input {
            let w = stdin.take();
            tokio::spawn(async move {
                if let Some(mut w) = w {
                    let _ = w.write_all(&data).await;
                    let _ = w.shutdown().await;
                }
            });
        }
        ExecSession {
            shared: Arc::new(Shared {
                stdin: Mutex::new(stdin),
                output: Mutex::new(rx),
                status: Mutex::new(Some(h.status)),
                code: std::sync::OnceLock::new(),
            }),
        }
    }
}

async fn write(s: Arc<Shared>, data: Vec<u8>) -> Result<()> {
    let mut guard = s.stdin.lock().await;
    let Some(w) = guard.as_mut() else {
        return Err(Error::invalid("Standard input is closed"));
    };
    w.write_all(&data)
        .await
        .map_err(|e| Error::internal(format!("Writing to the command: {e}")))?;
    w.flush()
        .await
        .map_err(|e| Error::internal(format!("Writing to the command: {e}")))
}

async fn close_stdin(s: Arc<Shared>) -> Result<()> {
    if let Some(mut w) = s.stdin.lock().await.take() {
        let _ = w.shutdown().await;
    }
    Ok(())
}

async fn read(s: Arc<Shared>, timeout: Option<f64>) -> Result<Option<(u8, Bytes)>> {
    let mut rx = s.output.lock().await;
    let next = match timeout {
        Some(t) => tokio::time::timeout(std::time::Duration::from_secs_f64(t.max(0.0)), rx.recv())
            .await
            .map_err(|_| Error::new(incus_core::error::ErrorKind::Cancelled, "timed out"))?,
        None => rx.recv().await,
    };
    Ok(next.map(|(fd, b)| (fd, Bytes(b))))
}

async fn wait(s: Arc<Shared>) -> Result<i32> {
    if let Some(c) = s.code.get() {
        return Ok(*c);
    }
    // Waiting means no more input: the command sees end-of-file.
    close_stdin(s.clone()).await?;
    let handle = s.status.lock().await.take();
    let Some(handle) = handle else {
        return s
            .code
            .get()
            .copied()
            .ok_or_else(|| Error::busy("Another wait is in progress"));
    };
    let code = handle
        .await
        .map_err(|e| Error::internal(format!("exec task: {e}")))??;
    let _ = s.code.set(code);
    Ok(code)
}

#[pymethods]
impl ExecSession {
    /// Writes `data` to the command's standard input.
    fn write(&self, py: Python<'_>, data: Vec<u8>) -> PyResult<()> {
        block(py, write(self.shared.clone(), data))
    }

    /// `write` as an awaitable.
    fn write_async<'py>(&self, py: Python<'py>, data: Vec<u8>) -> PyResult<Bound<'py, PyAny>> {
        future(py, write(self.shared.clone(), data))
    }

    /// Closes standard input (the command reads end-of-file).
    fn close_stdin(&self, py: Python<'_>) -> PyResult<()> {
        block(py, close_stdin(self.shared.clone()))
    }

    /// The next output chunk as `(1 or 2, bytes)` (stdout, stderr); `None` once both streams
    /// have ended. With `timeout` (seconds), raises `Cancelled` when nothing came in time.
    #[pyo3(signature = (timeout=None))]
    fn read(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Option<(u8, Bytes)>> {
        block(py, read(self.shared.clone(), timeout))
    }

    /// `read` as an awaitable.
    #[pyo3(signature = (timeout=None))]
    fn read_async<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        future(py, read(self.shared.clone(), timeout))
    }

    /// Closes standard input and waits for the command to end; returns its exit status.
    fn wait(&self, py: Python<'_>) -> PyResult<i32> {
        block(py, wait(self.shared.clone()))
    }

    /// `wait` as an awaitable.
    fn wait_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        future(py, wait(self.shared.clone()))
    }
}
