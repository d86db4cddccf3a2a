//! The image store: import of unified and split images, fingerprints as Incus computes them,
//! aliases, properties, export of the byte-identical original files, and unpacking into a
//! pool's image volume, done once per pool and reused by every instance made from it.
//!
//! Files: `images/<fingerprint>` (the unified tarball or the metadata tarball of a split
//! image) and `images/<fingerprint>.rootfs` (the split image's rootfs: squashfs or tarball).

use super::db::Table;
use super::{Host, archive};
use crate::api::{self, ConfigMap};
use crate::drivers::{Volume, VolumeType};
use crate::error::{Error, Result};
use sha2::Digest;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The most `metadata.yaml` may weigh.
const METADATA_LIMIT: u64 = 1 << 20;

/// What to import.
#[derive(Debug, Clone, Default)]
pub struct ImageImport {
    /// The unified tarball, or the metadata tarball of a split image.
    pub metadata: PathBuf,
    /// The rootfs file (squashfs or tarball) of a split image.
    pub rootfs: Option<PathBuf>,
    /// Aliases to create.
    pub aliases: Vec<String>,
    /// Visible to untrusted clients.
    pub public: bool,
    /// Extra properties, merged over the image's own.
    pub properties: ConfigMap,
    /// Original file name to record.
    pub filename: String,
    /// Move the files into the image store instead of copying them (they must be on the
    /// state directory's filesystem, as the daemon's uploads under `images/` are): no second
    /// copy on disk, and nothing to copy when the disk is nearly full.
    pub move_files: bool,
}

