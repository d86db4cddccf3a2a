//! Storage volumes as the API lists them: the instances' root volumes and the pool's unpacked
//! images (derived from the instance and image records) and the custom volumes (recorded on
//! their own, see `custom_volumes`).

use super::db::Table;
use super::instances::instance_pool;
use super::{Host, instance_url, with_project};
use crate::api;
use crate::drivers::{Volume, VolumeType};
use crate::error::{Error, Result};

impl Host {
    /// The volumes of `pool` seen from `project`: the root volumes of the project's instances
    /// on that pool (`container`), the images unpacked in the pool (`image`) and the custom
    /// volumes with their snapshots (`custom`).
    pub async fn list_storage_volumes(
        &self,
        project: &str,
        pool: &str,
    ) -> Result<Vec<api::StorageVolume>> {
        let driver = self.pool_driver(pool)?;
        let mut out = Vec::new();
        for (p, inst) in self
            .inner
            .db
            .list::<api::Instance>(Table::Instances, Some(project))?
        {
            if instance_pool(&inst) != pool {
                continue;
            }
            out.push(api::StorageVolume {
                name: inst.name.clone(),
                kind: VolumeType::Container.api_name().into(),
                used_by: vec![instance_url(&p, &inst.name)],
                project: p,
                created_at: inst.created_at,
                ..Default::default()
            });
        }
        let image_project = self.feature_project(project, "features.images");
        for image in self.list_images(&image_project)? {
            let vol = Volume::new(VolumeType::Image, image.fingerprint.clone());
            if driver.has_volume(&vol).await? {
                out.push(api::StorageVolume {
                    used_by: vec![with_project(
                        &format!("/1.0/images/{}", image.fingerprint),
                        &image_project,
                    )],
                    name: image.fingerprint,
                    kind: VolumeType::Image.api_name().into(),
                    project: image_project.clone(),
                    created_at: image.uploaded_at,
                    ..Default::default()
                });
            }
        }
        out.extend(self.list_custom_volumes(project, pool)?);
        out.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
        Ok(out)
    }

    /// Space and inodes used and available on the pool's filesystem (`statvfs` of its mount).
    pub fn storage_pool_resources(&self, pool: &str) -> Result<api::StoragePoolResources> {
        self.get_storage_pool(pool)?;
        let path = self.inner.dir.join("storage-pools").join(pool);
        let st = nix::sys::statvfs::statvfs(&path)
            .map_err(|e| Error::internal(format!("{}: {e}", path.display())))?;
        let frag = st.fragment_size();
        let total = st.blocks() * frag;
        let free = st.blocks_free() * frag;
        Ok(api::StoragePoolResources {
            space: api::StoragePoolUsage {
                used: total.saturating_sub(free),
                total,
            },
            inodes: api::StoragePoolUsage {
                used: st.files().saturating_sub(st.files_free()),
                total: st.files(),
            },
        })
    }

    /// One volume of `pool` by type (`container`, `image`, `custom`) and name.
    pub async fn get_storage_volume(
        &self,
        project: &str,
        pool: &str,
        kind: &str,
        name: &str,
    ) -> Result<api::StorageVolume> {
        if !matches!(kind, "container" | "virtual-machine" | "image" | "custom") {
            return Err(Error::invalid(format!(
                "Invalid storage volume type {kind:?}"
            )));
        }
        if kind == "custom" {
            return self.get_custom_volume(project, pool, name);
        }
        self.list_storage_volumes(project, pool)
            .await?
            .into_iter()
            .find(|v| v.kind == kind && v.name == name)
            .ok_or_else(|| Error::not_found(format!("Storage volume {kind}/{name} not found")))
    }
}
