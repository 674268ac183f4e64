//! The daemon through its API and the CLI: auth, the workflow lifecycle, the OpsChain tutorial
//! pipeline with a wait and an approval, cancel, retry, queueing, and kill -9 restarts.

use crate::daemon_support::{BOB, Daemon, JANE};
use crate::support::{Sandbox, repo, step, try_step};
use serde_json::{Value, json};

fn hello_world() -> String {
    repo().join("examples/hello_world").display().to_string()
}

/// Puts a workflow draft into the daemon (the project must exist) and publishes it.
pub(crate) fn publish(d: &Daemon, project: &str, code: &str, yaml: &str) {
    let path = format!("/api/v1/projects/{project}/workflows/{code}");
    let (status, body) = d.call(Some(JANE), "PUT", &path, Some(json!({"yaml": yaml})));
    assert_eq!(status, 200, "{body:#}");
    let (status, body) = d.post(JANE, &format!("{path}/publish"), json!({}));
    assert_eq!(status, 200, "{body:#}");
}

pub(crate) fn start(d: &Daemon, workflow: &str, overrides: Value) -> String {
    let (status, run) = d.post(
        JANE,
        "/api/v1/runs",
        json!({"workflow": workflow, "property_overrides": overrides}),
    );
    assert_eq!(status, 201, "{run:#}");
    assert_eq!(run["status"], "queued");
    run["id"].as_str().unwrap().to_string()
}

/// A daemon with the hello_world example applied. The daemon is declared second, so it is
/// stopped before its sandbox is removed.
pub(crate) fn daemon_with_hello_world() -> (Sandbox, Daemon) {
    let sb = Sandbox::new();
    let d = Daemon::start(sb.dir.path());
    apply_hello_world(&d);
    (sb, d)
}

pub(crate) fn apply_hello_world(d: &Daemon) {
    let applied = d.cli(&["apply", &hello_world()]);
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
}

/// Posts a 6 MB body (over the 4 MiB limit) and returns the raw response. The server stops
/// reading at its limit and answers; what the client still sends is dropped, so this writes
/// through a socket that tolerates the early answer.
fn oversized_post(d: &Daemon, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(d.url.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {JANE}\r\n\
         Content-Type: application/json\r\nContent-Length: 6000000\r\n\r\n"
    )
    .unwrap();
    let chunk = vec![b'x'; 64 << 10];
    for _ in 0..(4_500_000 / chunk.len()) {
        if stream.write_all(&chunk).is_err() {
            break;
        }
    }
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn the_api_refuses_bad_requests_with_json_errors() {
    let sb = Sandbox::new();
    let d = Daemon::start(sb.dir.path());
    let (status, _) = d.call(None, "GET", "/healthz", None);
    assert_eq!(status, 200);
    let (status, body) = d.call(None, "GET", "/api/v1/runs", None);
    assert_eq!(status, 401);
    assert_eq!(body["error"], "unauthorized");
    let (status, _) = d.call(Some("not-a-token"), "GET", "/api/v1/runs", None);
    assert_eq!(status, 401);
    let (status, body) = d.call(Some(JANE), "GET", "/api/v1/nope", None);
    assert_eq!(status, 404);
    assert!(body["detail"].is_string());
    let (status, body) = d.post(JANE, "/api/v1/runs", json!({"workflow": 7}));
    assert_eq!(status, 422, "{body:#}");
    assert_eq!(body["error"], "bad request");
    let (status, body) = d.post(
        JANE,
        "/api/v1/runs",
        json!({"workflow": "/projects/x/workflows/y"}),
    );
    assert_eq!(status, 404, "{body:#}");
    // An oversized body is refused, and the daemon carries on.
    let response = oversized_post(&d, "/api/v1/apply");
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert_eq!(d.call(Some(JANE), "GET", "/api/v1/runs", None).0, 200);
    let (status, body) = d.call(Some(JANE), "DELETE", "/api/v1/runs", None);
    assert_eq!(status, 405);
    assert_eq!(body["error"], "method not allowed");
    // Query strings and raw bodies are refused in JSON too.
    let (status, body) = d.call(Some(JANE), "GET", "/api/v1/runs?status=a&status=b", None);
    assert_eq!(status, 400, "{body:#}");
    assert_eq!(body["error"], "bad request");
    let response = oversized_post(&d, "/api/v1/runs/wfr_nothere/steps/1/approve");
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(response.contains("\"error\":\"bad request\""), "{response}");
    let (status, body) = d.post(JANE, "/api/v1/runs/wfr_nothere/steps/1/maybe", json!({}));
    assert_eq!(
        status, 422,
        "an unknown decision is refused before anything is looked up: {body:#}"
    );
    // A path segment that is not UTF-8 is refused in JSON like everything else.
    for path in ["/api/v1/runs/%FF", "/api/v1/projects/%FF/workflows/w"] {
        let (status, body) = d.call(Some(JANE), "GET", path, None);
        assert_eq!(status, 400, "{path}: {body:#}");
        assert_eq!(body["error"], "bad request", "{path}: {body:#}");
    }
}

#[test]
fn workflows_have_drafts_numbered_versions_and_runs_pinned_to_one() {
    let (_sb, d) = daemon_with_hello_world();
    let wf = "/projects/hello_world/workflows/greet";
    let api = "/api/v1/projects/hello_world/workflows/greet";
    let (status, _) = d.call(
        Some(JANE),
        "PUT",
        api,
        Some(json!({"yaml": "steps:\n  - uses: noop\n    with: { summary: v1 }\n"})),
    );
    assert_eq!(status, 200);
    assert_eq!(d.get(api)["status"], "draft");
    let (status, body) = d.post(JANE, "/api/v1/runs", json!({"workflow": wf}));
    assert_eq!(status, 409, "a draft cannot run: {body:#}");

    let (status, body) = d.post(JANE, &format!("{api}/publish"), json!({}));
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["latest_version"], 1);
    assert_eq!(body["status"], "active");
    d.call(
        Some(JANE),
        "PUT",
        api,
        Some(json!({"yaml": "steps:\n  - uses: noop\n    with: { summary: v2 }\n"})),
    );
    let (_, body) = d.post(JANE, &format!("{api}/publish"), json!({}));
    assert_eq!(body["latest_version"], 2);

    let latest = start(&d, wf, json!({}));
    let run = d.wait_status(&latest, "succeeded");
    assert_eq!(run["version"], 2);
    assert_eq!(step(&run, "1")["summary"], "v2");
    let (status, pinned) = d.post(JANE, "/api/v1/runs", json!({"workflow": wf, "version": 1}));
    assert_eq!(status, 201);
    let run = d.wait_status(pinned["id"].as_str().unwrap(), "succeeded");
    assert_eq!(step(&run, "1")["summary"], "v1");

    // An invalid draft is not published, and says why with line and column.
    d.call(
        Some(JANE),
        "PUT",
        api,
        Some(json!({"yaml": "steps:\n  - uses: noop\n    run-as: x\n"})),
    );
    let (status, body) = d.post(JANE, &format!("{api}/publish"), json!({}));
    assert_eq!(status, 422);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains(":3:5: unknown key `run-as`"),
        "{body:#}"
    );

    let paused = d.cli(&["workflows", "pause", wf]);
    assert!(paused.stdout.contains("paused"), "{}", paused.stderr);
    let manual = start(&d, wf, json!({}));
    d.wait_status(&manual, "succeeded");
    d.cli(&["workflows", "resume", wf]);
    let dup = d.cli(&["workflows", "duplicate", wf, "greet-copy"]);
    assert_eq!(dup.code, 0, "{}", dup.stderr);
    let history = d.cli(&["workflows", "history", wf, "--output", "json"]);
    assert_eq!(history.json().as_array().unwrap().len(), 3);
    let listed = d.cli(&["workflows", "list"]);
    assert!(
        listed
            .stdout
            .contains("/projects/hello_world/workflows/greet-copy")
            && listed.stdout.contains("draft"),
        "{}",
        listed.stdout
    );
    assert_eq!(
        d.cli(&[
            "workflows",
            "delete",
            "/projects/hello_world/workflows/greet-copy"
        ])
        .code,
        0
    );
    assert_eq!(
        d.call(
            Some(JANE),
            "GET",
            "/api/v1/projects/hello_world/workflows/greet-copy",
            None
        )
        .0,
        404
    );
}

