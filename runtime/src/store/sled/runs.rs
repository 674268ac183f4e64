//! Runs in sled: headers, step records, specs and logs, and the indexes that list runs newest
//! first by workflow, status or parent without reading every run.
//!
//! An index entry is a prefix (a workflow, a status, a parent run) and the run's [`RunKey`]. A
//! header write and the index entries it implies commit in one sled transaction, so the
//! indexes never disagree with the headers; listing still checks each header it reads.

use super::SledStore;
use super::commit::GroupCommit;
use crate::records::{LogLine, Run, RunSpec, RunStatus, StepRun, assemble_tree};
use crate::store::{RunKey, RunPage, RunQuery, RunStore, StoreError, decode, encode, within_step};
use ::sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::iter::Peekable;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Bumped when the index layout changes; `open` rebuilds indexes of an older store.
const INDEX_VERSION: &[u8] = b"2";
const INDEX_VERSION_KEY: &[u8] = b"run-indexes";

type Keys<'a> = Box<dyn Iterator<Item = Result<Vec<u8>, StoreError>> + 'a>;

fn status_position(status: RunStatus) -> usize {
    RunStatus::ALL
        .iter()
        .position(|s| *s == status)
        .unwrap_or(0)
}

fn status_prefix(status: RunStatus) -> Vec<u8> {
    vec![u8::try_from(status_position(status)).unwrap_or(0)]
}

/// How many runs are in each state, by position in [`RunStatus::ALL`]: counted from the status
/// index the first time they are asked for, then adjusted by every header write.
#[derive(Default)]
pub(super) struct StatusCounts {
    counts: Mutex<Option<[u64; RunStatus::ALL.len()]>>,
}

impl StatusCounts {
    fn counts(&self) -> MutexGuard<'_, Option<[u64; RunStatus::ALL.len()]>> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A committed write moved a run from `from` (none: a new run) to `to`.
    fn moved(&self, from: Option<RunStatus>, to: RunStatus) {
        if let Some(counts) = self.counts().as_mut()
            && from != Some(to)
        {
            if let Some(from) = from {
                let n = &mut counts[status_position(from)];
                *n = n.saturating_sub(1);
            }
            counts[status_position(to)] += 1;
        }
    }

    /// The counts, from `count` the first time, made while `commit` holds writes off so that
    /// it sees each write whole (with its adjustment) or not at all.
    fn get(
        &self,
        commit: &GroupCommit,
        count: impl FnOnce() -> [u64; RunStatus::ALL.len()],
    ) -> [u64; RunStatus::ALL.len()] {
        if let Some(counts) = *self.counts() {
            return counts;
        }
        commit.exclusive(|| *self.counts().get_or_insert_with(count))
    }
}

/// How much `open` checks that the run indexes cover every run.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum IndexCheck {
    /// Their layout version, and that they hold as many runs as there are (a pass over every
    /// run).
    Full,
    /// Only their layout version.
    VersionOnly,
}

/// `name` and a separator, so `a` never prefixes `ab`'s entries.
fn name_prefix(name: &str) -> Vec<u8> {
    let mut prefix = name.as_bytes().to_vec();
    prefix.push(0);
    prefix
}

fn with_key(mut prefix: Vec<u8>, key: &[u8]) -> Vec<u8> {
    prefix.extend_from_slice(key);
    prefix
}

/// The parent run of a child run (`wfr_…` of `wfr_…/2.1`).
fn parent_run(run: &Run) -> Option<&str> {
    run.parent().map(|p| p.split('/').next().unwrap_or(p))
}

/// The positions of the index trees among a run write's trees, after runs, specs and steps.
const BY_TIME: usize = 0;
const BY_WORKFLOW: usize = 1;
const BY_STATUS: usize = 2;
const BY_PARENT: usize = 3;
const BY_WORKFLOW_STATUS: usize = 4;

/// A workflow's entries in one state.
fn workflow_status_prefix(workflow: &str, status: RunStatus) -> Vec<u8> {
    with_key(name_prefix(workflow), &status_prefix(status))
}

/// Every index entry a run header implies: (index, key).
fn index_entries(run: &Run) -> Vec<(usize, Vec<u8>)> {
    let key = RunKey::of(run).bytes();
    let mut entries = vec![
        (BY_TIME, key.clone()),
        (BY_WORKFLOW, with_key(name_prefix(&run.workflow), &key)),
        (BY_STATUS, with_key(status_prefix(run.status), &key)),
        (
            BY_WORKFLOW_STATUS,
            with_key(workflow_status_prefix(&run.workflow, run.status), &key),
        ),
    ];
    if let Some(parent) = parent_run(run) {
        entries.push((BY_PARENT, with_key(name_prefix(parent), &key)));
    }
    entries
}

