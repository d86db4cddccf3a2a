//! Typed methods for the named collections of the API: profiles, projects, storage pools and
//! volumes, images and aliases, operations, networks, warnings, resources, instance logs,
//! metadata and templates. Each is one request (waiting for the operation where the daemon
//! answers with one).

use crate::{Client, Result, escape};
use incus_core::api;
use serde::Serialize;
use serde::de::DeserializeOwned;

impl Client {
    async fn list_all<T: DeserializeOwned>(&self, base: &str) -> Result<Vec<T>> {
        self.get(&format!("{base}?recursion=1")).await
    }

    async fn get_named<T: DeserializeOwned>(&self, base: &str, name: &str) -> Result<(T, String)> {
        self.get_with_etag(&format!("{base}/{}", escape(name)))
            .await
    }

    async fn send_named<B: Serialize>(
        &self,
        method: &str,
        base: &str,
        name: &str,
        body: &B,
        etag: Option<&str>,
    ) -> Result<()> {
        self.send(method, &format!("{base}/{}", escape(name)), body, etag)
            .await?;
        Ok(())
    }

    async fn delete_named(&self, base: &str, name: &str) -> Result<()> {
        self.send_empty("DELETE", &format!("{base}/{}", escape(name)))
            .await?;
        Ok(())
    }

    // ---- profiles ----

    /// All profiles of the project.
    pub async fn profiles(&self) -> Result<Vec<api::Profile>> {
        self.list_all("/1.0/profiles").await
    }

    /// One profile and its ETag.
    pub async fn profile(&self, name: &str) -> Result<(api::Profile, String)> {
        self.get_named("/1.0/profiles", name).await
    }

    /// Creates a profile.
    pub async fn create_profile(&self, req: &api::ProfilesPost) -> Result<()> {
        self.send("POST", "/1.0/profiles", req, None).await?;
        Ok(())
    }

    /// Replaces a profile's writable fields (`If-Match` when `etag` is given).
    pub async fn update_profile(
        &self,
        name: &str,
        put: &api::ProfilePut,
        etag: Option<&str>,
    ) -> Result<()> {
        self.send_named("PUT", "/1.0/profiles", name, put, etag)
            .await
    }

    /// Renames a profile (instances' references follow).
    pub async fn rename_profile(&self, name: &str, new_name: &str) -> Result<()> {
        let body = api::ProfilePost {
            name: new_name.into(),
        };
        self.send_named("POST", "/1.0/profiles", name, &body, None)
            .await
    }

    /// Deletes an unused profile.
    pub async fn delete_profile(&self, name: &str) -> Result<()> {
        self.delete_named("/1.0/profiles", name).await
    }

    // ---- projects ----

    /// All projects.
    pub async fn projects(&self) -> Result<Vec<api::Project>> {
        self.list_all("/1.0/projects").await
    }

    /// One project and its ETag.
    pub async fn project_info(&self, name: &str) -> Result<(api::Project, String)> {
        self.get_named("/1.0/projects", name).await
    }

    /// Creates a project.
    pub async fn create_project(&self, req: &api::ProjectsPost) -> Result<()> {
        self.send("POST", "/1.0/projects", req, None).await?;
        Ok(())
    }

    /// Replaces a project's writable fields (`If-Match` when `etag` is given).
    pub async fn update_project(
        &self,
        name: &str,
        put: &api::ProjectPut,
        etag: Option<&str>,
    ) -> Result<()> {
        self.send_named("PUT", "/1.0/projects", name, put, etag)
            .await
    }

    /// Renames an empty project.
    pub async fn rename_project(&self, name: &str, new_name: &str) -> Result<()> {
        let body = serde_json::json!({ "name": new_name });
        self.send_named("POST", "/1.0/projects", name, &body, None)
            .await
    }

    /// Deletes an empty project.
    pub async fn delete_project(&self, name: &str) -> Result<()> {
        self.delete_named("/1.0/projects", name).await
    }

    // ---- storage ----

    /// All storage pools.
    pub async fn storage_pools(&self) -> Result<Vec<api::StoragePool>> {
        self.list_all("/1.0/storage-pools").await
    }

    /// One storage pool and its ETag.
    pub async fn storage_pool(&self, name: &str) -> Result<(api::StoragePool, String)> {
        self.get_named("/1.0/storage-pools", name).await
    }

    /// Creates a storage pool.
    pub async fn create_storage_pool(&self, req: &api::StoragePoolsPost) -> Result<()> {
        self.send("POST", "/1.0/storage-pools", req, None).await?;
        Ok(())
    }

    /// Replaces a pool's writable fields (`If-Match` when `etag` is given).
    pub async fn update_storage_pool(
        &self,
        name: &str,
        put: &api::StoragePoolPut,
        etag: Option<&str>,
    ) -> Result<()> {
        self.send_named("PUT", "/1.0/storage-pools", name, put, etag)
            .await
    }

