//! The operator's config file (TOML): listen address, data directory, users, secrets and
//! plugin grants.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub listen: Option<String>,
    pub data: Option<PathBuf>,
    #[serde(default)]
    pub users: Vec<User>,
    /// Name → value, `env:VAR` or `file:PATH`.
    #[serde(default)]
    pub secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub sandbox: Sandbox,
    /// Per-plugin narrowing of what plugin.toml requests.
    #[serde(default)]
    pub plugins: BTreeMap<String, crate::capabilities::OperatorGrant>,
}

/// Host-wide sandbox settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sandbox {
    /// When the kernel lacks Landlock or network namespaces: `refuse` to run programs (default)
    /// or `allow` them with what confinement there is.
    #[serde(default)]
    pub unconfined: crate::plugins::confine::Unconfined,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Hex SHA-256 of the user's bearer token.
    pub token_sha256: String,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }
}
