//! The operator's config file (TOML): listen address, data directory, users, secrets and
//! plugin grants.

use crate::identity::Role;
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
    /// `admin`, `editor`, `operator` or `viewer`: what the API lets this user do.
    #[serde(default)]
    pub role: Option<Role>,
    /// The same as a list (`roles = ["editor", "operator"]`); the highest one counts.
    #[serde(default)]
    pub roles: Vec<Role>,
    /// Hex SHA-256 of the user's bearer token.
    pub token_sha256: String,
}

impl User {
    /// The highest role the entry names. A user given none is a `viewer`: adding someone to the
    /// config never hands out more than reading unless the operator says so.
    pub fn role(&self) -> Role {
        self.role
            .into_iter()
            .chain(self.roles.iter().copied())
            .max()
            .unwrap_or(Role::Viewer)
    }

    /// Whether the entry names a role at all (the daemon warns about those that do not).
    pub fn has_role(&self) -> bool {
        self.role.is_some() || !self.roles.is_empty()
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The sandbox this config describes: its plugin grants and settings, with `secrets` (the
    /// resolved `[secrets]`, or none for commands that run nothing) and compiled components
    /// (the template renderer's too) cached in `cache_dir`.
    pub fn sandbox(
        &self,
        cache_dir: Option<PathBuf>,
        secrets: Secrets,
    ) -> Result<Arc<Sandbox>, String> {
        if let Some(dir) = &cache_dir {
            crate::workflow::template::cache_renderer_in(dir.clone());
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn users(toml: &str) -> Result<Vec<User>, String> {
        toml::from_str::<Config>(toml)
            .map(|c| c.users)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_user_has_the_role_named_or_else_viewer() {
        let found = users(
            r#"
[[users]]
name = "ed"
role = "editor"
token_sha256 = "00"
[[users]]
name = "jane"
roles = ["operator", "editor"]
token_sha256 = "00"
[[users]]
name = "vic"
token_sha256 = "00"
"#,
        )
        .unwrap();
        let roles: Vec<(Role, bool)> = found.iter().map(|u| (u.role(), u.has_role())).collect();
        assert_eq!(
            roles,
            [
                (Role::Editor, true),
                (Role::Editor, true),
                (Role::Viewer, false)
            ]
        );
    }

    #[test]
    fn an_unknown_role_names_itself_and_the_allowed_ones() {
        let error =
            users("[[users]]\nname = \"x\"\nrole = \"root\"\ntoken_sha256 = \"00\"\n").unwrap_err();
        for part in [
            "`root`",
            "`viewer`",
            "`operator`",
            "`editor`",
            "`admin`",
            "line 3",
        ] {
            assert!(error.contains(part), "{part} is not in: {error}");
        }
    }
}
