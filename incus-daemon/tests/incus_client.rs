//! Compatibility: the unmodified `incus` 6.0.4 client (Debian bookworm-backports package
//! `incus-client`, installed by `tests/install-deps.sh`) drives our `incusd` on a private
//! state directory. Runs with `INCUS_TEST_PRIVILEGED=1` (as root); a missing client is then a
//! failure, not a skip.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::{Daemon, spawn_incusd};

impl Daemon {
    /// A daemon with the busybox image (built for `test`) imported as `busybox`, and the
    /// directory of the built images.
    fn with_busybox(test: &str) -> (Daemon, PathBuf) {
        let images = image_dir(test);
        let d = Daemon::start();
        let unified = images.join("busybox.tar.xz");
        d.ok(&[
            "image",
            "import",
            unified.to_str().expect("path"),
            "--alias",
            "busybox",
        ]);
        (d, images)
    }

    /// Sends `sig` to the daemon, waits for it to exit, then starts a new one.
    fn signal_and_restart(&mut self, sig: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        nix::sys::signal::kill(pid, sig).expect("signal incusd");
        let _ = self.child.wait().expect("wait incusd");
        self.child = spawn_incusd(self.dir.path());
    }

    /// Names of containers whose liblxc monitor still runs for this state directory.
    fn running_monitors(&self) -> Vec<String> {
        let needle = format!("{} ", self.dir.path().join("containers").display());
        let mut out = Vec::new();
        for e in std::fs::read_dir("/proc").expect("proc").flatten() {
            if let Ok(cmd) = std::fs::read_to_string(e.path().join("cmdline")) {
                let cmd = cmd.replace('\0', " ");
                if cmd.starts_with("[lxc monitor]") && cmd.contains(&needle) {
                    out.push(cmd.trim().rsplit(' ').next().unwrap_or("").to_string());
                }
            }
        }
        out.sort();
        out
    }

    fn incus(&self, args: &[&str]) -> Output {
        self.incus_stdin(args, b"")
    }

    fn incus_stdin(&self, args: &[&str], stdin: &[u8]) -> Output {
        common::incus(self.dir.path(), self.conf.path(), args, stdin)
    }

    /// Runs a command that must succeed and returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        common::succeeded(args, self.incus(args))
    }

    /// Runs a command that must fail and returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        common::failed(args, self.incus(args))
    }
}

/// Unmounts a pool's mount point when dropped, whatever happens (the daemon does not unmount
/// pools when it stops).
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .stderr(Stdio::null())
            .status();
    }
}

/// Builds the busybox images into a directory of the calling test's own.
fn image_dir(test: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("incusd-test-images-{}-{test}", std::process::id()));
    incus_tests::build_busybox_images(&dir);
    dir
}

/// The two files of the split busybox image in `images`.
fn split_image(images: &Path) -> [String; 2] {
    ["busybox-split.meta.tar.xz", "busybox-split.rootfs.squashfs"]
        .map(|f| images.join(f).to_str().expect("path").to_string())
}

#[test]
fn real_incus_client_scenario() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED real_incus_client_scenario: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    assert!(
        Command::new("incus").arg("version").output().is_ok(),
        "the incus client is missing: run tests/install-deps.sh"
    );
    let images = image_dir("scenario");
    let d = Daemon::start();

    // Images.
    let unified = images.join("busybox.tar.xz");
    d.ok(&[
        "image",
        "import",
        unified.to_str().expect("path"),
        "--alias",
        "busybox",
    ]);
    assert!(
        d.ok(&["image", "list", "--format", "csv"])
            .contains("busybox")
    );

    // Launch and list in several formats.
    d.ok(&["launch", "busybox", "c1"]);
    assert_eq!(
        d.ok(&["list", "--format", "csv", "-c", "ns"]).trim(),
        "c1,RUNNING"
    );
    let json: serde_json::Value =
        serde_json::from_str(&d.ok(&["list", "--format", "json"])).expect("json");
    assert_eq!(json[0]["name"], "c1");
    assert_eq!(json[0]["state"]["status"], "Running");
    assert!(d.ok(&["list"]).contains("| c1"), "table output");
    assert!(
        d.ok(&["list", "status=running", "--format", "csv", "-c", "n"])
            .contains("c1")
    );
    assert_eq!(d.ok(&["list", "name=nope", "--format", "csv"]).trim(), "");

    // Exec: exit codes, separate streams, stdin.
    let out = d.incus(&[
        "exec",
        "c1",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));
    let out = d.incus_stdin(&["exec", "c1", "--", "cat"], b"round trip\n");
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string()
        ),
        (Some(0), "round trip\n".into())
    );
    assert_eq!(
        d.incus(&["exec", "c1", "--", "no-such-command"])
            .status
            .code(),
        Some(127)
    );
    assert_eq!(d.ok(&["exec", "c1", "--", "hostname"]).trim(), "c1");

    // Files: the 6.0.4 client does all of these over /sftp.
    let local = d.conf.path().join("files");
    std::fs::create_dir_all(local.join("tree/sub")).expect("mkdir");
    std::fs::write(local.join("one.txt"), b"one\n").expect("write");
    std::fs::write(local.join("tree/a"), b"a\n").expect("write");
    std::fs::write(local.join("tree/sub/b"), vec![7u8; 300_000]).expect("write");
    std::os::unix::fs::symlink("a", local.join("tree/link")).expect("symlink");
    let l = |p: &str| local.join(p).to_str().expect("path").to_string();
    d.ok(&[
        "file",
        "push",
        &l("one.txt"),
        "c1/root/one.txt",
        "--mode",
        "0640",
        "--uid",
        "12",
        "--gid",
        "34",
    ]);
    assert_eq!(
        d.ok(&[
            "exec",
            "c1",
            "--",
            "stat",
            "-c",
            "%a %u %g %s",
            "/root/one.txt"
        ])
        .trim(),
        "640 12 34 4"
    );
    d.ok(&["file", "push", "-r", &l("tree"), "c1/root/"]);
    assert_eq!(
        d.ok(&["exec", "c1", "--", "readlink", "/root/tree/link"])
            .trim(),
        "a"
    );
    assert_eq!(
        d.ok(&["exec", "c1", "--", "stat", "-c", "%s", "/root/tree/sub/b"])
            .trim(),
        "300000"
    );
    d.ok(&["file", "pull", "c1/root/one.txt", &l("pulled.txt")]);
    assert_eq!(
        std::fs::read(local.join("pulled.txt")).expect("read"),
        b"one\n"
    );
    d.ok(&["file", "pull", "-r", "c1/root/tree", &l("back")]);
    assert_eq!(
        std::fs::read(local.join("back/tree/sub/b")).expect("read"),
        vec![7u8; 300_000]
    );
    assert_eq!(d.ok(&["file", "pull", "c1/etc/hostname", "-"]).trim(), "c1");
    d.ok(&["file", "create", "-p", "c1/root/x/y/z.txt"]);
    d.ok(&[
        "file",
        "create",
        "--type=symlink",
        "c1/root/sl",
        "/etc/hostname",
    ]);
    assert_eq!(d.ok(&["exec", "c1", "--", "cat", "/root/sl"]).trim(), "c1");
    d.ok(&["file", "delete", "c1/root/one.txt"]);
    d.ok(&["file", "delete", "-f", "c1/root/tree"]);
    assert_eq!(
        d.ok(&["exec", "c1", "--", "ls", "/root"])
            .split_whitespace()
            .collect::<Vec<_>>(),
        ["sl", "x"]
    );
    assert!(!d.fails(&["file", "pull", "c1/no/such", &l("x")]).is_empty());
    // Paths cannot leave the instance's root.
    d.ok(&[
        "file",
        "push",
        &l("one.txt"),
        "c1/../../../../tmp/escaped.txt",
    ]);
    assert_eq!(
        d.ok(&["exec", "c1", "--", "cat", "/tmp/escaped.txt"])
            .trim(),
        "one"
    );
    assert!(!Path::new("/tmp/escaped.txt").exists());

    // Snapshots: create, change, restore, delete.
    d.ok(&["snapshot", "create", "c1", "s0"]);
    assert!(
        d.ok(&["snapshot", "list", "c1", "--format", "csv"])
            .contains("s0")
    );
    d.ok(&["exec", "c1", "--", "touch", "/root/after-snapshot"]);
    d.ok(&["snapshot", "restore", "c1", "s0"]);
    assert_ne!(
        d.incus(&["exec", "c1", "--", "test", "-e", "/root/after-snapshot"])
            .status
            .code(),
        Some(0)
    );
    d.ok(&["snapshot", "delete", "c1", "s0"]);

    // Copies (with and without snapshots, from a running instance), rename, logs.
    d.ok(&["snapshot", "create", "c1", "keep"]);
    d.ok(&["copy", "c1", "c2"]);
    assert!(
        d.ok(&["snapshot", "list", "c2", "--format", "csv"])
            .contains("keep")
    );
    d.ok(&["start", "c2"]);
    assert_eq!(
        d.ok(&["exec", "c2", "--", "hostname"]).trim(),
        "c2",
        "copy templates applied"
    );
    d.ok(&["copy", "c1", "c3", "--instance-only"]);
    assert_eq!(
        d.ok(&["snapshot", "list", "c3", "--format", "csv"]).trim(),
        ""
    );
    d.ok(&["rename", "c3", "c4"]);
    assert_eq!(
        d.ok(&["list", "--format", "csv", "-c", "n"]).trim(),
        "c1\nc2\nc4"
    );
    assert!(d.ok(&["info", "c1", "--show-log"]).contains("Log:"));
    d.ok(&["delete", "-f", "c2"]);
    d.ok(&["delete", "c4"]);
    d.ok(&["snapshot", "delete", "c1", "keep"]);

    // Config.
    d.ok(&["config", "set", "c1", "user.foo", "bar"]);
    assert_eq!(d.ok(&["config", "get", "c1", "user.foo"]).trim(), "bar");
    assert!(
        d.fails(&["config", "set", "c1", "limits.bogus", "1"])
            .contains("Unknown configuration key")
    );
    assert!(d.ok(&["info", "c1"]).contains("Status: RUNNING"));

    // Host inventory.
    let res = d.ok(&["info", "--resources"]);
    assert!(
        res.contains("CPU:") && res.contains("Memory:") && res.contains("Total:"),
        "{res}"
    );

    // Instance metadata and templates.
    assert!(
        d.ok(&["config", "metadata", "show", "c1"])
            .contains("template: hostname.tpl")
    );
    let meta = d
        .ok(&["config", "metadata", "show", "c1"])
        .replace("busybox 1.35.0", "edited");
    let out = d.incus_stdin(&["config", "metadata", "edit", "c1"], meta.as_bytes());
    assert!(out.status.success(), "{out:?}");
    assert!(
        d.ok(&["config", "metadata", "show", "c1"])
            .contains("edited")
    );
    let out = d.incus_stdin(&["config", "template", "create", "c1", "new.tpl"], b"hi\n");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        d.ok(&["config", "template", "list", "c1", "-f", "csv"]),
        "hostname.tpl\nnew.tpl\n"
    );
    assert_eq!(
        d.ok(&["config", "template", "show", "c1", "new.tpl"]),
        "hi\n"
    );
    d.ok(&["config", "template", "delete", "c1", "new.tpl"]);
    assert!(
        d.fails(&["config", "template", "show", "c1", "../../etc/passwd"])
            .contains("Invalid template name")
    );

    // Lifecycle.
    d.ok(&["stop", "c1"]);
    assert_eq!(
        d.ok(&["list", "--format", "csv", "-c", "ns"]).trim(),
        "c1,STOPPED"
    );
    d.ok(&["start", "c1"]);
    d.ok(&["restart", "-f", "c1"]);
    d.ok(&["pause", "c1"]);
    assert_eq!(
        d.ok(&["list", "--format", "csv", "-c", "ns"]).trim(),
        "c1,FROZEN"
    );
    d.ok(&["start", "c1"]);
    assert!(
        d.fails(&["delete", "c1"])
            .to_lowercase()
            .contains("running")
    );
    d.ok(&["delete", "-f", "c1"]);
    assert_eq!(d.ok(&["list", "--format", "csv"]).trim(), "");

    // Bad input.
    assert!(!d.fails(&["launch", "busybox", "bad_name"]).is_empty());
    assert!(!d.fails(&["launch", "no-such-image", "c2"]).is_empty());
    assert_eq!(
        d.ok(&["list", "--format", "csv"]).trim(),
        "",
        "nothing was created"
    );
    let _ = std::fs::remove_dir_all(&images);
}

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED bad_requests_get_clear_errors_and_change_nothing: set INCUS_TEST_PRIVILEGED=1 (as root)"
        );
        return;
    }
    let d = Daemon::start();
    let sock = d.dir.path().join("unix.socket");
    let (code, body) = common::unix_request(&sock, "GET", "/1.0", "");
    assert_eq!(code, 200);
    assert_eq!(body["type"], "sync");

    // gzip-encoded bodies are decoded; bombs, broken gzip and other encodings are refused.
    let gz = |data: &[u8]| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).expect("gzip");
        e.finish().expect("gzip")
    };
    let gzip = [
        ("Content-Encoding", "gzip"),
        ("Content-Type", "application/json"),
    ];
    let (code, _, _) = request_raw(
        &sock,
        "POST",
        "/1.0/profiles",
        &gzip,
        &gz(br#"{"name":"gzipped","config":{}}"#),
    );
    assert_eq!(code, 200);
    assert_eq!(
        common::unix_request(&sock, "GET", "/1.0/profiles/gzipped", "").0,
        200
    );
    let bomb = gz(&vec![b' '; 64 << 20]);
    assert!(bomb.len() < 1 << 20);
    let (code, _, text) = request_raw(&sock, "POST", "/1.0/profiles", &gzip, &bomb);
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&text).contains("too large"));
    // Chunked bodies (no Content-Length), also split mid-JSON; an endless one is cut off.
    let chunked = |chunks: &[&[u8]]| {
        use std::io::{Read, Write};
        let mut s = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
        s.write_all(
            b"POST /1.0/profiles HTTP/1.1\r\nHost: incus\r\nConnection: close\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        .expect("write");
        for c in chunks {
            // The daemon may answer (and close) before an oversized body is all sent.
            if s.write_all(format!("{:x}\r\n", c.len()).as_bytes())
                .is_err()
                || s.write_all(c).is_err()
                || s.write_all(b"\r\n").is_err()
            {
                break;
            }
        }
        let _ = s.write_all(b"0\r\n\r\n");
        let mut raw = Vec::new();
        let _ = s.read_to_end(&mut raw);
        String::from_utf8_lossy(&raw).into_owned()
    };
    let answer = chunked(&[b"{\"name\":\"chun", b"ked\",\"config\":", b"{}}"]);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        common::unix_request(&sock, "GET", "/1.0/profiles/chunked", "").0,
        200
    );
    let big = vec![b' '; 1 << 20];
    let many: Vec<&[u8]> = std::iter::repeat_n(big.as_slice(), 64).collect();
    let answer = chunked(&many);
    // An Incus error envelope, like every other refusal.
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains(r#""error_code":413"#), "{answer}");
    let (code, _, _) = request_raw(&sock, "POST", "/1.0/profiles", &gzip, b"not gzip");
    assert_eq!(code, 400);
    let (code, _, text) = request_raw(
        &sock,
        "POST",
        "/1.0/profiles",
        &[("Content-Encoding", "br")],
        b"{}",
    );
    assert_eq!(code, 400);
    assert!(String::from_utf8_lossy(&text).contains("Content-Encoding"));
    assert!(
        body["metadata"]["api_extensions"]
            .as_array()
            .expect("list")
            .iter()
            .any(|e| e == "container_full")
    );
    let cases = [
        ("POST", "/1.0/instances", "{not json", 400, "Invalid JSON"),
        (
            "POST",
            "/1.0/instances",
            r#"{"name":"bad_name","source":{"type":"none"}}"#,
            400,
            "Invalid instance name",
        ),
        (
            "POST",
            "/1.0/instances",
            r#"{"name":"ok","config":{"limits.bogus":"1"},"source":{"type":"none"}}"#,
            400,
            "Unknown configuration key",
        ),
        (
            "POST",
            "/1.0/instances",
            r#"{"name":"ok","source":{"type":"image","alias":"missing"}}"#,
            404,
            "not found",
        ),
        ("GET", "/1.0/instances/nope", "", 404, "not found"),
        (
            "PUT",
            "/1.0/instances/nope/state",
            r#"{"action":"start"}"#,
            404,
            "not found",
        ),
        ("GET", "/1.0/no-such-endpoint", "", 404, "not found"),
        ("GET", "/1.0/operations/nope", "", 404, "not found"),
        (
            "GET",
            "/1.0/instances?filter=name%20like%20x",
            "",
            400,
            "Invalid filter",
        ),
    ];
    for (method, path, body, want, msg) in cases {
        let (code, resp) = common::unix_request(&sock, method, path, body);
        assert_eq!(code, want, "{method} {path}: {resp}");
        assert_eq!(resp["type"], "error", "{method} {path}");
        assert_eq!(resp["error_code"], want);
        assert!(
            resp["error"].as_str().unwrap_or("").contains(msg),
            "{method} {path}: {resp}"
        );
    }
    // Nothing was created.
    let (_, list) = common::unix_request(&sock, "GET", "/1.0/instances", "");
    assert_eq!(list["metadata"], serde_json::json!([]));
    assert_eq!(
        std::fs::read_dir(d.dir.path().join("storage-pools/default/containers"))
            .expect("ls")
            .count(),
        0
    );
    // An empty instance is created through an operation with a Location header.
    let (code, op) = common::unix_request(
        &sock,
        "POST",
        "/1.0/instances",
        r#"{"name":"empty1","source":{"type":"none"}}"#,
    );
    assert_eq!(code, 202);
    assert_eq!(op["type"], "async");
    let id = op["metadata"]["id"].as_str().expect("op id").to_string();
    let (code, done) = common::unix_request(
        &sock,
        "GET",
        &format!("/1.0/operations/{id}/wait?timeout=30"),
        "",
    );
    assert_eq!(code, 200);
    assert_eq!(done["metadata"]["status"], "Success", "{done}");
    let (code, _) = common::unix_request(
        &sock,
        "POST",
        "/1.0/instances",
        r#"{"name":"empty1","source":{"type":"none"}}"#,
    );
    assert_eq!(code, 409, "duplicate name");
    let (code, _) = common::unix_request(&sock, "DELETE", "/1.0/instances/empty1", "");
    assert_eq!(code, 202);
}

