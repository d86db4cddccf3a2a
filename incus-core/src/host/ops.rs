//! Operations (id, status, progress metadata, cancel, wait) and the event bus.
//!
//! Every long action of the engine runs as an operation on the tokio runtime. Each state
//! change is published as an `operation` event; actions publish `lifecycle` events. Events go
//! through a bounded broadcast channel: a subscriber that falls more than
//! [`EVENT_BUFFER`] events behind gets `Lagged` and must re-sync (the daemon disconnects it),
//! so nobody loses events silently. Finished operations stay visible for [`LINGER`].

use crate::api::{self, StatusCode};
use crate::error::{Error, ErrorKind, Result};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// How many events a slow subscriber may fall behind before it is told it lagged.
pub const EVENT_BUFFER: usize = 4096;
/// How long a finished operation stays listed.
pub const LINGER: Duration = Duration::from_secs(5);

/// The in-process event bus.
#[derive(Clone)]
pub struct Events {
    tx: broadcast::Sender<api::Event>,
}

impl Default for Events {
    fn default() -> Self {
        Events {
            tx: broadcast::channel(EVENT_BUFFER).0,
        }
    }
}

impl Events {
    /// A new receiver of every event sent from now on, in order.
    pub fn subscribe(&self) -> broadcast::Receiver<api::Event> {
        self.tx.subscribe()
    }

    /// Publishes an event of `kind` with `metadata`.
    pub fn send(&self, kind: &str, project: &str, metadata: serde_json::Value) {
        let _ = self.tx.send(api::Event {
            kind: kind.into(),
            timestamp: chrono::Utc::now(),
            metadata,
            location: "none".into(),
            project: project.into(),
        });
    }

    /// Publishes a lifecycle event (`instance-started`, ...).
    pub fn lifecycle(
        &self,
        action: &str,
        source: &str,
        project: &str,
        context: Option<serde_json::Map<String, serde_json::Value>>,
    ) {
        let name = source.rsplit('/').next().unwrap_or_default().to_string();
        let ev = api::EventLifecycle {
            action: action.into(),
            source: source.into(),
            context,
            requestor: None,
            name,
            project: project.into(),
        };
        self.send(
            "lifecycle",
            project,
            serde_json::to_value(ev).unwrap_or_default(),
        );
    }

    /// Publishes a logging event.
    pub fn log(&self, level: &str, message: &str) {
        let ev = api::EventLogging {
            message: message.into(),
            level: level.into(),
            context: Default::default(),
        };
        self.send("logging", "", serde_json::to_value(ev).unwrap_or_default());
    }
}

struct OpState {
    op: Mutex<api::Operation>,
    project: String,
    done: watch::Sender<bool>,
    cancel: watch::Sender<bool>,
    error_kind: Mutex<Option<ErrorKind>>,
}

/// The registry of operations.
#[derive(Clone, Default)]
pub struct Operations {
    map: Arc<Mutex<HashMap<String, Arc<OpState>>>>,
    events: Events,
}

/// A handle on one operation.
#[derive(Clone)]
pub struct Operation {
    state: Arc<OpState>,
}

/// Lets a running operation report progress and notice cancellation.
#[derive(Clone)]
pub struct OpContext {
    state: Arc<OpState>,
    events: Events,
}

impl OpContext {
    /// The operation's id.
    pub fn id(&self) -> String {
        self.state
            .op
            .lock()
            .map(|o| o.id.clone())
            .unwrap_or_default()
    }

    /// Merges `key: value` into the operation's metadata and publishes the change.
    pub fn set_metadata(&self, key: &str, value: serde_json::Value) {
        let snapshot = {
            let Ok(mut op) = self.state.op.lock() else {
                return;
            };
            op.metadata
                .get_or_insert_with(Default::default)
                .insert(key.into(), value);
            op.updated_at = chrono::Utc::now();
            op.clone()
        };
        self.events.send(
            "operation",
            &self.state.project,
            serde_json::to_value(snapshot).unwrap_or_default(),
        );
    }

    /// Whether cancellation was requested.
    pub fn is_cancelled(&self) -> bool {
        *self.state.cancel.borrow()
    }