/// Every step record of a tree, parents first.
fn flatten(steps: &[StepRun]) -> Vec<&StepRun> {
    fn walk<'a>(steps: &'a [StepRun], out: &mut Vec<&'a StepRun>) {
        for step in steps {
            out.push(step);
            walk(&step.children, out);
        }
    }
    let mut out = Vec::new();
    walk(steps, &mut out);
    out
}

impl SledStore {
    /// Builds the run indexes of a store written before they existed, or in another layout.
    pub(super) fn build_indexes(&self, check: IndexCheck) -> Result<(), StoreError> {
        // An older binary (before the indexes, or run after a rollback) writes headers only:
        // rebuild whenever the time index, which holds every run once, disagrees.
        let current = self.meta.get(INDEX_VERSION_KEY)?.as_deref() == Some(INDEX_VERSION);
        if current && (check == IndexCheck::VersionOnly || self.runs.len() == self.by_time.len()) {
            return Ok(());
        }
        let trees = [
            &self.by_time,
            &self.by_workflow,
            &self.by_status,
            &self.by_parent,
            &self.by_workflow_status,
        ];
        for tree in trees {
            tree.clear()?;
        }
        for entry in self.runs.iter() {
            let (id, bytes) = entry?;
            let run: Run = decode("run", &String::from_utf8_lossy(&id), &bytes)?;
            for (index, key) in index_entries(&run) {
                trees[index].insert(key, &[])?;
            }
        }
        self.meta.insert(INDEX_VERSION_KEY, INDEX_VERSION)?;
        self.db.flush()?;
        Ok(())
    }

    /// Counts the runs in each state from the status index.
    fn count_statuses(&self) -> [u64; RunStatus::ALL.len()] {
        RunStatus::ALL.map(|status| {
            let n = self.by_status.scan_prefix(status_prefix(status)).count();
            u64::try_from(n).unwrap_or(u64::MAX)
        })
    }

    /// Writes a header (and the spec of a new run, and step records) with the index entries it
    /// implies, in one transaction. Entries the old header implied and the new one does not
    /// are removed.
    fn write_run(
        &self,
        run: &Run,
        spec: Option<&RunSpec>,
        steps: &[&StepRun],
    ) -> Result<(), StoreError> {
        let header = encode(&Run {
            steps: Vec::new(),
            ..run.clone()
        })?;
        let spec = spec.map(encode).transpose()?;
        let records = steps
            .iter()
            .map(|step| {
                Ok((
                    format!("{}/{}", run.id, step.path),
                    encode(&step.shallow())?,
                ))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let new_entries = index_entries(run);
        let trees = [
            &self.runs,
            &self.specs,
            &self.steps,
            &self.by_time,
            &self.by_workflow,
            &self.by_status,
            &self.by_parent,
            &self.by_workflow_status,
        ];
        // The counts move inside the write, so a first count (which holds writes off) sees
        // each write with its adjustment or neither.
        self.commit.write(|| {
            // Yields the state the header had before, as the attempt that commits saw it.
            let outcome = trees[..].transaction(|t| {
                let [runs, specs, steps, indexes @ ..] = &t[..] else {
                    let trees = StoreError::Backend("a run write needs eight trees".into());
                    return Err(ConflictableTransactionError::Abort(trees));
                };
                let old = match runs.insert(run.id.as_bytes(), header.as_slice())? {
                    Some(old) => Some(
                        decode::<Run>("run", &run.id, &old)
                            .map_err(ConflictableTransactionError::Abort)?,
                    ),
                    None => None,
                };
                let old_entries = old.as_ref().map(index_entries).unwrap_or_default();
                for (index, key) in &old_entries {
                    if !new_entries.contains(&(*index, key.clone())) {
                        indexes[*index].remove(key.as_slice())?;
                    }
                }
                let empty: &[u8] = &[];
                for (index, key) in &new_entries {
                    if !old_entries.contains(&(*index, key.clone())) {
                        indexes[*index].insert(key.as_slice(), empty)?;
                    }
                }
                if let Some(spec) = &spec {
                    specs.insert(run.id.as_bytes(), spec.as_slice())?;
                }
                for (key, record) in &records {
                    steps.insert(key.as_bytes(), record.as_slice())?;
                }
                Ok(old.map(|r| r.status))
            });
            let replaced = outcome.map_err(|e| match e {
                TransactionError::Abort(e) => e,
                TransactionError::Storage(e) => e.into(),
            })?;
            self.status_counts.moved(replaced, run.status);
            Ok(())
        })
    }

    /// Step records without a header: one (the common state change) as a plain insert, several
    /// as one batch. Either way atomic; a batch takes sled's global write lock, which parallel
    /// steps writing one record each should not queue behind.
    fn write_steps(&self, run_id: &str, steps: &[&StepRun]) -> Result<(), StoreError> {
        if let [step] = steps {
            let key = format!("{run_id}/{}", step.path);
            let record = encode(&step.shallow())?;
            self.commit
                .write(|| self.steps.insert(key.as_bytes(), record))?;
            return Ok(());
        }
        let mut batch = ::sled::Batch::default();
        for step in steps {
            let key = format!("{run_id}/{}", step.path);
            batch.insert(key.as_bytes(), encode(&step.shallow())?);
        }
        self.commit.write(|| self.steps.apply_batch(batch))?;
        Ok(())
    }

    /// Index keys under `prefix`, newest first, strictly before `before` when given.
    fn descending<'a>(
        tree: &'a ::sled::Tree,
        prefix: Vec<u8>,
        before: Option<&RunKey>,
    ) -> Peekable<Keys<'a>> {
        let upper = match before {
            Some(key) => Bound::Excluded(with_key(prefix.clone(), &key.bytes())),
            None if prefix.is_empty() => Bound::Unbounded,
            // Every prefix ends in a separator or a status byte, never 0xff.
            None => {
                let mut end = prefix.clone();
                if let Some(last) = end.last_mut() {
                    *last = last.saturating_add(1);
                }
                Bound::Excluded(end)
            }
        };
        let skip = prefix.len();
        let keys: Keys<'a> = Box::new(tree.range((Bound::Included(prefix), upper)).rev().map(
            move |entry| {
                entry
                    .map(|(k, _)| k[skip..].to_vec())
                    .map_err(StoreError::from)
            },
        ));
        keys.peekable()
    }
}

