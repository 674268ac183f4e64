//! The contract every store backend keeps, as tests run against each one. A new backend adds
//! one line at the bottom.

use super::*;
use crate::records::{StepStatus, Trigger, Version};
use chrono::{TimeZone, Utc};
use serde_json::{Map, json};

fn run(id: &str, workflow: &str, status: RunStatus, created_ms: i64) -> Run {
    Run {
        id: id.into(),
        workflow: workflow.into(),
        version: Some(1),
        file: None,
        status,
        trigger: Trigger::manual(Some("jane".into())),
        property_overrides: Map::new(),
        created_at: Utc.timestamp_millis_opt(created_ms).unwrap(),
        started_at: None,
        finished_at: None,
        duration_ms: None,
        error: None,
        interruptions: 0,
        progress_at_interruption: 0,
        steps: Vec::new(),
    }
}

fn child_of(mut run: Run, parent: &str) -> Run {
    run.trigger = Trigger {
        kind: "workflow".into(),
        by: None,
        inputs: json!({"parent": parent}).as_object().unwrap().clone(),
    };
    run
}

fn spec(workflow: &str) -> RunSpec {
    RunSpec {
        workflow_yaml: "steps:\n  - uses: noop\n".into(),
        file: "w.yaml".into(),
        label: workflow.into(),
        version: Some(1),
        source_dir: None,
        overrides: Map::new(),
        trigger: Trigger::manual(None),
        from_file: false,
        projects_sha256: None,
    }
}

fn step(path: &str, children: Vec<StepRun>) -> StepRun {
    StepRun {
        children,
        ..StepRun::new(path.into(), format!("step {path}"), "plugin")
    }
}

fn line(text: &str) -> LogLine {
    LogLine {
        ts: 0,
        stream: "info".into(),
        text: text.into(),
    }
}