    /// Deletes an unused storage pool.
    pub async fn delete_storage_pool(&self, name: &str) -> Result<()> {
        self.delete_named("/1.0/storage-pools", name).await
    }

    /// Space and inodes used and available on a pool.
    pub async fn storage_pool_resources(&self, name: &str) -> Result<api::StoragePoolResources> {
        self.get(&format!("/1.0/storage-pools/{}/resources", escape(name)))
            .await
    }

    /// The volumes of a pool.
    pub async fn storage_volumes(&self, pool: &str) -> Result<Vec<api::StorageVolume>> {
        self.list_all(&format!("/1.0/storage-pools/{}/volumes", escape(pool)))
            .await
    }

    /// One volume of a pool by type (`container`, `image`, `custom`) and name.
    pub async fn storage_volume(
        &self,
        pool: &str,
        kind: &str,
        name: &str,
    ) -> Result<(api::StorageVolume, String)> {
        let base = format!(
            "/1.0/storage-pools/{}/volumes/{}",
            escape(pool),
            escape(kind)
        );
        self.get_named(&base, name).await
    }

    /// The path of a custom volume.
    fn custom_volume_path(pool: &str, name: &str) -> String {
        format!(
            "/1.0/storage-pools/{}/volumes/custom/{}",
            escape(pool),
            escape(name)
        )
    }

    /// Creates an empty custom volume, or a copy when `req.source` names one (waits for the
    /// copy).
    pub async fn create_custom_volume(
        &self,
        pool: &str,
        req: &api::StorageVolumesPost,
    ) -> Result<()> {
        let path = format!("/1.0/storage-pools/{}/volumes/custom", escape(pool));
        self.send("POST", &path, req, None).await?;
        Ok(())
    }

    /// Replaces a custom volume's writable fields; with `put.restore` set, restores that
    /// snapshot.
    pub async fn update_custom_volume(
        &self,
        pool: &str,
        name: &str,
        put: &api::StorageVolumePut,
        etag: Option<&str>,
    ) -> Result<()> {
        self.send("PUT", &Self::custom_volume_path(pool, name), put, etag)
            .await?;
        Ok(())
    }

    /// Renames a custom volume, or moves it when `req.pool` or `req.project` differ (waits).
    pub async fn post_custom_volume(
        &self,
        pool: &str,
        name: &str,
        req: &api::StorageVolumePost,
    ) -> Result<()> {
        self.send("POST", &Self::custom_volume_path(pool, name), req, None)
            .await?;
        Ok(())
    }

    /// Deletes an unused custom volume and its snapshots.
    pub async fn delete_custom_volume(&self, pool: &str, name: &str) -> Result<()> {
        self.send_empty("DELETE", &Self::custom_volume_path(pool, name))
            .await?;
        Ok(())
    }

    /// Space used by a custom volume.
    pub async fn custom_volume_state(
        &self,
        pool: &str,
        name: &str,
    ) -> Result<api::StorageVolumeState> {
        self.get(&format!("{}/state", Self::custom_volume_path(pool, name)))
            .await
    }

    /// Snapshots of a custom volume, oldest first.
    pub async fn custom_volume_snapshots(
        &self,
        pool: &str,
        name: &str,
    ) -> Result<Vec<api::StorageVolumeSnapshot>> {
        self.get(&format!(
            "{}/snapshots?recursion=1",
            Self::custom_volume_path(pool, name)
        ))
        .await
    }

    /// Snapshots a custom volume (waits).
    pub async fn create_custom_volume_snapshot(
        &self,
        pool: &str,
        name: &str,
        req: &api::StorageVolumeSnapshotsPost,
    ) -> Result<()> {
        let path = format!("{}/snapshots", Self::custom_volume_path(pool, name));
        self.send("POST", &path, req, None).await?;
        Ok(())
    }

    /// Renames a custom volume snapshot (waits).
    pub async fn rename_custom_volume_snapshot(
        &self,
        pool: &str,
        name: &str,
        snapshot: &str,
        new_name: &str,
    ) -> Result<()> {
        let path = format!(
            "{}/snapshots/{}",
            Self::custom_volume_path(pool, name),
            escape(snapshot)
        );
        self.send(
            "POST",
            &path,
            &serde_json::json!({ "name": new_name }),
            None,
        )
        .await?;
        Ok(())
    }

    /// Deletes a custom volume snapshot (waits).
    pub async fn delete_custom_volume_snapshot(
        &self,
        pool: &str,
        name: &str,
        snapshot: &str,
    ) -> Result<()> {
        let path = format!(
            "{}/snapshots/{}",
            Self::custom_volume_path(pool, name),
            escape(snapshot)
        );
        self.send_empty("DELETE", &path).await?;
        Ok(())
    }

