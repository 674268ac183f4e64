//! Durable state behind two traits, [`RunStore`] and [`CatalogStore`]: a successful return means
//! the change is durable (backends group-commit inside; callers never flush). sled is the
//! embedded default; an in-memory backend serves tests and throwaway daemons; one conformance
//! suite holds every backend to the same contract.

mod claims;
mod memory;
mod sled;
mod staged;

#[cfg(test)]
mod conformance;

pub use self::claims::{LocalClaims, RunClaims};
pub use self::memory::MemoryStore;
pub use self::sled::SledStore;

use crate::project::ProjectSource;
use crate::records::{LogLine, Run, RunSpec, RunStatus, StepRun, WorkflowRecord};
use async_trait::async_trait;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

/// The most runs one page may hold.
pub const MAX_PAGE: usize = 1000;

/// Why the store could not read or write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend failed (I/O, a lock, a full disk…).
    #[error("storage failed: {0}")]
    Backend(String),
    /// A record does not parse: written by an incompatible version, or damaged.
    #[error("corrupt {what} record `{key}`: {detail}")]
    Corrupt {
        what: &'static str,
        key: String,
        detail: String,
    },
    /// A page cursor that this store did not hand out.
    #[error("`{0}` is not a cursor from a previous page")]
    BadCursor(String),
}

/// Which runs to list, newest first.
#[derive(Clone, Debug, Default)]
pub struct RunQuery {
    /// Runs of this workflow (its path, or its name for runs of a file).
    pub workflow: Option<String>,
    /// Runs in any of these states; all when empty.
    pub statuses: Vec<RunStatus>,
    /// Child runs of this run (`wfr_…`, whichever step started them), or of exactly one of its
    /// steps (`wfr_…/2.1`: not `2.1.3`'s, not `2.10`'s).
    pub parent: Option<String>,
    /// Continue after the last run of a previous page ([`RunPage::next`]).
    pub cursor: Option<String>,
    /// At most this many (1..=[`MAX_PAGE`]).
    pub limit: usize,
}

impl RunQuery {
    fn page_size(&self) -> usize {
        self.limit.clamp(1, MAX_PAGE)
    }

    /// Whether `run` (a header) matches the filters, cursor aside.
    fn matches(&self, run: &Run) -> bool {
        self.workflow.as_ref().is_none_or(|w| run.workflow == *w)
            && (self.statuses.is_empty() || self.statuses.contains(&run.status))
            && self.parent.as_ref().is_none_or(|p| {
                run.parent().is_some_and(|parent| {
                    parent == p
                        || parent
                            .strip_prefix(p.as_str())
                            .is_some_and(|rest| rest.starts_with('/'))
                })
            })
    }
}

/// One page of run headers (no step trees), newest first.
#[derive(Clone, Debug, Default)]
pub struct RunPage {
    pub runs: Vec<Run>,
    /// The cursor of the next page, when there is one.
    pub next: Option<String>,
}

/// Runs, their step records, specs and logs.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Records a new run (its header) and what it runs.
    async fn create(&self, run: &Run, spec: &RunSpec) -> Result<(), StoreError>;

    /// Writes a run's header (its steps ignored), when given, and step records, each with its
    /// descendants, atomically: after a crash, all of them or none.
    async fn put(
        &self,
        run_id: &str,
        header: Option<&Run>,
        steps: &[StepRun],
    ) -> Result<(), StoreError>;

    /// Appends lines to one step's log.
    async fn append_logs(
        &self,
        run_id: &str,
        step: &str,
        lines: &[LogLine],
    ) -> Result<(), StoreError>;

    /// A run with its step tree.
    async fn run(&self, id: &str) -> Result<Option<Run>, StoreError>;

    /// What a run runs, for resuming and retrying it.
    async fn spec(&self, id: &str) -> Result<Option<RunSpec>, StoreError>;

    /// A page of run headers, filtered and ordered by the store.
    async fn list(&self, query: &RunQuery) -> Result<RunPage, StoreError>;

    /// Keeps the projects a run starts with (their sources as JSON) under their hex SHA-256;
    /// durable when it returns. Keeping the same again changes nothing.
    async fn keep_snapshot(&self, sha256: &str, json: &[u8]) -> Result<(), StoreError>;

    /// The projects kept under `sha256`.
    async fn snapshot(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// How many runs are in each state.
    async fn count_by_status(&self) -> Result<BTreeMap<RunStatus, u64>, StoreError>;

    /// The log lines of a run, or of one step and its descendants, in the order written:
    /// (step path, line).
    async fn logs(
        &self,
        run_id: &str,
        step: Option<&str>,
    ) -> Result<Vec<(String, LogLine)>, StoreError>;

    /// Who may drive which run: the engine claims a run here before it drives it.
    fn claims(&self) -> &dyn RunClaims;
}

/// Why a catalog transaction did not commit.
#[derive(Debug, thiserror::Error)]
pub enum TxError {
    /// The change refused itself (the workflow is missing, a draft changed meanwhile…).
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A change to the catalog that cannot be made as asked.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
}

/// A consistent view of the catalog inside a transaction; writes land together at commit.
pub trait CatalogTx {
    fn workflow(&mut self, path: &str) -> Result<Option<WorkflowRecord>, TxError>;
    fn put_workflow(&mut self, record: &WorkflowRecord) -> Result<(), TxError>;
    /// Whether there was one.
    fn delete_workflow(&mut self, path: &str) -> Result<bool, TxError>;
    fn put_project(&mut self, code: &str, source: &ProjectSource) -> Result<(), TxError>;
    /// Every project's sources, this transaction's writes included.
    fn projects(&mut self) -> Result<Vec<ProjectSource>, TxError>;
}

