//! The HTTPS listener's limits against greedy and slow clients, for real: websockets count
//! against the per-client connection limit for as long as they are open (and give their
//! place back when closed), one greedy address does not lock out another, a client that never
//! finishes its TLS handshake or its request head is disconnected, and an oversized request
//! head is refused; an exec whose client never connects its streams (or only some) is ended
//! after the connect deadline and frees what it held. Runs with `INCUS_TEST_PRIVILEGED=1`
//! (as root).
//!
//! Nothing here is a timed assertion: the slow clients are only required to be disconnected
//! eventually (within three times the documented limit), while others are served.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Daemon;
use incus_client::Client;

impl Daemon {
    fn cli(&self, args: &[&str]) -> String {
        common::succeeded(
            args,
            common::run_client(
                &common::our_cli(),
                self.dir.path(),
                self.conf.path(),
                args,
                b"",
            ),
        )
    }
}

/// A TCP connection to `port` on 127.0.0.1 from the loopback address `from`.
fn connect_from(from: &str, port: u16) -> std::io::Result<std::net::TcpStream> {
    use nix::sys::socket::{AddressFamily, SockFlag, SockType, SockaddrIn, bind, connect, socket};
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let local: SocketAddr = format!("{from}:0").parse().map_err(std::io::Error::other)?;
    let SocketAddr::V4(local) = local else {
        return Err(std::io::Error::other("not IPv4"));
    };
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(local),
    )?;
    let remote = std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, port);
    connect(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::from(remote),
    )?;
    Ok(std::net::TcpStream::from(fd))
}

/// An untrusted TLS session to the daemon from the loopback address `from`.
fn tls_from(
    from: &str,
    port: u16,
) -> std::io::Result<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>> {
    let provider = incus_daemon::tls::provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(std::io::Error::other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(common::AnyServer(provider)))
        .with_no_client_auth();
    let name =
        rustls::pki_types::ServerName::try_from("127.0.0.1").map_err(std::io::Error::other)?;
    let conn =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let tcp = connect_from(from, port)?;
    tcp.set_read_timeout(Some(Duration::from_secs(120)))?;
    Ok(rustls::StreamOwned::new(conn, tcp))
}

/// `GET /1.0` (untrusted) from `from`: the status, or the error of a refused connection.
fn get_from(from: &str, port: u16, extra_headers: &str) -> std::io::Result<u16> {
    let mut s = tls_from(from, port)?;
    write!(
        s,
        "GET /1.0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n{extra_headers}\r\n"
    )?;
    let mut raw = Vec::new();
    // A close without close_notify is reported as an error after the data: keep the data.
    let read = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw);
    match text.split(' ').nth(1).and_then(|c| c.parse().ok()) {
        Some(status) => Ok(status),
        None => Err(read
            .err()
            .unwrap_or_else(|| std::io::Error::other("closed without an answer"))),
    }
}

/// Waits until `stream` is closed by the daemon; returns how long that took, or `None` if
/// it still was not after `bound`.
fn closed_within(mut stream: impl Read, started: Instant, bound: Duration) -> Option<Duration> {
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return Some(started.elapsed()),
            Ok(_) if started.elapsed() > bound => return None,
            Ok(_) => {}
        }
    }
}

