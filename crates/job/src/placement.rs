//! Where to place a unit: ranking the nodes the directory offered.
//!
//! The home node asks the directory for nodes that match the job's
//! constraints, then ranks them with [`rank`] and offers the unit to the
//! best few in turn. The ranking spreads work out: among nodes that fit, it
//! prefers the one with the most left over *after* placement (the opposite
//! of best-fit packing), a low load, few running jobs, and the home's own
//! site.
//!
//! Score of a node that fits, higher is better:
//!
//! ```text
//!   1.0 * ln(1 + free cores after placement)
//! + 0.5 * ln(1 + free memory after placement, in GiB)
//! - 2.0 * load / (free cores + load)          (an estimate of how busy it is)
//! - 0.5 * ln(1 + running jobs)
//! + 1.0 if it is in the home's site
//! + 0.1 * a pseudo-random number in [0, 1) from the seed and the node name
//! ```
//!
//! Logarithms give diminishing returns, so a huge node does not take every
//! job. Dividing the load by an estimate of the node's size makes 8
//! runnable processes weigh little on 64 free cores and much on 4. The last
//! term breaks ties and near-ties differently for each seed, so that many
//! homes ranking the same idle nodes at once do not all pick the same one;
//! it is deterministic for a given seed.

/// A node the directory offered, with its latest dynamic sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub node: String,
    pub free_cores: u32,
    pub free_memory_bytes: u64,
    /// 1-minute load average.
    pub load: f64,
    pub running_jobs: u32,
    /// In the same site as the home node.
    pub same_site: bool,
}

pub const WEIGHT_CORES: f64 = 1.0;
pub const WEIGHT_MEMORY: f64 = 0.5;
pub const WEIGHT_LOAD: f64 = 2.0;
pub const WEIGHT_JOBS: f64 = 0.5;
pub const BONUS_SAME_SITE: f64 = 1.0;
pub const JITTER: f64 = 0.1;

const GIB: f64 = (1u64 << 30) as f64;

/// The indices of the candidates that can take a unit needing `need_cores`
/// cores and `need_memory` bytes, best first, at most `sample` of them.
/// Candidates that do not fit, or whose load is not a finite non-negative
/// number, are left out. See the module documentation for the score.
pub fn rank(
    candidates: &[Candidate],
    need_cores: u32,
    need_memory: u64,
    sample: usize,
    seed: u64,
) -> Vec<usize> {
    let mut scored: Vec<(f64, usize)> = candidates
        .iter()
        .enumerate()
        .filter_map(|(i, c)| score(c, need_cores, need_memory, seed).map(|s| (s, i)))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(sample).map(|(_, i)| i).collect()
}

/// The score of one candidate, `None` when it cannot take the unit.
pub fn score(c: &Candidate, need_cores: u32, need_memory: u64, seed: u64) -> Option<f64> {
    if c.free_cores < need_cores
        || c.free_memory_bytes < need_memory
        || !c.load.is_finite()
        || c.load < 0.0
    {
        return None;
    }
    let cores_left = f64::from(c.free_cores - need_cores);
    let memory_left = (c.free_memory_bytes - need_memory) as f64 / GIB;
    let busy = c.load / (f64::from(c.free_cores) + c.load).max(1.0);
    let mut score = WEIGHT_CORES * cores_left.ln_1p() + WEIGHT_MEMORY * memory_left.ln_1p()
        - WEIGHT_LOAD * busy
        - WEIGHT_JOBS * f64::from(c.running_jobs).ln_1p();
    if c.same_site {
        score += BONUS_SAME_SITE;
    }
    Some(score + JITTER * unit_random(seed, &c.node))
}