    /// Resolves when cancellation is requested.
    pub async fn cancelled(&self) {
        let mut rx = self.state.cancel.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }
}

impl Operations {
    /// The registry publishing on `events`.
    pub fn new(events: Events) -> Self {
        Operations {
            map: Default::default(),
            events,
        }
    }

    /// Starts `work` as a `task` operation and returns its handle at once.
    pub fn spawn<F, Fut>(
        &self,
        project: &str,
        description: &str,
        resources: BTreeMap<String, Vec<String>>,
        may_cancel: bool,
        work: F,
    ) -> Operation
    where
        F: FnOnce(OpContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<serde_json::Map<String, serde_json::Value>>>>
            + Send
            + 'static,
    {
        self.spawn_class(
            project,
            "task",
            description,
            resources,
            None,
            may_cancel,
            work,
        )
    }

    /// Like [`Operations::spawn`] with an operation class (`task`, `websocket`, `token`) and
    /// initial metadata (for example a websocket operation's stream secrets).
    #[allow(clippy::too_many_arguments)]
    pub fn spawn_class<F, Fut>(
        &self,
        project: &str,
        class: &str,
        description: &str,
        resources: BTreeMap<String, Vec<String>>,
        metadata: Option<serde_json::Map<String, serde_json::Value>>,
        may_cancel: bool,
        work: F,
    ) -> Operation
    where
        F: FnOnce(OpContext) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Option<serde_json::Map<String, serde_json::Value>>>>
            + Send
            + 'static,
    {
        let now = chrono::Utc::now();
        let id = uuid::Uuid::new_v4().to_string();
        let op = api::Operation {
            id: id.clone(),
            class: class.into(),
            description: description.into(),
            created_at: now,
            updated_at: now,
            status: StatusCode::Running.as_str().into(),
            status_code: StatusCode::Running.code(),
            resources,
            metadata,
            may_cancel,
            err: String::new(),
            location: "none".into(),
        };
        let state = Arc::new(OpState {
            op: Mutex::new(op.clone()),
            project: project.into(),
            done: watch::channel(false).0,
            cancel: watch::channel(false).0,
            error_kind: Mutex::new(None),
        });
        if let Ok(mut m) = self.map.lock() {
            m.insert(id.clone(), state.clone());
        }
        self.events.send(
            "operation",
            project,
            serde_json::to_value(&op).unwrap_or_default(),
        );
        let ctx = OpContext {
            state: state.clone(),
            events: self.events.clone(),
        };
        let (map, events, st) = (self.map.clone(), self.events.clone(), state.clone());
        tokio::spawn(async move {
            // A nested task turns a panic in the work into a failed operation, not a hang.
            let result = match tokio::spawn(work(ctx)).await {
                Ok(r) => r,
                Err(e) => Err(Error::internal(format!("operation task failed: {e}"))),
            };
            let snapshot = {
                let mut op = match st.op.lock() {
                    Ok(op) => op,
                    Err(p) => p.into_inner(),
                };
                let status = match &result {
                    Ok(meta) => {
                        if let Some(meta) = meta {
                            op.metadata
                                .get_or_insert_with(Default::default)
                                .extend(meta.clone());
                        }
                        StatusCode::Success
                    }
                    Err(e) if e.kind() == ErrorKind::Cancelled => {
                        op.err = e.message().into();
                        StatusCode::Cancelled
                    }
                    Err(e) => {
                        op.err = e.message().into();
                        StatusCode::Failure
                    }
                };
                if let Err(e) = &result
                    && let Ok(mut k) = st.error_kind.lock()
                {
                    *k = Some(e.kind());
                }
                op.status = status.as_str().into();
                op.status_code = status.code();
                op.may_cancel = false;
                op.updated_at = chrono::Utc::now();
                op.clone()
            };
            events.send(
                "operation",
                &st.project,
                serde_json::to_value(&snapshot).unwrap_or_default(),
            );
            // send_replace stores the value even when nobody waits yet (send would drop it).
            st.done.send_replace(true);
            tokio::time::sleep(LINGER).await;
            if let Ok(mut m) = map.lock() {
                m.remove(&snapshot.id);
            }
        });
        Operation { state }
    }

    /// The operation `id`.
    pub fn get(&self, id: &str) -> Result<Operation> {
        self.map
            .lock()
            .ok()
            .and_then(|m| m.get(id).cloned())
            .map(|state| Operation { state })
            .ok_or_else(|| Error::not_found("Operation not found"))
    }

    /// Every known operation of `project` (all projects with `None`).
    pub fn list(&self, project: Option<&str>) -> Vec<api::Operation> {
        let Ok(m) = self.map.lock() else {
            return Vec::new();
        };
        let mut v: Vec<api::Operation> = m
            .values()
            .filter(|s| project.is_none_or(|p| s.project == p))
            .filter_map(|s| s.op.lock().ok().map(|o| o.clone()))
            .collect();
        v.sort_by_key(|a| a.created_at);
        v
    }
}

impl std::fmt::Debug for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = self.get();
        f.debug_struct("Operation")
            .field("id", &op.id)
            .field("status", &op.status)
            .finish()
    }
}

