//! The catalog service: applying projects, editing drafts, validating, publishing, duplicating,
//! pausing and deleting workflows. Every read-modify-write runs as one transaction of the
//! catalog store, so two publishes never get the same version and an apply lands whole.

mod calls;

pub use calls::called_workflows;

use crate::identity::Actor;
use crate::plugins::Registry;
use crate::project::{ProjectSource, Projects};
use crate::records::{Version, WorkflowRecord, workflow_path};
use crate::store::{CatalogStore, CatalogTx, Refusal, StoreError, TxError, transact};
use chrono::Utc;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Why a catalog request cannot be done.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The project or workflow does not validate; one problem per line.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The work itself failed (a panic while validating).
    #[error("{0}")]
    Internal(String),
}

impl From<TxError> for CatalogError {
    fn from(e: TxError) -> CatalogError {
        match e {
            TxError::Refused(Refusal::NotFound(m)) => CatalogError::NotFound(m),
            TxError::Refused(Refusal::Conflict(m)) => CatalogError::Conflict(m),
            TxError::Refused(Refusal::Invalid(m)) => CatalogError::Invalid(m),
            TxError::Store(e) => CatalogError::Store(e),
        }
    }
}

/// What an apply loaded.
pub struct Applied {
    /// Every project in the catalog afterwards, parsed.
    pub projects: Projects,
    /// The workflows whose drafts it wrote.
    pub workflows: Vec<String>,
}

/// The catalog's operations, over a store.
#[derive(Clone)]
pub struct Catalog {
    store: Arc<dyn CatalogStore>,
    /// Applies run one at a time, from commit to installing their projects.
    applying: Arc<tokio::sync::Mutex<()>>,
}

/// A fresh record for a workflow that has none yet.
fn new_record(
    path: &str,
    project: &str,
    code: &str,
    dir: Option<std::path::PathBuf>,
) -> WorkflowRecord {
    let now = Utc::now();
    WorkflowRecord {
        path: path.to_string(),
        project: project.to_string(),
        code: code.to_string(),
        draft: String::new(),
        versions: Vec::new(),
        paused: false,
        source_dir: dir,
        created_at: now,
        updated_at: now,
    }
}

fn not_found(path: &str) -> Refusal {
    Refusal::NotFound(format!("no workflow {path}"))
}

/// The record at `path` inside a transaction, or a not-found refusal.
fn existing(tx: &mut dyn CatalogTx, path: &str) -> Result<WorkflowRecord, TxError> {
    Ok(tx.workflow(path)?.ok_or_else(|| not_found(path))?)
}

impl Catalog {
    pub fn new(store: Arc<dyn CatalogStore>) -> Catalog {
        Catalog {
            store,
            applying: Arc::default(),
        }
    }

    /// Every applied project, parsed.
    pub async fn projects(&self) -> Result<Projects, CatalogError> {
        Projects::from_sources(&self.store.projects().await?)
            .map_err(|e| CatalogError::Invalid(format!("stored projects no longer parse: {e}")))
    }

    /// Keeps one project file's contents, after checking them against their digest.
    pub async fn put_file(&self, sha256: &str, bytes: &[u8]) -> Result<(), CatalogError> {
        if crate::project_files::digest(bytes) != sha256 {
            return Err(CatalogError::Invalid(format!(
                "the contents sent do not have the SHA-256 {sha256}"
            )));
        }
        Ok(self.store.put_blob(sha256, bytes).await?)
    }

    /// Projects arriving through the API carry their files by digest, uploaded first; a host
    /// directory is never taken from a caller (it would become a read grant for programs).
    async fn check_files(&self, sources: &[ProjectSource]) -> Result<(), CatalogError> {
        for source in sources {
            if let Some(dir) = &source.dir {
                return Err(CatalogError::Invalid(format!(
                    "{}: `dir` ({}) is not accepted: project files travel with the project \
                     (`wasmops apply` uploads them to /api/v1/files first)",
                    source.file,
                    dir.display()
                )));
            }
            crate::project_files::check_set(&source.files)
                .map_err(|e| CatalogError::Invalid(format!("{}: {e}", source.file)))?;
            for (name, entry) in &source.files {
                if !self.store.has_blob(&entry.sha256).await? {
                    return Err(CatalogError::Invalid(format!(
                        "{}: project file `{name}` (sha256 {}) was not uploaded; \
                         PUT /api/v1/files/{} first",
                        source.file, entry.sha256, entry.sha256
                    )));
                }
            }
        }
        Ok(())
    }

