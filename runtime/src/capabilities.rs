//! Capability grants: what a plugin asked for in plugin.toml, narrowed by the operator's
//! `[plugins.NAME]` config, resolved into what the host will actually allow.

use crate::plugins::exec::resolve_program;
use crate::plugins::http::HttpGrant;
use crate::plugins::manifest::{FileMode, Manifest, parse_size};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// The operator's word on one plugin. Lists narrow what plugin.toml requests (an entry the plugin
/// did not request is ignored); a few settings only the operator can give.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorGrant {
    pub exec: Option<Vec<String>>,
    pub http: Option<Vec<String>>,
    pub secrets: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
    /// Host directories beyond the workspace; each must also be requested by the plugin.
    #[serde(default)]
    pub files: Vec<crate::plugins::manifest::FileGrant>,
    /// Let granted HTTP names resolve to private or loopback addresses.
    #[serde(default)]
    pub allow_private_http: bool,
    /// Set to false to take away network access the plugin requested for its programs.
    pub network: Option<bool>,
    /// Lower limits than plugin.toml asks for (higher values are ignored).
    pub memory: Option<String>,
    pub timeout: Option<String>,
}

/// What the host allows one plugin.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Grants {
    /// Program name → absolute path, resolved once.
    pub programs: BTreeMap<String, PathBuf>,
    /// Granted programs not found on this host.
    pub missing_programs: Vec<String>,
    #[serde(skip)]
    pub http: Vec<HttpGrant>,
    pub http_entries: Vec<String>,
    pub allow_private_http: bool,
    pub workspace: Option<FileMode>,
    /// Extra host directories (absolute) and their modes.
    pub dirs: Vec<(PathBuf, FileMode)>,
    pub secrets: Vec<String>,
    pub env: Vec<String>,
    /// Programs it runs may use the network.
    pub network: bool,
    pub memory: u64,
    #[serde(with = "humantime_serde_compat")]
    pub timeout: Duration,
}

mod humantime_serde_compat {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

/// Keeps the requested entries the operator also lists; all of them when the operator is silent.
fn narrow(requested: &[String], operator: Option<&Vec<String>>) -> Vec<String> {
    match operator {
        None => requested.to_vec(),
        Some(allowed) => requested
            .iter()
            .filter(|r| allowed.contains(r))
            .cloned()
            .collect(),
    }
}

pub fn effective(manifest: &Manifest, operator: Option<&OperatorGrant>) -> Result<Grants, String> {
    let caps = &manifest.capabilities;
    let default = OperatorGrant::default();
    let op = operator.unwrap_or(&default);
    let mut grants = Grants {
        secrets: narrow(&caps.secrets, op.secrets.as_ref()),
        env: narrow(&caps.env, op.env.as_ref()),
        http_entries: narrow(&caps.http, op.http.as_ref()),
        allow_private_http: op.allow_private_http,
        network: caps.network && op.network.unwrap_or(true),
        memory: manifest.memory_limit()?,
        timeout: manifest.timeout()?,
        ..Grants::default()
    };
    grants.http = grants
        .http_entries
        .iter()
        .map(|e| HttpGrant::parse(e))
        .collect::<Result<_, _>>()?;
    for program in narrow(&caps.exec, op.exec.as_ref()) {
        match resolve_program(&program) {
            Some(path) => {
                grants.programs.insert(program, path);
            }
            None => grants.missing_programs.push(program),
        }
    }
    for file in &caps.files {
        if file.path == "workspace" {
            grants.workspace = Some(grants.workspace.map_or(file.mode, |m| m.max(file.mode)));
            continue;
        }
        // Any other directory needs the operator's agreement, at the weaker of the two modes.
        if let Some(agreed) = op.files.iter().find(|o| o.path == file.path) {
            let path = PathBuf::from(&file.path);
            if !path.is_absolute() {
                return Err(format!(
                    "files grant `{}` must be an absolute path",
                    file.path
                ));
            }
            grants.dirs.push((path, file.mode.min(agreed.mode)));
        }
    }
    if let Some(memory) = &op.memory {
        grants.memory = grants.memory.min(parse_size(memory)?);
    }
    if let Some(timeout) = &op.timeout {
        grants.timeout = grants
            .timeout
            .min(crate::workflow::parse_duration(timeout)?);
    }
    Ok(grants)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
name = "tf"
version = "1"
kind = "step"
component = "tf.wasm"
[capabilities]
exec = ["bash", "terraform-not-installed"]
http = ["https://registry.terraform.io", "https://*.amazonaws.com"]
secrets = ["aws_*", "slack"]
files = [{ path = "workspace", mode = "rw" }, { path = "/srv/modules", mode = "rw" }]
network = true
[limits]
memory = "128MiB"
timeout = "30m"
"#,
        )
        .unwrap()
    }

    #[test]
    fn without_operator_config_the_request_stands_but_operator_only_grants_do_not() {
        let g = effective(&manifest(), None).unwrap();
        assert!(g.programs.contains_key("bash"));
        assert_eq!(g.missing_programs, ["terraform-not-installed"]);
        assert_eq!(g.http.len(), 2);
        assert_eq!(g.workspace, Some(FileMode::Rw));
        assert!(g.dirs.is_empty(), "host directories need the operator");
        assert!(!g.allow_private_http);
        assert!(g.network);
    }

    #[test]
    fn the_operator_narrows_and_never_widens() {
        let op: OperatorGrant = toml::from_str(
            r#"
exec = ["bash", "curl"]
http = ["https://registry.terraform.io"]
secrets = ["slack", "github_token"]
files = [{ path = "/srv/modules", mode = "ro" }, { path = "/etc", mode = "rw" }]
network = false
memory = "1GiB"
timeout = "5m"
"#,
        )
        .unwrap();
        let g = effective(&manifest(), Some(&op)).unwrap();
        assert_eq!(
            g.programs.keys().collect::<Vec<_>>(),
            ["bash"],
            "curl was never requested"
        );
        assert_eq!(g.http_entries, ["https://registry.terraform.io"]);
        assert_eq!(g.secrets, ["slack"]);
        assert_eq!(g.dirs, [(PathBuf::from("/srv/modules"), FileMode::Ro)]);
        assert!(!g.network);
        assert_eq!(g.memory, 128 << 20, "a higher operator limit is ignored");
        assert_eq!(g.timeout, Duration::from_secs(300));
    }
}