async fn ids(store: &dyn RunStore, query: RunQuery) -> Vec<String> {
    list_all(store, query)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

async fn a_run_reads_back_as_written(stores: &Stores) {
    let runs = stores.runs.as_ref();
    let r = run(
        "wfr_aaaaaaa1",
        "/projects/p/workflows/w",
        RunStatus::Queued,
        1_000,
    );
    runs.create(&r, &spec("/projects/p/workflows/w"))
        .await
        .unwrap();
    let read = runs.run("wfr_aaaaaaa1").await.unwrap().unwrap();
    assert_eq!(read.status, RunStatus::Queued);
    assert_eq!(read.created_at, r.created_at);
    assert!(read.steps.is_empty());
    let read_spec = runs.spec("wfr_aaaaaaa1").await.unwrap().unwrap();
    assert_eq!(read_spec.label, "/projects/p/workflows/w");
    assert!(runs.run("wfr_missing1").await.unwrap().is_none());
    assert!(runs.spec("wfr_missing1").await.unwrap().is_none());

    // A header write ignores the steps it carries; step records come separately.
    let mut running = r.clone();
    running.status = RunStatus::Running;
    running.steps = vec![step("9", vec![])];
    runs.put(&r.id, Some(&running), &[]).await.unwrap();
    let read = runs.run(&r.id).await.unwrap().unwrap();
    assert_eq!(read.status, RunStatus::Running);
    assert!(read.steps.is_empty());
}

async fn step_records_assemble_into_a_tree(stores: &Stores) {
    let runs = stores.runs.as_ref();
    let r = run("wfr_aaaaaaa2", "w", RunStatus::Running, 2_000);
    runs.create(&r, &spec("w")).await.unwrap();
    let tree = vec![
        step("1", vec![]),
        step(
            "2",
            vec![
                step("2.1", vec![]),
                step("2.2", vec![]),
                step("2.10", vec![]),
            ],
        ),
    ];
    runs.put(&r.id, None, &tree).await.unwrap();
    // One record updated on its own keeps its place and its children.
    let mut done = step("2", vec![]);
    done.status = StepStatus::Succeeded;
    runs.put(&r.id, None, &[done]).await.unwrap();
    let read = runs.run(&r.id).await.unwrap().unwrap();
    let paths: Vec<&str> = read.steps[1]
        .children
        .iter()
        .map(|s| s.path.as_str())
        .collect();
    assert_eq!(paths, ["2.1", "2.2", "2.10"]);
    assert_eq!(read.steps[1].status, StepStatus::Succeeded);
    assert_eq!(read.steps[0].path, "1");
}

async fn logs_keep_their_order_and_filter_by_step(stores: &Stores) {
    let runs = stores.runs.as_ref();
    let id = "wfr_aaaaaaa3";
    for (path, text) in [
        ("1", "a"),
        ("2.1", "b"),
        ("2.10", "c"),
        ("2", "d"),
        ("2.1.1", "e"),
    ] {
        runs.append_logs(id, path, &[line(text)]).await.unwrap();
    }
    runs.append_logs(id, "1", &[]).await.unwrap();
    let all: Vec<String> = runs
        .logs(id, None)
        .await
        .unwrap()
        .into_iter()
        .map(|(p, l)| format!("{p}:{}", l.text))
        .collect();
    assert_eq!(all, ["1:a", "2.1:b", "2.10:c", "2:d", "2.1.1:e"]);
    let one: Vec<String> = runs
        .logs(id, Some("2.1"))
        .await
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(one, ["2.1", "2.1.1"], "`2.1` is not a prefix of `2.10`");
    assert!(runs.logs("wfr_other000", None).await.unwrap().is_empty());
}

async fn runs_list_newest_first_one_page_at_a_time(stores: &Stores) {
    let runs = stores.runs.as_ref();
    for i in 0..25 {
        let r = run(
            &format!("wfr_page{i:04}"),
            "w",
            RunStatus::Succeeded,
            10_000 + i,
        );
        runs.create(&r, &spec("w")).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = runs
            .list(&RunQuery {
                cursor: cursor.clone(),
                limit: 10,
                ..RunQuery::default()
            })
            .await
            .unwrap();
        pages += 1;
        seen.extend(page.runs.into_iter().map(|r| r.id));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    let expected: Vec<String> = (0..25).rev().map(|i| format!("wfr_page{i:04}")).collect();
    assert_eq!(seen, expected);

    let err = runs
        .list(&RunQuery {
            cursor: Some("not a cursor".into()),
            limit: 10,
            ..RunQuery::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::BadCursor(_)), "{err}");
}

async fn runs_filter_by_workflow_status_and_parent(stores: &Stores) {
    let runs = stores.runs.as_ref();
    let a = run(
        "wfr_filter01",
        "/projects/p/workflows/a",
        RunStatus::Queued,
        1,
    );
    let b = run(
        "wfr_filter02",
        "/projects/p/workflows/b",
        RunStatus::Running,
        2,
    );
    let c = child_of(
        run(
            "wfr_filter03",
            "/projects/p/workflows/c",
            RunStatus::Waiting,
            3,
        ),
        "wfr_filter02/2.1",
    );
    let d = child_of(
        run(
            "wfr_filter04",
            "/projects/p/workflows/c",
            RunStatus::Failed,
            4,
        ),
        "wfr_filter02/2.10",
    );
    for r in [&a, &b, &c, &d] {
        runs.create(r, &spec(&r.workflow)).await.unwrap();
    }
    let by = |workflow: Option<&str>, statuses: &[RunStatus], parent: Option<&str>| RunQuery {
        workflow: workflow.map(str::to_string),
        statuses: statuses.to_vec(),
        parent: parent.map(str::to_string),
        ..RunQuery::default()
    };
    assert_eq!(
        ids(runs, by(Some("/projects/p/workflows/c"), &[], None)).await,
        ["wfr_filter04", "wfr_filter03"]
    );
    assert_eq!(
        ids(
            runs,
            by(Some("/projects/p/workflows/c"), &[RunStatus::Failed], None)
        )
        .await,
        ["wfr_filter04"]
    );
    assert_eq!(
        ids(
            runs,
            by(
                Some("/projects/p/workflows/c"),
                &[RunStatus::Waiting, RunStatus::Failed],
                None
            )
        )
        .await,
        ["wfr_filter04", "wfr_filter03"]
    );
    assert!(
        ids(
            runs,
            by(Some("/projects/p/workflows/a"), &[RunStatus::Failed], None)
        )
        .await
        .is_empty()
    );
    assert_eq!(
        ids(
            runs,
            by(None, &[RunStatus::Queued, RunStatus::Waiting], None)
        )
        .await,
        ["wfr_filter03", "wfr_filter01"]
    );
    assert_eq!(
        ids(runs, by(None, &[], Some("wfr_filter02"))).await,
        ["wfr_filter04", "wfr_filter03"]
    );
    assert_eq!(
        ids(runs, by(None, &[], Some("wfr_filter02/2.1"))).await,
        ["wfr_filter03"],
        "`2.1` is not a prefix of `2.10`"
    );
    assert!(
        ids(runs, by(None, &[], Some("wfr_filter01")))
            .await
            .is_empty()
    );

    // A status change moves the run between status filters and counts.
    let mut moved = a.clone();
    moved.status = RunStatus::Cancelled;
    runs.put(&a.id, Some(&moved), &[]).await.unwrap();
    assert_eq!(
        ids(
            runs,
            by(None, &[RunStatus::Queued, RunStatus::Waiting], None)
        )
        .await,
        ["wfr_filter03"]
    );
    assert_eq!(
        ids(runs, by(None, &[RunStatus::Cancelled], None)).await,
        ["wfr_filter01"]
    );
    let counts = runs.count_by_status().await.unwrap();
    assert_eq!(counts[&RunStatus::Cancelled], 1);
    assert_eq!(counts[&RunStatus::Queued], 0);
    assert_eq!(counts[&RunStatus::Running], 1);
    assert_eq!(counts.values().sum::<u64>(), 4);
}

async fn a_header_that_moves_is_found_where_it_now_belongs(stores: &Stores) {
    let runs = stores.runs.as_ref();
    let r = run("wfr_moving01", "before", RunStatus::Queued, 7);
    runs.create(&r, &spec("before")).await.unwrap();
    let mut moved = child_of(r.clone(), "wfr_parent01/1");
    moved.workflow = "after".into();
    moved.status = RunStatus::Running;
    runs.put(&r.id, Some(&moved), &[step("1", vec![])])
        .await
        .unwrap();
    let by_workflow = |w: &str| RunQuery {
        workflow: Some(w.into()),
        ..RunQuery::default()
    };
    assert!(ids(runs, by_workflow("before")).await.is_empty());
    assert_eq!(ids(runs, by_workflow("after")).await, ["wfr_moving01"]);
    let in_state = |w: &str, status: RunStatus| RunQuery {
        statuses: vec![status],
        ..by_workflow(w)
    };
    assert!(
        ids(runs, in_state("before", RunStatus::Queued))
            .await
            .is_empty()
    );
    assert!(
        ids(runs, in_state("after", RunStatus::Queued))
            .await
            .is_empty()
    );
    assert_eq!(
        ids(runs, in_state("after", RunStatus::Running)).await,
        ["wfr_moving01"]
    );
    let children = RunQuery {
        parent: Some("wfr_parent01".into()),
        ..RunQuery::default()
    };
    assert_eq!(ids(runs, children).await, ["wfr_moving01"]);
    let read = runs.run(&r.id).await.unwrap().unwrap();
    assert_eq!(
        read.steps.len(),
        1,
        "the header and its steps landed together"
    );
}

async fn every_page_is_listed_past_the_largest_page(stores: &Stores) {
    let runs = stores.runs.as_ref();
    let n = MAX_PAGE + 3;
    for i in 0..n {
        let r = run(
            &format!("wfr_many{i:04}"),
            "many",
            RunStatus::Succeeded,
            i as i64,
        );
        runs.create(&r, &spec("many")).await.unwrap();
    }
    let all = list_all(runs, RunQuery::default()).await.unwrap();
    assert_eq!(all.len(), n);
    assert_eq!(all[0].id, format!("wfr_many{:04}", n - 1));
}

fn record(path: &str) -> WorkflowRecord {
    WorkflowRecord {
        path: path.into(),
        project: "p".into(),
        code: "w".into(),
        draft: "steps:\n  - uses: noop\n".into(),
        versions: Vec::new(),
        paused: false,
        source_dir: None,
        created_at: Utc.timestamp_millis_opt(0).unwrap(),
        updated_at: Utc.timestamp_millis_opt(0).unwrap(),
    }
}

async fn catalog_transactions_commit_whole_or_not_at_all(stores: &Stores) {
    let catalog = stores.catalog.as_ref();
    let source = ProjectSource {
        file: "project.yaml".into(),
        yaml: "project: p\n".into(),
        dir: None,
        workflows: Default::default(),
        files: Default::default(),
    };
    transact(catalog, |tx| {
        tx.put_project("p", &source)?;
        tx.put_workflow(&record("/projects/p/workflows/a"))?;
        // Reads see the transaction's own writes.
        assert!(tx.workflow("/projects/p/workflows/a")?.is_some());
        Ok(())
    })
    .await
    .unwrap();
    assert_eq!(catalog.projects().await.unwrap().len(), 1);
    assert!(
        catalog
            .workflow("/projects/p/workflows/a")
            .await
            .unwrap()
            .is_some()
    );

    let refused = transact(catalog, |tx| {
        tx.put_workflow(&record("/projects/p/workflows/b"))?;
        tx.delete_workflow("/projects/p/workflows/a")?;
        Err::<(), _>(Refusal::Conflict("changed my mind".into()).into())
    })
    .await
    .unwrap_err();
    assert!(matches!(refused, TxError::Refused(Refusal::Conflict(_))));
    let paths: Vec<String> = catalog
        .workflows()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.path)
        .collect();
    assert_eq!(
        paths,
        ["/projects/p/workflows/a"],
        "nothing of the refused change"
    );

    let deleted = transact(catalog, |tx| tx.delete_workflow("/projects/p/workflows/a"))
        .await
        .unwrap();
    assert!(deleted);
    assert!(catalog.workflows().await.unwrap().is_empty());
}

async fn concurrent_publishes_never_share_a_version(stores: &Stores) {
    let catalog = stores.catalog.clone();
    let path = "/projects/p/workflows/busy";
    transact(catalog.as_ref(), |tx| tx.put_workflow(&record(path)))
        .await
        .unwrap();
    let publishes = (0..16).map(|i| {
        let catalog = catalog.clone();
        tokio::spawn(async move {
            transact(catalog.as_ref(), |tx| {
                let mut record = tx
                    .workflow(path)?
                    .ok_or_else(|| Refusal::NotFound(path.into()))?;
                let number = record.versions.last().map_or(1, |v| v.number + 1);
                record.versions.push(Version {
                    number,
                    yaml: format!("# publish {i}"),
                    published_at: Utc::now(),
                    published_by: "jane".into(),
                });
                tx.put_workflow(&record)?;
                Ok(number)
            })
            .await
            .unwrap()
        })
    });
    let mut numbers: Vec<u32> = futures::future::join_all(publishes)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=16).collect::<Vec<u32>>());
    let stored = catalog.workflow(path).await.unwrap().unwrap();
    assert_eq!(stored.versions.len(), 16);
}