fn hash_files(files: &[&Path]) -> Result<(String, i64)> {
    let mut h = sha2::Sha256::new();
    let mut size = 0i64;
    let mut buf = vec![0u8; 1 << 20];
    for f in files {
        let mut file = std::fs::File::open(f).map_err(|e| Error::io(f.display(), e))?;
        loop {
            let n = file.read(&mut buf).map_err(|e| Error::io(f.display(), e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            size += n as i64;
        }
    }
    Ok((hex::encode(h.finalize()), size))
}

/// Parses and checks `metadata.yaml`.
pub fn parse_metadata(text: &[u8]) -> Result<api::ImageMetadata> {
    let s = std::str::from_utf8(text).map_err(|_| Error::invalid("metadata.yaml is not UTF-8"))?;
    let m: api::ImageMetadata = serde_saphyr::from_str(s)
        .map_err(|e| Error::invalid(format!("Invalid metadata.yaml: {e}")))?;
    if m.architecture.is_empty() {
        return Err(Error::invalid(
            "Invalid metadata.yaml: missing architecture",
        ));
    }
    if m.creation_date <= 0 {
        return Err(Error::invalid(
            "Invalid metadata.yaml: missing creation_date",
        ));
    }
    for (path, t) in &m.templates {
        if !path.starts_with('/') {
            return Err(Error::invalid(format!(
                "Invalid metadata.yaml: template target {path:?} is not absolute"
            )));
        }
        archive::safe_relative(Path::new(&t.template))?;
    }
    Ok(m)
}

/// Reads `metadata.yaml` out of an image (metadata) tarball.
pub fn read_metadata(path: &Path) -> Result<api::ImageMetadata> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?;
    let text = archive::read_member(archive::decompress(f)?, "metadata.yaml", METADATA_LIMIT)?
        .ok_or_else(|| Error::invalid("The image has no metadata.yaml"))?;
    parse_metadata(&text)
}

fn is_squashfs(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"hsqs"
}

fn ts(secs: i64) -> api::Timestamp {
    chrono::DateTime::from_timestamp(secs, 0).unwrap_or_else(api::zero_time)
}

impl Host {
    fn image_file(&self, fp: &str) -> PathBuf {
        self.inner.dir.join("images").join(fp)
    }

    /// Imports an image from local files. The fingerprint is the SHA-256 of the unified
    /// tarball, or of the metadata file followed by the rootfs file for split images.
    pub async fn import_image(&self, project: &str, req: ImageImport) -> Result<api::Image> {
        let project = &self.feature_project(project, "features.images");
        self.get_project(project)?;
        for a in &req.aliases {
            crate::config::validate_entity_name("alias", a)?;
            if self
                .inner
                .db
                .get::<api::ImageAliasesEntry>(Table::ImageAliases, project, a)?
                .is_some()
            {
                return Err(Error::already_exists(format!("Alias {a:?} already exists")));
            }
        }
        let (meta_path, rootfs_path) = (req.metadata.clone(), req.rootfs.clone());
        let (fp, size, metadata) = tokio::task::spawn_blocking(move || -> Result<_> {
            let mut files = vec![meta_path.as_path()];
            if let Some(r) = &rootfs_path {
                files.push(r.as_path());
            }
            let (fp, size) = hash_files(&files)?;
            let m = read_metadata(&meta_path)?;
            Ok((fp, size, m))
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))??;
        if self
            .inner
            .db
            .get::<api::Image>(Table::Images, project, &fp)?
            .is_some()
        {
            return Err(Error::already_exists(format!(
                "Image with same fingerprint already exists: {fp}"
            )));
        }
        let dest = self.image_file(&fp);
        place_file(&req.metadata, &dest, req.move_files)?;
        if let Some(r) = &req.rootfs
            && let Err(e) = place_file(r, &dest.with_extension("rootfs"), req.move_files)
        {
            let _ = std::fs::remove_file(&dest);
            return Err(e);
        }
        let mut properties = metadata.properties.clone();
        properties.extend(req.properties.clone());
        let now = chrono::Utc::now();
        let image = api::Image {
            put: api::ImagePut {
                properties,
                public: req.public,
                expires_at: if metadata.expiry_date > 0 {
                    ts(metadata.expiry_date)
                } else {
                    api::zero_time()
                },
                ..Default::default()
            },
            architecture: metadata.architecture.clone(),
            filename: if req.filename.is_empty() {
                req.metadata
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                req.filename.clone()
            },
            fingerprint: fp.clone(),
            size,
            kind: "container".into(),
            created_at: ts(metadata.creation_date),
            uploaded_at: now,
            project: project.into(),
            ..Default::default()
        };
        self.inner.db.insert(Table::Images, project, &fp, &image)?;
        for a in &req.aliases {
            self.create_image_alias(project, a, &fp, "")?;
        }
        self.inner
            .events
            .lifecycle("image-created", &format!("/1.0/images/{fp}"), project, None);
        self.get_image(project, &fp)
    }

    /// All images of a project, with their aliases (two queries).
    pub fn list_images(&self, project: &str) -> Result<Vec<api::Image>> {
        let project = &self.feature_project(project, "features.images");
        let aliases = self
            .inner
            .db
            .list::<api::ImageAliasesEntry>(Table::ImageAliases, Some(project))?;
        let mut images: Vec<api::Image> = self
            .inner
            .db
            .list::<api::Image>(Table::Images, Some(project))?
            .into_iter()
            .map(|(_, i)| i)
            .collect();
        for img in &mut images {
            img.aliases = aliases
                .iter()
                .filter(|(_, a)| a.put.target == img.fingerprint)
                .map(|(_, a)| api::ImageAlias {
                    name: a.name.clone(),
                    description: a.put.description.clone(),
                })
                .collect();
        }
        Ok(images)
    }

    /// One image by fingerprint or unique fingerprint prefix.
    pub fn get_image(&self, project: &str, fingerprint: &str) -> Result<api::Image> {
        let project = &self.feature_project(project, "features.images");
        if fingerprint.is_empty() || !fingerprint.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::not_found(format!("Image {fingerprint:?} not found")));
        }
        let mut hits: Vec<api::Image> = self
            .list_images(project)?
            .into_iter()
            .filter(|i| i.fingerprint.starts_with(fingerprint))
            .collect();
        match hits.len() {
            0 => Err(Error::not_found(format!("Image {fingerprint:?} not found"))),
            1 => Ok(hits.remove(0)),
            _ => Err(Error::invalid(format!(
                "More than one image matches {fingerprint:?}"
            ))),
        }
    }

    /// Resolves an alias or fingerprint (prefix) to an image.
    pub fn resolve_image(&self, project: &str, alias_or_fp: &str) -> Result<api::Image> {
        let project = &self.feature_project(project, "features.images");
        if let Some(a) = self.inner.db.get::<api::ImageAliasesEntry>(
            Table::ImageAliases,
            project,
            alias_or_fp,
        )? {
            return self.get_image(project, &a.put.target);
        }
        self.get_image(project, alias_or_fp).map_err(|e| {
            if e.kind() == crate::error::ErrorKind::NotFound {
                Error::not_found(format!("Image {alias_or_fp:?} not found"))
            } else {
                e
            }
        })
    }

    /// Replaces an image's writable fields.
    pub fn update_image(&self, project: &str, fingerprint: &str, put: api::ImagePut) -> Result<()> {
        let project = &self.feature_project(project, "features.images");
        let mut img = self.get_image(project, fingerprint)?;
        for p in &put.profiles {
            self.get_profile(project, p)?;
        }
        img.put = put;
        img.aliases.clear();
        self.inner
            .db
            .update(Table::Images, project, &img.fingerprint, &img)?;
        self.inner.events.lifecycle(
            "image-updated",
            &format!("/1.0/images/{}", img.fingerprint),
            project,
            None,
        );
        Ok(())
    }

    /// Deletes an image, its aliases, its files and its cached volumes.
    pub async fn delete_image(&self, project: &str, fingerprint: &str) -> Result<()> {
        let project = &self.feature_project(project, "features.images");
        let img = self.get_image(project, fingerprint)?;
        let fp = img.fingerprint;
        for a in img.aliases {
            self.inner
                .db
                .delete(Table::ImageAliases, project, &a.name)?;
        }
        self.inner.db.delete(Table::Images, project, &fp)?;
        let still_used = self
            .inner
            .db
            .list::<api::Image>(Table::Images, None)?
            .iter()
            .any(|(_, i)| i.fingerprint == fp);
        if !still_used {
            let _ = std::fs::remove_file(self.image_file(&fp));
            let _ = std::fs::remove_file(self.image_file(&fp).with_extension("rootfs"));
            for pool in self.list_storage_pools()? {
                let d = self.pool_driver(&pool.name)?;
                d.delete_volume(&Volume::new(VolumeType::Image, fp.clone()))
                    .await?;
            }
        }
        self.inner
            .events
            .lifecycle("image-deleted", &format!("/1.0/images/{fp}"), project, None);
        Ok(())
    }

    /// The original files of an image: `(metadata or unified, rootfs)` paths, byte-identical to
    /// what was imported.
    pub fn image_files(
        &self,
        project: &str,
        fingerprint: &str,
    ) -> Result<(PathBuf, Option<PathBuf>)> {
        let project = &self.feature_project(project, "features.images");
        let img = self.get_image(project, fingerprint)?;
        let meta = self.image_file(&img.fingerprint);
        let rootfs = meta.with_extension("rootfs");
        Ok((meta, rootfs.exists().then_some(rootfs)))
    }

    /// Creates an alias.
    pub fn create_image_alias(
        &self,
        project: &str,
        name: &str,
        target: &str,
        description: &str,
    ) -> Result<()> {
        let project = &self.feature_project(project, "features.images");
        crate::config::validate_entity_name("alias", name)?;
        let img = self.get_image(project, target)?;
        let entry = api::ImageAliasesEntry {
            put: api::ImageAliasesEntryPut {
                description: description.into(),
                target: img.fingerprint,
            },
            name: name.into(),
            kind: "container".into(),
        };
        self.inner
            .db
            .insert(Table::ImageAliases, project, name, &entry)?;
        self.inner.events.lifecycle(
            "image-alias-created",
            &format!("/1.0/images/aliases/{name}"),
            project,
            None,
        );
        Ok(())
    }

    /// All aliases of a project.
    pub fn list_image_aliases(&self, project: &str) -> Result<Vec<api::ImageAliasesEntry>> {
        let project = &self.feature_project(project, "features.images");
        Ok(self
            .inner
            .db
            .list(Table::ImageAliases, Some(project))?
            .into_iter()
            .map(|(_, a)| a)
            .collect())
    }

    /// One alias.
    pub fn get_image_alias(&self, project: &str, name: &str) -> Result<api::ImageAliasesEntry> {
        let project = &self.feature_project(project, "features.images");
        self.inner
            .db
            .get(Table::ImageAliases, project, name)?
            .ok_or_else(|| Error::not_found(format!("Alias {name:?} not found")))
    }

    /// Deletes an alias.
    pub fn delete_image_alias(&self, project: &str, name: &str) -> Result<()> {
        let project = &self.feature_project(project, "features.images");
        if !self.inner.db.delete(Table::ImageAliases, project, name)? {
            return Err(Error::not_found(format!("Alias {name:?} not found")));
        }
        self.inner.events.lifecycle(
            "image-alias-deleted",
            &format!("/1.0/images/aliases/{name}"),
            project,
            None,
        );
        Ok(())
    }

    /// Makes sure the pool has the unpacked image volume; unpacks it the first time only.
    pub(crate) async fn ensure_image_volume(
        &self,
        pool: &str,
        fingerprint: &str,
        progress: Option<super::ops::OpContext>,
    ) -> Result<Volume> {
        let driver = self.pool_driver(pool)?;
        let vol = Volume::new(VolumeType::Image, fingerprint);
        let _guard = self.inner.image_lock.lock().await;
        if driver.has_volume(&vol).await? {
            return Ok(vol);
        }
        // A crash part-way must not leave a half-unpacked image that later creates would use.
        let _intent = self.begin(
            "unpack",
            super::intents::Unsettled::ImageVolume {
                pool: pool.into(),
                fingerprint: fingerprint.into(),
            },
        )?;
        driver.create_volume(&vol).await?;
        let dest = driver.volume_path(&vol);
        let (meta, rootfs) = (
            self.image_file(fingerprint),
            self.image_file(fingerprint).with_extension("rootfs"),
        );
        let r = tokio::task::spawn_blocking(move || {
            let report = UnpackProgress::new(progress);
            unpack(
                &meta,
                rootfs.exists().then_some(rootfs.as_path()),
                &dest,
                &|done, total| report.update(done, total),
            )
        })
        .await
        .map_err(|e| Error::internal(e.to_string()))?;
        if let Err(e) = r {
            let _ = driver.delete_volume(&vol).await;
            return Err(e.context(format!("Failed unpacking image {fingerprint}")));
        }
        Ok(vol)
    }
}

