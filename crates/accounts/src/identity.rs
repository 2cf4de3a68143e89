//! Who asks for an account: a VO identity, its checks, its store key, and
//! the local names derived for display.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{AccountsError, Result};

/// Longest issuer or subject accepted (certificate DNs and token subjects
/// stay far below).
pub const IDENTITY_FIELD_BYTES_MAX: usize = 1024;
/// Longest VO name accepted.
pub const VO_NAME_BYTES_MAX: usize = 255;
/// The part of a VO name that goes into local user and group names, which
/// many tools cut at 32 characters: `xvo-` + 20 + `-` + 7 digits fits.
const VO_NAME_PART_MAX: usize = 20;

/// A user as the grid knows them: who vouches for them (`issuer`), who they
/// are to that issuer (`subject`), and the VO they act in. The same person in
/// two VOs is two identities and gets two local accounts.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct VoIdentity {
    pub issuer: String,
    pub subject: String,
    pub vo: String,
}

impl VoIdentity {
    pub fn new(
        issuer: impl Into<String>,
        subject: impl Into<String>,
        vo: impl Into<String>,
    ) -> VoIdentity {
        VoIdentity {
            issuer: issuer.into(),
            subject: subject.into(),
            vo: vo.into(),
        }
    }

    /// Refuses empty, oversized, or control-character fields; control
    /// characters would forge lines in logs and tables.
    pub fn validate(&self) -> Result<()> {
        check_field("issuer", &self.issuer, IDENTITY_FIELD_BYTES_MAX)?;
        check_field("subject", &self.subject, IDENTITY_FIELD_BYTES_MAX)?;
        check_field("vo", &self.vo, VO_NAME_BYTES_MAX)
    }

    /// Key of the identity in the store: each field behind its length, so two
    /// different identities never share a key whatever their characters.
    pub(crate) fn store_key(&self) -> String {
        format!(
            "{}:{}{}:{}{}:{}",
            self.issuer.len(),
            self.issuer,
            self.subject.len(),
            self.subject,
            self.vo.len(),
            self.vo
        )
    }
}

impl fmt::Display for VoIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (issuer {}, VO {})",
            self.subject, self.issuer, self.vo
        )
    }
}

fn check_field(field: &'static str, value: &str, max: usize) -> Result<()> {
    let refuse = |reason: String| Err(AccountsError::InvalidIdentity { field, reason });
    if value.is_empty() {
        return refuse("is empty".into());
    }
    if value.len() > max {
        return refuse(format!("is longer than {max} bytes"));
    }
    if value.chars().any(char::is_control) {
        return refuse("contains a control character".into());
    }
    Ok(())
}

/// Whether a VO name can be used as is inside local names.
fn is_plain(vo: &str) -> bool {
    vo.len() <= VO_NAME_PART_MAX
        && !vo.starts_with('-')
        && vo
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// A VO name squeezed into a-z, 0-9 and '-', at most 20 characters.
fn name_part(vo: &str) -> String {
    let mut out = String::new();
    for c in vo.chars() {
        let c = c.to_ascii_lowercase();
        let keep = if c.is_ascii_lowercase() || c.is_ascii_digit() {
            c
        } else {
            '-'
        };
        if !(keep == '-' && (out.is_empty() || out.ends_with('-'))) {
            out.push(keep);
        }
        if out.len() == VO_NAME_PART_MAX {
            break;
        }
    }
    let trimmed = out.trim_end_matches('-');
    if trimmed.is_empty() {
        "vo".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// Local name of the group of a VO: `xvo-<vo>`. A VO name that does not fit
/// is shortened and the gid appended after `_`, which plain VO names never
/// contain, so two VOs never show the same group name.
pub fn group_name(vo: &str, gid: u32) -> String {
    if is_plain(vo) {
        format!("xvo-{vo}")
    } else {
        format!("xvo-{}_{gid}", name_part(vo))
    }
}

/// Local name of a mapped user: `xvo-<vo>-<uid>`; unique through the uid.
pub fn user_name(vo: &str, uid: u32) -> String {
    if is_plain(vo) {
        format!("xvo-{vo}-{uid}")
    } else {
        format!("xvo-{}-{uid}", name_part(vo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_keys_do_not_collide_across_field_boundaries() {
        let a = VoIdentity::new("ab", "c", "vo");
        let b = VoIdentity::new("a", "bc", "vo");
        assert_ne!(a.store_key(), b.store_key());
        let c = VoIdentity::new("1:a", "b", "vo");
        let d = VoIdentity::new("1", "a1:b", "vo");
        assert_ne!(c.store_key(), d.store_key());
    }

    #[test]
    fn refuses_empty_long_or_control_fields() {
        assert!(VoIdentity::new("ca", "/CN=alice", "bio").validate().is_ok());
        let err = VoIdentity::new("", "s", "vo").validate().unwrap_err();
        assert!(err.to_string().contains("issuer is empty"), "{err}");
        let err = VoIdentity::new("i", "a\nb", "vo").validate().unwrap_err();
        assert!(
            err.to_string().contains("subject contains a control"),
            "{err}"
        );
        let err = VoIdentity::new("i", "s", "v".repeat(256))
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("vo is longer"), "{err}");
    }

    #[test]
    fn names_are_short_and_distinct() {
        assert_eq!(group_name("bio", 200_000), "xvo-bio");
        assert_eq!(user_name("bio", 200_001), "xvo-bio-200001");
        assert_eq!(
            group_name("Physics/CERN", 200_003),
            "xvo-physics-cern_200003"
        );
        assert_eq!(
            user_name("Physics/CERN", 200_004),
            "xvo-physics-cern-200004"
        );
        assert_eq!(group_name("~~~", 200_005), "xvo-vo_200005");
        let long = "a-very-long-virtual-organisation-name";
        assert!(group_name(long, 299_999).len() <= 32);
        assert!(user_name(long, 299_999).len() <= 32);
        // A shortened name never equals a plain one.
        assert_ne!(group_name("Foo", 200_001), group_name("foo-200001", 1));
    }
}
