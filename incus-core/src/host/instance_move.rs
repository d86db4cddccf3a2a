//! Moving an instance to another storage pool (`POST /1.0/instances/<name>` with `pool`, as
//! `incus move NAME --storage POOL` sends it with the `instance_pool_move` extension).

use super::custom_volumes::{reclaim_volume, replay_volume};
use super::db::Table;
use super::instances::{instance_pool, is_root_disk, resources, root_disk, storage_name};
use super::intents::Unsettled;
use super::{Host, Operation};
use crate::drivers::{Volume, VolumeType};
use crate::error::{Error, Result};

impl Host {
    /// Moves a stopped instance with its snapshots (none with `instance_only`) to `pool`,
    /// then renames it when `new_name` differs. The root volume is copied to the new pool
    /// (snapshot by snapshot, any two drivers), the instance gets a local root disk on that
    /// pool (as Incus gives it), and the old volume is deleted last: a failure leaves the
    /// instance where it was.
    pub async fn move_instance_to_pool(
        &self,
        project: &str,
        name: &str,
        pool: &str,
        new_name: &str,
        instance_only: bool,
    ) -> Result<Operation> {
        let inst = self.get_instance(project, name).await?;
        if inst.status != "Stopped" {
            return Err(Error::busy(
                "The instance must be stopped to move it to another storage pool",
            ));
        }
        if instance_pool(&inst) == pool {
            return Err(Error::invalid(format!(
                "Instance {name:?} is already on storage pool {pool:?}"
            )));
        }
        self.get_storage_pool(pool)?;
        if !new_name.is_empty() && new_name != name {
            crate::config::validate_instance_name(new_name)?;
            if self.get_instance_record(project, new_name).is_ok() {
                return Err(Error::already_exists(format!(
                    "Instance {new_name:?} already exists"
                )));
            }
        }
        let host = self.clone();
        let (p, n, pool, new_name) = (
            project.to_string(),
            name.to_string(),
            pool.to_string(),
            new_name.to_string(),
        );
        Ok(self.inner.ops.spawn(
            project,
            "Moving instance",
            resources(project, name),
            false,
            move |_| async move {
                {
                    let lock = host.instance_lock(&p, &n);
                    let _g = lock.lock().await;
                    host.move_locked(&p, &n, &pool, instance_only).await?;
                }
                if !new_name.is_empty() && new_name != n {
                    host.rename_instance(&p, &n, &new_name)
                        .await?
                        .wait()
                        .await?;
                }
                Ok(None)
            },
        ))
    }

    async fn move_locked(
        &self,
        project: &str,
        name: &str,
        pool: &str,
        instance_only: bool,
    ) -> Result<()> {
        let inst = self.get_instance(project, name).await?;
        if inst.status != "Stopped" {
            return Err(Error::busy(
                "The instance must be stopped to move it to another storage pool",
            ));
        }
        let (src_driver, src_vol) = self.root_volume(&inst)?;
        let driver = self.pool_driver(pool)?;
        let vol = Volume::new(VolumeType::Container, storage_name(project, name));
        let snapshots: Vec<String> = if instance_only {
            Vec::new()
        } else {
            let mut list = self.list_snapshots(project, name)?;
            list.sort_by_key(|s| s.created_at);
            list.into_iter().map(|s| s.name).collect()
        };
        // The config as it will be: a local root disk on the new pool (the instance's own, or
        // the one its profiles give it).
        let mut put = inst.put.clone();
        let key = put
            .devices
            .iter()
            .find(|(_, d)| is_root_disk(d))
            .map_or_else(|| "root".to_string(), |(k, _)| k.clone());
        let mut disk = root_disk(&inst.expanded_devices)
            .cloned()
            .unwrap_or_default();
        disk.insert("type".into(), "disk".into());
        disk.insert("path".into(), "/".into());
        disk.insert("pool".into(), pool.to_string());
        put.devices.insert(key, disk);
        put.config
            .insert("volatile.rootfs.pool".into(), pool.to_string());
        let mut check = put.clone();
        check.config.retain(|k, _| !k.starts_with("volatile."));
        let (_, expanded) = self.validate_put(project, &check)?;
        let moving = |pool: &str| Unsettled::PoolCopy {
            project: project.into(),
            name: name.into(),
            pool: pool.into(),
        };
        let new_copy = self.begin("move", moving(pool))?;
        reclaim_volume(&driver, &vol).await?;
        let copied = async {
            replay_volume(&src_driver, &src_vol, &snapshots, &driver, &vol).await?;
            self.apply_root_size(&driver, &vol, &expanded, pool).await?;
            let mut row = self.instance_row(project, name)?;
            row.put.devices = put.devices.clone();
            row.put.config = put.config.clone();
            self.inner
                .db
                .update(Table::Instances, project, name, &row)?;
            Ok::<(), Error>(())
        };
        if let Err(e) = copied.await {
            let _ = driver.delete_volume(&vol).await;
            return Err(e);
        }
        if instance_only {
            self.inner
                .db
                .delete_prefix(Table::Snapshots, project, &format!("{name}/"))?;
        }
        // The new volume is the instance's now; the old one goes (a failure here leaves only
        // an orphan volume on the old pool, which the next create of that name reclaims; a
        // crash, which the next start removes).
        let old_copy = self.begin("move", moving(instance_pool(&inst)))?;
        drop(new_copy);
        if let Err(e) = src_driver.delete_volume(&src_vol).await {
            tracing::warn!(volume = %src_vol.name, error = %e, "old volume left after a move");
        }
        drop(old_copy);
        self.refresh_backup_yaml(project, name);
        self.inner.events.lifecycle(
            "instance-updated",
            &super::instance_url(project, name),
            project,
            None,
        );
        Ok(())
    }
}