    // ---- images ----

    /// One image and its ETag.
    pub async fn image(&self, fingerprint: &str) -> Result<(api::Image, String)> {
        self.get_named("/1.0/images", fingerprint).await
    }

    /// Replaces an image's writable fields (`If-Match` when `etag` is given).
    pub async fn update_image(
        &self,
        fingerprint: &str,
        put: &api::ImagePut,
        etag: Option<&str>,
    ) -> Result<()> {
        self.send_named("PUT", "/1.0/images", fingerprint, put, etag)
            .await
    }

    /// Deletes an image.
    pub async fn delete_image(&self, fingerprint: &str) -> Result<()> {
        self.delete_named("/1.0/images", fingerprint).await
    }

    /// The image as uploaded: a unified tarball, or the multipart body of a split image.
    pub async fn export_image(&self, fingerprint: &str) -> Result<Vec<u8>> {
        let (_, body) = self
            .get_raw(&format!("/1.0/images/{}/export", escape(fingerprint)))
            .await?;
        Ok(body)
    }

    /// All image aliases.
    pub async fn aliases(&self) -> Result<Vec<api::ImageAliasesEntry>> {
        self.list_all("/1.0/images/aliases").await
    }

    /// Deletes an image alias.
    pub async fn delete_alias(&self, name: &str) -> Result<()> {
        self.delete_named("/1.0/images/aliases", name).await
    }

    // ---- operations, networks, warnings, resources ----

    /// Operations by status (`running`, `success`, ...).
    pub async fn operations(
        &self,
    ) -> Result<std::collections::BTreeMap<String, Vec<api::Operation>>> {
        self.get("/1.0/operations?recursion=1").await
    }

    /// One operation.
    pub async fn operation(&self, id: &str) -> Result<api::Operation> {
        self.get(&format!("/1.0/operations/{}", escape(id))).await
    }

    /// Cancels an operation.
    pub async fn cancel_operation(&self, id: &str) -> Result<()> {
        self.delete_named("/1.0/operations", id).await
    }

    /// The networks the server knows.
    pub async fn networks(&self) -> Result<Vec<api::Network>> {
        self.list_all("/1.0/networks").await
    }

    /// One network.
    pub async fn network(&self, name: &str) -> Result<api::Network> {
        Ok(self.get_named("/1.0/networks", name).await?.0)
    }

    /// One network and its ETag.
    pub async fn network_with_etag(&self, name: &str) -> Result<(api::Network, String)> {
        self.get_named("/1.0/networks", name).await
    }

    /// Creates a managed network (`kind` empty means `bridge`).
    pub async fn create_network(&self, req: &api::NetworksPost) -> Result<()> {
        self.send("POST", "/1.0/networks", req, None).await?;
        Ok(())
    }

    /// Replaces a managed network's writable fields, applied live (`If-Match` when `etag` is
    /// given).
    pub async fn update_network(
        &self,
        name: &str,
        put: &api::NetworkPut,
        etag: Option<&str>,
    ) -> Result<()> {
        self.send_named("PUT", "/1.0/networks", name, put, etag)
            .await
    }

    /// Renames an unused managed network.
    pub async fn rename_network(&self, name: &str, new_name: &str) -> Result<()> {
        let body = api::ProfilePost {
            name: new_name.into(),
        };
        self.send_named("POST", "/1.0/networks", name, &body, None)
            .await
    }

    /// Deletes an unused managed network (its interface, firewall table and dnsmasq go too).
    pub async fn delete_network(&self, name: &str) -> Result<()> {
        self.delete_named("/1.0/networks", name).await
    }

    /// The live state of a network's host interface.
    pub async fn network_state(&self, name: &str) -> Result<api::NetworkState> {
        self.get(&format!("/1.0/networks/{}/state", escape(name)))
            .await
    }

    /// The DHCP leases (and static assignments) of a managed network.
    pub async fn network_leases(&self, name: &str) -> Result<Vec<api::NetworkLease>> {
        self.get(&format!("/1.0/networks/{}/leases", escape(name)))
            .await
    }

    /// The server's warnings.
    pub async fn warnings(&self) -> Result<Vec<api::Warning>> {
        self.list_all("/1.0/warnings").await
    }

    /// The host's hardware.
    pub async fn resources(&self) -> Result<api::Resources> {
        self.get("/1.0/resources").await
    }

    /// Replaces the server configuration (`If-Match` when `etag` is given).
    pub async fn update_server(&self, put: &api::ServerPut, etag: Option<&str>) -> Result<()> {
        self.send("PUT", "/1.0", put, etag).await?;
        Ok(())
    }

    // ---- trust store ----

    /// The trusted certificates.
    pub async fn certificates(&self) -> Result<Vec<api::Certificate>> {
        self.list_all("/1.0/certificates").await
    }

