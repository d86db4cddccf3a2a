//! Housekeeping, as Incus's daemon does it on a timer: scheduled snapshots of instances and
//! custom volumes (`snapshots.schedule`), and removal of expired snapshots (instance and
//! volume, `expires_at` from `snapshots.expiry`) and expired backups (`expires_at`).
//!
//! [`Host::run_periodic_tasks`] does one round for a time window; `incusd` calls it once a
//! minute with the window since its previous round, and a program embedding the engine can
//! do the same (or not, if it wants no housekeeping).

use super::Host;
use super::backups::prune_backup_dir;
use super::custom_volumes::VolumeRecord;
use super::db::Table;
use super::instances::SnapshotRecord;
use crate::api;
use crate::config::{self, Schedule};
use chrono::{DateTime, Utc};

/// What one round of [`Host::run_periodic_tasks`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskReport {
    /// Scheduled snapshots taken: `instance <project>/<name>` or
    /// `volume <project>/<pool>/<name>`.
    pub snapshots_taken: Vec<String>,
    /// Expired instance and volume snapshots deleted.
    pub snapshots_pruned: usize,
    /// Expired instance and volume backups deleted.
    pub backups_pruned: usize,
    /// What failed (each task goes on with the next item).
    pub errors: Vec<String>,
}

impl Host {
    /// One round of housekeeping for the window `(after, now]`: takes the snapshots whose
    /// `snapshots.schedule` fires in the window (instances: running ones, and stopped ones
    /// with `snapshots.schedule.stopped=true`), then deletes what has expired by `now`.
    /// Failures are collected in the report, never stop the round.
    pub async fn run_periodic_tasks(&self, after: DateTime<Utc>, now: DateTime<Utc>) -> TaskReport {
        let mut report = TaskReport::default();
        self.scheduled_instance_snapshots(after, now, &mut report)
            .await;
        self.scheduled_volume_snapshots(after, now, &mut report)
            .await;
        self.prune_instance_snapshots(now, &mut report).await;
        match self.prune_expired_volume_snapshots().await {
            Ok(n) => report.snapshots_pruned += n,
            Err(e) => report.errors.push(format!("volume snapshots: {e}")),
        }
        report.backups_pruned += self.prune_backups(now);
        report
    }

    async fn scheduled_instance_snapshots(
        &self,
        after: DateTime<Utc>,
        now: DateTime<Utc>,
        report: &mut TaskReport,
    ) {
        // Only the instances with a schedule get their live state read.
        let scheduled = match self.expanded_instances(None) {
            Ok(mut l) => {
                l.retain(|i| {
                    i.expanded_config
                        .get("snapshots.schedule")
                        .is_some_and(|s| !s.is_empty())
                });
                l
            }
            Err(e) => {
                report.errors.push(format!("instances: {e}"));
                return;
            }
        };
        for inst in scheduled {
            let cfg = &inst.expanded_config;
            let schedule = cfg.get("snapshots.schedule").map_or("", String::as_str);
            let what = format!("instance {}/{}", inst.project, inst.name);
            let fires = match Schedule::parse(schedule) {
                Ok(s) => s.fires_between(after, now),
                Err(e) => {
                    report.errors.push(format!("{what}: {e}"));
                    continue;
                }
            };
            if !fires {
                continue;
            }
            let running = match self.get_instance(&inst.project, &inst.name).await {
                Ok(i) => i.status != "Stopped",
                Err(e) => {
                    report.errors.push(format!("{what}: {e}"));
                    continue;
                }
            };
            if !running && !config::is_true(cfg, "snapshots.schedule.stopped") {
                continue;
            }
            let taken = async {
                self.create_snapshot(
                    &inst.project,
                    &inst.name,
                    api::InstanceSnapshotsPost::default(),
                )
                .await?
                .wait()
                .await
            };
            match taken.await {
                Ok(_) => report.snapshots_taken.push(what),
                Err(e) => report.errors.push(format!("{what}: {e}")),
            }
        }
    }

    async fn scheduled_volume_snapshots(
        &self,
        after: DateTime<Utc>,
        now: DateTime<Utc>,
        report: &mut TaskReport,
    ) {
        let volumes = match self.inner.db.list::<VolumeRecord>(Table::Volumes, None) {
            Ok(l) => l,
            Err(e) => {
                report.errors.push(format!("volumes: {e}"));
                return;
            }
        };
        for (project, rec) in volumes {
            let Some(schedule) = rec
                .volume
                .put
                .config
                .get("snapshots.schedule")
                .filter(|s| !s.is_empty())
            else {
                continue;
            };
            let what = format!("volume {project}/{}/{}", rec.pool, rec.volume.name);
            match Schedule::parse(schedule) {
                Ok(s) if s.fires_between(after, now) => {}
                Ok(_) => continue,
                Err(e) => {
                    report.errors.push(format!("{what}: {e}"));
                    continue;
                }
            }
            let taken = async {
                self.create_volume_snapshot(
                    &project,
                    &rec.pool,
                    &rec.volume.name,
                    api::StorageVolumeSnapshotsPost::default(),
                )?
                .wait()
                .await
            };
            match taken.await {
                Ok(_) => report.snapshots_taken.push(what),
                Err(e) => report.errors.push(format!("{what}: {e}")),
            }
        }
    }

    async fn prune_instance_snapshots(&self, now: DateTime<Utc>, report: &mut TaskReport) {
        let snapshots = match self.inner.db.list::<SnapshotRecord>(Table::Snapshots, None) {
            Ok(l) => l,
            Err(e) => {
                report.errors.push(format!("instance snapshots: {e}"));
                return;
            }
        };
        for (project, rec) in snapshots {
            let at = rec.snapshot.expires_at;
            if at == api::zero_time() || at > now {
                continue;
            }
            let gone = async {
                self.delete_snapshot(&project, &rec.instance, &rec.snapshot.name)
                    .await?
                    .wait()
                    .await
            };
            match gone.await {
                Ok(_) => report.snapshots_pruned += 1,
                Err(e) => report.errors.push(format!(
                    "snapshot {project}/{}/{}: {e}",
                    rec.instance, rec.snapshot.name
                )),
            }
        }
    }

    /// Deletes expired backups of instances (`backups/instances/*`) and custom volumes
    /// (`backups/custom/<pool>/*`).
    fn prune_backups(&self, now: DateTime<Utc>) -> usize {
        let root = self.inner.dir.join("backups");
        let subdirs = |p: std::path::PathBuf| {
            std::fs::read_dir(p)
                .map(|r| {
                    r.flatten()
                        .map(|e| e.path())
                        .filter(|p| p.is_dir())
                        .collect()
                })
                .unwrap_or_else(|_| Vec::new())
        };
        let mut n = 0;
        for dir in subdirs(root.join("instances")) {
            n += prune_backup_dir::<api::InstanceBackup>(&dir, now);
        }
        for pool in subdirs(root.join("custom")) {
            for dir in subdirs(pool) {
                n += prune_backup_dir::<api::StorageVolumeBackup>(&dir, now);
                // Gone with its last backup, as in Incus.
                let _ = std::fs::remove_dir(&dir);
            }
        }
        n
    }
}