/// Merges index scans that are each newest first into one newest-first sequence.
fn merge_descending(
    mut streams: Vec<Peekable<Keys<'_>>>,
) -> impl Iterator<Item = Result<Vec<u8>, StoreError>> + '_ {
    std::iter::from_fn(move || {
        let mut best: Option<(usize, Vec<u8>)> = None;
        for (i, stream) in streams.iter_mut().enumerate() {
            match stream.peek() {
                None => {}
                // An error goes out first.
                Some(Err(_)) => return stream.next(),
                Some(Ok(key)) if best.as_ref().is_none_or(|(_, current)| key > current) => {
                    best = Some((i, key.clone()));
                }
                Some(Ok(_)) => {}
            }
        }
        let (i, _) = best?;
        streams[i].next()
    })
}

/// The most log lines stored under one key.
const LOG_CHUNK: usize = 1_000;

#[async_trait]
impl RunStore for SledStore {
    async fn create(&self, run: &Run, spec: &RunSpec) -> Result<(), StoreError> {
        self.write_run(run, Some(spec), &[])?;
        self.commit().await
    }

    async fn put(
        &self,
        run_id: &str,
        header: Option<&Run>,
        steps: &[StepRun],
    ) -> Result<(), StoreError> {
        let steps = flatten(steps);
        match header {
            Some(header) => self.write_run(header, None, &steps)?,
            None if !steps.is_empty() => self.write_steps(run_id, &steps)?,
            None => {}
        }
        self.commit().await
    }

    async fn append_logs(
        &self,
        run_id: &str,
        step: &str,
        lines: &[LogLine],
    ) -> Result<(), StoreError> {
        if lines.is_empty() {
            return Ok(());
        }
        // Lines go in chunks, one key each: a key per line cost sled far more memory than
        // the text (a program printing a million lines took gigabytes).
        let mut batch = ::sled::Batch::default();
        for chunk in lines.chunks(LOG_CHUNK) {
            let mut key = format!("{run_id}/{step}/").into_bytes();
            key.extend_from_slice(&self.db.generate_id()?.to_be_bytes());
            batch.insert(key, encode(&chunk)?);
        }
        self.logs.apply_batch(batch)?;
        self.commit().await
    }

    async fn run(&self, id: &str) -> Result<Option<Run>, StoreError> {
        self.commit
            .read_durable(&self.db, || self.read_run(id))
            .await
    }

    async fn spec(&self, id: &str) -> Result<Option<RunSpec>, StoreError> {
        match self.specs.get(id.as_bytes())? {
            Some(bytes) => Ok(Some(decode("run spec", id, &bytes)?)),
            None => Ok(None),
        }
    }

    async fn list(&self, query: &RunQuery) -> Result<RunPage, StoreError> {
        self.commit
            .read_durable(&self.db, || self.read_page(query))
            .await
    }
    async fn keep_snapshot(&self, sha256: &str, json: &[u8]) -> Result<(), StoreError> {
        if self.snapshots.contains_key(sha256.as_bytes())? {
            return Ok(());
        }
        self.snapshots.insert(sha256.as_bytes(), json)?;
        self.commit().await
    }

