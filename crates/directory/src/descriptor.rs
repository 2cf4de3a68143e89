//! What a node publishes about itself: a static descriptor that changes
//! rarely (hardware, tags, services) and a small dynamic sample sent often
//! (free resources, load). Both travel as postcard bytes between nodes.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::DescriptorError;

/// Largest encoded static descriptor a node accepts; larger ones are refused
/// before decoding so that a peer cannot make us allocate much.
pub const MAX_STATIC_DESCRIPTOR_BYTES: usize = 4096;

/// Largest encoded dynamic sample (the real encoding is under 50 bytes).
pub const MAX_DYNAMIC_SAMPLE_BYTES: usize = 128;

/// A service a node runs, as found by `Directory::services`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// What it is: "vo", "site-ca", "directory", later "mrc", "osd".
    pub kind: String,
    /// `host:port` where it answers.
    pub address: String,
    /// Whether the node's own health check last passed.
    pub healthy: bool,
}

/// The slowly changing part of a node's description.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StaticDescriptor {
    pub node: String,
    pub site: String,
    /// Publisher's counter; a higher version replaces a lower one.
    pub version: u64,
    /// "core", "resource", "client".
    pub roles: Vec<String>,
    /// `host:port` of the node's gRPC endpoint.
    pub rpc_endpoint: String,
    pub arch: String,
    pub os: String,
    pub kernel: String,
    pub cores: u32,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
    /// Admin tags such as "gpu".
    pub tags: BTreeSet<String>,
    /// Admin `key=value` labels.
    pub labels: BTreeMap<String, String>,
    /// VOs this node serves (from site policy).
    pub vos: BTreeSet<String>,
    pub services: Vec<ServiceEntry>,
}

/// The frequently sent part: what the node has free right now.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DynamicSample {
    /// Publisher's counter; a higher one replaces a lower one.
    pub seq: u64,
    pub sampled_unix_ms: u64,
    pub free_cores: f32,
    pub free_memory_bytes: u64,
    /// 1-minute load average.
    pub load: f32,
    pub running_jobs: u32,
    pub free_disk_bytes: u64,
}

impl StaticDescriptor {
    /// A small valid descriptor for examples and tests: 1 resource core of
    /// x86_64 with 1 GiB of memory and 10 GiB of disk, no tags or services.
    pub fn example(node: &str, site: &str) -> StaticDescriptor {
        StaticDescriptor {
            node: node.to_owned(),
            site: site.to_owned(),
            version: 1,
            roles: vec!["resource".to_owned()],
            rpc_endpoint: format!("{node}.{site}:7000"),
            arch: "x86_64".to_owned(),
            os: "Linux".to_owned(),
            kernel: "6.1.0".to_owned(),
            cores: 1,
            memory_bytes: 1 << 30,
            disk_bytes: 10 << 30,
            tags: BTreeSet::new(),
            labels: BTreeMap::new(),
            vos: BTreeSet::new(),
            services: Vec::new(),
        }
    }

    /// Validates, then encodes; refuses descriptors over
    /// [`MAX_STATIC_DESCRIPTOR_BYTES`] so that what we send peers accept.
    pub fn encode(&self) -> Result<Vec<u8>, DescriptorError> {
        self.validate()?;
        let bytes = postcard::to_stdvec(self).map_err(|e| DescriptorError::Decode {
            what: "static descriptor",
            reason: e.to_string(),
        })?;
        check_size(
            "static descriptor",
            bytes.len(),
            MAX_STATIC_DESCRIPTOR_BYTES,
        )?;
        Ok(bytes)
    }

    /// Decodes bytes from a peer: size first, then postcard, then validation.
    pub fn decode(bytes: &[u8]) -> Result<Self, DescriptorError> {
        check_size(
            "static descriptor",
            bytes.len(),
            MAX_STATIC_DESCRIPTOR_BYTES,
        )?;
        let descriptor: StaticDescriptor = decode_exact("static descriptor", bytes)?;
        descriptor.validate()?;
        Ok(descriptor)
    }
}

impl DynamicSample {
    pub fn encode(&self) -> Vec<u8> {
        // Cannot fail: the sample is a fixed set of plain numbers.
        postcard::to_stdvec(self).unwrap_or_default()
    }

    /// Decodes bytes from a peer and checks what can be checked without the
    /// node's static descriptor (finite, non-negative numbers); the rest is
    /// [`DynamicSample::validate`].
    pub fn decode(bytes: &[u8]) -> Result<Self, DescriptorError> {
        check_size("dynamic sample", bytes.len(), MAX_DYNAMIC_SAMPLE_BYTES)?;
        let sample: DynamicSample = decode_exact("dynamic sample", bytes)?;
        sample.validate_alone()?;
        Ok(sample)
    }
}

