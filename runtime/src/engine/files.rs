//! A run's project files, inside its workspace: the run plans against the projects with each
//! one's directory pointed at its copy under `<workspace>/projects/<code>`, and the copies the
//! plan uses are written before anything runs (from the catalog under the daemon, from this
//! machine's disk for `wasmops run`). Programs then need no grant outside the workspace.

use super::plan::Node;
use super::{Engine, Mode};
use crate::project::Projects;
use crate::project_files::{self, WORKSPACE_DIR};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a workflow run from a file finds the files beside it.
const WORKFLOW_FILES: &str = "files";

/// The projects as a run in `workspace` sees them.
pub(super) fn in_workspace(projects: &Projects, workspace: &Path) -> Projects {
    let mut seen = projects.clone();
    for (code, project) in &mut seen.projects {
        project.dir = Some(workspace.join(WORKSPACE_DIR).join(code));
    }
    seen
}

/// The directory relative paths of the run's own steps resolve in: its project's copy, or
/// the copy of the directory of the workflow file it was started from.
pub(super) fn run_dir(
    workflow: &str,
    source_dir: Option<&Path>,
    workspace: &Path,
) -> Option<PathBuf> {
    match workflow
        .strip_prefix("/projects/")
        .and_then(|rest| rest.split('/').next())
    {
        Some(code) => Some(workspace.join(WORKSPACE_DIR).join(code)),
        None => source_dir.map(|_| workspace.join(WORKSPACE_DIR).join(WORKFLOW_FILES)),
    }
}

/// Writes the copies the run uses: every project directory a planned step points into, and
/// the run's own directory.
pub(super) async fn materialize(
    engine: &Arc<Engine>,
    projects: &Projects,
    nodes: &[Arc<Node>],
    run_dir: Option<&Path>,
    source_dir: Option<&Path>,
    workspace: &Path,
) -> Result<(), String> {
    let root = workspace.join(WORKSPACE_DIR);
    let mut used = BTreeSet::new();
    collect_dirs(nodes, &root, &mut used);
    if let Some(dir) = run_dir.and_then(|d| d.strip_prefix(&root).ok()) {
        used.insert(dir.to_string_lossy().into_owned());
    }
    for name in used {
        let dest = root.join(&name);
        if name == WORKFLOW_FILES && !projects.projects.contains_key(&name) {
            if let Some(dir) = source_dir {
                from_disk(dir, &dest, project_files::Oversized::Skip).await?;
            }
            continue;
        }
        let Some(project) = projects.projects.get(&name) else {
            continue;
        };
        match (&project.dir, &engine.mode) {
            (Some(dir), _) => from_disk(dir, &dest, project_files::Oversized::Refuse).await?,
            (None, Mode::Daemon { catalog }) => {
                let mut contents = std::collections::BTreeMap::new();
                for entry in project.files.values() {
                    if !contents.contains_key(&entry.sha256) {
                        let bytes = catalog
                            .blob(&entry.sha256)
                            .await
                            .map_err(|e| e.to_string())?
                            .ok_or_else(|| {
                                format!("project `{name}`: a file is missing from the store")
                            })?;
                        contents.insert(entry.sha256.clone(), bytes);
                    }
                }
                let files = project.files.clone();
                blocking(move || {
                    project_files::materialize(&dest, &files, |sha| {
                        contents
                            .get(sha)
                            .cloned()
                            .ok_or_else(|| "a file is missing".to_string())
                    })
                })
                .await?;
            }
            (None, Mode::Embedded) => {}
        }
    }
    Ok(())
}

/// The names under `root` that planned steps' directories point into.
fn collect_dirs(nodes: &[Arc<Node>], root: &Path, used: &mut BTreeSet<String>) {
    for node in nodes {
        if let Some(first) = node
            .scope
            .dir
            .as_deref()
            .and_then(|d| d.strip_prefix(root).ok())
            .and_then(|d| d.components().next())
        {
            used.insert(first.as_os_str().to_string_lossy().into_owned());
        }
        collect_dirs(&node.children, root, used);
    }
}

/// Copies a directory of this machine into the workspace, as `apply` would send it.
async fn from_disk(
    dir: &Path,
    dest: &Path,
    oversized: project_files::Oversized,
) -> Result<(), String> {
    let (dir, dest) = (dir.to_path_buf(), dest.to_path_buf());
    blocking(move || {
        let collected = project_files::collect_with(&dir, oversized)?;
        project_files::materialize(&dest, &collected.files, |sha| {
            collected
                .contents
                .get(sha)
                .cloned()
                .ok_or_else(|| "a file vanished".to_string())
        })
    })
    .await
}

async fn blocking(
    work: impl FnOnce() -> Result<PathBuf, String> + Send + 'static,
) -> Result<(), String> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| format!("project files: {e}"))?
        .map(drop)
}
