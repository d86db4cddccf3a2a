//! The HTTPS listener and the trust store, for real: `incusd` listens on a loopback port, the
//! unmodified `incus` 6.0.4 client (installed by `tests/install-deps.sh`) joins it with a
//! trust token and launches, execs and pushes files over TLS; raw TLS requests (rustls, with
//! and without a client certificate) check what untrusted, trusted, restricted and revoked
//! clients may do, CSRF refusal, listener changes, and that all of it survives a restart.
//! Runs with `INCUS_TEST_PRIVILEGED=1` (as root).

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::Daemon;

impl Daemon {
    fn local(&self, args: &[&str]) -> String {
        common::succeeded(
            args,
            common::incus(self.dir.path(), self.conf.path(), args, b""),
        )
    }

    fn local_fails(&self, args: &[&str]) -> String {
        common::failed(
            args,
            common::incus(self.dir.path(), self.conf.path(), args, b""),
        )
    }
}

/// The real client with its own configuration directory `conf` (no socket).
fn remote(conf: &Path, args: &[&str]) -> std::process::Output {
    common::incus(Path::new("/nonexistent"), conf, args, b"")
}

/// One HTTPS request (HTTP/1.1, `Connection: close`) with the client certificate and key in
/// `identity` (a directory holding `client.crt` and `client.key`, as the incus client keeps
/// them) if given. Returns the status and the JSON body.
fn https(
    port: u16,
    identity: Option<&Path>,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    use rustls::pki_types::pem::PemObject;
    let provider = incus_daemon::tls::provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(common::AnyServer(provider)));
    let config = match identity {
        Some(dir) => builder
            .with_client_auth_cert(
                vec![
                    rustls::pki_types::CertificateDer::from_pem_file(dir.join("client.crt"))
                        .expect("client.crt"),
                ],
                rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("client.key"))
                    .expect("client.key"),
            )
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("tls");
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut s = rustls::StreamOwned::new(conn, tcp);
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut raw = Vec::new();
    // A close without close_notify is reported as an error after the data: keep the data.
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (status, serde_json::from_str(body).unwrap_or_default())
}

fn token(d: &Daemon, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["config", "trust", "add", name, "--quiet"];
    args.extend_from_slice(extra);
    d.local(&args)
        .trim()
        .lines()
        .last()
        .expect("token")
        .to_string()
}

