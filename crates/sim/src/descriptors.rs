//! Seeded, varied descriptors and samples, so that queries and site
//! summaries have something to discriminate on.
//!
//! Each site has a profile (which VOs it serves, whether it has GPUs or ARM
//! machines, how big its nodes are); each node draws its hardware from its
//! site's profile.

use std::collections::{BTreeMap, BTreeSet};

use rand010::RngExt;
use rand010::rngs::SmallRng;
use xtreem_directory::{DynamicSample, ServiceEntry, StaticDescriptor};

const VOS: [&str; 8] = [
    "cms", "atlas", "alice", "lhcb", "bio", "astro", "climate", "chem",
];
const CORES: [u32; 7] = [4, 8, 16, 32, 48, 64, 128];
const GIB: u64 = 1 << 30;

/// The name of site number `index`: `s0`, `s1`, ...
pub fn site_name(index: u32) -> String {
    format!("s{index}")
}

/// What kind of machines a site has.
#[derive(Debug, Clone)]
pub struct SiteProfile {
    pub site: String,
    pub vos: Vec<&'static str>,
    pub gpu_share: f64,
    pub aarch64_share: f64,
    pub ppc_share: f64,
    /// Largest index into the cores table this site uses.
    pub max_cores_rank: usize,
    pub max_mem_gib: u64,
}

impl SiteProfile {
    pub fn draw(rng: &mut SmallRng, site_index: u32) -> SiteProfile {
        let mut vos: Vec<&'static str> = Vec::new();
        let n_vos = rng.random_range(1..=3);
        while vos.len() < n_vos {
            let vo = VOS[rng.random_range(0..VOS.len())];
            if !vos.contains(&vo) {
                vos.push(vo);
            }
        }
        vos.sort_unstable();
        let gpu_share = if rng.random_bool(0.3) {
            rng.random_range(0.05..0.4)
        } else {
            0.0
        };
        let aarch64_share = if rng.random_bool(0.2) {
            rng.random_range(0.1..0.6)
        } else {
            0.0
        };
        let ppc_share = if rng.random_bool(0.05) { 0.1 } else { 0.0 };
        let max_cores_rank = rng.random_range(2..CORES.len());
        let max_mem_gib = [32, 64, 128, 256, 512][rng.random_range(0..5usize)];
        SiteProfile {
            site: site_name(site_index),
            vos,
            gpu_share,
            aarch64_share,
            ppc_share,
            max_cores_rank,
            max_mem_gib,
        }
    }

    /// A node of this site. `core` nodes run the site's directory replica.
    pub fn descriptor(&self, rng: &mut SmallRng, node: &str, core: bool) -> StaticDescriptor {
        let mut d = StaticDescriptor::example(node, &self.site);
        d.roles = vec![if core { "core" } else { "resource" }.to_owned()];
        let arch_draw: f64 = rng.random();
        d.arch = if arch_draw < self.aarch64_share {
            "aarch64"
        } else if arch_draw < self.aarch64_share + self.ppc_share {
            "ppc64le"
        } else {
            "x86_64"
        }
        .to_owned();
        d.cores = CORES[rng.random_range(0..=self.max_cores_rank)];
        let mut mem = 8;
        while mem < self.max_mem_gib && rng.random_bool(0.55) {
            mem *= 2;
        }
        d.memory_bytes = mem * GIB;
        d.disk_bytes = rng.random_range(1u64..=40) * 100 * GIB;
        let mut tags = BTreeSet::new();
        if rng.random_bool(self.gpu_share) {
            tags.insert("gpu".to_owned());
        }
        if rng.random_bool(0.5) {
            tags.insert("ssd".to_owned());
        }
        if rng.random_bool(0.2) {
            tags.insert("infiniband".to_owned());
        }
        if mem >= 256 {
            tags.insert("highmem".to_owned());
        }
        d.tags = tags;
        let mut labels = BTreeMap::new();
        labels.insert(
            "rack".to_owned(),
            format!("r{:02}", rng.random_range(0..40u32)),
        );
        d.labels = labels;
        d.vos = self
            .vos
            .iter()
            .filter(|_| rng.random_bool(0.8))
            .map(|v| (*v).to_owned())
            .collect();
        if core {
            d.services.push(ServiceEntry {
                kind: "directory".to_owned(),
                address: format!("{node}.{}:7001", self.site),
                healthy: true,
            });
        }
        d
    }
}

/// A plausible current load for a node described by `d`.
pub fn sample(rng: &mut SmallRng, d: &StaticDescriptor, seq: u64, unix_ms: u64) -> DynamicSample {
    let busy: f32 = rng.random();
    let free_cores = ((1.0 - busy) * d.cores as f32).floor();
    DynamicSample {
        seq,
        sampled_unix_ms: unix_ms,
        free_cores,
        free_memory_bytes: (d.memory_bytes as f64 * (1.0 - busy as f64 * 0.9)) as u64,
        load: busy * d.cores as f32,
        running_jobs: (busy * 8.0) as u32,
        free_disk_bytes: d.disk_bytes / 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand010::SeedableRng;

    #[test]
    fn generated_descriptors_and_samples_are_valid() {
        let mut rng = SmallRng::seed_from_u64(9);
        for s in 0..20 {
            let profile = SiteProfile::draw(&mut rng, s);
            for i in 0..50 {
                let d = profile.descriptor(&mut rng, crate::id::node_name(i), i < 3);
                d.validate().unwrap();
                assert!(d.encode().unwrap().len() < 600);
                sample(&mut rng, &d, 1, 0).validate(&d).unwrap();
            }
        }
    }
}
