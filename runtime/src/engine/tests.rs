//! The engine in process, on the in-memory store with the real built-in plugins: ordering,
//! failure propagation, branches, retries, parked steps and recovery.

use super::*;
use crate::identity::{Actor, Role};
use crate::records::{LogLine, StepRun, StepStatus, Trigger};
use crate::store::{RunPage, RunStore, Stores};
use std::sync::OnceLock;
use std::time::Duration;

/// The built-in plugins, compiled once for every test.
fn registry() -> Arc<Registry> {
    static REGISTRY: OnceLock<Arc<Registry>> = OnceLock::new();
    REGISTRY
        .get_or_init(|| {
            let sandbox = wasmops_sandbox::Sandbox::new(Default::default()).unwrap();
            Arc::new(Registry::builtin(Arc::new(sandbox)).unwrap())
        })
        .clone()
}

struct Harness {
    engine: Arc<Engine>,
    stores: Stores,
    _workspaces: tempfile::TempDir,
}

fn harness_on(stores: Stores) -> Harness {
    let workspaces = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineParts {
        registry: registry(),
        runs: stores.runs.clone(),
        projects: Projects::default(),
        workspaces: workspaces.path().to_path_buf(),
        mode: Mode::Daemon {
            catalog: stores.catalog.clone(),
        },
    });
    Harness {
        engine,
        stores,
        _workspaces: workspaces,
    }
}

impl Harness {
    /// Runs a workflow to its end and returns the final record.
    async fn run(&self, yaml: &str) -> Run {
        self.engine.run_to_end(spec(yaml)).await.unwrap()
    }
}

fn harness() -> Harness {
    harness_on(Stores::memory())
}

fn spec(yaml: &str) -> RunSpec {
    RunSpec {
        workflow_yaml: yaml.to_string(),
        file: "test.yaml".into(),
        label: "test".into(),
        version: None,
        source_dir: None,
        overrides: Default::default(),
        trigger: Trigger::manual(Some("tester".into())),
        from_file: false,
        projects_sha256: None,
    }
}

fn step<'a>(run: &'a Run, path: &str) -> &'a StepRun {
    fn find<'a>(steps: &'a [StepRun], path: &str) -> Option<&'a StepRun> {
        steps.iter().find_map(|s| {
            (s.path == path)
                .then_some(s)
                .or_else(|| find(&s.children, path))
        })
    }
    find(&run.steps, path).unwrap_or_else(|| panic!("no step {path} in {run:#?}"))
}

