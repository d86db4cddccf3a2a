//! Our own client side of remote access, for real: our `incus` joins an `incusd` HTTPS
//! listener with a trust token (both forms of `remote add`, and the interactive prompts),
//! keeps remotes in the same files as the Incus 6.0.4 client (which then uses them as they
//! are), manages them (`list`, `rename`, `switch`, `set-url`, `remove`) and the trust store
//! (`config trust ...`); the Rust library connects over HTTPS with a pinned certificate
//! (requests, exec and events websockets) and is refused as an untrusted caller.
//! Runs with `INCUS_TEST_PRIVILEGED=1` (as root).

mod common;

use std::path::Path;

use common::Daemon;

/// Our CLI with the client configuration in `conf`, on `d`'s local socket.
fn ours(d: &Daemon, conf: &Path, args: &[&str], stdin: &[u8]) -> std::process::Output {
    common::run_client(&common::our_cli(), d.dir.path(), conf, args, stdin)
}

fn ok(d: &Daemon, conf: &Path, args: &[&str]) -> String {
    common::succeeded(args, ours(d, conf, args, b""))
}

fn fails(d: &Daemon, conf: &Path, args: &[&str], stdin: &[u8]) -> String {
    common::failed(args, ours(d, conf, args, stdin))
}

fn token(d: &Daemon, name: &str) -> String {
    ok(
        d,
        d.conf.path(),
        &["config", "trust", "add", name, "--quiet"],
    )
    .trim()
    .to_string()
}

