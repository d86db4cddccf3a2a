//! Privileged end-to-end tests: real containers from the locally built busybox image, on a
//! dir pool in a private state directory. They run only with `INCUS_TEST_PRIVILEGED=1` (as
//! root); otherwise each test prints why it skipped. `.ci/run` sets the variable.

use incus_core::ErrorKind;
use incus_core::api;
use incus_core::drivers::DriverRegistry;
use incus_core::host::{FileAttrs, FileContent, FilePut, Host, HostConfig, ImageImport};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const P: &str = "default";

fn enabled(test: &str) -> bool {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() == Ok("1") {
        assert!(
            nix::unistd::geteuid().is_root(),
            "INCUS_TEST_PRIVILEGED=1 needs root"
        );
        true
    } else {
        eprintln!("SKIPPED {test}: set INCUS_TEST_PRIVILEGED=1 (as root) to run privileged tests");
        false
    }
}

/// The busybox images, built once per test run into cargo's scratch directory for tests
/// (`target/tmp`: nothing is left in /tmp, and a rebuild replaces the previous run's).
fn images() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("incus-core-test-images");
        incus_tests::build_busybox_images(&dir);
        dir
    })
}

async fn open(dir: &Path) -> Host {
    let mut drivers = DriverRegistry::new();
    incus_storage::register_all(&mut drivers);
    let mut cfg = HostConfig::new(dir, drivers);
    cfg.helper = Some(PathBuf::from(env!("CARGO_BIN_EXE_incus-helper")));
    Host::open(cfg).await.expect("open host")
}

/// A test's state directory. Dropping it (also when the test panics) force-stops every
/// container it still runs, through the helper, before the directory goes away.
struct StateDir(tempfile::TempDir);

impl StateDir {
    fn new() -> StateDir {
        StateDir(
            tempfile::Builder::new()
                .prefix("incus-test-")
                .tempdir()
                .expect("tempdir"),
        )
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.path().join("logs")) else {
            return;
        };
        for e in entries.flatten() {
            let d = e.path();
            if d.join("init.pid").exists() {
                let _ = std::process::Command::new(env!("CARGO_BIN_EXE_incus-helper"))
                    .arg("stop")
                    .arg(self.path().join("containers"))
                    .arg(e.file_name())
                    .arg(d.join("lxc.conf"))
                    .arg(d.join("lxc.log"))
                    .status();
            }
        }
    }
}

async fn host_with_image() -> (StateDir, Host) {
    let dir = StateDir::new();
    let host = open(dir.path()).await;
    let req = ImageImport {
        metadata: images().join("busybox.tar.xz"),
        aliases: vec!["busybox".into()],
        ..Default::default()
    };
    host.import_image(P, req).await.expect("import");
    (dir, host)
}

fn launch_req(name: &str, config: &[(&str, &str)]) -> api::InstancesPost {
    let mut req = api::InstancesPost {
        name: name.into(),
        source: api::InstanceSource {
            kind: "image".into(),
            alias: "busybox".into(),
            ..Default::default()
        },
        start: true,
        ..Default::default()
    };
    req.put.config = config
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    req
}

async fn launch(host: &Host, name: &str, config: &[(&str, &str)]) {
    host.create_instance(P, launch_req(name, config))
        .await
        .expect("create")
        .wait()
        .await
        .expect("launch");
}

async fn state_action(
    host: &Host,
    name: &str,
    action: &str,
    force: bool,
) -> incus_core::Result<api::Operation> {
    let req = api::InstanceStatePut {
        action: action.into(),
        force,
        timeout: 30,
        ..Default::default()
    };
    host.update_instance_state(P, name, req).await?.wait().await
}