#[test]
fn the_opschain_tutorial_pipeline_runs_through_the_api() {
    let (_sb, d) = daemon_with_hello_world();
    let wf = "/projects/hello_world/workflows/rollout";
    let published = d.cli(&["workflows", "publish", wf]);
    assert_eq!(published.code, 0, "{}", published.stderr);
    let id = start(&d, wf, json!({}));

    // Pre-flight checks on three targets in parallel, two rollouts, then the plain wait.
    let run = d.wait_for(&id, "waiting at step 4", |r| {
        r["status"] == "waiting" && try_step(r, "4")["status"] == "waiting"
    });
    let preflight = step(&run, "1.1");
    assert_eq!(preflight["run_as"], "parallel");
    assert_eq!(preflight["children"].as_array().unwrap().len(), 3);
    for path in ["1", "2", "3"] {
        assert_eq!(step(&run, path)["status"], "succeeded", "{run:#}");
    }
    assert_eq!(step(&run, "6")["status"], "pending");

    // An operator may continue a plain wait; it is not an approval.
    let (status, _) = d.post(
        BOB,
        &format!("/api/v1/runs/{id}/steps/4/approve"),
        json!({}),
    );
    assert_eq!(status, 422);
    let (status, body) = d.post(
        BOB,
        &format!("/api/v1/runs/{id}/steps/4/continue"),
        json!({"comment": "dev and staging look fine"}),
    );
    assert_eq!(status, 200, "{body:#}");

    let run = d.wait_for(&id, "waiting at the approval", |r| {
        try_step(r, "5")["status"] == "waiting"
    });
    assert_eq!(
        step(&run, "4")["summary"],
        "Continued by bob@example.com: dev and staging look fine"
    );
    // bob is neither named nor in release-managers: 403, and nothing is recorded.
    let (status, body) = d.post(
        BOB,
        &format!("/api/v1/runs/{id}/steps/5/approve"),
        json!({}),
    );
    assert_eq!(status, 403, "{body:#}");
    assert_eq!(body["error"], "forbidden");
    let run = d.get(&format!("/api/v1/runs/{id}"));
    assert_eq!(step(&run, "5")["status"], "waiting");
    assert!(step(&run, "5")["wait"]["decision"].is_null(), "{run:#}");

    let approved = d.cli(&["approve", &id, "5", "--comment", "ship it"]);
    assert_eq!(approved.code, 0, "{}", approved.stderr);
    let run = d.wait_status(&id, "succeeded");
    let gate = step(&run, "5");
    assert_eq!(gate["approved_by"], "jane@example.com");
    assert_eq!(gate["wait"]["decision"]["comment"], "ship it");
    assert_eq!(step(&run, "6")["status"], "succeeded");
    // The production server's playbook ran with its own properties.
    let logs = d.cli(&["runs", "logs", &id]).stdout;
    assert!(
        logs.lines()
            .any(|l| l.starts_with("[6.2.1] ") && l.contains("prd-web-01.example.com")),
        "{logs}"
    );

    let shown = d.cli(&["runs", "show", &id]);
    assert!(
        shown.stdout.contains("→ Approved by jane@example.com"),
        "{}",
        shown.stdout
    );
    assert!(
        shown.stdout.contains("Status:   Completed ✓"),
        "{}",
        shown.stdout
    );
}

#[test]
fn a_rejection_fails_the_run_and_a_timeout_rejects_by_default() {
    let (_sb, d) = daemon_with_hello_world();
    publish(
        &d,
        "hello_world",
        "gate",
        "steps:\n  - name: Gate\n    type: wait\n    requires_approval_from: { ldap_groups: [release-managers] }\n  - uses: noop\n",
    );
    let id = start(&d, "/projects/hello_world/workflows/gate", json!({}));
    d.wait_status(&id, "waiting");
    let rejected = d.cli(&["reject", &id, "1", "--comment", "not today"]);
    assert_eq!(rejected.code, 0, "{}", rejected.stderr);
    let run = d.wait_status(&id, "failed");
    assert_eq!(
        step(&run, "1")["error"],
        "Rejected by jane@example.com: not today"
    );
    assert_eq!(step(&run, "2")["status"], "pending");

    publish(
        &d,
        "hello_world",
        "timed",
        "steps:\n  - type: wait\n    timeout: 1s\n  - uses: noop\n",
    );
    let id = start(&d, "/projects/hello_world/workflows/timed", json!({}));
    let run = d.wait_status(&id, "failed");
    assert!(
        step(&run, "1")["error"]
            .as_str()
            .unwrap()
            .contains("rejected (on_timeout: reject)"),
        "{run:#}"
    );
}

