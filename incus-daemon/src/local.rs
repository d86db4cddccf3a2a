//! The API without a socket: [`LocalApi`] hands requests to the same router `incusd` serves,
//! in the calling process. An embedding program (the Python module's `incus.Host`) gets the
//! daemon's exact validation, envelopes and status codes with no listener, no connection and
//! no second process.
//!
//! Websocket endpoints (`/1.0/events`, operation websockets) need a real connection to upgrade
//! and answer an error here; an embedding program uses the engine's event bus and
//! `Host::exec` directly instead.

use crate::Daemon;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use std::sync::Arc;
use tower::ServiceExt;

/// The REST API, served in-process.
#[derive(Clone)]
pub struct LocalApi {
    router: Router,
    daemon: Arc<Daemon>,
}

impl std::fmt::Debug for LocalApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalApi").finish_non_exhaustive()
    }
}

impl LocalApi {
    /// The API of `daemon`.
    pub fn new(daemon: Arc<Daemon>) -> LocalApi {
        LocalApi {
            router: crate::router(daemon.clone()),
            daemon,
        }
    }

    /// The daemon state behind the API (its engine is `daemon().host`).
    pub fn daemon(&self) -> &Arc<Daemon> {
        &self.daemon
    }

    /// Answers one request as the daemon would on its socket. The URI is a path with its
    /// query (`/1.0/instances?recursion=1`).
    pub async fn call(&self, req: Request<Body>) -> Response<Body> {
        match self.router.clone().oneshot(req).await {
            Ok(resp) => resp,
            // The router's error type is `Infallible`.
            Err(never) => match never {},
        }
    }
}

/// Runs the daemon's housekeeping once a minute until the runtime ends, as Incus does:
/// scheduled snapshots (`snapshots.schedule`), then expired snapshots and backups removed.
/// Each round covers the time since the previous one; errors are reported through `report`.
pub fn spawn_housekeeping(
    host: incus_core::host::Host,
    report: impl Fn(String) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut since = chrono::Utc::now();
        loop {
            tick.tick().await;
            let now = chrono::Utc::now();
            let done = host.run_periodic_tasks(since, now).await;
            since = now;
            for e in done.errors {
                report(format!("housekeeping: {e}"));
            }
        }
    })
}

/// Gives memory the allocator holds but no longer uses back to the system every 15 seconds
/// (glibc's `malloc_trim`): after a burst of requests served by many threads, glibc keeps
/// the freed memory of its per-thread arenas, so the daemon's resident size would stay at
/// its peak. At debug level it logs the heap's size in use and free after each trim, which
/// tells a leak (in use grows) from fragmentation (only free grows). A no-op on other C
/// libraries.
pub fn spawn_memory_trim() -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(15));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            {
                // SAFETY: malloc_trim only releases free heap pages and mallinfo2 only reads
                // counters; both take the allocator's own locks and are safe to call from any
                // thread at any time.
                let info = unsafe {
                    libc::malloc_trim(0);
                    libc::mallinfo2()
                };
                tracing::debug!(
                    in_use = info.uordblks + info.hblkhd,
                    free = info.fordblks,
                    arena = info.arena,
                    "heap after trimming (bytes)"
                );
            }
        }
    })
}

/// Which events a listener gets, as `/1.0/events` chooses them: by type (`lifecycle`,
/// `operation`, `logging`; all three when none is given) and by project (the listener's
/// own, events of no project, or every project with `all-projects`).
#[derive(Debug, Clone)]
pub struct EventFilter {
    types: Vec<String>,
    all_projects: bool,
    project: String,
}

impl EventFilter {
    /// A filter from the `type` query value (comma-separated), `all-projects` and the
    /// listener's project.
    pub fn new(types: Option<&str>, all_projects: bool, project: &str) -> EventFilter {
        let types = types
            .filter(|t| !t.is_empty())
            .map(|t| t.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_else(|| vec!["lifecycle".into(), "operation".into(), "logging".into()]);
        EventFilter {
            types,
            all_projects,
            project: project.to_string(),
        }
    }

    /// Whether the listener gets `ev`.
    pub fn wants(&self, ev: &incus_core::api::Event) -> bool {
        self.types.contains(&ev.kind)
            && (self.all_projects || ev.project.is_empty() || ev.project == self.project)
    }
}

#[cfg(test)]
mod tests {
    use super::EventFilter;
    use incus_core::api;

    fn ev(kind: &str, project: &str) -> api::Event {
        serde_json::from_value(serde_json::json!({
            "type": kind,
            "timestamp": "2026-01-01T00:00:00Z",
            "metadata": {},
            "project": project,
        }))
        .expect("event")
    }

    #[test]
    fn event_filter_by_type_and_project() {
        let all = EventFilter::new(None, false, "default");
        assert!(all.wants(&ev("lifecycle", "default")));
        assert!(
            all.wants(&ev("logging", "")),
            "events of no project reach everyone"
        );
        assert!(!all.wants(&ev("operation", "other")));
        let some = EventFilter::new(Some("lifecycle, operation"), false, "p1");
        assert!(some.wants(&ev("operation", "p1")));
        assert!(!some.wants(&ev("logging", "p1")));
        let every = EventFilter::new(Some("lifecycle"), true, "default");
        assert!(every.wants(&ev("lifecycle", "other")));
        assert!(EventFilter::new(Some(""), false, "default").wants(&ev("logging", "")));
    }
}
