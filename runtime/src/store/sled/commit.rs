//! Group commit: flush requests are numbered, and a flush covers every request numbered before
//! it started, so many parallel steps do not queue an fsync each.
//!
//! This also avoids sled's `flush_async`, which can deadlock its own thread pool when many
//! flushes are in flight.

use crate::store::StoreError;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub(super) struct GroupCommit {
    turn: tokio::sync::Mutex<()>,
    requested: AtomicU64,
    completed: AtomicU64,
}

impl GroupCommit {
    /// Returns once everything written to `db` before the call is on disk.
    pub(super) async fn flush(&self, db: &::sled::Db) -> Result<(), StoreError> {
        let mine = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _turn = self.turn.lock().await;
        if self.completed.load(Ordering::SeqCst) >= mine {
            return Ok(());
        }
        let covers = self.requested.load(Ordering::SeqCst);
        let db = db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| StoreError::Backend(format!("the flush task failed: {e}")))??;
        self.completed.store(covers, Ordering::SeqCst);
        Ok(())
    }
}