#[test]
fn real_incus_client_profiles_projects_pools() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED real_incus_client_profiles_projects_pools: set INCUS_TEST_PRIVILEGED=1 (as root)"
        );
        return;
    }
    let (d, images) = Daemon::with_busybox("profiles");
    d.ok(&["admin", "waitready", "--timeout", "10"]);

    // Profiles: create, set, assign at launch, in use, ETag'd edits.
    d.ok(&["profile", "create", "p1"]);
    d.ok(&["profile", "set", "p1", "environment.FROM_PROFILE=yes"]);
    assert!(
        d.ok(&["profile", "show", "p1"])
            .contains("environment.FROM_PROFILE: \"yes\"")
    );
    d.ok(&["launch", "busybox", "c1", "-p", "default", "-p", "p1"]);
    assert_eq!(
        d.ok(&["exec", "c1", "--", "sh", "-c", "echo $FROM_PROFILE"])
            .trim(),
        "yes"
    );
    assert!(d.fails(&["profile", "delete", "p1"]).contains("in use"));
    d.ok(&["config", "set", "c1", "user.a=1"]);
    d.ok(&["config", "unset", "c1", "user.a"]);
    assert_eq!(d.ok(&["config", "get", "c1", "user.a"]).trim(), "");

    // Projects: isolation.
    d.ok(&["project", "create", "p2"]);
    assert_eq!(
        d.ok(&["list", "--project", "p2", "--format", "csv"]).trim(),
        ""
    );
    assert!(d.ok(&["list", "--format", "csv", "-c", "n"]).contains("c1"));
    assert!(
        d.fails(&["project", "delete", "default"])
            .contains("default project")
    );
    d.ok(&["project", "delete", "p2"]);

    // Storage pools.
    assert!(
        d.ok(&["storage", "list", "--format", "csv"])
            .starts_with("default,dir")
    );
    d.ok(&["storage", "create", "extra", "dir"]);
    assert!(
        d.ok(&["storage", "list", "--format", "csv", "-c", "n"])
            .contains("extra")
    );
    assert!(
        d.fails(&["storage", "delete", "default"])
            .contains("in use")
    );
    d.ok(&["storage", "delete", "extra"]);
    assert!(
        d.fails(&["storage", "create", "bad", "dir", "size=1GiB"])
            .contains("size")
    );
    // Volumes: the instance's root volume and the unpacked image.
    let vols = d.ok(&["storage", "volume", "list", "default", "--format", "csv"]);
    assert!(vols.contains("container,c1,,filesystem,1\n"), "{vols}");
    assert!(vols.lines().any(|l| l.starts_with("image,")), "{vols}");
    assert!(
        d.ok(&["storage", "volume", "show", "default", "container/c1"])
            .contains("- /1.0/instances/c1")
    );
    assert!(
        d.fails(&["storage", "volume", "show", "default", "container/nope"])
            .contains("not found")
    );
    assert!(
        d.fails(&[
            "storage", "volume", "create", "default", "v1", "--type", "block"
        ])
        .contains("not supported yet")
    );

    d.ok(&["delete", "-f", "c1"]);
    d.ok(&["profile", "delete", "p1"]);
    // Renames: profiles (references follow), empty projects (an operation, as in Incus).
    d.ok(&["profile", "create", "r1"]);
    d.ok(&["profile", "rename", "r1", "r2"]);
    assert!(d.ok(&["profile", "show", "r2"]).contains("name: r2"));
    assert!(
        d.fails(&["profile", "rename", "default", "x"])
            .contains("cannot be renamed")
    );
    d.ok(&["profile", "delete", "r2"]);
    d.ok(&["project", "create", "rp1"]);
    d.ok(&["project", "rename", "rp1", "rp2"]);
    assert!(d.ok(&["project", "list", "-f", "csv"]).contains("rp2,"));
    d.ok(&["project", "delete", "rp2"]);

    // Images: split upload (multipart), launch from it, byte-identical export, properties.
    let meta = images.join("busybox-split.meta.tar.xz");
    let rootfs = images.join("busybox-split.rootfs.squashfs");
    d.ok(&[
        "image",
        "import",
        meta.to_str().expect("path"),
        rootfs.to_str().expect("path"),
        "--alias",
        "split",
    ]);
    d.ok(&["launch", "split", "s1"]);
    assert_eq!(d.ok(&["exec", "s1", "--", "hostname"]).trim(), "s1");
    d.ok(&["delete", "-f", "s1"]);
    let export = d.conf.path().join("exported");
    d.ok(&["image", "export", "busybox", export.to_str().expect("path")]);
    assert_eq!(
        std::fs::read(d.conf.path().join("exported.tar.xz")).expect("exported file"),
        std::fs::read(images.join("busybox.tar.xz")).expect("original"),
        "unified export is byte-identical"
    );
    d.ok(&["image", "export", "split", export.to_str().expect("path")]);
    assert_eq!(
        std::fs::read(&export).expect("meta"),
        std::fs::read(&meta).expect("meta")
    );
    d.ok(&["image", "set-property", "busybox", "os", "mybox"]);
    assert_eq!(
        d.ok(&["image", "get-property", "busybox", "os"]).trim(),
        "mybox"
    );
    assert!(
        d.ok(&["network", "list", "--format", "csv"])
            .contains("lo,loopback,NO")
    );
    d.ok(&["warning", "list"]);
    let _ = std::fs::remove_dir_all(&images);
}

