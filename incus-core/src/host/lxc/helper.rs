//! The single-threaded liblxc helper.
//!
//! liblxc forks and clones, which is unsafe in a multi-threaded process, so the engine never
//! calls it in-process: it runs the `incus-helper` binary once per action, and that binary
//! calls [`main`]. The process stays single-threaded from start to exit.
//!
//! Protocol (argv in, exit status and one line of stdout out):
//! - `start LXCPATH NAME CONFIG LOGFILE` prints the init pid once the container is RUNNING.
//! - `pid LXCPATH NAME CONFIG LOGFILE` prints the init pid, or 0 when not running.
//! - `shutdown LXCPATH NAME CONFIG LOGFILE SECONDS` exits 0 when stopped, 3 on time-out.
//! - `stop|freeze|unfreeze LXCPATH NAME CONFIG LOGFILE` exit 0 on success.
//! - `attach LXCPATH NAME CONFIG LOGFILE UID GID CWD ENVCOUNT K=V... -- CMD ARGS...` runs a
//!   command in the container on the helper's own stdin/stdout/stderr, writes the command's
//!   host pid and a newline to fd 3 when `INCUS_HELPER_PIDFD=3`, and exits with the command's
//!   status (128 + signal when killed).
//! - `console LXCPATH NAME CONFIG LOGFILE` allocates the console (liblxc's proxy pty) and sends
//!   two descriptors over its stdout, which must be a unix socket: the pty's controller side
//!   and the connection that keeps the console allocated (closing it frees the console).
//!
//! Errors go to stderr as one line, with exit status 1 (2 for usage errors).

use super::ffi;
use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::ptr;

/// Exit status when a graceful shutdown timed out.
pub const EXIT_TIMEOUT: i32 = 3;

struct Container {
    c: *mut ffi::lxc_container,
}

impl Drop for Container {
    fn drop(&mut self) {
        // SAFETY: `c` came from lxc_container_new and is released exactly once here.
        unsafe {
            ffi::lxc_container_put(self.c);
        }
    }
}

/// Calls one of the function pointers of `struct lxc_container`.
macro_rules! lxc_call {
    ($cont:expr, $method:ident $(, $arg:expr)*) => {{
        // SAFETY: `$cont.c` is a valid container from lxc_container_new; liblxc always fills
        // every method pointer, and the arguments are valid for the call's duration.
        unsafe {
            let f = (*$cont.c).$method.expect(concat!("liblxc provides ", stringify!($method)));
            f($cont.c $(, $arg)*)
        }
    }};
}

fn cstring(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("argument {s:?} contains a NUL byte"))
}

impl Container {
    fn open(lxcpath: &str, name: &str, config: &str, logfile: &str) -> Result<Self, String> {
        let (cname, cpath, cconf, clog) = (
            cstring(name)?,
            cstring(lxcpath)?,
            cstring(config)?,
            cstring(logfile)?,
        );
        let level = cstring("WARN")?;
        let mut log = ffi::lxc_log {
            name: cname.as_ptr(),
            lxcpath: cpath.as_ptr(),
            file: clog.as_ptr(),
            level: level.as_ptr(),
            prefix: cname.as_ptr(),
            quiet: true,
        };
        // SAFETY: every pointer in `log` outlives the call; liblxc copies what it keeps.
        unsafe {
            ffi::lxc_log_init(&mut log);
        }
        // SAFETY: both strings are valid NUL-terminated C strings.
        let c = unsafe { ffi::lxc_container_new(cname.as_ptr(), cpath.as_ptr()) };
        if c.is_null() {
            return Err(format!("liblxc could not open container {name:?}"));
        }
        let cont = Container { c };
        lxc_call!(cont, clear_config);
        if !lxc_call!(cont, load_config, cconf.as_ptr()) {
            return Err(format!("liblxc refused the configuration {config}"));
        }
        Ok(cont)
    }

    fn init_pid(&self) -> i32 {
        lxc_call!(self, init_pid)
    }
}

fn run(args: &[String]) -> Result<i32, String> {
    let [action, lxcpath, name, config, logfile, rest @ ..] = args else {
        return Err("usage: incus-helper ACTION LXCPATH NAME CONFIG LOGFILE ...".into());
    };
    let cont = Container::open(lxcpath, name, config, logfile)?;
    match action.as_str() {
        "start" => {
            lxc_call!(cont, want_daemonize, true);
            lxc_call!(cont, want_close_all_fds, true);
            if !lxc_call!(cont, start, 0, ptr::null()) {
                return Err(format!(
                    "Failed to start container {name:?} (see {logfile})"
                ));
            }
            let running = cstring("RUNNING")?;
            if !lxc_call!(cont, wait, running.as_ptr(), 30) {
                return Err(format!("Container {name:?} did not reach RUNNING"));
            }
            println!("{}", cont.init_pid());
            Ok(0)
        }
        "pid" => {
            let pid = if lxc_call!(cont, is_running) {
                cont.init_pid()
            } else {
                0
            };
            println!("{pid}");
            Ok(0)
        }
        "shutdown" => {
            let secs: i32 = rest
                .first()
                .and_then(|s| s.parse().ok())
                .ok_or("shutdown needs a timeout in seconds")?;
            Ok(if lxc_call!(cont, shutdown, secs) {
                0
            } else {
                EXIT_TIMEOUT
            })
        }
        "stop" => {
            if !lxc_call!(cont, is_running) {
                return Ok(0);
            }
            if lxc_call!(cont, stop) {
                Ok(0)
            } else {
                Err(format!("Failed to stop container {name:?}"))
            }
        }
        "freeze" | "unfreeze" => {
            let ok = if action == "freeze" {
                lxc_call!(cont, freeze)
            } else {
                lxc_call!(cont, unfreeze)
            };
            if ok {
                Ok(0)
            } else {
                Err(format!("Failed to {action} container {name:?}"))
            }
        }
        "attach" => attach(&cont, rest),
        "console" => console(&cont),
        other => Err(format!("unknown helper action {other:?}")),
    }
}

