//! Node roles, as written in `xosd`'s config and shown by `xos node list`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a node does in the grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Always-on infrastructure: site CA, later VO service, directory seeds, FS metadata.
    Core,
    /// Runs jobs and stores file objects.
    Resource,
    /// Submits jobs and mounts the file system only.
    Client,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Core, Role::Resource, Role::Client];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Core => "core",
            Role::Resource => "resource",
            Role::Client => "client",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}: expected one of core, resource, client"))
    }
}
