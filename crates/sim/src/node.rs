//! One simulated node: the real gossip [`Agent`] plus the simulator's
//! compact view of what it learned.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use xtreem_directory::{Directory, StaticDescriptor};
use xtreem_gossip::{Agent, Counters, DescriptorSink, NodeKey};

use crate::id::{SimId, name_index};

/// What one node knows about its site's descriptors: the version held for
/// every node index (0 = none; published versions start at 1), 8 bytes a
/// node. A directory replica also keeps the full [`Directory`]; the
/// descriptors in it are shared with every other holder through the
/// verifier's cache, so 10,000 replicas' worth costs one copy.
#[derive(Debug, Default)]
pub struct View {
    versions: Vec<u64>,
    known: u32,
    pub directory: Option<Directory>,
    /// Descriptors accepted (including our own).
    pub accepted: u64,
}

impl View {
    pub fn new(site_size: u32, replica: bool) -> View {
        View {
            versions: vec![0; site_size as usize],
            known: 0,
            directory: replica.then(Directory::new),
            accepted: 0,
        }
    }

    /// The version held for node `index` (0 when none).
    pub fn version_of(&self, index: u32) -> u64 {
        self.versions.get(index as usize).copied().unwrap_or(0)
    }

    /// How many nodes' descriptors this view holds.
    pub fn known(&self) -> u32 {
        self.known
    }

    /// Stores a descriptor directly (a warm start, not gossip).
    pub fn preload(&mut self, d: Arc<StaticDescriptor>) {
        self.store(d);
    }

    fn store(&mut self, d: Arc<StaticDescriptor>) {
        let Some(i) = name_index(&d.node) else {
            return;
        };
        let i = i as usize;
        if i >= self.versions.len() {
            self.versions.resize(i + 1, 0);
        }
        if self.versions[i] >= d.version {
            return;
        }
        if self.versions[i] == 0 {
            self.known += 1;
        }
        self.versions[i] = d.version;
        self.accepted += 1;
        if let Some(dir) = &mut self.directory {
            dir.upsert_static(d);
        }
    }
}

/// The [`DescriptorSink`] handed to a node's agent: a shared handle on its
/// [`View`], which the simulator reads between events.
#[derive(Debug, Clone, Default)]
pub struct SimSink(pub Rc<RefCell<View>>);

impl DescriptorSink for SimSink {
    fn known_version(&self, node: &str) -> Option<u64> {
        let i = name_index(node)?;
        let v = self.0.borrow().version_of(i);
        (v > 0).then_some(v)
    }

    fn accept(&mut self, descriptor: Arc<StaticDescriptor>) {
        self.0.borrow_mut().store(descriptor);
    }
}

pub type SimAgent = Agent<SimId, SimSink>;

/// A node of the simulation.
pub struct SimNode {
    pub index: u32,
    pub agent: SimAgent,
    pub view: Rc<RefCell<View>>,
    pub key: Arc<NodeKey>,
    pub descriptor: Arc<StaticDescriptor>,
    pub counters: Arc<Counters>,
    pub replica: bool,
    pub alive: bool,
    /// Bumped on every kill and restart; timers of an earlier life are
    /// dropped.
    pub life: u32,
    /// Members this node currently believes up (from MemberUp/MemberDown).
    pub members_up: u32,
    pub dynamic_seq: u64,
}