/// A number in [0, 1) that depends only on the seed and the name.
fn unit_random(seed: u64, name: &str) -> f64 {
    // FNV-1a of the name, mixed with the seed by SplitMix64.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let mut z = seed ^ hash;
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn node(name: &str, cores: u32, memory_gib: u64) -> Candidate {
        Candidate {
            node: name.to_owned(),
            free_cores: cores,
            free_memory_bytes: memory_gib << 30,
            load: 0.0,
            running_jobs: 0,
            same_site: true,
        }
    }

    #[test]
    fn drops_nodes_that_cannot_fit() {
        let nodes = [node("a", 1, 64), node("b", 8, 1), node("c", 8, 64)];
        assert_eq!(rank(&nodes, 2, 4 << 30, 10, 0), vec![2]);
        assert!(rank(&nodes, 16, 0, 10, 0).is_empty());
        // Exactly fitting is fitting.
        assert_eq!(rank(&nodes, 8, 64 << 30, 10, 0), vec![2]);
    }

    #[test]
    fn spreads_rather_than_packs() {
        let nodes = [
            node("small", 4, 8),
            node("big", 32, 128),
            node("mid", 16, 32),
        ];
        for seed in 0..20 {
            assert_eq!(
                rank(&nodes, 2, 1 << 30, 3, seed),
                vec![1, 2, 0],
                "seed {seed}"
            );
        }
    }

    #[test]
    fn load_jobs_and_site_count() {
        let mut busy = node("busy", 16, 32);
        busy.load = 14.0;
        let idle = node("idle", 16, 32);
        assert_eq!(rank(&[busy, idle.clone()], 1, 0, 2, 7), vec![1, 0]);

        let mut crowded = node("crowded", 16, 32);
        crowded.running_jobs = 50;
        assert_eq!(rank(&[crowded, idle.clone()], 1, 0, 2, 7), vec![1, 0]);

        let mut remote = node("remote", 16, 32);
        remote.same_site = false;
        assert_eq!(rank(&[remote, idle], 1, 0, 2, 7), vec![1, 0]);
    }

    #[test]
    fn load_weighs_by_node_size() {
        let mut large = node("large", 56, 64);
        large.load = 8.0;
        let small = node("small", 4, 64);
        assert_eq!(rank(&[small, large], 1, 0, 2, 3), vec![1, 0]);
    }

    #[test]
    fn bad_loads_are_dropped() {
        let mut nan = node("nan", 64, 64);
        nan.load = f64::NAN;
        let mut negative = node("neg", 64, 64);
        negative.load = -1.0;
        let mut infinite = node("inf", 64, 64);
        infinite.load = f64::INFINITY;
        assert_eq!(
            rank(&[nan, negative, infinite, node("ok", 2, 2)], 1, 0, 5, 0),
            vec![3]
        );
    }

    #[test]
    fn sample_limits_the_answer() {
        let nodes: Vec<Candidate> = (0..20).map(|i| node(&format!("n{i}"), 8, 8)).collect();
        assert_eq!(rank(&nodes, 1, 0, 5, 1).len(), 5);
        assert!(rank(&nodes, 1, 0, 0, 1).is_empty());
        assert_eq!(rank(&nodes, 1, 0, 100, 1).len(), 20);
        assert!(rank(&[], 1, 0, 5, 1).is_empty());
    }

    #[test]
    fn ties_are_broken_by_seed_deterministically() {
        let nodes: Vec<Candidate> = (0..10).map(|i| node(&format!("n{i}"), 8, 8)).collect();
        assert_eq!(rank(&nodes, 1, 0, 10, 42), rank(&nodes, 1, 0, 10, 42));
        let firsts: BTreeSet<usize> = (0..200)
            .map(|seed| rank(&nodes, 1, 0, 1, seed)[0])
            .collect();
        assert!(firsts.len() >= 8, "only {firsts:?} were ever first");
        // The order does not depend on the order the directory listed them.
        let mut reversed = nodes.clone();
        reversed.reverse();
        let first = &nodes[rank(&nodes, 1, 0, 1, 9)[0]].node;
        let first_reversed = &reversed[rank(&reversed, 1, 0, 1, 9)[0]].node;
        assert_eq!(first, first_reversed);
    }

    #[test]
    fn unit_random_is_in_range() {
        for seed in 0..1000 {
            let u = unit_random(seed, "node");
            assert!((0.0..1.0).contains(&u));
        }
    }
}
