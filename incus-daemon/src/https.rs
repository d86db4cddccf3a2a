//! The HTTPS listener (`core.https_address`): TLS 1.3 with optional client certificates, the
//! same router as the unix socket, and the caller's certificate handed to the router as a
//! [`Peer`] extension for `auth` to decide trust.
//!
//! Limits against slow or greedy clients: a TLS handshake must finish within
//! [`HANDSHAKE_TIMEOUT`], request headers within [`HEADER_TIMEOUT`] and fit in
//! [`MAX_HEADER_BYTES`]; at most [`MAX_CONNECTIONS`] connections are served at once and at
//! most [`MAX_PER_CLIENT`] from one IP address (further ones are closed at once). A
//! connection upgraded to a websocket (events, exec and console streams) or to SFTP keeps its
//! place until the upgraded stream closes, so these limits bound websockets too.

use crate::Daemon;
use crate::tls::ServerCert;
use incus_core::error::{Error, Result};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

/// Time allowed for a TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Time allowed for a request's headers to arrive.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest request head (request line and headers) accepted.
pub const MAX_HEADER_BYTES: usize = 64 << 10;
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 1024;
/// Connections served at once from one client address (websockets included).
pub const MAX_PER_CLIENT: usize = 128;

/// Who is on the other end of an HTTPS connection (absent for the unix socket).
#[derive(Clone, Debug)]
pub struct Peer {
    /// The client's address.
    pub addr: SocketAddr,
    /// The client certificate (DER), if one was presented.
    pub certificate: Option<Arc<Vec<u8>>>,
    /// Its SHA-256 fingerprint.
    pub fingerprint: Option<String>,
}

