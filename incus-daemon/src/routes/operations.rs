//! `/1.0/operations` and the `/1.0/events` websocket.

use super::{Q, St, project};
use crate::auth::Access;
use crate::response::{ApiResult, sync, sync_empty};
use axum::Extension;
use axum::extract::Path;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use incus_core::api;
use std::collections::BTreeMap;
use std::time::Duration;

pub(crate) async fn list(st: St, q: Q) -> ApiResult {
    let all = q.get("all-projects").is_some_and(|v| v == "true");
    let p = project(&q);
    let ops = st.host.operations(if all { None } else { Some(&p) });
    let mut grouped: BTreeMap<String, Vec<serde_json::Value>> = BTreeMap::new();
    for op in ops {
        let key = op.status.to_lowercase();
        let v = if super::recursion(&q) >= 1 {
            serde_json::to_value(&op).unwrap_or_default()
        } else {
            serde_json::Value::String(format!("/1.0/operations/{}", op.id))
        };
        grouped.entry(key).or_default().push(v);
    }
    sync(&grouped)
}

/// The operation `id` if the caller may see it: a restricted certificate only its projects'
/// (another project's operation does not exist for it); an untrusted caller only with the
/// operation's `secret` (token operations hand one out), as Incus allows for waiting.
fn visible_operation(
    st: &St,
    access: &Access,
    q: &Q,
    id: &str,
) -> Result<incus_core::host::Operation, incus_core::Error> {
    let op = st.host.operation(id)?;
    match access {
        Access::Untrusted(_) => {
            let given = q.get("secret").map(String::as_str).unwrap_or_default();
            let secret = op
                .get()
                .metadata
                .as_ref()
                .and_then(|m| m.get("secret"))
                .and_then(|s| s.as_str().map(str::to_string));
            match secret {
                Some(s)
                    if !given.is_empty() && incus_core::host::trust::secrets_equal(&s, given) =>
                {
                    Ok(op)
                }
                _ => Err(incus_core::Error::forbidden("not authorized")),
            }
        }
        _ => match access.projects() {
            Some(projects) if !projects.iter().any(|p| p == op.project()) => {
                Err(incus_core::Error::not_found("Operation not found"))
            }
            _ => Ok(op),
        },
    }
}

pub(crate) async fn get(
    st: St,
    Extension(access): Extension<Access>,
    q: Q,
    Path(id): Path<String>,
) -> ApiResult {
    sync(&visible_operation(&st, &access, &q, &id)?.get())
}

pub(crate) async fn cancel(
    st: St,
    Extension(access): Extension<Access>,
    q: Q,
    Path(id): Path<String>,
) -> ApiResult {
    visible_operation(&st, &access, &q, &id)?.cancel()?;
    sync_empty()
}

pub(crate) async fn wait(
    st: St,
    Extension(access): Extension<Access>,
    q: Q,
    Path(id): Path<String>,
) -> ApiResult {
    let op = visible_operation(&st, &access, &q, &id)?;
    let timeout = q
        .get("timeout")
        .and_then(|t| t.parse::<i64>().ok())
        .filter(|t| *t >= 0)
        .map(|t| Duration::from_secs(t.unsigned_abs()));
    sync(&op.wait_status(timeout).await)
}

/// `GET /1.0/events`: one JSON event per text message, in order, filtered by `type` and
/// project. A listener that falls behind the bus is disconnected rather than fed a gap.
use crate::local::EventFilter;

pub(crate) async fn events(st: St, q: Q, ws: WebSocketUpgrade) -> Response {
    let filter = EventFilter::new(
        q.get("type").map(String::as_str),
        q.get("all-projects").is_some_and(|v| v == "true"),
        &project(&q),
    );
    let rx = st.host.events().subscribe();
    ws.on_upgrade(move |socket| pump_events(socket, rx, filter))
        .into_response()
}

async fn pump_events(
    mut socket: WebSocket,
    mut rx: tokio::sync::broadcast::Receiver<api::Event>,
    filter: EventFilter,
) {
    loop {
        tokio::select! {
            ev = rx.recv() => match ev {
                Ok(ev) => {
                    if !filter.wants(&ev) {
                        continue;
                    }
                    let Ok(text) = serde_json::to_string(&ev) else { continue };
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                // Lagged or closed: disconnect, never skip events silently.
                Err(_) => {
                    let _ = socket.send(Message::Close(None)).await;
                    return;
                }
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
}
