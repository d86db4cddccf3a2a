//! The `lxc` instance driver: system containers on liblxc.
//!
//! liblxc is only ever called from the single-threaded `incus-helper` process ([`helper`]),
//! one process per action. Power state is read without any helper from a pid record
//! (`init.pid`: pid and kernel start time, so a recycled pid is not mistaken for init) and the
//! freezer cgroup. A started container's monitor is liblxc's own small daemonised process, so
//! containers keep running when the process holding the `Host` exits.

pub mod config;
pub(crate) mod ffi;
pub mod helper;

use crate::drivers::{
    ConsoleAttach, ConsoleControl, ExecControl, ExecProcess, ExecRequest, ExecStdio,
    InstanceDriver, InstanceDriverInfo, InstanceSpec, PowerState,
};
use crate::error::{Error, Result};
use crate::host::cgroup;
use async_trait::async_trait;
use config::{DeviceNode, HostFacts};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::task::{Context, Poll};
use tokio::io::{AsyncBufReadExt, AsyncRead, ReadBuf};
use tokio::process::Command;

/// How long a helper action (beyond a shutdown's own timeout) may take.
const HELPER_DEADLINE: std::time::Duration = std::time::Duration::from_secs(60);

/// The liblxc container driver.
pub struct LxcDriver {
    helper: PathBuf,
    helper_args: Vec<String>,
    lxcpath: PathBuf,
    cgroup_root: PathBuf,
    facts: HostFacts,
    /// The pid records of the starts this process has under way: their `starting` marker
    /// is not a sign of an interrupted start (see [`LxcDriver::power_state`]).
    starting: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
}

/// Marks a start as under way in this process for as long as it lives.
struct Starting<'a> {
    set: &'a std::sync::Mutex<std::collections::HashSet<PathBuf>>,
    rec: PathBuf,
}

impl<'a> Starting<'a> {
    fn new(set: &'a std::sync::Mutex<std::collections::HashSet<PathBuf>>, rec: PathBuf) -> Self {
        if let Ok(mut s) = set.lock() {
            s.insert(rec.clone());
        }
        Starting { set, rec }
    }
}

impl Drop for Starting<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.set.lock() {
            s.remove(&self.rec);
        }
    }
}