async fn cleanup(host: &Host, name: &str) {
    let _ = state_action(host, name, "stop", true).await;
    let _ = host
        .delete_instance(P, name)
        .await
        .map(|op| async move { op.wait().await });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn launch_exec_and_stdin() {
    if !enabled("launch_exec_and_stdin") {
        return;
    }
    let (_dir, host) = host_with_image().await;
    let mut events = host.events().subscribe();
    launch(&host, "c1", &[]).await;
    let inst = host.get_instance(P, "c1").await.expect("get");
    assert_eq!(inst.status, "Running");
    assert_eq!(inst.expanded_devices["root"]["pool"], "default");
    assert_eq!(inst.put.config["image.os"], "busybox");

    for (cmd, code) in [("exit 0", 0), ("exit 1", 1), ("exit 42", 42)] {
        let (c, _, _) = host
            .exec_output(P, "c1", &["sh", "-c", cmd], b"")
            .await
            .expect("exec");
        assert_eq!(c, code, "{cmd}");
    }
    let (c, _, err) = host
        .exec_output(P, "c1", &["no-such-command"], b"")
        .await
        .expect("exec");
    assert_eq!(c, 127, "missing command: {}", String::from_utf8_lossy(&err));
    let (c, out, err) = host
        .exec_output(
            P,
            "c1",
            &["sh", "-c", "cat; echo oops >&2"],
            b"round trip\n",
        )
        .await
        .expect("exec");
    assert_eq!(
        (c, out.as_slice(), err.as_slice()),
        (0, &b"round trip\n"[..], &b"oops\n"[..])
    );
    let (_, out, _) = host
        .exec_output(P, "c1", &["sh", "-c", "echo $HOME:$USER:$LANG:$(pwd)"], b"")
        .await
        .expect("exec");
    assert_eq!(String::from_utf8_lossy(&out), "/root:root:C.UTF-8:/root\n");

    // Interactive mode: a pty, resizable.
    let req = api::InstanceExecPost {
        command: vec!["sh".into(), "-c".into(), "test -t 0 && stty size".into()],
        interactive: true,
        width: 100,
        height: 30,
        ..Default::default()
    };
    let mut p = host.exec(P, "c1", &req).await.expect("exec pty");
    assert!(p.stderr.is_none());
    let mut out = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(p.stdout.as_mut().expect("pty"), &mut out)
        .await
        .expect("read pty");
    assert_eq!(p.control.wait().await.expect("wait"), 0);
    assert!(
        String::from_utf8_lossy(&out).contains("30 100"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );

    // Window resize reaches the pty.
    let req = api::InstanceExecPost {
        command: vec!["sh".into(), "-c".into(), "sleep 1; stty size".into()],
        interactive: true,
        width: 80,
        height: 24,
        ..Default::default()
    };
    let mut p = host.exec(P, "c1", &req).await.expect("exec pty");
    p.control.resize(120, 40).expect("resize");
    let mut out = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(p.stdout.as_mut().expect("pty"), &mut out)
        .await
        .expect("read pty");
    assert_eq!(p.control.wait().await.expect("wait"), 0);
    assert!(
        String::from_utf8_lossy(&out).contains("40 120"),
        "{:?}",
        String::from_utf8_lossy(&out)
    );

    // The console log has what init printed.
    assert!(
        host.console_log(P, "c1")
            .expect("console")
            .contains("busybox init ready: c1")
    );

    // Config, devices and profiles can be updated; bad updates change nothing.
    let mut prof = api::ProfilesPost {
        name: "extra".into(),
        ..Default::default()
    };
    prof.put
        .config
        .insert("environment.FROM_PROFILE".into(), "yes".into());
    host.create_profile(P, prof).expect("profile");
    let mut put = host.get_instance(P, "c1").await.expect("get").put;
    put.config.insert("user.note".into(), "hello".into());
    put.profiles.push("extra".into());
    host.update_instance(P, "c1", put.clone())
        .await
        .expect("update");
    let inst = host.get_instance(P, "c1").await.expect("get");
    assert_eq!(inst.expanded_config["environment.FROM_PROFILE"], "yes");
    assert_eq!(inst.put.config["user.note"], "hello");
    assert!(
        inst.put.config.contains_key("volatile.base_image"),
        "volatile keys kept"
    );
    let (_, out, _) = host
        .exec_output(P, "c1", &["sh", "-c", "echo $FROM_PROFILE"], b"")
        .await
        .expect("exec");
    assert_eq!(out, b"yes\n", "profile environment reaches exec at once");
    let mut bad = put.clone();
    bad.config
        .insert("volatile.base_image".into(), "changed".into());
    assert_eq!(
        host.update_instance(P, "c1", bad).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let mut bad = put.clone();
    bad.config.insert("limits.nope".into(), "1".into());
    assert_eq!(
        host.update_instance(P, "c1", bad).await.unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(
        host.delete_profile(P, "extra").unwrap_err().kind(),
        ErrorKind::Busy,
        "in use"
    );
    assert!(
        !host
            .get_instance(P, "c1")
            .await
            .expect("get")
            .put
            .config
            .contains_key("limits.nope")
    );

    // Signals reach the command.
    let req = api::InstanceExecPost {
        command: vec!["sleep".into(), "60".into()],
        ..Default::default()
    };
    let mut p = host.exec(P, "c1", &req).await.expect("exec sleep");
    p.control.signal(15).expect("signal");
    assert_eq!(p.control.wait().await.expect("wait"), 128 + 15);

    // Unprivileged: root inside maps to the host range.
    let (_, out, _) = host
        .exec_output(P, "c1", &["cat", "/proc/self/uid_map"], b"")
        .await
        .expect("exec");
    let fields: Vec<String> = String::from_utf8_lossy(&out)
        .split_whitespace()
        .map(String::from)
        .collect();
    assert_eq!(fields[0], "0");
    assert_ne!(fields[1], "0", "container root must not be host root");
    assert_eq!(fields[2], "65536");

    let state = host.instance_state(P, "c1").await.expect("state");
    assert!(state.pid > 0);
    assert!(state.processes >= 1);
    assert!(state.network.expect("network").contains_key("lo"));

    // Images: export gives the original bytes; delete is refused for nothing, removes files.
    let img = host.resolve_image(P, "busybox").expect("alias");
    let (file, rootfs) = host
        .image_files(P, &img.fingerprint[..12])
        .expect("export by prefix");
    assert_eq!(
        std::fs::read(&file).expect("read"),
        std::fs::read(images().join("busybox.tar.xz")).expect("read")
    );
    assert!(rootfs.is_none());
    cleanup(&host, "c1").await;
    host.delete_image(P, &img.fingerprint)
        .await
        .expect("delete image");
    assert!(!file.exists(), "image file removed");
    assert!(
        host.resolve_image(P, "busybox").is_err(),
        "alias removed with the image"
    );
    let mut actions = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if ev.kind == "lifecycle" {
            actions.push(
                ev.metadata["action"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            );
        }
    }
    for a in ["instance-created", "instance-started", "instance-exec"] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_snapshots_and_lifecycle() {
    if !enabled("files_snapshots_and_lifecycle") {
        return;
    }
    let (_dir, host) = host_with_image().await;
    launch(&host, "c2", &[]).await;

    // Push with ownership and mode; pull it back, and see it from inside.
    let put = FilePut::File {
        data: b"payload\n".to_vec(),
        append: false,
    };
    host.file_put(
        P,
        "c2",
        "/root/f.txt",
        put,
        FileAttrs {
            uid: Some(1000),
            gid: Some(1001),
            mode: Some(0o640),
        },
    )
    .await
    .expect("push");
    match host.file_get(P, "c2", "/root/f.txt").await.expect("pull") {
        FileContent::File {
            data,
            uid,
            gid,
            mode,
        } => assert_eq!(
            (data.as_slice(), uid, gid, mode),
            (&b"payload\n"[..], 1000, 1001, 0o640)
        ),
        other => panic!("{other:?}"),
    }
    let (_, out, _) = host
        .exec_output(P, "c2", &["stat", "-c", "%u:%g:%a", "/root/f.txt"], b"")
        .await
        .expect("exec");
    assert_eq!(String::from_utf8_lossy(&out), "1000:1001:640\n");
    host.file_put(
        P,
        "c2",
        "/root/d",
        FilePut::Directory,
        FileAttrs {
            mode: Some(0o700),
            ..Default::default()
        },
    )
    .await
    .expect("mkdir");
    host.file_put(
        P,
        "c2",
        "/root/d/l",
        FilePut::Symlink {
            target: "/etc/hostname".into(),
        },
        FileAttrs::default(),
    )
    .await
    .expect("symlink");
    match host.file_get(P, "c2", "/root/d").await.expect("list") {
        FileContent::Directory { entries, mode, .. } => {
            assert_eq!((entries, mode), (vec!["l".to_string()], 0o700))
        }
        other => panic!("{other:?}"),
    }
    // Files on the container's own tmpfs are reachable while it runs.
    host.exec_output(P, "c2", &["sh", "-c", "echo tmp > /run/x"], b"")
        .await
        .expect("exec");
    assert!(matches!(
        host.file_get(P, "c2", "/run/x").await,
        Ok(FileContent::File { .. })
    ));
    // Traversal stays inside the container.
    match host
        .file_get(P, "c2", "/../../../etc/hostname")
        .await
        .expect("clamped")
    {
        FileContent::File { data, .. } => assert_eq!(data, b"c2\n"),
        other => panic!("{other:?}"),
    }
    assert!(
        host.file_put(
            P,
            "c2",
            "relative",
            FilePut::Directory,
            FileAttrs::default()
        )
        .await
        .is_err()
    );
    assert!(
        host.file_put(
            P,
            "c2",
            "/root/x",
            FilePut::Directory,
            FileAttrs {
                uid: Some(70000),
                ..Default::default()
            }
        )
        .await
        .is_err()
    );
    host.file_delete(P, "c2", "/root/d", true)
        .await
        .expect("delete -r");
    assert_eq!(
        host.file_get(P, "c2", "/root/d").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Snapshot, change, restore.
    let snap = api::InstanceSnapshotsPost::default();
    host.create_snapshot(P, "c2", snap)
        .await
        .expect("snapshot")
        .wait()
        .await
        .expect("snapshot done");
    assert_eq!(host.list_snapshots(P, "c2").expect("list")[0].name, "snap0");
    host.exec_output(
        P,
        "c2",
        &["sh", "-c", "echo changed > /root/f.txt; touch /root/new"],
        b"",
    )
    .await
    .expect("exec");
    host.restore_snapshot(P, "c2", "snap0")
        .await
        .expect("restore")
        .wait()
        .await
        .expect("restored");
    let (_, out, _) = host
        .exec_output(P, "c2", &["sh", "-c", "cat /root/f.txt; ls /root"], b"")
        .await
        .expect("exec");
    assert_eq!(String::from_utf8_lossy(&out), "payload\nf.txt\n");
    assert_eq!(
        host.get_instance(P, "c2").await.expect("get").status,
        "Running",
        "restarted after restore"
    );
    host.rename_snapshot(P, "c2", "snap0", "first")
        .await
        .expect("rename")
        .wait()
        .await
        .expect("renamed");
    host.delete_snapshot(P, "c2", "first")
        .await
        .expect("delete")
        .wait()
        .await
        .expect("deleted");
    assert!(host.list_snapshots(P, "c2").expect("list").is_empty());

    // Freeze, unfreeze, graceful stop, start, rename.
    state_action(&host, "c2", "freeze", false)
        .await
        .expect("freeze");
    assert_eq!(
        host.get_instance(P, "c2").await.expect("get").status,
        "Frozen"
    );
    state_action(&host, "c2", "unfreeze", false)
        .await
        .expect("unfreeze");
    state_action(&host, "c2", "stop", false)
        .await
        .expect("graceful stop");
    assert_eq!(
        host.get_instance(P, "c2").await.expect("get").status,
        "Stopped"
    );
    assert_eq!(
        state_action(&host, "c2", "stop", false)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Busy
    );
    match host
        .file_get(P, "c2", "/root/f.txt")
        .await
        .expect("pull from stopped")
    {
        FileContent::File { data, .. } => assert_eq!(data, b"payload\n"),
        other => panic!("{other:?}"),
    }
    host.rename_instance(P, "c2", "c3")
        .await
        .expect("rename")
        .wait()
        .await
        .expect("renamed");
    state_action(&host, "c3", "start", false)
        .await
        .expect("start");
    state_action(&host, "c3", "restart", true)
        .await
        .expect("restart");
    let (c, _, _) = host
        .exec_output(P, "c3", &["true"], b"")
        .await
        .expect("exec after restart");
    assert_eq!(c, 0);
    assert_eq!(
        host.delete_instance(P, "c3").await.err().map(|e| e.kind()),
        Some(ErrorKind::Busy),
        "running"
    );
    cleanup(&host, "c3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_devices_split_image_and_ephemeral() {
    if !enabled("limits_devices_split_image_and_ephemeral") {
        return;
    }
    let (dir, host) = host_with_image().await;
    let req = ImageImport {
        metadata: images().join("busybox-split.meta.tar.xz"),
        rootfs: Some(images().join("busybox-split.rootfs.squashfs")),
        aliases: vec!["split".into()],
        ..Default::default()
    };
    let img = host.import_image(P, req).await.expect("split import");
    let expected = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(std::fs::read(images().join("busybox-split.meta.tar.xz")).expect("read"));
        h.update(std::fs::read(images().join("busybox-split.rootfs.squashfs")).expect("read"));
        hex::encode(h.finalize())
    };
    assert_eq!(img.fingerprint, expected);
    let (meta, rootfs) = host.image_files(P, &img.fingerprint).expect("export");
    assert_eq!(
        std::fs::read(meta).expect("read"),
        std::fs::read(images().join("busybox-split.meta.tar.xz")).expect("read")
    );
    assert!(rootfs.is_some());

    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).expect("mkdir");
    std::fs::write(shared.join("hello"), "from host\n").expect("write");
    let mut req = api::InstancesPost {
        name: "lim".into(),
        source: api::InstanceSource {
            kind: "image".into(),
            alias: "split".into(),
            ..Default::default()
        },
        start: true,
        ..Default::default()
    };
    req.put.config = [
        ("limits.memory", "64MiB"),
        ("limits.processes", "50"),
        ("limits.cpu", "1"),
        ("environment.GREETING", "hi"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let dev = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<api::ConfigMap>()
    };
    req.put.devices.insert(
        "shared".into(),
        dev(&[
            ("type", "disk"),
            ("source", &shared.display().to_string()),
            ("path", "/mnt/shared"),
            ("readonly", "true"),
        ]),
    );
    req.put.devices.insert(
        "null2".into(),
        dev(&[
            ("type", "unix-char"),
            ("source", "/dev/null"),
            ("path", "/dev/null2"),
        ]),
    );
    host.create_instance(P, req)
        .await
        .expect("create")
        .wait()
        .await
        .expect("launch split");
    let st = host.instance_state(P, "lim").await.expect("state");
    assert_eq!(
        st.memory.total,
        64 << 20,
        "memory limit in the container's cgroup"
    );
    let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", st.pid)).expect("cgroup");
    if let Some(line) = cg.lines().find(|l| l.split(':').nth(1) == Some("pids")) {
        let path = line.split(':').nth(2).expect("path");
        let max = std::fs::read_to_string(format!("/sys/fs/cgroup/pids{path}/pids.max"))
            .expect("pids.max");
        assert_eq!(max.trim(), "50");
    }
    let (_, out, _) = host.exec_output(P, "lim", &["sh", "-c", "echo $GREETING; cat /mnt/shared/hello; touch /mnt/shared/x 2>/dev/null || echo ro; test -c /dev/null2 && echo dev"], b"").await.expect("exec");
    assert_eq!(String::from_utf8_lossy(&out), "hi\nfrom host\nro\ndev\n");
    cleanup(&host, "lim").await;

    // Ephemeral instances disappear when stopped.
    let mut req = launch_req("eph", &[]);
    req.put.ephemeral = true;
    host.create_instance(P, req)
        .await
        .expect("create")
        .wait()
        .await
        .expect("launch");
    state_action(&host, "eph", "stop", true)
        .await
        .expect("stop");
    assert_eq!(
        host.get_instance(P, "eph").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(
        !host
            .state_dir()
            .join("storage-pools/default/containers/eph")
            .exists()
    );

    // Privileged containers run as host root.
    launch(&host, "priv", &[("security.privileged", "true")]).await;
    let (_, out, _) = host
        .exec_output(P, "priv", &["cat", "/proc/self/uid_map"], b"")
        .await
        .expect("exec");
    assert_eq!(
        String::from_utf8_lossy(&out).split_whitespace().nth(1),
        Some("0")
    );
    cleanup(&host, "priv").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_changes_nothing() {
    if !enabled("bad_input_changes_nothing") {
        return;
    }
    let (dir, host) = host_with_image().await;
    let snapshot = |host: &Host| {
        let containers: Vec<_> =
            std::fs::read_dir(dir.path().join("storage-pools/default/containers"))
                .expect("ls")
                .map(|e| e.expect("entry").file_name())
                .collect();
        (
            containers,
            host.list_profiles(P).expect("profiles").len(),
            host.list_images(P).expect("images").len(),
        )
    };
    let before = snapshot(&host);
    let cases: Vec<(api::InstancesPost, ErrorKind)> = vec![
        (launch_req("bad_name", &[]), ErrorKind::InvalidInput),
        (launch_req("../etc", &[]), ErrorKind::InvalidInput),
        (
            launch_req("ok", &[("limits.bogus", "1")]),
            ErrorKind::InvalidInput,
        ),
        (
            launch_req("ok", &[("limits.memory", "lots")]),
            ErrorKind::InvalidInput,
        ),
        (
            launch_req("ok", &[("volatile.base_image", "x")]),
            ErrorKind::InvalidInput,
        ),
        (
            api::InstancesPost {
                name: "ok".into(),
                source: api::InstanceSource {
                    kind: "image".into(),
                    alias: "nope".into(),
                    ..Default::default()
                },
                ..Default::default()
            },
            ErrorKind::NotFound,
        ),
        (
            {
                let mut r = launch_req("ok", &[]);
                r.put.profiles = vec!["missing".into()];
                r
            },
            ErrorKind::NotFound,
        ),
        (
            {
                let mut r = launch_req("ok", &[]);
                r.put.devices.insert(
                    "g".into(),
                    [("type".to_string(), "gpu".to_string())]
                        .into_iter()
                        .collect(),
                );
                r
            },
            ErrorKind::InvalidInput,
        ),
    ];
    for (req, kind) in cases {
        let name = req.name.clone();
        let e = host
            .create_instance(P, req)
            .await
            .err()
            .unwrap_or_else(|| panic!("{name} accepted"));
        assert_eq!(e.kind(), kind, "{name}: {e}");
    }
    assert!(
        host.create_profile(
            P,
            api::ProfilesPost {
                name: "a/b".into(),
                ..Default::default()
            }
        )
        .is_err()
    );
    let bad_image = dir.path().join("bad.tar");
    std::fs::write(&bad_image, b"not a tarball at all").expect("write");
    let e = host
        .import_image(
            P,
            ImageImport {
                metadata: bad_image,
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        snapshot(&host),
        before,
        "nothing changed on disk or in the database"
    );
    assert_eq!(
        std::fs::read_dir(dir.path().join("images"))
            .expect("ls")
            .count(),
        1,
        "only the good image file"
    );
    assert_eq!(host.list_instances(None).await.expect("list").len(), 0);
}

/// Runs in a child process (see `survives_owner_sigkill`): launches a container, says READY,
/// then waits to be killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "not a test: the child process of survives_owner_sigkill, which runs it with --ignored"]
async fn holder_process() {
    let dir = std::env::var("INCUS_TEST_HOLDER_DIR").expect("run by survives_owner_sigkill");
    let host = open(Path::new(&dir)).await;
    let req = ImageImport {
        metadata: PathBuf::from(std::env::var("INCUS_TEST_HOLDER_IMAGE").expect("image")),
        ..Default::default()
    };
    let img = host.import_image(P, req).await.expect("import");
    host.create_image_alias(P, "busybox", &img.fingerprint, "")
        .expect("alias");
    launch(&host, "held", &[]).await;
    println!("READY");
    tokio::time::sleep(std::time::Duration::from_secs(300)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_owner_sigkill() {
    if !enabled("survives_owner_sigkill") {
        return;
    }
    use std::io::BufRead;
    let dir = StateDir::new();
    let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "holder_process",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("INCUS_TEST_HOLDER_DIR", dir.path())
        .env("INCUS_TEST_HOLDER_IMAGE", images().join("busybox.tar.xz"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn holder");
    let out = child.stdout.take().expect("stdout");
    let ready = std::io::BufReader::new(out)
        .lines()
        .map_while(Result::ok)
        .any(|l| l.contains("READY"));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    let _ = child.wait();
    assert!(ready, "holder launched its container");

    let host = open(dir.path()).await;
    let mut second = HostConfig::new(dir.path(), DriverRegistry::new());
    second.helper = Some(PathBuf::from(env!("CARGO_BIN_EXE_incus-helper")));
    let busy = Host::open(second)
        .await
        .err()
        .expect("one engine per state directory");
    assert_eq!(busy.kind(), ErrorKind::Busy);
    assert_eq!(
        host.get_instance(P, "held").await.expect("get").status,
        "Running",
        "still running after SIGKILL of its owner"
    );
    let (c, out, _) = host
        .exec_output(P, "held", &["hostname"], b"")
        .await
        .expect("exec");
    assert_eq!(
        (c, String::from_utf8_lossy(&out).to_string()),
        (0, "held\n".to_string())
    );
    assert!(host.instance_state(P, "held").await.expect("state").pid > 0);
    state_action(&host, "held", "stop", false)
        .await
        .expect("stop through the new Host");
    assert_eq!(
        host.get_instance(P, "held").await.expect("get").status,
        "Stopped"
    );
    host.delete_instance(P, "held")
        .await
        .expect("delete")
        .wait()
        .await
        .expect("deleted");
}

/// The periodic tasks (`Host::run_periodic_tasks`, which incusd runs once a minute) on
/// chosen time windows: `snapshots.schedule` of instances (running, stopped with and without
/// `snapshots.schedule.stopped`) and of custom volumes fires only in its window, names come
/// from `snapshots.pattern`, `snapshots.expiry` sets the expiry, and expired snapshots and
/// backups (instance and volume) are deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_snapshots_and_expiry() {
    use chrono::{Duration, DurationRound, Timelike};
    if !enabled("scheduled_snapshots_and_expiry") {
        return;
    }
    let (_dir, host) = host_with_image().await;
    let t0 = chrono::Utc::now();
    // The next whole hour after t0: `@hourly` fires there.
    let h = t0.duration_trunc(Duration::hours(1)).expect("trunc") + Duration::hours(1);
    let window = (h - Duration::minutes(1), h);
    launch(
        &host,
        "run1",
        &[
            ("snapshots.schedule", "@hourly"),
            ("snapshots.pattern", "auto-%d"),
            ("snapshots.expiry", "2H"),
        ],
    )
    .await;
    for (name, config) in [
        ("stop1", &[("snapshots.schedule", "@hourly")][..]),
        (
            "stop2",
            &[
                ("snapshots.schedule", "@hourly, @daily"),
                ("snapshots.schedule.stopped", "true"),
            ][..],
        ),
    ] {
        let mut stopped = launch_req(name, config);
        stopped.start = false;
        host.create_instance(P, stopped)
            .await
            .expect("create")
            .wait()
            .await
            .expect("init");
    }
    // Refused schedules and expiries, on instances and volumes.
    for (k, v) in [
        ("snapshots.schedule", "61 * * * *"),
        ("snapshots.schedule", "@sometimes"),
        ("snapshots.expiry", "3x"),
    ] {
        let e = host
            .create_instance(P, launch_req("bad", &[(k, v)]))
            .await
            .expect_err("bad config refused");
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{k}={v}: {e}");
    }
    let volume = |name: &str, schedule: String| api::StorageVolumesPost {
        name: name.into(),
        put: api::StorageVolumePut {
            config: [("snapshots.schedule".to_string(), schedule)].into(),
            ..Default::default()
        },
        ..Default::default()
    };
    // v1 fires at h; v2 an hour later.
    let at = |t: chrono::DateTime<chrono::Utc>| format!("{} {} * * *", t.minute(), t.hour());
    host.create_custom_volume(P, "default", volume("v1", at(h)))
        .await
        .expect("v1");
    host.create_custom_volume(P, "default", volume("v2", at(h + Duration::hours(1))))
        .await
        .expect("v2");
    let e = host
        .create_custom_volume(P, "default", volume("v3", "* * *".into()))
        .await
        .expect_err("bad schedule");
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");

    // A window where nothing fires.
    let r = host
        .run_periodic_tasks(
            window.0 - Duration::minutes(5),
            window.0 - Duration::minutes(4),
        )
        .await;
    assert!(r.snapshots_taken.is_empty() && r.errors.is_empty(), "{r:?}");
    // The window of h.
    let r = host.run_periodic_tasks(window.0, window.1).await;
    assert!(r.errors.is_empty(), "{r:?}");
    let mut taken = r.snapshots_taken.clone();
    taken.sort();
    assert_eq!(
        taken,
        [
            "instance default/run1",
            "instance default/stop2",
            "volume default/default/v1"
        ],
        "{r:?}"
    );
    let snaps = host.list_snapshots(P, "run1").expect("snapshots");
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].name, "auto-0");
    let expiry = snaps[0].expires_at - t0;
    assert!(
        expiry > Duration::minutes(119) && expiry < Duration::minutes(125),
        "snapshots.expiry 2H gave {expiry}"
    );
    assert_eq!(host.list_snapshots(P, "stop1").expect("snapshots").len(), 0);
    assert_eq!(
        host.list_snapshots(P, "stop2").expect("snapshots")[0].name,
        "snap0"
    );
    assert_eq!(
        host.list_volume_snapshots(P, "default", "v1")
            .expect("v1")
            .len(),
        1
    );
    assert_eq!(
        host.list_volume_snapshots(P, "default", "v2")
            .expect("v2")
            .len(),
        0
    );

    // Backups: one expired, one kept, for an instance and a volume.
    let past = t0 - Duration::hours(1);
    for (name, expires) in [("old", Some(past)), ("kept", None)] {
        host.create_instance_backup(
            P,
            "stop1",
            api::InstanceBackupsPost {
                name: name.into(),
                expires_at: expires,
                compression_algorithm: "none".into(),
                ..Default::default()
            },
        )
        .expect("backup")
        .wait()
        .await
        .expect("backup made");
        host.create_volume_backup(
            P,
            "default",
            "v1",
            api::StorageVolumeBackupsPost {
                name: name.into(),
                expires_at: expires,
                ..Default::default()
            },
        )
        .expect("volume backup")
        .wait()
        .await
        .expect("volume backup made");
    }
    // Later, after the 2H expiry, with nothing scheduled in the window.
    let later = t0 + Duration::hours(3);
    let r = host.run_periodic_tasks(later, later).await;
    assert!(r.errors.is_empty(), "{r:?}");
    assert!(r.snapshots_taken.is_empty(), "{r:?}");
    assert_eq!(r.snapshots_pruned, 1, "auto-0 expired: {r:?}");
    assert_eq!(r.backups_pruned, 2, "{r:?}");
    assert!(
        host.list_snapshots(P, "run1")
            .expect("snapshots")
            .is_empty()
    );
    assert_eq!(host.list_snapshots(P, "stop2").expect("snapshots").len(), 1);
    let names = |l: Vec<String>| l.join(",");
    assert_eq!(
        names(
            host.list_instance_backups(P, "stop1")
                .expect("list")
                .into_iter()
                .map(|b| b.name)
                .collect()
        ),
        "kept"
    );
    assert_eq!(
        names(
            host.list_volume_backups(P, "default", "v1")
                .expect("list")
                .into_iter()
                .map(|b| b.name)
                .collect()
        ),
        "kept"
    );
    for n in ["run1", "stop1", "stop2"] {
        cleanup(&host, n).await;
    }
}
