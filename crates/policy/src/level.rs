//! The three levels at which policy is set: a VO's (set by its admins), a
//! site's (set by its admins, for their nodes) and a user's (sharing of the
//! user's own resources). A level is also the prefix of the ids of its
//! policies, so that a decision's reasons say who wrote the deciding rule.

use std::fmt;
use std::str::FromStr;

use crate::error::PolicyError;

/// Longest VO, site or subject name accepted as a level; subjects can be
/// certificate DNs, hence the generous bound.
pub const LEVEL_NAME_MAX_BYTES: usize = 512;

/// Who a policy belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Level {
    /// Policy of a virtual organisation, by VO name.
    Vo(String),
    /// Policy of a site, by site name.
    Site(String),
    /// Policy of a user, by subject.
    User(String),
}

impl Level {
    /// Kind of the level as written in its text form (`vo`, `site`, `user`).
    pub fn kind(&self) -> &'static str {
        match self {
            Level::Vo(_) => "vo",
            Level::Site(_) => "site",
            Level::User(_) => "user",
        }
    }

    /// The VO name, site name or subject.
    pub fn name(&self) -> &str {
        match self {
            Level::Vo(n) | Level::Site(n) | Level::User(n) => n,
        }
    }

    /// Checks the name; the store calls this before accepting a policy so
    /// that ids built from it stay readable.
    pub fn check(&self) -> Result<(), PolicyError> {
        let name = self.name();
        let reason = if name.is_empty() {
            Some("the name is empty".to_string())
        } else if name.len() > LEVEL_NAME_MAX_BYTES {
            Some(format!(
                "the name is {} bytes, at most {LEVEL_NAME_MAX_BYTES}",
                name.len()
            ))
        } else if name.chars().any(char::is_control) {
            Some("the name contains control characters".to_string())
        } else {
            None
        };
        match reason {
            Some(reason) => Err(PolicyError::InvalidLevel {
                text: self.to_string(),
                reason,
            }),
            None => Ok(()),
        }
    }

    /// Id of a policy of this level: `vo:demo#0` by position, or
    /// `vo:demo#name` when the policy carries `@id("name")`.
    pub(crate) fn policy_id(&self, local: &str) -> String {
        format!("{self}#{local}")
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.name())
    }
}

/// Parses `vo:NAME`, `site:NAME` or `user:SUBJECT`, the form `xos policy`
/// takes on its command line.
impl FromStr for Level {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &str| PolicyError::InvalidLevel {
            text: s.to_string(),
            reason: reason.to_string(),
        };
        let (kind, name) = s
            .split_once(':')
            .ok_or_else(|| invalid("missing ':' between kind and name"))?;
        let level = match kind {
            "vo" => Level::Vo(name.to_string()),
            "site" => Level::Site(name.to_string()),
            "user" => Level::User(name.to_string()),
            _ => return Err(invalid("unknown kind")),
        };
        level.check()?;
        Ok(level)
    }
}

/// Serialized as its text form (`vo:demo`), as on the command line.
impl serde::Serialize for Level {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Level {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        for text in ["vo:demo", "site:lab", "user:CN=alice,O=demo"] {
            let level: Level = text.parse().unwrap();
            assert_eq!(level.to_string(), text);
        }
    }

    #[test]
    fn refuses_bad_levels() {
        for text in ["demo", "group:x", "vo:", "site:a\nb"] {
            assert!(text.parse::<Level>().is_err(), "{text}");
        }
    }
}