#[test]
fn connection_websocket_and_slow_client_limits() {
    if std::env::var("INCUS_TEST_PRIVILEGED").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED connection_websocket_and_slow_client_limits: set INCUS_TEST_PRIVILEGED=1 (as root)"
        );
        return;
    }
    let d = Daemon::start();
    let port = common::free_port();
    d.cli(&[
        "config",
        "set",
        "core.https_address",
        &format!("127.0.0.1:{port}"),
    ]);
    let id_dir = tempfile::tempdir().expect("tempdir");
    let tls = common::trusted_identity(&d, id_dir.path(), |a| d.cli(a));
    let url = format!("https://127.0.0.1:{port}");
    let images = common::image_dir("limits");
    d.cli(&[
        "image",
        "import",
        images.path().join("busybox.tar.xz").to_str().expect("path"),
        "--alias",
        "busybox",
    ]);
    d.cli(&["launch", "busybox", "c1"]);
    let socket = d.dir.path().join("unix.socket");
    let per_client = incus_daemon::https::MAX_PER_CLIENT;

    // Slow clients first, so their limits run out while the rest of the test goes on: one
    // that never starts its TLS handshake, one that never finishes its request head.
    let slow_started = Instant::now();
    let silent = connect_from("127.0.0.3", port).expect("connect");
    silent
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    let silent = std::thread::spawn(move || {
        closed_within(
            silent,
            slow_started,
            3 * incus_daemon::https::HANDSHAKE_TIMEOUT,
        )
    });
    let mut half = tls_from("127.0.0.3", port).expect("tls");
    write!(half, "GET /1.0 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ").expect("write");
    half.flush().expect("flush");
    let half = std::thread::spawn(move || {
        closed_within(half, slow_started, 3 * incus_daemon::https::HEADER_TIMEOUT)
    });
    // Two execs that wait for their websockets: nobody connects to the first; only stdin
    // (of stdin, stdout and stderr) of the second is connected.
    let exec = |command: &str| {
        let (status, body) = common::unix_request(
            &socket,
            "POST",
            "/1.0/instances/c1/exec",
            &serde_json::json!({
                "command": ["sh", "-c", command],
                "wait-for-websocket": true,
                "interactive": false,
            })
            .to_string(),
        );
        assert_eq!(status, 202, "{body}");
        body
    };
    let abandoned = exec("touch /never-ran-1");
    let partial = exec("touch /never-ran-2");
    let partial_id = partial["metadata"]["id"].as_str().expect("id").to_string();
    let stdin_secret = partial["metadata"]["metadata"]["fds"]["0"]
        .as_str()
        .expect("secret")
        .to_string();

    // An oversized request head is refused, and the daemon answers the next request.
    let big = format!(
        "X-Big: {}\r\n",
        "a".repeat(4 * incus_daemon::https::MAX_HEADER_BYTES)
    );
    match get_from("127.0.0.1", port, &big) {
        Ok(status) => assert_eq!(status, 431, "oversized head"),
        Err(e) => println!("limits: oversized head: connection closed ({e})"),
    }
    assert_eq!(get_from("127.0.0.1", port, "").expect("GET /1.0"), 200);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let client = Client::https(&url, &tls).expect("client");
        // Fill this address's places with event listeners: websockets outlive the request
        // that opened them, and keep their place.
        let mut listeners = Vec::new();
        for i in 0..per_client {
            let ev = client
                .events("/1.0/events?type=lifecycle")
                .await
                .unwrap_or_else(|e| panic!("event listener {i}: {e}"));
            listeners.push(ev);
        }
        // The next websocket, and any request, from this address is turned away.
        let refused = client.events("/1.0/events").await;
        assert!(refused.is_err(), "websocket past the per-client limit");
        let fresh = Client::https(&url, &tls).expect("client");
        let e = fresh
            .server()
            .await
            .expect_err("request past the per-client limit");
        println!(
            "limits: request {} from a full address: {e}",
            per_client + 1
        );
        // Another address is served meanwhile.
        assert_eq!(
            tokio::task::spawn_blocking(move || get_from("127.0.0.2", port, ""))
                .await
                .expect("join")
                .expect("GET /1.0 from another address"),
            200
        );
        // The listeners still work: an event reaches the last one.
        let unix = Client::new(&socket).expect("unix client");
        unix.create_profile(&incus_core::api::ProfilesPost {
            name: "limits-event".into(),
            ..Default::default()
        })
        .await
        .expect("profile");
        let last = listeners.last_mut().expect("listener");
        let ev = tokio::time::timeout(Duration::from_secs(30), last.next())
            .await
            .expect("an event in time")
            .expect("stream open")
            .expect("event");
        assert_eq!(ev["metadata"]["action"], "profile-created", "{ev}");

        // Closing websockets gives their places back.
        listeners.truncate(per_client - 4);
        let mut served = None;
        for _ in 0..100 {
            if let Ok(s) = Client::https(&url, &tls).expect("client").server().await {
                served = Some(s);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            served.is_some(),
            "places given back after closing websockets"
        );
        drop(listeners);

        let mut stdin = client
            .websocket(&format!(
                "/1.0/operations/{partial_id}/websocket?secret={stdin_secret}"
            ))
            .await
            .expect("stdin websocket");
        // Both execs end at the deadline, neither command ran, and the connected stream
        // is closed by the daemon.
        for op in [&abandoned, &partial] {
            let id = op["metadata"]["id"].as_str().expect("id");
            let (status, body) = common::unix_request(
                &socket,
                "GET",
                &format!("/1.0/operations/{id}/wait?timeout=120"),
                "",
            );
            assert_eq!(status, 200, "{body}");
            assert_eq!(body["metadata"]["status"], "Failure", "{body}");
            let err = body["metadata"]["err"].as_str().unwrap_or_default();
            assert!(
                err.contains("Timed out waiting for websockets to connect"),
                "{body}"
            );
        }
        use futures_util::StreamExt;
        let end = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(Ok(m)) = stdin.next().await {
                if m.is_close() {
                    break;
                }
            }
        })
        .await;
        assert!(
            end.is_ok(),
            "the connected stream of an abandoned exec is closed"
        );
    });
    for file in ["/never-ran-1", "/never-ran-2"] {
        let (status, _) = common::unix_request(
            &socket,
            "GET",
            &format!("/1.0/instances/c1/files?path={file}"),
            "",
        );
        assert_eq!(status, 404, "{file} exists: the command ran");
    }

    let silent = silent.join().expect("join");
    println!("limits: connection without a TLS handshake closed after {silent:?}");
    assert!(
        silent.is_some(),
        "a connection that never starts TLS is closed"
    );
    let half = half.join().expect("join");
    println!("limits: half a request head closed after {half:?}");
    assert!(half.is_some(), "a request head that never ends is closed");
    assert_eq!(get_from("127.0.0.3", port, "").expect("GET /1.0"), 200);
}