async fn project_files_are_kept_by_digest(stores: &Stores) {
    let catalog = stores.catalog.as_ref();
    let bytes = b"#!/bin/sh\necho deploy\n";
    let sha = crate::project_files::digest(bytes);
    assert_eq!(catalog.blob(&sha).await.unwrap(), None);
    assert!(!catalog.has_blob(&sha).await.unwrap());
    catalog.put_blob(&sha, bytes).await.unwrap();
    catalog.put_blob(&sha, bytes).await.unwrap();
    assert_eq!(
        catalog.blob(&sha).await.unwrap().as_deref(),
        Some(&bytes[..])
    );
    assert!(catalog.has_blob(&sha).await.unwrap());
}

/// One test per case for a backend: `$open` makes a fresh store (and whatever keeps it alive).
async fn project_snapshots_are_kept_by_digest(stores: &Stores) {
    let runs = stores.runs.as_ref();
    assert!(runs.snapshot("ab12").await.unwrap().is_none());
    runs.keep_snapshot("ab12", b"[1]").await.unwrap();
    // The same digest names the same contents: keeping it again changes nothing.
    runs.keep_snapshot("ab12", b"[2]").await.unwrap();
    assert_eq!(runs.snapshot("ab12").await.unwrap().unwrap(), b"[1]");
}