/// A raw request with extra headers and a byte body; returns (status, lower-cased header
/// block, body bytes).
fn request_raw(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: incus\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("write");
    s.write_all(body).expect("write body");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, head, raw[split + 4..].to_vec())
}

#[test]
fn files_api_as_the_lxd_client_uses_it() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED files_api_as_the_lxd_client_uses_it: set INCUS_TEST_PRIVILEGED=1 (as root)"
        );
        return;
    }
    let (d, images) = Daemon::with_busybox("files");
    d.ok(&["launch", "busybox", "c1"]);
    let sock = d.dir.path().join("unix.socket");

    // exec with record-output: stdout and stderr land in log files the operation names.
    let (code, body) = common::unix_request(
        &sock,
        "POST",
        "/1.0/instances/c1/exec",
        r#"{"command":["sh","-c","echo to-out; echo to-err >&2; exit 5"],"record-output":true,"wait-for-websocket":false}"#,
    );
    assert_eq!(code, 202, "{body}");
    let id = body["metadata"]["id"].as_str().expect("op id").to_string();
    let (_, done) = common::unix_request(&sock, "GET", &format!("/1.0/operations/{id}/wait"), "");
    let meta = &done["metadata"]["metadata"];
    assert_eq!(meta["return"], 5, "{done}");
    let out_url = meta["output"]["1"]
        .as_str()
        .expect("stdout url")
        .to_string();
    let err_url = meta["output"]["2"]
        .as_str()
        .expect("stderr url")
        .to_string();
    assert!(out_url.starts_with("/1.0/instances/c1/logs/exec-output/exec_"));
    assert_eq!(request_raw(&sock, "GET", &out_url, &[], b"").2, b"to-out\n");
    assert_eq!(request_raw(&sock, "GET", &err_url, &[], b"").2, b"to-err\n");
    let (_, listed) = common::unix_request(&sock, "GET", "/1.0/instances/c1/logs/exec-output", "");
    assert_eq!(listed["metadata"].as_array().map(Vec::len), Some(2));
    assert_eq!(common::unix_request(&sock, "DELETE", &out_url, "").0, 200);
    assert_eq!(common::unix_request(&sock, "GET", &out_url, "").0, 404);
    assert_eq!(
        common::unix_request(
            &sock,
            "GET",
            "/1.0/instances/c1/logs/exec-output/..%2F..%2Flxc.conf",
            ""
        )
        .0,
        400
    );
    let f = "/1.0/instances/c1/files?path=";

    let (code, _, _) = request_raw(
        &sock,
        "POST",
        &format!("{f}/root/f.txt"),
        &[
            ("X-LXD-uid", "1000"),
            ("X-LXD-gid", "1001"),
            ("X-LXD-mode", "0640"),
            ("X-LXD-type", "file"),
        ],
        b"hello",
    );
    assert_eq!(code, 200);
    let (code, head, body) = request_raw(&sock, "GET", &format!("{f}root%2Ff.txt"), &[], b"");
    assert_eq!((code, body.as_slice()), (200, &b"hello"[..]));
    for h in [
        "x-incus-uid: 1000",
        "x-incus-gid: 1001",
        "x-incus-mode: 0640",
        "x-incus-type: file",
        "x-lxd-uid: 1000",
    ] {
        assert!(head.contains(h), "{h} in {head}");
    }
    let (code, _, _) = request_raw(
        &sock,
        "POST",
        &format!("{f}/root/f.txt"),
        &[("X-Incus-write", "append")],
        b"!",
    );
    assert_eq!(code, 200);
    assert_eq!(
        request_raw(&sock, "GET", &format!("{f}/root/f.txt"), &[], b"").2,
        b"hello!"
    );
    assert_eq!(
        d.ok(&["exec", "c1", "--", "stat", "-c", "%u:%g:%a", "/root/f.txt"])
            .trim(),
        "1000:1001:640"
    );

    assert_eq!(
        request_raw(
            &sock,
            "POST",
            &format!("{f}/root/d"),
            &[("X-Incus-type", "directory"), ("X-Incus-mode", "0700")],
            b""
        )
        .0,
        200
    );
    assert_eq!(
        request_raw(
            &sock,
            "POST",
            &format!("{f}/root/d/l"),
            &[("X-Incus-type", "symlink")],
            b"/etc/hostname"
        )
        .0,
        200
    );
    let (code, head, body) = request_raw(&sock, "GET", &format!("{f}/root/d"), &[], b"");
    assert_eq!(code, 200);
    assert!(head.contains("x-incus-type: directory"));
    let listing: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(listing["metadata"], serde_json::json!(["l"]));
    let (_, head, body) = request_raw(&sock, "GET", &format!("{f}/root/d/l"), &[], b"");
    assert!(head.contains("x-incus-type: symlink"));
    assert_eq!(body, b"/etc/hostname");
    let (code, head, _) = request_raw(&sock, "HEAD", &format!("{f}/root/f.txt"), &[], b"");
    assert_eq!(code, 200);
    assert!(head.contains("x-incus-mode: 0640"));

    // Confined to the container; bad headers refused; recursive delete.
    assert_eq!(
        request_raw(
            &sock,
            "GET",
            &format!("{f}/../../../etc/hostname"),
            &[],
            b""
        )
        .2,
        b"c1\n"
    );
    assert_eq!(
        request_raw(&sock, "GET", &format!("{f}/nonexistent"), &[], b"").0,
        404
    );
    assert_eq!(
        request_raw(
            &sock,
            "POST",
            &format!("{f}/root/x"),
            &[("X-Incus-uid", "abc")],
            b""
        )
        .0,
        400
    );
    assert_eq!(
        request_raw(
            &sock,
            "POST",
            &format!("{f}/root/x"),
            &[("X-Incus-type", "fifo")],
            b""
        )
        .0,
        400
    );
    assert_eq!(
        request_raw(&sock, "GET", "/1.0/instances/c1/files", &[], b"").0,
        400,
        "missing path"
    );
    assert_ne!(
        request_raw(&sock, "DELETE", &format!("{f}/root/d"), &[], b"").0,
        200,
        "not empty"
    );
    assert_eq!(
        request_raw(
            &sock,
            "DELETE",
            &format!("{f}/root/d"),
            &[("X-Incus-force", "true")],
            b""
        )
        .0,
        200
    );
    assert_eq!(
        request_raw(&sock, "GET", &format!("{f}/root/d"), &[], b"").0,
        404
    );
    d.ok(&["delete", "-f", "c1"]);
    let _ = std::fs::remove_dir_all(&images);
}

#[test]
fn daemon_lifecycle_autostart_sigterm_sigpwr() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED daemon_lifecycle_autostart_sigterm_sigpwr: set INCUS_TEST_PRIVILEGED=1 (as root)"
        );
        return;
    }
    use nix::sys::signal::Signal;
    let (mut d, images) = Daemon::with_busybox("lifecycle");
    d.ok(&["launch", "busybox", "auto", "-c", "boot.autostart=true"]);
    d.ok(&["launch", "busybox", "manual"]);

    // SIGTERM: the daemon goes, the instances stay.
    d.signal_and_restart(Signal::SIGTERM);
    assert_eq!(
        d.running_monitors(),
        vec!["auto".to_string(), "manual".to_string()]
    );
    assert_eq!(
        d.ok(&["list", "--format", "csv", "-c", "ns"]).trim(),
        "auto,RUNNING\nmanual,RUNNING"
    );
    assert_eq!(
        d.ok(&["exec", "manual", "--", "hostname"]).trim(),
        "manual",
        "found again after restart"
    );

    // Autostart: only boot.autostart instances start with the daemon.
    d.ok(&["stop", "-f", "auto", "manual"]);
    d.signal_and_restart(Signal::SIGTERM);
    let mut started = false;
    for _ in 0..200 {
        if d.ok(&["list", "--format", "csv", "-c", "ns"]).trim() == "auto,RUNNING\nmanual,STOPPED" {
            started = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        started,
        "autostart: {}",
        d.ok(&["list", "--format", "csv", "-c", "ns"])
    );

    // SIGPWR: running instances are stopped before the daemon exits.
    d.ok(&["start", "manual"]);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(d.child.id()).expect("pid"));
    nix::sys::signal::kill(pid, Signal::SIGPWR).expect("SIGPWR");
    let _ = d.child.wait();
    assert!(
        d.running_monitors().is_empty(),
        "SIGPWR stops instances: {:?}",
        d.running_monitors()
    );
    d.child = spawn_incusd(d.dir.path());
    for _ in 0..200 {
        if d.ok(&["list", "--format", "csv", "-c", "ns"])
            .contains("auto,RUNNING")
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    d.ok(&["delete", "-f", "auto", "manual"]);
    let _ = std::fs::remove_dir_all(&images);
}

#[test]
fn real_lxd_client_scenario() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED real_lxd_client_scenario: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    let images = image_dir("lxd");
    let d = Daemon::start();
    let lxc = |args: &[&str], stdin: &[u8]| -> Output {
        use std::io::Write;
        let mut c = Command::new("lxc")
            .args(args)
            .env("LXD_DIR", d.dir.path())
            .env("LXD_CONF", d.conf.path())
            .env("HOME", d.conf.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect(
                "the LXD lxc client (package lxd-client) is missing: run tests/install-deps.sh",
            );
        let mut input = c.stdin.take().expect("stdin");
        input.write_all(stdin).expect("stdin");
        drop(input);
        c.wait_with_output().expect("lxc output")
    };
    let ok = |args: &[&str]| -> String {
        let out = lxc(args, b"");
        assert!(
            out.status.success(),
            "lxc {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let unified = images.join("busybox.tar.xz");
    ok(&[
        "image",
        "import",
        unified.to_str().expect("path"),
        "--alias",
        "busybox",
    ]);
    ok(&["launch", "busybox", "c1"]);
    assert_eq!(
        ok(&["list", "--format", "csv", "-c", "ns"]).trim(),
        "c1,RUNNING"
    );
    let out = lxc(
        &[
            "exec",
            "c1",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 2",
        ],
        b"",
    );
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    let out = lxc(&["exec", "c1", "--", "cat"], b"via lxc\n");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "via lxc\n");
    // File push and pull go through /files with X-LXD-* headers.
    let src = d.conf.path().join("push.txt");
    std::fs::write(&src, "pushed by lxc\n").expect("write");
    ok(&[
        "file",
        "push",
        "--mode",
        "0600",
        src.to_str().expect("path"),
        "c1/root/pushed.txt",
    ]);
    assert_eq!(
        ok(&["exec", "c1", "--", "stat", "-c", "%a", "/root/pushed.txt"]).trim(),
        "600"
    );
    let dst = d.conf.path().join("pulled.txt");
    ok(&[
        "file",
        "pull",
        "c1/root/pushed.txt",
        dst.to_str().expect("path"),
    ]);
    assert_eq!(
        std::fs::read_to_string(&dst).expect("read"),
        "pushed by lxc\n"
    );
    ok(&["snapshot", "c1", "s0"]);
    ok(&["exec", "c1", "--", "rm", "/root/pushed.txt"]);
    ok(&["restore", "c1", "s0"]);
    assert_eq!(
        ok(&["exec", "c1", "--", "cat", "/root/pushed.txt"]),
        "pushed by lxc\n"
    );
    ok(&["config", "set", "c1", "user.k", "v"]);
    assert_eq!(ok(&["config", "get", "c1", "user.k"]).trim(), "v");
    // Recursive push and pull.
    let tree = d.conf.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).expect("mkdir");
    std::fs::write(tree.join("sub/f"), "deep\n").expect("write");
    ok(&[
        "file",
        "push",
        "-r",
        tree.to_str().expect("path"),
        "c1/root/",
    ]);
    assert_eq!(
        ok(&["exec", "c1", "--", "cat", "/root/tree/sub/f"]),
        "deep\n"
    );
    let back = d.conf.path().join("back");
    std::fs::create_dir_all(&back).expect("mkdir");
    ok(&[
        "file",
        "pull",
        "-r",
        "c1/root/tree",
        back.to_str().expect("path"),
    ]);
    assert_eq!(
        std::fs::read_to_string(back.join("tree/sub/f")).expect("read"),
        "deep\n"
    );
    // Profiles.
    ok(&["profile", "create", "lp"]);
    ok(&["profile", "set", "lp", "environment.FROM=lxd"]);
    ok(&["profile", "assign", "c1", "default,lp"]);
    ok(&["restart", "--force", "c1"]);
    assert_eq!(ok(&["exec", "c1", "--", "sh", "-c", "echo $FROM"]), "lxd\n");
    assert!(ok(&["profile", "show", "lp"]).contains("/1.0/instances/c1"));
    ok(&["profile", "assign", "c1", "default"]);
    ok(&["profile", "delete", "lp"]);
    // Split image import and projects with isolation.
    ok(&[
        "image",
        "import",
        split_image(&images)[0].as_str(),
        split_image(&images)[1].as_str(),
        "--alias",
        "split",
    ]);
    ok(&[
        "project",
        "create",
        "lproj",
        "-c",
        "features.images=false",
        "-c",
        "features.profiles=false",
    ]);
    ok(&["project", "switch", "lproj"]);
    ok(&["launch", "split", "pc"]);
    assert_eq!(ok(&["list", "--format", "csv", "-c", "n"]).trim(), "pc");
    ok(&["delete", "-f", "pc"]);
    ok(&["project", "switch", "default"]);
    ok(&["project", "delete", "lproj"]);
    ok(&["stop", "c1"]);
    ok(&["delete", "c1"]);
    assert_eq!(ok(&["list", "--format", "csv"]).trim(), "");
    let _ = std::fs::remove_dir_all(&images);
}

