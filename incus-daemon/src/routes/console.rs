//! `/1.0/instances/<name>/console`: the console log (GET, DELETE) and console attach (POST).
//!
//! An attach is a `websocket` operation with two streams, `0` (the terminal, binary frames
//! both ways) and `control` (`window-resize` messages). It ends when the client closes either
//! stream or the instance stops; the console is then free for the next holder.

use super::exec::Session;
use super::{Q, St, project};
use crate::response::{ApiError, ApiResult, operation, parse};
use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::ws::Message;
use futures_util::{SinkExt, StreamExt};
use incus_core::api;
use incus_core::error::Error;
use std::collections::BTreeMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `GET /console`: the console log.
pub(crate) async fn log(st: St, q: Q, Path(name): Path<String>) -> ApiResult {
    let log = st.host.console_log(&project(&q), &name)?;
    Ok(crate::response::raw(log))
}

/// `DELETE /console`: empties the console log.
pub(crate) async fn clear(st: St, q: Q, Path(name): Path<String>) -> ApiResult {
    st.host.clear_console_log(&project(&q), &name)?;
    crate::response::sync_empty()
}

/// `POST /console`: attaches to the console.
pub(crate) async fn attach(st: St, q: Q, Path(name): Path<String>, body: Bytes) -> ApiResult {
    let req: api::InstanceConsolePost = parse(&body)?;
    if !matches!(req.kind.as_str(), "" | "console") {
        return Err(ApiError(Error::invalid(format!(
            "Console type {:?} is not supported by containers",
            req.kind
        ))));
    }
    let p = project(&q);
    let size = |v: i64| u16::try_from(v).unwrap_or(0);
    // Attach now, so a stopped instance or a busy console is refused before any operation.
    let console = st
        .host
        .console(&p, &name, size(req.width), size(req.height))
        .await?;
    let (session, metadata) = Session::new(&["0", "control"]);
    let resources = BTreeMap::from([(
        "instances".to_string(),
        vec![format!("/1.0/instances/{name}")],
    )]);
    let daemon = st.0.clone();
    let sess = session.clone();
    let op = st.host.spawn_operation(
        &p,
        "websocket",
        "Showing console",
        resources,
        Some(metadata),
        move |ctx| async move {
            let id = ctx.id();
            let result = pump(console, sess).await;
            if let Ok(mut m) = daemon.sessions.lock() {
                m.remove(&id);
            }
            result.map(|()| None)
        },
    );
    if let Ok(mut m) = st.sessions.lock() {
        m.insert(op.id(), session);
    }
    operation(&op)
}

/// Carries the console both ways until the client or the instance ends it.
async fn pump(
    console: incus_core::drivers::ConsoleAttach,
    sess: std::sync::Arc<Session>,
) -> incus_core::Result<()> {
    let mut streams = sess.data_streams().await?;
    let Some(ws) = streams.remove("0") else {
        return Ok(());
    };
    let incus_core::drivers::ConsoleAttach {
        mut input,
        mut output,
        control,
    } = console;
    let (mut tx, mut rx) = ws.split();
    let to_client = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match output.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let frame = Message::Binary(Bytes::copy_from_slice(&buf[..n]));
                    if tx.send(frame).await.is_err() {
                        break;
                    }
                }
            }
        }
    };
    let from_client = async {
        while let Some(Ok(msg)) = rx.next().await {
            match msg {
                Message::Binary(b) if input.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    let controls = async {
        let (_tx, mut rx) = sess.control().await.split();
        while let Some(Ok(msg)) = rx.next().await {
            match msg {
                Message::Text(t) => {
                    let Ok(ctl) = serde_json::from_str::<api::InstanceExecControl>(&t) else {
                        continue;
                    };
                    let num = |k: &str| ctl.args.get(k).and_then(|v| v.parse::<u16>().ok());
                    if let ("window-resize", Some(w), Some(h)) =
                        (ctl.command.as_str(), num("width"), num("height"))
                    {
                        let _ = control.resize(w, h);
                    }
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    // Whichever side ends first ends the session.
    tokio::select! {
        () = to_client => {}
        () = from_client => {}
        () = controls => {}
    }
    Ok(())
}