#[test]
fn https_remote_trust_and_hardening() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED https_remote_trust_and_hardening: set INCUS_TEST_PRIVILEGED=1 (as root)"
        );
        return;
    }
    let mut d = Daemon::start();
    let images = common::image_dir("https");
    d.local(&[
        "image",
        "import",
        images.path().join("busybox.tar.xz").to_str().expect("path"),
        "--alias",
        "busybox",
    ]);

    // No listener yet: a token cannot be issued; a bad address is refused and changes nothing.
    assert!(
        d.local_fails(&["config", "trust", "add", "x"])
            .contains("isn't listening")
    );
    assert!(
        d.local_fails(&["config", "set", "core.https_address", "not an address"])
            .contains("Invalid listen address")
    );
    let port = common::free_port();
    let addr = format!("127.0.0.1:{port}");
    d.local(&["config", "set", "core.https_address", &addr]);
    assert!(d.dir.path().join("server.crt").exists());
    let key_mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(d.dir.path().join("server.key"))
            .expect("server.key")
            .permissions(),
    );
    assert_eq!(key_mode & 0o077, 0, "server.key is private");

    // The unmodified client joins with a token (the token form of `remote add`, which pins
    // the server certificate from the token) and works over TLS.
    let laptop = tempfile::tempdir().expect("tempdir");
    let t = token(&d, "laptop", &[]);
    common::succeeded(
        &["remote", "add"],
        remote(laptop.path(), &["remote", "add", "srv", &t]),
    );
    let run = |args: &[&str]| common::succeeded(args, remote(laptop.path(), args));
    assert!(run(&["info", "srv:"]).contains("auth: trusted"));
    run(&["launch", "srv:busybox", "srv:c1"]);
    assert_eq!(
        run(&["exec", "srv:c1", "--", "echo", "over tls"]),
        "over tls\n"
    );
    let pushed = laptop.path().join("pushed");
    std::fs::write(&pushed, "payload").expect("write");
    run(&[
        "file",
        "push",
        pushed.to_str().expect("p"),
        "srv:c1/tmp/pushed",
    ]);
    assert_eq!(
        run(&["exec", "srv:c1", "--", "cat", "/tmp/pushed"]),
        "payload"
    );
    assert!(run(&["list", "srv:", "-c", "ns", "-f", "csv"]).contains("c1,RUNNING"));
    let listed = d.local(&["config", "trust", "list", "-f", "csv"]);
    assert!(listed.starts_with("laptop,client"), "{listed}");

    // A token is single-use.
    let again = tempfile::tempdir().expect("tempdir");
    let err = common::failed(
        &["remote", "add"],
        remote(again.path(), &["remote", "add", "x", &t]),
    );
    assert!(
        err.contains("No matching certificate add operation"),
        "{err}"
    );
    // The URL form with --token and --accept-certificate, as users type it.
    let t2 = token(&d, "desk", &[]);
    let desk = tempfile::tempdir().expect("tempdir");
    common::succeeded(
        &["remote", "add"],
        remote(
            desk.path(),
            &[
                "remote",
                "add",
                "srv",
                &format!("https://{addr}"),
                "--token",
                &t2,
                "--accept-certificate",
            ],
        ),
    );

    // Untrusted callers: the public view of /1.0 and nothing else.
    let stranger = again.path();
    let (code, body) = https(port, None, "GET", "/1.0", "", "");
    assert_eq!(code, 200);
    assert_eq!(body["metadata"]["auth"], "untrusted");
    assert!(body["metadata"].get("environment").is_none(), "{body}");
    assert_eq!(https(port, None, "GET", "/1.0/instances", "", "").0, 403);
    assert_eq!(
        https(port, Some(stranger), "GET", "/1.0/instances", "", "").0,
        403
    );
    assert_eq!(
        https(port, None, "PUT", "/1.0", "", r#"{"config":{}}"#).0,
        403
    );
    assert_eq!(https(port, None, "GET", "/internal/ready", "", "").0, 403);
    let (code, _) = https(
        port,
        Some(stranger),
        "POST",
        "/1.0/certificates",
        "",
        r#"{"type":"client"}"#,
    );
    assert_eq!(code, 403, "no token, no trust");
    let (code, _) = https(
        port,
        Some(stranger),
        "POST",
        "/1.0/certificates",
        "",
        r#"{"trust_token":"bm90IGEgdG9rZW4="}"#,
    );
    assert_eq!(code, 403, "a bogus token");

    // Public images: untrusted callers see them (and their aliases), never private ones.
    let fp = d.local(&["image", "list", "busybox", "-f", "csv", "-c", "F"]);
    let fp = fp.trim().to_string();
    assert_eq!(fp.len(), 64, "{fp}");
    let (code, body) = https(port, None, "GET", "/1.0/images", "", "");
    assert_eq!((code, &body["metadata"]), (200, &serde_json::json!([])));
    let image = format!("/1.0/images/{fp}");
    assert_eq!(https(port, None, "GET", &image, "", "").0, 404);
    assert_eq!(
        https(port, None, "GET", &format!("{image}/export"), "", "").0,
        404
    );
    assert_eq!(
        https(port, None, "GET", "/1.0/images/aliases/busybox", "", "").0,
        404
    );
    d.local(&[
        "query",
        "-X",
        "PATCH",
        &image,
        "--data",
        r#"{"public": true}"#,
    ]);
    let (code, body) = https(port, None, "GET", "/1.0/images", "", "");
    assert_eq!(
        (code, &body["metadata"]),
        (200, &serde_json::json!([image]))
    );
    assert_eq!(https(port, None, "GET", &image, "", "").0, 200);
    assert_eq!(
        https(port, None, "GET", &format!("{image}/export"), "", "").0,
        200
    );
    let (code, body) = https(port, None, "GET", "/1.0/images/aliases?recursion=1", "", "");
    assert_eq!(code, 200);
    assert_eq!(body["metadata"][0]["name"], "busybox", "{body}");
    assert_eq!(https(port, None, "DELETE", &image, "", "").0, 403);
    assert_eq!(
        https(port, None, "PATCH", &image, "", r#"{"public":false}"#).0,
        403
    );
    // The real client and ours, as a public remote with no certificate of theirs trusted.
    for program in [PathBuf::from("incus"), common::our_cli()] {
        let conf = tempfile::tempdir().expect("tempdir");
        let client = |args: &[&str]| {
            common::run_client(&program, Path::new("/nonexistent"), conf.path(), args, b"")
        };
        let url = format!("https://{addr}");
        let add = [
            "remote",
            "add",
            "pub",
            &url,
            "--public",
            "--accept-certificate",
        ];
        common::succeeded(&add, client(&add));
        let list = ["image", "list", "pub:", "-f", "csv", "-c", "lF"];
        let listed = common::succeeded(&list, client(&list));
        assert_eq!(listed.trim(), format!("busybox,{fp}"), "{program:?}");
    }

    // Trusted (the laptop's certificate): full access, the environment and a CSRF check.
    let me = laptop.path();
    let (code, body) = https(port, Some(me), "GET", "/1.0", "", "");
    assert_eq!(
        (code, body["metadata"]["auth"].as_str()),
        (200, Some("trusted"))
    );
    assert_eq!(body["metadata"]["auth_user_method"], "tls");
    assert_eq!(
        body["metadata"]["environment"]["addresses"][0],
        addr.as_str()
    );
    let server_fp = body["metadata"]["environment"]["certificate_fingerprint"]
        .as_str()
        .expect("fp")
        .to_string();
    assert_eq!(server_fp.len(), 64);
    assert_eq!(
        https(port, Some(me), "GET", "/1.0/instances", "", "").0,
        200
    );
    let (code, _) = https(
        port,
        Some(me),
        "POST",
        "/1.0/profiles",
        "Sec-Fetch-Site: cross-site\r\n",
        r#"{"name":"csrf"}"#,
    );
    assert_eq!(code, 403, "cross-site request");
    assert!(
        d.local_fails(&["profile", "show", "csrf"])
            .contains("not found")
    );

    // Restricted to project `blue`: its own project only, no server config or trust store.
    d.local(&[
        "project",
        "create",
        "blue",
        "-c",
        "features.images=false",
        "-c",
        "features.profiles=false",
    ]);
    let fp = d.local(&["config", "trust", "list", "-f", "csv", "-c", "nf"]);
    let laptop_fp = fp
        .lines()
        .find(|l| l.starts_with("laptop,"))
        .and_then(|l| l.split(',').nth(1))
        .expect("laptop fingerprint")
        .to_string();
    let sock = d.dir.path().join("unix.socket");
    let (code, _) = common::unix_request(
        &sock,
        "PATCH",
        &format!("/1.0/certificates/{laptop_fp}"),
        r#"{"restricted":true,"projects":["blue"]}"#,
    );
    assert_eq!(code, 200);
    assert_eq!(
        https(port, Some(me), "GET", "/1.0/instances", "", "").0,
        403
    );
    assert_eq!(
        https(port, Some(me), "GET", "/1.0/instances?project=blue", "", "").0,
        200
    );
    assert_eq!(
        https(port, Some(me), "GET", "/1.0/certificates", "", "").0,
        403
    );
    let (_, body) = https(port, Some(me), "GET", "/1.0/projects", "", "");
    assert_eq!(
        body["metadata"],
        serde_json::json!(["/1.0/projects/blue"]),
        "only its own projects"
    );
    let (_, body) = https(port, Some(me), "GET", "/1.0", "", "");
    assert_eq!(
        body["metadata"]["config"],
        serde_json::json!({}),
        "no server config"
    );
    run(&["launch", "srv:busybox", "srv:b1", "--project", "blue"]);
    assert!(run(&["list", "srv:", "--project", "blue", "-c", "n", "-f", "csv"]).contains("b1"));
    run(&["delete", "-f", "srv:b1", "--project", "blue"]);

    // Operations: another project's are not found by a restricted certificate; an untrusted
    // caller may wait on one only with its secret (a token operation's).
    let (code, body) = common::unix_request(
        &sock,
        "POST",
        "/1.0/certificates",
        r#"{"name":"waiter","token":true}"#,
    );
    assert_eq!(code, 202, "{body}");
    let op_id = body["metadata"]["id"].as_str().expect("id").to_string();
    let secret = body["metadata"]["metadata"]["secret"]
        .as_str()
        .expect("secret")
        .to_string();
    let op = format!("/1.0/operations/{op_id}");
    // (Without `?project=blue` the request is refused before that, 403.)
    assert_eq!(https(port, Some(me), "GET", &op, "", "").0, 403);
    for (method, path) in [
        ("GET", format!("{op}?project=blue")),
        ("GET", format!("{op}/wait?timeout=0&project=blue")),
        ("DELETE", format!("{op}?project=blue")),
    ] {
        assert_eq!(
            https(port, Some(me), method, &path, "", "").0,
            404,
            "restricted {method} {path}"
        );
    }
    assert_eq!(https(port, None, "GET", &op, "", "").0, 403);
    for query in ["timeout=0", "timeout=0&secret=wrong", "timeout=0&secret="] {
        let path = format!("{op}/wait?{query}");
        assert_eq!(https(port, None, "GET", &path, "", "").0, 403, "{path}");
    }
    let path = format!("{op}/wait?timeout=0&secret={secret}");
    let (code, body) = https(port, None, "GET", &path, "", "");
    assert_eq!(
        (code, body["metadata"]["id"].as_str()),
        (200, Some(op_id.as_str()))
    );
    assert_eq!(common::unix_request(&sock, "DELETE", &op, "").0, 200);

    // Changing the address moves the listener; a port in use is refused and nothing changes.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy_addr = busy.local_addr().expect("addr").to_string();
    assert!(
        d.local_fails(&["config", "set", "core.https_address", &busy_addr])
            .contains("Cannot listen")
    );
    assert_eq!(
        d.local(&["config", "get", "core.https_address"]).trim(),
        addr
    );
    drop(busy);
    // The same port on an address this host does not have (TEST-NET-1): refused, and the
    // old listener (closed first for the same port) is back.
    let foreign = format!("192.0.2.1:{port}");
    assert!(
        d.local_fails(&["config", "set", "core.https_address", &foreign])
            .contains("Cannot listen")
    );
    assert_eq!(
        d.local(&["config", "get", "core.https_address"]).trim(),
        addr
    );
    assert_eq!(
        https(port, Some(desk.path()), "GET", "/1.0/instances", "", "").0,
        200
    );

    // After a restart the listener comes back with the same certificate, trust kept.
    d.child.kill().expect("kill");
    let _ = d.child.wait();
    d.child = common::spawn_incusd(d.dir.path());
    let mut up = false;
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    assert!(up, "HTTPS listener back after restart");
    let (_, body) = https(port, Some(desk.path()), "GET", "/1.0", "", "");
    assert_eq!(body["metadata"]["auth"], "trusted");
    assert_eq!(
        body["metadata"]["environment"]["certificate_fingerprint"],
        server_fp.as_str()
    );
    // (The laptop is restricted to `blue` now: the desk, unrestricted, reaches c1.)
    let args = ["exec", "srv:c1", "--", "echo", "still"];
    assert_eq!(
        common::succeeded(&args, remote(desk.path(), &args)),
        "still\n"
    );
    common::failed(&args, remote(laptop.path(), &args));

    // Revoked: the laptop is refused at once; the desk still works.
    d.local(&["config", "trust", "remove", &laptop_fp[..12]]);
    common::failed(&["list"], remote(laptop.path(), &["list", "srv:"]));
    assert_eq!(
        https(port, Some(desk.path()), "GET", "/1.0/instances", "", "").0,
        200
    );

    // Listening stops when the address is unset.
    d.local(&["delete", "-f", "c1"]);
    d.local(&["config", "unset", "core.https_address"]);
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
