//! Our `incus` command line against our `incusd`: the everyday commands, their output
//! formats and exit statuses, on real containers. Needs root and liblxc, so it runs only with
//! INCUS_TEST_PRIVILEGED=1 (as CI does); `incusd` must be built (`cargo test --workspace`
//! builds it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

struct Env {
    daemon: Child,
    dir: tempfile::TempDir,
    conf: tempfile::TempDir,
    images: PathBuf,
}

impl Drop for Env {
    fn drop(&mut self) {
        // Stop whatever is still running (by our own client), then the daemon we started.
        let _ = self.run(&["delete", "-f", "c1", "c2", "c3", "c4", "c5", "e1"], b"");
        let _ = self.run(&["--project", "p1", "delete", "-f", "pc1"], b"");
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_dir_all(&self.images);
    }
}

impl Env {
    fn start() -> Env {
        let incusd = Path::new(env!("CARGO_BIN_EXE_incus"))
            .parent()
            .expect("target dir")
            .join("incusd");
        assert!(
            incusd.exists(),
            "{} is missing: run `cargo build -p incus-daemon`",
            incusd.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("incus-cli-test-")
            .tempdir()
            .expect("tempdir");
        let conf = tempfile::tempdir().expect("tempdir");
        let daemon = Command::new(incusd)
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("start incusd");
        // One image directory per environment: tests of this file run in parallel.
        static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let images =
            std::env::temp_dir().join(format!("incus-cli-images-{}-{n}", std::process::id()));
        incus_tests::build_busybox_images(&images);
        Env {
            daemon,
            dir,
            conf,
            images,
        }
    }

    fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        use std::io::Write;
        let mut c = Command::new(env!("CARGO_BIN_EXE_incus"))
            .args(args)
            .env("INCUS_DIR", self.dir.path())
            .env("INCUS_CONF", self.conf.path())
            .env_remove("INCUS_SOCKET")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run incus");
        let mut input = c.stdin.take().expect("stdin");
        input.write_all(stdin).expect("stdin");
        drop(input);
        c.wait_with_output().expect("output")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args, b"");
        assert!(
            out.status.success(),
            "incus {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args, b"");
        assert!(
            !out.status.success(),
            "incus {args:?} unexpectedly succeeded"
        );
        assert!(out.stdout.is_empty() || !out.stderr.is_empty());
        String::from_utf8_lossy(&out.stderr).into_owned()
    }

    fn image(&self, name: &str) -> String {
        self.images.join(name).to_str().expect("path").to_string()
    }
}