#[test]
fn pylxd_scenario() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED pylxd_scenario: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    let images = image_dir("pylxd");
    let d = Daemon::start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/compat/pylxd_scenario.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(d.dir.path())
        .arg(images.join("busybox.tar.xz"))
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "pylxd scenario failed (pip install pylxd: tests/install-deps.sh):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let _ = std::fs::remove_dir_all(&images);
}

/// Mount points under `dir` in the host's mount namespace.
fn mounts_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&needle))
        .map(str::to_string)
        .collect()
}

#[test]
fn kill_9_during_operations() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED kill_9_during_operations: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    let (mut d, images) = Daemon::with_busybox("kill9");
    let sock = d.dir.path().join("unix.socket");
    d.ok(&["launch", "busybox", "c1"]);
    let mounts_before = mounts_under(d.dir.path());

    // A running operation (a long exec), and a launch that is still unpacking.
    let (status, body) = common::unix_request(
        &sock,
        "POST",
        "/1.0/instances/c1/exec",
        r#"{"command":["sleep","1000"],"wait-for-websocket":false,"interactive":false}"#,
    );
    assert_eq!(status, 202, "{body}");
    let op = body["metadata"]["id"]
        .as_str()
        .expect("operation id")
        .to_string();
    let (_, o) = common::unix_request(&sock, "GET", &format!("/1.0/operations/{op}"), "");
    assert_eq!(o["metadata"]["status"], "Running");
    d.signal_and_restart(nix::sys::signal::Signal::SIGKILL);

    // The lost operation is not reported as running.
    let (status, _) = common::unix_request(&sock, "GET", &format!("/1.0/operations/{op}"), "");
    assert_eq!(status, 404);
    let (_, ops) = common::unix_request(&sock, "GET", "/1.0/operations?recursion=1", "");
    assert!(
        ops["metadata"]["running"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{ops}"
    );
    // The running instance is found again and works.
    assert_eq!(
        d.ok(&["list", "c1", "--format", "csv", "-c", "ns"]).trim(),
        "c1,RUNNING"
    );
    assert_eq!(d.ok(&["exec", "c1", "--", "echo", "ok"]).trim(), "ok");

    // kill -9 at many points of a launch (unpack, database, liblxc start): afterwards the
    // instance is absent, or present in a state that tells the truth and can be deleted.
    let mut seen = Vec::new();
    for delay in (0..=240).step_by(20) {
        let (status, _) = common::unix_request(
            &sock,
            "POST",
            "/1.0/instances",
            r#"{"name":"c2","source":{"type":"image","alias":"busybox"},"start":true}"#,
        );
        assert_eq!(status, 202);
        std::thread::sleep(std::time::Duration::from_millis(delay));
        d.signal_and_restart(nix::sys::signal::Signal::SIGKILL);
        let state = d.ok(&["list", "c2", "--format", "csv", "-c", "s"]);
        let running = d.running_monitors().contains(&"c2".to_string());
        match state.trim() {
            "" => assert!(!running, "c2 unknown but its container runs"),
            "RUNNING" => assert!(running),
            "STOPPED" => assert!(!running, "c2 reported stopped but its container runs"),
            other => panic!("c2 in state {other:?}"),
        }
        seen.push(format!("{delay}ms:{}", state.trim()));
        if !state.trim().is_empty() {
            d.ok(&["delete", "-f", "c2"]);
        }
        assert!(!d.running_monitors().contains(&"c2".to_string()));
    }
    eprintln!("after kill -9 during launch: {seen:?}");
    d.ok(&["launch", "busybox", "c2"]);
    d.ok(&["delete", "-f", "c1", "c2"]);
    assert_eq!(d.ok(&["list", "--format", "csv"]).trim(), "");
    assert!(d.running_monitors().is_empty());
    // No orphaned mounts, and no instance directories left behind.
    assert_eq!(mounts_under(d.dir.path()), mounts_before);
    let left: Vec<_> = std::fs::read_dir(d.dir.path().join("containers"))
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&images);
}

