//! Faults: `incusd` killed with SIGKILL at random points of create, copy, snapshot,
//! rename and delete, then restarted: the database and the disks must agree, no intent or operation
//! may be left, and a running container must still run. Also what a killed daemon leaves,
//! made by hand for every kind of object, and a full disk during image import and snapshot.
//! Runs with `INCUS_TEST_PRIVILEGED=1` (as root).
//!
//! `INCUS_CRASH_ROUNDS` (default 40) is the number of kills; `INCUS_CRASH_SEED` replays a
//! run (the seed is printed at the start).

mod common;

use common::{Daemon, Rng, spawn_incusd, unix_request};
use incus_core::host::db::{Db, Table};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn privileged(test: &str) -> bool {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() == Ok("1") {
        return true;
    }
    eprintln!("SKIPPED {test}: set INCUS_TEST_PRIVILEGED=1 (as root)");
    false
}

/// Waits for the operation of a 202 answer; returns its final JSON.
fn wait_op(sock: &Path, answer: &serde_json::Value) -> serde_json::Value {
    let id = answer["metadata"]["id"].as_str().expect("operation id");
    let (status, op) = unix_request(
        sock,
        "GET",
        &format!("/1.0/operations/{id}/wait?timeout=120"),
        "",
    );
    assert_eq!(status, 200, "{op}");
    op["metadata"].clone()
}

/// A request that must succeed (waiting for its operation, if any).
fn ok(sock: &Path, method: &str, path: &str, body: &str) -> serde_json::Value {
    let (status, answer) = unix_request(sock, method, path, body);
    match status {
        200 => answer,
        202 => {
            let op = wait_op(sock, &answer);
            assert_eq!(op["status"], "Success", "{method} {path}: {op}");
            op
        }
        _ => panic!("{method} {path}: {status} {answer}"),
    }
}

/// A request whose operation must fail; returns (HTTP status, error text).
fn fails(sock: &Path, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, answer) = unix_request(sock, method, path, body);
    if status == 202 {
        let op = wait_op(sock, &answer);
        assert_eq!(op["status"], "Failure", "{method} {path}: {op}");
        return (500, op["err"].as_str().unwrap_or_default().to_string());
    }
    assert!(status >= 400, "{method} {path}: {status} {answer}");
    (
        status,
        answer["error"].as_str().unwrap_or_default().to_string(),
    )
}

fn kill_and_wait(d: &mut Daemon) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(d.child.id()).expect("pid"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill incusd");
    let _ = d.child.wait();
}

/// Objects by name, as the database records them and as the disks hold them.
#[derive(Debug, Default, PartialEq, Eq)]
struct Objects {
    /// Instances of the default project.
    instances: BTreeSet<String>,
    /// `instance/snapshot`.
    snapshots: BTreeSet<String>,
    /// `pool/volume` (custom volumes).
    volumes: BTreeSet<String>,
    /// Image fingerprints (image files on disk).
    images: BTreeSet<String>,
}

