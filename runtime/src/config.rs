//! The operator's config file (TOML): listen address, data directory, users, secrets and
//! plugin grants.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use wasmops_sandbox::{Sandbox, SandboxOptions, Secrets};

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
    pub sandbox: wasmops_sandbox::SandboxSettings,
    /// Which backend keeps the daemon's runs and catalog (`[store] type = "sled"`, the
    /// default); `wasmops run FILE` always keeps its runs in the data directory's sled files.
    #[serde(default)]
    pub store: crate::store::StoreConfig,
    /// Per-plugin narrowing of what plugin.toml requests.
    #[serde(default)]
    pub plugins: BTreeMap<String, wasmops_sandbox::OperatorGrant>,
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

    /// The sandbox this config describes: its plugin grants and settings, with `secrets` (the
    /// resolved `[secrets]`, or none for commands that run nothing) and compiled components
    /// cached in `cache_dir`.
    pub fn sandbox(
        &self,
        cache_dir: Option<PathBuf>,
        secrets: Secrets,
    ) -> Result<Arc<Sandbox>, String> {
        Sandbox::new(SandboxOptions {
            cache_dir,
            operator: self.plugins.clone(),
            secrets,
            settings: self.sandbox,
        })
        .map(Arc::new)
        .map_err(|e| e.to_string())
    }

    /// The `[secrets]` values, read from the environment and files where the entry says so.
    pub fn secrets(&self) -> Result<Secrets, String> {
        Secrets::resolve(&self.secrets)
    }
}
