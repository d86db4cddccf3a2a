//! `exec` with `record-output`: the command's stdout and stderr go to files under the
//! instance's log directory (`exec-output/exec_<uuid>.stdout|.stderr`), listed, read and
//! deleted through `/1.0/instances/<name>/logs/exec-output[/<file>]`.

use super::Host;
use crate::api;
use crate::error::{Error, Result};
use std::path::PathBuf;

/// An exec-output file name: `exec_<id>.stdout` or `.stderr`, nothing else.
fn output_name(file: &str) -> Result<&str> {
    let ok = file.starts_with("exec_")
        && (file.ends_with(".stdout") || file.ends_with(".stderr"))
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
        && !file.contains("..");
    if ok {
        Ok(file)
    } else {
        Err(Error::invalid(format!("Invalid exec output file {file:?}")))
    }
}

impl Host {
    fn exec_output_dir(&self, project: &str, name: &str) -> Result<PathBuf> {
        let (_, spec) = self.instance_spec(project, name)?;
        Ok(spec.log_dir.join("exec-output"))
    }

    /// Runs `req` (stdin empty) with stdout and stderr recorded to two new files; returns the
    /// exit status and the two file names.
    pub async fn exec_recorded(
        &self,
        project: &str,
        name: &str,
        req: &api::InstanceExecPost,
    ) -> Result<(i32, String, String)> {
        let dir = self.exec_output_dir(project, name)?;
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (out_name, err_name) = (format!("exec_{id}.stdout"), format!("exec_{id}.stderr"));
        let mut proc = self.exec(project, name, req).await?;
        drop(proc.stdin.take());
        let record = |r: Option<crate::drivers::BoxReader>, path: PathBuf| async move {
            let mut f = tokio::fs::File::create(&path)
                .await
                .map_err(|e| Error::io(path.display(), e))?;
            if let Some(mut r) = r {
                tokio::io::copy(&mut r, &mut f)
                    .await
                    .map_err(|e| Error::io(path.display(), e))?;
            }
            Ok::<(), Error>(())
        };
        let (o, e) = tokio::join!(
            record(proc.stdout.take(), dir.join(&out_name)),
            record(proc.stderr.take(), dir.join(&err_name))
        );
        let code = proc.control.wait().await?;
        o?;
        e?;
        Ok((code, out_name, err_name))
    }

    /// The recorded exec output files of an instance, sorted.
    pub fn exec_output_files(&self, project: &str, name: &str) -> Result<Vec<String>> {
        let dir = self.exec_output_dir(project, name)?;
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| output_name(n).is_ok())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        Ok(names)
    }

    /// One recorded output file.
    pub fn exec_output_file(&self, project: &str, name: &str, file: &str) -> Result<Vec<u8>> {
        let path = self
            .exec_output_dir(project, name)?
            .join(output_name(file)?);
        std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::not_found(format!("{file:?} not found")),
            _ => Error::io(path.display(), e),
        })
    }

    /// Deletes one recorded output file.
    pub fn delete_exec_output_file(&self, project: &str, name: &str, file: &str) -> Result<()> {
        let path = self
            .exec_output_dir(project, name)?
            .join(output_name(file)?);
        std::fs::remove_file(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::not_found(format!("{file:?} not found")),
            _ => Error::io(path.display(), e),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names() {
        assert!(output_name("exec_0123abcd.stdout").is_ok());
        assert!(output_name("exec_0123abcd.stderr").is_ok());
        for bad in [
            "lxc.log",
            "exec_../../x.stdout",
            "exec_a/b.stdout",
            "exec_a.txt",
            "",
        ] {
            assert!(output_name(bad).is_err(), "{bad}");
        }
    }
}