    /// Loads projects and their workflows in one transaction: each project replaces what was
    /// there, each workflow file becomes its workflow's draft (published versions stay). The
    /// whole catalog's projects must still parse together, or nothing is written. `install`
    /// gets them once committed, before another apply can commit, so whoever keeps a snapshot
    /// never installs an older one over a newer.
    pub async fn apply(
        &self,
        sources: &[ProjectSource],
        registry: &Registry,
        install: impl FnOnce(&Projects),
    ) -> Result<Applied, CatalogError> {
        self.check_files(sources).await?;
        // Parsing every project is CPU work that grows with the projects: off the async workers.
        let owned = sources.to_vec();
        let (applying, codes) = crate::blocking::run(move || {
            let applying =
                Projects::from_sources(&owned).map_err(|e| CatalogError::Invalid(e.to_string()))?;
            let codes = owned
                .iter()
                .map(|source| {
                    let code = source
                        .parse()
                        .map(|p| p.code)
                        .map_err(|e| CatalogError::Invalid(e.to_string()))?;
                    check_code("project code", &code)?;
                    for wf_code in source.workflows.keys() {
                        check_code("workflow code", wf_code)?;
                    }
                    Ok(code)
                })
                .collect::<Result<Vec<String>, CatalogError>>()?;
            Ok::<_, CatalogError>((applying, codes))
        })
        .await
        .map_err(CatalogError::Internal)??;
        // A template action's `with:` is wrong whether or not a workflow runs it yet.
        let problems = crate::with_blocks::check_template_actions(&applying, registry).await;
        if !problems.is_empty() {
            let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
            return Err(CatalogError::Invalid(lines.join("\n")));
        }
        let parsed: Vec<(String, &ProjectSource)> = codes.into_iter().zip(sources).collect();
        let _turn = self.applying.lock().await;
        let (workflows, projects) = transact(self.store.as_ref(), |tx| {
            let mut written = Vec::new();
            for (code, source) in &parsed {
                tx.put_project(code, source)?;
                for (wf_code, yaml) in &source.workflows {
                    let path = workflow_path(code, wf_code);
                    let mut record = tx
                        .workflow(&path)?
                        .unwrap_or_else(|| new_record(&path, code, wf_code, None));
                    record.draft = yaml.clone();
                    // Runs read the project's files from the catalog, never from a host path.
                    record.source_dir = None;
                    record.updated_at = Utc::now();
                    tx.put_workflow(&record)?;
                    written.push(path);
                }
            }
            let projects = Projects::from_sources(&tx.projects()?)
                .map_err(|e| Refusal::Invalid(e.to_string()))?;
            Ok((written, projects))
        })
        .await?;
        install(&projects);
        Ok(Applied {
            projects,
            workflows,
        })
    }

    pub async fn list(&self) -> Result<Vec<WorkflowRecord>, CatalogError> {
        Ok(self.store.workflows().await?)
    }

    pub async fn find(&self, path: &str) -> Result<Option<WorkflowRecord>, CatalogError> {
        Ok(self.store.workflow(path).await?)
    }

    pub async fn get(&self, path: &str) -> Result<WorkflowRecord, CatalogError> {
        self.find(path)
            .await?
            .ok_or_else(|| CatalogError::NotFound(format!("no workflow {path}")))
    }

    /// Replaces (or creates) a workflow's draft in an applied project; published versions stay.
    pub async fn edit_draft(
        &self,
        projects: &Projects,
        project: &str,
        code: &str,
        yaml: String,
    ) -> Result<WorkflowRecord, CatalogError> {
        check_code("workflow code", code)?;
        let Some(applied) = projects.projects.get(project) else {
            return Err(CatalogError::NotFound(format!(
                "no project `{project}`; apply it first"
            )));
        };
        let path = workflow_path(project, code);
        Ok(transact(self.store.as_ref(), |tx| {
            let mut record = tx
                .workflow(&path)?
                .unwrap_or_else(|| new_record(&path, project, code, applied.dir.clone()));
            record.draft = yaml.clone();
            record.updated_at = Utc::now();
            tx.put_workflow(&record)?;
            Ok(record)
        })
        .await?)
    }

