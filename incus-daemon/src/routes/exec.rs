//! `POST /1.0/instances/<name>/exec` and the operation websockets that carry its streams.
//!
//! With `wait-for-websocket`, the exec is a `websocket` operation whose metadata holds one
//! secret per stream (`0`, `1`, `2`, `control`; `0` and `control` in interactive mode). The
//! command starts once every stream is connected. Data travels in binary frames; an empty
//! text frame (or a close) ends a stream. The exit status goes to `metadata.return`.

use super::{Q, St, project};
use crate::Daemon;
use crate::response::{ApiError, ApiResult, operation, parse};
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use futures_util::{SinkExt, StreamExt};
use incus_core::api;
use incus_core::error::Error;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long an exec (or a console attach) waits for its client to connect every stream before
/// it fails, freeing the streams that did connect. Incus waits 5 s; twice that leaves room
/// for a loaded machine.
pub const CONNECT_DEADLINE: Duration = Duration::from_secs(10);

/// The streams of one websocket operation.
pub(crate) struct Session {
    secrets: BTreeMap<String, String>,
    sockets: Mutex<HashMap<String, WebSocket>>,
    arrived: tokio::sync::Notify,
}

impl Session {
    /// A session for the streams `fds`, and the metadata that hands their secrets out.
    pub(crate) fn new(fds: &[&str]) -> (Arc<Session>, serde_json::Map<String, serde_json::Value>) {
        let secrets: BTreeMap<String, String> = fds
            .iter()
            .map(|f| (f.to_string(), incus_core::host::trust::random_secret()))
            .collect();
        let metadata =
            serde_json::Map::from_iter([("fds".to_string(), serde_json::json!(secrets))]);
        let session = Arc::new(Session {
            secrets,
            sockets: Mutex::new(HashMap::new()),
            arrived: tokio::sync::Notify::new(),
        });
        (session, metadata)
    }

