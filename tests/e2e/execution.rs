//! How runs execute: ordering, parallelism, outputs, conditions, retries, the text and JSON views.

use crate::support::{Sandbox, step, time};
use serde_json::json;

#[test]
fn sequential_children_run_one_after_another_and_parallel_children_overlap() {
    let sb = Sandbox::new();
    let (code, run) = sb.run_json(
        r#"
name: ordering
steps:
  - name: In order
    run_as: sequential
    children:
      - { name: first, uses: script, with: { run: "sleep 0.4" } }
      - { name: second, uses: script, with: { run: "sleep 0.4" } }
  - name: Together
    run_as: parallel
    children:
      - { name: us, uses: script, with: { run: "sleep 1" } }
      - { name: eu, uses: script, with: { run: "sleep 1" } }
      - { name: ap, uses: script, with: { run: "sleep 1" } }
"#,
        &[],
    );
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["status"], "succeeded");
    assert!(time(step(&run, "1.1"), "finished_at") <= time(step(&run, "1.2"), "started_at"));
    // Every pair of parallel children overlaps: each started before the other finished.
    for a in ["2.1", "2.2", "2.3"] {
        for b in ["2.1", "2.2", "2.3"] {
            if a != b {
                assert!(
                    time(step(&run, a), "started_at") < time(step(&run, b), "finished_at"),
                    "{a} and {b} did not overlap"
                );
            }
        }
    }
    // Three one-second sleeps side by side take about one second, not three.
    assert!(
        step(&run, "2")["duration_ms"].as_u64().unwrap() < 2_500,
        "{:#}",
        step(&run, "2")
    );
}

#[test]
fn more_parallel_steps_than_plugin_calls_at_once_wait_their_turn() {
    // 160 steps each holding a plugin call while their program sleeps: past the 128 calls
    // that run at once, the rest wait for a turn instead of failing on a full pool.
    let children: String = (0..160)
        .map(|i| {
            format!("      - {{ name: s{i}, uses: script, with: {{ run: \"sleep 0.5\" }} }}\n")
        })
        .collect();
    let sb = Sandbox::new();
    let (code, run) = sb.run_json(
        &format!(
            "name: wide\nsteps:\n  - name: Wide\n    run_as: parallel\n    children:\n{children}"
        ),
        &[],
    );
    assert_eq!(code, 0, "{run:#}");
    for i in 1..=160 {
        assert_eq!(
            step(&run, &format!("1.{i}"))["status"],
            "succeeded",
            "{run:#}"
        );
    }
}

#[test]
fn outputs_flow_into_later_steps_and_conditions_record_the_branch_not_taken() {
    let sb = Sandbox::new();
    let (code, run) = sb.run_json(
        r#"
steps:
  - id: plan
    name: Plan
    uses: script
    with:
      run: |
        echo "to_add=3" >> "$WASMOPS_OUTPUT"
        echo "to_destroy=0" >> "$WASMOPS_OUTPUT"
        echo "summary=3 to add, 0 to destroy" >> "$WASMOPS_OUTPUT"
  - name: Check destroys
    if: "{{ steps.plan.outputs.to_destroy | int > 0 }}"
    then:
      - { name: Page someone, uses: noop }
    else:
      - id: apply
        name: Apply
        uses: script
        with:
          shell: python
          run: print("adding {{ steps.plan.outputs.to_add }}")
"#,
        &[],
    );
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(step(&run, "1")["summary"], "3 to add, 0 to destroy");
    assert_eq!(
        step(&run, "1")["outputs"],
        json!({"to_add": "3", "to_destroy": "0", "exit_code": 0})
    );
    assert_eq!(step(&run, "2")["outputs"]["branch"], "else");
    assert_eq!(step(&run, "2.1")["status"], "skipped");
    assert_eq!(step(&run, "2.1")["branch"], "then");
    assert_eq!(step(&run, "2.2")["status"], "succeeded");
    assert_eq!(step(&run, "2.2")["summary"], "adding 3");
}

