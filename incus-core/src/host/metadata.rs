//! An instance's own `metadata.yaml` and `templates/` (copied from its image at create):
//! read, replace, and template files list/get/put/delete, as
//! `/1.0/instances/<name>/metadata[/templates]` serves them.

use super::Host;
use crate::api;
use crate::error::{Error, Result};
use std::path::PathBuf;

/// A template file name: one plain component, no `/`, `..` or leading dot tricks.
fn template_name(name: &str) -> Result<&str> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::invalid(format!("Invalid template name {name:?}")));
    }
    Ok(name)
}

impl Host {
    /// The instance volume's directory (holding `rootfs/`, `metadata.yaml`, `templates/`).
    fn instance_volume_dir(&self, project: &str, name: &str) -> Result<PathBuf> {
        let inst = self.get_instance_record(project, name)?;
        let (driver, vol) = self.root_volume(&inst)?;
        Ok(driver.volume_path(&vol))
    }

    /// The instance's `metadata.yaml` (empty metadata when it has none, as for `none`
    /// instances).
    pub fn instance_metadata(&self, project: &str, name: &str) -> Result<api::ImageMetadata> {
        let path = self
            .instance_volume_dir(project, name)?
            .join("metadata.yaml");
        match std::fs::read(&path) {
            Ok(text) => {
                let s = String::from_utf8_lossy(&text);
                serde_saphyr::from_str(&s)
                    .map_err(|e| Error::internal(format!("{}: {e}", path.display())))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(api::ImageMetadata::default()),
            Err(e) => Err(Error::io(path.display(), e)),
        }
    }

    /// Replaces the instance's `metadata.yaml`; template targets must be absolute and their
    /// files plain names.
    pub fn update_instance_metadata(
        &self,
        project: &str,
        name: &str,
        meta: &api::ImageMetadata,
    ) -> Result<()> {
        for (target, t) in &meta.templates {
            if !target.starts_with('/') {
                return Err(Error::invalid(format!(
                    "Template target {target:?} is not absolute"
                )));
            }
            template_name(&t.template)?;
        }
        let dir = self.instance_volume_dir(project, name)?;
        let text = serde_saphyr::to_string(meta)
            .map_err(|e| Error::internal(format!("metadata.yaml: {e}")))?;
        let tmp = dir.join(".metadata.yaml.tmp");
        std::fs::write(&tmp, text).map_err(|e| Error::io(tmp.display(), e))?;
        std::fs::rename(&tmp, dir.join("metadata.yaml"))
            .map_err(|e| Error::io(tmp.display(), e))?;
        self.inner.events.lifecycle(
            "instance-metadata-updated",
            &super::instance_url(project, name),
            project,
            None,
        );
        Ok(())
    }

    /// The names of the instance's template files, sorted.
    pub fn instance_templates(&self, project: &str, name: &str) -> Result<Vec<String>> {
        let dir = self.instance_volume_dir(project, name)?.join("templates");
        let mut out = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(entries) => {
                for e in entries.flatten() {
                    if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                        out.push(e.file_name().to_string_lossy().into_owned());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(dir.display(), e)),
        }
        out.sort();
        Ok(out)
    }

    /// One template file's content.
    pub fn instance_template(&self, project: &str, name: &str, file: &str) -> Result<Vec<u8>> {
        let path = self
            .instance_volume_dir(project, name)?
            .join("templates")
            .join(template_name(file)?);
        std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::not_found(format!("Template {file:?} not found"))
            }
            _ => Error::io(path.display(), e),
        })
    }

    /// Writes (creates or replaces) a template file.
    pub fn put_instance_template(
        &self,
        project: &str,
        name: &str,
        file: &str,
        content: &[u8],
    ) -> Result<()> {
        let dir = self.instance_volume_dir(project, name)?.join("templates");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        let path = dir.join(template_name(file)?);
        std::fs::write(&path, content).map_err(|e| Error::io(path.display(), e))
    }

    /// Deletes a template file.
    pub fn delete_instance_template(&self, project: &str, name: &str, file: &str) -> Result<()> {
        let path = self
            .instance_volume_dir(project, name)?
            .join("templates")
            .join(template_name(file)?);
        std::fs::remove_file(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::not_found(format!("Template {file:?} not found"))
            }
            _ => Error::io(path.display(), e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_names_are_plain() {
        assert!(template_name("hostname.tpl").is_ok());
        for bad in ["", ".", "..", "../x", "a/b", "/etc/passwd"] {
            assert!(template_name(bad).is_err(), "{bad}");
        }
    }
}
