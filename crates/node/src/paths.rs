//! Layout of a node's data directory.

use std::path::{Path, PathBuf};

/// Files under `data_dir`. Private keys are mode 0600, the directory 0700.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    pub fn new(root: &Path) -> DataDir {
        DataDir {
            root: root.to_owned(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The embedded store.
    pub fn store(&self) -> PathBuf {
        self.root.join("state.redb")
    }

    /// The node's certificate followed by its private key, one file so that
    /// a renewal replaces both in one rename.
    pub fn node_identity(&self) -> PathBuf {
        self.root.join("tls/node.pem")
    }

    /// The site CA certificate this node trusts.
    pub fn ca_cert(&self) -> PathBuf {
        self.root.join("tls/ca.crt")
    }

    /// The site CA's private key; only on the site authority.
    pub fn ca_key(&self) -> PathBuf {
        self.root.join("ca/ca.key")
    }

    /// Unix socket for local administration (`xos site init`).
    pub fn admin_socket(&self) -> PathBuf {
        self.root.join("admin.sock")
    }

    /// The node's append-only, hash-chained audit log.
    pub fn audit_log(&self) -> PathBuf {
        self.root.join("audit.log")
    }

    /// Where the daemon writes the addresses it actually bound.
    /// The last trust document a member received from its authority.
    pub fn trust_document(&self) -> PathBuf {
        self.root.join("trust.json")
    }

    pub fn endpoints(&self) -> PathBuf {
        self.root.join("run/endpoints.json")
    }
}
