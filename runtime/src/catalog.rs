//! The daemon's catalog in sled: applied projects and workflows with their drafts, numbered
//! published versions and active/paused status.

use crate::project::{ProjectSource, Projects};
use crate::records::WorkflowRecord;
use anyhow::{Context, Result};

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