    /// Waits (up to [`CONNECT_DEADLINE`]) until every data stream (all but `control`, which is
    /// optional: pylxd never opens it) is connected, and takes them.
    pub(crate) async fn data_streams(&self) -> incus_core::Result<HashMap<String, WebSocket>> {
        let required = self.secrets.keys().filter(|k| *k != "control").count();
        let deadline = tokio::time::Instant::now() + CONNECT_DEADLINE;
        loop {
            // Register interest before looking, so an arrival in between is not missed.
            let arrived = self.arrived.notified();
            let connected = self
                .sockets
                .lock()
                .map(|m| m.keys().filter(|k| *k != "control").count())
                .unwrap_or(0);
            if connected == required {
                break;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                // Incus's words; the operation fails (it is not cancelled).
                return Err(Error::invalid(
                    "Timed out waiting for websockets to connect",
                ));
            }
        }
        Ok(self
            .sockets
            .lock()
            .map(|mut m| {
                let keys: Vec<String> = m.keys().filter(|k| *k != "control").cloned().collect();
                keys.into_iter()
                    .filter_map(|k| m.remove(&k).map(|v| (k, v)))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The `control` stream, whenever it arrives.
    pub(crate) async fn control(&self) -> WebSocket {
        loop {
            let arrived = self.arrived.notified();
            if let Some(ws) = self
                .sockets
                .lock()
                .ok()
                .and_then(|mut m| m.remove("control"))
            {
                return ws;
            }
            arrived.await;
        }
    }
}

pub(crate) async fn exec(st: St, q: Q, Path(name): Path<String>, body: Bytes) -> ApiResult {
    let req: api::InstanceExecPost = parse(&body)?;
    let p = project(&q);
    let inst = st.host.get_instance(&p, &name).await?;
    if inst.status != "Running" {
        return Err(ApiError(Error::busy("Instance is not running")));
    }
    if req.command.is_empty() {
        return Err(ApiError(Error::invalid("The command is empty")));
    }
    let resources = BTreeMap::from([(
        "instances".to_string(),
        vec![format!("/1.0/instances/{name}")],
    )]);
    let host = st.host.clone();
    if !req.wait_for_websocket {
        // Run to completion; output is discarded unless recorded.
        if req.record_output {
            let op = st.host.spawn_operation(
                &p.clone(),
                "task",
                "Executing command",
                resources,
                None,
                move |_| async move {
                    let (code, out, err) = host.exec_recorded(&p, &name, &req).await?;
                    let url = |f: &str| super::instances::exec_output_url(&p, &name, f);
                    Ok(Some(serde_json::Map::from_iter([
                        ("return".to_string(), serde_json::json!(code)),
                        (
                            "output".to_string(),
                            serde_json::json!({"1": url(&out), "2": url(&err)}),
                        ),
                    ])))
                },
            );
            return operation(&op);
        }
        let op = st.host.spawn_operation(
            &p.clone(),
            "task",
            "Executing command",
            resources,
            None,
            move |_| async move {
                let mut proc = host.exec(&p, &name, &req).await?;
                drop(proc.stdin.take());
                let (o, e) = (proc.stdout.take(), proc.stderr.take());
                let drain = |r: Option<incus_core::drivers::BoxReader>| async move {
                    if let Some(mut r) = r {
                        let _ = tokio::io::copy(&mut r, &mut tokio::io::sink()).await;
                    }
                };
                tokio::join!(drain(o), drain(e));
                let code = proc.control.wait().await?;
                Ok(Some(serde_json::Map::from_iter([(
                    "return".to_string(),
                    serde_json::json!(code),
                )])))
            },
        );
        return operation(&op);
    }
    let fds: &[&str] = if req.interactive {
        &["0", "control"]
    } else {
        &["0", "1", "2", "control"]
    };
    let (session, metadata) = Session::new(fds);
    let daemon: Arc<Daemon> = st.0.clone();
    let sess = session.clone();
    let op = st.host.spawn_operation(
        &p.clone(),
        "websocket",
        "Executing command",
        resources,
        Some(metadata),
        move |ctx| async move {
            let id = ctx.id();
            let result = run_session(&host, &p, &name, &req, sess.clone()).await;
            if let Ok(mut m) = daemon.sessions.lock() {
                m.remove(&id);
            }
            result.map(|code| {
                Some(serde_json::Map::from_iter([(
                    "return".to_string(),
                    serde_json::json!(code),
                )]))
            })
        },
    );
    if let Ok(mut m) = st.sessions.lock() {
        m.insert(op.id(), session);
    }
    operation(&op)
}

/// `GET /1.0/operations/<id>/websocket?secret=...`
pub(crate) async fn websocket(
    st: St,
    q: Q,
    Path(id): Path<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let given = q.get("secret").cloned().unwrap_or_default();
    let session = st.sessions.lock().ok().and_then(|m| m.get(&id).cloned());
    let Some(session) = session else {
        return ApiError(Error::not_found("Operation not found")).into_response();
    };
    let Some(fd) = session
        .secrets
        .iter()
        .find(|(_, s)| incus_core::host::trust::secrets_equal(s, &given))
        .map(|(f, _)| f.clone())
    else {
        return ApiError(Error::new(
            incus_core::ErrorKind::Forbidden,
            "Invalid websocket secret",
        ))
        .into_response();
    };
    ws.on_upgrade(move |socket| async move {
        if let Ok(mut m) = session.sockets.lock() {
            m.insert(fd, socket);
        }
        session.arrived.notify_one();
    })
    .into_response()
}

async fn run_session(
    host: &incus_core::host::Host,
    p: &str,
    name: &str,
    req: &api::InstanceExecPost,
    sess: Arc<Session>,
) -> incus_core::Result<i32> {
    let mut sockets = sess.data_streams().await?;
    let mut proc = host.exec(p, name, req).await?;
    let ws0 = sockets.remove("0");
    let mut pumps = Vec::new();

    let (mut out0, in0) = match ws0 {
        Some(ws) => {
            let (tx, rx) = ws.split();
            (Some(tx), Some(rx))
        }
        None => (None, None),
    };
    // Client -> stdin.
    let mut stdin_pump = None;
    if let (Some(mut rx), Some(mut stdin)) = (in0, proc.stdin.take()) {
        stdin_pump = Some(tokio::spawn(async move {
            while let Some(Ok(msg)) = rx.next().await {
                match msg {
                    Message::Binary(b) if stdin.write_all(&b).await.is_err() => {
                        break;
                    }
                    Message::Text(_) | Message::Close(_) => break,
                    _ => {}
                }
            }
            let _ = stdin.shutdown().await;
        }));
    }
    // Output streams -> client.
    let mut writers = Vec::new();
    if req.interactive {
        if let (Some(tx), Some(out)) = (out0.take(), proc.stdout.take()) {
            writers.push(tokio::spawn(copy_out(out, tx)));
        }
    } else {
        for (fd, out) in [("1", proc.stdout.take()), ("2", proc.stderr.take())] {
            if let (Some(ws), Some(out)) = (sockets.remove(fd), out) {
                let (tx, rx) = ws.split();
                writers.push(tokio::spawn(async move {
                    copy_out(out, tx).await;
                    await_peer_close(rx).await;
                }));
            }
        }
    }
    // Control: signals and window resizes.
    let control = Arc::new(tokio::sync::Mutex::new(proc.control));
    {
        let c = control.clone();
        let sess = sess.clone();
        pumps.push(tokio::spawn(async move {
            let (_tx, mut rx) = sess.control().await.split();
            while let Some(Ok(msg)) = rx.next().await {
                let Message::Text(t) = msg else {
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                    continue;
                };
                let Ok(ctl) = serde_json::from_str::<api::InstanceExecControl>(&t) else {
                    continue;
                };
                let guard = c.lock().await;
                match ctl.command.as_str() {
                    "signal" => {
                        let _ = guard.signal(ctl.signal);
                    }
                    "window-resize" => {
                        let num = |k: &str| ctl.args.get(k).and_then(|v| v.parse::<u16>().ok());
                        if let (Some(w), Some(h)) = (num("width"), num("height")) {
                            let _ = guard.resize(w, h);
                        }
                    }
                    _ => {}
                }
            }
        }));
    }
    for w in writers {
        let _ = w.await;
    }
    let code = {
        // Waiting needs the lock; control messages after the end are moot.
        let mut guard = control.lock().await;
        guard.wait().await?
    };
    for p in pumps {
        p.abort();
    }
    // Close the stdin stream properly and give the client a moment to answer the close
    // (clients such as pylxd keep writing to it until told).
    if let Some(mut tx) = out0 {
        let _ = tx.send(Message::Close(None)).await;
    }
    if let Some(pump) = stdin_pump {
        // Past the grace period the socket simply goes with the task.
        let _ = tokio::time::timeout(CLOSE_GRACE, pump).await;
    }
    Ok(code)
}

/// How long a closing stream waits for the client's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Reads until the client's close frame (or the end), bounded by [`CLOSE_GRACE`].
async fn await_peer_close(mut rx: futures_util::stream::SplitStream<WebSocket>) {
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        while let Some(Ok(msg)) = rx.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

async fn copy_out(
    mut out: incus_core::drivers::BoxReader,
    mut tx: futures_util::stream::SplitSink<WebSocket, Message>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match out.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if tx
                    .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
    // End of stream: an empty text frame, then a close.
    let _ = tx.send(Message::Text("".into())).await;
    let _ = tx.send(Message::Close(None)).await;
}
