//! `wasmops validate`: every problem as file:line:column, with the YAML path and a suggestion.

use crate::support::{Sandbox, repo};

fn validate(sb: &Sandbox, yaml: &str) -> (i32, String) {
    let file = sb.write("wf.yaml", yaml);
    let ran = sb.wasmops(&["validate", file.to_str().unwrap()]);
    (ran.code, ran.stderr + &ran.stdout)
}

#[test]
fn typos_and_missing_keys_come_with_line_column_and_a_fix() {
    let sb = Sandbox::new();
    let (code, out) = validate(
        &sb,
        "name: demo\nsteps:\n  - name: Rollout\n    run-as: parallel\n    children:\n      - uses: noop\n  - name: Stage without run_as\n    children:\n      - uses: noop\n  - name: Lonely\n  - type: stagee\n    children: []\n",
    );
    assert_eq!(code, 2);
    for expected in [
        "wf.yaml:4:5: unknown key `run-as` (at `steps[0].run-as`)\n    hint: did you mean `run_as`?",
        "wf.yaml:7:5: this step has `children` but no `run_as` (at `steps[1]`)\n    hint: add `run_as: sequential` or `run_as: parallel`",
        "wf.yaml:10:5: cannot tell what kind of step this is (at `steps[2]`)",
        "wf.yaml:11:11: unknown step type `stagee` (at `steps[3].type`)\n    hint: did you mean `stage`?",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
}

#[test]
fn references_to_unknown_steps_and_plugins_are_caught() {
    let sb = Sandbox::new();
    let (code, out) = validate(
        &sb,
        "steps:\n  - id: plan\n    uses: noop\n  - uses: scrpt\n    with: { run: \"echo {{ steps.plna.outputs.x }}\" }\n",
    );
    assert_eq!(code, 2);
    assert!(out.contains("wf.yaml:4:5: plugin `scrpt` is not installed (at `steps[1]`)\n    hint: did you mean `script`?"), "{out}");
    assert!(
        out.contains("`with.run` refers to `steps.plna`, but no step has `id: plna`")
            && out.contains("did you mean `plan`?"),
        "{out}"
    );
}

#[test]
fn wrong_value_types_are_explained() {
    let sb = Sandbox::new();
    let (code, out) = validate(
        &sb,
        "steps:\n  - uses: noop\n    timeout: soon\n    retry: { attempts: many }\n    with: [1, 2]\n",
    );
    assert_eq!(code, 2);
    assert!(
        out.contains("wf.yaml:3:14: `soon` is not a duration"),
        "{out}"
    );
    assert!(
        out.contains("wf.yaml:4:24: `attempts` is a whole number, found a string"),
        "{out}"
    );
    assert!(
        out.contains("wf.yaml:5:12: `with` is a mapping of settings, found a list"),
        "{out}"
    );
}

#[test]
fn the_examples_are_valid() {
    let sb = Sandbox::new();
    let project = repo().join("examples/hello_world");
    for entry in std::fs::read_dir(project.join("workflows")).unwrap() {
        let file = entry.unwrap().path();
        let ran = sb.wasmops(&[
            "validate",
            file.to_str().unwrap(),
            "--project",
            project.to_str().unwrap(),
        ]);
        assert_eq!(ran.code, 0, "{}: {}", file.display(), ran.stderr);
        assert!(ran.stdout.contains("valid"), "{}", ran.stdout);
    }
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_some_and(|e| e == "yaml") {
            let ran = sb.wasmops(&["validate", file.to_str().unwrap()]);
            assert_eq!(ran.code, 0, "{}: {}", file.display(), ran.stderr);
        }
    }
}

#[test]
fn a_plugin_checks_its_with_block_before_anything_runs() {
    let sb = Sandbox::new();
    let (code, out) = validate(
        &sb,
        "steps:\n  - uses: noop\n  - uses: noop\n    with:\n      sumary: typo\n",
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("wf.yaml:5:7: invalid `with` for noop: unknown field `sumary`"),
        "{out}"
    );
    // A block with a template is checked once it is rendered, when the step runs.
    let (code, out) = validate(
        &sb,
        "properties: { s: x }\nsteps:\n  - uses: noop\n    with: { summary: \"{{ s }}\" }\n",
    );
    assert_eq!(code, 0, "{out}");
    // `run` checks too, and runs nothing.
    let file = sb.write(
        "bad.yaml",
        "steps:\n  - uses: noop\n    with: { sumary: typo }\n",
    );
    let ran = sb.wasmops(&["run", file.to_str().unwrap()]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("unknown field `sumary`"),
        "{}",
        ran.stderr
    );
}

#[test]
fn an_approval_binds_only_to_a_step_that_exists() {
    let sb = Sandbox::new();
    let (code, out) = validate(
        &sb,
        "steps:\n  - id: plan\n    uses: noop\n  - type: wait\n    approves: plna\n",
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("wf.yaml:4:5: `approves: plna` names no step")
            && out.contains("did you mean `plan`?"),
        "{out}"
    );
}

#[test]
fn applying_a_project_checks_its_template_actions_with_blocks() {
    let sb = Sandbox::new();
    sb.write(
        "proj/project.yaml",
        "project: p\ntemplates:\n  box:\n    actions:\n      default:\n        uses: noop\n        with: { sumary: typo }\nenvironments:\n  dev:\n    assets:\n      box: { template: box }\n",
    );
    let d = crate::daemon_support::Daemon::start(sb.dir.path());
    // No workflow runs the action yet: the apply itself refuses it, at its line.
    let applied = d.cli(&["apply", sb.path("proj").to_str().unwrap()]);
    assert_ne!(applied.code, 0, "{}", applied.stdout);
    assert!(
        applied.stderr.contains("project.yaml:7:")
            && applied
                .stderr
                .contains("invalid `with` for noop: unknown field `sumary`"),
        "{}",
        applied.stderr
    );
    sb.write(
        "proj/project.yaml",
        "project: p\ntemplates:\n  box:\n    actions:\n      default:\n        uses: noop\n        with: { summary: fine }\nenvironments:\n  dev:\n    assets:\n      box: { template: box }\n",
    );
    let applied = d.cli(&["apply", sb.path("proj").to_str().unwrap()]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
}

#[test]
fn a_template_actions_with_block_is_checked_in_its_project_file() {
    let sb = Sandbox::new();
    sb.write(
        "proj/project.yaml",
        "project: p\ntemplates:\n  box:\n    actions:\n      default:\n        uses: noop\n        with: { sumary: typo }\nenvironments:\n  dev:\n    assets:\n      box: { template: box }\n",
    );
    let file = sb.write(
        "wf.yaml",
        "steps:\n  - target: /projects/p/environments/dev/assets/box\n    action: default\n",
    );
    let ran = sb.wasmops(&[
        "validate",
        file.to_str().unwrap(),
        "--project",
        sb.path("proj").to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 2, "{}{}", ran.stdout, ran.stderr);
    assert!(
        ran.stderr.contains("project.yaml:7:")
            && ran
                .stderr
                .contains("invalid `with` for noop: unknown field `sumary`"),
        "{}",
        ran.stderr
    );
}