#[test]
fn our_client_over_https() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!("SKIPPED our_client_over_https: set INCUS_TEST_PRIVILEGED=1 (as root)");
        return;
    }
    let d = Daemon::start();
    let admin = d.conf.path();
    let images = common::image_dir("remotes");
    ok(
        &d,
        admin,
        &[
            "image",
            "import",
            images.path().join("busybox.tar.xz").to_str().expect("path"),
            "--alias",
            "busybox",
        ],
    );
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    let url = format!("https://{addr}");
    // `admin init --preseed` with the listener in its config.
    let seed = format!("config:\n  core.https_address: {addr}\n");
    common::succeeded(
        &["admin", "init", "--preseed"],
        ours(&d, admin, &["admin", "init", "--preseed"], seed.as_bytes()),
    );
    assert_eq!(
        ok(&d, admin, &["config", "get", "core.https_address"]).trim(),
        addr
    );

    // The token form: the client certificate is made, the server's pinned from the token.
    let laptop = tempfile::tempdir().expect("tempdir");
    let lp = laptop.path();
    let t = token(&d, "laptop");
    let out = ours(&d, lp, &["remote", "add", "srv", &t], b"");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    common::succeeded(&["remote", "add"], out);
    assert!(
        stderr.contains("Generating a client certificate"),
        "{stderr}"
    );
    assert!(lp.join("client.crt").exists() && lp.join("client.key").exists());
    assert!(lp.join("servercerts/srv.crt").exists());
    let listed = ok(&d, lp, &["remote", "list", "-f", "csv"]);
    assert!(
        listed.contains(&format!("srv,{url},incus,tls,NO,NO,NO")),
        "{listed}"
    );
    ok(&d, lp, &["launch", "srv:busybox", "srv:c1"]);
    assert_eq!(
        ok(&d, lp, &["exec", "srv:c1", "--", "echo", "over tls"]),
        "over tls\n"
    );
    let pushed = lp.join("pushed");
    std::fs::write(&pushed, "payload").expect("write");
    ok(
        &d,
        lp,
        &[
            "file",
            "push",
            pushed.to_str().expect("p"),
            "srv:c1/tmp/pushed",
        ],
    );
    assert_eq!(
        ok(&d, lp, &["exec", "srv:c1", "--", "cat", "/tmp/pushed"]),
        "payload"
    );
    // The Incus 6.0.4 client uses the same files as they are.
    let real = common::incus(
        Path::new("/nonexistent"),
        lp,
        &["list", "srv:", "-c", "ns", "-f", "csv"],
        b"",
    );
    assert!(
        common::succeeded(&["list"], real).contains("c1,RUNNING"),
        "real client on our config"
    );

    // The interactive URL form: the fingerprint is shown and accepted, the token asked for.
    let desk = tempfile::tempdir().expect("tempdir");
    let dp = desk.path();
    let t2 = token(&d, "desk");
    let out = ours(
        &d,
        dp,
        &["remote", "add", "srv", &addr],
        format!("y\n{t2}\n").as_bytes(),
    );
    let text = common::succeeded(&["remote", "add"], out);
    assert!(text.contains("Certificate fingerprint: "), "{text}");
    assert!(
        text.contains("Client certificate now trusted by server: srv"),
        "{text}"
    );
    // Refusing the fingerprint, or typing something else, adds nothing.
    for (answer, why) in [(&b"n\n"[..], "NACKed"), (&b"maybe\n"[..], "Please type")] {
        let err = fails(&d, dp, &["remote", "add", "other", &url], answer);
        assert!(err.contains(why), "{err}");
        assert!(!dp.join("servercerts/other.crt").exists());
        assert!(!ok(&d, dp, &["remote", "list", "-f", "csv"]).contains("other,"));
    }
    assert!(fails(&d, dp, &["remote", "add", "srv", &url], b"").contains("Remote srv exists"));
    assert!(fails(&d, dp, &["remote", "add", "x", "ftp://h"], b"").contains("Invalid URL scheme"));
    // A client already trusted needs no token for a second remote to the same server.
    ok(
        &d,
        dp,
        &["remote", "add", "same", &url, "--accept-certificate"],
    );
    ok(&d, dp, &["remote", "remove", "same"]);
    // A used token is refused, and the remote is not kept.
    let fresh = tempfile::tempdir().expect("tempdir");
    let err = fails(
        &d,
        fresh.path(),
        &[
            "remote",
            "add",
            "again",
            &url,
            "--token",
            &t2,
            "--accept-certificate",
        ],
        b"",
    );
    assert!(
        err.contains("No matching certificate add operation"),
        "{err}"
    );
    assert!(!ok(&d, fresh.path(), &["remote", "list", "-f", "csv"]).contains("again,"));
    assert!(!fresh.path().join("servercerts/again.crt").exists());

    // Managing remotes.
    ok(&d, dp, &["remote", "rename", "srv", "s2"]);
    assert!(dp.join("servercerts/s2.crt").exists() && !dp.join("servercerts/srv.crt").exists());
    ok(&d, dp, &["remote", "switch", "s2"]);
    assert_eq!(ok(&d, dp, &["remote", "get-default"]).trim(), "s2");
    assert!(ok(&d, dp, &["list", "-c", "n", "-f", "csv"]).contains("c1"));
    assert!(
        fails(&d, dp, &["remote", "remove", "s2"], b"").contains("Can't remove the default remote")
    );
    assert!(fails(&d, dp, &["remote", "remove", "local"], b"").contains("static"));
    let dead = format!("127.0.0.1:{}", common::free_port());
    ok(&d, dp, &["remote", "set-url", "s2", &dead]);
    assert!(fails(&d, dp, &["list"], b"").contains("Failed to talk to the daemon"));
    ok(&d, dp, &["remote", "set-url", "s2", &url]);
    assert!(ok(&d, dp, &["list", "-c", "n", "-f", "csv"]).contains("c1"));
    // Another certificate pinned for the remote: refused, with both fingerprints named.
    let (other_cert, _) = incus_core::tls::generate(incus_core::tls::Usage::Server).expect("cert");
    let pinned = std::fs::read_to_string(dp.join("servercerts/s2.crt")).expect("pinned");
    std::fs::write(dp.join("servercerts/s2.crt"), other_cert).expect("write");
    let err = fails(&d, dp, &["list"], b"");
    assert!(err.contains("not the one trusted"), "{err}");
    std::fs::write(dp.join("servercerts/s2.crt"), pinned).expect("write");

    // The trust store from our CLI.
    let trust = ok(
        &d,
        admin,
        &["config", "trust", "list", "-f", "csv", "-c", "ntcf"],
    );
    assert!(trust.contains("laptop,client,root@"), "{trust}");
    assert!(trust.contains("desk,client,root@"), "{trust}");
    let desk_fp = trust
        .lines()
        .find(|l| l.starts_with("desk,"))
        .and_then(|l| l.rsplit(',').next())
        .expect("desk fingerprint")
        .to_string();
    assert_eq!(desk_fp.len(), 12);
    assert!(ok(&d, admin, &["config", "trust", "show", &desk_fp]).contains("name: desk"));
    let t3 = token(&d, "later");
    assert!(ok(&d, admin, &["config", "trust", "list-tokens", "-f", "csv"]).contains("later,"));
    ok(&d, admin, &["config", "trust", "revoke-token", "later"]);
    assert!(!ok(&d, admin, &["config", "trust", "list-tokens", "-f", "csv"]).contains("later,"));
    let err = fails(
        &d,
        tempfile::tempdir().expect("tempdir").path(),
        &["remote", "add", "x", &t3],
        b"",
    );
    assert!(err.contains("Failed to create certificate"), "{err}");
    ok(&d, admin, &["config", "trust", "remove", &desk_fp]);
    let err = fails(&d, dp, &["list"], b"");
    assert!(
        err.contains("not authorized") || err.contains("orbidden"),
        "{err}"
    );
    ok(&d, dp, &["remote", "switch", "local"]);
    ok(&d, dp, &["remote", "remove", "s2"]);
    assert!(!dp.join("servercerts/s2.crt").exists());

    // The library: a pinned server certificate and the laptop's identity.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let read = |p: &str| std::fs::read_to_string(lp.join(p)).ok();
        let tls = incus_client::RemoteTls {
            client_cert: read("client.crt"),
            client_key: read("client.key"),
            server_cert: read("servercerts/srv.crt"),
        };
        let c = incus_client::Client::https(&url, &tls).expect("client");
        let (srv, _) = c.server().await.expect("server");
        assert_eq!(srv.untrusted.auth, "trusted");
        let names: Vec<String> = c
            .instances()
            .await
            .expect("list")
            .into_iter()
            .map(|i| i.name)
            .collect();
        assert_eq!(names, ["c1"]);
        let mut events = c
            .events("/1.0/events?type=lifecycle")
            .await
            .expect("events over wss");
        let (code, out) = common::exec_output(&c, "c1", &["echo", "lib over tls"])
            .await
            .expect("exec");
        assert_eq!(code, 0);
        assert_eq!(out, "lib over tls\n");
        c.set_state("c1", "stop", true, -1).await.expect("stop");
        let ev = tokio::time::timeout(std::time::Duration::from_secs(30), events.next())
            .await
            .expect("an event in time")
            .expect("an event")
            .expect("a good event");
        assert_eq!(ev["type"], "lifecycle");
        // Without a certificate: the untrusted view, and a clear refusal.
        let anon = incus_client::Client::https(
            &url,
            &incus_client::RemoteTls {
                server_cert: read("servercerts/srv.crt"),
                ..Default::default()
            },
        )
        .expect("client");
        let (srv, _) = anon.server().await.expect("server");
        assert_eq!(srv.untrusted.auth, "untrusted");
        let err = anon.instances().await.expect_err("refused");
        assert_eq!(err.kind(), incus_client::ErrorKind::Forbidden);
        // The certificate fetch used by `remote add` sees the server's own.
        let der =
            incus_client::tls::fetch_server_certificate(&url, &incus_client::RemoteTls::default())
                .await
                .expect("fetch");
        assert_eq!(
            incus_core::tls::certificate_pem(&der).trim(),
            read("servercerts/srv.crt").expect("pinned").trim()
        );
        c.delete_instance("c1").await.expect("delete");
    });

    // `admin init --auto --network-address/--network-port` moves the listener. (The
    // default profile gets a nic first, so init makes no bridge on this host.)
    ok(
        &d,
        admin,
        &[
            "profile",
            "device",
            "add",
            "default",
            "eth0",
            "nic",
            "nictype=bridged",
            "parent=none0",
        ],
    );
    let port2 = common::free_port();
    ok(
        &d,
        admin,
        &[
            "admin",
            "init",
            "--auto",
            "--network-address",
            "127.0.0.1",
            "--network-port",
            &port2.to_string(),
        ],
    );
    assert_eq!(
        ok(&d, admin, &["config", "get", "core.https_address"]).trim(),
        format!("127.0.0.1:{port2}")
    );
    assert!(
        ok(&d, admin, &["network", "list", "-f", "csv"])
            .lines()
            .all(|l| !l.contains("incusbr"))
    );
}
