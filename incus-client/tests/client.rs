//! The Rust client against our `incusd` (a private state directory): every typed method, on
//! real objects, including a console session on a running container. Needs root and liblxc,
//! so it runs only with INCUS_TEST_PRIVILEGED=1 (as CI does), and the workspace built
//! (`cargo test --workspace` builds `incusd`).

use incus_client::{Client, ConsoleIo, ErrorKind};
use incus_core::api;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    images: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // The daemon (ours, by pid), then the container it may have left running, through
        // the daemon binary's liblxc helper.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let logs = self.dir.path().join("logs/c1");
        if logs.join("init.pid").exists() {
            let _ = Command::new(incusd())
                .arg("forklxc")
                .arg("stop")
                .arg(self.dir.path().join("containers"))
                .arg("c1")
                .arg(logs.join("lxc.conf"))
                .arg(logs.join("lxc.log"))
                .status();
        }
        let _ = std::fs::remove_dir_all(&self.images);
    }
}

/// `incusd` beside this test's binary (`target/<profile>/deps/..`).
fn incusd() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary");
    let target = exe.parent().and_then(Path::parent).expect("target dir");
    let path = target.join("incusd");
    assert!(
        path.exists(),
        "{} is missing: build the workspace (`cargo test --workspace` does)",
        path.display()
    );
    path
}