#[test]
fn everyday_commands() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED everyday_commands: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    let e = Env::start();
    e.ok(&["admin", "waitready", "--timeout", "20"]);
    assert!(e.ok(&["version"]).contains("Server version: 6.0.4"));

    // Images: unified and split, aliases, list formats.
    assert!(
        e.ok(&[
            "image",
            "import",
            &e.image("busybox.tar.xz"),
            "--alias",
            "busybox"
        ])
        .contains("fingerprint")
    );
    e.ok(&[
        "image",
        "import",
        &e.image("busybox-split.meta.tar.xz"),
        &e.image("busybox-split.rootfs.squashfs"),
        "--alias",
        "split",
    ]);
    let csv = e.ok(&["image", "list", "-f", "csv"]);
    assert_eq!(csv.lines().count(), 2, "{csv}");
    assert!(csv.contains("busybox,") && csv.contains("split,"));
    e.ok(&["image", "alias", "create", "bb", "busybox"]);
    assert!(
        e.ok(&["image", "alias", "list", "-f", "csv"])
            .contains("bb,")
    );
    e.ok(&["image", "alias", "delete", "bb"]);
    assert!(
        e.ok(&["image", "info", "busybox"])
            .contains("Architecture: x86_64")
    );
    assert!(e.ok(&["image", "show", "split"]).contains("fingerprint:"));

    // Launch, init, list in every format.
    assert!(e.ok(&["launch", "busybox", "c1"]).contains("Launching c1"));
    e.ok(&["init", "split", "c2", "-c", "user.k=v"]);
    assert_eq!(
        e.ok(&["list", "-f", "csv", "-c", "ns"]),
        "c1,RUNNING\nc2,STOPPED\n"
    );
    let table = e.ok(&["list"]);
    assert!(
        table.contains("|  NAME  |") || table.contains("| NAME |"),
        "{table}"
    );
    assert!(table.contains("| c1   | RUNNING |"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&e.ok(&["list", "-f", "json"])).expect("json");
    assert_eq!(json[0]["name"], "c1");
    assert_eq!(json[0]["state"]["status"], "Running");
    assert!(e.ok(&["list", "-f", "yaml"]).contains("name: c2"));
    assert!(e.ok(&["list", "-f", "compact"]).contains("STATE"));
    assert_eq!(
        e.ok(&["list", "status=stopped", "-f", "csv", "-c", "n"]),
        "c2\n"
    );
    assert_eq!(
        e.ok(&["list", "c2", "-f", "csv", "-c", "n,user.k"]),
        "c2,v\n"
    );

    // Exec: exit status passed through, stdin, env, cwd, uid.
    let out = e.run(
        &[
            "exec",
            "c1",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 42",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(42));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    let out = e.run(&["exec", "c1", "--", "cat"], b"round trip\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "round trip\n");
    assert_eq!(
        e.ok(&[
            "exec",
            "c1",
            "--env",
            "A=b",
            "--cwd",
            "/tmp",
            "--user",
            "1000",
            "--",
            "sh",
            "-c",
            "echo $A $(pwd) $(id -u)"
        ]),
        "b /tmp 1000\n"
    );
    assert_eq!(
        e.run(&["exec", "c1", "--", "no-such-cmd"], b"")
            .status
            .code(),
        Some(127)
    );
    let out = e.run(&["exec", "-t", "c1", "--", "tty"], b"");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("/dev/pts/"),
        "pty: {out:?}"
    );

    // Files.
    let local = e.conf.path().join("local");
    std::fs::create_dir_all(local.join("tree/sub")).expect("mkdir");
    std::fs::write(local.join("f.txt"), b"hello\n").expect("write");
    std::fs::write(local.join("tree/sub/b"), b"b\n").expect("write");
    let l = |p: &str| local.join(p).to_str().expect("path").to_string();
    e.ok(&[
        "file",
        "push",
        &l("f.txt"),
        "c1/root/f.txt",
        "--mode",
        "600",
        "--uid",
        "7",
        "--gid",
        "8",
    ]);
    assert_eq!(
        e.ok(&["exec", "c1", "--", "stat", "-c", "%a %u %g", "/root/f.txt"]),
        "600 7 8\n"
    );
    e.ok(&["file", "push", "-r", &l("tree"), "c1/root/"]);
    e.ok(&["file", "pull", "-r", "c1/root/tree", &l("back")]);
    assert_eq!(
        std::fs::read(local.join("back/tree/sub/b")).expect("read"),
        b"b\n"
    );
    assert_eq!(e.ok(&["file", "pull", "c1/root/f.txt", "-"]), "hello\n");
    e.ok(&["file", "create", "-p", "c1/root/x/y/z"]);
    e.ok(&["file", "delete", "-f", "c1/root/x"]);
    e.ok(&["file", "delete", "c1/root/f.txt"]);
    assert_eq!(e.ok(&["exec", "c1", "--", "ls", "/root"]), "tree\n");
    assert!(!e.fails(&["file", "pull", "c1/nope", &l("nope")]).is_empty());

    // Snapshots.
    e.ok(&["snapshot", "create", "c1"]);
    e.ok(&["snapshot", "create", "c1", "s1"]);
    e.ok(&["exec", "c1", "--", "touch", "/root/later"]);
    e.ok(&["snapshot", "restore", "c1", "s1"]);
    assert_eq!(e.ok(&["exec", "c1", "--", "ls", "/root"]), "tree\n");
    e.ok(&["snapshot", "rename", "c1", "s1", "s2"]);
    let snaps = e.ok(&["snapshot", "list", "c1", "-f", "csv"]);
    assert!(
        snaps.starts_with("snap0,") && snaps.contains("\ns2,"),
        "{snaps}"
    );
    assert!(e.ok(&["snapshot", "show", "c1", "s2"]).contains("name: s2"));
    e.ok(&["snapshot", "delete", "c1", "snap0"]);
    assert_eq!(e.ok(&["list", "c1", "-f", "csv", "-c", "S"]), "1\n");

    // Config and devices; refused changes change nothing.
    e.ok(&["config", "set", "c1", "user.a", "1"]);
    e.ok(&["config", "set", "c1", "user.b=2", "user.c=3"]);
    assert_eq!(e.ok(&["config", "get", "c1", "user.b"]), "2\n");
    e.ok(&["config", "unset", "c1", "user.a"]);
    assert_eq!(e.ok(&["config", "get", "c1", "user.a"]), "\n");
    assert!(
        e.fails(&["config", "set", "c1", "limits.bogus", "1"])
            .contains("Error: ")
    );
    assert!(!e.ok(&["config", "show", "c1"]).contains("limits.bogus"));
    e.ok(&[
        "config",
        "device",
        "add",
        "c1",
        "d0",
        "disk",
        "source=/tmp",
        "path=/mnt",
    ]);
    assert_eq!(e.ok(&["config", "device", "list", "c1"]), "d0\n");
    e.ok(&["config", "device", "remove", "c1", "d0"]);
    let shown = e.ok(&["config", "show", "c1"]);
    let edited = shown.replace("user.b: \"2\"", "user.b: edited");
    let out = e.run(&["config", "edit", "c1"], edited.as_bytes());
    assert!(out.status.success(), "{out:?}");
    assert_eq!(e.ok(&["config", "get", "c1", "user.b"]), "edited\n");
    e.ok(&["config", "set", "user.server", "yes"]);
    assert_eq!(e.ok(&["config", "get", "user.server"]), "yes\n");

    // Profiles.
    e.ok(&["profile", "create", "pr1"]);
    e.ok(&["profile", "set", "pr1", "environment.FROM=profile"]);
    e.ok(&["profile", "add", "c1", "pr1"]);
    e.ok(&["restart", "-f", "c1"]);
    assert_eq!(
        e.ok(&["exec", "c1", "--", "sh", "-c", "echo $FROM"]),
        "profile\n"
    );
    assert!(e.ok(&["profile", "list", "-f", "csv"]).contains("pr1,,1"));
    assert!(!e.fails(&["profile", "delete", "pr1"]).is_empty());
    e.ok(&["profile", "rename", "pr1", "pr2"]);
    assert_eq!(
        e.ok(&["list", "c1", "-f", "csv", "-c", "P"]),
        "\"default\npr2\"\n"
    );
    e.ok(&["profile", "assign", "c1", "default"]);
    e.ok(&["profile", "delete", "pr2"]);

    // Projects: isolation and switching.
    e.ok(&[
        "project",
        "create",
        "p1",
        "-c",
        "features.images=false",
        "-c",
        "features.profiles=false",
    ]);
    e.ok(&["--project", "p1", "launch", "busybox", "pc1"]);
    assert_eq!(
        e.ok(&["--project", "p1", "list", "-f", "csv", "-c", "n"]),
        "pc1\n"
    );
    e.ok(&["project", "set", "p1", "user.team=blue"]);
    assert_eq!(e.ok(&["project", "get", "p1", "user.team"]), "blue\n");
    e.ok(&["project", "unset", "p1", "user.team"]);
    assert!(
        e.fails(&["project", "set", "p1", "features.images=true"])
            .contains("empty projects")
    );
    assert!(
        e.fails(&["project", "set", "p1", "limits.cpu=2"])
            .contains("Unknown")
    );
    assert_eq!(
        e.ok(&["project", "get", "p1", "features.images"]),
        "false\n"
    );
    e.ok(&["project", "switch", "p1"]);
    assert_eq!(e.ok(&["list", "-f", "csv", "-c", "n"]), "pc1\n");
    assert!(
        e.ok(&["project", "list", "-f", "csv"])
            .contains("p1 (current)")
    );
    e.ok(&["project", "switch", "default"]);
    assert!(!e.ok(&["list", "-f", "csv", "-c", "n"]).contains("pc1"));
    assert!(
        e.ok(&["list", "--all-projects", "-f", "csv", "-c", "en"])
            .contains("p1,pc1")
    );
    e.ok(&["--project", "p1", "delete", "-f", "pc1"]);
    e.ok(&["project", "rename", "p1", "p2"]);
    e.ok(&["project", "delete", "p2"]);

    // Lifecycle, copy, rename, ephemeral.
    e.ok(&["pause", "c1"]);
    assert_eq!(e.ok(&["list", "c1", "-f", "csv", "-c", "s"]), "FROZEN\n");
    e.ok(&["start", "c1"]);
    e.ok(&["stop", "c1", "--timeout", "5"]);
    e.ok(&["copy", "c1", "c3", "--instance-only"]);
    e.ok(&["rename", "c3", "c4"]);
    e.ok(&["delete", "c4"]);
    e.ok(&["start", "c1", "c2"]);
    assert!(e.ok(&["info", "c1", "--show-log"]).contains("Log:"));
    assert!(e.ok(&["info", "c1"]).contains("Status: RUNNING"));
    e.ok(&["launch", "busybox", "e1", "--ephemeral"]);
    e.ok(&["stop", "-f", "e1"]);
    assert!(!e.ok(&["list", "-f", "csv", "-c", "n"]).contains("e1"));
    assert!(
        !e.fails(&["delete", "c1"]).is_empty(),
        "running instances need -f"
    );
    e.ok(&["delete", "-f", "c1", "c2"]);
    assert_eq!(e.ok(&["list", "-f", "csv"]), "");

    // Bad input: clear errors, non-zero status, nothing created.
    assert!(
        e.fails(&["launch", "busybox", "bad_name"])
            .starts_with("Error: ")
    );
    assert!(
        e.fails(&["launch", "no-such-image", "c5"])
            .starts_with("Error: ")
    );
    assert_eq!(e.ok(&["list", "-f", "csv"]), "");

    // Other commands.
    assert!(
        e.ok(&["storage", "list", "-f", "csv"])
            .starts_with("default,dir,")
    );
    e.ok(&["storage", "set", "default", "user.tier=fast"]);
    assert_eq!(e.ok(&["storage", "get", "default", "user.tier"]), "fast\n");
    assert!(
        e.fails(&["storage", "set", "default", "size=1GiB"])
            .contains("cannot enforce")
    );
    assert!(
        e.fails(&["storage", "set", "default", "source=/elsewhere"])
            .contains("source")
    );
    e.ok(&["storage", "unset", "default", "user.tier"]);
    let info = e.ok(&["storage", "info", "default"]);
    assert!(
        info.contains("  driver: dir\n") && info.contains("  total space: "),
        "{info}"
    );
    assert!(
        info.contains("used by:\n  profiles:\n  - default\n"),
        "{info}"
    );
    let vols = e.ok(&["storage", "volume", "list", "default", "-f", "csv"]);
    let image = vols
        .lines()
        .find_map(|l| l.strip_prefix("image,"))
        .and_then(|l| l.split(',').next())
        .unwrap_or_else(|| panic!("no image volume in {vols:?}"));
    assert!(
        e.ok(&[
            "storage",
            "volume",
            "show",
            "default",
            &format!("image/{image}")
        ])
        .contains("type: image")
    );
    assert_eq!(e.ok(&["storage", "get", "default", "user.tier"]), "\n");
    assert!(
        e.ok(&["network", "list", "-f", "csv"])
            .contains("lo,loopback,NO")
    );
    assert!(
        e.ok(&["operation", "list", "-f", "csv"])
            .contains("SUCCESS")
    );
    assert!(e.ok(&["query", "/1.0"]).contains("api_extensions"));
    assert!(
        e.ok(&["remote", "list", "-f", "csv"])
            .starts_with("local (current),unix://")
    );
    // (`admin init --auto` creates a NATed bridge, so it is tested in a network namespace:
    // incus-daemon/tests/networks.rs.)
    assert!(e.ok(&["completion", "bash"]).contains("incus"));
}

