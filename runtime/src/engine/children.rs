//! `workflow` steps: one child run of a published workflow per property override, sequential or
//! parallel, each a run of its own linked to the step that started it.

use super::plan::Node;
use super::records::{Done, RunCtx};
use crate::records::{Run, RunStatus, Trigger};
use crate::records::{RunSpec, split_workflow_path};
use crate::store::{RunQuery, list_all};
use crate::workflow::{RunAs, StepKind, template};
use serde_json::{Map, Value, json};

/// Deeper nesting than this fails: a guard against call chains publish-time checks cannot see
/// (templated targets).
pub const MAX_DEPTH: u64 = 8;

impl RunCtx {
    pub async fn run_children(&self, node: &Node) -> Result<Done, String> {
        let StepKind::Workflow {
            version,
            run_as,
            property_overrides,
            ..
        } = &node.step.kind
        else {
            return Err("not a workflow step".into());
        };
        let target = node.record.target.clone().unwrap_or_default();
        let super::Mode::Daemon { catalog } = &self.engine.mode else {
            return Err("workflow steps call published workflows; they need the daemon (`wasmops up`) and cannot run embedded".into());
        };
        let depth = self
            .base
            .get("trigger")
            .and_then(|t| t.get("depth"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
            + 1;
        if depth > MAX_DEPTH {
            return Err(format!(
                "workflow calls nest deeper than {MAX_DEPTH} levels (is {target} calling itself?)"
            ));
        }
        split_workflow_path(&target)
            .ok_or_else(|| format!("`{target}` is not /projects/P/workflows/W"))?;
        let record = catalog
            .workflow(&target)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("workflow {target} does not exist"))?;
        let published = match version {
            Some(n) => record
                .version(*n)
                .ok_or_else(|| format!("{target} has no published version {n}"))?,
            None => record
                .latest()
                .ok_or_else(|| format!("{target} has no published version"))?,
        };
        // Overrides are templates over the parent's context.
        let context = self.template_context(&node.scope);
        let overrides: Vec<Map<String, Value>> = if property_overrides.is_empty() {
            vec![Map::new()]
        } else {
            property_overrides
                .iter()
                .map(
                    |o| match template::render_value(&Value::Object(o.clone()), &context) {
                        Ok(Value::Object(m)) => Ok(m),
                        Ok(_) => Ok(Map::new()),
                        Err(e) => Err(format!("template error in `property_overrides`: {e}")),
                    },
                )
                .collect::<Result<_, _>>()?
        };
        let parent = format!("{}/{}", self.run_id, node.path);
        let query = RunQuery {
            parent: Some(parent.clone()),
            ..RunQuery::default()
        };
        let existing: Vec<Run> = list_all(self.engine.runs.as_ref(), query)
            .await
            .map_err(|e| e.to_string())?;
        let mut ids = Vec::new();
        for (index, overrides) in overrides.into_iter().enumerate() {
            // After a restart, the children this step already started are picked up, not doubled.
            if let Some(run) = existing.iter().find(|r| {
                r.trigger.inputs.get("index").and_then(Value::as_u64) == Some(index as u64)
            }) {
                ids.push(run.id.clone());
                continue;
            }
            let mut inputs = Map::new();
            inputs.insert("parent".into(), json!(parent));
            inputs.insert("index".into(), json!(index));
            inputs.insert("depth".into(), json!(depth));
            let spec = RunSpec {
                workflow_yaml: published.yaml.clone(),
                file: format!("{target}@v{}", published.number),
                label: target.clone(),
                version: Some(published.number),
                source_dir: record.source_dir.clone(),
                overrides,
                trigger: Trigger {
                    kind: "workflow".into(),
                    by: Some(self.workflow.clone()),
                    inputs,
                },
                from_file: false,
                projects_sha256: self.projects.digest().map(str::to_string),
            };
            let run = self.engine.create(spec).await.map_err(|e| e.to_string())?;
            ids.push(run.id);
        }
        self.update(&node.path, |s| {
            s.outputs.insert("runs".into(), json!(ids));
        })
        .await;
        let statuses = match run_as {
            RunAs::Sequential => {
                let mut statuses = Vec::new();
                for id in &ids {
                    let status = self.drive_child(id).await?;
                    statuses.push(status);
                    if status != RunStatus::Succeeded {
                        break;
                    }
                }
                statuses
            }
            RunAs::Parallel => {
                let results =
                    futures::future::join_all(ids.iter().map(|id| self.drive_child(id))).await;
                results.into_iter().collect::<Result<Vec<_>, _>>()?
            }
        };
        let ok = statuses
            .iter()
            .filter(|s| **s == RunStatus::Succeeded)
            .count();
        let summary = format!(
            "{ok}/{} child runs of {target} v{} succeeded: {}",
            ids.len(),
            published.number,
            ids.join(", ")
        );
        if ok == ids.len() {
            let mut outputs = Map::new();
            outputs.insert("runs".into(), json!(ids));
            Ok(Done {
                summary: Some(summary),
                outputs,
                approved_by: None,
            })
        } else {
            Err(summary.replace("succeeded", "succeeded (the others failed)"))
        }
    }

    /// Runs a child to its end. A child that failed or was cancelled in an earlier attempt of
    /// this step is retried (its completed steps kept), as retrying the parent promises.
    async fn drive_child(&self, id: &str) -> Result<RunStatus, String> {
        let mut run = self.engine.load(id).await.map_err(|e| e.to_string())?;
        if matches!(run.status, RunStatus::Failed | RunStatus::Cancelled) {
            run.status = RunStatus::Queued;
            run.finished_at = None;
            run.error = None;
            self.engine
                .runs
                .put(id, Some(&run), &[])
                .await
                .map_err(|e| e.to_string())?;
        }
        if run.status != RunStatus::Succeeded {
            Box::pin(self.engine.drive(id))
                .await
                .map_err(|e| format!("child run {id}: {e:#}"))?;
        }
        Ok(self
            .engine
            .load(id)
            .await
            .map_err(|e| e.to_string())?
            .status)
    }
}
