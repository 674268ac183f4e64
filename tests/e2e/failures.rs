//! Failure semantics and bad input at run time: every failure names the step and the reason,
//! is recorded, and exits non-zero without a panic.

use crate::support::{Sandbox, step};

#[test]
fn a_failed_step_fails_its_sequential_stage_and_the_run() {
    let sb = Sandbox::new();
    let (code, run) = sb.run_json(
        r#"
steps:
  - { name: ok, uses: noop }
  - name: breaks
    uses: script
    with: { run: "echo 'disk full on /var' >&2; exit 3" }
  - { name: never, uses: noop }
"#,
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(run["status"], "failed");
    let failed = step(&run, "2");
    assert_eq!(failed["status"], "failed");
    let error = failed["error"].as_str().unwrap();
    assert!(
        error.contains("exit code 3") && error.contains("disk full on /var"),
        "{error}"
    );
    assert_eq!(
        step(&run, "3")["status"],
        "pending",
        "steps after a failure never start"
    );
}

#[test]
fn parallel_siblings_finish_before_the_stage_fails() {
    let sb = Sandbox::new();
    let (code, run) = sb.run_json(
        r#"
steps:
  - name: fan out
    run_as: parallel
    children:
      - { name: fails fast, uses: noop, with: { fail: "boom" } }
      - { name: slow sibling, uses: script, with: { run: "sleep 0.5; echo finished" } }
"#,
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(step(&run, "1")["status"], "failed");
    assert_eq!(step(&run, "1.1")["error"], "boom");
    assert_eq!(step(&run, "1.2")["status"], "succeeded");
    assert_eq!(step(&run, "1.2")["summary"], "finished");
}

#[test]
fn continue_on_error_lets_the_run_go_on() {
    let sb = Sandbox::new();
    let (code, run) = sb.run_json(
        "steps:\n  - { uses: noop, continue_on_error: true, with: { fail: nope } }\n  - { uses: noop }\n",
        &[],
    );
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(step(&run, "1")["status"], "failed");
    assert_eq!(step(&run, "2")["status"], "succeeded");
}

#[test]
fn a_step_timeout_kills_the_program_and_fails_the_step() {
    let sb = Sandbox::new();
    let started = std::time::Instant::now();
    let (code, run) = sb.run_json(
        "steps:\n  - name: hangs\n    timeout: 1s\n    uses: script\n    with: { run: \"sleep 60 & sleep 60\" }\n",
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        started.elapsed().as_secs() < 30,
        "the run waited for the sleeping program"
    );
    let error = step(&run, "1")["error"].as_str().unwrap();
    assert!(error.contains("timed out after 1s"), "{error}");
}

#[test]
fn what_a_program_printed_before_its_timeout_is_kept() {
    let sb = Sandbox::new();
    for _ in 0..3 {
        let (code, run) = sb.run_json(
            "steps:\n  - name: hangs\n    timeout: 1s\n    uses: script\n    with: { run: \"echo hello; echo world >&2; sleep 60\" }\n",
            &[],
        );
        assert_eq!(code, 1, "{run:#}");
        let logs = sb.wasmops(&["runs", "logs", run["id"].as_str().unwrap()]);
        assert!(
            logs.stdout.contains("hello") && logs.stdout.contains("world"),
            "{}",
            logs.stdout
        );
    }
}

#[test]
fn a_million_lines_are_stored_in_order_up_to_the_cap() {
    let sb = Sandbox::new();
    let (code, run) = sb.run_json(
        "steps:\n  - uses: script\n    with: { run: \"seq 1 1000000\" }\n",
        &[],
    );
    assert_eq!(code, 0, "{run:#}");
    let logs = sb.wasmops(&["runs", "logs", run["id"].as_str().unwrap()]);
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    let numbers: Vec<u64> = logs
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().last()?.parse().ok())
        .collect();
    assert!(numbers.len() > 10_000, "{} lines", numbers.len());
    assert!(
        numbers.iter().zip(1..).all(|(n, expected)| *n == expected),
        "lines out of order or missing"
    );
    assert!(
        logs.stdout.contains("log truncated at"),
        "no truncation notice"
    );
}

#[test]
fn a_trapping_plugin_fails_its_step_and_the_next_run_still_works() {
    let sb = Sandbox::new();
    let (code, run) = sb.run_json(
        "steps:\n  - name: crashes\n    uses: noop\n    with: { panic: \"index out of bounds\" }\n",
        &[],
    );
    assert_eq!(code, 1);
    let error = step(&run, "1")["error"].as_str().unwrap();
    assert!(error.contains("plugin `noop` crashed"), "{error}");
    assert!(
        error.contains("wasm trap") && error.contains("unreachable"),
        "the trap's reason comes first, then frames: {error}"
    );
    let logs = sb.wasmops(&["runs", "logs", run["id"].as_str().unwrap()]);
    assert!(
        logs.stdout.contains("index out of bounds"),
        "{}",
        logs.stdout
    );
    let (code, _) = sb.run_json("steps:\n  - uses: noop\n", &[]);
    assert_eq!(code, 0);
}

#[test]
fn an_unknown_template_variable_names_the_step_and_the_key() {
    let sb = Sandbox::new();
    let (code, run) = sb.run_json(
        "steps:\n  - id: plan\n    uses: noop\n    with: { outputs: { to_add: 3 } }\n  - name: apply\n    uses: script\n    with: { run: \"echo {{ steps.plan.outputs.to_ad }}\" }\n",
        &[],
    );
    assert_eq!(code, 1);
    let error = step(&run, "2")["error"].as_str().unwrap();
    assert_eq!(
        error,
        "template error in `with.run`: unknown variable `steps.plan.outputs.to_ad`; did you mean `to_add`?"
    );
}

#[test]
fn a_template_that_grows_without_bound_fails_its_step_by_itself() {
    let sb = Sandbox::new();
    let (code, run) = sb.run_json(
        "steps:\n  - name: grows\n    uses: script\n    with:\n      run: \"echo {% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}\"\n    continue_on_error: true\n  - name: after\n    uses: script\n    with: { run: \"echo {{ 6 * 7 }}\" }\n",
        &[],
    );
    assert_eq!(code, 0, "{run:#}");
    let error = step(&run, "1")["error"].as_str().unwrap();
    assert_eq!(
        error,
        "template error in `with.run`: the template needs more than 64 MiB of memory"
    );
    assert_eq!(step(&run, "2")["status"], "succeeded", "{run:#}");
}

#[test]
fn logs_to_a_pipe_are_plain_text() {
    let sb = Sandbox::new();
    let file = sb.write("workflow.yaml", "steps:\n  - uses: noop\n");
    let ran = sb.wasmops_with_env(
        &["run", file.to_str().unwrap()],
        &[("WASMOPS_LOG", "debug")],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stderr.contains("DEBUG"), "no log lines: {}", ran.stderr);
    assert!(!ran.stderr.contains('\u{1b}'), "colour codes in a pipe");
}

#[test]
fn bad_input_is_refused_before_anything_runs() {
    let sb = Sandbox::new();
    let file = sb.write("w.yaml", "steps:\n  - name: deploy\n    uses: terraformm\n");
    let ran = sb.wasmops(&["run", file.to_str().unwrap()]);
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr
            .contains("w.yaml:2:5: plugin `terraformm` is not installed"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);

    let file = sb.write("broken.yaml", "steps:\n  - name: [unclosed\n");
    let ran = sb.wasmops(&["run", file.to_str().unwrap()]);
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr.contains("broken.yaml:") && ran.stderr.contains("invalid YAML"),
        "{}",
        ran.stderr
    );

    let ran = sb.wasmops(&["run", "missing.yaml"]);
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr
            .contains("missing.yaml: cannot read the file: No such file or directory"),
        "{}",
        ran.stderr
    );

    // The workflow's own error is reported even when a secret the config names is not set.
    let config = sb.write(
        "wasmops.toml",
        "[secrets]\ntoken = \"env:WASMOPS_TEST_UNSET\"\n",
    );
    let ran = sb.wasmops(&[
        "run",
        file.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 2);
    assert!(ran.stderr.contains("invalid YAML"), "{}", ran.stderr);
}