    async fn snapshot(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.snapshots.get(sha256.as_bytes())?.map(|v| v.to_vec()))
    }

    async fn count_by_status(&self) -> Result<BTreeMap<RunStatus, u64>, StoreError> {
        let counts = self
            .status_counts
            .get(&self.commit, || self.count_statuses());
        Ok(RunStatus::ALL.into_iter().zip(counts).collect())
    }

    async fn logs(
        &self,
        run_id: &str,
        step: Option<&str>,
    ) -> Result<Vec<(String, LogLine)>, StoreError> {
        let prefix = match step {
            Some(p) => format!("{run_id}/{p}"),
            None => format!("{run_id}/"),
        };
        let mut lines = Vec::new();
        for entry in self.logs.scan_prefix(prefix.as_bytes()) {
            let (key, value) = entry?;
            let rest = &key[run_id.len() + 1..];
            let Some((path, seq)) = rest.split_at_checked(rest.len().saturating_sub(8)) else {
                continue;
            };
            let Ok(seq) = <[u8; 8]>::try_from(seq) else {
                continue;
            };
            let path = String::from_utf8_lossy(path)
                .trim_end_matches('/')
                .to_string();
            if step.is_some_and(|s| !within_step(&path, s)) {
                continue;
            }
            // A chunk of lines, or one line as stores before chunks kept them.
            let chunk: Vec<LogLine> = match decode::<Vec<LogLine>>("log lines", &path, &value) {
                Ok(chunk) => chunk,
                Err(_) => vec![decode("log line", &path, &value)?],
            };
            lines.push((u64::from_be_bytes(seq), path, chunk));
        }
        // Sequence numbers are global, so this is the order chunks were written in.
        lines.sort_by_key(|(seq, ..)| *seq);
        Ok(lines
            .into_iter()
            .flat_map(|(_, path, chunk)| chunk.into_iter().map(move |l| (path.clone(), l)))
            .collect())
    }

    fn claims(&self) -> &dyn crate::store::RunClaims {
        &self.claims
    }
}

/// Reads of run state, made durable by their callers (`read_durable`) before they answer.
impl SledStore {
    fn read_run(&self, id: &str) -> Result<Option<Run>, StoreError> {
        let Some(header) = self.runs.get(id.as_bytes())? else {
            return Ok(None);
        };
        let mut run: Run = decode("run", id, &header)?;
        let mut flat = Vec::new();
        for entry in self.steps.scan_prefix(format!("{id}/").as_bytes()) {
            let (key, value) = entry?;
            flat.push(decode::<StepRun>(
                "step",
                &String::from_utf8_lossy(&key),
                &value,
            )?);
        }
        run.steps = assemble_tree(flat);
        Ok(Some(run))
    }

    fn read_page(&self, query: &RunQuery) -> Result<RunPage, StoreError> {
        let limit = query.page_size();
        let before = query
            .cursor
            .as_deref()
            .map(RunKey::parse_cursor)
            .transpose()?;
        let before = before.as_ref();
        // The most selective index; the others are checked on each header read.
        let streams = if let Some(parent) = &query.parent {
            let run = parent.split('/').next().unwrap_or(parent);
            vec![Self::descending(&self.by_parent, name_prefix(run), before)]
        } else if let Some(workflow) = query
            .workflow
            .as_ref()
            .filter(|_| !query.statuses.is_empty())
        {
            query
                .statuses
                .iter()
                .map(|s| {
                    let prefix = workflow_status_prefix(workflow, *s);
                    Self::descending(&self.by_workflow_status, prefix, before)
                })
                .collect()
        } else if let Some(workflow) = &query.workflow {
            vec![Self::descending(
                &self.by_workflow,
                name_prefix(workflow),
                before,
            )]
        } else if !query.statuses.is_empty() {
            query
                .statuses
                .iter()
                .map(|s| Self::descending(&self.by_status, status_prefix(*s), before))
                .collect()
        } else {
            vec![Self::descending(&self.by_time, Vec::new(), before)]
        };
        let mut page = RunPage::default();
        let mut previous: Option<Vec<u8>> = None;
        for key in merge_descending(streams) {
            let key = key?;
            if previous.as_ref() == Some(&key) {
                continue;
            }
            previous = Some(key.clone());
            let Some(run_key) = RunKey::from_bytes(&key) else {
                continue;
            };
            let Some(bytes) = self.runs.get(run_key.id.as_bytes())? else {
                continue;
            };
            let run: Run = decode("run", &run_key.id, &bytes)?;
            if RunKey::of(&run) != run_key || !query.matches(&run) {
                continue;
            }
            if page.runs.len() == limit {
                page.next = page.runs.last().map(|r| RunKey::of(r).cursor());
                break;
            }
            page.runs.push(run);
        }
        Ok(page)
    }
}
