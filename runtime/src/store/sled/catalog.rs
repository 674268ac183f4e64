//! The catalog in sled: applied projects and workflow records. A transaction runs against a
//! staged view while holding the catalog lock, then commits its writes in one sled transaction
//! across both trees.

use super::SledStore;
use crate::project::ProjectSource;
use crate::records::WorkflowRecord;
use crate::store::staged::{CatalogRead, Staged};
use crate::store::{CatalogChange, CatalogStore, StoreError, TxError, decode, encode};
use ::sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use async_trait::async_trait;
use std::collections::BTreeMap;

impl CatalogRead for SledStore {
    fn committed_workflow(&self, path: &str) -> Result<Option<WorkflowRecord>, StoreError> {
        match self.workflows.get(path.as_bytes())? {
            Some(bytes) => Ok(Some(decode("workflow", path, &bytes)?)),
            None => Ok(None),
        }
    }

    fn committed_projects(&self) -> Result<BTreeMap<String, ProjectSource>, StoreError> {
        let mut sources = BTreeMap::new();
        for entry in self.projects.iter() {
            let (code, bytes) = entry?;
            let code = String::from_utf8_lossy(&code).into_owned();
            sources.insert(code.clone(), decode("project", &code, &bytes)?);
        }
        Ok(sources)
    }
}

impl SledStore {
    fn commit_staged(&self, staged: Staged<'_>) -> Result<(), StoreError> {
        let mut workflows = Vec::new();
        for (path, record) in &staged.workflows {
            workflows.push((path, record.as_ref().map(encode).transpose()?));
        }
        let mut projects = Vec::new();
        for (code, source) in &staged.projects {
            projects.push((code, encode(source)?));
        }
        let outcome = (&self.projects, &self.workflows).transaction(|(p, w)| {
            for (code, source) in &projects {
                p.insert(code.as_bytes(), source.as_slice())?;
            }
            for (path, record) in &workflows {
                match record {
                    Some(bytes) => w.insert(path.as_bytes(), bytes.as_slice())?,
                    None => w.remove(path.as_bytes())?,
                };
            }
            Ok::<(), ConflictableTransactionError<StoreError>>(())
        });
        outcome.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => e.into(),
        })
    }
}

#[async_trait]
impl CatalogStore for SledStore {
    async fn projects(&self) -> Result<Vec<ProjectSource>, StoreError> {
        Ok(self.committed_projects()?.into_values().collect())
    }

    async fn workflow(&self, path: &str) -> Result<Option<WorkflowRecord>, StoreError> {
        self.committed_workflow(path)
    }

    async fn workflows(&self) -> Result<Vec<WorkflowRecord>, StoreError> {
        let mut records = Vec::new();
        for entry in self.workflows.iter() {
            let (path, bytes) = entry?;
            records.push(decode("workflow", &String::from_utf8_lossy(&path), &bytes)?);
        }
        Ok(records)
    }

    async fn transact(&self, change: CatalogChange<'_>) -> Result<(), TxError> {
        let _turn = self.catalog_lock.lock().await;
        let mut staged = Staged::new(self);
        change(&mut staged)?;
        self.commit_staged(staged)?;
        self.commit().await?;
        Ok(())
    }

    async fn put_blob(&self, sha256: &str, bytes: &[u8]) -> Result<(), StoreError> {
        if !self.blobs.contains_key(sha256.as_bytes())? {
            self.blobs.insert(sha256.as_bytes(), bytes)?;
        }
        self.commit().await
    }

    async fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.blobs.get(sha256.as_bytes())?.map(|b| b.to_vec()))
    }

    async fn has_blob(&self, sha256: &str) -> Result<bool, StoreError> {
        Ok(self.blobs.contains_key(sha256.as_bytes())?)
    }
}