#[test]
fn runs_queue_one_at_a_time_and_cancel_stops_a_running_program() {
    let (_sb, d) = daemon_with_hello_world();
    publish(
        &d,
        "hello_world",
        "slow",
        "steps:\n  - name: Long job\n    uses: script\n    with: { run: \"sleep 60\" }\n",
    );
    let first = start(&d, "/projects/hello_world/workflows/slow", json!({}));
    let second = start(&d, "/projects/hello_world/workflows/slow", json!({}));
    d.wait_for(&first, "running its step", |r| {
        try_step(r, "1")["status"] == "running"
    });
    assert_eq!(
        d.get(&format!("/api/v1/runs/{second}"))["status"],
        "queued",
        "the second run waits its turn"
    );

    let started = std::time::Instant::now();
    let cancelled = d.cli(&["runs", "cancel", &first, "--output", "json"]);
    assert_eq!(cancelled.code, 0, "{}", cancelled.stderr);
    let run = d.wait_status(&first, "cancelled");
    assert!(started.elapsed().as_secs() < 20);
    assert_eq!(step(&run, "1")["status"], "cancelled");
    // The queued run now has the slot.
    d.wait_for(&second, "running", |r| {
        try_step(r, "1")["status"] == "running"
    });
    d.cli(&["runs", "cancel", &second]);
    d.wait_status(&second, "cancelled");
}

#[test]
fn retry_keeps_completed_steps_and_runs_the_failed_one_again() {
    let (sb, d) = daemon_with_hello_world();
    let flag = sb.path("fixed");
    publish(
        &d,
        "hello_world",
        "flaky",
        &format!(
            "steps:\n  - id: first\n    uses: script\n    with: {{ run: \"echo first-ran >> count; echo once\" }}\n  - uses: script\n    with: {{ run: \"test -e {} || {{ echo not yet >&2; exit 1; }}\" }}\n",
            flag.display()
        ),
    );
    let id = start(&d, "/projects/hello_world/workflows/flaky", json!({}));
    let run = d.wait_status(&id, "failed");
    assert_eq!(step(&run, "1")["status"], "succeeded");
    std::fs::write(&flag, "").unwrap();
    let retried = d.cli(&["runs", "retry", &id]);
    assert_eq!(retried.code, 0, "{}", retried.stderr);
    let run = d.wait_status(&id, "succeeded");
    assert_eq!(
        step(&run, "1")["attempts"],
        1,
        "the completed step was kept, not run again"
    );
    assert_eq!(step(&run, "2")["attempts"], 2);
}

#[test]
fn kill_9_loses_nothing_waiting_runs_wait_and_interrupted_steps_run_again() {
    let sb = Sandbox::new();
    let mut d = Daemon::start(sb.dir.path());
    apply_hello_world(&d);
    publish(
        &d,
        "hello_world",
        "approve-me",
        "steps:\n  - uses: noop\n  - type: wait\n    requires_approval_from: { user_names: [jane@example.com] }\n  - uses: noop\n    with: { summary: after }\n",
    );
    publish(
        &d,
        "hello_world",
        "interrupted",
        "steps:\n  - name: Slow\n    uses: script\n    with: { run: \"sleep 3; echo attempt $WASMOPS_ATTEMPT\" }\n",
    );
    let waiting = start(&d, "/projects/hello_world/workflows/approve-me", json!({}));
    d.wait_status(&waiting, "waiting");
    let interrupted = start(&d, "/projects/hello_world/workflows/interrupted", json!({}));
    d.wait_for(&interrupted, "running", |r| {
        try_step(r, "1")["status"] == "running"
    });

    d.restart();
    let run = d.wait_status(&waiting, "waiting");
    assert_eq!(step(&run, "1")["status"], "succeeded");
    let (status, body) = d.decide(
        JANE,
        &format!("/api/v1/runs/{waiting}/steps/2/approve"),
        json!({}),
    );
    assert_eq!(status, 200, "{body:#}");
    let run = d.wait_status(&waiting, "succeeded");
    assert_eq!(step(&run, "3")["summary"], "after");

    let run = d.wait_status(&interrupted, "succeeded");
    assert_eq!(step(&run, "1")["attempts"], 2);
    assert_eq!(step(&run, "1")["summary"], "attempt 2");

    // A decision acknowledged just before a crash is not lost.
    let again = start(&d, "/projects/hello_world/workflows/approve-me", json!({}));
    d.wait_status(&again, "waiting");
    let (status, _) = d.post(
        JANE,
        &format!("/api/v1/runs/{again}/steps/2/approve"),
        json!({}),
    );
    assert_eq!(status, 200);
    d.restart();
    let run = d.wait_status(&again, "succeeded");
    assert_eq!(step(&run, "2")["approved_by"], "jane@example.com");
    let runs = d.get("/api/v1/runs");
    assert_eq!(
        runs.as_array().unwrap().len(),
        3,
        "no run lost or duplicated: {runs:#}"
    );
}