impl LxcDriver {
    /// A driver running `helper`, keeping liblxc's per-container runtime files in `lxcpath`.
    pub fn new(helper: PathBuf, helper_args: Vec<String>, lxcpath: PathBuf, tag: String) -> Self {
        let cgroup_root = PathBuf::from("/sys/fs/cgroup");
        let facts = HostFacts {
            cgroup: cgroup::detect(&cgroup_root),
            cpus: std::thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(1))
                .unwrap_or(1),
            memory: host_memory(),
            tag,
        };
        LxcDriver {
            helper,
            helper_args,
            lxcpath,
            cgroup_root,
            facts,
            starting: Default::default(),
        }
    }

    /// The cgroup layout in use.
    pub fn cgroup_layout(&self) -> cgroup::Layout {
        self.facts.cgroup
    }

    fn base_args(&self, action: &str, spec: &InstanceSpec) -> Vec<String> {
        let mut args = self.helper_args.clone();
        args.extend([
            action.to_string(),
            self.lxcpath.display().to_string(),
            spec.runtime_name.clone(),
            spec.log_dir.join("lxc.conf").display().to_string(),
            spec.log_dir.join("lxc.log").display().to_string(),
        ]);
        args
    }

    async fn run_helper(
        &self,
        action: &str,
        spec: &InstanceSpec,
        extra: &[String],
    ) -> Result<(i32, String)> {
        self.run_helper_to(action, spec, extra, Stdio::piped())
            .await
    }

    /// [`Self::run_helper`] with the helper's stdout connected to `stdout`.
    async fn run_helper_to(
        &self,
        action: &str,
        spec: &InstanceSpec,
        extra: &[String],
        stdout: Stdio,
    ) -> Result<(i32, String)> {
        let mut args = self.base_args(action, spec);
        args.extend(extra.iter().cloned());
        // Every helper call has a deadline: a wedged liblxc call must not hang the engine.
        let deadline = HELPER_DEADLINE
            + extra
                .first()
                .and_then(|s| s.parse::<u64>().ok())
                .map(std::time::Duration::from_secs)
                .unwrap_or_default();
        let child = Command::new(&self.helper)
            .args(&args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                Error::internal(format!("Failed to run {}: {e}", self.helper.display()))
            })?;
        let out = match tokio::time::timeout(deadline, child.wait_with_output()).await {
            Ok(r) => r.map_err(|e| Error::internal(format!("liblxc helper on {action}: {e}")))?,
            Err(_) => {
                return Err(Error::internal(format!(
                    "liblxc helper timed out after {}s on {action} of {:?}",
                    deadline.as_secs(),
                    spec.name
                )));
            }
        };
        let code = out.status.code().unwrap_or(1);
        if code == 1 || code == 2 {
            let msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(Error::internal(if msg.is_empty() {
                format!("liblxc helper failed on {action}")
            } else {
                msg
            }));
        }
        Ok((code, String::from_utf8_lossy(&out.stdout).into_owned()))
    }

    fn write_config(&self, spec: &InstanceSpec) -> Result<()> {
        std::fs::create_dir_all(&spec.log_dir).map_err(|e| Error::io(spec.log_dir.display(), e))?;
        std::fs::create_dir_all(&self.lxcpath).map_err(|e| Error::io(self.lxcpath.display(), e))?;
        let seccomp = spec.log_dir.join("lxc.seccomp");
        std::fs::write(&seccomp, config::SECCOMP_POLICY)
            .map_err(|e| Error::io(seccomp.display(), e))?;
        let devices_dir = spec.log_dir.join("devices");
        let text = config::render(spec, &self.facts, &seccomp, &|name, dev| {
            resolve_node(&devices_dir, name, dev)
        })?;
        let path = spec.log_dir.join("lxc.conf");
        std::fs::write(&path, text).map_err(|e| Error::io(path.display(), e))
    }

    fn pid_record(spec: &InstanceSpec) -> PathBuf {
        spec.log_dir.join("init.pid")
    }
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// The kernel start time (field 22 of `/proc/<pid>/stat`) of `pid`.
pub(crate) fn proc_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}

/// Resolves a unix-char/unix-block device to a host node: an existing `source` (or `path`)
/// node is bind-mounted; with only `major`/`minor`, a node is created in `devices_dir`.
fn resolve_node(devices_dir: &Path, name: &str, dev: &crate::api::ConfigMap) -> Result<DeviceNode> {
    use std::os::unix::fs::MetadataExt;
    let block = dev.get("type").map(String::as_str) == Some("unix-block");
    let kind = if block { 'b' } else { 'c' };
    let host = dev
        .get("source")
        .or_else(|| dev.get("path"))
        .cloned()
        .unwrap_or_default();
    match std::fs::metadata(&host) {
        Ok(md) => {
            let ft = md.file_type();
            if (block && !ft.is_block_device()) || (!block && !ft.is_char_device()) {
                return Err(Error::invalid(format!(
                    "Device {name:?}: {host:?} is not a {} device",
                    if block { "block" } else { "character" }
                )));
            }
            let rdev = md.rdev();
            Ok(DeviceNode {
                kind,
                major: nix::sys::stat::major(rdev) as u32,
                minor: nix::sys::stat::minor(rdev) as u32,
                host_path: host,
            })
        }
        Err(_) => {
            let (Some(major), Some(minor)) = (
                dev.get("major").and_then(|v| v.parse::<u32>().ok()),
                dev.get("minor").and_then(|v| v.parse::<u32>().ok()),
            ) else {
                if dev.get("required").is_some_and(|v| v == "false") {
                    return Err(Error::invalid(format!(
                        "Device {name:?}: optional device missing"
                    )));
                }
                return Err(Error::invalid(format!(
                    "Device {name:?}: {host:?} does not exist and no major/minor given"
                )));
            };
            std::fs::create_dir_all(devices_dir)
                .map_err(|e| Error::io(devices_dir.display(), e))?;
            let node = devices_dir.join(format!("unix.{name}"));
            let _ = std::fs::remove_file(&node);
            let mode = dev
                .get("mode")
                .and_then(|m| u32::from_str_radix(m, 8).ok())
                .unwrap_or(0o660);
            let sflag = if block {
                nix::sys::stat::SFlag::S_IFBLK
            } else {
                nix::sys::stat::SFlag::S_IFCHR
            };
            nix::sys::stat::mknod(
                &node,
                sflag,
                nix::sys::stat::Mode::from_bits_truncate(mode),
                nix::sys::stat::makedev(u64::from(major), u64::from(minor)),
            )
            .map_err(|e| Error::internal(format!("Device {name:?}: mknod failed: {e}")))?;
            Ok(DeviceNode {
                kind,
                major,
                minor,
                host_path: node.display().to_string(),
            })
        }
    }
}