/// What the database records, and how many intents it holds.
fn recorded(dir: &Path) -> (Objects, usize) {
    let db = Db::open(&dir.join("database")).expect("open the database");
    let names = |t: Table, project: &str| -> BTreeSet<String> {
        db.list_keyed::<serde_json::Value>(t, project)
            .expect("list")
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    let objects = Objects {
        instances: names(Table::Instances, "default"),
        snapshots: names(Table::Snapshots, "default"),
        volumes: names(Table::Volumes, "default"),
        images: names(Table::Images, "default"),
    };
    (objects, names(Table::Intents, "").len())
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// What the dir pool `default` and the image store hold. A snapshot directory of an
/// instance without a volume shows as `instance/` (an orphan).
fn on_disk(dir: &Path) -> Objects {
    let pool = dir.join("storage-pools/default");
    let mut o = Objects {
        instances: entries(&pool.join("containers")).into_iter().collect(),
        ..Default::default()
    };
    for inst in entries(&pool.join("containers-snapshots")) {
        let snaps = entries(&pool.join("containers-snapshots").join(&inst));
        if !o.instances.contains(&inst) {
            o.snapshots.insert(format!("{inst}/"));
        }
        o.snapshots
            .extend(snaps.into_iter().map(|s| format!("{inst}/{s}")));
    }
    for v in entries(&pool.join("custom")) {
        let name = v.strip_prefix("default_").unwrap_or(&v);
        o.volumes.insert(format!("default/{name}"));
    }
    for f in entries(&dir.join("images")) {
        o.images
            .insert(f.strip_suffix(".rootfs").unwrap_or(&f).to_string());
    }
    o
}

/// Entries under `root`, recursively (symbolic links not followed).
fn count(root: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            n += 1;
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    n
}

/// Checks that the database and the disks agree, that no intent is left and no operation
/// runs, and that every image volume on the pool belongs to an image.
fn assert_consistent(d: &Daemon, when: &str) {
    let dir = d.dir.path();
    let (db, intents) = recorded(dir);
    let disk = on_disk(dir);
    assert_eq!(intents, 0, "{when}: intents left");
    assert_eq!(db.instances, disk.instances, "{when}: instances");
    assert_eq!(db.snapshots, disk.snapshots, "{when}: snapshots");
    assert_eq!(db.volumes, disk.volumes, "{when}: custom volumes");
    assert_eq!(db.images, disk.images, "{when}: image files");
    for v in entries(&dir.join("storage-pools/default/images")) {
        assert!(
            db.images.contains(&v),
            "{when}: image volume {v} has no image"
        );
    }
    let sock = dir.join("unix.socket");
    let (_, ops) = unix_request(&sock, "GET", "/1.0/operations?recursion=1", "");
    assert!(
        ops["metadata"]["running"]
            .as_array()
            .is_none_or(|a| a.is_empty()),
        "{when}: operations still running: {ops}"
    );
}

fn status_of(sock: &Path, name: &str) -> String {
    let (_, st) = unix_request(sock, "GET", &format!("/1.0/instances/{name}/state"), "");
    st["metadata"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A daemon with the busybox image as `busybox`, a running container `c0`, and a stopped
/// container `src` holding 2000 more files (so copies and snapshots take a while).
fn setup(test: &str) -> (Daemon, tempfile::TempDir) {
    let images = common::image_dir(test);
    let d = Daemon::start();
    let out = common::incus(
        d.dir.path(),
        d.conf.path(),
        &[
            "image",
            "import",
            images.path().join("busybox.tar.xz").to_str().expect("path"),
            "--alias",
            "busybox",
        ],
        b"",
    );
    common::succeeded(&["image", "import"], out);
    let sock = d.dir.path().join("unix.socket");
    for (name, start) in [("c0", true), ("src", false)] {
        ok(
            &sock,
            "POST",
            "/1.0/instances",
            &format!(
                r#"{{"name":"{name}","source":{{"type":"image","alias":"busybox"}},"start":{start}}}"#
            ),
        );
    }
    let big = d
        .dir
        .path()
        .join("storage-pools/default/containers/src/rootfs/big");
    std::fs::create_dir(&big).expect("mkdir");
    for i in 0..2000 {
        std::fs::write(big.join(format!("f{i}")), format!("{i}\n").repeat(64)).expect("write");
    }
    assert_eq!(status_of(&sock, "c0"), "Running");
    (d, images)
}

#[test]
fn sigkill_at_random_points_of_create_copy_snapshot_rename_delete() {
    if !privileged("sigkill_at_random_points_of_create_copy_snapshot_rename_delete") {
        return;
    }
    let rounds: usize = std::env::var("INCUS_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    let seed = common::seed("INCUS_CRASH_SEED");
    eprintln!("crash seed {seed} (INCUS_CRASH_SEED to replay), {rounds} rounds");
    let mut rng = Rng(seed);
    let (mut d, _images) = setup("crash");
    let dir = d.dir.path().to_path_buf();
    let sock = dir.join("unix.socket");
    let pool = dir.join("storage-pools/default");
    // The complete sizes (a new instance from the image; `src`, for copies and snapshots)
    // and how long each action takes here: kills land anywhere from before it starts to
    // somewhat after it ends.
    let timed = |method: &str, path: &str, body: &str| {
        let t = std::time::Instant::now();
        ok(&sock, method, path, body);
        t.elapsed()
    };
    let mut took: BTreeMap<&str, Duration> = BTreeMap::new();
    took.insert(
        "create",
        timed(
            "POST",
            "/1.0/instances",
            r#"{"name":"ref","source":{"type":"image","alias":"busybox"}}"#,
        ),
    );
    let fresh = count(&pool.join("containers/ref"));
    let full = count(&pool.join("containers/src"));
    took.insert(
        "copy",
        timed(
            "POST",
            "/1.0/instances",
            r#"{"name":"ref2","source":{"type":"copy","source":"src"}}"#,
        ),
    );
    took.insert(
        "snapshot",
        timed("POST", "/1.0/instances/src/snapshots", r#"{"name":"ref"}"#),
    );
    took.insert(
        "delete-snapshot",
        timed("DELETE", "/1.0/instances/src/snapshots/ref", ""),
    );
    took.insert(
        "rename",
        timed("POST", "/1.0/instances/ref2", r#"{"name":"ref3"}"#),
    );
    took.insert("delete", timed("DELETE", "/1.0/instances/ref3", ""));
    ok(&sock, "DELETE", "/1.0/instances/ref", "");
    eprintln!("action durations: {took:?}");
    assert_consistent(&d, "before");

    // What each kill interrupted: action -> (kills, of which mid-action, outcomes).
    let mut tally: BTreeMap<&str, (usize, usize, BTreeMap<&str, usize>)> = BTreeMap::new();
    for round in 0..rounds {
        let (db, _) = recorded(&dir);
        let snaps: Vec<String> = db
            .snapshots
            .iter()
            .filter_map(|s| s.strip_prefix("src/").map(str::to_string))
            .collect();
        let others: Vec<String> = db
            .instances
            .iter()
            .filter(|n| *n != "c0" && *n != "src")
            .cloned()
            .collect();
        let action = [
            "create",
            "copy",
            "snapshot",
            "delete-snapshot",
            "delete",
            "rename",
        ][rng.below(6)];
        // An instance to delete or rename (made when there is none).
        let victim = || match others.first() {
            Some(n) => n.clone(),
            None => {
                let n = format!("k{round}");
                ok(
                    &sock,
                    "POST",
                    "/1.0/instances",
                    &format!(r#"{{"name":"{n}","source":{{"type":"copy","source":"src"}}}}"#),
                );
                n
            }
        };
        let size_of = |n: &str| if n.starts_with('k') { full } else { fresh };
        // The object the action makes or removes, and its complete size.
        let (object, size, request) = match action {
            "create" => {
                let n = format!("n{round}");
                let body =
                    format!(r#"{{"name":"{n}","source":{{"type":"image","alias":"busybox"}}}}"#);
                (n, fresh, ("POST", "/1.0/instances".to_string(), body))
            }
            "copy" => {
                let n = format!("k{round}");
                let body = format!(r#"{{"name":"{n}","source":{{"type":"copy","source":"src"}}}}"#);
                (n, full, ("POST", "/1.0/instances".to_string(), body))
            }
            "snapshot" => {
                let n = format!("s{round}");
                let body = format!(r#"{{"name":"{n}"}}"#);
                (
                    format!("src/{n}"),
                    full,
                    ("POST", "/1.0/instances/src/snapshots".to_string(), body),
                )
            }
            "delete-snapshot" => {
                let n = match snaps.first() {
                    Some(s) => s.clone(),
                    None => {
                        let n = format!("s{round}");
                        ok(
                            &sock,
                            "POST",
                            "/1.0/instances/src/snapshots",
                            &format!(r#"{{"name":"{n}"}}"#),
                        );
                        n
                    }
                };
                (
                    format!("src/{n}"),
                    full,
                    (
                        "DELETE",
                        format!("/1.0/instances/src/snapshots/{n}"),
                        String::new(),
                    ),
                )
            }
            "rename" => {
                let n = victim();
                // Renamed names keep their first letter, which tells their size.
                let to = format!("{}r{round}", &n[..1]);
                (
                    n.clone(),
                    size_of(&n),
                    (
                        "POST",
                        format!("/1.0/instances/{n}"),
                        format!(r#"{{"name":"{to}"}}"#),
                    ),
                )
            }
            _ => {
                let n = victim();
                (
                    n.clone(),
                    size_of(&n),
                    ("DELETE", format!("/1.0/instances/{n}"), String::new()),
                )
            }
        };
        let (method, path, body) = request;
        let (status, answer) = unix_request(&sock, method, &path, &body);
        assert_eq!(status, 202, "{action} {object}: {answer}");
        let span = took[action].as_millis() as usize * 13 / 10;
        std::thread::sleep(Duration::from_millis(rng.below(span.max(1)) as u64));
        kill_and_wait(&mut d);

        // Before the restart: was the action under way?
        let (_, intents) = recorded(&dir);
        d.child = spawn_incusd(&dir);
        let when = format!("round {round}, {action} {object}");
        assert_consistent(&d, &when);

        // The object is complete, or gone; a renamed one is under exactly one of its names.
        let (db, _) = recorded(&dir);
        let renamed_to = (action == "rename").then(|| format!("{}r{round}", &object[..1]));
        if let Some(to) = &renamed_to {
            let (old, new) = (db.instances.contains(&object), db.instances.contains(to));
            assert!(old != new, "{action} {object}: under both names or neither");
            assert_eq!(
                count(&pool.join("containers").join(if new { to } else { &object })),
                size,
                "round {round}: rename left the instance incomplete"
            );
        }
        let present = if action.contains("snapshot") {
            db.snapshots.contains(&object)
        } else {
            db.instances.contains(&object)
        };
        if present {
            let path = if action.contains("snapshot") {
                pool.join("containers-snapshots").join(&object)
            } else {
                pool.join("containers").join(&object)
            };
            assert_eq!(count(&path), size, "{when}: incomplete after the restart");
        }
        // A rename is done when the old name is gone.
        let outcome = match (action.starts_with("delete") || action == "rename", present) {
            (false, true) | (true, false) => "done",
            _ => "undone",
        };
        let t = tally.entry(action).or_default();
        t.0 += 1;
        t.1 += usize::from(intents > 0);
        *t.2.entry(outcome).or_default() += 1;
        assert_eq!(status_of(&sock, "c0"), "Running", "{when}: c0");
        // The name can be used again.
        if !present && !action.starts_with("delete") && action != "rename" {
            let retry = if action == "snapshot" {
                ("/1.0/instances/src/snapshots", body.clone())
            } else {
                ("/1.0/instances", body.clone())
            };
            ok(&sock, "POST", retry.0, &retry.1);
        }
        if round % 10 == 9 {
            let out = common::incus(
                &dir,
                d.conf.path(),
                &["exec", "c0", "--", "echo", "alive"],
                b"",
            );
            assert_eq!(common::succeeded(&["exec"], out).trim(), "alive", "{when}");
        }
    }
    eprintln!("kills by action (kills, mid-action, outcomes): {tally:?}");
    assert_consistent(&d, "after every round");
    let out = common::incus(
        &dir,
        d.conf.path(),
        &["exec", "c0", "--", "echo", "alive"],
        b"",
    );
    assert_eq!(common::succeeded(&["exec"], out).trim(), "alive");
}

/// Inserts an intent row as a killed daemon would have left it.
fn leave_intent(dir: &Path, key: &str, row: serde_json::Value) {
    let db = Db::open(&dir.join("database")).expect("open the database");
    db.insert(Table::Intents, "", key, &row)
        .expect("insert intent");
}

#[test]
fn what_a_killed_daemon_left_is_settled_on_start() {
    if !privileged("what_a_killed_daemon_left_is_settled_on_start") {
        return;
    }
    let (mut d, _images) = setup("settle");
    let dir = d.dir.path().to_path_buf();
    let sock = dir.join("unix.socket");
    let pool = dir.join("storage-pools/default");
    ok(
        &sock,
        "POST",
        "/1.0/instances",
        r#"{"name":"victim","source":{"type":"copy","source":"src"}}"#,
    );
    ok(
        &sock,
        "POST",
        "/1.0/instances/src/snapshots",
        r#"{"name":"keep"}"#,
    );
    ok(
        &sock,
        "POST",
        "/1.0/storage-pools/default/volumes/custom",
        r#"{"name":"vol1"}"#,
    );
    ok(
        &sock,
        "POST",
        "/1.0/storage-pools/default/volumes/custom/vol1/snapshots",
        r#"{"name":"vs"}"#,
    );
    for (name, from) in [("mover", "src"), ("walker", "src")] {
        ok(
            &sock,
            "POST",
            "/1.0/instances",
            &format!(r#"{{"name":"{name}","source":{{"type":"copy","source":"{from}"}}}}"#),
        );
    }
    ok(
        &sock,
        "POST",
        "/1.0/storage-pools/default/volumes/custom",
        r#"{"name":"vol2"}"#,
    );
    let (db, _) = recorded(&dir);
    assert!(db.snapshots.contains("mover/keep") && db.snapshots.contains("walker/keep"));
    let fp = db.images.iter().next().expect("image").clone();
    kill_and_wait(&mut d);

    // A create killed while copying: a volume no record owns.
    std::fs::create_dir_all(pool.join("containers/ghost/rootfs/bin")).expect("mkdir");
    leave_intent(
        &dir,
        "i1",
        serde_json::json!({"action":"create","object":"instance","project":"default","name":"ghost","pool":"default"}),
    );
    // A delete killed half-way: the record is there, part of the volume is gone.
    std::fs::remove_dir_all(pool.join("containers/victim/rootfs/big")).expect("rm");
    leave_intent(
        &dir,
        "i2",
        serde_json::json!({"action":"delete","object":"instance","project":"default","name":"victim","pool":"default"}),
    );
    // A snapshot killed while copying, and a finished one that must stay.
    std::fs::create_dir_all(pool.join("containers-snapshots/src/half/rootfs")).expect("mkdir");
    leave_intent(
        &dir,
        "i3",
        serde_json::json!({"action":"create","object":"instance-snapshot","project":"default","instance":"src","snapshot":"half","pool":"default"}),
    );
    // A custom volume delete killed after the disk, before the records.
    std::fs::remove_dir_all(pool.join("custom/default_vol1")).expect("rm");
    std::fs::remove_dir_all(pool.join("custom-snapshots/default_vol1")).expect("rm");
    leave_intent(
        &dir,
        "i4",
        serde_json::json!({"action":"delete","object":"custom-volume","project":"default","pool":"default","name":"vol1"}),
    );
    // An image unpack killed part-way: the unpacked image would be used half-done.
    std::fs::remove_dir_all(pool.join(format!("images/{fp}/rootfs/bin"))).expect("rm");
    leave_intent(
        &dir,
        "i5",
        serde_json::json!({"action":"unpack","object":"image-volume","pool":"default","fingerprint":fp}),
    );
    // A move's new copy whose record already points at it stays.
    leave_intent(
        &dir,
        "i6",
        serde_json::json!({"action":"move","object":"pool-copy","project":"default","name":"src","pool":"default"}),
    );
    // A rename killed after the driver moved the volume but not yet its snapshots, before
    // the records changed: the disks go back to the old name.
    std::fs::rename(pool.join("containers/mover"), pool.join("containers/moved")).expect("mv");
    leave_intent(
        &dir,
        "i8",
        serde_json::json!({"action":"rename","object":"instance-rename","project":"default","from":"mover","to":"moved","pool":"default"}),
    );
    // A rename whose records changed (one transaction) but whose volume did not move yet
    // (not the order the engine uses, but settling must not care): the disks follow.
    {
        let db = Db::open(&dir.join("database")).expect("open the database");
        let mut inst: serde_json::Value = db
            .get(Table::Instances, "default", "walker")
            .expect("get")
            .expect("walker");
        inst["name"] = "walked".into();
        let mut snap: serde_json::Value = db
            .get(Table::Snapshots, "default", "walker/keep")
            .expect("get")
            .expect("walker/keep");
        snap["instance"] = "walked".into();
        db.atomically(|w| {
            w.rename(Table::Instances, "default", "walker", "walked")?;
            w.update(Table::Instances, "default", "walked", &inst)?;
            w.rename(Table::Snapshots, "default", "walker/keep", "walked/keep")?;
            w.update(Table::Snapshots, "default", "walked/keep", &snap)
        })
        .expect("rename records");
    }
    leave_intent(
        &dir,
        "i9",
        serde_json::json!({"action":"rename","object":"instance-rename","project":"default","from":"walker","to":"walked","pool":"default"}),
    );
    // A custom volume rename killed after the disk, before the records.
    std::fs::rename(
        pool.join("custom/default_vol2"),
        pool.join("custom/default_vol3"),
    )
    .expect("mv");
    leave_intent(
        &dir,
        "i10",
        serde_json::json!({"action":"rename","object":"custom-volume-rename","project":"default","pool":"default","from":"vol2","to":"vol3"}),
    );
    // An intent on a pool that is gone cannot be settled: it stays, the daemon starts.
    leave_intent(
        &dir,
        "i7",
        serde_json::json!({"action":"create","object":"instance","project":"default","name":"x","pool":"nope"}),
    );
    // Files of an upload, a half copy, an image without a record.
    for f in [
        "upload-1234",
        "upload-1234.meta",
        "abc.incustmp",
        &"e".repeat(64),
    ] {
        std::fs::write(dir.join("images").join(f), b"partial").expect("write");
    }

    d.child = spawn_incusd(&dir);
    let (db, intents) = recorded(&dir);
    assert_eq!(intents, 1, "only the unsettleable intent stays");
    remove_intent(&dir, "i7");
    assert_consistent(&d, "after settling");
    let set = |v: &[&str]| {
        v.iter()
            .map(|s| s.to_string())
            .collect::<BTreeSet<String>>()
    };
    assert_eq!(db.instances, set(&["c0", "mover", "src", "walked"]));
    assert_eq!(
        db.snapshots,
        set(&["mover/keep", "src/keep", "walked/keep"])
    );
    assert_eq!(db.volumes, set(&["default/vol2"]));
    for renamed in ["mover", "walked"] {
        assert!(count(&pool.join("containers").join(renamed).join("rootfs/big")) >= 2000);
    }
    // Both work: the renamed one starts and answers.
    ok(
        &sock,
        "PUT",
        "/1.0/instances/walked/state",
        r#"{"action":"start"}"#,
    );
    let out = common::incus(&dir, d.conf.path(), &["exec", "walked", "--", "true"], b"");
    common::succeeded(&["exec walked"], out);
    ok(
        &sock,
        "PUT",
        "/1.0/instances/walked/state",
        r#"{"action":"stop","force":true}"#,
    );
    assert!(count(&pool.join("containers/src/rootfs/big")) >= 2000);
    assert!(!pool.join(format!("images/{fp}")).exists());
    // The image is unpacked again for the next instance, whole.
    ok(
        &sock,
        "POST",
        "/1.0/instances",
        r#"{"name":"again","source":{"type":"image","alias":"busybox"},"start":true}"#,
    );
    assert!(
        pool.join(format!("images/{fp}/rootfs/bin/busybox"))
            .exists()
    );
    let out = common::incus(&dir, d.conf.path(), &["exec", "again", "--", "true"], b"");
    common::succeeded(&["exec"], out);
    assert_eq!(status_of(&sock, "c0"), "Running");
    ok(
        &sock,
        "PUT",
        "/1.0/instances/again/state",
        r#"{"action":"stop","force":true}"#,
    );
    ok(&sock, "DELETE", "/1.0/instances/again", "");
    assert_consistent(&d, "at the end");
}

fn remove_intent(dir: &Path, key: &str) {
    let db = Db::open(&dir.join("database")).expect("open the database");
    db.delete(Table::Intents, "", key).expect("delete intent");
}

/// A tmpfs of `size` mounted on a new directory; unmounted (lazily) when dropped.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn new(size: &str) -> SmallDisk {
        let dir = tempfile::Builder::new()
            .prefix("incusd-test-full-")
            .tempdir()
            .expect("tempdir");
        let st = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0711"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(st.success(), "mount a tmpfs");
        SmallDisk { dir }
    }

    /// Bytes free.
    fn free(&self) -> u64 {
        let st = nix::sys::statvfs::statvfs(self.dir.path()).expect("statvfs");
        st.blocks_available() * st.fragment_size()
    }

    /// Fills the disk with `filler` until `leave` bytes are free.
    fn fill(&self, filler: &Path, leave: u64) {
        let _ = std::fs::remove_file(filler);
        let bytes = self.free().saturating_sub(leave);
        let st = std::process::Command::new("fallocate")
            .args(["-l", &bytes.to_string()])
            .arg(filler)
            .status()
            .expect("fallocate");
        assert!(st.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Asserts that the state directory holds what it held (`before`), naming the differences.
fn assert_unchanged(state: &Path, before: &BTreeSet<PathBuf>, what: &str) {
    let now = tree(state);
    let added: Vec<_> = now.difference(before).collect();
    let removed: Vec<_> = before.difference(&now).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "{what}: left behind {added:?}, removed {removed:?}"
    );
}

/// Lists what the state directory holds, as relative paths (for "nothing left behind").
fn tree(root: &Path) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).expect("under root").to_path_buf();
            // The database's own files change with every request.
            if rel.starts_with("database") || rel.starts_with("logs") {
                continue;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(p);
            }
            out.insert(rel);
        }
    }
    out
}

#[test]
fn disk_full_during_image_import_and_snapshot() {
    if !privileged("disk_full_during_image_import_and_snapshot") {
        return;
    }
    let images = common::image_dir("full");
    let disk = SmallDisk::new("64m");
    // The daemon's state directory on the small disk; dropped (daemon and containers
    // stopped, directory removed) before the disk is unmounted.
    let state_dir = tempfile::Builder::new()
        .prefix("state-")
        .tempdir_in(disk.dir.path())
        .expect("tempdir");
    let state = state_dir.path().to_path_buf();
    let filler = disk.dir.path().join("filler");
    let d = Daemon {
        child: spawn_incusd(&state),
        dir: state_dir,
        conf: tempfile::tempdir().expect("tempdir"),
    };
    let sock = state.join("unix.socket");
    let client = |args: &[&str]| common::incus(&state, d.conf.path(), args, b"");
    let unified = images.path().join("busybox.tar.xz");
    let unified = unified.to_str().expect("path");
    common::succeeded(
        &["image", "import"],
        client(&["image", "import", unified, "--alias", "busybox"]),
    );
    ok(
        &sock,
        "POST",
        "/1.0/instances",
        r#"{"name":"c1","source":{"type":"image","alias":"busybox"},"start":true}"#,
    );
    // 4 MiB of data in c1, so a snapshot needs that much room.
    let data = state.join("storage-pools/default/containers/c1/rootfs/data");
    std::fs::write(&data, vec![7u8; 4 << 20]).expect("write");

    // Image import with 256 KiB free: the upload cannot be stored.
    disk.fill(&filler, 256 << 10);
    let before = tree(&state);
    let split = [
        images.path().join("busybox-split.meta.tar.xz"),
        images.path().join("busybox-split.rootfs.squashfs"),
    ];
    let split = split.each_ref().map(|p| p.to_str().expect("path"));
    let out = client(&["image", "import", split[0], split[1], "--alias", "split"]);
    let err = common::failed(&["image", "import"], out);
    eprintln!("image import on a full disk: {}", err.trim());
    assert!(err.contains("No space left on device"), "{err}");
    assert_unchanged(&state, &before, "image import left files behind");
    let out = client(&["image", "import", unified, "--alias", "again"]);
    let err = common::failed(&["image", "import"], out);
    assert!(err.contains("No space left on device"), "{err}");
    assert_unchanged(&state, &before, "image import left files behind");
    let listed = client(&["image", "list", "--format", "csv", "-c", "l"]);
    assert_eq!(
        common::succeeded(&["image", "list"], listed).trim(),
        "busybox"
    );

    // A snapshot with 1 MiB free: the copy fails part-way, nothing of it stays.
    disk.fill(&filler, 1 << 20);
    let before = tree(&state);
    // A request that must fail with an error naming the full disk and change nothing.
    let refused = |path: &str, body: &str, what: &str| {
        let (_, err) = fails(&sock, "POST", path, body);
        eprintln!("{what}: {err}");
        assert!(
            err.contains("No space left on device") || err.contains("disk is full"),
            "{what}: {err}"
        );
        assert_unchanged(&state, &before, what);
    };
    let snapshot = ("/1.0/instances/c1/snapshots", r#"{"name":"s1"}"#);
    refused(snapshot.0, snapshot.1, "snapshot on a full disk");
    let (_, snaps) = unix_request(&sock, "GET", "/1.0/instances/c1/snapshots", "");
    assert_eq!(snaps["metadata"], serde_json::json!([]), "{snaps}");
    refused(
        "/1.0/instances",
        r#"{"name":"c2","source":{"type":"copy","source":"c1"}}"#,
        "copy on a full disk",
    );
    // With no byte free, even the database cannot grow: a clear error, nothing changed.
    disk.fill(&filler, 0);
    refused(snapshot.0, snapshot.1, "snapshot with no byte free");

    // The database is intact and the daemon still works: with room again, all succeed.
    let (_, intents) = recorded(&state);
    assert_eq!(intents, 0);
    std::fs::remove_file(&filler).expect("rm filler");
    let out = client(&["image", "import", split[0], split[1], "--alias", "split"]);
    common::succeeded(&["image", "import"], out);
    ok(
        &sock,
        "POST",
        "/1.0/instances/c1/snapshots",
        r#"{"name":"s1"}"#,
    );
    let out = client(&["exec", "c1", "--", "echo", "alive"]);
    assert_eq!(common::succeeded(&["exec"], out).trim(), "alive");
    ok(
        &sock,
        "PUT",
        "/1.0/instances/c1/state",
        r#"{"action":"stop","force":true}"#,
    );
    drop(d);
    drop(disk);
}
