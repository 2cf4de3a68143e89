//! Outgoing gRPC channels over our own TLS connector.

use std::sync::Arc;

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tonic::transport::{Channel, Endpoint, Uri};
use xtreem_util::limits::{CONNECT_TIMEOUT, RPC_TIMEOUT};

use crate::{NetError, Result};

/// Splits `host:port` and returns the TLS server name for `host`.
fn server_name(endpoint: &str) -> Result<ServerName<'static>> {
    let bad = |reason: &str| NetError::Connect {
        endpoint: endpoint.to_owned(),
        reason: reason.to_owned(),
    };
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or_else(|| bad("expected HOST:PORT"))?;
    port.parse::<u16>()
        .map_err(|_| bad("the port is not a number from 0 to 65535"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .map_err(|_| bad("the host is neither an IP address nor a DNS name"))
}

/// A lazily connecting channel to `endpoint` (`host:port`) over TLS with
/// `config`. The first RPC makes the connection; failures surface there.
pub fn connect(endpoint: &str, config: Arc<ClientConfig>) -> Result<Channel> {
    connect_from(endpoint, config, None)
}

/// Like [`connect`], with connections leaving from `local` (a node's own
/// address), as they would from a host with that address only.
pub fn connect_from(
    endpoint: &str,
    config: Arc<ClientConfig>,
    local: Option<std::net::IpAddr>,
) -> Result<Channel> {
    let name = server_name(endpoint)?;
    let uri = format!("http://{endpoint}");
    let ep = Endpoint::from_shared(uri).map_err(|e| NetError::Connect {
        endpoint: endpoint.to_owned(),
        reason: e.to_string(),
    })?;
    let ep = ep
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(RPC_TIMEOUT)
        .tcp_nodelay(true);
    let target = endpoint.to_owned();
    let connector = tower::service_fn(move |_uri: Uri| {
        let config = Arc::clone(&config);
        let name = name.clone();
        let target = target.clone();
        async move {
            let tcp = match local {
                None => TcpStream::connect(&target).await?,
                Some(ip) => {
                    let remote = tokio::net::lookup_host(&target)
                        .await?
                        .next()
                        .ok_or_else(|| std::io::Error::other("no address for the endpoint"))?;
                    let socket = if ip.is_ipv4() {
                        tokio::net::TcpSocket::new_v4()?
                    } else {
                        tokio::net::TcpSocket::new_v6()?
                    };
                    socket.bind(std::net::SocketAddr::new(ip, 0))?;
                    socket.connect(remote).await?
                }
            };
            tcp.set_nodelay(true)?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await?;
            Ok::<_, std::io::Error>(TokioIo::new(tls))
        }
    });
    Ok(ep.connect_with_connector_lazy(connector))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_name_host_and_port() {
        assert!(server_name("127.0.0.1:7000").is_ok());
        assert!(server_name("node-1.example:7000").is_ok());
        assert!(server_name("[::1]:7000").is_ok());
        assert!(server_name("127.0.0.1").is_err());
        assert!(server_name("host:99999").is_err());
    }
}
