//! What the daemon tests share: running the `incus` client against a state directory,
//! checking its outcome, and stopping the containers a daemon left running.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Runs the `incus` client on the daemon of `dir`, with its own config in `conf`, feeding
/// `stdin`.
pub fn incus(dir: &Path, conf: &Path, args: &[&str], stdin: &[u8]) -> Output {
    run_client(Path::new("incus"), dir, conf, args, stdin)
}

/// Our own command line (`incus` of the incus-cli crate, built next to `incusd`).
pub fn our_cli() -> std::path::PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_incusd")).with_file_name("incus");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p incus-cli`",
        path.display()
    );
    path
}

/// Runs the client `program` on the daemon of `dir`, with its own config in `conf`, feeding
/// `stdin`.
pub fn run_client(program: &Path, dir: &Path, conf: &Path, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut c = Command::new(program)
        .args(args)
        .env("INCUS_DIR", dir)
        .env("INCUS_CONF", conf)
        .env("HOME", conf)
        .env_remove("INCUS_SOCKET")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the incus client");
    let mut input = c.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    c.wait_with_output().expect("incus output")
}

/// The stdout of a client run that must have succeeded.
pub fn succeeded(args: &[&str], out: Output) -> String {
    assert!(
        out.status.success(),
        "incus {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The stderr of a client run that must have failed.
pub fn failed(args: &[&str], out: Output) -> String {
    assert!(
        !out.status.success(),
        "incus {args:?} unexpectedly succeeded"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Force-stops every container the daemon of `dir` left running (also after a panic),
/// through its helper subcommand; `wrapper` prefixes the command (`ip netns exec NS` for a
/// daemon in a network namespace: liblxc's command socket is abstract, so per namespace).
pub fn stop_leftover_containers(dir: &Path, wrapper: &[&str]) {
    let Ok(entries) = std::fs::read_dir(dir.join("logs")) else {
        return;
    };
    for e in entries.flatten() {
        let d = e.path();
        if !d.join("init.pid").exists() {
            continue;
        }
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(env!("CARGO_BIN_EXE_incusd"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_incusd")),
        };
        let _ = cmd
            .arg("forklxc")
            .arg("stop")
            .arg(dir.join("containers"))
            .arg(e.file_name())
            .arg(d.join("lxc.conf"))
            .arg(d.join("lxc.log"))
            .status();
    }
}

/// One raw HTTP/1.1 request on the unix socket; returns (status, JSON body).
pub fn unix_request(
    socket: &Path,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, serde_json::Value) {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(socket).expect("connect");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: incus\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    let text = String::from_utf8_lossy(&raw);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    (
        status,
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null),
    )
}

/// `incusd` on a private state directory, with a private client config directory; stopped
/// (by PID) when dropped, with every container it left running.
pub struct Daemon {
    /// The daemon process.
    pub child: Child,
    /// Its state directory.
    pub dir: tempfile::TempDir,
    /// The client's config directory.
    pub conf: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Stop the daemon (ours, by pid), then force-stop every container it left running.
        let _ = self.child.kill();
        let _ = self.child.wait();
        stop_leftover_containers(self.dir.path(), &[]);
    }
}

/// Starts `incusd --dir DIR` and waits for its socket. `INCUS_TEST_DAEMON_ARGS` adds
/// arguments (`--debug` for the daemon's debug log on the test's standard error).
pub fn spawn_incusd(dir: &Path) -> Child {
    let _ = std::fs::remove_file(dir.join("unix.socket"));
    let extra = std::env::var("INCUS_TEST_DAEMON_ARGS").unwrap_or_default();
    let mut child = Command::new(env!("CARGO_BIN_EXE_incusd"))
        .arg("--dir")
        .arg(dir)
        .args(extra.split_whitespace())
        .stdout(Stdio::null())
        .spawn()
        .expect("start incusd");
    for _ in 0..400 {
        if dir.join("unix.socket").exists() {
            return child;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("incusd did not create its socket");
}

impl Daemon {
    /// A daemon on a new state directory.
    pub fn start() -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("incusd-test-")
            .tempdir()
            .expect("tempdir");
        let conf = tempfile::tempdir().expect("tempdir");
        let child = spawn_incusd(dir.path());
        Daemon { child, dir, conf }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Builds the busybox test images into a new directory (named after `tag`), removed when
/// the returned guard is dropped, also when the test fails.
pub fn image_dir(tag: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix(&format!("incus-test-images-{tag}-"))
        .tempdir_in("/tmp")
        .expect("tempdir");
    incus_tests::build_busybox_images(d.path());
    d
}

/// Runs `command` in instance `name` through the Rust client; returns its exit status and
/// its standard output.
pub async fn exec_output(
    c: &incus_client::Client,
    name: &str,
    command: &[&str],
) -> incus_client::Result<(i32, String)> {
    let (w, mut r) = tokio::io::duplex(1 << 16);
    let args = incus_client::ExecArgs {
        command: command.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    };
    let io = incus_client::ExecIo {
        stdin: Box::new(tokio::io::empty()),
        stdout: Box::new(w),
        stderr: Box::new(tokio::io::sink()),
        control: None,
    };
    let code = c.exec(name, &args, io).await?;
    let mut out = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut r, &mut out)
        .await
        .map_err(|e| incus_client::Error::internal(e.to_string()))?;
    Ok((code, out))
}

/// xorshift64*: small, fast, reproducible from its seed.
pub struct Rng(pub u64);

impl Rng {
    /// The next number.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 for 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// A random seed, or the one in environment variable `var` (to replay a run); never 0.
pub fn seed(var: &str) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        })
}

/// Accepts whatever certificate the server shows (the tests check trust on the server side).
#[derive(Debug)]
pub struct AnyServer(pub std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// A new client certificate, trusted by the daemon (`incus config trust add-certificate`
/// through `cli`), with the daemon's certificate pinned: what a trusted HTTPS client of
/// `incus_client` needs. The certificate files are in `id_dir`.
pub fn trusted_identity(
    d: &Daemon,
    id_dir: &Path,
    cli: impl Fn(&[&str]) -> String,
) -> incus_client::RemoteTls {
    let crt = id_dir.join("client.crt");
    let key = id_dir.join("client.key");
    let (cert_pem, key_pem) =
        incus_core::tls::load_or_create(&crt, &key, incus_core::tls::Usage::Client)
            .expect("client certificate");
    cli(&[
        "config",
        "trust",
        "add-certificate",
        crt.to_str().expect("path"),
        "--name",
        "test-client",
    ]);
    let server_pem = std::fs::read_to_string(d.dir.path().join("server.crt")).expect("server.crt");
    incus_client::RemoteTls {
        client_cert: Some(cert_pem),
        client_key: Some(key_pem),
        server_cert: Some(server_pem),
    }
}