/// The pid record's content while a start is under way.
const STARTING: &str = "starting\n";

impl LxcDriver {
    /// Writes the pid record (`pid start-time`) and returns its text.
    fn record_pid(spec: &InstanceSpec, pid: i32) -> Result<String> {
        let start = proc_start_time(pid).unwrap_or(0);
        let rec = Self::pid_record(spec);
        let text = format!("{pid} {start}\n");
        std::fs::write(&rec, &text).map_err(|e| Error::io(rec.display(), e))?;
        Ok(text)
    }
}

#[async_trait]
impl InstanceDriver for LxcDriver {
    fn info(&self) -> InstanceDriverInfo {
        InstanceDriverInfo {
            name: "lxc",
            version: helper::lxc_version(),
            instance_type: "container",
        }
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<i32> {
        self.write_config(spec)?;
        // A marker first: if this process dies before the pid is recorded (crash, kill -9),
        // the next look at the instance asks liblxc instead of taking it for stopped.
        let rec = Self::pid_record(spec);
        let _under_way = Starting::new(&self.starting, rec.clone());
        std::fs::write(&rec, STARTING).map_err(|e| Error::io(rec.display(), e))?;
        let out = match self.run_helper("start", spec, &[]).await {
            Ok((_, out)) => out,
            Err(e) => {
                let _ = std::fs::remove_file(&rec);
                return Err(e);
            }
        };
        let pid: i32 = out
            .trim()
            .parse()
            .map_err(|_| Error::internal(format!("liblxc helper gave no init pid: {out:?}")))?;
        Self::record_pid(spec, pid)?;
        Ok(pid)
    }

    async fn shutdown(&self, spec: &InstanceSpec, timeout: std::time::Duration) -> Result<()> {
        let secs = timeout.as_secs().clamp(1, i32::MAX as u64).to_string();
        let (code, _) = self.run_helper("shutdown", spec, &[secs]).await?;
        if code == helper::EXIT_TIMEOUT {
            return Err(Error::busy(format!(
                "Instance {:?} did not stop within {}s",
                spec.name,
                timeout.as_secs()
            )));
        }
        let _ = std::fs::remove_file(Self::pid_record(spec));
        Ok(())
    }

    async fn stop(&self, spec: &InstanceSpec) -> Result<()> {
        if self.power_state(spec).await? == PowerState::Stopped {
            return Ok(());
        }
        self.run_helper("stop", spec, &[]).await?;
        let _ = std::fs::remove_file(Self::pid_record(spec));
        Ok(())
    }

    async fn freeze(&self, spec: &InstanceSpec) -> Result<()> {
        self.run_helper("freeze", spec, &[]).await.map(|_| ())
    }

    async fn unfreeze(&self, spec: &InstanceSpec) -> Result<()> {
        self.run_helper("unfreeze", spec, &[]).await.map(|_| ())
    }

    async fn power_state(&self, spec: &InstanceSpec) -> Result<PowerState> {
        let Ok(mut rec) = std::fs::read_to_string(Self::pid_record(spec)) else {
            return Ok(PowerState::Stopped);
        };
        if rec == STARTING {
            // A start of ours still going on: not running yet, and its record is its own to
            // write (removing it here raced the start's own write, leaving a running
            // container taken for stopped).
            let ours = self
                .starting
                .lock()
                .map(|s| s.contains(&Self::pid_record(spec)))
                .unwrap_or(false);
            if ours {
                return Ok(PowerState::Stopped);
            }
            // A start that was interrupted (this process, or a previous one, died during
            // it): ask liblxc once.
            let (_, out) = self.run_helper("pid", spec, &[]).await?;
            match out.trim().parse::<i32>() {
                Ok(pid) if pid > 0 => rec = Self::record_pid(spec, pid)?,
                _ => {
                    let path = Self::pid_record(spec);
                    if std::fs::read_to_string(&path).is_ok_and(|r| r == STARTING) {
                        let _ = std::fs::remove_file(path);
                    }
                    return Ok(PowerState::Stopped);
                }
            }
        }
        let mut it = rec.split_whitespace();
        let (Some(pid), Some(start)) = (
            it.next().and_then(|p| p.parse::<i32>().ok()),
            it.next().and_then(|s| s.parse::<u64>().ok()),
        ) else {
            return Ok(PowerState::Stopped);
        };
        if proc_start_time(pid) != Some(start) {
            return Ok(PowerState::Stopped);
        }
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if cgroup::is_frozen(&self.cgroup_root, self.facts.cgroup, &cg) {
            Ok(PowerState::Frozen(pid))
        } else {
            Ok(PowerState::Running(pid))
        }
    }

    async fn console(&self, spec: &InstanceSpec) -> Result<ConsoleAttach> {
        self.attach_console(spec).await
    }

    async fn exec(&self, spec: &InstanceSpec, req: ExecRequest) -> Result<ExecProcess> {
        if req.command.is_empty() {
            return Err(Error::invalid("No command given"));
        }
        let mut args = self.base_args("attach", spec);
        args.push(req.uid.to_string());
        args.push(req.gid.to_string());
        args.push(req.cwd.clone());
        args.push(req.environment.len().to_string());
        args.extend(req.environment.iter().map(|(k, v)| format!("{k}={v}")));
        args.push("--".into());
        args.extend(req.command.iter().cloned());

        let (pid_read, pid_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|e| Error::internal(format!("pipe: {e}")))?;
        let mut cmd = Command::new(&self.helper);
        cmd.args(&args)
            .env("INCUS_HELPER_PIDFD", "3")
            .kill_on_drop(false);
        let pid_write_raw = pid_write.as_raw_fd();
        // SAFETY: the closure runs in the forked child before exec and only calls dup2, which
        // is async-signal-safe; it makes the pid pipe fd 3 (without close-on-exec).
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(pid_write_raw, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut master: Option<OwnedFd> = None;
        match req.stdio {
            ExecStdio::Pipes => {
                cmd.stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped());
            }
            ExecStdio::Pty(cols, rows) => {
                let ws = nix::pty::Winsize {
                    ws_row: rows.max(1),
                    ws_col: cols.max(1),
                    ws_xpixel: 0,
                    ws_ypixel: 0,
                };
                let init = match self.power_state(spec).await? {
                    PowerState::Running(pid) | PowerState::Frozen(pid) => Some(pid),
                    PowerState::Stopped => None,
                };
                let (pty_master, slave) = open_pty(init, ws)?;
                let dup = |fd: &OwnedFd| {
                    fd.try_clone()
                        .map_err(|e| Error::internal(format!("dup: {e}")))
                };
                cmd.stdin(Stdio::from(dup(&slave)?))
                    .stdout(Stdio::from(dup(&slave)?))
                    .stderr(Stdio::from(slave));
                master = Some(pty_master);
            }
        }
        let mut child = cmd.spawn().map_err(|e| {
            Error::internal(format!("Failed to run {}: {e}", self.helper.display()))
        })?;
        drop(pid_write);
        drop(cmd);

        let receiver = tokio::net::unix::pipe::Receiver::from_owned_fd(pid_read)
            .map_err(|e| Error::internal(format!("pid pipe: {e}")))?;
        let mut line = String::new();
        let mut reader = tokio::io::BufReader::new(receiver);
        let read = reader.read_line(&mut line);
        if tokio::time::timeout(HELPER_DEADLINE, read).await.is_err() {
            let _ = child.start_kill();
            return Err(Error::internal(format!(
                "liblxc helper timed out attaching to {:?}",
                spec.name
            )));
        }
        let pid: Option<i32> = line.trim().parse().ok();

        let (stdin, stdout, stderr): (
            Option<crate::drivers::BoxWriter>,
            Option<crate::drivers::BoxReader>,
            Option<crate::drivers::BoxReader>,
        ) = match &master {
            None => (
                child.stdin.take().map(|s| Box::pin(s) as _),
                child.stdout.take().map(|s| Box::pin(s) as _),
                child.stderr.take().map(|s| Box::pin(s) as _),
            ),
            Some(m) => {
                let file = |fd: &OwnedFd| -> Result<tokio::fs::File> {
                    let f = fd
                        .try_clone()
                        .map_err(|e| Error::internal(format!("dup: {e}")))?;
                    Ok(tokio::fs::File::from_std(std::fs::File::from(f)))
                };
                (
                    Some(Box::pin(file(m)?)),
                    Some(Box::pin(PtyReader(file(m)?))),
                    None,
                )
            }
        };
        Ok(ExecProcess {
            stdin,
            stdout,
            stderr,
            control: Box::new(LxcExec { child, pid, master }),
        })
    }
}

impl LxcDriver {
    /// The `console` action: the helper allocates the console and passes it back over a
    /// socket pair.
    async fn attach_console(&self, spec: &InstanceSpec) -> Result<ConsoleAttach> {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()
            .map_err(|e| Error::internal(format!("socketpair: {e}")))?;
        self.run_helper_to("console", spec, &[], Stdio::from(OwnedFd::from(theirs)))
            .await
            .map_err(|e| Error::busy(e.message()))?;
        // The helper has exited: its message is already queued, so this does not block.
        let (ptx, keep) = receive_console_fds(&ours)?;
        let file = |fd: &OwnedFd| -> Result<tokio::fs::File> {
            let f = fd
                .try_clone()
                .map_err(|e| Error::internal(format!("dup: {e}")))?;
            Ok(tokio::fs::File::from_std(std::fs::File::from(f)))
        };
        Ok(ConsoleAttach {
            input: Box::pin(file(&ptx)?),
            output: Box::pin(PtyReader(file(&ptx)?)),
            control: Box::new(LxcConsole {
                ptx,
                _allocation: keep,
            }),
        })
    }
}

/// Reads a pty master, turning the EIO that follows the last close of the slave into EOF.
struct PtyReader(tokio::fs::File);

impl AsyncRead for PtyReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match Pin::new(&mut self.0).poll_read(cx, buf) {
            Poll::Ready(Err(e)) if e.raw_os_error() == Some(libc::EIO) => Poll::Ready(Ok(())),
            other => other,
        }
    }
}