#[test]
fn property_overrides_and_when_select_steps() {
    let sb = Sandbox::new();
    let yaml = r#"
properties: { env: dev }
steps:
  - name: "Deploy {{ env }}"
    uses: script
    with: { run: "echo deploying to {{ env }}" }
  - name: Prod only
    when: "env == 'prod'"
    uses: noop
"#;
    let (_, run) = sb.run_json(yaml, &[]);
    assert_eq!(step(&run, "1")["name"], "Deploy dev");
    assert_eq!(step(&run, "2")["status"], "skipped");
    let (code, run) = sb.run_json(yaml, &["--set", "env=prod"]);
    assert_eq!(code, 0);
    assert_eq!(step(&run, "1")["summary"], "deploying to prod");
    assert_eq!(step(&run, "2")["status"], "succeeded");
    assert_eq!(run["property_overrides"], json!({"env": "prod"}));
}

#[test]
fn retry_runs_a_failing_step_again_until_it_succeeds() {
    let sb = Sandbox::new();
    let (code, run) = sb.run_json(
        r#"
steps:
  - name: Flaky
    retry: { attempts: 3, delay: 100ms }
    uses: script
    with:
      run: |
        n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count
        [ "$n" -ge 2 ] || { echo "attempt $n fails" >&2; exit 1; }
        echo "ok on attempt $n"
"#,
        &[],
    );
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(step(&run, "1")["attempts"], 2);
    assert_eq!(step(&run, "1")["summary"], "ok on attempt 2");
    let logs = sb.wasmops(&["runs", "logs", run["id"].as_str().unwrap(), "1"]);
    assert!(logs.stdout.contains("attempt 1 failed"), "{}", logs.stdout);
}

#[test]
fn text_output_shows_results_durations_and_a_parallel_timeline() {
    let sb = Sandbox::new();
    let file = sb.write(
        "deploy.yaml",
        r#"
name: multi-region-deploy
steps:
  - { name: Plan, uses: script, with: { run: "echo '3 resources to add'" } }
  - name: Apply
    run_as: parallel
    children:
      - { name: Apply US, uses: script, with: { run: "sleep 0.3; echo applied us" } }
      - { name: Apply EU, uses: script, with: { run: "sleep 0.2; echo applied eu" } }
  - { name: Verify, uses: noop, with: { summary: "HTTP 200 OK" } }
"#,
    );
    let ran = sb.wasmops(&["run", file.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let out = &ran.stdout;
    for expected in [
        "Workflow: multi-region-deploy",
        "Status:   Completed ✓",
        "Step Results:",
        "→ 3 resources to add",
        "2.1. Apply US",
        "→ HTTP 200 OK",
        "Total Duration:",
        "Triggered By:   Manual",
        "Execution Timeline",
        "Apply US started ─┬─ (parallel)",
        "Apply EU started ─┘",
        "Verify completed",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    let id = out
        .lines()
        .find_map(|l| l.strip_prefix("Run ID:   "))
        .unwrap()
        .trim();
    assert!(regex_like_run_id(id), "{id}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("1. Plan") && l.contains("✓  Completed")),
        "{out}"
    );

    // The run is durable: shown again from the sled store by a new process.
    let again = sb.wasmops(&["runs", "show", id]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stdout.contains("→ HTTP 200 OK"), "{}", again.stdout);
    let listed = sb.wasmops(&["runs", "list"]);
    assert!(listed.stdout.contains(id), "{}", listed.stdout);
}

#[test]
fn json_output_has_the_documented_shape() {
    let sb = Sandbox::new();
    let (code, run) = sb.run_json("name: shape\nsteps:\n  - run_as: sequential\n    children:\n      - { id: a, uses: noop }\n", &[]);
    assert_eq!(code, 0);
    assert!(regex_like_run_id(run["id"].as_str().unwrap()));
    for key in [
        "id",
        "workflow",
        "status",
        "trigger",
        "started_at",
        "finished_at",
        "duration_ms",
        "steps",
    ] {
        assert!(run.get(key).is_some(), "run has no `{key}`: {run:#}");
    }
    let leaf = step(&run, "1.1");
    for key in [
        "path",
        "id",
        "name",
        "kind",
        "status",
        "started_at",
        "finished_at",
        "duration_ms",
        "summary",
        "outputs",
        "children",
    ] {
        assert!(leaf.get(key).is_some(), "step has no `{key}`: {leaf:#}");
    }
    assert_eq!(leaf["kind"], "plugin");
    assert_eq!(step(&run, "1")["kind"], "stage");
    assert_eq!(run["trigger"]["kind"], "manual");
}

fn regex_like_run_id(id: &str) -> bool {
    id.len() == 12
        && id.starts_with("wfr_")
        && id[4..]
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
}
