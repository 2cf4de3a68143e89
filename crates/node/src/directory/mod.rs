//! The node's part of the directory (SRDS): gossip membership, the view of
//! the site's descriptors, dynamic samples, and site summaries of trusted
//! sites.
//!
//! Two tiers, because the two kinds of data change at very different rates:
//! * static descriptors (hardware, tags, VOs served, services) and liveness
//!   spread by gossip to every node, so any node answers queries from its
//!   own view, also when cut off from the rest of the site;
//! * dynamic attributes (free cores, free memory, load, running jobs) change
//!   every few seconds: spreading them to every node would cost O(N) per
//!   change on every node (about 300 times the 10 KB/s budget at 10,000
//!   nodes), so each node pushes them every `sample_interval` (<= 5 s) to
//!   the site's directory replicas (its `core` nodes), which answer queries
//!   with fresh values. A node that cannot reach a replica answers from its
//!   own view and says that dynamic values are missing.

pub mod driver;
pub mod federation;
pub mod publish;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use xtreem_directory::{Directory, SiteSummary, StaticDescriptor};
use xtreem_gossip::{
    CounterSnapshot, Counters, DescriptorSink, Keyring, NodeId, NodeKey, Roster, SiteKey,
    StaticVerifier,
};
use xtreem_security::site::{GossipMemberRecord, GossipState};

/// Shares the directory view with foca's descriptor handler.
#[derive(Clone)]
pub struct ViewSink(pub Arc<RwLock<Directory>>);

impl DescriptorSink for ViewSink {
    fn known_version(&self, node: &str) -> Option<u64> {
        let view = self.0.read().ok()?;
        view.get(node).map(|r| r.descriptor.version)
    }

    fn accept(&mut self, descriptor: Arc<StaticDescriptor>) {
        if let Ok(mut view) = self.0.write() {
            let name = descriptor.node.clone();
            let known = view.get(&name).is_some();
            view.upsert_static(descriptor);
            if !known {
                // A node is heard of through its own fresh descriptor;
                // membership events say when it dies.
                view.set_alive(&name, true);
            }
        }
    }
}

/// One member as this node's gossip sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberInfo {
    pub id: NodeId,
    pub alive: bool,
}

/// A trusted site as its summary describes it.
#[derive(Debug, Clone)]
pub struct RemoteSite {
    pub summary: SiteSummary,
    pub endpoint: String,
    pub fetched_unix: u64,
}

/// The site's gossip key and roster as this node last received them.
#[derive(Debug, Clone, Default)]
pub struct GossipMaterial {
    pub version: u64,
    pub keyring: Option<Keyring>,
    pub roster: Vec<GossipMemberRecord>,
}

impl GossipMaterial {
    pub fn from_state(state: &GossipState) -> GossipMaterial {
        let keyring = state.key.map(|(id, key)| {
            Keyring::new(
                SiteKey::new(id, key),
                state.previous_key.map(|(id, key)| SiteKey::new(id, key)),
            )
        });
        GossipMaterial {
            version: state.version,
            keyring,
            roster: state.roster.clone(),
        }
    }

    pub fn roster(&self) -> Roster {
        Roster::new(self.roster.iter().map(|m| (m.node.clone(), m.public_key)))
    }

    /// Gossip identities of the roster's members other than `me`.
    pub fn seeds(&self, me: &str) -> Vec<NodeId> {
        self.roster
            .iter()
            .filter(|m| m.node != me)
            .filter_map(|m| {
                Some(NodeId {
                    name: m.node.clone(),
                    addr: m.endpoint.parse().ok()?,
                    incarnation: u16::try_from(m.incarnation).ok()?,
                })
            })
            .collect()
    }
}

/// Everything the directory keeps at run time.
pub struct DirectoryState {
    pub view: Arc<RwLock<Directory>>,
    pub key: NodeKey,
    pub identity: NodeId,
    pub counters: Arc<Counters>,
    pub verifier: Arc<Mutex<StaticVerifier>>,
    material: RwLock<GossipMaterial>,
    material_changed: tokio::sync::watch::Sender<u64>,
    members: RwLock<Vec<MemberInfo>>,
    summaries: RwLock<BTreeMap<String, RemoteSite>>,
}

impl DirectoryState {
    pub fn new(key: NodeKey, identity: NodeId) -> DirectoryState {
        DirectoryState {
            view: Arc::new(RwLock::new(Directory::new())),
            key,
            identity,
            counters: Arc::new(Counters::default()),
            verifier: Arc::new(Mutex::new(StaticVerifier::new(Roster::default()))),
            material: RwLock::new(GossipMaterial::default()),
            material_changed: tokio::sync::watch::channel(0).0,
            members: RwLock::new(Vec::new()),
            summaries: RwLock::new(BTreeMap::new()),
        }
    }

    /// This node's registration, as sent to the authority.
    pub fn own_record(&self) -> GossipMemberRecord {
        GossipMemberRecord {
            node: self.identity.name.clone(),
            endpoint: self.identity.addr.to_string(),
            incarnation: u32::from(self.identity.incarnation),
            public_key: self.key.public(),
        }
    }

    pub fn material(&self) -> GossipMaterial {
        self.material.read().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn material_version(&self) -> u64 {
        self.material.read().map(|m| m.version).unwrap_or(0)
    }

    pub fn install_material(&self, material: GossipMaterial) {
        if let Ok(mut verifier) = self.verifier.lock() {
            verifier.set_roster(material.roster());
        }
        let version = material.version;
        if let Ok(mut held) = self.material.write() {
            *held = material;
        }
        self.material_changed.send_replace(version);
    }

    pub fn subscribe_material(&self) -> tokio::sync::watch::Receiver<u64> {
        self.material_changed.subscribe()
    }

    pub fn set_members(&self, members: Vec<MemberInfo>) {
        if let Ok(mut held) = self.members.write() {
            *held = members;
        }
    }

    pub fn members(&self) -> Vec<MemberInfo> {
        self.members.read().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn counters(&self) -> CounterSnapshot {
        self.counters.snapshot()
    }

    pub fn set_summary(&self, site: String, remote: RemoteSite) {
        if let Ok(mut held) = self.summaries.write() {
            held.insert(site, remote);
        }
    }

    pub fn forget_summaries_except(&self, sites: &[String]) {
        if let Ok(mut held) = self.summaries.write() {
            held.retain(|site, _| sites.contains(site));
        }
    }

    pub fn summaries(&self) -> BTreeMap<String, RemoteSite> {
        self.summaries.read().map(|s| s.clone()).unwrap_or_default()
    }

    /// Alive directory replicas (core nodes) other than this node, with
    /// their gossip addresses, at most three.
    pub fn replicas(&self) -> Vec<(String, SocketAddr)> {
        let members = self.members();
        let Ok(view) = self.view.read() else {
            return Vec::new();
        };
        let mut replicas: Vec<(String, SocketAddr)> = members
            .iter()
            .filter(|m| m.alive && m.id.name != self.identity.name)
            .filter(|m| {
                view.get(&m.id.name).is_some_and(|r| {
                    r.alive && r.descriptor.roles.iter().any(|role| role == "core")
                })
            })
            .map(|m| (m.id.name.clone(), m.id.addr))
            .collect();
        replicas.sort();
        replicas.truncate(3);
        replicas
    }
}