struct LxcExec {
    child: tokio::process::Child,
    pid: Option<i32>,
    master: Option<OwnedFd>,
}

#[async_trait]
impl ExecControl for LxcExec {
    fn signal(&self, signal: i32) -> Result<()> {
        let pid = self
            .pid
            .ok_or_else(|| Error::busy("The command is not running"))?;
        let sig = nix::sys::signal::Signal::try_from(signal)
            .map_err(|_| Error::invalid(format!("Invalid signal {signal}")))?;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig)
            .map_err(|e| Error::busy(format!("Failed to signal the command: {e}")))
    }

    fn resize(&self, cols: u16, rows: u16) -> Result<()> {
        let m = self
            .master
            .as_ref()
            .ok_or_else(|| Error::invalid("Not an interactive command"))?;
        set_window_size(m, cols, rows)
    }

    async fn wait(&mut self) -> Result<i32> {
        use std::os::unix::process::ExitStatusExt;
        let st = self
            .child
            .wait()
            .await
            .map_err(|e| Error::internal(format!("wait: {e}")))?;
        self.pid = None;
        Ok(st.code().unwrap_or_else(|| 128 + st.signal().unwrap_or(0)))
    }
}

/// Sets a terminal's window size.
fn set_window_size(fd: &OwnedFd, cols: u16, rows: u16) -> Result<()> {
    let size = rustix::termios::Winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(fd, size).map_err(|e| Error::internal(format!("resize: {e}")))
}

