//! A user's profile in their config dir: the node to talk to, the site CA,
//! an administrator certificate if they have one, and their VO credentials
//! (one file per VO, mode 0600, as `xos login` left them).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use xtreem_security::files;

use crate::{ClientError, Credentials, Result};

#[derive(Debug, Serialize, Deserialize)]
struct ProfileFile {
    site: String,
    endpoint: String,
    #[serde(default)]
    vo: String,
}

/// Everything `xos` knows about its user.
#[derive(Debug, Clone)]
pub struct Profile {
    pub dir: PathBuf,
    pub site: String,
    pub endpoint: String,
    pub ca_pem: String,
    /// The VO of the last login; the default for commands.
    pub vo: String,
    pub admin: Option<Credentials>,
}

impl Profile {
    pub fn load(dir: &Path) -> Result<Profile> {
        let path = dir.join("config.toml");
        if !path.exists() {
            return Err(ClientError::NoCredentials {
                dir: dir.display().to_string(),
                hint: "run `xos login --endpoint HOST:PORT --ca SITE-CA.crt` (users) or `xos site init` (site administrators)".into(),
            });
        }
        let text = files::read_to_string(&path)?;
        let file: ProfileFile = toml::from_str(&text)
            .map_err(|e| ClientError::Local(format!("{}: {}", path.display(), e.message())))?;
        let admin = if dir.join("admin.key").exists() {
            Some(Credentials::load(dir)?)
        } else {
            None
        };
        Ok(Profile {
            dir: dir.to_owned(),
            site: file.site,
            endpoint: file.endpoint,
            ca_pem: files::read_to_string(&dir.join("ca.crt"))?,
            vo: file.vo,
            admin,
        })
    }

    /// A profile for a user who has no admin certificate.
    pub fn create(dir: &Path, site: &str, endpoint: &str, ca_pem: &str) -> Result<Profile> {
        let profile = Profile {
            dir: dir.to_owned(),
            site: site.to_owned(),
            endpoint: endpoint.to_owned(),
            ca_pem: ca_pem.to_owned(),
            vo: String::new(),
            admin: None,
        };
        files::write_public(&dir.join("ca.crt"), ca_pem.as_bytes())?;
        profile.save()?;
        Ok(profile)
    }

    pub fn save(&self) -> Result<()> {
        let file = ProfileFile {
            site: self.site.clone(),
            endpoint: self.endpoint.clone(),
            vo: self.vo.clone(),
        };
        let text = toml::to_string(&file).map_err(|e| ClientError::Local(e.to_string()))?;
        files::write_public(&self.dir.join("config.toml"), text.as_bytes())?;
        Ok(())
    }

    fn token_path(&self, vo: &str) -> PathBuf {
        self.dir.join("tokens").join(format!("{vo}.jwt"))
    }

    pub fn save_token(&mut self, vo: &str, token: &str) -> Result<()> {
        files::write_private(&self.token_path(vo), token.as_bytes())?;
        self.vo = vo.to_owned();
        self.save()
    }

    /// The credential for `vo` (or the current VO), if logged in.
    pub fn token(&self, vo: Option<&str>) -> Option<String> {
        let vo = vo.unwrap_or(&self.vo);
        if vo.is_empty() {
            return None;
        }
        std::fs::read_to_string(self.token_path(vo))
            .ok()
            .map(|t| t.trim().to_owned())
    }

    pub fn forget_token(&self, vo: &str) -> Result<()> {
        match std::fs::remove_file(self.token_path(vo)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(ClientError::Local(format!(
                "cannot remove the credential of {vo}: {e}"
            ))),
        }
    }
}
