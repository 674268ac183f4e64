//! The embedded backend: sled files under the data directory, one tree per kind of record, and
//! flushes group-committed so many parallel writers share one fsync.

mod catalog;
mod commit;
mod runs;

use super::StoreError;
use commit::GroupCommit;
use runs::IndexCheck;
use std::path::Path;
use std::sync::Arc;

/// Runs, specs, logs, their indexes and the catalog, in one sled database.
pub struct SledStore {
    db: ::sled::Db,
    commit: Arc<GroupCommit>,
    /// run id → run header (no steps).
    runs: ::sled::Tree,
    /// `run id/path` → step record (no children).
    steps: ::sled::Tree,
    /// `run id/path/` + sequence → log line.
    logs: ::sled::Tree,
    /// run id → what it runs (workflow text, overrides, trigger), for resume and retry.
    specs: ::sled::Tree,
    /// SHA-256 → the projects runs started with (their sources as JSON).
    snapshots: ::sled::Tree,
    /// Indexes of run keys (creation time, id): all runs; by workflow; by status; by parent.
    by_time: ::sled::Tree,
    by_workflow: ::sled::Tree,
    by_status: ::sled::Tree,
    /// Runs of one workflow in one state, for a workflow's failed runs without reading the
    /// rest of its history.
    by_workflow_status: ::sled::Tree,
    by_parent: ::sled::Tree,
    /// Schema bookkeeping (which indexes are built).
    meta: ::sled::Tree,
    /// `code` → project sources; `/projects/p/workflows/w` → workflow record.
    projects: ::sled::Tree,
    workflows: ::sled::Tree,
    /// SHA-256 → project file contents.
    blobs: ::sled::Tree,
    /// Catalog transactions run one at a time (sled is single-process, so this is isolation).
    catalog_lock: tokio::sync::Mutex<()>,
    /// Runs in each state, counted once and then kept as headers change, so `/metrics` never
    /// scans history.
    status_counts: runs::StatusCounts,
    /// sled's file lock makes this process the store's only user: claims live here.
    claims: super::LocalClaims,
}

impl From<::sled::Error> for StoreError {
    fn from(e: ::sled::Error) -> StoreError {
        StoreError::Backend(e.to_string())
    }
}

/// How long a starting daemon waits for the store's lock.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens sled at `path`, first waiting a little while its lock is held. The lock is an
/// `flock` on the database file, shared by every process holding a copy of its descriptor:
/// when a daemon is killed, the processes it was starting programs from hold that copy until
/// the kernel has delivered their own SIGKILL (parent-death signal), a few milliseconds later.
/// A restart right after the kill (systemd, a supervisor) must not fail on that. sled reports
/// a held lock only as text, so the wait tries the same lock itself, then lets it go.
fn open_waiting_for_lock(path: &Path) -> Result<::sled::Db, ::sled::Error> {
    if let Ok(file) = std::fs::File::open(path.join("db")) {
        let started = std::time::Instant::now();
        let mut said = false;
        while let Err(std::fs::TryLockError::WouldBlock) = file.try_lock() {
            if started.elapsed() >= LOCK_WAIT {
                break;
            }
            if !said {
                tracing::warn!(
                    "the store {} is locked (another daemon, or the processes of one that was \
                     just killed); waiting up to {}s",
                    path.display(),
                    LOCK_WAIT.as_secs()
                );
                said = true;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    ::sled::Config::new().path(path).open()
}

impl SledStore {
    /// Opens (or creates) the store in `dir/db`. Only one process may have it open.
    pub fn open(dir: &Path) -> Result<SledStore, StoreError> {
        Self::open_checking(dir, IndexCheck::Full)
    }

    /// Opens the store to read it and exit (`runs list`, `runs show`): without the pass over
    /// every run that finds runs an older binary wrote without indexes, which the next daemon
    /// or `run` does. That pass costs seconds on a long history.
    pub fn open_for_reading(dir: &Path) -> Result<SledStore, StoreError> {
        Self::open_checking(dir, IndexCheck::VersionOnly)
    }

    fn open_checking(dir: &Path, check: IndexCheck) -> Result<SledStore, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Backend(format!(
                "cannot create data directory {}: {e}",
                dir.display()
            ))
        })?;
        // The standard cache-directory tag: backup tools skip the directory, and `apply` and
        // `run` never take it for project files, wherever it lies.
        let tag = dir.join("CACHEDIR.TAG");
        if !tag.exists() {
            let _ = std::fs::write(
                &tag,
                "Signature: 8a477f597d28d172789f06886806bc55\n\
                 # The wasmops data directory (store, workspaces, plugins).\n",
            );
        }
        let db = open_waiting_for_lock(&dir.join("db")).map_err(|e| {
            StoreError::Backend(format!("cannot open the store in {}: {e}", dir.display()))
        })?;
        let store = SledStore {
            runs: db.open_tree("runs")?,
            steps: db.open_tree("steps")?,
            logs: db.open_tree("logs")?,
            specs: db.open_tree("specs")?,
            snapshots: db.open_tree("project_snapshots")?,
            by_time: db.open_tree("runs_by_time")?,
            by_workflow: db.open_tree("runs_by_workflow")?,
            by_status: db.open_tree("runs_by_status")?,
            by_workflow_status: db.open_tree("runs_by_workflow_status")?,
            by_parent: db.open_tree("runs_by_parent")?,
            meta: db.open_tree("meta")?,
            projects: db.open_tree("projects")?,
            workflows: db.open_tree("workflows")?,
            blobs: db.open_tree("blobs")?,
            catalog_lock: tokio::sync::Mutex::new(()),
            status_counts: runs::StatusCounts::default(),
            claims: super::LocalClaims::default(),
            commit: Arc::default(),
            db,
        };
        store.build_indexes(check)?;
        Ok(store)
    }

    /// Makes everything written before this call durable.
    async fn commit(&self) -> Result<(), StoreError> {
        self.commit.flush(&self.db).await
    }
}
