//! `plugin.toml`: what a plugin is, which world it targets, and the capabilities and limits it
//! asks for.

use crate::capabilities::Request;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The world versions this host links, by plugin kind.
pub const SUPPORTED_WORLDS: &[(PluginKind, &str)] = &[
    (PluginKind::Step, "wasmops:plugin/step-plugin@0.1.0"),
    (PluginKind::Trigger, "wasmops:plugin/trigger-plugin@0.1.0"),
    (PluginKind::Notifier, "wasmops:plugin/notifier-plugin@0.1.0"),
];

/// Linear memory a plugin gets when `plugin.toml` says nothing.
pub const DEFAULT_MEMORY: u64 = 256 << 20;
/// Wall time of one call when `plugin.toml` says nothing.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

/// A parsed, checked `plugin.toml`.
#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    /// The name workflows use (`uses: NAME`).
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// Which interface it exports.
    pub kind: PluginKind,
    /// The WIT world it targets; defaults to the newest one of its kind.
    pub world: String,
    /// The component file, relative to the plugin directory.
    pub component: String,
    /// One line for listings.
    pub description: String,
    /// What it asks for; nothing else is ever granted.
    pub capabilities: Request,
    /// Memory and time it asks for.
    pub limits: Limits,
}

/// The kind of a plugin: which interface it exports.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Exports `step`: runs as a step of a workflow.
    Step,
    /// Exports `trigger`: starts runs.
    Trigger,
    /// Exports `notifier`: is told about runs.
    Notifier,
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginKind::Step => "step",
            PluginKind::Trigger => "trigger",
            PluginKind::Notifier => "notifier",
        })
    }
}

/// `[limits]`: memory and time per call.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Linear memory, e.g. `128MiB`.
    pub memory: Option<String>,
    /// Wall time of one call, e.g. `30m`.
    pub timeout: Option<String>,
}

impl Limits {
    /// The memory limit in bytes.
    pub fn memory(&self) -> Result<u64, String> {
        self.memory
            .as_deref()
            .map_or(Ok(DEFAULT_MEMORY), parse_size)
    }

    /// The wall-time limit of one call.
    pub fn timeout(&self) -> Result<Duration, String> {
        self.timeout
            .as_deref()
            .map_or(Ok(DEFAULT_TIMEOUT), parse_duration)
    }
}

/// The file as written; [`Manifest::parse`] checks it and fills in defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    name: String,
    version: String,
    kind: PluginKind,
    world: Option<String>,
    component: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    capabilities: Request,
    #[serde(default)]
    limits: Limits,
}

impl Manifest {
    /// Parses and checks `plugin.toml` text: known keys only, a world this host links that
    /// matches the kind, and limits that parse.
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let file: ManifestFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let world = match file.world {
            Some(world) => world,
            None => newest_world(file.kind).to_string(),
        };
        let known = SUPPORTED_WORLDS
            .iter()
            .find(|(_, name)| *name == world.as_str());
        match known {
            Some((kind, _)) if *kind == file.kind => {}
            Some((kind, _)) => {
                return Err(format!(
                    "plugin `{}` is a {} plugin but targets the {kind} world `{world}`",
                    file.name, file.kind
                ));
            }
            None => {
                let linked: Vec<&str> = SUPPORTED_WORLDS.iter().map(|(_, w)| *w).collect();
                return Err(format!(
                    "plugin `{}` targets world `{world}`; this wasmops links {}",
                    file.name,
                    linked.join(", ")
                ));
            }
        }
        file.limits.memory()?;
        file.limits.timeout()?;
        Ok(Manifest {
            name: file.name,
            version: file.version,
            kind: file.kind,
            world,
            component: file.component,
            description: file.description,
            capabilities: file.capabilities,
            limits: file.limits,
        })
    }
}

fn newest_world(kind: PluginKind) -> &'static str {
    SUPPORTED_WORLDS
        .iter()
        .rev()
        .find(|(k, _)| *k == kind)
        .map(|(_, world)| *world)
        .unwrap_or_default()
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

/// `30s`, `5m`, `1h 30m` (humantime) or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(text).map_err(|e| format!("`{text}`: {e}"))
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
        assert_eq!(m.limits.memory().unwrap(), 64 << 20);
        assert_eq!(m.limits.timeout().unwrap(), Duration::from_secs(300));
        assert_eq!(m.world, "wasmops:plugin/step-plugin@0.1.0");
        let err =
            Manifest::parse("name='x'\nversion='1'\nkind='step'\ncomponent='x.wasm'\nexe=['sh']\n")
                .unwrap_err();
        assert!(err.contains("unknown field `exe`"), "{err}");
        let err = Manifest::parse(
            "name='x'\nversion='1'\nkind='step'\ncomponent='x.wasm'\n[capabilities]\nexe=['sh']\n",
        )
        .unwrap_err();
        assert!(err.contains("unknown capability `exe`"), "{err}");
    }

    #[test]
    fn the_world_follows_the_kind() {
        let base = "name='t'\nversion='1'\ncomponent='t.wasm'\n";
        let m = Manifest::parse(&format!("{base}kind='trigger'\n")).unwrap();
        assert_eq!(m.world, "wasmops:plugin/trigger-plugin@0.1.0");
        let m = Manifest::parse(&format!("{base}kind='notifier'\n")).unwrap();
        assert_eq!(m.world, "wasmops:plugin/notifier-plugin@0.1.0");
        let err = Manifest::parse(&format!(
            "{base}kind='trigger'\nworld='wasmops:plugin/step-plugin@0.1.0'\n"
        ))
        .unwrap_err();
        assert!(
            err.contains("is a trigger plugin but targets the step world"),
            "{err}"
        );
        let err = Manifest::parse(&format!(
            "{base}kind='step'\nworld='wasmops:plugin/step-plugin@9.0.0'\n"
        ))
        .unwrap_err();
        assert!(err.contains("this wasmops links"), "{err}");
    }
}