fn start() -> Daemon {
    let dir = tempfile::Builder::new()
        .prefix("incus-client-test-")
        .tempdir()
        .expect("tempdir");
    let child = Command::new(incusd())
        .arg("--dir")
        .arg(dir.path())
        .stdout(Stdio::null())
        .spawn()
        .expect("start incusd");
    let images = std::env::temp_dir().join(format!("incus-client-images-{}", std::process::id()));
    incus_tests::build_busybox_images(&images);
    for _ in 0..400 {
        if dir.path().join("unix.socket").exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    Daemon { child, dir, images }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_methods_against_incusd() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED typed_methods_against_incusd: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    let d = start();
    let c = Client::new(d.dir.path().join("unix.socket")).expect("client");

    // Images: streamed upload with progress, then the typed image and alias methods.
    let unified = d.images.join("busybox.tar.xz");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    let progress: incus_client::Progress = std::sync::Arc::new(move |done, total| {
        sink.lock().expect("lock").push((done, total));
    });
    let fp = c
        .import_image_with_progress(&unified, None, false, Some(progress))
        .await
        .expect("import");
    let size = std::fs::metadata(&unified).expect("size").len();
    let calls = seen.lock().expect("lock").clone();
    assert_eq!(calls.last(), Some(&(size, size)), "progress {calls:?}");
    assert!(calls.windows(2).all(|w| w[0].0 < w[1].0));
    c.create_alias("busybox", &fp, "test image")
        .await
        .expect("alias");
    assert!(
        c.aliases()
            .await
            .expect("aliases")
            .iter()
            .any(|a| a.name == "busybox")
    );
    let (mut image, etag) = c.image(&fp).await.expect("image");
    image.put.properties.insert("user.k".into(), "v".into());
    c.update_image(&fp, &image.put, Some(&etag))
        .await
        .expect("update image");
    let stale = c.update_image(&fp, &image.put, Some(&etag)).await;
    assert_eq!(
        stale.map_err(|e| e.kind()),
        Err(ErrorKind::PreconditionFailed)
    );
    assert_eq!(
        c.export_image(&fp).await.expect("export"),
        std::fs::read(&unified).expect("file")
    );
    // A split image, streamed as multipart.
    let split = c
        .import_image(
            &d.images.join("busybox-split.meta.tar.xz"),
            Some(&d.images.join("busybox-split.rootfs.squashfs")),
            false,
        )
        .await
        .expect("split import");
    c.delete_image(&split).await.expect("delete split");
    assert_eq!(
        c.image(&split).await.map_err(|e| e.kind()).err(),
        Some(ErrorKind::NotFound)
    );

    // Profiles.
    let req = api::ProfilesPost {
        name: "p1".into(),
        put: api::ProfilePut {
            description: "first".into(),
            ..Default::default()
        },
    };
    c.create_profile(&req).await.expect("create profile");
    let (mut p, etag) = c.profile("p1").await.expect("profile");
    p.put.config.insert("user.x".into(), "1".into());
    c.update_profile("p1", &p.put, Some(&etag))
        .await
        .expect("update profile");
    c.rename_profile("p1", "p2").await.expect("rename profile");
    let names: Vec<String> = c
        .profiles()
        .await
        .expect("profiles")
        .into_iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(names, ["default", "p2"]);
    assert_eq!(
        c.profile("p2").await.expect("p2").0.put.config["user.x"],
        "1"
    );
    c.delete_profile("p2").await.expect("delete profile");

    // Projects.
    let req = api::ProjectsPost {
        name: "proj".into(),
        ..Default::default()
    };
    c.create_project(&req).await.expect("create project");
    let (mut proj, etag) = c.project_info("proj").await.expect("project");
    assert_eq!(proj.put.config["features.images"], "true");
    proj.put.description = "described".into();
    c.update_project("proj", &proj.put, Some(&etag))
        .await
        .expect("update project");
    c.rename_project("proj", "proj2")
        .await
        .expect("rename project");
    assert!(
        c.projects()
            .await
            .expect("projects")
            .iter()
            .any(|p| p.name == "proj2" && p.put.description == "described")
    );
    c.delete_project("proj2").await.expect("delete project");

    // Storage.
    let (mut pool, etag) = c.storage_pool("default").await.expect("pool");
    pool.put.config.insert("user.tier".into(), "fast".into());
    c.update_storage_pool("default", &pool.put, Some(&etag))
        .await
        .expect("update pool");
    let req = api::StoragePoolsPost {
        name: "extra".into(),
        driver: "dir".into(),
        ..Default::default()
    };
    c.create_storage_pool(&req).await.expect("create pool");
    assert_eq!(c.storage_pools().await.expect("pools").len(), 2);
    let res = c.storage_pool_resources("extra").await.expect("resources");
    assert!(
        res.space.total > 0 && res.space.used <= res.space.total,
        "{res:?}"
    );
    c.delete_storage_pool("extra").await.expect("delete pool");

    // An instance: volumes, metadata, templates, logs, console.
    let req = api::InstancesPost {
        name: "c1".into(),
        source: api::InstanceSource {
            kind: "image".into(),
            alias: "busybox".into(),
            ..Default::default()
        },
        start: true,
        ..Default::default()
    };
    let texts = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let sink = texts.clone();
    c.create_instance_with_progress(
        &req,
        std::sync::Arc::new(move |t| sink.lock().expect("lock").push(t.to_string())),
    )
    .await
    .expect("launch");
    // The first use of the image unpacks it, reported as Incus does.
    let texts = texts.lock().expect("lock").clone();
    assert!(
        texts
            .iter()
            .any(|t| t.starts_with("Unpacking image: 100% (")),
        "{texts:?}"
    );
    let vols = c.storage_volumes("default").await.expect("volumes");
    assert!(vols.iter().any(|v| v.kind == "container" && v.name == "c1"));
    assert!(vols.iter().any(|v| v.kind == "image" && v.name == fp));
    let (vol, _) = c
        .storage_volume("default", "container", "c1")
        .await
        .expect("volume");
    assert_eq!(vol.used_by, ["/1.0/instances/c1"]);
    // Custom volumes: create, snapshot, rename the snapshot, restore, copy, move, state,
    // delete.
    let req = api::StorageVolumesPost {
        name: "cv".into(),
        kind: "custom".into(),
        ..Default::default()
    };
    c.create_custom_volume("default", &req)
        .await
        .expect("create volume");
    let snap = api::StorageVolumeSnapshotsPost {
        name: "s0".into(),
        expires_at: None,
    };
    c.create_custom_volume_snapshot("default", "cv", &snap)
        .await
        .expect("volume snapshot");
    c.rename_custom_volume_snapshot("default", "cv", "s0", "s1")
        .await
        .expect("rename volume snapshot");
    let snaps = c
        .custom_volume_snapshots("default", "cv")
        .await
        .expect("volume snapshots");
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].name, "cv/s1");
    let (v, etag) = c
        .storage_volume("default", "custom", "cv")
        .await
        .expect("custom volume");
    let put = api::StorageVolumePut {
        restore: "s1".into(),
        ..v.put
    };
    c.update_custom_volume("default", "cv", &put, Some(&etag))
        .await
        .expect("restore");
    let copy = api::StorageVolumesPost {
        name: "cv2".into(),
        kind: "custom".into(),
        source: api::StorageVolumeSource {
            name: "cv".into(),
            kind: "copy".into(),
            pool: "default".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    c.create_custom_volume("default", &copy)
        .await
        .expect("copy");
    let mv = api::StorageVolumePost {
        name: "cv3".into(),
        ..Default::default()
    };
    c.post_custom_volume("default", "cv2", &mv)
        .await
        .expect("rename");
    let state = c
        .custom_volume_state("default", "cv3")
        .await
        .expect("volume state");
    assert!(state.usage.is_some());
    let err = c
        .delete_custom_volume("default", "nope")
        .await
        .expect_err("missing volume");
    assert_eq!(err.kind(), ErrorKind::NotFound);
    c.delete_custom_volume_snapshot("default", "cv", "s1")
        .await
        .expect("delete snapshot");
    c.delete_custom_volume("default", "cv")
        .await
        .expect("delete");
    c.delete_custom_volume("default", "cv3")
        .await
        .expect("delete");
    assert!(
        !c.storage_volumes("default")
            .await
            .expect("volumes")
            .iter()
            .any(|v| v.kind == "custom")
    );
    let (mut meta, etag) = c.instance_metadata("c1").await.expect("metadata");
    meta.properties
        .insert("description".into(), "changed".into());
    c.update_instance_metadata("c1", &meta, Some(&etag))
        .await
        .expect("update metadata");
    assert_eq!(
        c.instance_metadata("c1")
            .await
            .expect("metadata")
            .0
            .properties["description"],
        "changed"
    );
    c.put_instance_template(
        "c1",
        "hosts.tpl",
        b"127.0.0.1 {{ container.name }}\n".to_vec(),
    )
    .await
    .expect("template");
    assert!(
        c.instance_templates("c1")
            .await
            .expect("templates")
            .contains(&"hosts.tpl".to_string())
    );
    assert_eq!(
        c.instance_template("c1", "hosts.tpl")
            .await
            .expect("template"),
        b"127.0.0.1 {{ container.name }}\n"
    );
    c.delete_instance_template("c1", "hosts.tpl")
        .await
        .expect("delete template");
    let logs = c.instance_logs("c1").await.expect("logs");
    assert!(logs.contains(&"lxc.conf".to_string()), "{logs:?}");
    let conf = c.instance_log("c1", "lxc.conf").await.expect("lxc.conf");
    assert!(String::from_utf8_lossy(&conf).contains("lxc.uts.name = c1"));

    // Console: what the container writes on /dev/console reaches us; the session ends with
    // our input.
    let (input_w, input_r) = tokio::io::duplex(1024);
    let (output_w, mut output_r) = tokio::io::duplex(64 * 1024);
    let io = ConsoleIo {
        input: Box::new(input_r),
        output: Box::new(output_w),
        resize: None,
    };
    let session = {
        let c = c.clone();
        tokio::spawn(async move { c.console("c1", 80, 24, io).await })
    };
    // The mark is written again every 300 ms until it shows: the attach may still be under
    // way when the first one is written (it then reaches only the console log).
    let writer = {
        let c = c.clone();
        tokio::spawn(async move {
            loop {
                let args = incus_client::ExecArgs {
                    command: vec![
                        "sh".into(),
                        "-c".into(),
                        "echo client-console-mark > /dev/console".into(),
                    ],
                    ..Default::default()
                };
                let io = incus_client::ExecIo {
                    stdin: Box::new(tokio::io::empty()),
                    stdout: Box::new(tokio::io::sink()),
                    stderr: Box::new(tokio::io::sink()),
                    control: None,
                };
                assert_eq!(c.exec("c1", &args, io).await.expect("exec"), 0);
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
        })
    };
    let mut got = Vec::new();
    let found = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        loop {
            let n = output_r.read(&mut buf).await.expect("read");
            got.extend_from_slice(&buf[..n]);
            if String::from_utf8_lossy(&got).contains("client-console-mark") || n == 0 {
                break;
            }
        }
    })
    .await;
    writer.abort();
    assert!(
        found.is_ok(),
        "console output: {:?}",
        String::from_utf8_lossy(&got)
    );
    drop(input_w);
    tokio::time::timeout(std::time::Duration::from_secs(10), session)
        .await
        .expect("console ends with its input")
        .expect("join")
        .expect("console");
    // liblxc's monitor writes the console log file on its own schedule, possibly after it
    // forwarded the same bytes to the attached client: poll for a moment.
    let mut logged = false;
    for _ in 0..50 {
        if c.console_log("c1")
            .await
            .expect("log")
            .contains("client-console-mark")
        {
            logged = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(logged, "the console mark never reached the console log");
    c.clear_console_log("c1").await.expect("clear");
    assert_eq!(c.console_log("c1").await.expect("log"), "");

    // Operations, networks, warnings, resources, server.
    let ops = c.operations().await.expect("operations");
    assert!(
        ops.values()
            .flatten()
            .any(|o| o.description == "Showing console"),
        "{ops:?}"
    );
    let any = ops
        .values()
        .flatten()
        .next()
        .expect("an operation")
        .id
        .clone();
    assert_eq!(c.operation(&any).await.expect("operation").id, any);
    // A finished operation cannot be cancelled.
    assert!(c.cancel_operation(&any).await.is_err());
    c.create_alias("second", &fp, "").await.expect("alias");
    c.delete_alias("second").await.expect("delete alias");
    assert!(
        !c.aliases()
            .await
            .expect("aliases")
            .iter()
            .any(|a| a.name == "second")
    );
    assert!(
        c.networks()
            .await
            .expect("networks")
            .iter()
            .any(|n| n.name == "lo")
    );
    assert_eq!(c.network("lo").await.expect("lo").kind, "loopback");
    assert!(c.warnings().await.expect("warnings").is_empty());
    assert!(c.resources().await.expect("resources").cpu.total > 0);
    let (server, etag) = c.server().await.expect("server");
    c.update_server(&server.untrusted.put, Some(&etag))
        .await
        .expect("update server");
}
