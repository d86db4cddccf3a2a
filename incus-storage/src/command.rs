//! The seam around the storage command line: drivers that shell out through a [`Runner`] can be
//! driven in tests by a [`Transcript`] of the commands they are expected to run and what
//! those commands answer, where the real tools cannot run (LVM without device-mapper).

use async_trait::async_trait;
use incus_core::error::{Error, Result};
use std::collections::VecDeque;
use std::sync::Mutex;

/// Runs one command and returns its standard output; a non-zero exit is an error carrying
/// the command and its standard error.
#[async_trait]
pub trait Runner: Send + Sync {
    /// Runs `program` with `args`.
    async fn run(&self, program: &str, args: &[String]) -> Result<String>;
}

/// The real runner: `tokio::process`, standard input closed.
pub struct System;

#[async_trait]
impl Runner for System {
    async fn run(&self, program: &str, args: &[String]) -> Result<String> {
        let out = tokio::process::Command::new(program)
            .args(args)
            .stdin(std::process::Stdio::null())
            // lvm2 warns about every inherited descriptor otherwise.
            .env("LVM_SUPPRESS_FD_WARNINGS", "1")
            .output()
            .await
            .map_err(|e| Error::internal(format!("Failed to run {program}: {e}")))?;
        if !out.status.success() {
            return Err(Error::internal(format!(
                "{program} {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// One expected command and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The command line, program and arguments joined by single spaces.
    pub command: String,
    /// Exit code.
    pub code: i32,
    /// Standard output when `code` is 0, standard error otherwise.
    pub output: String,
}

/// A runner that checks every command against a recorded transcript, in order, and answers
/// with the recorded output. A command that differs from the next step fails with both shown.
///
/// The text form: a line `$ COMMAND` (exit 0) or `$N COMMAND` (exit `N`) starts a step, the
/// lines up to the next step are its output; lines starting with `#` are comments.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use incus_storage::command::{Runner, Transcript};
/// let t = Transcript::parse("# comment\n$ vgs --noheadings -o vg_name vg0\n  vg0\n").unwrap();
/// let out = t.run("vgs", &["--noheadings", "-o", "vg_name", "vg0"].map(String::from)).await;
/// assert_eq!(out.unwrap(), "  vg0\n");
/// assert!(t.finished().is_ok());
/// # });
/// ```
#[derive(Debug, Default)]
pub struct Transcript {
    steps: Mutex<VecDeque<Step>>,
    seen: Mutex<Vec<String>>,
}

impl Transcript {
    /// Parses the text form.
    pub fn parse(text: &str) -> Result<Self> {
        let mut steps: Vec<Step> = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('$') {
                let (code, command) = rest
                    .split_once(' ')
                    .ok_or_else(|| Error::invalid(format!("transcript line {line:?}")))?;
                let code = if code.is_empty() {
                    0
                } else {
                    code.parse()
                        .map_err(|_| Error::invalid(format!("transcript exit code {code:?}")))?
                };
                steps.push(Step {
                    command: command.to_string(),
                    code,
                    output: String::new(),
                });
            } else if let Some(step) = steps.last_mut() {
                step.output.push_str(line);
                step.output.push('\n');
            } else if !line.trim().is_empty() {
                return Err(Error::invalid(format!(
                    "transcript output before a command: {line:?}"
                )));
            }
        }
        Ok(Transcript {
            steps: Mutex::new(steps.into()),
            seen: Mutex::new(Vec::new()),
        })
    }

    /// `Ok` when every step was run; otherwise the steps left.
    pub fn finished(&self) -> std::result::Result<(), Vec<String>> {
        let left: Vec<String> = self
            .steps
            .lock()
            .map(|s| s.iter().map(|s| s.command.clone()).collect())
            .unwrap_or_default();
        if left.is_empty() { Ok(()) } else { Err(left) }
    }

    /// Every command run so far, as run.
    pub fn seen(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Runner for Transcript {
    async fn run(&self, program: &str, args: &[String]) -> Result<String> {
        let mut command = program.to_string();
        for a in args {
            command.push(' ');
            command.push_str(a);
        }
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(command.clone());
        }
        let step = self
            .steps
            .lock()
            .map_err(|_| Error::internal("transcript poisoned"))?
            .pop_front()
            .ok_or_else(|| {
                Error::internal(format!("unexpected command (transcript ended): {command}"))
            })?;
        if step.command != command {
            return Err(Error::internal(format!(
                "transcript mismatch:\n expected: {}\n      got: {command}",
                step.command
            )));
        }
        if step.code == 0 {
            Ok(step.output)
        } else {
            Err(Error::internal(format!(
                "{command}: {}",
                step.output.trim()
            )))
        }
    }
}