/// Unpacks an image into `dest`: `metadata.yaml`, `templates/` and `rootfs/`.
/// Reports an image unpack on its operation as Incus does: the text
/// `create_instance_from_image_unpack_progress` ("Unpacking image: 45% (12.30MB/s)") and the
/// structured `progress` (`percent`, `speed` in bytes/s, `stage`), on each new percent.
struct UnpackProgress {
    ctx: Option<super::ops::OpContext>,
    started: std::time::Instant,
    last: std::sync::atomic::AtomicU64,
}

impl UnpackProgress {
    fn new(ctx: Option<super::ops::OpContext>) -> Self {
        UnpackProgress {
            ctx,
            started: std::time::Instant::now(),
            last: std::sync::atomic::AtomicU64::new(u64::MAX),
        }
    }

    fn update(&self, done: u64, total: u64) {
        use std::sync::atomic::Ordering;
        let Some(ctx) = &self.ctx else {
            return;
        };
        let percent = (done.min(total) * 100).checked_div(total).unwrap_or(100);
        if self.last.swap(percent, Ordering::Relaxed) == percent {
            return;
        }
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let speed = (done as f64 / secs) as u64;
        ctx.set_metadata(
            "create_instance_from_image_unpack_progress",
            serde_json::json!(format!(
                "Unpacking image: {percent}% ({}/s)",
                crate::config::byte_size_string(speed)
            )),
        );
        ctx.set_metadata(
            "progress",
            serde_json::json!({
                "percent": percent.to_string(),
                "speed": speed.to_string(),
                "stage": "create_instance_from_image_unpack",
            }),
        );
    }
}