/// An attached console: the pty's controller side and liblxc's allocation.
struct LxcConsole {
    ptx: OwnedFd,
    _allocation: OwnedFd,
}

impl ConsoleControl for LxcConsole {
    fn resize(&self, cols: u16, rows: u16) -> Result<()> {
        set_window_size(&self.ptx, cols, rows)
    }
}

/// Receives the two descriptors the helper's `console` action sends.
fn receive_console_fds(sock: &std::os::unix::net::UnixStream) -> Result<(OwnedFd, OwnedFd)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    use std::os::fd::FromRawFd;
    let mut buf = [0u8; 16];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 2]);
    let msg = recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| Error::internal(format!("console hand-over: {e}")))?;
    let mut fds = Vec::new();
    for c in msg
        .cmsgs()
        .map_err(|e| Error::internal(format!("console hand-over: {e}")))?
    {
        if let ControlMessageOwned::ScmRights(got) = c {
            // SAFETY: descriptors received with SCM_RIGHTS are new and ours to own.
            fds.extend(
                got.into_iter()
                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
            );
        }
    }
    let mut fds = fds.into_iter();
    match (fds.next(), fds.next()) {
        (Some(ptx), Some(keep)) => Ok((ptx, keep)),
        _ => Err(Error::internal("liblxc helper sent no console")),
    }
}