#[test]
fn socket_group_and_mode() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED socket_group_and_mode: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let dir = tempfile::Builder::new()
        .prefix("incusd-group-")
        .tempdir()
        .expect("tempdir");
    // Started with an inherited descriptor (7): the daemon marks it close-on-exec.
    let marker = dir.path().join("inherited");
    let mut child = Command::new("bash")
        .arg("-c")
        .arg("exec 7>\"$1\"; exec \"$2\" --dir \"$3\" --group daemon")
        .arg("bash")
        .arg(&marker)
        .arg(env!("CARGO_BIN_EXE_incusd"))
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("start incusd");
    let sock = dir.path().join("unix.socket");
    let mut meta = None;
    for _ in 0..400 {
        // The socket exists once bound; its group is set right after.
        if let Ok(m) = std::fs::metadata(&sock)
            && m.gid() != 0
        {
            meta = Some(m);
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let fdinfo = std::fs::read_to_string(format!("/proc/{}/fdinfo/7", child.id()));
    let _ = child.kill();
    let _ = child.wait();
    let flags = fdinfo
        .expect("fd 7 open in incusd")
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
        .expect("flags");
    assert_ne!(flags & 0o2000000, 0, "inherited fd 7 not close-on-exec");
    let meta = meta.expect("socket with the daemon group");
    let gid = nix::unistd::Group::from_name("daemon")
        .expect("group lookup")
        .expect("group daemon")
        .gid;
    assert_eq!(meta.gid(), gid.as_raw());
    assert_eq!(meta.permissions().mode() & 0o777, 0o660);
}

/// A client process on a pseudo-terminal, with everything it prints collected.
struct OnPty {
    child: Child,
    master: std::fs::File,
    seen: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

impl OnPty {
    fn spawn(program: &Path, args: &[&str], d: &Daemon) -> OnPty {
        let pty = nix::pty::openpty(None, None).expect("openpty");
        let slave = std::fs::File::from(pty.slave);
        let child = Command::new(program)
            .args(args)
            .env("INCUS_DIR", d.dir.path())
            .env("INCUS_CONF", d.conf.path())
            .env("HOME", d.conf.path())
            .env("TERM", "xterm")
            .stdin(slave.try_clone().expect("dup"))
            .stdout(slave.try_clone().expect("dup"))
            .stderr(slave)
            .spawn()
            .expect("client on a pty");
        let master = std::fs::File::from(pty.master);
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (mut reader, sink) = (master.try_clone().expect("dup"), seen.clone());
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            // Ends with EIO once the client and its terminal are gone.
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        });
        OnPty {
            child,
            master,
            seen,
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().expect("lock")).into_owned()
    }

    /// Waits up to 15 s for `needle` in the output.
    fn expect(&self, needle: &str) {
        assert!(
            self.shows_within(needle, 300),
            "{needle:?} never appeared; the client printed {:?}",
            self.text()
        );
    }

    /// Whether `needle` appears in the output within `ticks` x 50 ms.
    fn shows_within(&self, needle: &str, ticks: u32) -> bool {
        for _ in 0..ticks {
            if self.text().contains(needle) {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        false
    }

    fn type_keys(&mut self, keys: &[u8]) {
        use std::io::Write;
        self.master.write_all(keys).expect("type");
    }

    /// <ctrl>+a then q, as two key presses (the incus client looks for each at the start of
    /// a read).
    fn detach(&mut self) {
        self.type_keys(b"\x01");
        std::thread::sleep(std::time::Duration::from_millis(200));
        self.type_keys(b"q");
    }

    /// Waits up to 15 s for the client to exit; its exit status. The output stays readable.
    fn wait_keep(&mut self) -> std::process::ExitStatus {
        for _ in 0..300 {
            if let Some(st) = self.child.try_wait().expect("wait") {
                // Let the reader drain what the client wrote last.
                std::thread::sleep(std::time::Duration::from_millis(100));
                return st;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("the client did not exit; it printed {:?}", self.text());
    }

    /// Waits up to 15 s for the client to exit; its exit status.
    fn wait(mut self) -> std::process::ExitStatus {
        self.wait_keep()
    }
}

/// `incus console`: attach, see what the container writes on /dev/console, type into it,
/// detach with <ctrl>+a q; one holder at a time; the log; refused on a stopped instance.
/// With the real incus 6.0.4 client and with ours. Also our client's progress line on a
/// terminal (a split image import).
#[test]
fn console_and_progress_on_a_terminal() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED console_and_progress_on_a_terminal: set INCUS_TEST_PRIVILEGED=1 (as root)"
        );
        return;
    }
    let ours = Path::new(env!("CARGO_BIN_EXE_incusd"))
        .parent()
        .expect("target dir")
        .join("incus");
    assert!(
        ours.exists(),
        "{} is missing: build the workspace (`cargo test --workspace` does)",
        ours.display()
    );
    let (d, images) = Daemon::with_busybox("console");
    let sock = d.dir.path().join("unix.socket");
    d.ok(&["launch", "busybox", "c1"]);
    let import = OnPty::spawn(
        &ours,
        &[
            "image",
            "import",
            split_image(&images)[0].as_str(),
            split_image(&images)[1].as_str(),
            "--alias",
            "split",
        ],
        &d,
    );
    import.expect("Image imported with fingerprint: ");
    let shown = import.text();
    assert!(
        shown.contains("Transferring image: 100% ("),
        "no progress line: {shown:?}"
    );
    assert!(import.wait().success());
    assert!(
        d.ok(&["image", "list"]).contains("split"),
        "split image listed"
    );
    // Launch on a terminal shows the image unpack's progress.
    let mut launch = OnPty::spawn(&ours, &["launch", "split", "c2"], &d);
    assert!(launch.wait_keep().success());
    let shown = launch.text();
    assert!(
        shown.contains("Unpacking image: 100% ("),
        "no unpack progress: {shown:?}"
    );
    d.ok(&["delete", "-f", "c2"]);
    for (who, program) in [
        ("incus 6.0.4", Path::new("/usr/bin/incus")),
        ("ours", &ours),
    ] {
        let mut con = OnPty::spawn(program, &["console", "c1"], &d);
        con.expect("To detach from the console, press: <ctrl>+a q");
        // The console is held: a second attach is refused, and nothing is left running.
        let (status, body) = common::unix_request(&sock, "POST", "/1.0/instances/c1/console", "{}");
        assert!(
            (400..500).contains(&status),
            "{who}: second attach gave {status} {body}"
        );
        let mark = format!("console-mark-{}", who.len());
        // Written again each second until it shows: the client may print its banner before
        // its attach is done (a mark written before then reaches only the console log).
        let write_mark = format!("echo {mark} > /dev/console");
        let shown = (0..15).any(|_| {
            d.ok(&["exec", "c1", "--", "sh", "-c", &write_mark]);
            con.shows_within(&mark, 20)
        });
        assert!(shown, "{who}: {mark} never shown: {:?}", con.text());
        con.detach();
        let st = con.wait();
        assert!(st.success(), "{who}: console exit {st:?}");
        // Released: the next attach works at once.
        let mut again = OnPty::spawn(program, &["console", "c1"], &d);
        again.expect("To detach");
        again.detach();
        assert!(again.wait().success(), "{who}: re-attach");
        assert!(d.ok(&["console", "c1", "--show-log"]).contains(&mark));
    }
    // Typed input reaches a reader of the console (a shell run on it by exec).
    let reader = std::thread::spawn({
        let dir = d.dir.path().to_path_buf();
        let conf = d.conf.path().to_path_buf();
        move || {
            Command::new("incus")
                .args([
                    "exec",
                    "c1",
                    "--",
                    "sh",
                    "-c",
                    "read line < /dev/console; echo \"got:$line\" > /dev/console",
                ])
                .env("INCUS_DIR", dir)
                .env("INCUS_CONF", &conf)
                .env("HOME", &conf)
                .output()
                .expect("reader")
        }
    });
    let mut con = OnPty::spawn(&ours, &["console", "c1"], &d);
    con.expect("To detach");
    std::thread::sleep(std::time::Duration::from_millis(500));
    con.type_keys(b"typed-in\r");
    con.expect("got:typed-in");
    con.detach();
    assert!(con.wait().success());
    assert!(reader.join().expect("reader").status.success());
    // Bad requests and the log.
    let (status, body) = common::unix_request(
        &sock,
        "POST",
        "/1.0/instances/c1/console",
        r#"{"type":"vga"}"#,
    );
    assert_eq!(status, 400, "{body}");
    let (status, _) = common::unix_request(&sock, "DELETE", "/1.0/instances/c1/console", "");
    assert_eq!(status, 200);
    assert_eq!(d.ok(&["console", "c1", "--show-log"]).trim(), "");
    d.ok(&["stop", "-f", "c1"]);
    let (status, body) = common::unix_request(&sock, "POST", "/1.0/instances/c1/console", "{}");
    assert!((400..500).contains(&status), "{status} {body}");
    d.ok(&["delete", "c1"]);
    let _ = std::fs::remove_dir_all(&images);
}

/// A btrfs pool on a loop file through the real incus 6.0.4 client: instances as snapshots of
/// the image subvolume, a root disk `size` quota that holds, snapshot/restore, copy, volume
/// listing, `size` refused on a dir pool, and the pool's removal (unmounted, file gone).
#[test]
fn btrfs_pool_with_the_real_client() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED btrfs_pool_with_the_real_client: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    let (d, images) = Daemon::with_busybox("btrfs");
    let mount = d.dir.path().join("storage-pools/b1");
    let _unmount = Unmount(mount.clone());
    d.ok(&["storage", "create", "b1", "btrfs", "size=2GiB"]);
    assert!(
        d.ok(&["storage", "list", "--format", "csv"])
            .contains("b1,btrfs,")
    );
    let info = d.ok(&["storage", "info", "b1", "--bytes"]);
    assert!(
        info.contains("driver: btrfs") && info.contains("total space: \""),
        "{info}"
    );
    d.ok(&["profile", "create", "small"]);
    d.ok(&[
        "profile",
        "device",
        "add",
        "small",
        "root",
        "disk",
        "pool=b1",
        "path=/",
        "size=20MiB",
    ]);
    d.ok(&["launch", "busybox", "q1", "--profile", "small"]);
    assert!(
        std::fs::read_to_string("/proc/self/mountinfo")
            .expect("mountinfo")
            .contains(&mount.to_string_lossy().to_string()),
        "pool mounted"
    );
    // The root quota holds: 8 MiB fits, 40 MiB more does not.
    let write_mib = |inst: &str, file: &str, mib: u32| {
        let (of, count) = (format!("of=/root/{file}"), format!("count={mib}"));
        d.incus(&[
            "exec",
            inst,
            "--",
            "dd",
            "if=/dev/zero",
            &of,
            "bs=1M",
            &count,
            "conv=fsync",
        ])
        .status
        .success()
    };
    assert!(write_mib("q1", "a", 8), "8 MiB within a 20 MiB quota");
    assert!(
        !write_mib("q1", "b", 40),
        "40 MiB written past a 20 MiB quota"
    );
    d.ok(&["exec", "q1", "--", "rm", "-f", "/root/b"]);
    // The pool's `volume.size` is the default quota of new instances without a root `size`.
    d.ok(&["storage", "set", "b1", "volume.size=16MiB"]);
    d.ok(&["profile", "create", "plain"]);
    d.ok(&[
        "profile", "device", "add", "plain", "root", "disk", "pool=b1", "path=/",
    ]);
    d.ok(&["launch", "busybox", "q3", "--profile", "plain"]);
    assert!(
        !write_mib("q3", "b", 40),
        "40 MiB written past the pool's 16 MiB volume.size"
    );
    d.ok(&["delete", "-f", "q3"]);
    d.ok(&["profile", "delete", "plain"]);
    // Snapshots are read-only subvolumes; restore brings the content back.
    d.ok(&["exec", "q1", "--", "sh", "-c", "echo before > /root/mark"]);
    d.ok(&["snapshot", "create", "q1", "s0"]);
    d.ok(&["exec", "q1", "--", "sh", "-c", "echo after > /root/mark"]);
    d.ok(&["snapshot", "restore", "q1", "s0"]);
    assert_eq!(d.ok(&["exec", "q1", "--", "cat", "/root/mark"]), "before\n");
    let snap = mount.join("containers-snapshots/q1/s0");
    assert_eq!(
        std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&snap).expect("snapshot")),
        256
    );
    d.ok(&["copy", "q1", "q2"]);
    d.ok(&["start", "q2"]);
    assert_eq!(d.ok(&["exec", "q2", "--", "cat", "/root/mark"]), "before\n");
    let vols = d.ok(&["storage", "volume", "list", "b1", "--format", "csv"]);
    assert!(
        vols.contains("container,q1,") && vols.contains("container,q2,"),
        "{vols}"
    );
    assert!(vols.lines().any(|l| l.starts_with("image,")), "{vols}");
    // A dir pool cannot enforce a size: refused before anything is created.
    d.ok(&["profile", "create", "sized-dir"]);
    d.ok(&[
        "profile",
        "device",
        "add",
        "sized-dir",
        "root",
        "disk",
        "pool=default",
        "path=/",
        "size=20MiB",
    ]);
    assert!(
        d.fails(&["launch", "busybox", "d1", "--profile", "sized-dir"])
            .contains("cannot be enforced")
    );
    assert_eq!(d.ok(&["list", "d1", "--format", "csv"]), "");
    // Removal: instances, then the pool (unmounted, loop file removed).
    d.ok(&["delete", "-f", "q1", "q2"]);
    d.ok(&["profile", "delete", "small"]);
    d.ok(&["storage", "delete", "b1"]);
    assert!(!d.dir.path().join("disks/b1.img").exists());
    assert!(
        !std::fs::read_to_string("/proc/self/mountinfo")
            .expect("mountinfo")
            .contains(&mount.to_string_lossy().to_string()),
        "pool unmounted"
    );
    let _ = std::fs::remove_dir_all(&images);
}

