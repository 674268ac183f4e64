//! The `files` capability: WASI preopens of the run workspace and of host directories the
//! plugin requests and the operator also grants. A plugin sees no other file.

pub use super::phases::FileMode;
use super::phases::{CallData, HostCapability, Prepare};
use crate::error::{Capability, GrantError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use wasmtime::component::Linker;
use wasmtime_wasi::FsPerms;

/// The files capability.
pub(crate) struct Files;

/// One `files` entry of `plugin.toml` or the operator's section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileRequest {
    /// `workspace` for the run workspace, otherwise an absolute host path the operator must
    /// also grant.
    pub path: String,
    /// `ro` (the default) or `rw`.
    #[serde(default)]
    pub mode: FileMode,
}

/// `files = [{ path = "workspace", mode = "rw" }]`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FilesRequest {
    /// Directories asked for.
    pub files: Vec<FileRequest>,
}

/// `files = [...]` in `[plugins.NAME]`: host directories the operator agrees to, at most at
/// these modes. The workspace needs no agreement.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FilesOperator {
    /// Directories granted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileRequest>,
}

/// The directories in force.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FilesGrant {
    /// The run workspace, when requested.
    pub workspace: Option<FileMode>,
    /// Host directories (absolute) and their modes.
    pub dirs: Vec<(PathBuf, FileMode)>,
}

impl HostCapability for Files {
    const NAME: Capability = Capability::Files;
    const REQUEST_KEYS: &'static [&'static str] = &["files"];
    const OPERATOR_KEYS: &'static [&'static str] = &["files"];
    type Request = FilesRequest;
    type Operator = FilesOperator;
    type Grant = FilesGrant;
    type State = ();

    /// WASI's filesystem interface serves the preopens; nothing of ours to link.
    fn link<T: CallData>(_: &mut Linker<T>, _: fn(&mut T) -> &mut ()) -> wasmtime::Result<()> {
        Ok(())
    }

    fn grant(request: &FilesRequest, operator: &FilesOperator) -> Result<FilesGrant, GrantError> {
        let mut grant = FilesGrant::default();
        for file in &request.files {
            if file.path == "workspace" {
                grant.workspace = Some(grant.workspace.map_or(file.mode, |m| m.max(file.mode)));
                continue;
            }
            // Any other directory needs the operator's agreement, at the weaker of the modes.
            if let Some(agreed) = operator.files.iter().find(|o| o.path == file.path) {
                let path = PathBuf::from(&file.path);
                if !path.is_absolute() {
                    return Err(GrantError::new(
                        Self::NAME,
                        format!("files grant `{}` must be an absolute path", file.path),
                    ));
                }
                grant.dirs.push((path, file.mode.min(agreed.mode)));
            }
        }
        Ok(grant)
    }

    fn prepare(grant: &FilesGrant, cx: &mut Prepare<'_>) -> Result<(), String> {
        if let (Some(mode), Some(workspace)) = (grant.workspace, &cx.env.workspace) {
            // Same path inside and out, so paths a plugin builds work for the programs it runs.
            cx.wasi
                .preopened_dir(workspace, workspace.to_string_lossy(), perms(mode))
                .map_err(|e| format!("cannot open the run workspace: {e}"))?;
        }
        for (path, mode) in &grant.dirs {
            cx.wasi
                .preopened_dir(path, path.to_string_lossy(), perms(*mode))
                .map_err(|e| format!("cannot open granted directory {}: {e}", path.display()))?;
        }
        Ok(())
    }
}

fn perms(mode: FileMode) -> FsPerms {
    match mode {
        FileMode::Rw => FsPerms::ReadWrite,
        FileMode::Ro => FsPerms::ReadOnly,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_directories_need_the_operator_at_the_weaker_mode() {
        let request = FilesRequest {
            files: vec![
                FileRequest {
                    path: "workspace".into(),
                    mode: FileMode::Rw,
                },
                FileRequest {
                    path: "/srv/modules".into(),
                    mode: FileMode::Rw,
                },
                FileRequest {
                    path: "/etc".into(),
                    mode: FileMode::Ro,
                },
            ],
        };
        let none = Files::grant(&request, &FilesOperator::default()).unwrap();
        assert_eq!(none.workspace, Some(FileMode::Rw));
        assert!(none.dirs.is_empty(), "host directories need the operator");
        let operator = FilesOperator {
            files: vec![FileRequest {
                path: "/srv/modules".into(),
                mode: FileMode::Ro,
            }],
        };
        let some = Files::grant(&request, &operator).unwrap();
        assert_eq!(some.dirs, [(PathBuf::from("/srv/modules"), FileMode::Ro)]);
    }
}
