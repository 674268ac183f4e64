//! `plugin.toml`: what a plugin is and which capabilities and limits it asks for.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The WIT world versions this host can link.
pub const SUPPORTED_WORLDS: &[&str] = &["wasmops:plugin/step-plugin@0.1.0"];

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub kind: PluginKind,
    #[serde(default = "default_world")]
    pub world: String,
    /// The component file, relative to the plugin directory.
    pub component: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub capabilities: Capabilities,
    #[serde(default)]
    pub limits: Limits,
}

fn default_world() -> String {
    SUPPORTED_WORLDS[0].to_string()
}

#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    Step,
    Trigger,
    Notifier,
}

/// What a plugin asks for. Nothing outside this is ever granted.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Capabilities {
    /// Programs it may run through `exec`, by name.
    #[serde(default)]
    pub exec: Vec<String>,
    /// `scheme://host[:port]` it may reach over `wasi:http`; `*.domain` wildcards.
    #[serde(default)]
    pub http: Vec<String>,
    #[serde(default)]
    pub files: Vec<FileGrant>,
    /// Secret names it may read; a trailing `*` matches a prefix.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// Host environment variables passed to it and to the programs it runs.
    #[serde(default)]
    pub env: Vec<String>,
    /// Programs it runs may use the network; otherwise they get a network namespace of their own.
    #[serde(default)]
    pub network: bool,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileGrant {
    /// `workspace` for the run workspace, otherwise a host path the operator must also grant.
    pub path: String,
    #[serde(default)]
    pub mode: FileMode,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum FileMode {
    #[default]
    Ro,
    Rw,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Linear memory, e.g. `128MiB`.
    pub memory: Option<String>,
    /// Wall time of one call, e.g. `30m`.
    pub timeout: Option<String>,
}

pub const DEFAULT_MEMORY: u64 = 256 << 20;
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

impl Manifest {
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let manifest: Manifest = toml::from_str(text).map_err(|e| e.to_string())?;
        if !SUPPORTED_WORLDS.contains(&manifest.world.as_str()) {
            return Err(format!(
                "plugin `{}` targets world `{}`; this wasmops links {}",
                manifest.name,
                manifest.world,
                SUPPORTED_WORLDS.join(", ")
            ));
        }
        manifest.memory_limit()?;
        manifest.timeout()?;
        for entry in &manifest.capabilities.http {
            super::http::HttpGrant::parse(entry)?;
        }
        Ok(manifest)
    }

    pub fn memory_limit(&self) -> Result<u64, String> {
        self.limits
            .memory
            .as_deref()
            .map_or(Ok(DEFAULT_MEMORY), parse_size)
    }

    pub fn timeout(&self) -> Result<Duration, String> {
        self.limits
            .timeout
            .as_deref()
            .map_or(Ok(DEFAULT_TIMEOUT), crate::workflow::parse_duration)
    }
}

/// `64MiB`, `1GiB`, `512KiB`, `100MB` or a byte count.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 128MiB"))?;
    let mult = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        other => return Err(format!("unknown size unit `{other}` in `{text}`")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_manifest() {
        let m = Manifest::parse(
            r#"
name = "script"
version = "0.1.0"
kind = "step"
component = "script.wasm"
[capabilities]
exec = ["bash"]
files = [{ path = "workspace", mode = "rw" }]
[limits]
memory = "64MiB"
timeout = "5m"
"#,
        )
        .unwrap();
        assert_eq!(m.memory_limit().unwrap(), 64 << 20);
        assert_eq!(m.timeout().unwrap(), Duration::from_secs(300));
        assert_eq!(m.capabilities.files[0].mode, FileMode::Rw);
        let err =
            Manifest::parse("name='x'\nversion='1'\nkind='step'\ncomponent='x.wasm'\nexe=['sh']\n")
                .unwrap_err();
        assert!(err.contains("unknown field `exe`"), "{err}");
    }
}