/// Custom volumes through the real incus 6.0.4 client, on a dir pool and a btrfs pool: create
/// with pool defaults, show/info/list (snapshots listed as `custom (snapshot)`), set/unset,
/// attach to a running unprivileged container (content written in the container is owned by
/// root on the host: an idmapped mount), snapshot/restore (refused while in use by a running
/// instance), copy and move across pools with snapshots, rename following the devices, the
/// btrfs `size` quota holding in the container, delete refused while attached, volumes of a
/// project kept apart, and bad requests refused with nothing changed.
#[test]
fn custom_volumes_with_the_real_client() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED custom_volumes_with_the_real_client: set INCUS_TEST_PRIVILEGED=1 (as root)"
        );
        return;
    }
    let (d, images) = Daemon::with_busybox("volumes");
    let pools = d.dir.path().join("storage-pools");
    let _unmount = Unmount(pools.join("bv"));
    d.ok(&["storage", "create", "bv", "btrfs", "size=1GiB"]);
    let custom = |pool: &str, name: &str| pools.join(pool).join("custom").join(name);

    // Create, show, set/unset, info, list.
    assert_eq!(
        d.ok(&["storage", "volume", "create", "default", "v1", "user.k=1"]),
        "Storage volume v1 created\n"
    );
    let show = d.ok(&["storage", "volume", "show", "default", "v1"]);
    assert!(
        show.contains("user.k: \"1\"")
            && show.contains("type: custom")
            && show.contains("content_type: filesystem")
            && show.contains("used_by: []"),
        "{show}"
    );
    assert!(custom("default", "default_v1").is_dir());
    d.ok(&["storage", "volume", "set", "default", "v1", "user.k=2"]);
    assert_eq!(
        d.ok(&["storage", "volume", "get", "default", "v1", "user.k"]),
        "2\n"
    );
    d.ok(&["storage", "volume", "unset", "default", "v1", "user.k"]);
    assert_eq!(
        d.ok(&["storage", "volume", "get", "default", "v1", "user.k"]),
        "\n"
    );

    // Attached to a running unprivileged container: written as root inside, root-owned (not
    // shifted) on the host.
    d.ok(&["launch", "busybox", "c1"]);
    d.ok(&[
        "storage", "volume", "attach", "default", "v1", "c1", "/mnt/v",
    ]);
    assert!(
        d.ok(&["storage", "volume", "show", "default", "v1"])
            .contains("- /1.0/instances/c1")
    );
    d.ok(&["restart", "c1", "--force"]);
    d.ok(&["exec", "c1", "--", "sh", "-c", "echo one > /mnt/v/f"]);
    let f = custom("default", "default_v1").join("f");
    let md = std::fs::metadata(&f).expect("file written in the container");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&md),
        0,
        "unshifted on the host"
    );
    assert_eq!(
        d.ok(&["exec", "c1", "--", "stat", "-c", "%u", "/mnt/v/f"]),
        "0\n"
    );
    d.ok(&[
        "storage", "volume", "snapshot", "create", "default", "v1", "s1",
    ]);
    d.ok(&["exec", "c1", "--", "sh", "-c", "echo two > /mnt/v/f"]);
    let list = d.ok(&["storage", "volume", "list", "default", "--format", "csv"]);
    assert!(
        list.contains("custom,v1,,filesystem,1") && list.contains("custom (snapshot),v1/s1,"),
        "{list}"
    );
    let info = d.ok(&["storage", "volume", "info", "default", "v1"]);
    assert!(
        info.contains("Name: v1") && info.contains("Usage: ") && info.contains("| s1 "),
        "{info}"
    );
    // In use by a running instance: restore, rename and delete are refused.
    assert!(
        d.fails(&[
            "storage", "volume", "snapshot", "restore", "default", "v1", "s1"
        ])
        .contains("running")
    );
    assert!(
        d.fails(&["storage", "volume", "delete", "default", "v1"])
            .contains("in use")
    );
    d.ok(&["stop", "c1", "--force"]);
    d.ok(&[
        "storage", "volume", "snapshot", "restore", "default", "v1", "s1",
    ]);
    assert_eq!(std::fs::read_to_string(&f).expect("restored"), "one\n");
    // Rename: the instance's device follows.
    d.ok(&["storage", "volume", "rename", "default", "v1", "v2"]);
    assert!(
        d.ok(&["config", "device", "show", "c1"])
            .contains("source: v2")
    );
    d.ok(&["start", "c1"]);
    assert_eq!(d.ok(&["exec", "c1", "--", "cat", "/mnt/v/f"]), "one\n");
    d.ok(&["stop", "c1", "--force"]);
    d.ok(&["storage", "volume", "detach", "default", "v2", "c1"]);

    // Copy and move across drivers, with snapshots.
    assert!(
        d.ok(&["storage", "volume", "copy", "default/v2", "bv/v3"])
            .contains("copied successfully")
    );
    let bl = d.ok(&["storage", "volume", "list", "bv", "--format", "csv"]);
    assert!(
        bl.contains("custom,v3,") && bl.contains("custom (snapshot),v3/s1,"),
        "{bl}"
    );
    assert_eq!(
        std::fs::read_to_string(custom("bv", "default_v3").join("f")).expect("copied"),
        "one\n"
    );
    d.ok(&["storage", "volume", "move", "default/v2", "bv/v4"]);
    assert!(!custom("default", "default_v2").exists());
    assert!(
        pools.join("bv/custom-snapshots/default_v4/s1/f").exists(),
        "the moved snapshot"
    );
    d.ok(&["storage", "volume", "move", "bv/v4", "default/v5"]);
    d.ok(&["storage", "volume", "delete", "default", "v5"]);

    // A btrfs quota holds inside the container; the pool's volume.size is the default.
    d.ok(&["storage", "set", "bv", "volume.size=12MiB"]);
    d.ok(&["storage", "volume", "create", "bv", "q1"]);
    assert!(
        d.ok(&["storage", "volume", "get", "bv", "q1", "size"]) == "12MiB\n",
        "pool default"
    );
    d.ok(&["storage", "volume", "set", "bv", "q1", "size=8MiB"]);
    d.ok(&["storage", "volume", "attach", "bv", "q1", "c1", "/q"]);
    d.ok(&["start", "c1"]);
    let dd = d.incus(&[
        "exec",
        "c1",
        "--",
        "dd",
        "if=/dev/zero",
        "of=/q/big",
        "bs=1M",
        "count=20",
        "conv=fsync",
    ]);
    assert!(!dd.status.success(), "20 MiB written into an 8 MiB volume");
    assert!(
        d.ok(&["storage", "volume", "info", "bv", "q1"])
            .contains("Total: 8.00MiB")
    );
    d.ok(&["delete", "-f", "c1"]);
    d.ok(&["storage", "volume", "delete", "bv", "q1"]);
    d.ok(&["storage", "volume", "delete", "bv", "v3"]);

    // A project with its own volumes does not see the default project's.
    d.ok(&["project", "create", "p1"]);
    d.ok(&[
        "storage",
        "volume",
        "create",
        "default",
        "shared",
        "--project",
        "p1",
    ]);
    assert!(custom("default", "p1_shared").is_dir());
    assert!(
        !d.ok(&["storage", "volume", "list", "default", "--format", "csv"])
            .contains("shared")
    );
    assert!(
        d.fails(&["project", "delete", "p1"]).contains("not empty"),
        "a project holding a volume"
    );
    d.ok(&[
        "storage",
        "volume",
        "delete",
        "default",
        "shared",
        "--project",
        "p1",
    ]);
    d.ok(&["project", "delete", "p1"]);

    // Expired snapshots are pruned by the daemon (at start, then once a minute); one without
    // an expiry stays.
    let mut d = d;
    d.ok(&["storage", "volume", "create", "default", "ex"]);
    let sock = d.dir.path().join("unix.socket");
    let (code, _) = common::unix_request(
        &sock,
        "POST",
        "/1.0/storage-pools/default/volumes/custom/ex/snapshots",
        r#"{"name": "old", "expires_at": "2020-01-01T00:00:00Z"}"#,
    );
    assert_eq!(code, 202);
    d.ok(&[
        "storage", "volume", "snapshot", "create", "default", "ex", "keep",
    ]);
    d.signal_and_restart(nix::sys::signal::Signal::SIGTERM);
    d.ok(&["admin", "waitready", "--timeout", "20"]);
    let mut left = String::new();
    for _ in 0..100 {
        left = d.ok(&[
            "storage", "volume", "snapshot", "list", "default", "ex", "-f", "csv",
        ]);
        if !left.contains("old,") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!left.contains("old,") && left.contains("keep,"), "{left}");
    assert!(
        !pools
            .join("default/custom-snapshots/default_ex/old")
            .exists()
    );
    d.ok(&["storage", "volume", "delete", "default", "ex"]);

    // Bad requests: refused, nothing made.
    assert!(
        d.fails(&["storage", "volume", "create", "default", "x", "bogus=1"])
            .contains("bogus")
    );
    assert!(
        d.fails(&["storage", "volume", "create", "default", "x", "size=1GiB"])
            .contains("cannot enforce")
    );
    d.fails(&[
        "storage", "volume", "create", "default", "x", "--type", "block",
    ]);
    d.fails(&["storage", "volume", "create", "default", ".."]);
    d.fails(&["storage", "volume", "delete", "default", "missing"]);
    d.ok(&["init", "busybox", "c2"]);
    assert!(
        d.fails(&[
            "config",
            "device",
            "add",
            "c2",
            "v",
            "disk",
            "pool=default",
            "source=nope",
            "path=/v"
        ])
        .contains("not found")
    );
    d.ok(&["delete", "c2"]);
    let left = d.ok(&["storage", "volume", "list", "default", "--format", "csv"]);
    assert!(!left.contains("custom"), "{left}");
    assert_eq!(
        std::fs::read_dir(pools.join("default/custom"))
            .expect("custom dir")
            .count(),
        0
    );
    // A pool holding a volume cannot be deleted.
    d.ok(&["storage", "volume", "create", "bv", "keep"]);
    assert!(d.fails(&["storage", "delete", "bv"]).contains("in use"));
    d.ok(&["storage", "volume", "delete", "bv", "keep"]);
    d.ok(&["storage", "delete", "bv"]);
    let _ = std::fs::remove_dir_all(&images);
}

/// `incus export` and `incus import` with the real 6.0.4 client: Incus's tarball layout
/// (`backup/index.yaml`, `backup/snapshots/<s>/`, `backup/container/`) with unshifted ids, a
/// round trip under a new name keeping content, ownership and snapshots, `--instance-only`,
/// xz compression, an import onto a btrfs pool (`--storage`), and bad archives refused with
/// nothing left behind.
#[test]
fn export_and_import_with_the_real_client() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED export_and_import_with_the_real_client: set INCUS_TEST_PRIVILEGED=1 (as root)"
        );
        return;
    }
    let (d, images) = Daemon::with_busybox("backups");
    let pools = d.dir.path().join("storage-pools");
    let _unmount = Unmount(pools.join("bb"));
    let out = tempfile::tempdir().expect("tempdir");
    let file = |n: &str| out.path().join(n).to_str().expect("path").to_string();
    d.ok(&["launch", "busybox", "x1"]);
    d.ok(&[
        "exec",
        "x1",
        "--",
        "sh",
        "-c",
        "echo one > /root/f; chown 5:6 /root/f",
    ]);
    d.ok(&["snapshot", "create", "x1", "s0"]);
    d.ok(&["exec", "x1", "--", "sh", "-c", "echo second > /root/f"]);
    d.ok(&["export", "x1", &file("x1.tar.gz")]);
    let list = Command::new("tar")
        .args(["tzvf", &file("x1.tar.gz")])
        .output()
        .expect("tar");
    let list = String::from_utf8_lossy(&list.stdout);
    let first = list.lines().next().unwrap_or("");
    assert!(first.ends_with("backup/index.yaml"), "{first}");
    assert!(
        list.lines()
            .any(|l| l.contains(" 5/6 ") && l.ends_with("backup/container/rootfs/root/f")),
        "ids unshifted: {list}"
    );
    assert!(list.contains("backup/snapshots/s0/rootfs/root/f"));
    let index = Command::new("tar")
        .args(["xzf", &file("x1.tar.gz"), "-O", "backup/index.yaml"])
        .output()
        .expect("tar");
    let index = String::from_utf8_lossy(&index.stdout);
    assert!(
        index.contains("name: x1")
            && index.contains("backend: dir")
            && index.contains("type: container")
            && index.contains("- s0")
            && !index.contains("volatile.rootfs.pool"),
        "{index}"
    );
    // Round trip under a new name.
    d.ok(&["import", &file("x1.tar.gz"), "y1"]);
    d.ok(&["start", "y1"]);
    assert_eq!(d.ok(&["exec", "y1", "--", "cat", "/root/f"]), "second\n");
    assert_eq!(
        d.ok(&["exec", "y1", "--", "stat", "-c", "%u:%g", "/root/f"]),
        "5:6\n"
    );
    assert!(
        d.ok(&["snapshot", "list", "y1", "-f", "csv"])
            .starts_with("s0,")
    );
    d.ok(&["stop", "y1", "--force"]);
    d.ok(&["snapshot", "restore", "y1", "s0"]);
    d.ok(&["start", "y1"]);
    assert_eq!(d.ok(&["exec", "y1", "--", "cat", "/root/f"]), "one\n");
    // --instance-only with xz, onto a btrfs pool.
    d.ok(&["storage", "create", "bb", "btrfs", "size=1GiB"]);
    d.ok(&[
        "export",
        "x1",
        &file("x1.tar.xz"),
        "--instance-only",
        "--compression",
        "xz",
    ]);
    d.ok(&["import", &file("x1.tar.xz"), "z1", "--storage", "bb"]);
    assert_eq!(d.ok(&["snapshot", "list", "z1", "-f", "csv"]), "");
    assert!(pools.join("bb/containers/z1/rootfs/root/f").exists());
    d.ok(&["start", "z1"]);
    assert_eq!(d.ok(&["exec", "z1", "--", "cat", "/root/f"]), "second\n");
    // The export's backup is removed after the download, as the client asks.
    assert_eq!(d.ok(&["query", "/1.0/instances/x1/backups"]).trim(), "[]");
    // A kept backup is listed (also in recursion=2 listings) and follows a rename.
    d.ok(&[
        "query",
        "-X",
        "POST",
        "-d",
        r#"{"name": "keep"}"#,
        "--wait",
        "/1.0/instances/x1/backups",
    ]);
    assert!(
        d.ok(&["query", "/1.0/instances?recursion=2"])
            .contains("\"name\": \"keep\"")
    );
    d.ok(&["stop", "x1", "--force"]);
    d.ok(&["rename", "x1", "x2"]);
    assert!(
        d.ok(&["query", "/1.0/instances/x2/backups/keep"])
            .contains("\"instance_only\": false")
    );
    d.ok(&["rename", "x2", "x1"]);
    // Bad archives: refused, no instance, no volume.
    std::fs::write(out.path().join("junk.tar.gz"), b"not an archive").expect("write");
    d.fails(&["import", &file("junk.tar.gz"), "bad1"]);
    let evil = out.path().join("evil.tar");
    {
        let f = std::fs::File::create(&evil).expect("create");
        let mut b = tar::Builder::new(f);
        let mut h = tar::Header::new_gnu();
        let data = b"x";
        h.set_size(1);
        h.set_mode(0o644);
        // Written by hand: the tar crate refuses to build such a name.
        let name = b"backup/../../escaped";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &data[..]).expect("append");
        b.finish().expect("finish");
    }
    assert!(
        d.fails(&["import", evil.to_str().expect("path"), "bad2"])
            .contains(".."),
        "a path escaping the archive"
    );
    assert!(!d.dir.path().join("escaped").exists());
    assert!(
        !d.dir
            .path()
            .parent()
            .expect("parent")
            .join("escaped")
            .exists()
    );
    let names = d.ok(&["list", "-f", "csv", "-c", "n"]);
    assert_eq!(names, "x1\ny1\nz1\n");
    assert!(!pools.join("default/containers/bad1").exists());
    assert!(!pools.join("default/containers/bad2").exists());
    let leftovers: Vec<_> = std::fs::read_dir(d.dir.path().join("backups"))
        .expect("backups dir")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "instances")
        .collect();
    assert!(
        leftovers.is_empty(),
        "staging or uploads left: {leftovers:?}"
    );
    d.ok(&["delete", "-f", "x1", "y1", "z1"]);
    d.ok(&["storage", "delete", "bb"]);
    let _ = std::fs::remove_dir_all(&images);
}

