//! `plugin.toml`: what a plugin is, which world it targets, and the capabilities and limits it
//! asks for.

use crate::capabilities::Request;
use crate::kind::{PluginKind, SUPPORTED_WORLDS, newest_world};
use crate::limits::Limits;
use serde::{Deserialize, Serialize};

/// A parsed, checked `plugin.toml`.
#[derive(Clone, Debug, Serialize)]
pub struct Manifest {
    /// The name workflows use (`uses: NAME`).
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// Which interface it exports.
    pub kind: PluginKind,
    /// The other interfaces it also exports, each of the newest world of its kind (`slack` is
    /// a step, and `also = ["notifier"]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<PluginKind>,
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

/// The file as written; [`Manifest::parse`] checks it and fills in defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    name: String,
    version: String,
    kind: PluginKind,
    #[serde(default)]
    also: Vec<PluginKind>,
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
        check_name("plugin name", &file.name)?;
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
        for (i, kind) in file.also.iter().enumerate() {
            if *kind == file.kind || file.also[..i].contains(kind) {
                return Err(format!(
                    "plugin `{}`: `also` names the {kind} kind twice",
                    file.name
                ));
            }
        }
        file.limits.memory()?;
        file.limits.timeout()?;
        file.limits.processes()?;
        file.limits.program_memory()?;
        file.limits.program_cpu()?;
        file.limits.workspace_size()?;
        // A malformed host is an error in plugin.toml, granted or not.
        for entry in &file.capabilities.http.http {
            crate::capabilities::http::HostRule::parse(entry)?;
        }
        Ok(Manifest {
            name: file.name,
            version: file.version,
            kind: file.kind,
            also: file.also,
            world,
            component: file.component,
            description: file.description,
            capabilities: file.capabilities,
            limits: file.limits,
        })
    }
}

/// A name that becomes a directory or a path segment (plugin names; project and workflow
/// codes): lower-case letters, digits, `-` and `_`, starting with a letter or digit, at most
/// 64. `kind` says what it names, for the message.
pub fn check_name(kind: &str, name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let rest_ok =
        chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if first_ok && rest_ok && name.len() <= 64 {
        return Ok(());
    }
    let shown: String = name.chars().take(80).collect();
    Err(format!(
        "{kind} `{}` is not allowed: use 1 to 64 lower-case letters, digits, `-` and `_`, starting with a letter or digit",
        shown.escape_debug()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
    fn names_are_plain_words() {
        let with = |name: &str| {
            Manifest::parse(&format!(
                "name={name:?}\nversion='1'\nkind='step'\ncomponent='x.wasm'\n"
            ))
        };
        for good in ["script", "hello-python", "tf_2", "0x"] {
            assert!(with(good).is_ok(), "{good}");
        }
        for bad in [
            "../db",
            "/etc",
            "",
            "Script",
            "a b",
            "-x",
            &"x".repeat(65),
            "é",
        ] {
            let err = with(bad).unwrap_err();
            assert!(err.contains("is not allowed"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_plugin_may_also_export_other_kinds_once_each() {
        let base = "name='t'\nversion='1'\ncomponent='t.wasm'\nkind='step'\n";
        let m = Manifest::parse(&format!("{base}also=['notifier']\n")).unwrap();
        assert_eq!(m.also, [PluginKind::Notifier]);
        for twice in ["also=['step']", "also=['notifier', 'notifier']"] {
            let err = Manifest::parse(&format!("{base}{twice}\n")).unwrap_err();
            assert!(err.contains("twice"), "{twice}: {err}");
        }
        assert!(Manifest::parse(&format!("{base}also=['webhook']\n")).is_err());
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
