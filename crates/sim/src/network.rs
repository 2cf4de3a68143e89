//! The simulated network: per-packet latency with jitter, optional loss,
//! partitions, and byte counters per node.

use rand010::RngExt;
use rand010::rngs::SmallRng;

use crate::clock::{MS, Micros};

/// How packets travel between nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    /// One-way latency between nodes of one site.
    pub intra_site_us: Micros,
    /// Uniform jitter added to or taken from every latency (at most the
    /// latency itself).
    pub jitter_us: Micros,
    /// One-way latency between sites.
    pub inter_site_us: Micros,
    /// Probability that any one packet is lost.
    pub loss: f64,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            intra_site_us: 200,
            jitter_us: 50,
            inter_site_us: 50 * MS,
            loss: 0.0,
        }
    }
}

/// Where each node is and what may reach it.
#[derive(Debug, Clone)]
pub struct Network {
    pub config: NetworkConfig,
    site_of: Vec<u16>,
    /// Partition group of each node; packets only flow inside a group.
    group_of: Option<Vec<u16>>,
    pub sent_bytes: Vec<u64>,
    pub received_bytes: Vec<u64>,
    pub sent_packets: u64,
    pub lost_packets: u64,
}

impl Network {
    pub fn new(config: NetworkConfig, site_of: Vec<u16>) -> Network {
        let n = site_of.len();
        Network {
            config,
            site_of,
            group_of: None,
            sent_bytes: vec![0; n],
            received_bytes: vec![0; n],
            sent_packets: 0,
            lost_packets: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.site_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.site_of.is_empty()
    }

    /// Splits the network: packets only flow between nodes of the same
    /// group. `None` heals it.
    pub fn set_partition(&mut self, groups: Option<Vec<u16>>) {
        self.group_of = groups;
    }

    /// Records that `from` sends `bytes` to `to` and decides its fate: the
    /// one-way latency, or `None` if the packet is lost or cut off.
    pub fn send(&mut self, rng: &mut SmallRng, from: u32, to: u32, bytes: usize) -> Option<Micros> {
        let (f, t) = (from as usize, to as usize);
        if f >= self.site_of.len() || t >= self.site_of.len() {
            return None;
        }
        self.sent_bytes[f] += bytes as u64;
        self.sent_packets += 1;
        if let Some(groups) = &self.group_of
            && groups.get(f) != groups.get(t)
        {
            self.lost_packets += 1;
            return None;
        }
        if self.config.loss > 0.0 && rng.random_bool(self.config.loss.min(1.0)) {
            self.lost_packets += 1;
            return None;
        }
        let base = if self.site_of[f] == self.site_of[t] {
            self.config.intra_site_us
        } else {
            self.config.inter_site_us
        };
        let jitter = self.config.jitter_us.min(base);
        let latency = if jitter == 0 {
            base
        } else {
            base - jitter + rng.random_range(0..=2 * jitter)
        };
        Some(latency.max(1))
    }

    /// Records that `to` received `bytes`.
    pub fn received(&mut self, to: u32, bytes: usize) {
        if let Some(r) = self.received_bytes.get_mut(to as usize) {
            *r += bytes as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand010::SeedableRng;

    #[test]
    fn latency_stays_within_jitter_and_partitions_cut() {
        let mut rng = SmallRng::seed_from_u64(1);
        let mut net = Network::new(NetworkConfig::default(), vec![0, 0, 1]);
        for _ in 0..100 {
            let l = net.send(&mut rng, 0, 1, 10).unwrap();
            assert!((150..=250).contains(&l));
            let l = net.send(&mut rng, 0, 2, 10).unwrap();
            assert!((49_950..=50_050).contains(&l));
        }
        assert_eq!(net.sent_bytes[0], 2000);
        net.set_partition(Some(vec![0, 1, 0]));
        assert_eq!(net.send(&mut rng, 0, 1, 10), None);
        assert!(net.send(&mut rng, 0, 2, 10).is_some());
    }
}