/// `incus storage volume` on a dir pool: create, info, snapshots (create with a generated
/// name and an expiry, list, show, rename, restore, delete), copy and move, rename, attach to
/// a container (content reaches the host volume) and detach, get/set/unset, errors.
#[test]
fn storage_volume_commands() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED storage_volume_commands: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    let e = Env::start();
    e.ok(&["admin", "waitready", "--timeout", "20"]);
    e.ok(&[
        "image",
        "import",
        &e.image("busybox.tar.xz"),
        "--alias",
        "busybox",
    ]);
    let vol = e
        .dir
        .path()
        .join("storage-pools/default/custom/default_data");
    assert_eq!(
        e.ok(&[
            "storage",
            "volume",
            "create",
            "default",
            "data",
            "user.a=1",
            "--description",
            "d"
        ]),
        "Storage volume data created\n"
    );
    assert!(vol.is_dir());
    let info = e.ok(&["storage", "volume", "info", "default", "data"]);
    assert!(
        info.starts_with(
            "Name: data\nDescription: d\nType: custom\nContent type: filesystem\nUsage: "
        ),
        "{info}"
    );
    std::fs::write(vol.join("f"), "one\n").expect("write into the volume");
    e.ok(&["storage", "volume", "snapshot", "create", "default", "data"]);
    e.ok(&[
        "storage", "volume", "snapshot", "create", "default", "data", "later", "--expiry", "2d",
    ]);
    let snaps = e.ok(&[
        "storage", "volume", "snapshot", "list", "default", "data", "-f", "csv",
    ]);
    let lines: Vec<&str> = snaps.lines().collect();
    assert_eq!(lines.len(), 2, "{snaps}");
    assert!(
        lines[0].starts_with("snap0,") && lines[0].ends_with(','),
        "{snaps}"
    );
    assert!(
        lines[1].starts_with("later,") && lines[1].ends_with(" UTC"),
        "{snaps}"
    );
    assert!(
        e.ok(&[
            "storage", "volume", "snapshot", "show", "default", "data", "snap0"
        ])
        .contains("name: data/snap0")
    );
    e.ok(&[
        "storage", "volume", "snapshot", "rename", "default", "data", "snap0", "first",
    ]);
    std::fs::write(vol.join("f"), "two\n").expect("write");
    e.ok(&[
        "storage", "volume", "snapshot", "restore", "default", "data", "first",
    ]);
    assert_eq!(
        std::fs::read_to_string(vol.join("f")).expect("read"),
        "one\n"
    );
    assert_eq!(
        e.ok(&[
            "storage", "volume", "snapshot", "delete", "default", "data", "later"
        ]),
        "Storage volume snapshot later deleted from data\n"
    );
    // get/set/unset.
    e.ok(&["storage", "volume", "set", "default", "data", "user.b=2"]);
    assert_eq!(
        e.ok(&["storage", "volume", "get", "default", "data", "user.b"]),
        "2\n"
    );
    e.ok(&["storage", "volume", "unset", "default", "data", "user.a"]);
    assert!(
        !e.ok(&["storage", "volume", "show", "default", "data"])
            .contains("user.a")
    );
    // Copy (with its snapshot), rename, move back into a new name.
    assert_eq!(
        e.ok(&["storage", "volume", "copy", "default/data", "default/data2"]),
        "Storage volume copied successfully!\n"
    );
    let list = e.ok(&["storage", "volume", "list", "default", "-f", "csv"]);
    assert!(
        list.contains("custom,data2,d,filesystem,0")
            && list.contains("custom (snapshot),data2/first,"),
        "{list}"
    );
    assert_eq!(
        e.ok(&["storage", "volume", "rename", "default", "data2", "data3"]),
        "Renamed storage volume from \"data2\" to \"data3\"\n"
    );
    e.ok(&["storage", "volume", "delete", "default", "data3"]);
    // Attach to a container: what it writes lands in the volume.
    e.ok(&["launch", "busybox", "c3"]);
    e.ok(&[
        "storage",
        "volume",
        "attach",
        "default",
        "data",
        "c3",
        "disk1",
        "/srv/data",
    ]);
    assert!(e.ok(&["config", "device", "show", "c3"]).contains("disk1:"));
    e.ok(&["restart", "c3", "--force"]);
    e.ok(&["exec", "c3", "--", "sh", "-c", "echo from-c3 > /srv/data/g"]);
    assert_eq!(
        std::fs::read_to_string(vol.join("g")).expect("read"),
        "from-c3\n"
    );
    assert!(
        e.fails(&["storage", "volume", "delete", "default", "data"])
            .contains("in use")
    );
    e.ok(&["storage", "volume", "detach", "default", "data", "c3"]);
    assert!(!e.ok(&["config", "device", "show", "c3"]).contains("disk1:"));
    e.fails(&["storage", "volume", "detach", "default", "data", "c3"]);
    e.ok(&["delete", "-f", "c3"]);
    // Pool defaults for new volumes: the snapshot name pattern and expiry.
    e.ok(&[
        "storage",
        "set",
        "default",
        "volume.snapshots.pattern=auto-%d",
        "volume.snapshots.expiry=1d",
        "volume.snapshots.schedule=@daily",
    ]);
    e.ok(&["storage", "volume", "create", "default", "pv"]);
    let shown = e.ok(&["storage", "volume", "show", "default", "pv"]);
    assert!(
        shown.contains("snapshots.pattern: auto-%d")
            && shown.contains("snapshots.schedule: \"@daily\""),
        "{shown}"
    );
    assert!(
        e.fails(&[
            "storage",
            "set",
            "default",
            "volume.snapshots.schedule=61 * * * *"
        ])
        .contains("schedule")
    );
    e.ok(&["storage", "volume", "snapshot", "create", "default", "pv"]);
    let snaps = e.ok(&[
        "storage", "volume", "snapshot", "list", "default", "pv", "-f", "csv",
    ]);
    assert!(
        snaps.starts_with("auto-0,") && snaps.trim_end().ends_with(" UTC"),
        "{snaps}"
    );
    assert!(
        e.fails(&["storage", "set", "default", "volume.snapshots.expiry=soon"])
            .contains("expiry")
    );
    e.ok(&["storage", "volume", "delete", "default", "pv"]);
    e.ok(&["storage", "unset", "default", "volume.snapshots.pattern"]);
    e.ok(&["storage", "unset", "default", "volume.snapshots.expiry"]);
    e.ok(&["storage", "unset", "default", "volume.snapshots.schedule"]);
    // Errors.
    assert!(
        e.fails(&["storage", "volume", "create", "default", "data"])
            .contains("already exists")
    );
    assert!(
        e.fails(&["storage", "volume", "copy", "default", "x"])
            .contains("<pool>/<volume>")
    );
    assert!(
        e.fails(&["storage", "volume", "show", "default", "nope"])
            .contains("not found")
    );
    e.ok(&["storage", "volume", "delete", "default", "data"]);
    assert!(!vol.exists());
}