struct Running {
    addr: SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops accepting and waits until the listening socket is closed.
    async fn halt(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The daemon's HTTPS side.
#[derive(Default)]
pub(crate) struct Https {
    /// Set by `incusd` (an embedded engine has no network listener).
    pub(crate) enabled: AtomicBool,
    cert: OnceLock<Arc<ServerCert>>,
    running: tokio::sync::Mutex<Option<Running>>,
}

impl Https {
    /// The server certificate, loaded (or made) on first use.
    pub(crate) fn cert(&self, dir: &std::path::Path) -> Result<Arc<ServerCert>> {
        if let Some(c) = self.cert.get() {
            return Ok(c.clone());
        }
        let c = Arc::new(ServerCert::load_or_create(dir)?);
        Ok(self.cert.get_or_init(|| c).clone())
    }

    /// The address being listened on.
    pub(crate) async fn address(&self) -> Option<SocketAddr> {
        self.running.lock().await.as_ref().map(|r| r.addr)
    }
}

/// Listens for HTTPS on `address` (`core.https_address` syntax; empty stops listening),
/// replacing the previous listener. The new socket is bound before the old one is closed, so
/// a bad address leaves things as they were.
pub async fn set_https_address(daemon: &Arc<Daemon>, address: &str) -> Result<()> {
    let https = &daemon.https;
    let mut running = https.running.lock().await;
    let wanted = if address.trim().is_empty() {
        None
    } else {
        Some(incus_core::config::parse_listen_address(address, 8443)?)
    };
    if running.as_ref().map(|r| r.addr) == wanted {
        return Ok(());
    }
    if let Some(addr) = wanted {
        let cert = https.cert(daemon.host.state_dir())?;
        let config = Arc::new(cert.server_config()?);
        // The same port on another address may collide with the old socket: that one is
        // closed first, and listened on again if the new address cannot be bound.
        let same_port = running
            .as_ref()
            .is_some_and(|r| r.addr.port() == addr.port());
        let mut closed = None;
        if same_port && let Some(old) = running.take() {
            closed = Some(old.addr);
            old.halt().await;
        }
        let listener = match bind(addr) {
            Ok(l) => l,
            Err(e) => {
                if let Some(old) = closed
                    && let Ok(l) = bind(old)
                {
                    *running = Some(start(daemon, old, l, config));
                }
                return Err(e);
            }
        };
        if let Some(old) = running.replace(start(daemon, addr, listener, config)) {
            old.halt().await;
        }
    } else if let Some(old) = running.take() {
        old.halt().await;
    }
    Ok(())
}

fn start(
    daemon: &Arc<Daemon>,
    addr: SocketAddr,
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> Running {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(serve(daemon.clone(), listener, config, stopped));
    Running { addr, stop, task }
}

/// The addresses a client can reach a listener on `addr` at (`environment.addresses`, and
/// the addresses in a trust token): `addr` itself, or every address of the host's
/// interfaces (link-local ones left out, loopback last) when it listens on all of them.
pub(crate) fn client_addresses(addr: SocketAddr) -> Vec<String> {
    if !addr.ip().is_unspecified() {
        return vec![addr.to_string()];
    }
    let mut out = Vec::new();
    if let Ok(ifs) = nix::ifaddrs::getifaddrs() {
        for i in ifs {
            let Some(a) = i.address else { continue };
            let ip: IpAddr = if let Some(v4) = a.as_sockaddr_in() {
                v4.ip().into()
            } else if let Some(v6) = a.as_sockaddr_in6() {
                if addr.is_ipv4() || (v6.ip().segments()[0] & 0xffc0) == 0xfe80 {
                    continue;
                }
                v6.ip().into()
            } else {
                continue;
            };
            let s = SocketAddr::new(ip, addr.port()).to_string();
            if !out.contains(&s) {
                out.push(s);
            }
        }
    }
    out.sort_by_key(|a| a.starts_with("127.") || a.starts_with("[::1]"));
    out
}

fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    let fail = |e: std::io::Error| Error::invalid(format!("Cannot listen on {addr}: {e}"));
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(fail)?;
    socket.set_reuseaddr(true).map_err(fail)?;
    socket.bind(addr).map_err(fail)?;
    socket.listen(1024).map_err(fail)
}

/// Counts connections per client address; the guard gives its place back.
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

struct Slot {
    table: Arc<PerClient>,
    ip: IpAddr,
    _global: tokio::sync::OwnedSemaphorePermit,
}

impl PerClient {
    fn take(
        self: &Arc<Self>,
        ip: IpAddr,
        global: tokio::sync::OwnedSemaphorePermit,
    ) -> Option<Slot> {
        let mut m = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = m.entry(ip).or_default();
        if *n >= MAX_PER_CLIENT {
            return None;
        }
        *n += 1;
        Some(Slot {
            table: self.clone(),
            ip,
            _global: global,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut m = self
            .table
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = m.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

/// A connection's stream together with its [`Slot`]: hyper hands the stream itself to an
/// upgrade (a websocket, SFTP), so the slot goes wherever the stream goes and is given back
/// only when the last use of the connection ends.
struct Holding<S> {
    io: S,
    _slot: Slot,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Holding<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Holding<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

async fn serve(
    daemon: Arc<Daemon>,
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let router = crate::router(daemon);
    let global = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    let per_client = Arc::new(PerClient::default());
    loop {
        let (stream, addr) = tokio::select! {
            _ = stopped.changed() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(_) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = global.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let Some(slot) = per_client.take(addr.ip(), permit) else {
            drop(stream);
            continue;
        };
        let (acceptor, router, mut stopped) = (acceptor.clone(), router.clone(), stopped.clone());
        tokio::spawn(async move {
            let _ = stream.set_nodelay(true);
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                _ => return,
            };
            let certificate = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| Arc::new(c.to_vec()));
            let peer = Peer {
                addr,
                fingerprint: certificate
                    .as_deref()
                    .map(|d| incus_core::host::trust::fingerprint(d)),
                certificate,
            };
            let svc =
                hyper_util::service::TowerToHyperService::new(router.layer(axum::Extension(peer)));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEADER_BYTES)
                .serve_connection(
                    hyper_util::rt::TokioIo::new(Holding {
                        io: tls,
                        _slot: slot,
                    }),
                    svc,
                )
                .with_upgrades();
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                _ = stopped.changed() => {}
            }
        });
    }
}
