//! The rules a descriptor or sample must satisfy before we index it. They
//! arrive from other machines, so every field is bounded: absurd values would
//! otherwise skew queries and summaries, and long strings would cost memory.

use std::net::Ipv6Addr;

use xtreem_util::names::{NodeName, SiteName};
use xtreem_util::roles::Role;

use crate::descriptor::{DynamicSample, StaticDescriptor};
use crate::error::DescriptorError;
use crate::format::format_bytes;

pub(crate) const CORES_MAX: u32 = 65_536;
pub(crate) const MEMORY_BYTES_MIN: u64 = 16 << 20;
pub(crate) const MEMORY_BYTES_MAX: u64 = 64 << 40;
pub(crate) const DISK_BYTES_MAX: u64 = 1 << 60;
pub(crate) const TAGS_MAX: usize = 64;
pub(crate) const LABELS_MAX: usize = 64;
pub(crate) const LABEL_VALUE_CHARS_MAX: usize = 256;
pub(crate) const VOS_MAX: usize = 64;
pub(crate) const SERVICES_MAX: usize = 32;
pub(crate) const WORD_CHARS_MAX: usize = 63;
pub(crate) const PLATFORM_CHARS_MAX: usize = 128;
pub(crate) const LOAD_MAX: f32 = 100_000.0;
/// A DNS name is at most 253 characters; with brackets and port a bit more.
const ENDPOINT_CHARS_MAX: usize = 262;

impl StaticDescriptor {
    /// Checks every field against its bounds; the error names the first
    /// offending field and the allowed range.
    pub fn validate(&self) -> Result<(), DescriptorError> {
        self.node
            .parse::<NodeName>()
            .map_err(|e| DescriptorError::invalid("node", e.to_string()))?;
        self.site
            .parse::<SiteName>()
            .map_err(|e| DescriptorError::invalid("site", e.to_string()))?;
        check_roles(&self.roles)?;
        check_endpoint("rpc_endpoint", &self.rpc_endpoint)?;
        check_platform("arch", &self.arch)?;
        check_platform("os", &self.os)?;
        check_platform("kernel", &self.kernel)?;
        if !(1..=CORES_MAX).contains(&self.cores) {
            return Err(DescriptorError::invalid(
                "cores",
                format!("{} is not between 1 and {CORES_MAX}", self.cores),
            ));
        }
        if !(MEMORY_BYTES_MIN..=MEMORY_BYTES_MAX).contains(&self.memory_bytes) {
            return Err(DescriptorError::invalid(
                "memory_bytes",
                format!(
                    "{} is not between {} and {}",
                    self.memory_bytes,
                    format_bytes(MEMORY_BYTES_MIN),
                    format_bytes(MEMORY_BYTES_MAX)
                ),
            ));
        }
        if self.disk_bytes > DISK_BYTES_MAX {
            return Err(DescriptorError::invalid(
                "disk_bytes",
                format!(
                    "{} is more than {}",
                    self.disk_bytes,
                    format_bytes(DISK_BYTES_MAX)
                ),
            ));
        }
        check_count("tags", self.tags.len(), TAGS_MAX)?;
        for tag in &self.tags {
            check_label_word("tags", tag)?;
        }
        check_count("labels", self.labels.len(), LABELS_MAX)?;
        for (key, value) in &self.labels {
            check_label_word("labels", key)?;
            check_label_value(key, value)?;
        }
        check_count("vos", self.vos.len(), VOS_MAX)?;
        for vo in &self.vos {
            check_vo(vo)?;
        }
        check_count("services", self.services.len(), SERVICES_MAX)?;
        for service in &self.services {
            check_label_word("services", &service.kind)?;
            check_endpoint("services", &service.address)?;
        }
        Ok(())
    }
}