/// `incus export`/`import` and `incus storage volume export`/`import` with our client:
/// round trips with and without snapshots, compression choices, name and pool overrides,
/// the server's temporary backups removed, and a refused import leaving nothing.
#[test]
fn export_and_import_commands() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED export_and_import_commands: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    let e = Env::start();
    e.ok(&["admin", "waitready", "--timeout", "20"]);
    e.ok(&[
        "image",
        "import",
        &e.image("busybox.tar.xz"),
        "--alias",
        "busybox",
    ]);
    let out = tempfile::tempdir().expect("tempdir");
    let file = |n: &str| out.path().join(n).to_str().expect("path").to_string();
    e.ok(&["launch", "busybox", "c1"]);
    e.ok(&["exec", "c1", "--", "sh", "-c", "echo one > /root/f"]);
    e.ok(&["snapshot", "create", "c1", "s0"]);
    e.ok(&["exec", "c1", "--", "sh", "-c", "echo two > /root/f"]);
    assert_eq!(
        e.ok(&["export", "c1", &file("c1.tar.zst"), "--compression", "zstd"]),
        "Backup exported successfully!\n"
    );
    let magic = std::fs::read(file("c1.tar.zst")).expect("read");
    assert_eq!(&magic[..4], &[0x28, 0xb5, 0x2f, 0xfd], "zstd frame");
    assert_eq!(e.ok(&["query", "/1.0/instances/c1/backups"]).trim(), "[]");
    e.ok(&["import", &file("c1.tar.zst"), "c2"]);
    e.ok(&["start", "c2"]);
    assert_eq!(e.ok(&["exec", "c2", "--", "cat", "/root/f"]), "two\n");
    assert!(
        e.ok(&["snapshot", "list", "c2", "-f", "csv"])
            .starts_with("s0,")
    );
    e.ok(&["export", "c1", &file("c1-only.tar.gz"), "--instance-only"]);
    e.ok(&[
        "import",
        &file("c1-only.tar.gz"),
        "c3",
        "--storage",
        "default",
    ]);
    assert_eq!(e.ok(&["snapshot", "list", "c3", "-f", "csv"]), "");
    assert!(
        e.fails(&["import", &file("c1-only.tar.gz"), "c3"])
            .contains("already exists")
    );
    assert!(
        e.fails(&["export", "c1", &file("x.tar.gz"), "--optimized-storage"])
            .contains("not supported")
    );
    // Custom volumes.
    let vol = e.dir.path().join("storage-pools/default/custom");
    e.ok(&["storage", "volume", "create", "default", "data", "user.k=v"]);
    std::fs::write(vol.join("default_data/f"), "old\n").expect("write");
    e.ok(&[
        "storage", "volume", "snapshot", "create", "default", "data", "snap0",
    ]);
    std::fs::write(vol.join("default_data/f"), "new\n").expect("write");
    assert_eq!(
        e.ok(&[
            "storage",
            "volume",
            "export",
            "default",
            "data",
            &file("data.tar.gz")
        ]),
        "Backup exported successfully!\n"
    );
    e.ok(&[
        "storage",
        "volume",
        "export",
        "default",
        "data",
        &file("data-only.tar.xz"),
        "--volume-only",
        "--compression",
        "xz",
    ]);
    e.ok(&[
        "storage",
        "volume",
        "import",
        "default",
        &file("data.tar.gz"),
        "copy1",
    ]);
    assert_eq!(
        std::fs::read_to_string(vol.join("default_copy1/f")).expect("f"),
        "new\n"
    );
    assert_eq!(
        e.ok(&["storage", "volume", "get", "default", "copy1", "user.k"]),
        "v\n"
    );
    assert!(
        e.ok(&[
            "storage", "volume", "snapshot", "list", "default", "copy1", "-f", "csv"
        ])
        .starts_with("snap0,")
    );
    e.ok(&[
        "storage",
        "volume",
        "import",
        "default",
        &file("data-only.tar.xz"),
        "copy2",
    ]);
    assert_eq!(
        e.ok(&[
            "storage", "volume", "snapshot", "list", "default", "copy2", "-f", "csv"
        ]),
        ""
    );
    // An instance backup is refused as a volume, and nothing is made.
    assert!(
        e.fails(&[
            "storage",
            "volume",
            "import",
            "default",
            &file("c1-only.tar.gz"),
            "bad"
        ])
        .contains("Not a custom volume backup")
    );
    assert!(!vol.join("default_bad").exists());
    for v in ["data", "copy1", "copy2"] {
        e.ok(&["storage", "volume", "delete", "default", v]);
    }
    // Copies and moves to another pool.
    e.ok(&["storage", "create", "d2", "dir"]);
    let d2 = e.dir.path().join("storage-pools/d2/containers");
    e.ok(&["copy", "c1", "c4", "--storage", "d2"]);
    assert!(d2.join("c4/rootfs/root/f").exists());
    assert!(
        e.ok(&["snapshot", "list", "c4", "-f", "csv"])
            .starts_with("s0,")
    );
    e.ok(&["stop", "-f", "c2"]);
    e.ok(&["move", "c2", "c5", "--storage", "d2"]);
    assert!(d2.join("c5/rootfs/root/f").exists());
    assert!(
        !e.dir
            .path()
            .join("storage-pools/default/containers/c2")
            .exists()
    );
    e.ok(&["start", "c5"]);
    assert_eq!(e.ok(&["exec", "c5", "--", "cat", "/root/f"]), "two\n");
    assert!(e.fails(&["move", "c5"]).contains("--storage"));
    e.ok(&["delete", "-f", "c1", "c3", "c4", "c5"]);
    e.ok(&["storage", "delete", "d2"]);
}
