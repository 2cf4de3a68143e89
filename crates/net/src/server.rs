//! The TLS accept loop in front of the gRPC server.
//!
//! tonic is handed only connections that completed a TLS 1.3 handshake. Each
//! handshake runs in its own task, under [`TLS_HANDSHAKE_TIMEOUT`] and a bound
//! on handshakes in flight, so a peer sending garbage or nothing at all costs
//! one short-lived task and never stalls other clients.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;
use xtreem_util::limits::{
    ACCEPTED_CONNECTIONS_QUEUE_MAX, LINGER_DRAIN_BYTES_MAX, LINGER_ON_REFUSAL,
    TLS_HANDSHAKE_TIMEOUT, TLS_HANDSHAKES_IN_FLIGHT_MAX,
};

use crate::PeerIdentity;
use crate::identity::identity_from_der;

/// What the RPC layer learns about a connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub remote: Option<SocketAddr>,
    /// Set when the client presented a certificate that the verifier accepted.
    pub peer: Option<PeerIdentity>,
}

/// Counters of the accept loop, exported as metrics by the node.
#[derive(Debug, Default)]
pub struct TransportStats {
    pub handshakes_ok: AtomicU64,
    pub handshakes_failed: AtomicU64,
    pub handshakes_timed_out: AtomicU64,
}

/// A server config that can be swapped while the server runs (certificate
/// renewal); new connections pick up the latest one.
#[derive(Clone)]
pub struct ServerConfigHandle(Arc<RwLock<Arc<ServerConfig>>>);

impl ServerConfigHandle {
    pub fn new(config: Arc<ServerConfig>) -> Self {
        ServerConfigHandle(Arc::new(RwLock::new(config)))
    }

    pub fn replace(&self, config: Arc<ServerConfig>) {
        if let Ok(mut w) = self.0.write() {
            *w = config;
        }
    }

    fn current(&self) -> Option<Arc<ServerConfig>> {
        self.0.read().ok().map(|c| Arc::clone(&c))
    }
}

/// A finished TLS connection, ready for tonic.
pub struct TlsConn {
    stream: TlsStream<TcpStream>,
    info: ConnInfo,
}

impl Connected for TlsConn {
    type ConnectInfo = ConnInfo;
    fn connect_info(&self) -> ConnInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Accepts TCP connections, performs TLS handshakes, and yields the ones that
/// succeed. The loop stops when the returned stream is dropped.
pub struct TlsAcceptor;

impl TlsAcceptor {
    pub fn incoming(
        listener: TcpListener,
        config: ServerConfigHandle,
        stats: Arc<TransportStats>,
    ) -> ReceiverStream<Result<TlsConn, io::Error>> {
        let (tx, rx) = mpsc::channel(ACCEPTED_CONNECTIONS_QUEUE_MAX);
        tokio::spawn(accept_loop(listener, config, stats, tx));
        ReceiverStream::new(rx)
    }
}

async fn accept_loop(
    listener: TcpListener,
    config: ServerConfigHandle,
    stats: Arc<TransportStats>,
    tx: mpsc::Sender<Result<TlsConn, io::Error>>,
) {
    let handshakes = Arc::new(Semaphore::new(TLS_HANDSHAKES_IN_FLIGHT_MAX));
    loop {
        let permit = tokio::select! {
            _ = tx.closed() => return,
            permit = Arc::clone(&handshakes).acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let (tcp, remote) = tokio::select! {
            _ = tx.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(server_config) = config.current() else {
            tracing::error!("TLS server config lock poisoned; refusing connections");
            return;
        };
        let tx = tx.clone();
        let stats = Arc::clone(&stats);
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tcp.set_nodelay(true);
            let acceptor = tokio_rustls::TlsAcceptor::from(server_config);
            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp).into_fallible())
                .await
            {
                Ok(Ok(stream)) => {
                    stats.handshakes_ok.fetch_add(1, Ordering::Relaxed);
                    let peer = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|certs| certs.first())
                        .and_then(|cert| identity_from_der(cert).ok());
                    let info = ConnInfo {
                        remote: Some(remote),
                        peer,
                    };
                    let _ = tx.send(Ok(TlsConn { stream, info })).await;
                }
                Ok(Err((e, tcp))) => {
                    stats.handshakes_failed.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                    linger_close(tcp).await;
                }
                Err(_) => {
                    stats.handshakes_timed_out.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%remote, "TLS handshake timed out");
                }
            }
        });
    }
}

/// Closes a refused connection so that the client can read our TLS alert
/// (e.g. certificate_revoked). In TLS 1.3 the client has usually sent its
/// first request before it learns it was refused; closing with that request
/// unread makes the kernel send RST, which can discard the alert. So: send
/// FIN, drain what the client sent for a moment, then close.
async fn linger_close(mut tcp: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let _ = tcp.shutdown().await;
    let mut buf = [0u8; 4096];
    let mut drained = 0usize;
    let _ = tokio::time::timeout(LINGER_ON_REFUSAL, async {
        while drained < LINGER_DRAIN_BYTES_MAX {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
}