#[test]
fn secrets_are_redacted_from_logs_outputs_and_the_store() {
    let sb = Sandbox::new();
    let config = sb.write(
        "wasmops.toml",
        "[secrets]\napi_token = \"tok-9f8e7d6c5b\"\n",
    );
    let (code, run) = sb.run_json(
        r#"
steps:
  - uses: script
    with:
      run: |
        echo "token is {{ secrets.api_token }}"
        echo "b64 $(printf %s '{{ secrets.api_token }}' | base64)"
        echo "leak={{ secrets.api_token }}" >> "$WASMOPS_OUTPUT"
"#,
        &["--config", config.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{run:#}");
    let text = run.to_string();
    assert!(!text.contains("tok-9f8e7d6c5b"), "{text}");
    assert_eq!(step(&run, "1")["outputs"]["leak"], "***");
    let logs = sb.wasmops(&["runs", "logs", run["id"].as_str().unwrap()]);
    assert!(logs.stdout.contains("token is ***"), "{}", logs.stdout);
    assert!(
        !logs.stdout.contains("tok-9f8e7d6c5b") && !logs.stdout.contains("dG9rLTlmOGU3ZDZjNWI"),
        "{}",
        logs.stdout
    );
    // Nothing in the sled files holds the value in clear.
    for entry in walk(&sb.path("data")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(14).any(|w| w == b"tok-9f8e7d6c5b"),
            "secret in clear in {}",
            entry.display()
        );
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