fn console(cont: &Container) -> Result<i32, String> {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut ttynum: std::os::raw::c_int = 0;
    let mut ptx: std::os::raw::c_int = -1;
    let keep = lxc_call!(cont, console_getfd, &mut ttynum, &mut ptx);
    if keep < 0 || ptx < 0 {
        return Err("Failed to attach to the console (is it already attached?)".into());
    }
    // SAFETY: liblxc returned these two open descriptors for the caller to own.
    let (keep, ptx) = unsafe { (OwnedFd::from_raw_fd(keep), OwnedFd::from_raw_fd(ptx)) };
    let fds = [
        std::os::fd::AsRawFd::as_raw_fd(&ptx),
        std::os::fd::AsRawFd::as_raw_fd(&keep),
    ];
    let iov = [std::io::IoSlice::new(b"console\n")];
    sendmsg::<()>(
        1,
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .map_err(|e| format!("Failed to hand over the console: {e}"))?;
    Ok(0)
}

fn attach(cont: &Container, rest: &[String]) -> Result<i32, String> {
    let [uid, gid, cwd, envcount, rest @ ..] = rest else {
        return Err("attach needs UID GID CWD ENVCOUNT".into());
    };
    let uid: u32 = uid.parse().map_err(|_| "bad uid")?;
    let gid: u32 = gid.parse().map_err(|_| "bad gid")?;
    let n: usize = envcount.parse().map_err(|_| "bad env count")?;
    if rest.len() < n + 2 || rest[n] != "--" {
        return Err("attach needs ENV... -- COMMAND".into());
    }
    let env: Vec<CString> = rest[..n]
        .iter()
        .map(|s| cstring(s))
        .collect::<Result<_, _>>()?;
    let argv: Vec<CString> = rest[n + 1..]
        .iter()
        .map(|s| cstring(s))
        .collect::<Result<_, _>>()?;
    let mut env_ptrs: Vec<*mut c_char> = env.iter().map(|s| s.as_ptr().cast_mut()).collect();
    env_ptrs.push(ptr::null_mut());
    let mut argv_ptrs: Vec<*mut c_char> = argv.iter().map(|s| s.as_ptr().cast_mut()).collect();
    argv_ptrs.push(ptr::null_mut());
    let ccwd = cstring(cwd)?;

    let pidfd = std::env::var("INCUS_HELPER_PIDFD")
        .ok()
        .and_then(|v| v.parse::<i32>().ok());
    if let Some(fd) = pidfd {
        // SAFETY: fcntl on an fd number has no memory effects; a bad fd only returns EBADF.
        // Close-on-exec keeps the pid pipe out of the command's process.
        unsafe {
            libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
        }
    }

    let mut opts = ffi::lxc_attach_options_t {
        attach_flags: ffi::LXC_ATTACH_DEFAULT as i32,
        namespaces: -1,
        personality: libc::c_long::from(ffi::LXC_ATTACH_DETECT_PERSONALITY),
        initial_cwd: ccwd.as_ptr().cast_mut(),
        uid,
        gid,
        env_policy: ffi::lxc_attach_env_policy_t_LXC_ATTACH_CLEAR_ENV,
        extra_env_vars: env_ptrs.as_mut_ptr(),
        extra_keep_env: ptr::null_mut(),
        stdin_fd: 0,
        stdout_fd: 1,
        stderr_fd: 2,
        log_fd: -libc::EBADF,
        lsm_label: ptr::null_mut(),
        groups: ffi::lxc_groups_t {
            size: 0,
            list: ptr::null_mut(),
        },
    };
    let mut cmd = ffi::lxc_attach_command_t {
        program: argv_ptrs[0],
        argv: argv_ptrs.as_mut_ptr(),
    };
    let mut pid: ffi::pid_t = 0;
    // SAFETY: a session of our own with stdin as controlling terminal, when stdin is a tty,
    // so that interactive commands get job control. Both calls only affect this process.
    unsafe {
        if libc::isatty(0) == 1 {
            libc::setsid();
            libc::ioctl(0, libc::TIOCSCTTY, 0);
        }
    }
    let ret = lxc_call!(
        cont,
        attach,
        Some(ffi::lxc_attach_run_command),
        ptr::addr_of_mut!(cmd).cast(),
        &mut opts,
        &mut pid
    );
    if ret < 0 || pid <= 0 {
        return Err("Failed to attach to the container".into());
    }
    if let Some(fd) = pidfd {
        let line = format!("{pid}\n");
        // SAFETY: writing a local buffer to an fd we own; then the fd is closed once.
        unsafe {
            libc::write(fd, line.as_ptr().cast(), line.len());
            libc::close(fd);
        }
    }
    let mut status = 0;
    loop {
        // SAFETY: waiting on our own child with a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        if r < 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err("lost the attached process".into());
        }
    }
    if libc::WIFEXITED(status) {
        Ok(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Ok(128 + libc::WTERMSIG(status))
    } else {
        Ok(1)
    }
}

/// The helper's entry point: runs one action from `args` (without the program name) and
/// returns the process exit status.
pub fn main(args: &[String]) -> i32 {
    match run(args) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("{msg}");
            1
        }
    }
}

/// liblxc's version string.
pub fn lxc_version() -> String {
    // SAFETY: lxc_get_version returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(ffi::lxc_get_version()) }
        .to_string_lossy()
        .into_owned()
}