/// A zfs pool (on zfs-fuse here) through the real incus 6.0.4 client: an unprivileged
/// container launched as a clone of the image dataset, the root `size` quota (`refquota`)
/// holding in the container, snapshot and restore of an older snapshot, a copy with
/// snapshots that runs, export with snapshots and import onto the pool, a custom volume
/// with a `size` attached (to a privileged container: zfs-fuse has no idmapped mounts), the
/// image deleted while an instance still uses it, and the zpool gone with the
/// pool. (zfs-fuse refuses `chown` from a container's root, a uid it sees as unprivileged;
/// kernel ZFS does not, so the test does not chown.)
#[test]
fn zfs_pool_with_the_real_client() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED zfs_pool_with_the_real_client: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    let zfs_up = Command::new("zpool")
        .arg("list")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !zfs_up {
        eprintln!(
            "SKIPPED zfs_pool_with_the_real_client: `zpool list` fails (start zfs-fuse, as \
             tests/run-tests.sh does)"
        );
        return;
    }
    let zpool = format!("incusd{}", std::process::id());
    struct Destroy(String);
    impl Drop for Destroy {
        fn drop(&mut self) {
            let _ = Command::new("zpool")
                .args(["destroy", "-f", &self.0])
                .stderr(Stdio::null())
                .status();
        }
    }
    // Declared before the daemon, so dropped after it (and its containers) stopped.
    let _destroy = Destroy(zpool.clone());
    let (d, images) = Daemon::with_busybox("zfs");
    let pool_name = format!("zfs.pool_name={zpool}");
    d.ok(&["storage", "create", "z1", "zfs", "size=1GiB", &pool_name]);
    assert!(
        d.ok(&["storage", "list", "--format", "csv"])
            .contains("z1,zfs,")
    );
    let zfs_list = || {
        let o = Command::new("zfs")
            .args(["list", "-H", "-r", "-t", "all", "-o", "name,origin", &zpool])
            .output()
            .expect("zfs list");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    d.ok(&["launch", "busybox", "z-a", "--storage", "z1"]);
    d.ok(&["config", "device", "set", "z-a", "root", "size=24MiB"]);
    let ds = zfs_list();
    assert!(
        ds.lines().any(
            |l| l.starts_with(&format!("{zpool}/containers/z-a\t{zpool}/images/"))
                && l.ends_with("@readonly")
        ),
        "the instance is a clone of the image: {ds}"
    );
    // The quota holds in the (restarted) container.
    d.ok(&["restart", "z-a"]);
    let write_mib = |inst: &str, file: &str, mib: u32| {
        let (of, count) = (format!("of=/root/{file}"), format!("count={mib}"));
        d.incus(&[
            "exec",
            inst,
            "--",
            "dd",
            "if=/dev/zero",
            &of,
            "bs=1M",
            &count,
        ])
        .status
        .success()
    };
    assert!(write_mib("z-a", "a", 4), "4 MiB within a 24 MiB quota");
    assert!(
        !write_mib("z-a", "b", 40),
        "40 MiB written past a 24 MiB quota"
    );
    d.ok(&["exec", "z-a", "--", "rm", "-f", "/root/b"]);
    // Snapshots, and the restore of an older one keeps the newer.
    d.ok(&["exec", "z-a", "--", "sh", "-c", "echo one > /root/mark"]);
    d.ok(&["snapshot", "create", "z-a", "s0"]);
    d.ok(&["exec", "z-a", "--", "sh", "-c", "echo two > /root/mark"]);
    d.ok(&["snapshot", "create", "z-a", "s1"]);
    d.ok(&["exec", "z-a", "--", "sh", "-c", "echo three > /root/mark"]);
    assert!(zfs_list().contains(&format!("{zpool}/containers/z-a@snapshot-s1")));
    d.ok(&["stop", "z-a", "--force"]);
    d.ok(&["snapshot", "restore", "z-a", "s0"]);
    d.ok(&["start", "z-a"]);
    assert_eq!(d.ok(&["exec", "z-a", "--", "cat", "/root/mark"]), "one\n");
    assert_eq!(
        d.ok(&["exec", "z-a", "--", "stat", "-c", "%u:%g", "/root/mark"]),
        "0:0\n",
        "written by the container's root, owned by it"
    );
    d.ok(&["snapshot", "restore", "z-a", "s1"]);
    assert_eq!(d.ok(&["exec", "z-a", "--", "cat", "/root/mark"]), "two\n");
    // A copy with its snapshots (send/receive), started.
    d.ok(&["copy", "z-a", "z-b"]);
    d.ok(&["start", "z-b"]);
    assert_eq!(d.ok(&["exec", "z-b", "--", "cat", "/root/mark"]), "two\n");
    let ds = zfs_list();
    assert!(
        ds.contains(&format!("{zpool}/containers/z-b@snapshot-s0\t-")),
        "{ds}"
    );
    assert!(
        ds.lines()
            .any(|l| l == format!("{zpool}/containers/z-b\t-")),
        "the copy is independent of its source: {ds}"
    );
    // Export with snapshots (each mounted for the read), import onto the pool.
    let out = tempfile::tempdir().expect("tempdir");
    let file = out.path().join("z-a.tar.gz");
    let file = file.to_str().expect("path");
    d.ok(&["export", "z-a", file]);
    d.ok(&["import", file, "z-c", "--storage", "z1"]);
    d.ok(&["start", "z-c"]);
    assert_eq!(d.ok(&["exec", "z-c", "--", "cat", "/root/mark"]), "two\n");
    assert_eq!(
        d.ok(&["snapshot", "list", "z-c", "--format", "csv", "-c", "n"]),
        "s0\ns1\n"
    );
    assert!(
        !zfs_list().contains("snapmounts/containers/"),
        "snapshots unmounted"
    );
    // A custom volume on the pool, attached.
    d.ok(&["storage", "volume", "create", "z1", "zv", "size=16MiB"]);
    // (zfs-fuse supports no idmapped mounts, which an unprivileged container needs for it.)
    d.ok(&[
        "launch",
        "busybox",
        "z-p",
        "--storage",
        "z1",
        "-c",
        "security.privileged=true",
    ]);
    d.ok(&["storage", "volume", "attach", "z1", "zv", "z-p", "/data"]);
    d.ok(&["restart", "z-p"]);
    d.ok(&["exec", "z-p", "--", "sh", "-c", "echo vol > /data/f"]);
    assert!(
        !write_mib("z-p", "../data/big", 40),
        "40 MiB written past the volume's 16 MiB"
    );
    assert!(zfs_list().contains(&format!("{zpool}/custom/default_zv\t-")));
    // The image goes while instances still use it; the last of them takes it along.
    let fp = d.ok(&["image", "list", "busybox", "--format", "csv", "-c", "F"]);
    d.ok(&["image", "delete", fp.trim()]);
    d.ok(&["restart", "z-a"]);
    d.ok(&["delete", "-f", "z-a", "z-b", "z-c", "z-p"]);
    d.ok(&["storage", "volume", "delete", "z1", "zv"]);
    let ds = zfs_list();
    assert!(
        !ds.contains("/containers/") && !ds.contains("/deleted/images/"),
        "{ds}"
    );
    d.ok(&["storage", "delete", "z1"]);
    assert!(!d.dir.path().join("disks/z1.img").exists());
    let pools = Command::new("zpool")
        .args(["list", "-H", "-o", "name"])
        .output()
        .expect("zpool");
    assert!(!String::from_utf8_lossy(&pools.stdout).contains(&zpool));
    let _ = std::fs::remove_dir_all(&images);
}

