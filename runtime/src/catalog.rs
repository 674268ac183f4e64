//! The daemon's catalog in sled: applied projects and workflows with their drafts, numbered
//! published versions and active/paused status.

use crate::project::{ProjectSource, Projects};
use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Version {
    pub number: u32,
    pub yaml: String,
    pub published_at: DateTime<Utc>,
    pub published_by: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WorkflowRecord {
    /// `/projects/{p}/workflows/{w}`
    pub path: String,
    pub project: String,
    pub code: String,
    /// The draft being edited; what `publish` turns into the next version.
    pub draft: String,
    pub versions: Vec<Version>,
    /// Paused: triggers do not fire; manual runs still work.
    pub paused: bool,
    /// Where script files of this workflow are read from.
    pub source_dir: Option<std::path::PathBuf>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl WorkflowRecord {
    /// `draft` (never published), `active` or `paused`.
    pub fn status(&self) -> &'static str {
        match (self.versions.is_empty(), self.paused) {
            (true, _) => "draft",
            (false, false) => "active",
            (false, true) => "paused",
        }
    }

    pub fn latest(&self) -> Option<&Version> {
        self.versions.last()
    }

    pub fn version(&self, number: u32) -> Option<&Version> {
        self.versions.iter().find(|v| v.number == number)
    }

    /// What the API returns: the record and its status, without every version's text.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path,
            "project": self.project,
            "code": self.code,
            "status": self.status(),
            "latest_version": self.latest().map(|v| v.number),
            "versions": self.versions.iter().map(|v| serde_json::json!({
                "number": v.number, "published_at": v.published_at, "published_by": v.published_by
            })).collect::<Vec<_>>(),
            "draft": self.draft,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

pub fn workflow_path(project: &str, code: &str) -> String {
    format!("/projects/{project}/workflows/{code}")
}

/// `/projects/p/workflows/w` → (p, w).
pub fn split_workflow_path(path: &str) -> Option<(&str, &str)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    match parts[..] {
        ["projects", p, "workflows", w] if !p.is_empty() && !w.is_empty() => Some((p, w)),
        _ => None,
    }
}

/// `workflow` step targets of a workflow that are written out (not templates).
pub fn called_workflows(
    workflow: &crate::workflow::Workflow,
) -> Vec<(String, Option<u32>, crate::diagnostics::Location)> {
    let mut calls = Vec::new();
    workflow.walk(&mut |step| {
        if let crate::workflow::StepKind::Workflow {
            target, version, ..
        } = &step.kind
            && !crate::workflow::template::is_template(target)
        {
            calls.push((target.clone(), *version, step.location));
        }
    });
    calls
}

#[derive(Clone)]
pub struct Catalog {
    projects: sled::Tree,
    workflows: sled::Tree,
}

impl Catalog {
    pub fn open(db: &sled::Db) -> Result<Catalog> {
        Ok(Catalog {
            projects: db.open_tree("projects")?,
            workflows: db.open_tree("workflows")?,
        })
    }

    pub fn put_project(&self, code: &str, source: &ProjectSource) -> Result<()> {
        self.projects
            .insert(code.as_bytes(), serde_json::to_vec(source)?)?;
        Ok(())
    }

    pub fn project_sources(&self) -> Result<Vec<ProjectSource>> {
        self.projects
            .iter()
            .map(|e| serde_json::from_slice(&e?.1).context("corrupt project record"))
            .collect()
    }

    pub fn projects(&self) -> Result<Projects> {
        Projects::from_sources(&self.project_sources()?)
            .map_err(|e| anyhow::anyhow!("stored projects no longer parse: {e}"))
    }

    pub fn get(&self, path: &str) -> Result<Option<WorkflowRecord>> {
        match self.workflows.get(path.as_bytes())? {
            Some(bytes) => Ok(Some(
                serde_json::from_slice(&bytes).context("corrupt workflow record")?,
            )),
            None => Ok(None),
        }
    }

    pub fn put(&self, record: &WorkflowRecord) -> Result<()> {
        self.workflows
            .insert(record.path.as_bytes(), serde_json::to_vec(record)?)?;
        Ok(())
    }

    pub fn delete(&self, path: &str) -> Result<bool> {
        Ok(self.workflows.remove(path.as_bytes())?.is_some())
    }

    /// Problems with the workflows `workflow` (about to be published as `path`) calls: unknown or
    /// unpublished targets, and call cycles, spelled out (`a → b → a`).
    pub fn check_calls(&self, path: &str, workflow: &crate::workflow::Workflow) -> Vec<String> {
        let mut problems = Vec::new();
        for (target, version, at) in called_workflows(workflow) {
            let where_ = format!("{}:{}:{}", workflow.file, at.line, at.column);
            match self.get(&target) {
                Ok(Some(record)) => match version {
                    Some(n) if record.version(n).is_none() => {
                        problems.push(format!("{where_}: {target} has no published version {n}"))
                    }
                    None if record.versions.is_empty() => problems.push(format!(
                        "{where_}: {target} has no published version; publish it first"
                    )),
                    _ => {}
                },
                _ => problems.push(format!("{where_}: workflow {target} does not exist")),
            }
        }
        if let Some(cycle) = self.find_cycle(path, workflow) {
            problems.push(format!(
                "{}: workflow call cycle: {}",
                workflow.file,
                cycle.join(" → ")
            ));
        }
        problems
    }

    fn find_cycle(&self, start: &str, workflow: &crate::workflow::Workflow) -> Option<Vec<String>> {
        fn visit(
            catalog: &Catalog,
            start: &str,
            chain: &mut Vec<String>,
            calls: Vec<String>,
        ) -> bool {
            for target in calls {
                if target == start {
                    chain.push(target);
                    return true;
                }
                if chain.contains(&target) {
                    continue;
                }
                let Ok(Some(record)) = catalog.get(&target) else {
                    continue;
                };
                let Some(latest) = record.latest() else {
                    continue;
                };
                let Ok(parsed) = crate::workflow::parse_workflow(&target, &latest.yaml) else {
                    continue;
                };
                chain.push(target);
                let next = called_workflows(&parsed)
                    .into_iter()
                    .map(|(t, ..)| t)
                    .collect();
                if visit(catalog, start, chain, next) {
                    return true;
                }
                chain.pop();
            }
            false
        }
        let mut chain = vec![start.to_string()];
        let calls = called_workflows(workflow)
            .into_iter()
            .map(|(t, ..)| t)
            .collect();
        visit(self, start, &mut chain, calls).then_some(chain)
    }

    pub fn list(&self) -> Result<Vec<WorkflowRecord>> {
        self.workflows
            .iter()
            .map(|e| serde_json::from_slice(&e?.1).context("corrupt workflow record"))
            .collect()
    }
}
