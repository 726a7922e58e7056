//! The credentials file: `$XDG_CONFIG_HOME/berthctl/credentials.toml` (by default
//! `~/.config/berthctl/`), mode 0600, one table per profile. It holds a client credential and the
//! tokens cached from it, never a password; a file that group or others can read is refused.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{CliError, Result};

pub const DEFAULT_PROFILE: &str = "default";

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CredentialsFile {
    /// The profile used when none is named (`berthctl profile use`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default)]
    pub profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Profile {
    pub url: String,
    /// The organization's id.
    pub org: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    pub client_id: String,
    pub client_secret: String,
    /// When the credential itself expires (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, flatten)]
    pub tokens: Tokens,
}

/// Tokens issued from the credential, kept so that each command does not ask for new ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tokens {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

pub fn path() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => {
            let home = std::env::var_os("HOME")
                .ok_or_else(|| CliError::Config("neither XDG_CONFIG_HOME nor HOME is set".into()))?;
            PathBuf::from(home).join(".config")
        }
    };
    Ok(base.join("berthctl").join("credentials.toml"))
}

impl CredentialsFile {
    /// The file, or an empty one when there is none yet.
    pub fn load() -> Result<Self> {
        let path = path()?;
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(CliError::Config(format!("reading {}: {e}", path.display()))),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CliError::Config(format!(
                "{p} is mode {mode:04o}: group or others can read the credential in it; refusing to use it. \
                 Fix with: chmod 600 {p}",
                p = path.display()
            )));
        }
        let text = std::fs::read_to_string(&path)
            .map_err(|e| CliError::Config(format!("reading {}: {e}", path.display())))?;
        toml::from_str(&text).map_err(|e| CliError::Config(format!("{} is not valid: {e}", path.display())))
    }

    /// Writes the file whole, created 0600 and renamed into place, in a 0700 folder.
    pub fn save(&self) -> Result<()> {
        let path = path()?;
        let err = |e: std::io::Error| CliError::Config(format!("writing {}: {e}", path.display()));
        let dir = path.parent().expect("the file is in a folder");
        if !dir.exists() {
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(err)?;
        }
        let text =
            toml::to_string(self).map_err(|e| CliError::Config(format!("encoding the profiles: {e}")))?;
        let tmp = path.with_extension(format!("toml.{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(text.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)
    }

    /// The profile's name: the one asked for, else the current one, else `default`.
    pub fn name_of(&self, asked: Option<&str>) -> String {
        asked.map(str::to_string).or_else(|| self.current.clone()).unwrap_or_else(|| DEFAULT_PROFILE.into())
    }

    pub fn get(&self, name: &str) -> Result<&Profile> {
        self.profiles.get(name).ok_or_else(|| {
            CliError::Config(format!(
                "no profile {name:?}: sign in with `berthctl login --url URL --email EMAIL`"
            ))
        })
    }
}