/// A reader that reports how much of it has been read (at most every 256 KiB, and at the end).
struct Counting<'a, R> {
    inner: R,
    done: u64,
    reported: u64,
    total: u64,
    report: &'a dyn Fn(u64, u64),
}

impl<R: std::io::Read> std::io::Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if n == 0 || self.done - self.reported >= 256 << 10 {
            self.reported = self.done;
            (self.report)(self.done, self.total);
        }
        Ok(n)
    }
}

/// Extracts the (compressed) tarball `path` into `dest`, reporting progress through `report`
/// as it is read, and its end.
fn extract_counted(path: &Path, dest: &Path, report: &dyn Fn(u64, u64)) -> Result<()> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path.display(), e))?;
    let total = f.metadata().map(|m| m.len()).unwrap_or(0);
    let counting = Counting {
        inner: f,
        done: 0,
        reported: 0,
        total,
        report,
    };
    archive::extract(archive::decompress(counting)?, dest, None)?;
    // The archive may end before the file does (padding): report the end explicitly.
    report(total, total);
    Ok(())
}

/// Unpacks an image into `dest`. Progress follows the bytes read of the file that carries
/// the root filesystem (the unified tarball, or the split rootfs tarball; a squashfs rootfs
/// reports only its end).
fn unpack(
    meta: &Path,
    rootfs: Option<&Path>,
    dest: &Path,
    report: &dyn Fn(u64, u64),
) -> Result<()> {
    let quiet = |_: u64, _: u64| {};
    let meta_report: &dyn Fn(u64, u64) = if rootfs.is_some() { &quiet } else { report };
    extract_counted(meta, dest, meta_report)?;
    if let Some(r) = rootfs {
        let target = dest.join("rootfs");
        if is_squashfs(r) {
            report(0, 1);
            let out = std::process::Command::new("unsquashfs")
                .args(["-f", "-n", "-d"])
                .arg(&target)
                .arg(r)
                .output()
                .map_err(|e| {
                    Error::internal(format!("unsquashfs (package squashfs-tools): {e}"))
                })?;
            if !out.status.success() {
                return Err(Error::invalid(format!(
                    "unsquashfs failed: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
            report(1, 1);
        } else {
            std::fs::create_dir_all(&target).map_err(|e| Error::io(target.display(), e))?;
            extract_counted(r, &target, report)?;
        }
    }
    if !dest.join("rootfs").is_dir() {
        return Err(Error::invalid("The image has no rootfs"));
    }
    Ok(())
}

/// Puts `from` at `to` by a rename (`moving`) or through a temporary copy beside `to`, so
/// `to` is whole or absent; a failed copy (a full disk) leaves nothing behind.
fn place_file(from: &Path, to: &Path, moving: bool) -> Result<()> {
    if moving {
        return std::fs::rename(from, to).map_err(|e| Error::io(to.display(), e));
    }
    let tmp = to.with_extension("incustmp");
    let copied = std::fs::copy(from, &tmp)
        .map_err(|e| Error::io(tmp.display(), e))
        .and_then(|_| std::fs::rename(&tmp, to).map_err(|e| Error::io(to.display(), e)));
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    copied
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_checked() {
        let m = parse_metadata(b"architecture: x86_64\ncreation_date: 1700000000\nproperties:\n  os: busybox\n  release: \"1.35\"\ntemplates:\n  /etc/hostname:\n    when: [create, copy]\n    template: hostname.tpl\n").expect("parse");
        assert_eq!(m.properties["release"], "1.35");
        assert_eq!(m.templates["/etc/hostname"].when, vec!["create", "copy"]);
        assert!(parse_metadata(b"creation_date: 1\n").is_err());
        assert!(parse_metadata(b"architecture: x86_64\n").is_err());
        assert!(parse_metadata(b"architecture: [").is_err());
        assert!(parse_metadata(b"architecture: x\ncreation_date: 1\ntemplates:\n  /etc/x:\n    template: ../../etc/shadow\n").is_err());
    }

    #[test]
    fn fingerprints_are_sha256_of_the_files_in_order() {
        let t = tempfile::tempdir().expect("tempdir");
        let (a, b) = (t.path().join("a"), t.path().join("b"));
        std::fs::write(&a, b"meta").expect("write");
        std::fs::write(&b, b"rootfs").expect("write");
        let (fp, size) = hash_files(&[&a, &b]).expect("hash");
        assert_eq!(size, 10);
        assert_eq!(fp, hex::encode(sha2::Sha256::digest(b"metarootfs")));
    }
}
