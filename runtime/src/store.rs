//! Durable state in sled: runs, their step records and step logs. Every state change is flushed
//! before it is acknowledged, so a crash never loses what a user was told.

use crate::records::LogLine;
use crate::records::{Run, StepRun, assemble_tree};
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bookkeeping for group commit: flush requests are numbered, and a flush covers every request
/// numbered before it started.
#[derive(Default)]
struct GroupCommit {
    turn: tokio::sync::Mutex<()>,
    requested: AtomicU64,
    completed: AtomicU64,
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    flusher: Arc<GroupCommit>,
    /// run id → run header (no steps).
    runs: sled::Tree,
    /// `run id/path` → step record (no children).
    steps: sled::Tree,
    /// `run id/path/` + sequence → log line.
    logs: sled::Tree,
    /// run id → what it runs (workflow text, overrides, trigger), for resume and retry.
    specs: sled::Tree,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create data directory {}", dir.display()))?;
        let db = sled::Config::new()
            .path(dir.join("db"))
            .open()
            .with_context(|| format!("cannot open the store in {}", dir.display()))?;
        Ok(Store {
            runs: db.open_tree("runs")?,
            steps: db.open_tree("steps")?,
            logs: db.open_tree("logs")?,
            specs: db.open_tree("specs")?,
            db,
            flusher: Arc::default(),
        })
    }

    /// The daemon's catalog of projects and workflows, in the same database.
    pub fn catalog(&self) -> Result<crate::catalog::Catalog> {
        crate::catalog::Catalog::open(&self.db)
    }

    /// Makes everything written before this call durable.
    ///
    /// Flushes are group-committed: one runs at a time, and a caller whose writes were covered by
    /// a flush that started after them returns without flushing again. This keeps many parallel
    /// steps from queueing an fsync each, and avoids sled's `flush_async`, which can deadlock its
    /// own thread pool when many flushes are in flight.
    pub async fn flush(&self) -> Result<()> {
        let flusher = &self.flusher;
        let mine = flusher.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _turn = flusher.turn.lock().await;
        if flusher.completed.load(Ordering::SeqCst) >= mine {
            return Ok(());
        }
        let covers = flusher.requested.load(Ordering::SeqCst);
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || db.flush())
            .await
            .context("the flush task panicked")??;
        flusher.completed.store(covers, Ordering::SeqCst);
        Ok(())
    }

    pub fn put_run(&self, run: &Run) -> Result<()> {
        let header = Run {
            steps: Vec::new(),
            ..run.clone()
        };
        self.runs
            .insert(run.id.as_bytes(), serde_json::to_vec(&header)?)?;
        Ok(())
    }

    pub fn put_spec(&self, run_id: &str, spec: &crate::records::RunSpec) -> Result<()> {
        self.specs
            .insert(run_id.as_bytes(), serde_json::to_vec(spec)?)?;
        Ok(())
    }

    pub fn load_spec(&self, run_id: &str) -> Result<Option<crate::records::RunSpec>> {
        match self.specs.get(run_id.as_bytes())? {
            Some(bytes) => Ok(Some(
                serde_json::from_slice(&bytes).context("corrupt run spec")?,
            )),
            None => Ok(None),
        }
    }

    pub fn put_step(&self, run_id: &str, step: &StepRun) -> Result<()> {
        let key = format!("{run_id}/{}", step.path);
        self.steps
            .insert(key.as_bytes(), serde_json::to_vec(&step.shallow())?)?;
        Ok(())
    }

    /// Writes a whole step tree, e.g. when a run is created.
    pub fn put_steps(&self, run_id: &str, steps: &[StepRun]) -> Result<()> {
        let mut batch = sled::Batch::default();
        fn add(batch: &mut sled::Batch, run_id: &str, steps: &[StepRun]) -> Result<()> {
            for step in steps {
                let key = format!("{run_id}/{}", step.path);
                batch.insert(key.as_bytes(), serde_json::to_vec(&step.shallow())?);
                add(batch, run_id, &step.children)?;
            }
            Ok(())
        }
        add(&mut batch, run_id, steps)?;
        self.steps.apply_batch(batch)?;
        Ok(())
    }

    pub fn append_logs(&self, run_id: &str, path: &str, lines: &[LogLine]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut batch = sled::Batch::default();
        for line in lines {
            let mut key = format!("{run_id}/{path}/").into_bytes();
            key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
            batch.insert(key, serde_json::to_vec(line)?);
        }
        self.logs.apply_batch(batch)?;
        Ok(())
    }

    pub fn load_run(&self, id: &str) -> Result<Option<Run>> {
        let Some(header) = self.runs.get(id.as_bytes())? else {
            return Ok(None);
        };
        let mut run: Run = serde_json::from_slice(&header).context("corrupt run record")?;
        let mut flat = Vec::new();
        for entry in self.steps.scan_prefix(format!("{id}/").as_bytes()) {
            let (_, value) = entry?;
            flat.push(serde_json::from_slice::<StepRun>(&value).context("corrupt step record")?);
        }
        run.steps = assemble_tree(flat);
        Ok(Some(run))
    }

    /// Run headers, newest first.
    pub fn list_runs(&self) -> Result<Vec<Run>> {
        let mut runs = Vec::new();
        for entry in self.runs.iter() {
            let (_, value) = entry?;
            runs.push(serde_json::from_slice::<Run>(&value)?);
        }
        runs.sort_by_key(|r| std::cmp::Reverse(r.created_at));
        Ok(runs)
    }

    /// Log lines of a run, or of one step and its descendants, in order: (step path, line).
    pub fn logs(&self, run_id: &str, path: Option<&str>) -> Result<Vec<(String, LogLine)>> {
        let prefix = match path {
            Some(p) => format!("{run_id}/{p}"),
            None => format!("{run_id}/"),
        };
        let mut lines = Vec::new();
        for entry in self.logs.scan_prefix(prefix.as_bytes()) {
            let (key, value) = entry?;
            let (path_part, seq) =
                key[run_id.len() + 1..].split_at(key.len() - run_id.len() - 1 - 8);
            let seq = u64::from_be_bytes(seq.try_into()?);
            let step_path = String::from_utf8_lossy(path_part)
                .trim_end_matches('/')
                .to_string();
            // `2.1` must not match `2.10`.
            if let Some(p) = path
                && step_path != p
                && !step_path.starts_with(&format!("{p}."))
            {
                continue;
            }
            lines.push((seq, step_path, serde_json::from_slice(&value)?));
        }
        // Sequence numbers are global, so this is the order lines were written in.
        lines.sort_by_key(|(seq, ..)| *seq);
        Ok(lines.into_iter().map(|(_, p, l)| (p, l)).collect())
    }
}