/// A change run inside a catalog transaction. A backend may run it more than once, so it must
/// read and write only through the transaction.
pub type CatalogChange<'a> = &'a (dyn Fn(&mut dyn CatalogTx) -> Result<(), TxError> + Send + Sync);

/// Applied projects and workflows with their drafts, versions and status.
#[async_trait]
pub trait CatalogStore: Send + Sync {
    /// Every applied project's sources.
    async fn projects(&self) -> Result<Vec<ProjectSource>, StoreError>;
    async fn workflow(&self, path: &str) -> Result<Option<WorkflowRecord>, StoreError>;
    /// Every workflow, by path.
    async fn workflows(&self) -> Result<Vec<WorkflowRecord>, StoreError>;
    /// Runs `change` atomically: it sees one consistent catalog, and its writes all land, durably,
    /// or none do. Two transactions on the same workflow never interleave.
    async fn transact(&self, change: CatalogChange<'_>) -> Result<(), TxError>;
    /// Keeps a project file's contents under their hex SHA-256 (the caller has checked it);
    /// durable when it returns. Storing the same contents again changes nothing.
    async fn put_blob(&self, sha256: &str, bytes: &[u8]) -> Result<(), StoreError>;
    /// The contents stored under `sha256`.
    async fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Whether contents are stored under `sha256`, without reading them.
    async fn has_blob(&self, sha256: &str) -> Result<bool, StoreError>;
}

/// Every run matching `query` (its cursor and limit aside), newest first, page after page.
pub async fn list_all(runs: &dyn RunStore, mut query: RunQuery) -> Result<Vec<Run>, StoreError> {
    query.limit = MAX_PAGE;
    query.cursor = None;
    let mut all = Vec::new();
    loop {
        let page = runs.list(&query).await?;
        all.extend(page.runs);
        match page.next {
            Some(next) => query.cursor = Some(next),
            None => return Ok(all),
        }
    }
}

/// Runs `change` in a catalog transaction and returns what it produced.
pub async fn transact<T: Send>(
    catalog: &dyn CatalogStore,
    change: impl Fn(&mut dyn CatalogTx) -> Result<T, TxError> + Send + Sync,
) -> Result<T, TxError> {
    let produced = std::sync::Mutex::new(None);
    catalog
        .transact(&|tx| {
            let value = change(tx)?;
            *produced
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(value);
            Ok(())
        })
        .await?;
    produced
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .ok_or_else(|| {
            StoreError::Backend("the transaction committed without a result".into()).into()
        })
}

/// Which backend keeps the state (`[store]` in the config file).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// sled files in the data directory (`db/`): the embedded default.
    #[default]
    Sled,
    /// Nothing is kept past the process: for trying things out and for tests.
    Memory,
}

/// Both stores of one backend.
#[derive(Clone)]
pub struct Stores {
    pub runs: Arc<dyn RunStore>,
    pub catalog: Arc<dyn CatalogStore>,
}

impl Stores {
    /// Opens the configured backend; sled keeps its files under `data`.
    pub fn open(config: &StoreConfig, data: &Path) -> Result<Stores, StoreError> {
        match config {
            StoreConfig::Sled => {
                let store = Arc::new(SledStore::open(data)?);
                Ok(Stores {
                    runs: store.clone(),
                    catalog: store,
                })
            }
            StoreConfig::Memory => Ok(Stores::memory()),
        }
    }

    /// A fresh in-memory backend.
    pub fn memory() -> Stores {
        let store = Arc::new(MemoryStore::default());
        Stores {
            runs: store.clone(),
            catalog: store,
        }
    }
}

/// Where a run sorts in every listing: creation time, then id. Cursors name one.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct RunKey {
    created_ms: u64,
    id: String,
}

impl RunKey {
    fn of(run: &Run) -> RunKey {
        RunKey {
            created_ms: u64::try_from(run.created_at.timestamp_millis()).unwrap_or(0),
            id: run.id.clone(),
        }
    }

    /// The big-endian bytes that order runs within an index.
    fn bytes(&self) -> Vec<u8> {
        let mut key = self.created_ms.to_be_bytes().to_vec();
        key.extend_from_slice(self.id.as_bytes());
        key
    }

    fn from_bytes(bytes: &[u8]) -> Option<RunKey> {
        let (ms, id) = bytes.split_at_checked(8)?;
        Some(RunKey {
            created_ms: u64::from_be_bytes(ms.try_into().ok()?),
            id: String::from_utf8(id.to_vec()).ok()?,
        })
    }

    fn cursor(&self) -> String {
        format!("{:016x}{}", self.created_ms, self.id)
    }

    fn parse_cursor(cursor: &str) -> Result<RunKey, StoreError> {
        let bad = || StoreError::BadCursor(cursor.chars().take(80).collect());
        let (ms, id) = cursor.split_at_checked(16).ok_or_else(bad)?;
        let created_ms = u64::from_str_radix(ms, 16).map_err(|_| bad())?;
        let id_ok = !id.is_empty()
            && id.len() <= 64
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !id_ok {
            return Err(bad());
        }
        Ok(RunKey {
            created_ms,
            id: id.to_string(),
        })
    }
}

/// A JSON record, or a [`StoreError::Corrupt`] naming it.
fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        what,
        key: key.to_string(),
        detail: e.to_string(),
    })
}

fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Backend(format!("cannot encode: {e}")))
}

/// `2.1` is `2.1` or beneath it (`2.1.3`), never `2.10`.
pub fn within_step(path: &str, step: &str) -> bool {
    path == step
        || path
            .strip_prefix(step)
            .is_some_and(|rest| rest.starts_with('.'))
}
