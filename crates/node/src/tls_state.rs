//! The node's live TLS identity: its certificate and key, the configs built
//! from them, the CAs of the sites this site trusts, and the revocation set
//! its verifiers consult. Renewal or a change of trusted sites swaps all of
//! it at once; new connections use the new configs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use rustls::ClientConfig;
use xtreem_net::server::ServerConfigHandle;
use xtreem_net::tls::{ForeignCa, TlsMaterial};
use xtreem_net::{PeerIdentity, RevocationSet, identity_from_der};
use xtreem_security::{SecurityError, files};

use crate::paths::DataDir;

struct Installed {
    identity: PeerIdentity,
    material: TlsMaterial,
    client: Arc<ClientConfig>,
}

/// Everything the configs are built from, behind one lock so that a
/// renewal and a change of trusted sites cannot interleave and leave the
/// server config built from a stale half of the two.
#[derive(Default)]
struct State {
    installed: Option<Installed>,
    /// CAs of the sites trusted with `xos site trust`; the server config
    /// admits their nodes.
    foreign: Vec<ForeignCa>,
    /// Client configs towards trusted sites, built on first use. They
    /// depend on `installed` and `foreign`, so whoever changes either
    /// replaces this with an empty cache while holding the write lock.
    foreign_clients: Mutex<HashMap<String, Arc<ClientConfig>>>,
    /// See [`TlsState::generation`].
    generation: u64,
}

/// Shared by the servers, the background loops and the RPC handlers.
pub struct TlsState {
    state: RwLock<State>,
    server: RwLock<Option<ServerConfigHandle>>,
    pub revoked: RevocationSet,
}

impl Default for TlsState {
    fn default() -> Self {
        TlsState {
            state: RwLock::new(State::default()),
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
        let mut state = self.state.write().map_err(tls_err)?;
        let server_config = material
            .server_config_with_foreign(&self.revoked, &state.foreign)
            .map_err(tls_err)?;
        self.replace_server(server_config)?;
        state.installed = Some(Installed {
            identity,
            material,
            client,
        });
        state.foreign_clients = Mutex::default();
        state.generation += 1;
        Ok(())
    }

    /// Replaces the CAs of the trusted sites. The server config is rebuilt
    /// so that new connections from their nodes are admitted (or, for a
    /// site no longer listed, refused), cached client configs towards
    /// trusted sites are dropped, and [`Self::generation`] is bumped so that
    /// holders of channels built from the old configs reconnect.
    ///
    /// Before a certificate is installed the list is only kept for the
    /// install to use. Fails, changing nothing, if the list cannot be used,
    /// e.g. if it names our own site.
    pub fn set_foreign(&self, foreign: Vec<ForeignCa>) -> Result<(), SecurityError> {
        let mut state = self.state.write().map_err(tls_err)?;
        if let Some(installed) = &state.installed {
            let server_config = installed
                .material
                .server_config_with_foreign(&self.revoked, &foreign)
                .map_err(tls_err)?;
            self.replace_server(server_config)?;
            state.generation += 1;
        }
        state.foreign = foreign;
        state.foreign_clients = Mutex::default();
        Ok(())
    }

    /// Swaps the config the accept loop uses; the caller holds the state
    /// write lock, so the lock order is always state, then server.
    fn replace_server(&self, config: Arc<rustls::ServerConfig>) -> Result<(), SecurityError> {
        let mut server = self.server.write().map_err(tls_err)?;
        match server.as_ref() {
            Some(handle) => handle.replace(config),
            None => *server = Some(ServerConfigHandle::new(config)),
        }
        Ok(())
    }

    pub fn identity(&self) -> Option<PeerIdentity> {
        self.state
            .read()
            .ok()?
            .installed
            .as_ref()
            .map(|i| i.identity.clone())
    }

    pub fn client_config(&self) -> Option<Arc<ClientConfig>> {
        self.state
            .read()
            .ok()?
            .installed
            .as_ref()
            .map(|i| Arc::clone(&i.client))
    }

    /// A client config for calling a node of the trusted site `site`: it
    /// presents this node's certificate and trusts only the CAs listed for
    /// `site`, whose certificate the server must name. `None` if no
    /// certificate is installed, `site` is not trusted, or its CA is
    /// unusable (logged).
    pub fn foreign_client_config(&self, site: &str) -> Option<Arc<ClientConfig>> {
        let state = self.state.read().ok()?;
        let installed = state.installed.as_ref()?;
        // Built under the read lock: a writer waits for us, then empties the
        // cache, so nothing built from replaced material or CAs survives.
        let mut cache = state.foreign_clients.lock().ok()?;
        if let Some(config) = cache.get(site) {
            return Some(Arc::clone(config));
        }
        if !state.foreign.iter().any(|f| f.site == site) {
            return None;
        }
        match installed
            .material
            .client_config_for_foreign_site(site, &state.foreign)
        {
            Ok(config) => {
                cache.insert(site.to_owned(), Arc::clone(&config));
                Some(config)
            }
            Err(e) => {
                tracing::warn!(%site, error = %e, "cannot build a client config for a trusted site");
                None
            }
        }
    }

    pub fn server_handle(&self) -> Option<ServerConfigHandle> {
        self.server.read().ok()?.clone()
    }

    pub fn ca_der(&self) -> Option<Vec<u8>> {
        self.state
            .read()
            .ok()?
            .installed
            .as_ref()
            .map(|i| i.material.ca.to_vec())
    }

    /// Bumped at each install and at each change of trusted sites once a
    /// certificate is installed, so holders of channels know to reconnect;
    /// 0 while nothing is installed.
    pub fn generation(&self) -> u64 {
        self.state.read().map(|s| s.generation).unwrap_or(0)
    }
}