impl DynamicSample {
    /// Checks the sample against the node's static descriptor: nothing free
    /// may exceed what the node has.
    pub fn validate(&self, statics: &StaticDescriptor) -> Result<(), DescriptorError> {
        self.validate_alone()?;
        if self.free_cores > statics.cores as f32 {
            return Err(DescriptorError::invalid(
                "free_cores",
                format!("{} is not between 0 and {}", self.free_cores, statics.cores),
            ));
        }
        if self.free_memory_bytes > statics.memory_bytes {
            return Err(DescriptorError::invalid(
                "free_memory_bytes",
                format!(
                    "{} is more than the node's memory_bytes {}",
                    self.free_memory_bytes, statics.memory_bytes
                ),
            ));
        }
        if self.free_disk_bytes > statics.disk_bytes {
            return Err(DescriptorError::invalid(
                "free_disk_bytes",
                format!(
                    "{} is more than the node's disk_bytes {}",
                    self.free_disk_bytes, statics.disk_bytes
                ),
            ));
        }
        Ok(())
    }

    /// The checks that need no static descriptor; decode runs these.
    pub(crate) fn validate_alone(&self) -> Result<(), DescriptorError> {
        // `contains` is false for NaN, so NaN is refused here too.
        if !(0.0..=CORES_MAX as f32).contains(&self.free_cores) {
            return Err(DescriptorError::invalid(
                "free_cores",
                format!(
                    "{} is not a number between 0 and the node's cores",
                    self.free_cores
                ),
            ));
        }
        if !(0.0..=LOAD_MAX).contains(&self.load) {
            return Err(DescriptorError::invalid(
                "load",
                format!("{} is not a number between 0 and {LOAD_MAX}", self.load),
            ));
        }
        Ok(())
    }
}

fn check_count(field: &'static str, count: usize, max: usize) -> Result<(), DescriptorError> {
    if count > max {
        return Err(DescriptorError::invalid(
            field,
            format!("{count} entries, at most {max} allowed"),
        ));
    }
    Ok(())
}

/// Printable text for reports; shortened so a hostile value cannot make the
/// error itself huge.
fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    format!("{out:?}")
}

fn check_roles(roles: &[String]) -> Result<(), DescriptorError> {
    check_count("roles", roles.len(), Role::ALL.len())?;
    for (i, role) in roles.iter().enumerate() {
        role.parse::<Role>()
            .map_err(|e| DescriptorError::invalid("roles", e))?;
        if roles[..i].contains(role) {
            return Err(DescriptorError::invalid(
                "roles",
                format!("{} is listed twice", shown(role)),
            ));
        }
    }
    Ok(())
}

fn check_platform(field: &'static str, value: &str) -> Result<(), DescriptorError> {
    let chars = value.chars().count();
    if !(1..=PLATFORM_CHARS_MAX).contains(&chars) || value.chars().any(char::is_control) {
        return Err(DescriptorError::invalid(
            field,
            format!(
                "{} is not 1 to {PLATFORM_CHARS_MAX} printable characters",
                shown(value)
            ),
        ));
    }
    Ok(())
}

/// Tags, label keys and service kinds are words a query names bare, so they
/// follow DNS-label rules: 1-63 of a-z, 0-9 and '-', no '-' at either end.
pub(crate) fn is_label_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= WORD_CHARS_MAX
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn check_label_word(field: &'static str, s: &str) -> Result<(), DescriptorError> {
    if is_label_word(s) {
        return Ok(());
    }
    Err(DescriptorError::invalid(
        field,
        format!(
            "{} is not 1-{WORD_CHARS_MAX} of a-z, 0-9 and '-' (not starting or ending with '-')",
            shown(s)
        ),
    ))
}

fn check_label_value(key: &str, value: &str) -> Result<(), DescriptorError> {
    if value.chars().count() > LABEL_VALUE_CHARS_MAX || value.chars().any(char::is_control) {
        return Err(DescriptorError::invalid(
            "labels",
            format!("value of {key} is not at most {LABEL_VALUE_CHARS_MAX} printable characters"),
        ));
    }
    Ok(())
}

/// Same rule as the VO service uses for VO names.
fn check_vo(vo: &str) -> Result<(), DescriptorError> {
    let ok = !vo.is_empty()
        && vo.len() <= WORD_CHARS_MAX
        && vo.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_' || b == b'.'
        })
        && !vo.starts_with(['-', '.']);
    if ok {
        return Ok(());
    }
    Err(DescriptorError::invalid(
        "vos",
        format!(
            "{} is not 1-{WORD_CHARS_MAX} of a-z, 0-9, '-', '_', '.'",
            shown(vo)
        ),
    ))
}