#[test]
fn a_workflow_step_fans_out_child_runs_and_call_cycles_are_refused() {
    let (_sb, d) = daemon_with_hello_world();
    // Calling a workflow that was never published is refused at publish time.
    let early = d.cli(&[
        "workflows",
        "publish",
        "/projects/hello_world/workflows/backup-all",
    ]);
    assert_ne!(early.code, 0);
    assert!(
        early
            .stderr
            .contains("backup-environment has no published version"),
        "{}",
        early.stderr
    );
    for wf in ["backup-environment", "backup-all"] {
        let published = d.cli(&[
            "workflows",
            "publish",
            &format!("/projects/hello_world/workflows/{wf}"),
        ]);
        assert_eq!(published.code, 0, "{wf}: {}", published.stderr);
    }
    let ran = d.cli(&[
        "run",
        "/projects/hello_world/workflows/backup-all",
        "--output",
        "json",
    ]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let run = ran.json();
    let children: Vec<String> = step(&run, "1")["outputs"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(children.len(), 3);
    let mut hosts = Vec::new();
    for id in &children {
        let child = d.get(&format!("/api/v1/runs/{id}"));
        assert_eq!(child["status"], "succeeded");
        assert_eq!(
            child["workflow"],
            "/projects/hello_world/workflows/backup-environment"
        );
        assert_eq!(child["trigger"]["kind"], "workflow");
        hosts.push(step(&child, "1.1")["summary"].as_str().unwrap().to_string());
    }
    hosts.sort();
    assert_eq!(
        hosts,
        [
            "dumped dev-web-01.example.com",
            "dumped prd-web-01.example.com",
            "dumped stg-web-01.example.com"
        ]
    );

    // a → b → a is refused with the cycle spelled out.
    publish(&d, "hello_world", "cycle-b", "steps:\n  - uses: noop\n");
    publish(
        &d,
        "hello_world",
        "cycle-a",
        "steps:\n  - type: workflow\n    target: /projects/hello_world/workflows/cycle-b\n",
    );
    d.call(Some(JANE), "PUT", "/api/v1/projects/hello_world/workflows/cycle-b", Some(json!({"yaml": "steps:\n  - type: workflow\n    target: /projects/hello_world/workflows/cycle-a\n"})));
    let (status, body) = d.post(
        JANE,
        "/api/v1/projects/hello_world/workflows/cycle-b/publish",
        json!({}),
    );
    assert_eq!(status, 422);
    assert!(
        body["detail"].as_str().unwrap().contains("workflow call cycle: /projects/hello_world/workflows/cycle-b → /projects/hello_world/workflows/cycle-a → /projects/hello_world/workflows/cycle-b"),
        "{body:#}"
    );
}

#[test]
fn nesting_deeper_than_the_limit_fails_clearly() {
    let (_sb, d) = daemon_with_hello_world();
    // A templated target hides the self-call from publish-time checks; the depth limit catches it.
    publish(
        &d,
        "hello_world",
        "recurse",
        "properties: { me: recurse }\nsteps:\n  - type: workflow\n    target: \"/projects/hello_world/workflows/{{ me }}\"\n",
    );
    let id = start(&d, "/projects/hello_world/workflows/recurse", json!({}));
    let run = d.wait_status(&id, "failed");
    let error = run.to_string();
    assert!(error.contains("child runs"), "{run:#}");
    let runs = d.get("/api/v1/runs");
    let all: Vec<Value> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| d.get(&format!("/api/v1/runs/{}", r["id"].as_str().unwrap())))
        .collect();
    assert!(
        all.iter().any(|r| step(r, "1")["error"]
            .as_str()
            .is_some_and(|e| e.contains("nest deeper than 8 levels"))),
        "no run reports the depth limit"
    );
    assert_eq!(all.len(), 9, "the chain stops at the limit");
}

#[test]
fn follow_renders_the_event_stream_and_metrics_count_what_happened() {
    let (_sb, d) = daemon_with_hello_world();
    publish(
        &d,
        "hello_world",
        "two",
        "steps:\n  - { name: First, uses: noop, with: { summary: one } }\n  - { name: Second, uses: script, with: { run: \"sleep 0.3; echo two\" } }\n",
    );
    let ran = d.cli(&["run", "/projects/hello_world/workflows/two", "--follow"]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    for expected in [
        "[1] First succeeded → one",
        "[2] Second succeeded → two",
        ": succeeded",
    ] {
        assert!(
            ran.stderr.contains(expected),
            "missing {expected:?} in:\n{}",
            ran.stderr
        );
    }
    assert!(
        ran.stdout.contains("Status:   Completed ✓"),
        "{}",
        ran.stdout
    );

    // The raw stream: a snapshot, then each durable change, ending with the run's end.
    publish(
        &d,
        "hello_world",
        "paused-run",
        "steps:\n  - type: wait\n  - uses: noop\n",
    );
    let id = start(&d, "/projects/hello_world/workflows/paused-run", json!({}));
    d.wait_status(&id, "waiting");
    let url = format!("{}/api/v1/runs/{id}/events", d.url);
    let reader = std::thread::spawn(move || {
        let response = ureq::get(&url)
            .header("authorization", &format!("Bearer {JANE}"))
            .call()
            .unwrap();
        response.into_body().read_to_string().unwrap()
    });
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, _) = d.post(
        JANE,
        &format!("/api/v1/runs/{id}/steps/1/continue"),
        json!({}),
    );
    assert_eq!(status, 200);
    let stream = reader.join().unwrap();
    assert!(stream.starts_with("event: snapshot"), "{stream}");
    assert!(
        stream.contains("event: step")
            && stream.contains("\"summary\":\"Continued by jane@example.com\""),
        "{stream}"
    );
    assert!(
        stream.trim_end().ends_with("}") && stream.contains("\"status\":\"succeeded\""),
        "{stream}"
    );

    let (status, _) = d.call(None, "GET", "/metrics", None);
    assert_eq!(status, 401);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let text = agent
        .get(&format!("{}/metrics", d.url))
        .header("authorization", &format!("Bearer {JANE}"))
        .call()
        .unwrap()
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(
        text.contains("wasmops_runs{status=\"succeeded\"} 2"),
        "{text}"
    );
    assert!(text.contains("wasmops_queue_depth 0"), "{text}");
    assert!(
        text.contains("wasmops_step_duration_seconds_count{status=\"succeeded\"}"),
        "{text}"
    );
    let instances: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("wasmops_plugin_instantiations_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(instances >= 4, "{text}");
}

#[test]
fn repeated_kill_9_under_load_loses_and_duplicates_nothing_acknowledged() {
    let sb = Sandbox::new();
    let mut d = Daemon::start(sb.dir.path());
    apply_hello_world(&d);
    publish(
        &d,
        "hello_world",
        "busy",
        "concurrency: 3\nsteps:\n  - uses: script\n    with: { run: \"sleep 0.2; echo one\" }\n  - uses: script\n    with: { run: \"sleep 0.2; echo two\" }\n  - uses: noop\n    with: { summary: three }\n",
    );
    publish(
        &d,
        "hello_world",
        "gated",
        "concurrency: 10\nsteps:\n  - type: wait\n    requires_approval_from: { ldap_groups: [release-managers] }\n  - uses: noop\n",
    );
    let mut acknowledged = Vec::new();
    let mut approved = Vec::new();
    for round in 0..3 {
        for _ in 0..4 {
            acknowledged.push(start(&d, "/projects/hello_world/workflows/busy", json!({})));
        }
        let gate = start(&d, "/projects/hello_world/workflows/gated", json!({}));
        acknowledged.push(gate.clone());
        d.wait_status(&gate, "waiting");
        let (status, _) = d.post(
            JANE,
            &format!("/api/v1/runs/{gate}/steps/1/approve"),
            json!({"comment": format!("round {round}")}),
        );
        assert_eq!(status, 200);
        approved.push(gate);
        std::thread::sleep(std::time::Duration::from_millis(150 + 200 * round));
        d.restart();
    }
    for id in &acknowledged {
        let run = d.wait_for(id, "finished", |r| {
            r["status"] == "succeeded" || r["status"] == "failed"
        });
        assert_eq!(run["status"], "succeeded", "{run:#}");
        for path in ["1", "2", "3"] {
            if run["workflow"] == "/projects/hello_world/workflows/busy" {
                assert_eq!(step(&run, path)["status"], "succeeded", "{run:#}");
            }
        }
    }
    for id in &approved {
        let run = d.get(&format!("/api/v1/runs/{id}"));
        assert_eq!(
            step(&run, "1")["approved_by"],
            "jane@example.com",
            "approval lost: {run:#}"
        );
    }
    let all = d.get("/api/v1/runs");
    let mut ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    ids.sort();
    let before = ids.len();
    ids.dedup();
    assert_eq!(before, ids.len(), "a run is listed twice");
    assert_eq!(ids.len(), acknowledged.len(), "runs lost or invented");
}

#[test]
fn a_fresh_daemon_without_users_prints_a_local_admin_token_once() {
    use std::io::BufRead;
    let sb = Sandbox::new();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_wasmops"))
        .args(["up", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(sb.dir.path())
        .env_remove("WASMOPS_DATA")
        .env_remove("WASMOPS_CONFIG")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let _daemon = KillOnDrop(child);
    let mut token = None;
    for line in stderr.lines() {
        let line = line.unwrap();
        if let Some(t) = line.trim().strip_prefix("export WASMOPS_TOKEN=") {
            token = Some(t.to_string());
        }
        if line.starts_with("wasmops listening on") {
            break;
        }
    }
    let token = token.expect("no token printed");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let status = agent
        .get(&format!("http://127.0.0.1:{port}/api/v1/runs"))
        .header("authorization", &format!("Bearer {token}"))
        .call()
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 200);
    // The local admin is an `admin`: installing plugins gets past the gate (to the missing folder).
    let status = agent
        .post(&format!("http://127.0.0.1:{port}/api/v1/plugins"))
        .header("authorization", &format!("Bearer {token}"))
        .send_json(json!({"dir": sb.path("nowhere")}))
        .unwrap()
        .status();
    assert_eq!(status.as_u16(), 422);
    let hash = std::fs::read_to_string(sb.path("wasmops-data/admin-token.sha256")).unwrap();
    assert!(!hash.contains(&token), "only the hash is kept");
}

#[test]
fn plugins_install_into_a_running_daemon() {
    let (sb, d) = daemon_with_hello_world();
    let api = "/api/v1/projects/hello_world/workflows/echoes";
    d.call(
        Some(JANE),
        "PUT",
        api,
        Some(json!({"yaml": "steps:\n  - uses: echo\n    with: { hello: world }\n"})),
    );
    let (status, body) = d.post(JANE, &format!("{api}/publish"), json!({}));
    assert_eq!(status, 422, "echo is not installed yet: {body:#}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("plugin `echo` is not installed"),
        "{body:#}"
    );

    let echo = crate::support::test_plugins().join("echo");
    let installed = d.cli(&["plugins", "install", echo.to_str().unwrap()]);
    assert_eq!(installed.code, 0, "{}", installed.stderr);
    assert!(
        installed.stdout.contains("installed echo 0.1.0 (sha256:"),
        "{}",
        installed.stdout
    );
    let listed = d.get("/api/v1/plugins");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "echo")
    );
    let (status, body) = d.post(JANE, "/api/v1/plugins", json!({"dir": sb.path("nowhere")}));
    assert_eq!(status, 422, "{body:#}");

    let (status, body) = d.post(JANE, &format!("{api}/publish"), json!({}));
    assert_eq!(status, 200, "{body:#}");
    let id = start(&d, "/projects/hello_world/workflows/echoes", json!({}));
    let run = d.wait_status(&id, "succeeded");
    assert_eq!(
        step(&run, "1")["outputs"]["config"],
        json!({"hello": "world"})
    );
}

#[test]
fn cancelling_a_parent_cancels_the_child_runs_it_started() {
    let (_sb, d) = daemon_with_hello_world();
    publish(
        &d,
        "hello_world",
        "slow-child",
        "steps:\n  - name: Sleeps\n    uses: script\n    with: { run: \"sleep 60\" }\n",
    );
    publish(
        &d,
        "hello_world",
        "parent",
        "steps:\n  - type: workflow\n    target: /projects/hello_world/workflows/slow-child\n    run_as: parallel\n    property_overrides: [{ n: 1 }, { n: 2 }]\n",
    );
    let id = start(&d, "/projects/hello_world/workflows/parent", json!({}));
    let run = d.wait_for(&id, "with children", |r| {
        try_step(r, "1")["outputs"]["runs"]
            .as_array()
            .is_some_and(|a| a.len() == 2)
    });
    let children: Vec<String> = step(&run, "1")["outputs"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for child in &children {
        d.wait_for(child, "running", |r| {
            try_step(r, "1")["status"] == "running"
        });
    }
    let cancelled = d.cli(&["runs", "cancel", &id]);
    assert_eq!(cancelled.code, 0, "{}", cancelled.stderr);
    d.wait_status(&id, "cancelled");
    for child in &children {
        let run = d.wait_status(child, "cancelled");
        assert_eq!(step(&run, "1")["status"], "cancelled");
    }
}

#[test]
fn retrying_a_parent_retries_its_failed_child_runs() {
    let (sb, d) = daemon_with_hello_world();
    let flag = sb.path("child-may-pass");
    publish(
        &d,
        "hello_world",
        "picky-child",
        &format!(
            "steps:\n  - uses: noop\n  - uses: script\n    with: {{ run: \"test -e {} || exit 1\" }}\n",
            flag.display()
        ),
    );
    publish(
        &d,
        "hello_world",
        "caller",
        "steps:\n  - type: workflow\n    target: /projects/hello_world/workflows/picky-child\n",
    );
    let id = start(&d, "/projects/hello_world/workflows/caller", json!({}));
    let run = d.wait_status(&id, "failed");
    let child = step(&run, "1")["outputs"]["runs"][0]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(d.get(&format!("/api/v1/runs/{child}"))["status"], "failed");
    std::fs::write(&flag, "").unwrap();
    assert_eq!(d.cli(&["runs", "retry", &id]).code, 0);
    d.wait_status(&id, "succeeded");
    let child_run = d.get(&format!("/api/v1/runs/{child}"));
    assert_eq!(
        child_run["status"], "succeeded",
        "the same child run was retried: {child_run:#}"
    );
    assert_eq!(
        step(&child_run, "1")["attempts"],
        1,
        "its completed step was kept"
    );
    assert_eq!(
        d.get("/api/v1/runs").as_array().unwrap().len(),
        2,
        "no second child was started"
    );
}

#[test]
fn runs_are_listed_a_page_at_a_time_by_the_store() {
    let (_sb, d) = daemon_with_hello_world();
    publish(
        &d,
        "hello_world",
        "quick",
        "concurrency: 5\nsteps:\n  - uses: noop\n",
    );
    let ids: Vec<String> = (0..5)
        .map(|_| start(&d, "/projects/hello_world/workflows/quick", json!({})))
        .collect();
    for id in &ids {
        d.wait_status(id, "succeeded");
    }

    // Newest first, two at a time, following the Link header to the end.
    let mut seen = Vec::new();
    let mut next = Some(
        "/api/v1/runs?workflow=/projects/hello_world/workflows/quick&status=succeeded&limit=2"
            .to_string(),
    );
    let mut pages = 0;
    while let Some(path) = next {
        let (status, page, link) = d.get_page(&path);
        assert_eq!(status, 200, "{page:#}");
        assert!(page.as_array().unwrap().len() <= 2);
        seen.extend(page.as_array().unwrap().iter().map(|r| {
            let created: chrono::DateTime<chrono::Utc> =
                r["created_at"].as_str().unwrap().parse().unwrap();
            // The store orders by the millisecond, then by id.
            (
                created.timestamp_millis(),
                r["id"].as_str().unwrap().to_string(),
            )
        }));
        next = link;
        pages += 1;
    }
    assert_eq!(pages, 3);
    let mut newest_first = seen.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen, newest_first, "newest first, across pages");
    let mut listed: Vec<String> = seen.into_iter().map(|(_, id)| id).collect();
    let mut started = ids.clone();
    listed.sort();
    started.sort();
    assert_eq!(listed, started, "every run once");

    // The workflow's history pages the same way.
    let (status, page, link) =
        d.get_page("/api/v1/projects/hello_world/workflows/quick/history?limit=4");
    assert_eq!(status, 200);
    assert_eq!(page.as_array().unwrap().len(), 4);
    let (_, rest, none) = d.get_page(&link.expect("a next page"));
    assert_eq!(rest.as_array().unwrap().len(), 1);
    assert!(none.is_none());

    // Several statuses at once; a bad status, limit or cursor is a JSON 400.
    let (_, active, _) = d.get_page("/api/v1/runs?status=queued,running,waiting");
    assert!(active.as_array().unwrap().is_empty(), "{active:#}");
    for bad in [
        "/api/v1/runs?status=done",
        "/api/v1/runs?limit=0",
        "/api/v1/runs?limit=5000",
        "/api/v1/runs?cursor=nonsense",
    ] {
        let (status, body, _) = d.get_page(bad);
        assert_eq!(status, 400, "{bad}: {body:#}");
        assert_eq!(body["error"], "bad request", "{bad}: {body:#}");
    }
}

#[test]
fn after_kill_9_each_child_run_is_driven_once_and_an_approved_child_stays_approved() {
    let (_sb, mut d) = daemon_with_hello_world();
    publish(
        &d,
        "hello_world",
        "busy-child",
        "steps:\n  - name: Works\n    uses: script\n    with: { run: \"echo start; sleep 2; echo done\" }\n",
    );
    publish(
        &d,
        "hello_world",
        "gated-child",
        "steps:\n  - type: wait\n    requires_approval_from: { ldap_groups: [release-managers] }\n  - uses: noop\n",
    );
    publish(
        &d,
        "hello_world",
        "fan-out",
        "steps:\n  - type: workflow\n    target: /projects/hello_world/workflows/busy-child\n    run_as: parallel\n    property_overrides: [{ n: 1 }, { n: 2 }]\n  - type: workflow\n    target: /projects/hello_world/workflows/gated-child\n",
    );
    let id = start(&d, "/projects/hello_world/workflows/fan-out", json!({}));
    let children = |d: &Daemon, path: &str| -> Vec<String> {
        let run = d.wait_for(&id, "children", |r| {
            try_step(r, path)["outputs"]["runs"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        });
        step(&run, path)["outputs"]["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    // Killed while the busy children run.
    let busy = children(&d, "1");
    for child in &busy {
        d.wait_for(child, "running", |r| {
            try_step(r, "1")["status"] == "running"
        });
    }
    d.restart();
    // Killed again while the gated child waits.
    let gated = children(&d, "2");
    d.wait_status(&gated[0], "waiting");
    d.restart();
    d.wait_status(&gated[0], "waiting");
    let (status, body) = d.post(
        JANE,
        &format!("/api/v1/runs/{}/steps/1/approve", gated[0]),
        json!({"comment": "go"}),
    );
    assert_eq!(status, 200, "{body:#}");
    let run = d.wait_for(&id, "finished", |r| {
        r["status"] == "succeeded" || r["status"] == "failed"
    });
    assert_eq!(run["status"], "succeeded", "{run:#}");
    for child in &busy {
        let (status, logs) = d.call(
            Some(JANE),
            "GET",
            &format!("/api/v1/runs/{child}/logs"),
            None,
        );
        assert_eq!(status, 200);
        let text = logs.to_string();
        // Run again once after the kill, never by two drivers at once.
        assert_eq!(text.matches("done").count(), 1, "{child}: {logs:#}");
        assert!(text.matches("start").count() <= 2, "{child}: {logs:#}");
    }
    let gate = d.get(&format!("/api/v1/runs/{}", gated[0]));
    assert_eq!(gate["status"], "succeeded", "{gate:#}");
    assert_eq!(
        step(&gate, "1")["approved_by"],
        "jane@example.com",
        "{gate:#}"
    );
}

#[test]
fn a_workflow_step_that_times_out_cancels_its_child_runs() {
    let (_sb, d) = daemon_with_hello_world();
    publish(
        &d,
        "hello_world",
        "sleepy-child",
        "steps:\n  - uses: script\n    with: { run: \"sleep 60\" }\n",
    );
    publish(
        &d,
        "hello_world",
        "impatient",
        "steps:\n  - name: Stage\n    run_as: sequential\n    timeout: 2s\n    children:\n      - type: workflow\n        target: /projects/hello_world/workflows/sleepy-child\n        run_as: parallel\n        property_overrides: [{ n: 1 }, { n: 2 }]\n",
    );
    let id = start(&d, "/projects/hello_world/workflows/impatient", json!({}));
    let run = d.wait_for(&id, "finished", |r| r["status"] == "failed");
    assert!(
        step(&run, "1")["error"]
            .as_str()
            .unwrap()
            .contains("timed out after 2s"),
        "{run:#}"
    );
    let children: Vec<String> = step(&run, "1.1")["outputs"]["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(children.len(), 2, "{run:#}");
    for child in &children {
        let child = d.wait_status(child, "cancelled");
        assert_eq!(step(&child, "1")["status"], "cancelled", "{child:#}");
    }
}

#[test]
fn sigterm_stops_programs_exits_zero_and_the_run_resumes_at_the_next_start() {
    let (sb, mut d) = daemon_with_hello_world();
    // A sleep no other test runs, to find its process by.
    publish(
        &d,
        "hello_world",
        "long",
        "steps:\n  - uses: script\n    with: { run: \"echo begun; sleep 3.0173\" }\n",
    );
    let id = start(&d, "/projects/hello_world/workflows/long", json!({}));
    d.wait_for(&id, "running", |r| try_step(r, "1")["status"] == "running");
    let sleeping = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|p| {
            std::fs::read(p.path().join("cmdline"))
                .is_ok_and(|c| c.split(|&b| b == 0).any(|arg| arg == b"3.0173"))
        })
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !sleeping() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(sleeping(), "the program never started");
    let status = d.terminate();
    assert!(status.success(), "{status:?}");
    assert!(!sleeping(), "the program outlived the daemon");
    assert!(sb.path("data/stopped-cleanly").exists());

    d.start_again();
    let run = d.wait_for(&id, "finished", |r| {
        r["status"] == "succeeded" || r["status"] == "failed"
    });
    assert_eq!(run["status"], "succeeded", "{run:#}");
    // A clean stop is not a crash: nothing counted towards the crash-loop guard.
    assert!(run.get("interruptions").is_none(), "{run:#}");
    assert!(!sb.path("data/stopped-cleanly").exists());
}

#[test]
fn event_streams_of_a_waiting_run_end_when_their_clients_go() {
    use std::io::{Read, Write};
    let (_sb, d) = daemon_with_hello_world();
    publish(
        &d,
        "hello_world",
        "parked",
        "steps:\n  - type: wait\n  - uses: noop\n",
    );
    let id = start(&d, "/projects/hello_world/workflows/parked", json!({}));
    d.wait_status(&id, "waiting");
    let open = |d: &Daemon| -> u64 {
        let (_, text) = d.call(Some(JANE), "GET", "/metrics", None);
        text.as_str()
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("wasmops_event_streams "))
            .unwrap()
            .parse()
            .unwrap()
    };
    for _ in 0..20 {
        let mut s = std::net::TcpStream::connect(d.url.trim_start_matches("http://")).unwrap();
        write!(
            s,
            "GET /api/v1/runs/{id}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {JANE}\r\n\r\n"
        )
        .unwrap();
        let mut first = [0u8; 64];
        let _ = s.read(&mut first).unwrap();
        // The client goes away while the run still waits.
    }
    let started = std::time::Instant::now();
    while open(&d) > 0 && started.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(open(&d), 0, "event streams outlived their clients");
}

#[test]
fn runs_list_shows_one_page_filtered_by_the_store_locally_and_from_the_daemon() {
    let (sb, d) = daemon_with_hello_world();
    publish(&d, "hello_world", "fine", "steps:\n  - uses: noop\n");
    publish(
        &d,
        "hello_world",
        "broken",
        "steps:\n  - uses: script\n    with: { run: \"exit 3\" }\n",
    );
    let fine = "/projects/hello_world/workflows/fine";
    let broken = "/projects/hello_world/workflows/broken";
    let mut ids = Vec::new();
    for workflow in [fine, broken, fine] {
        let id = start(&d, workflow, json!({}));
        let expected = if workflow == fine {
            "succeeded"
        } else {
            "failed"
        };
        d.wait_status(&id, expected);
        ids.push(id);
    }

    let newest = d.cli(&["runs", "list", "--limit", "2"]);
    assert_eq!(newest.code, 0, "{}", newest.stderr);
    assert_eq!(newest.stdout.lines().count(), 2, "{}", newest.stdout);
    assert!(newest.stdout.starts_with(&ids[2]), "{}", newest.stdout);
    assert!(newest.stderr.contains("--all"), "{}", newest.stderr);

    let failed = d.cli(&["runs", "list", "--status", "failed", "--output", "json"]);
    let failed: Value = serde_json::from_str(&failed.stdout).unwrap();
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed:#}");
    assert_eq!(failed[0]["id"], ids[1].as_str());

    let of_fine = d.cli(&["runs", "list", "--workflow", fine, "--all"]);
    assert_eq!(of_fine.stdout.lines().count(), 2, "{}", of_fine.stdout);
    assert!(of_fine.stderr.is_empty(), "{}", of_fine.stderr);

    let wrong = d.cli(&["runs", "list", "--status", "finished"]);
    assert_ne!(wrong.code, 0);
    assert!(
        wrong.stderr.contains("unknown status `finished`"),
        "{}",
        wrong.stderr
    );
    let too_many = d.cli(&["runs", "list", "--limit", "5000"]);
    assert_ne!(too_many.code, 0);

    // The same, read from the data directory by a process of its own once the daemon is gone.
    let data = d.data.to_string_lossy().into_owned();
    drop(d);
    let local = sb.wasmops(&[
        "runs",
        "list",
        "--data",
        &data,
        "--status",
        "succeeded",
        "--limit",
        "1",
    ]);
    assert_eq!(local.code, 0, "{}", local.stderr);
    assert_eq!(local.stdout.lines().count(), 1, "{}", local.stdout);
    assert!(local.stdout.starts_with(&ids[2]), "{}", local.stdout);
    assert!(local.stderr.contains("--all"), "{}", local.stderr);
    let wrong = sb.wasmops(&["runs", "list", "--status", "finished"]);
    assert!(
        wrong.stderr.contains("unknown status `finished`"),
        "{}",
        wrong.stderr
    );
}

/// A project whose template and property both say `version`, and whose `flaky` action fails
/// while `fail` is set.
fn versioned_project(version: &str, fail: bool) -> String {
    format!(
        r#"project: snap
properties: {{ greeting: "{version}" }}
templates:
  box:
    actions:
      default:
        uses: script
        with:
          run: echo "summary=template {version} says {{{{ properties.greeting }}}}" >> "$WASMOPS_OUTPUT"
      flaky:
        uses: script
        with:
          run: |
            echo "flaky {version} says {{{{ properties.greeting }}}}"
            echo "summary=flaky {version} says {{{{ properties.greeting }}}}" >> "$WASMOPS_OUTPUT"
            {}
environments:
  dev:
    assets:
      box: {{ template: box }}
"#,
        if fail { "exit 1" } else { "true" }
    )
}

#[test]
fn resume_and_retry_plan_against_the_projects_the_run_started_with() {
    let sb = Sandbox::new();
    let d = Daemon::start(sb.dir.path());
    let apply = |version: &str, fail: bool| {
        sb.write("snap/project.yaml", &versioned_project(version, fail));
        let applied = d.cli(&["apply", &sb.path("snap").display().to_string()]);
        assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    };
    apply("one", true);
    let target = "/projects/snap/environments/dev/assets/box";
    publish(
        &d,
        "snap",
        "gated",
        &format!(
            "steps:\n  - type: wait\n    requires_approval_from: {{ user_names: [jane@example.com] }}\n  - type: change\n    target: {target}\n    action: default\n"
        ),
    );
    publish(
        &d,
        "snap",
        "flaky",
        &format!("steps:\n  - type: change\n    target: {target}\n    action: flaky\n"),
    );
    let gated = start(&d, "/projects/snap/workflows/gated", json!({}));
    d.wait_status(&gated, "waiting");
    let flaky = start(&d, "/projects/snap/workflows/flaky", json!({}));
    d.wait_status(&flaky, "failed");
    let said = |d: &Daemon| {
        let lines = d.get(&format!("/api/v1/runs/{flaky}/logs?step=1.1"));
        let lines: Vec<String> = lines
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|l| l["text"].as_str().map(str::to_string))
            .filter(|l| l.starts_with("flaky"))
            .collect();
        lines
    };
    assert_eq!(said(&d), ["flaky one says one"]);

    // The project changes under both runs, and the daemon restarts: the waiting run resumes.
    apply("two", false);
    let mut d = d;
    d.restart();
    let (status, body) = d.decide(
        JANE,
        &format!("/api/v1/runs/{gated}/steps/1/approve"),
        json!({}),
    );
    assert_eq!(status, 200, "{body:#}");
    let done = d.wait_status(&gated, "succeeded");
    assert_eq!(step(&done, "2.1")["summary"], "template one says one");

    let retried = d.cli(&["runs", "retry", &flaky]);
    assert_eq!(retried.code, 0, "{}", retried.stderr);
    d.wait_status(&flaky, "failed");
    assert_eq!(said(&d), ["flaky one says one", "flaky one says one"]);

    // A new run plans against what is applied now.
    let fresh = start(&d, "/projects/snap/workflows/flaky", json!({}));
    let fresh = d.wait_status(&fresh, "succeeded");
    assert_eq!(step(&fresh, "1.1")["summary"], "flaky two says two");
}

#[test]
fn a_reader_too_slow_for_the_events_is_told_and_made_whole_with_a_snapshot() {
    use std::io::{Read, Write};
    let (_sb, d) = daemon_with_hello_world();
    // 20,000 changes, each with a 500-byte summary (one YAML anchor): far more than the daemon
    // keeps for a reader, and than the sockets between them hold.
    let summary = "x".repeat(500);
    let children: String = (1..10_000)
        .map(|_| "      - { uses: noop, with: *big }\n")
        .collect();
    let yaml = format!(
        "steps:\n  - run_as: parallel\n    children:\n      - {{ uses: noop, with: &big {{ summary: {summary} }} }}\n{children}"
    );
    publish(&d, "hello_world", "busy", &yaml);
    let id = start(&d, "/projects/hello_world/workflows/busy", json!({}));

    // Subscribe, then read nothing while the run sends far more changes than the daemon
    // buffers for a reader.
    let mut stream = std::net::TcpStream::connect(d.url.trim_start_matches("http://")).unwrap();
    write!(
        stream,
        "GET /api/v1/runs/{id}/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {JANE}\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    d.wait_status(&id, "succeeded");

    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    // Each time it fell behind, the reader was told, and then sent the run as it was.
    let events: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    let lags = events.iter().filter(|e| **e == "lagged").count();
    assert!(lags > 0, "no lagged event in {} bytes", text.len());
    for (i, event) in events.iter().enumerate() {
        if *event == "lagged" {
            assert_eq!(events.get(i + 1), Some(&"snapshot"), "{:?}", &events[i..]);
        }
    }
    // The stream ended with the run finished, whole.
    assert!(
        matches!(events.last(), Some(&"run" | &"snapshot")),
        "{events:?}"
    );
    let last = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("data: "))
        .unwrap();
    let last: Value = serde_json::from_str(last).unwrap();
    assert_eq!(
        last["status"],
        "succeeded",
        "{}",
        &text[text.len().saturating_sub(500)..]
    );
    let run = d.get(&format!("/api/v1/runs/{id}"));
    assert_eq!(
        run["steps"][0]["children"].as_array().unwrap().len(),
        10_000
    );
}
