//! 100 concurrent clients against one `incusd` for a bounded time (`INCUS_LOAD_SECONDS`,
//! default 20), over the unix socket and over HTTPS: listings, state reads, exec, requests
//! that must fail (404), and lifecycle work on containers of their own (create, start,
//! snapshot, stop, delete). Afterwards: no error beyond the requested ones, no file
//! descriptor left open, memory back near its baseline, and no operation left running. The
//! figures (requests, latencies, descriptors, memory) are printed for `docs/hardening.md`;
//! nothing is asserted about time. Runs with `INCUS_TEST_PRIVILEGED=1` (as root).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::Daemon;
use incus_client::Client;

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A memory figure of `/proc/<pid>/status` in KiB (`VmRSS`, `RssAnon`, `RssFile`).
fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.split(':').next() == Some(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Resident memory in KiB.
fn rss(pid: u32) -> u64 {
    status_kib(pid, "VmRSS")
}

/// Resident memory split into anonymous (heap, stacks) and file-backed (the program's own
/// pages, libraries), for the report.
fn rss_split(pid: u32) -> String {
    format!(
        "anonymous {} KiB, file-backed {} KiB",
        status_kib(pid, "RssAnon"),
        status_kib(pid, "RssFile")
    )
}

#[derive(Default)]
struct Tally {
    ok: AtomicUsize,
    expected_errors: AtomicUsize,
    unexpected: std::sync::Mutex<Vec<String>>,
    latencies: std::sync::Mutex<Vec<(&'static str, Duration)>>,
}

impl Tally {
    fn record<T>(&self, kind: &'static str, started: Instant, r: incus_client::Result<T>) {
        self.latencies
            .lock()
            .expect("lock")
            .push((kind, started.elapsed()));
        match r {
            Ok(_) => {
                self.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => self
                .unexpected
                .lock()
                .expect("lock")
                .push(format!("{kind}: {e}")),
        }
    }
}

async fn exec_echo(c: &Client, name: &str) -> incus_client::Result<()> {
    let (code, out) = common::exec_output(c, name, &["echo", "load"]).await?;
    if code != 0 || out != "load\n" {
        return Err(incus_client::Error::internal(format!(
            "exec gave {code} {out:?}"
        )));
    }
    Ok(())
}

/// One client's loop until `until`: `id` decides its mix.
async fn client_loop(id: usize, c: Client, until: Instant, tally: Arc<Tally>) {
    let mut i = 0usize;
    while Instant::now() < until {
        i += 1;
        let t = Instant::now();
        if id.is_multiple_of(10) {
            // Lifecycle: a container of its own, made, started, snapshotted, stopped, deleted.
            let name = format!("lc{id}-{i}");
            let body = serde_json::json!({
                "name": name, "source": {"type": "image", "alias": "busybox"}, "start": true,
            });
            let r = c.send("POST", "/1.0/instances", &body, None).await;
            tally.record("create+start", t, r);
            let t = Instant::now();
            tally.record("snapshot", t, c.create_snapshot(&name, "s0").await);
            let t = Instant::now();
            let stopped = c.set_state(&name, "stop", true, -1).await;
            if stopped.is_err() {
                // Say why: the container's state and log.
                let state = c.instance_state(&name).await.map(|s| s.status);
                let log = c
                    .get_raw(&format!("/1.0/instances/{name}/logs/lxc.log"))
                    .await
                    .map(|(_, b)| String::from_utf8_lossy(&b).into_owned());
                eprintln!("load: stop of {name} failed; state {state:?}; log {log:?}");
            }
            tally.record("stop", t, stopped);
            let t = Instant::now();
            tally.record("delete", t, c.delete_instance(&name).await);
            continue;
        }
        match i % 4 {
            0 => tally.record("list", t, c.instances_full(None).await),
            1 => tally.record("state", t, c.instance_state("busy0").await),
            2 => tally.record("exec", t, exec_echo(&c, &format!("busy{}", id % 3)).await),
            _ => match c.instance("missing").await {
                Err(e) if e.kind() == incus_client::ErrorKind::NotFound => {
                    tally.expected_errors.fetch_add(1, Ordering::Relaxed);
                }
                other => tally.record("missing", t, other.map(|_| ())),
            },
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[test]
fn hundred_clients() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED hundred_clients: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    let seconds: u64 = std::env::var("INCUS_LOAD_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let d = Daemon::start();
    let pid = d.child.id();
    let images = common::image_dir("load");
    let cli = |args: &[&str]| {
        common::succeeded(
            args,
            common::run_client(&common::our_cli(), d.dir.path(), d.conf.path(), args, b""),
        )
    };
    cli(&[
        "image",
        "import",
        images.path().join("busybox.tar.xz").to_str().expect("path"),
        "--alias",
        "busybox",
    ]);
    for i in 0..3 {
        cli(&["launch", "busybox", &format!("busy{i}")]);
    }
    let port = common::free_port();
    cli(&[
        "config",
        "set",
        "core.https_address",
        &format!("127.0.0.1:{port}"),
    ]);
    // An HTTPS identity for a fifth of the clients.
    let id_dir = tempfile::tempdir().expect("tempdir");
    let tls = common::trusted_identity(&d, id_dir.path(), cli);
    let socket = d.dir.path().join("unix.socket");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    // Warm-up: one of each action, so lazily opened resources count in the baseline.
    rt.block_on(async {
        let c = Client::new(&socket).expect("client");
        c.instances_full(None).await.expect("list");
        exec_echo(&c, "busy0").await.expect("exec");
        let h = Client::https(&format!("https://127.0.0.1:{port}"), &tls).expect("https");
        h.instances_full(None).await.expect("list over https");
    });
    std::thread::sleep(Duration::from_secs(1));
    let (fds_before, rss_before) = (fds(pid), rss(pid));
    println!("load: before: RSS {rss_before} KiB ({})", rss_split(pid));

    let tally = Arc::new(Tally::default());
    let peak_rss = Arc::new(std::sync::atomic::AtomicU64::new(rss_before));
    let started = Instant::now();
    let rounds: usize = std::env::var("INCUS_LOAD_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    for round in 0..rounds {
        rt.block_on(async {
            let until = Instant::now() + Duration::from_secs(seconds);
            let mut tasks = Vec::new();
            for id in 0..100 {
                let c = if id % 5 == 4 {
                    Client::https(&format!("https://127.0.0.1:{port}"), &tls).expect("https")
                } else {
                    Client::new(&socket).expect("client")
                };
                tasks.push(tokio::spawn(client_loop(id, c, until, tally.clone())));
            }
            let peak = peak_rss.clone();
            let sampler = tokio::spawn(async move {
                loop {
                    peak.fetch_max(rss(pid), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
            for t in tasks {
                t.await.expect("client task");
            }
            sampler.abort();
        });
        if round + 1 < rounds {
            // Past the daemon's next allocator trim; the clients' idle connections stay open.
            std::thread::sleep(Duration::from_secs(16));
            println!(
                "load: after round {round}: fds {}, RSS {} KiB ({})",
                fds(pid),
                rss(pid),
                rss_split(pid)
            );
        }
    }
    let elapsed = started.elapsed();
    drop(rt);
    // Let connections close, operations be reaped and the daemon give back freed memory
    // (it trims the allocator every 15 s).
    let mut settled = (fds(pid), rss(pid));
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(500));
        settled = (fds(pid), rss(pid));
        if settled.0 <= fds_before && settled.1 <= rss_before + 16 * 1024 {
            break;
        }
    }
    let (fds_after, rss_after) = settled;

    let lat = tally.latencies.lock().expect("lock").clone();
    let mut kinds: Vec<&str> = lat.iter().map(|(k, _)| *k).collect();
    kinds.sort();
    kinds.dedup();
    println!(
        "load: 100 clients (80 unix, 20 https) for {:.1}s: {} requests ok, {} expected 404s, {} unexpected errors",
        elapsed.as_secs_f64(),
        tally.ok.load(Ordering::Relaxed),
        tally.expected_errors.load(Ordering::Relaxed),
        tally.unexpected.lock().expect("lock").len()
    );
    for k in kinds {
        let mut v: Vec<Duration> = lat
            .iter()
            .filter(|(n, _)| *n == k)
            .map(|(_, d)| *d)
            .collect();
        v.sort();
        println!(
            "load: {k:13} n={:6} p50={:8.1}ms p99={:8.1}ms max={:8.1}ms",
            v.len(),
            percentile(&v, 0.5).as_secs_f64() * 1e3,
            percentile(&v, 0.99).as_secs_f64() * 1e3,
            v.last().copied().unwrap_or_default().as_secs_f64() * 1e3
        );
    }
    println!(
        "load: daemon fds {fds_before} before, {fds_after} after; RSS {} KiB before, {} KiB peak, {} KiB after",
        rss_before,
        peak_rss.load(Ordering::Relaxed),
        rss_after
    );
    println!("load: after: {}", rss_split(pid));

    let unexpected = tally.unexpected.lock().expect("lock").clone();
    assert!(
        unexpected.is_empty(),
        "{} unexpected errors, first: {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(5)]
    );
    assert!(tally.ok.load(Ordering::Relaxed) > 100);
    assert!(
        fds_after <= fds_before,
        "file descriptors leaked: {fds_before} before, {fds_after} after"
    );
    // Memory back near its baseline: within 32 MiB (allocator caches), far below the peak
    // growth a leak of per-request state would leave.
    assert!(
        rss_after <= rss_before + 32 * 1024,
        "memory not back: {rss_before} KiB before, {rss_after} KiB after"
    );
    // Nothing left running, and only the three long-lived containers remain.
    let ops = cli(&["operation", "list", "-f", "csv"]);
    assert!(!ops.contains("RUNNING"), "{ops}");
    let list = cli(&["list", "-c", "n", "-f", "csv"]);
    assert_eq!(list.lines().count(), 3, "{list}");
    for i in 0..3 {
        cli(&["delete", "-f", &format!("busy{i}")]);
    }
}