    /// Every problem with `yaml` as the workflow at `path`, as `file:line:column: message`
    /// lines: the language, references to plugins, targets and steps, and the workflows it
    /// calls.
    pub async fn problems(
        &self,
        path: &str,
        yaml: &str,
        registry: &Arc<Registry>,
        projects: &Arc<Projects>,
    ) -> Result<Vec<String>, CatalogError> {
        let (path, yaml) = (path.to_string(), yaml.to_string());
        let (plugins, applied) = (registry.clone(), projects.clone());
        let (registry, projects) = (registry.clone(), projects.clone());
        // Seconds of CPU for a large draft: off the async workers. A draft that does not parse
        // is answered without reading the catalog.
        let checked = crate::blocking::run(move || {
            let file = format!("{path}.yaml");
            let workflow = crate::workflow::parse_workflow(&file, &yaml)
                .map_err(|errors| errors.0.iter().map(ToString::to_string).collect::<Vec<_>>())?;
            let found: Vec<String> =
                crate::validate::check_references(&workflow, &registry, &projects)
                    .iter()
                    .map(ToString::to_string)
                    .collect();
            Ok::<_, Vec<String>>((path, workflow, found))
        })
        .await
        .map_err(CatalogError::Internal)?;
        let (path, workflow, mut found) = match checked {
            Ok(checked) => checked,
            Err(parse_errors) => return Ok(parse_errors),
        };
        found.extend(
            crate::with_blocks::check_with_blocks(&workflow, &plugins, &applied)
                .await
                .iter()
                .map(ToString::to_string),
        );
        let catalog: BTreeMap<String, WorkflowRecord> = self
            .list()
            .await?
            .into_iter()
            .map(|r| (r.path.clone(), r))
            .collect();
        // Following calls parses every workflow reachable from this one: off the workers too.
        let calls = crate::blocking::run(move || calls::check_calls(&catalog, &path, &workflow))
            .await
            .map_err(CatalogError::Internal)?;
        found.extend(calls);
        Ok(found)
    }

    /// Validates the draft, then makes it the next version, unless the draft changed meanwhile.
    pub async fn publish(
        &self,
        path: &str,
        actor: &Actor,
        registry: &Arc<Registry>,
        projects: &Arc<Projects>,
    ) -> Result<WorkflowRecord, CatalogError> {
        let draft = self.get(path).await?.draft;
        let problems = self.problems(path, &draft, registry, projects).await?;
        if !problems.is_empty() {
            return Err(CatalogError::Invalid(problems.join("\n")));
        }
        Ok(transact(self.store.as_ref(), |tx| {
            let mut record = existing(tx, path)?;
            if record.draft != draft {
                return Err(Refusal::Conflict(format!(
                    "the draft of {path} changed while it was validated; publish again"
                ))
                .into());
            }
            let number = record.latest().map_or(1, |v| v.number + 1);
            record.versions.push(Version {
                number,
                yaml: draft.clone(),
                published_at: Utc::now(),
                published_by: actor.name.clone(),
            });
            record.updated_at = Utc::now();
            tx.put_workflow(&record)?;
            Ok(record)
        })
        .await?)
    }

    /// A new workflow in the same project with this one's draft and no versions.
    pub async fn duplicate(
        &self,
        path: &str,
        new_code: &str,
    ) -> Result<WorkflowRecord, CatalogError> {
        check_code("workflow code", new_code)?;
        Ok(transact(self.store.as_ref(), |tx| {
            let original = existing(tx, path)?;
            let copy_path = workflow_path(&original.project, new_code);
            if tx.workflow(&copy_path)?.is_some() {
                return Err(Refusal::Conflict(format!("{copy_path} already exists")).into());
            }
            let now = Utc::now();
            let copy = WorkflowRecord {
                path: copy_path,
                code: new_code.to_string(),
                versions: Vec::new(),
                paused: false,
                created_at: now,
                updated_at: now,
                ..original
            };
            tx.put_workflow(&copy)?;
            Ok(copy)
        })
        .await?)
    }

    /// Pauses (triggers stop firing) or resumes a workflow.
    pub async fn set_paused(
        &self,
        path: &str,
        paused: bool,
    ) -> Result<WorkflowRecord, CatalogError> {
        Ok(transact(self.store.as_ref(), |tx| {
            let mut record = existing(tx, path)?;
            record.paused = paused;
            record.updated_at = Utc::now();
            tx.put_workflow(&record)?;
            Ok(record)
        })
        .await?)
    }

    pub async fn delete(&self, path: &str) -> Result<(), CatalogError> {
        let deleted = transact(self.store.as_ref(), |tx| tx.delete_workflow(path)).await?;
        if deleted {
            Ok(())
        } else {
            Err(CatalogError::NotFound(format!("no workflow {path}")))
        }
    }
}

/// Project and workflow codes become path segments of the API and the store's keys: the same
/// rule as plugin names, so `..`, `a/b` and NUL never get that far.
fn check_code(kind: &str, code: &str) -> Result<(), CatalogError> {
    wasmops_sandbox::check_name(kind, code).map_err(CatalogError::Invalid)
}
