//! Names of sites and nodes. Both end up in certificates (DNS names and
//! SPIFFE-style URIs), so they follow the rules of a DNS label.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid {kind} name {name:?}: {reason} (use 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-')"
)]
pub struct NameError {
    kind: &'static str,
    name: String,
    reason: &'static str,
}

fn check_label(kind: &'static str, name: &str) -> Result<(), NameError> {
    let refuse = |reason| {
        Err(NameError {
            kind,
            name: name.chars().take(80).collect(),
            reason,
        })
    };
    if name.is_empty() {
        return refuse("it is empty");
    }
    if name.len() > 63 {
        return refuse("it is longer than 63 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return refuse("it contains a character other than a-z, 0-9 or '-'");
    }
    if name.starts_with('-') || name.ends_with('-') {
        return refuse("it starts or ends with '-'");
    }
    Ok(())
}

macro_rules! label_name {
    ($(#[$doc:meta])* $ty:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $ty(String);

        impl $ty {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                check_label($kind, s)?;
                Ok(Self(s.to_owned()))
            }
        }

        impl TryFrom<String> for $ty {
            type Error = NameError;
            fn try_from(s: String) -> Result<Self, NameError> {
                check_label($kind, &s)?;
                Ok(Self(s))
            }
        }

        impl From<$ty> for String {
            fn from(n: $ty) -> String {
                n.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

label_name!(
    /// Name of a node, unique within its site.
    NodeName,
    "node"
);
label_name!(
    /// Name of a site (an administrative domain with its own CA).
    SiteName,
    "site"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_dns_labels() {
        for ok in ["a", "node-1", "x0", &"a".repeat(63)] {
            assert!(ok.parse::<NodeName>().is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_what_cannot_be_a_dns_label() {
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", "é", &"a".repeat(64)] {
            let err = bad.parse::<SiteName>().unwrap_err();
            assert!(err.to_string().contains("invalid site name"), "{err}");
        }
    }
}