pub(crate) fn check_size(
    what: &'static str,
    size: usize,
    max: usize,
) -> Result<(), DescriptorError> {
    if size > max {
        return Err(DescriptorError::TooLarge { what, size, max });
    }
    Ok(())
}

/// Postcard decoding that also refuses trailing bytes: a well-formed value
/// followed by junk is not what the peer meant to send.
pub(crate) fn decode_exact<T: serde::de::DeserializeOwned>(
    what: &'static str,
    bytes: &[u8],
) -> Result<T, DescriptorError> {
    let (value, rest) = postcard::take_from_bytes(bytes).map_err(|e| DescriptorError::Decode {
        what,
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(DescriptorError::Decode {
            what,
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DynamicSample {
        DynamicSample {
            seq: 3,
            sampled_unix_ms: 1_700_000_000_000,
            free_cores: 0.5,
            free_memory_bytes: 1 << 29,
            load: 0.7,
            running_jobs: 1,
            free_disk_bytes: 1 << 30,
        }
    }

    #[test]
    fn static_descriptor_round_trips() {
        let mut d = StaticDescriptor::example("n1", "site-a");
        d.tags.insert("gpu".into());
        d.labels.insert("rack".into(), "r 12".into());
        d.vos.insert("physics".into());
        d.services.push(ServiceEntry {
            kind: "vo".into(),
            address: "10.0.0.1:7100".into(),
            healthy: true,
        });
        let bytes = d.encode().unwrap();
        assert_eq!(StaticDescriptor::decode(&bytes).unwrap(), d);
    }

    #[test]
    fn encode_refuses_invalid_descriptors() {
        let mut d = StaticDescriptor::example("n1", "site-a");
        d.cores = 0;
        assert!(matches!(
            d.encode(),
            Err(DescriptorError::Invalid { field: "cores", .. })
        ));
    }

    #[test]
    fn decode_refuses_oversized_input_before_parsing() {
        let bytes = vec![0u8; MAX_STATIC_DESCRIPTOR_BYTES + 1];
        assert_eq!(
            StaticDescriptor::decode(&bytes),
            Err(DescriptorError::TooLarge {
                what: "static descriptor",
                size: MAX_STATIC_DESCRIPTOR_BYTES + 1,
                max: MAX_STATIC_DESCRIPTOR_BYTES
            })
        );
    }

    #[test]
    fn encode_refuses_descriptors_too_large_to_send() {
        let mut d = StaticDescriptor::example("n1", "site-a");
        for i in 0..64 {
            d.labels.insert(format!("key-{i}"), "v".repeat(100));
        }
        assert!(matches!(d.encode(), Err(DescriptorError::TooLarge { .. })));
    }

    #[test]
    fn decode_validates_what_it_parsed() {
        let mut d = StaticDescriptor::example("n1", "site-a");
        d.node = "Bad_Name".into();
        let bytes = postcard::to_stdvec(&d).unwrap();
        assert!(matches!(
            StaticDescriptor::decode(&bytes),
            Err(DescriptorError::Invalid { field: "node", .. })
        ));
    }

    #[test]
    fn decode_refuses_garbage_and_trailing_bytes() {
        assert!(matches!(
            StaticDescriptor::decode(&[0xff, 0xff, 0xff]),
            Err(DescriptorError::Decode { .. })
        ));
        let mut bytes = StaticDescriptor::example("n1", "site-a").encode().unwrap();
        bytes.push(0);
        assert!(matches!(
            StaticDescriptor::decode(&bytes),
            Err(DescriptorError::Decode { .. })
        ));
    }

    #[test]
    fn dynamic_sample_round_trips_and_refuses_nan() {
        let s = sample();
        assert_eq!(DynamicSample::decode(&s.encode()).unwrap(), s);
        let bad = DynamicSample {
            load: f32::NAN,
            ..sample()
        };
        assert!(matches!(
            DynamicSample::decode(&bad.encode()),
            Err(DescriptorError::Invalid { field: "load", .. })
        ));
    }

    #[test]
    fn random_bytes_never_panic_the_decoders() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let valid = StaticDescriptor::example("n1", "site-a").encode().unwrap();
        for _ in 0..5_000 {
            let mut bytes = valid.clone();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..bytes.len());
                bytes[i] = rng.random();
            }
            let _ = StaticDescriptor::decode(&bytes);
            let len = rng.random_range(0..64);
            let junk: Vec<u8> = (0..len).map(|_| rng.random()).collect();
            let _ = StaticDescriptor::decode(&junk);
            let _ = DynamicSample::decode(&junk);
        }
    }
}
