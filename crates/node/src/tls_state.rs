//! The node's live TLS identity: its certificate and key, the configs built
//! from them, and the revocation set its verifiers consult. Renewal swaps
//! all of it at once; new connections use the new certificate.

use std::sync::{Arc, RwLock};

use rustls::ClientConfig;
use xtreem_net::server::ServerConfigHandle;
use xtreem_net::tls::TlsMaterial;
use xtreem_net::{PeerIdentity, RevocationSet, identity_from_der};
use xtreem_security::{SecurityError, files};

use crate::paths::DataDir;

struct Installed {
    identity: PeerIdentity,
    material: TlsMaterial,
    client: Arc<ClientConfig>,
    generation: u64,
}

/// Shared by the servers, the background loops and the RPC handlers.
pub struct TlsState {
    installed: RwLock<Option<Installed>>,
    server: RwLock<Option<ServerConfigHandle>>,
    pub revoked: RevocationSet,
}

impl Default for TlsState {
    fn default() -> Self {
        TlsState {
            installed: RwLock::new(None),
            server: RwLock::new(None),
            revoked: RevocationSet::new(),
        }
    }
}

fn tls_err(e: impl std::fmt::Display) -> SecurityError {
    SecurityError::Certificate(e.to_string())
}

impl TlsState {
    /// Loads the identity saved in `data`, if there is one.
    pub fn load(&self, data: &DataDir) -> Result<bool, SecurityError> {
        let path = data.node_identity();
        if !path.exists() {
            return Ok(false);
        }
        let bundle = files::read_to_string(&path)?;
        let ca = files::read_to_string(&data.ca_cert())?;
        self.install(&ca, &bundle, &bundle)?;
        Ok(true)
    }

    /// Saves a new certificate and key to `data`, then installs them.
    pub fn save_and_install(
        &self,
        data: &DataDir,
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
    ) -> Result<(), SecurityError> {
        let material = TlsMaterial::from_pem(ca_pem, cert_pem, key_pem).map_err(tls_err)?;
        drop(material);
        files::write_public(&data.ca_cert(), ca_pem.as_bytes())?;
        files::write_private(
            &data.node_identity(),
            format!("{cert_pem}{key_pem}").as_bytes(),
        )?;
        self.install(ca_pem, cert_pem, key_pem)
    }

    fn install(&self, ca_pem: &str, cert_pem: &str, key_pem: &str) -> Result<(), SecurityError> {
        let material = TlsMaterial::from_pem(ca_pem, cert_pem, key_pem).map_err(tls_err)?;
        let identity = identity_from_der(&material.cert).map_err(tls_err)?;
        let client = material.client_config(&self.revoked).map_err(tls_err)?;
        let server_config = material.server_config(&self.revoked).map_err(tls_err)?;
        {
            let mut server = self.server.write().map_err(tls_err)?;
            match server.as_ref() {
                Some(handle) => handle.replace(server_config),
                None => *server = Some(ServerConfigHandle::new(server_config)),
            }
        }
        let mut installed = self.installed.write().map_err(tls_err)?;
        let generation = installed.as_ref().map(|i| i.generation + 1).unwrap_or(1);
        *installed = Some(Installed {
            identity,
            material,
            client,
            generation,
        });
        Ok(())
    }

    pub fn identity(&self) -> Option<PeerIdentity> {
        self.installed
            .read()
            .ok()?
            .as_ref()
            .map(|i| i.identity.clone())
    }

    pub fn client_config(&self) -> Option<Arc<ClientConfig>> {
        self.installed
            .read()
            .ok()?
            .as_ref()
            .map(|i| Arc::clone(&i.client))
    }

    pub fn server_handle(&self) -> Option<ServerConfigHandle> {
        self.server.read().ok()?.clone()
    }

    pub fn ca_der(&self) -> Option<Vec<u8>> {
        self.installed
            .read()
            .ok()?
            .as_ref()
            .map(|i| i.material.ca.to_vec())
    }

    /// Bumped at each install, so holders of channels know to reconnect.
    pub fn generation(&self) -> u64 {
        self.installed
            .read()
            .ok()
            .and_then(|i| i.as_ref().map(|i| i.generation))
            .unwrap_or(0)
    }
}
