//! `incusd`: serves the embedded engine over the Incus REST API on a unix socket, and over
//! HTTPS when `core.https_address` is set (`incus config set core.https_address :8443`).
//!
//! `incusd [--dir PATH] [--group GROUP] [--verbose|--debug]` (default `$INCUS_DIR`, else
//! `/var/lib/incus`; the socket is mode 0660, owned by GROUP when given, as `incusd --group`
//! does). The log goes to standard error: warnings and errors, with `--verbose` also
//! information, with `--debug` also debug messages (as Incus's flags). SIGTERM and SIGINT
//! stop the daemon and leave instances running. `incusd forklxc ...` is the hidden
//! single-threaded liblxc helper the engine re-executes; it runs before any thread exists.

use incus_core::drivers::DriverRegistry;
use incus_core::host::{Host, HostConfig};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("forklxc") {
        // Single-threaded from here to exit: no runtime has been started.
        std::process::exit(incus_core::host::lxc::helper::main(&args[2..]));
    }
    cloexec_inherited_fds();
    let mut dir = std::env::var("INCUS_DIR").unwrap_or_else(|_| "/var/lib/incus".into());
    let mut group: Option<String> = None;
    let mut level = tracing::Level::WARN;
    let mut it = args.into_iter().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => dir = it.next().unwrap_or_default(),
            "--group" => group = it.next(),
            "--verbose" | "-v" => level = level.max(tracing::Level::INFO),
            "--debug" | "-d" => level = tracing::Level::DEBUG,
            "--help" | "-h" => {
                println!(
                    "usage: incusd [--dir PATH] [--group GROUP] [--verbose|--debug]   (default $INCUS_DIR or /var/lib/incus)"
                );
                return;
            }
            other => {
                eprintln!("incusd: unknown argument {other:?}");
                std::process::exit(2);
            }
        }
    }
    tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("incusd: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(dir, group)) {
        eprintln!("incusd: {e}");
        std::process::exit(1);
    }
    // Do not wait for connection tasks still draining.
    runtime.shutdown_background();
}

/// Marks every descriptor inherited from the parent (beyond stdin, stdout and stderr)
/// close-on-exec, so none leaks into the helpers and containers the daemon starts.
fn cloexec_inherited_fds() {
    use std::os::fd::BorrowedFd;
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: `fd` was listed as open a moment ago and nothing closes descriptors
        // concurrently (no other thread exists yet); F_SETFD only changes its flags. The
        // directory handle of the listing is closed by now: it then fails harmlessly.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let _ = nix::fcntl::fcntl(
            borrowed,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }
}

async fn run(dir: String, group: Option<String>) -> Result<(), Box<dyn std::error::Error>> {
    let mut drivers = DriverRegistry::new();
    incus_storage::register_all(&mut drivers);
    incus_network::register_all(&mut drivers);
    let mut config = HostConfig::new(&dir, drivers);
    config.helper = Some(std::env::current_exe()?);
    config.helper_args = vec!["forklxc".into()];
    let host = Host::open(config).await?;
    let socket = std::path::Path::new(&dir).join("unix.socket");
    // Managed networks come up before instances autostart on them.
    for e in host.start_networks().await {
        eprintln!("incusd: {e}");
    }
    // Autostart in the background: the API is ready without waiting on instances.
    let auto = host.clone();
    tokio::spawn(async move {
        let _ = auto.autostart().await;
    });
    // Housekeeping once a minute (scheduled snapshots, expiry), as Incus.
    incus_daemon::local::spawn_housekeeping(host.clone(), |e| eprintln!("incusd: {e}"));
    incus_daemon::local::spawn_memory_trim();
    let daemon = incus_daemon::Daemon::new(host.clone());
    // HTTPS on `core.https_address` when set; a failure to listen is reported, not fatal.
    if let Err(e) = daemon.enable_https().await {
        eprintln!("incusd: HTTPS: {e}");
    }
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut power = signal(SignalKind::from_raw(
        nix::sys::signal::Signal::SIGPWR as i32,
    ))?;
    let (tx, rx) = tokio::sync::oneshot::channel::<bool>();
    tokio::spawn(async move {
        // SIGTERM/SIGINT leave instances running; SIGPWR (host shutdown) stops them first.
        let stop_instances = tokio::select! {
            _ = tokio::signal::ctrl_c() => false,
            _ = term.recv() => false,
            _ = power.recv() => true,
        };
        let _ = tx.send(stop_instances);
    });
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn({
        let socket = socket.clone();
        async move {
            incus_daemon::serve_unix(daemon, &socket, group.as_deref(), async {
                let _ = done_rx.await;
            })
            .await
        }
    });
    let stop_instances = rx.await.unwrap_or(false);
    if stop_instances {
        host.stop_all().await?;
    }
    let _ = done_tx.send(());
    // Requests in flight get a moment to finish; long-lived ones (event listeners, exec
    // sessions, `/wait` polls) would hold the graceful shutdown open, so they are cut.
    match tokio::time::timeout(std::time::Duration::from_millis(500), server).await {
        Ok(joined) => joined
            .map_err(|e| format!("server task: {e}"))?
            .map_err(|e| format!("{}: {e}", socket.display()).into()),
        Err(_) => Ok(()),
    }
}