macro_rules! conformance {
    ($backend:ident, $open:expr) => {
        mod $backend {
            use super::*;

            macro_rules! case {
                ($case:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                    async fn $case() {
                        let (stores, _keep) = $open;
                        super::$case(&stores).await;
                    }
                };
            }

            case!(a_run_reads_back_as_written);
            case!(step_records_assemble_into_a_tree);
            case!(logs_keep_their_order_and_filter_by_step);
            case!(runs_list_newest_first_one_page_at_a_time);
            case!(runs_filter_by_workflow_status_and_parent);
            case!(a_header_that_moves_is_found_where_it_now_belongs);
            case!(catalog_transactions_commit_whole_or_not_at_all);
            case!(concurrent_publishes_never_share_a_version);
            case!(project_files_are_kept_by_digest);
            case!(project_snapshots_are_kept_by_digest);
        }
    };
}

/// Paging past the largest page, on the in-memory backend (a thousand durable writes to disk
/// would make the suite slow; the paging is the store-independent `list_all`).
#[tokio::test]
async fn every_page_is_listed_past_the_largest_page_in_memory() {
    every_page_is_listed_past_the_largest_page(&Stores::memory()).await;
}

conformance!(sled, {
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::open(&StoreConfig::Sled, dir.path()).unwrap();
    (stores, Some(dir))
});
conformance!(memory, (Stores::memory(), None::<tempfile::TempDir>));

