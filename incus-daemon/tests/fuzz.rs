//! Bounded-time mutation fuzzing of every parser that sees untrusted input
//! ([`incus_daemon::fuzzing`]), and of the router itself: seeds (valid inputs and known
//! attacks) are mutated (bit flips, interesting bytes, insertions, deletions, duplicated
//! ranges, dictionary tokens, splices) and fed through; any broken invariant or panic fails
//! the test and the input is saved under `target/fuzz-failures/`. No coverage guidance: the
//! libFuzzer harness in `tests/fuzz` is for that, by hand.
//!
//! `INCUS_FUZZ_SECONDS` (default 3) is the time per target; `INCUS_FUZZ_SEED` fixes the
//! random seed (printed at the start) to replay a run.

mod common;

use common::Rng;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const INTERESTING: &[u8] = b"\0\xff\x7f\x80\"{}[]\\/.:,-0 \n\t%";

/// One mutant of `input`.
fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>], dict: &[&[u8]]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = v.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                v.drain(a..b);
            }
            4 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(32)).min(len);
                let chunk = v[a..b].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, chunk);
            }
            5 if !dict.is_empty() => {
                let at = rng.below(len + 1);
                let token = dict[rng.below(dict.len())].to_vec();
                v.splice(at..at, token);
            }
            6 if !corpus.is_empty() => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                v.truncate(cut);
                v.extend_from_slice(&other[from..]);
            }
            _ => {
                let n = rng.below(len + 1);
                v.truncate(n);
            }
        }
    }
    v.truncate(64 << 10);
    v
}

