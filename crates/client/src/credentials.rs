//! Administrator credentials on disk, under `$XOS_CONFIG_DIR` or
//! `$XDG_CONFIG_HOME/xtreem` or `~/.config/xtreem`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xtreem_security::files;

use crate::{ClientError, Result};

/// Environment variable that overrides the config dir.
pub const CONFIG_DIR_ENV: &str = "XOS_CONFIG_DIR";

pub fn config_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(CONFIG_DIR_ENV) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CONFIG_HOME") {
        return PathBuf::from(dir).join("xtreem");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".config/xtreem")
}

#[derive(Debug, Serialize, Deserialize)]
struct CliConfig {
    site: String,
    endpoint: String,
}

/// An administrator's certificate, key and site CA, and the node to talk to.
#[derive(Clone)]
pub struct Credentials {
    pub site: String,
    pub endpoint: String,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credentials(site {}, endpoint {})",
            self.site, self.endpoint
        )
    }
}

impl Credentials {
    pub fn save(&self, dir: &Path) -> Result<()> {
        let config = CliConfig {
            site: self.site.clone(),
            endpoint: self.endpoint.clone(),
        };
        let text = toml::to_string(&config).map_err(|e| ClientError::Local(e.to_string()))?;
        files::write_public(&dir.join("ca.crt"), self.ca_pem.as_bytes())?;
        files::write_public(&dir.join("admin.crt"), self.cert_pem.as_bytes())?;
        files::write_private(&dir.join("admin.key"), self.key_pem.as_bytes())?;
        files::write_public(&dir.join("config.toml"), text.as_bytes())?;
        Ok(())
    }

    pub fn load(dir: &Path) -> Result<Credentials> {
        let config_path = dir.join("config.toml");
        if !config_path.exists() {
            return Err(ClientError::NoCredentials {
                dir: dir.display().to_string(),
                hint: "run `xos site init NAME` on a core node (as root), or point XOS_CONFIG_DIR at a directory that has them".into(),
            });
        }
        let text = files::read_to_string(&config_path)?;
        let config: CliConfig = toml::from_str(&text).map_err(|e| {
            ClientError::Local(format!("{}: {}", config_path.display(), e.message()))
        })?;
        Ok(Credentials {
            site: config.site,
            endpoint: config.endpoint,
            ca_pem: files::read_to_string(&dir.join("ca.crt"))?,
            cert_pem: files::read_to_string(&dir.join("admin.crt"))?,
            key_pem: files::read_to_string(&dir.join("admin.key"))?,
        })
    }
}