/// `host:port` with a DNS name, IPv4 address or bracketed IPv6 address and a
/// non-zero port.
pub(crate) fn is_host_port(s: &str) -> bool {
    if s.len() > ENDPOINT_CHARS_MAX {
        return false;
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    if !matches!(port.parse::<u16>(), Ok(p) if p != 0) || !port.bytes().all(|b| b.is_ascii_digit())
    {
        return false;
    }
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok();
    }
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|part| {
            !part.is_empty()
                && part.len() <= 63
                && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

fn check_endpoint(field: &'static str, s: &str) -> Result<(), DescriptorError> {
    if is_host_port(s) {
        return Ok(());
    }
    Err(DescriptorError::invalid(
        field,
        format!("{} is not host:port", shown(s)),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::descriptor::ServiceEntry;

    fn valid() -> StaticDescriptor {
        StaticDescriptor::example("n1", "site-a")
    }

    fn field_of(d: &StaticDescriptor) -> &'static str {
        match d.validate() {
            Err(DescriptorError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn the_example_is_valid() {
        assert_eq!(valid().validate(), Ok(()));
    }

    #[test]
    fn cores_error_names_field_and_range() {
        let d = StaticDescriptor {
            cores: 0,
            ..valid()
        };
        assert_eq!(
            d.validate(),
            Err(DescriptorError::Invalid {
                field: "cores",
                reason: "0 is not between 1 and 65536".into()
            })
        );
        let d = StaticDescriptor {
            cores: 65_537,
            ..valid()
        };
        assert_eq!(field_of(&d), "cores");
        let d = StaticDescriptor {
            cores: 65_536,
            ..valid()
        };
        assert_eq!(d.validate(), Ok(()));
    }

    #[test]
    fn memory_and_disk_bounds() {
        let d = StaticDescriptor {
            memory_bytes: (16 << 20) - 1,
            ..valid()
        };
        let err = d.validate().unwrap_err().to_string();
        assert!(err.contains("between 16.0 MiB and 64.0 TiB"), "{err}");
        let d = StaticDescriptor {
            memory_bytes: (64 << 40) + 1,
            ..valid()
        };
        assert_eq!(field_of(&d), "memory_bytes");
        let d = StaticDescriptor {
            disk_bytes: (1 << 60) + 1,
            ..valid()
        };
        assert_eq!(field_of(&d), "disk_bytes");
        let d = StaticDescriptor {
            disk_bytes: 0,
            ..valid()
        };
        assert_eq!(d.validate(), Ok(()));
    }

    #[test]
    fn names_must_be_dns_labels() {
        let d = StaticDescriptor {
            node: "N1".into(),
            ..valid()
        };
        assert_eq!(field_of(&d), "node");
        let d = StaticDescriptor {
            site: "".into(),
            ..valid()
        };
        assert_eq!(field_of(&d), "site");
    }

    #[test]
    fn roles_must_be_known_and_distinct() {
        let d = StaticDescriptor {
            roles: vec!["boss".into()],
            ..valid()
        };
        assert_eq!(field_of(&d), "roles");
        let d = StaticDescriptor {
            roles: vec!["core".into(), "core".into()],
            ..valid()
        };
        assert_eq!(field_of(&d), "roles");
        let d = StaticDescriptor {
            roles: vec!["core".into(), "client".into()],
            ..valid()
        };
        assert_eq!(d.validate(), Ok(()));
    }

    #[test]
    fn tags_labels_and_vos_are_bounded() {
        let mut d = valid();
        d.tags = (0..65).map(|i| format!("t{i}")).collect();
        assert_eq!(field_of(&d), "tags");
        let mut d = valid();
        d.tags.insert("GPU".into());
        assert_eq!(field_of(&d), "tags");
        let mut d = valid();
        d.tags.insert("a".repeat(64));
        assert_eq!(field_of(&d), "tags");

        let mut d = valid();
        d.labels.insert("rack".into(), "x".repeat(257));
        assert_eq!(field_of(&d), "labels");
        let mut d = valid();
        d.labels.insert("rack".into(), "line\nbreak".into());
        assert_eq!(field_of(&d), "labels");
        let mut d = valid();
        d.labels.insert("Rack".into(), "1".into());
        assert_eq!(field_of(&d), "labels");

        let mut d = valid();
        d.vos = (0..65).map(|i| format!("vo{i}")).collect();
        assert_eq!(field_of(&d), "vos");
        let mut d = valid();
        d.vos.insert("high_energy.physics".into());
        assert_eq!(d.validate(), Ok(()));
        d.vos.insert(".hidden".into());
        assert_eq!(field_of(&d), "vos");
    }

    #[test]
    fn services_are_bounded_and_need_an_endpoint() {
        let entry = |kind: &str, address: &str| ServiceEntry {
            kind: kind.into(),
            address: address.into(),
            healthy: true,
        };
        let mut d = valid();
        d.services = (0..33).map(|_| entry("vo", "h:1")).collect();
        assert_eq!(field_of(&d), "services");
        let mut d = valid();
        d.services = vec![entry("vo", "nohost")];
        assert_eq!(field_of(&d), "services");
        let mut d = valid();
        d.services = vec![entry("site-ca", "[::1]:7000")];
        assert_eq!(d.validate(), Ok(()));
    }

    #[test]
    fn endpoints_parse_as_host_and_port() {
        for ok in [
            "a:1",
            "10.0.0.1:7000",
            "node-1.site-a:65535",
            "[fe80::1]:80",
        ] {
            assert!(is_host_port(ok), "{ok}");
        }
        for bad in [
            "", ":80", "a:", "a:0", "a:65536", "a:+80", "::1:80", "[::1]", "a b:80", "-a:1",
        ] {
            assert!(!is_host_port(bad), "{bad}");
        }
    }

    #[test]
    fn platform_strings_are_bounded() {
        let d = StaticDescriptor {
            arch: "".into(),
            ..valid()
        };
        assert_eq!(field_of(&d), "arch");
        let d = StaticDescriptor {
            os: "x".repeat(129),
            ..valid()
        };
        assert_eq!(field_of(&d), "os");
        let d = StaticDescriptor {
            kernel: "6.1\0".into(),
            ..valid()
        };
        assert_eq!(field_of(&d), "kernel");
    }

    #[test]
    fn dynamic_sample_cannot_exceed_the_node() {
        let statics = StaticDescriptor {
            cores: 4,
            ..valid()
        };
        let ok = DynamicSample {
            seq: 1,
            sampled_unix_ms: 0,
            free_cores: 4.0,
            free_memory_bytes: statics.memory_bytes,
            load: 3.5,
            running_jobs: 2,
            free_disk_bytes: statics.disk_bytes,
        };
        assert_eq!(ok.validate(&statics), Ok(()));
        let bad = |s: DynamicSample| match s.validate(&statics) {
            Err(DescriptorError::Invalid { field, .. }) => field,
            other => panic!("expected Invalid, got {other:?}"),
        };
        assert_eq!(
            bad(DynamicSample {
                free_cores: 4.5,
                ..ok
            }),
            "free_cores"
        );
        assert_eq!(
            bad(DynamicSample {
                free_cores: -0.1,
                ..ok
            }),
            "free_cores"
        );
        assert_eq!(
            bad(DynamicSample {
                free_cores: f32::NAN,
                ..ok
            }),
            "free_cores"
        );
        assert_eq!(
            bad(DynamicSample {
                load: f32::INFINITY,
                ..ok
            }),
            "load"
        );
        assert_eq!(
            bad(DynamicSample {
                load: 100_001.0,
                ..ok
            }),
            "load"
        );
        assert_eq!(
            bad(DynamicSample {
                free_memory_bytes: statics.memory_bytes + 1,
                ..ok
            }),
            "free_memory_bytes"
        );
        assert_eq!(
            bad(DynamicSample {
                free_disk_bytes: statics.disk_bytes + 1,
                ..ok
            }),
            "free_disk_bytes"
        );
    }
}