/// Custom volume backups through the real incus 6.0.4 client, as Incus's own test suite
/// checks them: `incus storage volume export` with and without snapshots (the tarball
/// layout), `import` under the same and a new name with the config and snapshot configs
/// kept, onto another driver (btrfs), backups over the API (named, listed, renamed,
/// following a volume rename, gone with the volume), expired backups removed when the
/// daemon starts, and bad archives refused with nothing left behind.
#[test]
fn volume_export_and_import_with_the_real_client() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED volume_export_and_import_with_the_real_client: set INCUS_TEST_PRIVILEGED=1 (as root)"
        );
        return;
    }
    let (mut d, images) = Daemon::with_busybox("volume-backups");
    let pools = d.dir.path().join("storage-pools");
    let _unmount = Unmount(pools.join("vb"));
    let out = tempfile::tempdir().expect("tempdir");
    let file = |n: &str| out.path().join(n).to_str().expect("path").to_string();
    let tar_list = |f: &str| {
        let o = Command::new("tar").args(["tzf", f]).output().expect("tar");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let tar_cat = |f: &str, member: &str| {
        let o = Command::new("tar")
            .args(["xzf", f, "-O", member])
            .output()
            .expect("tar");
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    d.ok(&["init", "busybox", "c1"]);
    d.ok(&["storage", "volume", "create", "default", "testvol"]);
    d.ok(&[
        "storage", "volume", "attach", "default", "testvol", "c1", "/mnt",
    ]);
    d.ok(&["start", "c1"]);
    let o = d.incus_stdin(&["file", "push", "-", "c1/mnt/test"], b"foo\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    d.ok(&[
        "storage",
        "volume",
        "set",
        "default",
        "testvol",
        "user.foo=test-snap0",
    ]);
    d.ok(&[
        "storage",
        "volume",
        "snapshot",
        "create",
        "default",
        "testvol",
        "test-snap0",
    ]);
    let o = d.incus_stdin(&["file", "push", "-", "c1/mnt/test"], b"bar\n");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    d.ok(&[
        "storage",
        "volume",
        "set",
        "default",
        "testvol",
        "user.foo=test-snap1",
    ]);
    d.ok(&[
        "storage",
        "volume",
        "snapshot",
        "create",
        "default",
        "testvol",
        "test-snap1",
    ]);
    d.ok(&[
        "storage",
        "volume",
        "set",
        "default",
        "testvol",
        "user.foo=post-test-snap1",
    ]);

    // Without snapshots.
    d.ok(&[
        "storage",
        "volume",
        "export",
        "default",
        "testvol",
        &file("testvol-only.tar.gz"),
        "--volume-only",
    ]);
    let list = tar_list(&file("testvol-only.tar.gz"));
    assert!(list.starts_with("backup/index.yaml\n"), "{list}");
    assert!(list.contains("backup/volume/test"), "{list}");
    assert!(!list.contains("volume-snapshots"), "{list}");
    assert_eq!(
        tar_cat(&file("testvol-only.tar.gz"), "backup/volume/test"),
        "bar\n"
    );
    let index = tar_cat(&file("testvol-only.tar.gz"), "backup/index.yaml");
    assert!(
        index.contains("name: testvol")
            && index.contains("type: custom")
            && !index.contains("- test-snap0"),
        "{index}"
    );
    // With snapshots.
    d.ok(&[
        "storage",
        "volume",
        "export",
        "default",
        "testvol",
        &file("testvol.tar.gz"),
    ]);
    let list = tar_list(&file("testvol.tar.gz"));
    assert!(
        list.contains("backup/volume-snapshots/test-snap0/test"),
        "{list}"
    );
    assert_eq!(
        tar_cat(
            &file("testvol.tar.gz"),
            "backup/volume-snapshots/test-snap0/test"
        ),
        "foo\n"
    );
    assert!(tar_cat(&file("testvol.tar.gz"), "backup/index.yaml").contains("- test-snap0"));
    // The client's temporary backups are gone.
    assert_eq!(
        d.ok(&[
            "query",
            "/1.0/storage-pools/default/volumes/custom/testvol/backups"
        ])
        .trim(),
        "[]"
    );

    // Import over a deleted volume, then under a new name.
    d.ok(&["stop", "-f", "c1"]);
    d.ok(&["storage", "volume", "detach", "default", "testvol", "c1"]);
    d.ok(&["storage", "volume", "delete", "default", "testvol"]);
    d.ok(&[
        "storage",
        "volume",
        "import",
        "default",
        &file("testvol.tar.gz"),
    ]);
    let get = |v: &str| d.ok(&["storage", "volume", "get", "default", v, "user.foo"]);
    assert_eq!(get("testvol"), "post-test-snap1\n");
    assert_eq!(get("testvol/test-snap0"), "test-snap0\n");
    assert_eq!(get("testvol/test-snap1"), "test-snap1\n");
    d.ok(&[
        "storage",
        "volume",
        "import",
        "default",
        &file("testvol.tar.gz"),
        "testvol2",
    ]);
    d.ok(&[
        "storage", "volume", "attach", "default", "testvol", "c1", "/mnt",
    ]);
    d.ok(&[
        "storage", "volume", "attach", "default", "testvol2", "c1", "/mnt2",
    ]);
    d.ok(&["start", "c1"]);
    assert_eq!(
        d.ok(&["exec", "c1", "--", "cat", "/mnt/test", "/mnt2/test"]),
        "bar\nbar\n"
    );
    // A restored snapshot holds its content.
    d.ok(&["stop", "-f", "c1"]);
    d.ok(&[
        "storage",
        "volume",
        "snapshot",
        "restore",
        "default",
        "testvol2",
        "test-snap0",
    ]);
    d.ok(&["start", "c1"]);
    assert_eq!(d.ok(&["exec", "c1", "--", "cat", "/mnt2/test"]), "foo\n");
    // Importing onto a name that exists is refused.
    assert!(
        d.fails(&[
            "storage",
            "volume",
            "import",
            "default",
            &file("testvol.tar.gz")
        ])
        .contains("already exists")
    );
    // Onto a btrfs pool.
    d.ok(&["storage", "create", "vb", "btrfs", "size=1GiB"]);
    d.ok(&[
        "storage",
        "volume",
        "import",
        "vb",
        &file("testvol.tar.gz"),
        "onbtrfs",
    ]);
    assert_eq!(
        std::fs::read_to_string(pools.join("vb/custom/default_onbtrfs/test")).expect("content"),
        "bar\n"
    );
    assert!(
        d.ok(&["storage", "volume", "show", "vb", "onbtrfs/test-snap0"])
            .contains("test-snap0")
    );
    // An instance backup is not a volume backup.
    d.ok(&["export", "c1", &file("c1.tar.gz"), "--instance-only"]);
    assert!(
        d.fails(&[
            "storage",
            "volume",
            "import",
            "default",
            &file("c1.tar.gz"),
            "notavol"
        ])
        .contains("Not a custom volume backup")
    );

    // Backups over the API: named, listed, renamed, following the volume's rename.
    let base = "/1.0/storage-pools/default/volumes/custom";
    d.ok(&[
        "query",
        "-X",
        "POST",
        "--wait",
        "-d",
        r#"{"name":"foo"}"#,
        &format!("{base}/testvol2/backups"),
    ]);
    assert!(
        d.ok(&["query", &format!("{base}/testvol2/backups")])
            .contains(&format!("{base}/testvol2/backups/foo"))
    );
    let kept = d
        .dir
        .path()
        .join("backups/custom/default/default_testvol2/foo");
    assert!(kept.exists());
    d.ok(&[
        "query",
        "-X",
        "POST",
        "--wait",
        "-d",
        r#"{"name":"foo2"}"#,
        &format!("{base}/testvol2/backups/foo"),
    ]);
    assert!(
        d.dir
            .path()
            .join("backups/custom/default/default_testvol2/foo2")
            .exists()
    );
    assert!(!kept.exists());
    assert!(
        d.fails(&[
            "query",
            "-X",
            "POST",
            "--wait",
            "-d",
            r#"{"name":"x"}"#,
            &format!("{base}/testvol2/backups/missing")
        ])
        .contains("not found")
    );
    d.ok(&["stop", "-f", "c1"]);
    d.ok(&["storage", "volume", "detach", "default", "testvol2", "c1"]);
    d.ok(&[
        "storage", "volume", "rename", "default", "testvol2", "testvol3",
    ]);
    assert!(
        d.ok(&["query", &format!("{base}/testvol3/backups/foo2")])
            .contains("\"volume_only\": false")
    );
    assert!(
        d.dir
            .path()
            .join("backups/custom/default/default_testvol3/foo2")
            .exists()
    );
    // An expired backup goes when the daemon starts (and every minute after).
    d.ok(&[
        "query",
        "-X",
        "POST",
        "--wait",
        "-d",
        r#"{"name":"old","expires_at":"2023-07-17T00:00:00Z"}"#,
        &format!("{base}/testvol3/backups"),
    ]);
    d.signal_and_restart(nix::sys::signal::Signal::SIGTERM);
    let mut names = String::new();
    for _ in 0..100 {
        names = d.ok(&["query", &format!("{base}/testvol3/backups")]);
        if !names.contains("/old") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !names.contains("/old") && names.contains("/foo2"),
        "{names}"
    );
    // Gone with the volume.
    d.ok(&["storage", "volume", "delete", "default", "testvol3"]);
    assert!(
        !d.dir
            .path()
            .join("backups/custom/default/default_testvol3")
            .exists()
    );

    // Bad archives: refused, nothing made, nothing left in backups/.
    std::fs::write(out.path().join("junk.tar.gz"), b"not an archive").expect("write");
    d.fails(&[
        "storage",
        "volume",
        "import",
        "default",
        &file("junk.tar.gz"),
        "junk",
    ]);
    let evil = out.path().join("evil.tar");
    {
        let f = std::fs::File::create(&evil).expect("create");
        let mut b = tar::Builder::new(f);
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        let name = b"backup/../../escaped";
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_cksum();
        b.append(&h, &b"x"[..]).expect("append");
        b.finish().expect("finish");
    }
    d.fails(&[
        "storage",
        "volume",
        "import",
        "default",
        evil.to_str().expect("path"),
        "evil",
    ]);
    assert!(
        !d.dir
            .path()
            .parent()
            .expect("parent")
            .join("escaped")
            .exists()
    );
    let vols = d.ok(&[
        "storage",
        "volume",
        "list",
        "default",
        "type=custom",
        "-f",
        "csv",
        "-c",
        "n",
    ]);
    assert!(
        !vols.contains("junk") && !vols.contains("evil") && !vols.contains("notavol"),
        "{vols}"
    );
    assert!(!pools.join("default/custom/default_junk").exists());
    let leftovers: Vec<_> = std::fs::read_dir(d.dir.path().join("backups"))
        .expect("backups dir")
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "instances" && n != "custom")
        .collect();
    assert!(
        leftovers.is_empty(),
        "staging or uploads left: {leftovers:?}"
    );
    d.ok(&["delete", "-f", "c1"]);
    d.ok(&["storage", "volume", "delete", "default", "testvol"]);
    d.ok(&["storage", "volume", "delete", "vb", "onbtrfs"]);
    d.ok(&["storage", "delete", "vb"]);
    let _ = std::fs::remove_dir_all(&images);
}

/// Instances between pools through the real incus 6.0.4 client: `incus copy --storage`
/// (a dir instance copied onto btrfs with its snapshots, and back) and `incus move
/// --storage` (with and without a new name, `--instance-only`), refused while running, the
/// old volume gone and the content, snapshots and restores intact.
#[test]
fn move_and_copy_between_pools_with_the_real_client() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED move_and_copy_between_pools_with_the_real_client: set INCUS_TEST_PRIVILEGED=1 (as root)"
        );
        return;
    }
    let (d, images) = Daemon::with_busybox("pool-moves");
    let pools = d.dir.path().join("storage-pools");
    let _unmount = Unmount(pools.join("mb"));
    d.ok(&["storage", "create", "mb", "btrfs", "size=1GiB"]);
    d.ok(&["launch", "busybox", "m1"]);
    d.ok(&[
        "exec",
        "m1",
        "--",
        "sh",
        "-c",
        "echo one > /root/f; chown 7:8 /root/f",
    ]);
    d.ok(&["snapshot", "create", "m1", "s0"]);
    d.ok(&["exec", "m1", "--", "sh", "-c", "echo two > /root/f"]);
    // A copy onto btrfs, from the running source.
    d.ok(&["copy", "m1", "k1", "--storage", "mb"]);
    assert!(pools.join("mb/containers/k1/rootfs/root/f").exists());
    assert!(pools.join("mb/containers-snapshots/k1/s0").exists());
    d.ok(&["start", "k1"]);
    assert_eq!(d.ok(&["exec", "k1", "--", "cat", "/root/f"]), "two\n");
    assert_eq!(
        d.ok(&["exec", "k1", "--", "stat", "-c", "%u:%g", "/root/f"]),
        "7:8\n"
    );
    d.ok(&["stop", "-f", "k1"]);
    d.ok(&["snapshot", "restore", "k1", "s0"]);
    d.ok(&["start", "k1"]);
    assert_eq!(d.ok(&["exec", "k1", "--", "cat", "/root/f"]), "one\n");
    // Moves: refused while running.
    let refused = d.fails(&["move", "m1", "--storage", "mb"]);
    assert!(refused.contains("must be stopped"), "{refused}");
    d.ok(&["stop", "-f", "m1"]);
    d.ok(&["move", "m1", "--storage", "mb"]);
    assert!(!pools.join("default/containers/m1").exists());
    assert!(pools.join("mb/containers/m1/rootfs/root/f").exists());
    let shown = d.ok(&["config", "device", "show", "m1"]);
    assert!(shown.contains("pool: mb"), "{shown}");
    assert!(
        d.ok(&["snapshot", "list", "m1", "-f", "csv"])
            .starts_with("s0,")
    );
    d.ok(&["start", "m1"]);
    assert_eq!(d.ok(&["exec", "m1", "--", "cat", "/root/f"]), "two\n");
    d.ok(&["stop", "-f", "m1"]);
    // Back to dir under a new name, without snapshots.
    d.ok(&[
        "move",
        "m1",
        "m2",
        "--storage",
        "default",
        "--instance-only",
    ]);
    assert!(!pools.join("mb/containers/m1").exists());
    assert!(!pools.join("mb/containers-snapshots/m1").exists());
    assert!(pools.join("default/containers/m2/rootfs/root/f").exists());
    assert_eq!(d.ok(&["snapshot", "list", "m2", "-f", "csv"]), "");
    d.ok(&["start", "m2"]);
    assert_eq!(d.ok(&["exec", "m2", "--", "cat", "/root/f"]), "two\n");
    let names = d.ok(&["list", "-f", "csv", "-c", "n"]);
    assert_eq!(names, "k1\nm2\n");
    d.ok(&["delete", "-f", "k1", "m2"]);
    d.ok(&["storage", "delete", "mb"]);
    let _ = std::fs::remove_dir_all(&images);
}