impl Operation {
    /// The operation's id.
    pub fn id(&self) -> String {
        self.get().id
    }

    /// The project the operation belongs to.
    pub fn project(&self) -> &str {
        &self.state.project
    }

    /// The operation as the API shows it now.
    pub fn get(&self) -> api::Operation {
        match self.state.op.lock() {
            Ok(op) => op.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Requests cancellation; `Busy` if the operation cannot be cancelled.
    pub fn cancel(&self) -> Result<()> {
        if !self.get().may_cancel {
            return Err(Error::busy("This operation can't be cancelled"));
        }
        self.state.cancel.send_replace(true);
        Ok(())
    }

    /// Waits for the end (or `timeout`) and returns the operation's final state.
    pub async fn wait_status(&self, timeout: Option<Duration>) -> api::Operation {
        let mut rx = self.state.done.subscribe();
        let fut = rx.wait_for(|d| *d);
        match timeout {
            Some(t) => {
                let _ = tokio::time::timeout(t, fut).await;
            }
            None => {
                let _ = fut.await;
            }
        }
        self.get()
    }

    /// Waits for the end; the operation's error (with its kind) if it failed.
    pub async fn wait(&self) -> Result<api::Operation> {
        let op = self.wait_status(None).await;
        if op.status_code == StatusCode::Success.code() {
            Ok(op)
        } else {
            let kind = self
                .state
                .error_kind
                .lock()
                .ok()
                .and_then(|k| *k)
                .unwrap_or(ErrorKind::Internal);
            Err(Error::new(kind, op.err))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn success_failure_cancel_and_events() {
        let events = Events::default();
        let mut rx = events.subscribe();
        let ops = Operations::new(events);
        let op = ops.spawn("default", "ok", BTreeMap::new(), false, |ctx| async move {
            ctx.set_metadata("progress", serde_json::json!("50%"));
            Ok(None)
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        let done = op
            .wait()
            .await
            .expect("success, even when waited for after the end");
        assert_eq!(done.status, "Success");
        assert_eq!(done.metadata.expect("metadata")["progress"], "50%");
        assert!(ops.get(&done.id).is_ok(), "lingers after the end");
        let first = rx.recv().await.expect("event");
        assert_eq!(first.kind, "operation");

        let bad = ops.spawn("default", "bad", BTreeMap::new(), false, |_| async {
            Err(Error::busy("in use"))
        });
        let e = bad.wait().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Busy);
        assert_eq!(bad.get().status, "Failure");
        assert!(
            bad.cancel().is_err(),
            "finished operations cannot be cancelled"
        );

        let slow = ops.spawn("p2", "slow", BTreeMap::new(), true, |ctx| async move {
            ctx.cancelled().await;
            Err(Error::cancelled("cancelled"))
        });
        assert_eq!(ops.list(Some("p2")).len(), 1);
        slow.cancel().expect("cancel");
        assert_eq!(slow.wait_status(None).await.status, "Cancelled");
        assert!(ops.get("nope").is_err());
    }
}
