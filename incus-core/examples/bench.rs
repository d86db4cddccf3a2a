//! Measures the engine on the local busybox image: create+start, `exec true`, forced stop and
//! delete (medians), then the resident memory of this process holding a `Host` with N running
//! containers and the memory of each container's liblxc monitor (outside this process).
//!
//! ```text
//! cargo run --release -p incus-core --example bench -- STATE_DIR IMAGE.tar.xz [N]
//! ```
//! Prints figures only; nothing here asserts a timing.

use incus_core::api;
use incus_core::drivers::DriverRegistry;
use incus_core::host::{Host, HostConfig, ImageImport};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn status_kib(pid: &str, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(key)
                    .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

fn pss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Pss:")
                    .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
            })
        })
        .unwrap_or(0)
}

async fn op(
    r: incus_core::Result<incus_core::host::Operation>,
) -> Result<(), Box<dyn std::error::Error>> {
    r?.wait().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(state), Some(image)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: bench STATE_DIR IMAGE.tar.xz [N]");
        std::process::exit(2);
    };
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
    let mut drivers = DriverRegistry::new();
    incus_storage::register_all(&mut drivers);
    let host = Host::open(HostConfig::new(state, drivers)).await?;
    let p = "default";
    if host.resolve_image(p, "busybox").is_err() {
        host.import_image(
            p,
            ImageImport {
                metadata: image.into(),
                aliases: vec!["busybox".into()],
                ..Default::default()
            },
        )
        .await?;
    }
    let req = |name: &str| api::InstancesPost {
        name: name.into(),
        source: api::InstanceSource {
            kind: "image".into(),
            alias: "busybox".into(),
            ..Default::default()
        },
        start: true,
        ..Default::default()
    };
    let stop = api::InstanceStatePut {
        action: "stop".into(),
        force: true,
        ..Default::default()
    };
    // Warm the image cache once.
    op(host.create_instance(p, req("warm")).await).await?;
    op(host.update_instance_state(p, "warm", stop.clone()).await).await?;
    op(host.delete_instance(p, "warm").await).await?;

    let (mut launch, mut exec, mut kill, mut delete, mut graceful) =
        (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..9 {
        let name = format!("b{i}");
        let t = Instant::now();
        op(host.create_instance(p, req(&name)).await).await?;
        launch.push(t.elapsed().as_secs_f64() * 1000.0);
        for _ in 0..5 {
            let t = Instant::now();
            let (code, _, _) = host.exec_output(p, &name, &["true"], b"").await?;
            exec.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(code, 0);
        }
        let t = Instant::now();
        if i % 2 == 0 {
            op(host.update_instance_state(p, &name, stop.clone()).await).await?;
            kill.push(t.elapsed().as_secs_f64() * 1000.0);
        } else {
            let s = api::InstanceStatePut {
                action: "stop".into(),
                timeout: 30,
                ..Default::default()
            };
            op(host.update_instance_state(p, &name, s).await).await?;
            graceful.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let t = Instant::now();
        op(host.delete_instance(p, &name).await).await?;
        delete.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    println!("launch (create+start) median: {:.1} ms", median(launch));
    println!("exec true median: {:.1} ms", median(exec));
    println!("forced stop median: {:.1} ms", median(kill));
    println!("graceful stop median: {:.1} ms", median(graceful));
    println!("delete median: {:.1} ms", median(delete));

    let rss_idle = status_kib("self", "VmRSS:");
    let t = Instant::now();
    for i in 0..n {
        op(host.create_instance(p, req(&format!("m{i}"))).await).await?;
    }
    println!(
        "{n} launches one after the other: {:.0} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    let t = Instant::now();
    let list = host.list_instances(Some(p)).await?;
    println!(
        "list_instances with {} running: {:.2} ms",
        list.len(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    let t = Instant::now();
    let full = host.list_instances_full(Some(p)).await?;
    println!(
        "list_instances_full (recursion=2) with {}: {:.2} ms",
        full.len(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    let t = Instant::now();
    host.instance_state(p, "m0").await?;
    println!(
        "instance_state of one running: {:.2} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
    println!(
        "this process: VmRSS {rss_idle} KiB before, {} KiB with {n} running",
        status_kib("self", "VmRSS:")
    );
    let lxcpath = host.state_dir().join("containers").display().to_string();
    let (mut rss, mut pss, mut count) = (0, 0, 0);
    for e in std::fs::read_dir("/proc")?.flatten() {
        let pid = e.file_name().to_string_lossy().to_string();
        let Ok(cmd) = std::fs::read_to_string(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        if cmd.starts_with("[lxc monitor]") && cmd.contains(&lxcpath) {
            rss += status_kib(&pid, "VmRSS:");
            pss += pss_kib(&pid);
            count += 1;
        }
    }
    if let (Some(r), Some(p)) = (rss.checked_div(count), pss.checked_div(count)) {
        println!(
            "per-container monitor (outside this process): RSS {r} KiB, PSS {p} KiB (over {count})"
        );
    }
    for i in 0..n {
        let name = format!("m{i}");
        op(host.update_instance_state(p, &name, stop.clone()).await).await?;
        op(host.delete_instance(p, &name).await).await?;
    }
    Ok(())
}