/// What only a backend with files can show: a reopened store has what was acknowledged, and a
/// store written before the run indexes existed gets them built.
mod sled_files {
    use super::*;

    #[tokio::test]
    async fn a_reopened_store_has_everything_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        {
            let stores = Stores::open(&StoreConfig::Sled, dir.path()).unwrap();
            let r = run("wfr_reopen01", "w", RunStatus::Waiting, 5);
            stores.runs.create(&r, &spec("w")).await.unwrap();
            stores
                .runs
                .put(&r.id, None, &[step("1", vec![])])
                .await
                .unwrap();
            transact(stores.catalog.as_ref(), |tx| tx.put_workflow(&record("/x")))
                .await
                .unwrap();
        }
        let stores = Stores::open(&StoreConfig::Sled, dir.path()).unwrap();
        let read = stores.runs.run("wfr_reopen01").await.unwrap().unwrap();
        assert_eq!(read.steps.len(), 1);
        let waiting = RunQuery {
            statuses: vec![RunStatus::Waiting],
            ..RunQuery::default()
        };
        assert_eq!(ids(stores.runs.as_ref(), waiting).await, ["wfr_reopen01"]);
        assert!(stores.catalog.workflow("/x").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn counts_by_state_follow_every_move_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let stores = Stores::open(&StoreConfig::Sled, dir.path()).unwrap();
            let mut r = run("wfr_counted1", "w", RunStatus::Queued, 5);
            stores.runs.create(&r, &spec("w")).await.unwrap();
            let other = run("wfr_counted2", "w", RunStatus::Queued, 6);
            stores.runs.create(&other, &spec("w")).await.unwrap();
            for status in [RunStatus::Running, RunStatus::Running, RunStatus::Failed] {
                r.status = status;
                stores.runs.put(&r.id, Some(&r), &[]).await.unwrap();
            }
            let counts = stores.runs.count_by_status().await.unwrap();
            assert_eq!(counts[&RunStatus::Queued], 1);
            assert_eq!(counts[&RunStatus::Running], 0);
            assert_eq!(counts[&RunStatus::Failed], 1);
        }
        let stores = Stores::open(&StoreConfig::Sled, dir.path()).unwrap();
        let counts = stores.runs.count_by_status().await.unwrap();
        assert_eq!(counts[&RunStatus::Queued], 1);
        assert_eq!(counts[&RunStatus::Failed], 1);
        assert_eq!(counts.values().sum::<u64>(), 2);
    }

    #[test]
    fn a_store_still_locked_by_the_last_daemon_opens_once_the_lock_goes() {
        let dir = tempfile::tempdir().unwrap();
        let held = Stores::open(&StoreConfig::Sled, dir.path()).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(400));
            drop(held);
        });
        let reopened = Stores::open(&StoreConfig::Sled, dir.path());
        release.join().unwrap();
        assert!(reopened.is_ok(), "{:?}", reopened.err());
    }

    #[tokio::test]
    async fn runs_an_older_binary_wrote_after_a_rollback_are_indexed_again() {
        let dir = tempfile::tempdir().unwrap();
        {
            let stores = Stores::open(&StoreConfig::Sled, dir.path()).unwrap();
            let r = run("wfr_indexed1", "w", RunStatus::Succeeded, 1);
            stores.runs.create(&r, &spec("w")).await.unwrap();
        }
        {
            // An older binary, run after a rollback, writes a header and nothing else.
            let db = ::sled::open(dir.path().join("db")).unwrap();
            let header = serde_json::to_vec(&run("wfr_rolled01", "w", RunStatus::Queued, 2));
            db.open_tree("runs")
                .unwrap()
                .insert("wfr_rolled01", header.unwrap())
                .unwrap();
            db.flush().unwrap();
        }
        let stores = Stores::open(&StoreConfig::Sled, dir.path()).unwrap();
        let queued = RunQuery {
            statuses: vec![RunStatus::Queued],
            ..RunQuery::default()
        };
        assert_eq!(ids(stores.runs.as_ref(), queued).await, ["wfr_rolled01"]);
        assert_eq!(
            ids(stores.runs.as_ref(), RunQuery::default()).await,
            ["wfr_rolled01", "wfr_indexed1"]
        );
    }

    #[tokio::test]
    async fn indexes_are_built_for_a_store_that_predates_them() {
        let dir = tempfile::tempdir().unwrap();
        {
            // What an earlier version wrote: headers in `runs`, no indexes.
            let db = ::sled::open(dir.path().join("db")).unwrap();
            let runs = db.open_tree("runs").unwrap();
            for (id, status, ms) in [
                ("wfr_old00001", RunStatus::Succeeded, 1),
                ("wfr_old00002", RunStatus::Queued, 2),
            ] {
                let header = serde_json::to_vec(&run(id, "w", status, ms)).unwrap();
                runs.insert(id, header).unwrap();
            }
            db.flush().unwrap();
        }
        let stores = Stores::open(&StoreConfig::Sled, dir.path()).unwrap();
        assert_eq!(
            ids(stores.runs.as_ref(), RunQuery::default()).await,
            ["wfr_old00002", "wfr_old00001"]
        );
        let queued = RunQuery {
            statuses: vec![RunStatus::Queued],
            ..RunQuery::default()
        };
        assert_eq!(ids(stores.runs.as_ref(), queued).await, ["wfr_old00002"]);
    }
}
