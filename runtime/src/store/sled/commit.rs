//! Group commit: flush requests are numbered, and a flush covers every request numbered before
//! it started, so many parallel steps do not queue an fsync each.
//!
//! Reads of run state see only what is durable: sled shows a write to readers before it is
//! flushed, so a reader that saw newer writes flushes them before it answers (an API answer
//! must never show what a crash could take back).
//!
//! This also avoids sled's `flush_async`, which can deadlock its own thread pool when many
//! flushes are in flight.

use crate::store::StoreError;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

#[derive(Default)]
pub(super) struct GroupCommit {
    turn: tokio::sync::Mutex<()>,
    requested: AtomicU64,
    completed: AtomicU64,
    /// Held shared while a write goes into sled; exclusively ([`GroupCommit::exclusive`]) by
    /// what must not meet a write half made: a flush counting what it covers, a durable read.
    writing: RwLock<()>,
    /// Writes made so far, and how many of them the last flush made durable.
    written: AtomicU64,
    durable: AtomicU64,
}

impl GroupCommit {
    /// Makes a write to sled (durable at the next flush).
    pub(super) fn write<T>(&self, write: impl FnOnce() -> T) -> T {
        let _writing = self.writing.read().unwrap_or_else(PoisonError::into_inner);
        let done = write();
        self.written.fetch_add(1, Ordering::SeqCst);
        done
    }

    /// Runs `work` while no write is in flight and none starts.
    pub(super) fn exclusive<T>(&self, work: impl FnOnce() -> T) -> T {
        let _all = self.writing.write().unwrap_or_else(PoisonError::into_inner);
        work()
    }

    /// Reads, then makes durable whatever of the read was not yet, before returning it.
    pub(super) async fn read_durable<T>(
        &self,
        db: &::sled::Db,
        read: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let (value, seen) = self.exclusive(|| (read(), self.written.load(Ordering::SeqCst)));
        let value = value?;
        if self.durable.load(Ordering::SeqCst) < seen {
            self.flush(db).await?;
        }
        Ok(value)
    }

    /// Returns once everything written to `db` before the call is on disk.
    pub(super) async fn flush(&self, db: &::sled::Db) -> Result<(), StoreError> {
        let mine = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _turn = self.turn.lock().await;
        if self.completed.load(Ordering::SeqCst) >= mine {
            return Ok(());
        }
        let covers = self.requested.load(Ordering::SeqCst);
        let written = self.exclusive(|| self.written.load(Ordering::SeqCst));
        let db = db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .map_err(|e| StoreError::Backend(format!("the flush task failed: {e}")))??;
        self.completed.store(covers, Ordering::SeqCst);
        self.durable.fetch_max(written, Ordering::SeqCst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_read_that_saw_a_write_makes_it_durable_before_answering() {
        let dir = tempfile::tempdir().unwrap();
        let db = ::sled::open(dir.path()).unwrap();
        let commit = GroupCommit::default();
        commit.write(|| db.insert("k", "v")).unwrap();
        let flushes = commit.completed.load(Ordering::SeqCst);
        let seen = commit
            .read_durable(&db, || Ok(db.get("k")?.map(|v| v.to_vec())))
            .await
            .unwrap();
        assert_eq!(seen.as_deref(), Some(&b"v"[..]));
        assert_eq!(commit.durable.load(Ordering::SeqCst), 1);
        assert!(commit.completed.load(Ordering::SeqCst) > flushes);
        // Nothing new written: the next read flushes nothing.
        let flushes = commit.completed.load(Ordering::SeqCst);
        commit.read_durable(&db, || Ok(())).await.unwrap();
        assert_eq!(commit.completed.load(Ordering::SeqCst), flushes);
    }
}
