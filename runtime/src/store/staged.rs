//! A catalog transaction's view: reads see the backend and the transaction's own writes, writes
//! wait in memory until the backend commits them together.

use super::{CatalogTx, StoreError, TxError};
use crate::project::ProjectSource;
use crate::records::WorkflowRecord;
use std::collections::BTreeMap;

/// Reads of the committed catalog, for [`Staged`].
pub(super) trait CatalogRead {
    fn committed_workflow(&self, path: &str) -> Result<Option<WorkflowRecord>, StoreError>;
    /// Project code → sources.
    fn committed_projects(&self) -> Result<BTreeMap<String, ProjectSource>, StoreError>;
}

/// Writes staged by one transaction.
pub(super) struct Staged<'a> {
    base: &'a (dyn CatalogRead + Sync),
    /// Path → the record, or None when deleted.
    pub(super) workflows: BTreeMap<String, Option<WorkflowRecord>>,
    pub(super) projects: BTreeMap<String, ProjectSource>,
}

impl<'a> Staged<'a> {
    pub(super) fn new(base: &'a (dyn CatalogRead + Sync)) -> Staged<'a> {
        Staged {
            base,
            workflows: BTreeMap::new(),
            projects: BTreeMap::new(),
        }
    }
}

impl CatalogTx for Staged<'_> {
    fn workflow(&mut self, path: &str) -> Result<Option<WorkflowRecord>, TxError> {
        match self.workflows.get(path) {
            Some(staged) => Ok(staged.clone()),
            None => Ok(self.base.committed_workflow(path)?),
        }
    }

    fn put_workflow(&mut self, record: &WorkflowRecord) -> Result<(), TxError> {
        self.workflows
            .insert(record.path.clone(), Some(record.clone()));
        Ok(())
    }

    fn delete_workflow(&mut self, path: &str) -> Result<bool, TxError> {
        let existed = self.workflow(path)?.is_some();
        self.workflows.insert(path.to_string(), None);
        Ok(existed)
    }

    fn put_project(&mut self, code: &str, source: &ProjectSource) -> Result<(), TxError> {
        self.projects.insert(code.to_string(), source.clone());
        Ok(())
    }

    fn projects(&mut self) -> Result<Vec<ProjectSource>, TxError> {
        let mut all = self.base.committed_projects()?;
        all.extend(self.projects.clone());
        Ok(all.into_values().collect())
    }
}
