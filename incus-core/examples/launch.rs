//! Launches a busybox container with the embedded engine, runs a command in it, snapshots
//! it, changes a file, restores the snapshot and deletes the container.
//!
//! ```text
//! cargo run -p incus-core --example launch -- STATE_DIR IMAGE.tar.xz
//! ```
//!
//! The image is a unified Incus image (see `tests/images/mk-busybox-image.sh`). Needs root.

use incus_core::api;
use incus_core::drivers::DriverRegistry;
use incus_core::host::{FileAttrs, FileContent, FilePut, Host, HostConfig, ImageImport};
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(state), Some(image)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: launch STATE_DIR IMAGE.tar.xz");
        std::process::exit(2);
    };
    let mut drivers = DriverRegistry::new();
    incus_storage::register_all(&mut drivers);
    let host = Host::open(HostConfig::new(state, drivers)).await?;
    let project = "default";

    let img = match host.resolve_image(project, "busybox") {
        Ok(img) => img,
        Err(_) => {
            let req = ImageImport {
                metadata: image.into(),
                aliases: vec!["busybox".into()],
                ..Default::default()
            };
            host.import_image(project, req).await?
        }
    };
    println!("image busybox: {}", &img.fingerprint[..12]);

    let name = format!("example-{}", std::process::id());
    let t = Instant::now();
    let req = api::InstancesPost {
        name: name.clone(),
        source: api::InstanceSource {
            kind: "image".into(),
            alias: "busybox".into(),
            ..Default::default()
        },
        start: true,
        ..Default::default()
    };
    host.create_instance(project, req).await?.wait().await?;
    println!("launched {name} in {} ms", t.elapsed().as_millis());

    let (code, out, _) = host
        .exec_output(
            project,
            &name,
            &["sh", "-c", "echo hello from $(hostname)"],
            b"",
        )
        .await?;
    print!("exec (exit {code}): {}", String::from_utf8_lossy(&out));

    let snap = api::InstanceSnapshotsPost {
        name: "before".into(),
        ..Default::default()
    };
    host.create_snapshot(project, &name, snap)
        .await?
        .wait()
        .await?;
    let put = FilePut::File {
        data: b"changed\n".to_vec(),
        append: false,
    };
    host.file_put(
        project,
        &name,
        "/etc/motd",
        put,
        FileAttrs {
            mode: Some(0o644),
            ..Default::default()
        },
    )
    .await?;
    host.restore_snapshot(project, &name, "before")
        .await?
        .wait()
        .await?;
    let restored = matches!(host.file_get(project, &name, "/etc/motd").await, Err(e) if e.kind() == incus_core::ErrorKind::NotFound);
    println!("snapshot restored (file gone again): {restored}");
    if let Ok(FileContent::File { data, .. }) = host.file_get(project, &name, "/etc/hostname").await
    {
        print!("/etc/hostname: {}", String::from_utf8_lossy(&data));
    }

    let stop = api::InstanceStatePut {
        action: "stop".into(),
        force: true,
        ..Default::default()
    };
    host.update_instance_state(project, &name, stop)
        .await?
        .wait()
        .await?;
    host.delete_instance(project, &name).await?.wait().await?;
    println!("deleted {name}");
    Ok(())
}