    /// One trusted certificate (by fingerprint or a unique prefix of it) and its ETag.
    pub async fn certificate(&self, fingerprint: &str) -> Result<(api::Certificate, String)> {
        self.get_named("/1.0/certificates", fingerprint).await
    }

    /// Adds a certificate to the trust store (as an administrator or trusted client).
    pub async fn add_certificate(&self, req: &api::CertificatesPost) -> Result<()> {
        self.send("POST", "/1.0/certificates", req, None).await?;
        Ok(())
    }

    /// Asks the server to trust this client's own certificate, redeeming a trust token (as
    /// `incus remote add` does). Works while the client is not trusted yet.
    pub async fn trust_with_token(&self, token: &str) -> Result<()> {
        let req = api::CertificatesPost {
            put: api::CertificatePut {
                kind: "client".into(),
                ..Default::default()
            },
            trust_token: token.to_string(),
            token: false,
        };
        self.add_certificate(&req).await
    }

    /// Issues a trust token for a new client (`incus config trust add`): `put` gives its
    /// name, and whether it is restricted to projects. Returns the token's text.
    pub async fn issue_trust_token(&self, put: &api::CertificatePut) -> Result<String> {
        let req = api::CertificatesPost {
            put: put.clone(),
            trust_token: String::new(),
            token: true,
        };
        let v = serde_json::to_value(&req).map_err(|e| crate::Error::invalid(e.to_string()))?;
        let r = self
            .request("POST", "/1.0/certificates", Some(&v), None)
            .await?;
        let op: api::Operation = serde_json::from_value(r.raw.metadata)
            .map_err(|e| crate::Error::internal(format!("Unexpected token answer: {e}")))?;
        let meta = op.metadata.unwrap_or_default();
        Ok(api::CertificateAddToken::from_operation(&put.name, &meta).encode())
    }

    /// Removes a certificate from the trust store.
    pub async fn delete_certificate(&self, fingerprint: &str) -> Result<()> {
        self.send_empty(
            "DELETE",
            &format!("/1.0/certificates/{}", escape(fingerprint)),
        )
        .await?;
        Ok(())
    }

    // ---- instance logs, metadata, templates ----

    /// The names of an instance's log files.
    pub async fn instance_logs(&self, name: &str) -> Result<Vec<String>> {
        let urls: Vec<String> = self
            .get(&format!("/1.0/instances/{}/logs", escape(name)))
            .await?;
        Ok(urls
            .iter()
            .filter_map(|u| u.rsplit('/').next().map(str::to_string))
            .collect())
    }

    /// One log file of an instance.
    pub async fn instance_log(&self, name: &str, file: &str) -> Result<Vec<u8>> {
        let (_, body) = self
            .get_raw(&format!(
                "/1.0/instances/{}/logs/{}",
                escape(name),
                escape(file)
            ))
            .await?;
        Ok(body)
    }

    /// An instance's `metadata.yaml` and its ETag.
    pub async fn instance_metadata(&self, name: &str) -> Result<(api::ImageMetadata, String)> {
        self.get_with_etag(&format!("/1.0/instances/{}/metadata", escape(name)))
            .await
    }

    /// Replaces an instance's `metadata.yaml` (`If-Match` when `etag` is given).
    pub async fn update_instance_metadata(
        &self,
        name: &str,
        meta: &api::ImageMetadata,
        etag: Option<&str>,
    ) -> Result<()> {
        self.send(
            "PUT",
            &format!("/1.0/instances/{}/metadata", escape(name)),
            meta,
            etag,
        )
        .await?;
        Ok(())
    }

    /// The names of an instance's template files.
    pub async fn instance_templates(&self, name: &str) -> Result<Vec<String>> {
        self.get(&format!(
            "/1.0/instances/{}/metadata/templates",
            escape(name)
        ))
        .await
    }

    /// One template file of an instance.
    pub async fn instance_template(&self, name: &str, template: &str) -> Result<Vec<u8>> {
        let (_, body) = self.get_raw(&template_path(name, template)).await?;
        Ok(body)
    }

    /// Creates or replaces a template file of an instance.
    pub async fn put_instance_template(
        &self,
        name: &str,
        template: &str,
        content: Vec<u8>,
    ) -> Result<()> {
        self.post_raw(&template_path(name, template), content).await
    }

    /// Deletes a template file of an instance.
    pub async fn delete_instance_template(&self, name: &str, template: &str) -> Result<()> {
        self.send_empty("DELETE", &template_path(name, template))
            .await?;
        Ok(())
    }
}

fn template_path(name: &str, template: &str) -> String {
    format!(
        "/1.0/instances/{}/metadata/templates?path={}",
        escape(name),
        escape(template)
    )
}