fn budget() -> Duration {
    let secs = std::env::var("INCUS_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(3.0);
    Duration::from_secs_f64(secs)
}

fn seed() -> u64 {
    common::seed("INCUS_FUZZ_SEED")
}

/// Saves a failing input and fails.
fn report(target: &str, input: &[u8], why: &str) -> ! {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{target}-{}.bin", std::process::id()));
    let _ = std::fs::File::create(&path).and_then(|mut f| f.write_all(input));
    panic!(
        "fuzz target {target}: {why}\ninput saved to {} ({} bytes): {:?}",
        path.display(),
        input.len(),
        String::from_utf8_lossy(&input[..input.len().min(300)])
    );
}

/// Mutates `seeds` through `target` until the time budget is spent; returns the count.
fn fuzz(
    name: &str,
    seeds: &[Vec<u8>],
    dict: &[&[u8]],
    rng: &mut Rng,
    target: &dyn Fn(&[u8]) -> Result<(), String>,
) -> usize {
    let deadline = Instant::now() + budget();
    let mut n = 0;
    // The seeds themselves first, then mutants.
    let mut inputs = seeds.to_vec();
    while Instant::now() < deadline || n < seeds.len() {
        let input = if n < inputs.len() {
            inputs[n].clone()
        } else {
            let base = &inputs[rng.below(inputs.len())];
            mutate(rng, base, seeds, dict)
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| target(&input)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(why)) => report(name, &input, &why),
            Err(_) => report(name, &input, "panicked"),
        }
        // Keep some mutants as new bases, so mutations stack up.
        if n >= seeds.len() && rng.below(16) == 0 && inputs.len() < 4096 {
            inputs.push(input);
        }
        n += 1;
    }
    n
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

fn json_seeds() -> Vec<Vec<u8>> {
    [
        r#"{"name":"c1","source":{"type":"image","alias":"busybox"},"config":{"limits.memory":"64MiB","security.nesting":"true"},"devices":{"root":{"type":"disk","path":"/","pool":"default"},"eth0":{"type":"nic","network":"incusbr0"}},"profiles":["default"],"start":true}"#,
        r#"{"config":{"user.a":"b","raw.lxc":"lxc.apparmor.profile=unconfined"},"devices":{"d":{"type":"disk","source":"/srv","path":"/mnt"}},"ephemeral":false,"description":"x"}"#,
        r#"{"name":"p1","config":{"limits.cpu":"2"},"devices":{"gpu":{"type":"gpu"}}}"#,
        r#"{"name":"blue","config":{"features.images":"false"}}"#,
        r#"{"name":"br1","type":"bridge","config":{"ipv4.address":"10.0.0.1/24","ipv4.nat":"true"}}"#,
        r#"{"name":"pool","driver":"dir","config":{"source":"/var/lib/x"}}"#,
        r#"{"name":"v","type":"custom","config":{"size":"1GiB"},"content_type":"filesystem"}"#,
        r#"{"action":"stop","timeout":30,"force":true}"#,
        r#"{"command":["sh","-c","echo hi"],"environment":{"A":"b"},"wait-for-websocket":true,"interactive":false,"width":80,"height":25,"user":0,"cwd":"/"}"#,
        r#"{"name":"snap0","stateful":false,"expires_at":"2030-01-01T00:00:00Z"}"#,
        r#"{"config":{"core.https_address":"127.0.0.1:8443","core.remote_token_expiry":"1H"}}"#,
        r#"{"name":"laptop","type":"client","restricted":true,"projects":["blue"],"token":true,"trust_token":"abc"}"#,
        r#"{"source":{"type":"url","url":"https://example.invalid"},"aliases":[{"name":"a"}],"public":false}"#,
        r#"{"name":"new","migration":false,"live":false}"#,
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect()
}

const JSON_DICT: &[&[u8]] = &[
    b"\"config\":",
    b"\"devices\":",
    b"\"type\":\"disk\"",
    b"\"path\":\"/\"",
    b"\"source\":\"../../etc\"",
    b"\"limits.memory\":\"-1\"",
    b"\"security.privileged\":\"true\"",
    b"\"volatile.x\":\"1\"",
    b"null",
    b"true",
    b"1e999",
    b"-9223372036854775809",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"[[[[[[[[[[",
    b"{\"a\":{\"a\":{\"a\":",
    b"\"name\":\"../x\"",
    b"\"name\":\"\"",
];

#[test]
fn fuzz_parsers() {
    let s = seed();
    eprintln!(
        "fuzz seed {s} (INCUS_FUZZ_SEED to replay), {:?} per target",
        budget()
    );
    let mut rng = Rng(s);
    let scratch = tempfile::tempdir().expect("tempdir");
    let json = json_seeds();
    let mut counts = Vec::new();

    counts.push((
        "json_body",
        fuzz("json_body", &json, JSON_DICT, &mut rng, &|d| {
            incus_daemon::fuzzing::json_body(d)
        }),
    ));

    let mut gz: Vec<Vec<u8>> = json.iter().map(|j| gzip(j)).collect();
    gz.push(gzip(&vec![b'a'; 3 << 20])); // decodes past the limit
    gz.push(b"\x1f\x8b\x08\x00\x00\x00\x00\x00".to_vec());
    counts.push((
        "gzip_body",
        fuzz("gzip_body", &gz, &[], &mut rng, &|d| {
            incus_daemon::fuzzing::gzip_body(d)
        }),
    ));

    let filters: Vec<Vec<u8>> = [
        "status eq Running",
        "name eq c1 and status ne Stopped",
        "config.image.os eq busybox or expanded_config.user.x eq 1",
        "not (name eq \"a b\") and type eq container",
        "c1",
        "name eq c.* or (status eq Running and (type eq container))",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let fdict: &[&[u8]] = &[
        b" and ", b" or ", b"not ", b"(", b")", b" eq ", b" ne ", b"\"",
    ];
    counts.push((
        "filter",
        fuzz("filter", &filters, fdict, &mut rng, &|d| {
            incus_daemon::fuzzing::filter(d)
        }),
    ));

    let meta: Vec<Vec<u8>> = [
        "architecture: x86_64\ncreation_date: 1700000000\nproperties:\n  os: busybox\n  description: test\ntemplates:\n  /etc/hostname:\n    when:\n    - create\n    - copy\n    template: hostname.tpl\n    properties: {}\n",
        "architecture: aarch64\ncreation_date: 0\nexpiry_date: 1\n",
        "{architecture: x86_64, properties: {a: b}}",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    let ydict: &[&[u8]] = &[
        b"\n  ",
        b": ",
        b"- ",
        b"&a ",
        b"*a",
        b"!!binary ",
        b"<<: ",
        b"{",
        b"[",
    ];
    counts.push((
        "image_metadata",
        fuzz("image_metadata", &meta, ydict, &mut rng, &|d| {
            incus_daemon::fuzzing::image_metadata(d)
        }),
    ));

    let heads: Vec<Vec<u8>> = [
        "x-incus-uid: 0\nx-incus-gid: 0\nx-incus-mode: 0644\nx-incus-type: file\nx-incus-write: overwrite\nhello",
        "x-lxd-type: directory\nx-lxd-mode: 0755\n",
        "x-incus-type: symlink\n\n/etc/passwd",
        "x-incus-mode: 0o7777\nx-incus-uid: -1\nx-incus-write: append\ndata",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    counts.push((
        "file_headers",
        fuzz(
            "file_headers",
            &heads,
            &[b"x-incus-mode: ", b"99999999999", b"-2"],
            &mut rng,
            &|d| incus_daemon::fuzzing::file_headers(d),
        ),
    ));

    let tars = tar_seeds();
    let scratch_path = scratch.path().to_path_buf();
    counts.push((
        "tar_stream",
        fuzz(
            "tar_stream",
            &tars,
            &[b"../", b"/", b"\0"],
            &mut rng,
            &|d| incus_daemon::fuzzing::tar_stream(d, &scratch_path),
        ),
    ));

    let (cert, _) = incus_core::tls::generate(incus_core::tls::Usage::Client).expect("cert");
    let token = incus_core::api::CertificateAddToken {
        client_name: "x".into(),
        fingerprint: "ab".repeat(32),
        addresses: vec!["127.0.0.1:8443".into()],
        secret: "s".into(),
        expires_at: None,
    }
    .encode();
    let creds: Vec<Vec<u8>> = [
        cert.as_str(),
        token.as_str(),
        "[::1]:8443",
        "127.0.0.1",
        ":8443",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    counts.push((
        "credentials",
        fuzz(
            "credentials",
            &creds,
            &[b"-----", b"=", b":"],
            &mut rng,
            &|d| incus_daemon::fuzzing::credentials(d),
        ),
    ));

    for (name, n) in &counts {
        eprintln!("{name}: {n} inputs, no failure");
        assert!(*n > 0);
    }
    assert_eq!(counts.len(), incus_daemon::fuzzing::TARGETS.len());
}

/// Tar archives: an ordinary tree, and the known escapes (`../`, absolute names, a symlink
/// pointing out then written through, a hard link to a file outside).
fn tar_seeds() -> Vec<Vec<u8>> {
    fn entry(
        b: &mut tar::Builder<Vec<u8>>,
        name: &[u8],
        kind: tar::EntryType,
        link: &[u8],
        data: &[u8],
    ) {
        let mut h = tar::Header::new_gnu();
        {
            let raw = h.as_old_mut();
            raw.name[..name.len()].copy_from_slice(name);
            raw.linkname[..link.len()].copy_from_slice(link);
        }
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data).expect("append");
    }
    let mut seeds = Vec::new();
    let mut b = tar::Builder::new(Vec::new());
    entry(&mut b, b"rootfs/", tar::EntryType::Directory, b"", b"");
    entry(
        &mut b,
        b"rootfs/etc/hostname",
        tar::EntryType::Regular,
        b"",
        b"c1\n",
    );
    entry(
        &mut b,
        b"rootfs/bin/sh",
        tar::EntryType::Symlink,
        b"busybox",
        b"",
    );
    entry(
        &mut b,
        b"rootfs/bin/ash",
        tar::EntryType::Link,
        b"rootfs/etc/hostname",
        b"",
    );
    entry(
        &mut b,
        b"metadata.yaml",
        tar::EntryType::Regular,
        b"",
        b"architecture: x86_64\n",
    );
    seeds.push(b.into_inner().expect("tar"));
    for (name, kind, link) in [
        (&b"../escape"[..], tar::EntryType::Regular, &b""[..]),
        (b"/abs", tar::EntryType::Regular, b""),
        (b"out", tar::EntryType::Symlink, b"../"),
        (b"hard", tar::EntryType::Link, b"../sentinel"),
    ] {
        let mut b = tar::Builder::new(Vec::new());
        entry(&mut b, name, kind, link, b"x");
        if kind == tar::EntryType::Symlink {
            entry(
                &mut b,
                b"out/sentinel",
                tar::EntryType::Regular,
                b"",
                b"overwritten",
            );
            entry(&mut b, b"out/new", tar::EntryType::Regular, b"", b"new");
        }
        seeds.push(b.into_inner().expect("tar"));
    }
    seeds
}

/// The router in process (`LocalApi` over a real engine): mutated JSON bodies (some
/// gzip-encoded) to the endpoints that create and change profiles, projects and certificates.
/// No answer may be a 5xx, and a refused request must change nothing.
#[tokio::test]
async fn fuzz_router_bodies() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED fuzz_router_bodies: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    use axum::body::Body;
    use axum::http::Request;
    let dir = tempfile::Builder::new()
        .prefix("incusd-test-fuzz-")
        .tempdir_in("/tmp")
        .expect("tempdir");
    let mut drivers = incus_core::drivers::DriverRegistry::new();
    incus_storage::register_all(&mut drivers);
    let mut config = incus_core::host::HostConfig::new(dir.path(), drivers);
    config.helper = Some(env!("CARGO_BIN_EXE_incusd").into());
    config.helper_args = vec!["forklxc".into()];
    let host = incus_core::host::Host::open(config).await.expect("open");
    let api = incus_daemon::local::LocalApi::new(incus_daemon::Daemon::new(host));
    let call = |method: &'static str, uri: String, body: Vec<u8>, gz: bool| {
        let api = &api;
        async move {
            let mut req = Request::builder()
                .method(method)
                .uri(uri)
                .header("content-type", "application/json");
            let body = if gz {
                req = req.header("content-encoding", "gzip");
                gzip(&body)
            } else {
                body
            };
            let resp = api.call(req.body(Body::from(body)).expect("request")).await;
            let status = resp.status().as_u16();
            let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
                .await
                .expect("body");
            (status, bytes.to_vec())
        }
    };
    let state = || async {
        let mut all = Vec::new();
        for path in [
            "/1.0/profiles?recursion=1",
            "/1.0/projects?recursion=1",
            "/1.0/certificates?recursion=1",
        ] {
            all.extend(call("GET", path.into(), Vec::new(), false).await.1);
        }
        all
    };
    let endpoints: [(&'static str, &str); 6] = [
        ("POST", "/1.0/profiles"),
        ("PUT", "/1.0/profiles/default"),
        ("PATCH", "/1.0/profiles/default"),
        ("POST", "/1.0/projects"),
        ("PUT", "/1.0/projects/default"),
        ("POST", "/1.0/certificates"),
    ];
    let s = seed();
    eprintln!("router fuzz seed {s}");
    let mut rng = Rng(s);
    let seeds = json_seeds();
    let deadline = Instant::now() + budget() * 2;
    let (mut n, mut refused) = (0usize, 0usize);
    let mut before = state().await;
    while Instant::now() < deadline {
        let (method, path) = endpoints[rng.below(endpoints.len())];
        let base = &seeds[rng.below(seeds.len())];
        let body = mutate(&mut rng, base, &seeds, JSON_DICT);
        let gz = rng.below(8) == 0;
        let (status, answer) = call(method, path.to_string(), body.clone(), gz).await;
        if status >= 500 {
            report(
                "router",
                &body,
                &format!(
                    "{method} {path} answered {status}: {}",
                    String::from_utf8_lossy(&answer)
                ),
            );
        }
        let after = state().await;
        if status >= 400 {
            refused += 1;
            if after != before {
                report(
                    "router",
                    &body,
                    &format!("{method} {path} refused ({status}) but changed state"),
                );
            }
        }
        before = after;
        n += 1;
    }
    eprintln!("router: {n} requests, {refused} refused, none 5xx, refusals changed nothing");
    assert!(n > 0);
}