/// Polls the store until the run reaches `status`.
async fn until(runs: &dyn RunStore, id: &str, status: RunStatus) -> Run {
    for _ in 0..500 {
        let run = runs.run(id).await.unwrap().unwrap();
        if run.status == status {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("run {id} never became {status:?}");
}

#[tokio::test]
async fn sequential_steps_run_in_order_and_outputs_flow_forward() {
    let h = harness();
    let run = h
        .run(
            r#"
steps:
  - id: first
    uses: noop
    with: { summary: one, outputs: { n: 41 } }
  - uses: noop
    with: { summary: "got {{ steps.first.outputs.n + 1 }}" }
"#,
        )
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(step(&run, "2").summary.as_deref(), Some("got 42"));
    let (one, two) = (step(&run, "1"), step(&run, "2"));
    assert!(one.finished_at.unwrap() <= two.started_at.unwrap());
    // What the engine returned is what the store holds.
    let stored = h.stores.runs.run(&run.id).await.unwrap().unwrap();
    assert_eq!(stored.steps, run.steps);
}

#[tokio::test]
async fn a_failure_stops_a_sequential_stage_but_parallel_siblings_finish() {
    let h = harness();
    let run = h
        .run(
            r#"
steps:
  - run_as: parallel
    children:
      - uses: noop
        with: { fail: boom }
      - uses: noop
        with: { summary: sibling }
  - uses: noop
"#,
        )
        .await;
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(step(&run, "1.1").status, StepStatus::Failed);
    assert_eq!(step(&run, "1.1").error.as_deref(), Some("boom"));
    assert_eq!(step(&run, "1.2").status, StepStatus::Succeeded);
    assert_eq!(step(&run, "1").status, StepStatus::Failed);
    assert_eq!(step(&run, "2").status, StepStatus::Pending, "never started");
}

#[tokio::test]
async fn a_condition_takes_one_branch_and_skips_the_other() {
    let h = harness();
    let run = h
        .run(
            r#"
properties: { to_destroy: 2 }
steps:
  - if: "{{ to_destroy | int > 0 }}"
    then:
      - uses: noop
        with: { summary: careful }
    else:
      - uses: noop
        with: { summary: fine }
"#,
        )
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    assert_eq!(step(&run, "1.1").summary.as_deref(), Some("careful"));
    assert_eq!(step(&run, "1.2").status, StepStatus::Skipped);
}

#[tokio::test]
async fn a_retried_step_counts_its_attempts_and_continue_on_error_lets_the_run_go_on() {
    let h = harness();
    let run = h
        .run(
            r#"
steps:
  - uses: noop
    with: { fail: flaky }
    retry: { attempts: 3, delay: 1ms }
    continue_on_error: true
  - uses: noop
    with: { summary: after }
"#,
        )
        .await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:#?}");
    let retried = step(&run, "1");
    assert_eq!(retried.status, StepStatus::Failed);
    assert_eq!(retried.attempts, 3);
    let logs = h.stores.runs.logs(&run.id, Some("1")).await.unwrap();
    let retries = logs
        .iter()
        .filter(|(_, l)| l.text.contains("retrying in"))
        .count();
    assert_eq!(retries, 2, "{logs:?}");
    assert_eq!(step(&run, "2").summary.as_deref(), Some("after"));
}

#[tokio::test]
async fn a_wait_parks_the_run_until_an_approver_decides() {
    let h = harness();
    let queued = h
        .engine
        .submit(spec(
            r#"
steps:
  - id: gate
    requires_approval_from: { user_names: [jane] }
  - uses: noop
"#,
        ))
        .await
        .unwrap();
    let waiting = until(h.stores.runs.as_ref(), &queued.id, RunStatus::Waiting).await;
    assert_eq!(step(&waiting, "1").status, StepStatus::Waiting);

    // Only the approvers list counts: an admin it does not name is refused, a viewer it names
    // decides.
    let bob = Actor {
        name: "bob".into(),
        groups: vec![],
        role: Role::Admin,
    };
    let approve = || DecisionInput {
        kind: "approve".into(),
        comment: Some("ship it".into()),
    };
    let refused = h.engine.decide(&queued.id, "gate", approve(), &bob).await;
    assert!(matches!(refused, Err(EngineError::Forbidden(_))));

    let jane = Actor {
        name: "jane".into(),
        groups: vec![],
        role: Role::Viewer,
    };
    h.engine
        .decide(&queued.id, "gate", approve(), &jane)
        .await
        .unwrap();
    let done = until(h.stores.runs.as_ref(), &queued.id, RunStatus::Succeeded).await;
    assert_eq!(step(&done, "1").approved_by.as_deref(), Some("jane"));
    assert_eq!(step(&done, "2").status, StepStatus::Succeeded);
}

/// An operator, and the decision that continues a plain wait.
fn operator_continues() -> (Actor, DecisionInput) {
    let ops = Actor {
        name: "ops".into(),
        groups: vec![],
        role: Role::Operator,
    };
    let input = DecisionInput {
        kind: "continue".into(),
        comment: None,
    };
    (ops, input)
}

/// Stores `yaml` as a run that was executing when its daemon stopped, `interruptions` times
/// already, and recovers it in a fresh engine; returns the final record.
async fn recovered_after_stopping_mid_run(yaml: &str, interruptions: u32) -> Run {
    let stores = Stores::memory();
    let first = harness_on(stores.clone());
    let mut run = first.engine.create(spec(yaml)).await.unwrap();
    run.status = RunStatus::Running;
    run.interruptions = interruptions;
    stores.runs.put(&run.id, Some(&run), &[]).await.unwrap();
    let second = harness_on(stores.clone());
    assert_eq!(second.engine.recover(false).await.unwrap(), 1);
    let mut last = second.engine.load(&run.id).await.unwrap();
    for _ in 0..500 {
        if !last.status.is_active() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        last = second.engine.load(&run.id).await.unwrap();
    }
    last
}

#[tokio::test]
async fn a_run_interrupted_once_resumes_and_one_interrupted_twice_without_progress_fails() {
    let once = recovered_after_stopping_mid_run("steps:\n  - uses: noop\n", 0).await;
    assert_eq!(once.status, RunStatus::Succeeded, "{once:#?}");
    assert_eq!(once.interruptions, 1);

    // The process died again at the same point: a crash loop, not started a third time.
    let twice = recovered_after_stopping_mid_run("steps:\n  - uses: noop\n", 1).await;
    assert_eq!(twice.status, RunStatus::Failed, "{twice:#?}");
    assert!(
        twice.error.as_deref().unwrap().contains("stopped twice"),
        "{twice:#?}"
    );
    assert!(twice.steps.is_empty(), "nothing ran: {twice:#?}");
}

#[tokio::test]
async fn a_parked_run_survives_its_engine_and_resumes_in_the_next() {
    let stores = Stores::memory();
    let id = {
        let first = harness_on(stores.clone());
        let queued = first
            .engine
            .submit(spec("steps:\n  - type: wait\n  - uses: noop\n"))
            .await
            .unwrap();
        until(stores.runs.as_ref(), &queued.id, RunStatus::Waiting).await;
        queued.id
    };
    // A new engine over the same store, as after a restart. (The first one's task stays parked
    // on its own waiter, as a killed process would leave nothing: only the store carries over.
    // Its claim on the run is in the store, where a killed process's claims go with it: sled
    // reopens with none.)
    stores.runs.claims().release(&id);
    let second = harness_on(stores.clone());
    assert_eq!(second.engine.recover(false).await.unwrap(), 1);
    let (ops, input) = operator_continues();
    // A plain wait names no approvers: continuing it is an operator's part, not a viewer's.
    let viewer = Actor {
        role: Role::Viewer,
        ..ops.clone()
    };
    let refused = second.engine.decide(&id, "1", input.clone(), &viewer).await;
    assert!(
        matches!(refused, Err(EngineError::Forbidden(_))),
        "{refused:?}"
    );
    // Posted right away: the decision waits for recovery to take the run back.
    second.engine.decide(&id, "1", input, &ops).await.unwrap();
    let done = until(stores.runs.as_ref(), &id, RunStatus::Succeeded).await;
    assert_eq!(step(&done, "2").status, StepStatus::Succeeded);
}

#[tokio::test]
async fn embedded_engines_refuse_steps_that_need_the_daemon() {
    let stores = Stores::memory();
    let workspaces = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineParts {
        registry: registry(),
        runs: stores.runs.clone(),
        projects: Projects::default(),
        workspaces: workspaces.path().to_path_buf(),
        mode: Mode::Embedded,
    });
    let run = engine
        .run_to_end(spec("steps:\n  - type: wait\n"))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert!(
        step(&run, "1")
            .error
            .as_deref()
            .unwrap()
            .contains("run this workflow under the daemon"),
        "{run:#?}"
    );
}

/// A workflow that never went through validation still cannot read a secret its step's plugin
/// is not granted, nor any secret outside a plugin step's `with:`.
#[tokio::test]
async fn templates_see_only_the_secrets_granted_to_their_step_s_plugin() {
    let secrets = wasmops_sandbox::Secrets::from_values(
        [
            ("token".to_string(), "tok-granted-5150".to_string()),
            ("other".to_string(), "other-not-granted-77".to_string()),
        ]
        .into(),
    );
    let operator = [(
        "script".to_string(),
        toml::from_str::<wasmops_sandbox::OperatorGrant>("secrets = [\"token\"]").unwrap(),
    )]
    .into();
    let sandbox = wasmops_sandbox::Sandbox::new(wasmops_sandbox::SandboxOptions {
        operator,
        secrets,
        ..Default::default()
    })
    .unwrap();
    let stores = Stores::memory();
    let workspaces = tempfile::tempdir().unwrap();
    let engine = Engine::new(EngineParts {
        registry: Arc::new(Registry::builtin(Arc::new(sandbox)).unwrap()),
        runs: stores.runs.clone(),
        projects: Projects::default(),
        workspaces: workspaces.path().to_path_buf(),
        mode: Mode::Embedded,
    });
    let run = |yaml: &'static str| engine.run_to_end(spec(yaml));

    let granted = run(
        "steps:\n  - uses: script\n    with: { run: \"echo got $T\", env: { T: \"{{ secrets.token }}\" } }\n",
    )
    .await
    .unwrap();
    assert_eq!(granted.status, RunStatus::Succeeded, "{granted:#?}");
    assert_eq!(step(&granted, "1").summary.as_deref(), Some("got ***"));

    let ungranted =
        run("steps:\n  - uses: script\n    with: { run: \"echo {{ secrets.other }}\" }\n")
            .await
            .unwrap();
    let error = step(&ungranted, "1").error.clone().unwrap();
    assert!(
        error.contains("secret `other` is not granted to this step's plugin"),
        "{error}"
    );
    let noop = run("steps:\n  - uses: noop\n    with: { x: \"{{ secrets.token }}\" }\n")
        .await
        .unwrap();
    assert_eq!(noop.status, RunStatus::Failed, "noop is granted no secret");

    for (yaml, field) in [
        (
            "steps:\n  - name: \"{{ secrets.token }}\"\n    uses: noop\n",
            "name",
        ),
        (
            "steps:\n  - when: \"secrets.token != ''\"\n    uses: noop\n",
            "when",
        ),
        (
            "steps:\n  - if: \"secrets.token != ''\"\n    then: [{ uses: noop }]\n",
            "if",
        ),
    ] {
        let failed = run(yaml).await.unwrap();
        assert_eq!(failed.status, RunStatus::Failed, "{field}: {failed:#?}");
        let text = format!("{failed:?}");
        assert!(text.contains("cannot be read here"), "{field}: {text}");
        assert!(!text.contains("tok-granted-5150"), "{field}: {text}");
    }
}

#[tokio::test]
async fn of_two_retries_at_once_one_drives_and_the_other_is_refused() {
    let h = harness();
    let failed = h
        .run("steps:\n  - uses: noop\n    with: { fail: no }\n")
        .await;
    assert_eq!(failed.status, RunStatus::Failed, "{failed:#?}");
    let (a, b) = tokio::join!(h.engine.retry(&failed.id), h.engine.retry(&failed.id));
    let refused = [&a, &b]
        .iter()
        .filter(|r| matches!(r, Err(EngineError::Conflict(_))))
        .count();
    assert_eq!(refused, 1, "{a:?} {b:?}");
    assert!(a.is_ok() || b.is_ok(), "{a:?} {b:?}");
}

#[tokio::test]
async fn a_run_claimed_in_the_store_by_another_holder_is_not_driven_here() {
    let h = harness();
    let failed = h
        .run("steps:\n  - uses: noop\n    with: { fail: no }\n")
        .await;
    assert_eq!(failed.status, RunStatus::Failed, "{failed:#?}");
    // Another holder (a daemon sharing the store) has the run.
    assert!(h.stores.runs.claims().try_claim(&failed.id));
    let refused = h.engine.retry(&failed.id).await;
    assert!(
        matches!(refused, Err(EngineError::Conflict(_))),
        "{refused:?}"
    );
    h.engine.drive(&failed.id).await.unwrap();
    assert_eq!(
        h.engine.load(&failed.id).await.unwrap().status,
        RunStatus::Failed
    );
    // Let go, the run is this engine's to retry, and its claim is let go after.
    h.stores.runs.claims().release(&failed.id);
    h.engine.retry(&failed.id).await.unwrap();
    until(h.stores.runs.as_ref(), &failed.id, RunStatus::Failed).await;
    let mut let_go = false;
    for _ in 0..500 {
        if h.stores.runs.claims().try_claim(&failed.id) {
            let_go = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(let_go, "the engine kept its claim after the drive ended");
}

/// A store whose writes fail while `failing` is set (a full disk), reads as usual.
struct FailingWrites {
    inner: Arc<dyn RunStore>,
    failing: std::sync::atomic::AtomicBool,
}

impl FailingWrites {
    fn check(&self) -> Result<(), StoreError> {
        if self.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::Backend("No space left on device".into()));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl RunStore for FailingWrites {
    async fn create(&self, run: &Run, spec: &RunSpec) -> Result<(), StoreError> {
        self.check()?;
        self.inner.create(run, spec).await
    }
    async fn put(
        &self,
        run_id: &str,
        header: Option<&Run>,
        steps: &[StepRun],
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.put(run_id, header, steps).await
    }
    async fn append_logs(
        &self,
        run_id: &str,
        step: &str,
        lines: &[LogLine],
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.append_logs(run_id, step, lines).await
    }
    async fn run(&self, id: &str) -> Result<Option<Run>, StoreError> {
        self.inner.run(id).await
    }
    async fn spec(&self, id: &str) -> Result<Option<RunSpec>, StoreError> {
        self.inner.spec(id).await
    }
    async fn list(&self, query: &RunQuery) -> Result<RunPage, StoreError> {
        self.inner.list(query).await
    }
    async fn keep_snapshot(&self, sha256: &str, json: &[u8]) -> Result<(), StoreError> {
        self.check()?;
        self.inner.keep_snapshot(sha256, json).await
    }
    async fn snapshot(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.snapshot(sha256).await
    }
    async fn count_by_status(
        &self,
    ) -> Result<std::collections::BTreeMap<RunStatus, u64>, StoreError> {
        self.inner.count_by_status().await
    }
    async fn logs(
        &self,
        run_id: &str,
        step: Option<&str>,
    ) -> Result<Vec<(String, LogLine)>, StoreError> {
        self.inner.logs(run_id, step).await
    }

    fn claims(&self) -> &dyn crate::store::RunClaims {
        self.inner.claims()
    }
}

#[tokio::test]
async fn a_decision_the_store_cannot_keep_is_refused_and_changes_nothing() {
    let memory = Stores::memory();
    let failing = Arc::new(FailingWrites {
        inner: memory.runs.clone(),
        failing: Default::default(),
    });
    let stores = Stores {
        runs: failing.clone(),
        catalog: memory.catalog.clone(),
    };
    let h = harness_on(stores);
    let queued = h
        .engine
        .submit(spec("steps:\n  - type: wait\n  - uses: noop\n"))
        .await
        .unwrap();
    until(h.stores.runs.as_ref(), &queued.id, RunStatus::Waiting).await;
    let (ops, input) = operator_continues();
    failing
        .failing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let refused = h.engine.decide(&queued.id, "1", input.clone(), &ops).await;
    assert!(matches!(refused, Err(EngineError::Store(_))), "{refused:?}");
    // Neither the store nor the run in memory took the decision; the step still waits.
    let stored = h.engine.load(&queued.id).await.unwrap();
    assert!(step(&stored, "1").wait.as_ref().unwrap().decision.is_none());
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        h.engine.load(&queued.id).await.unwrap().status,
        RunStatus::Waiting
    );

    failing
        .failing
        .store(false, std::sync::atomic::Ordering::SeqCst);
    h.engine.decide(&queued.id, "1", input, &ops).await.unwrap();
    let done = until(h.stores.runs.as_ref(), &queued.id, RunStatus::Succeeded).await;
    assert_eq!(step(&done, "1").status, StepStatus::Succeeded);
}