/// A pty pair for `exec`, both ends close-on-exec (so no other child inherits them). It comes
/// from the container's own devpts (`/proc/<init>/root/dev/pts/ptmx`) as Incus does, so the
/// command's `/dev/pts/N` names a terminal that exists inside the container (`tty` works);
/// the host's devpts is the fallback.
fn open_pty(init: Option<i32>, ws: nix::pty::Winsize) -> Result<(OwnedFd, OwnedFd)> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC;
    let master = init
        .and_then(|pid| {
            rustix::fs::open(
                format!("/proc/{pid}/root/dev/pts/ptmx"),
                flags,
                Mode::empty(),
            )
            .ok()
        })
        .map(Ok)
        .unwrap_or_else(|| rustix::fs::open("/dev/ptmx", flags, Mode::empty()))
        .map_err(|e| Error::internal(format!("ptmx: {e}")))?;
    rustix::pty::unlockpt(&master).map_err(|e| Error::internal(format!("unlockpt: {e}")))?;
    let peer = rustix::pty::OpenptFlags::RDWR
        | rustix::pty::OpenptFlags::NOCTTY
        | rustix::pty::OpenptFlags::CLOEXEC;
    let slave = rustix::pty::ioctl_tiocgptpeer(&master, peer)
        .map_err(|e| Error::internal(format!("TIOCGPTPEER: {e}")))?;
    let size = rustix::termios::Winsize {
        ws_row: ws.ws_row,
        ws_col: ws.ws_col,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(&slave, size)
        .map_err(|e| Error::internal(format!("window size: {e}")))?;
    Ok((master, slave))
}
