//! Change steps against projects: targets, template actions and property merging.

use crate::support::{Sandbox, repo, step};
use serde_json::json;

fn hello_world() -> String {
    repo().join("examples/hello_world").display().to_string()
}

#[test]
fn targets_expand_to_one_child_per_target_with_each_assets_properties() {
    let sb = Sandbox::new();
    let file = repo().join("examples/hello_world/workflows/preflight.yaml");
    let ran = sb.wasmops(&[
        "run",
        file.to_str().unwrap(),
        "--project",
        &hello_world(),
        "--output",
        "json",
    ]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let run = ran.json();
    let change = step(&run, "1.1");
    assert_eq!(change["kind"], "change");
    assert_eq!(change["run_as"], "parallel");
    let targets: Vec<&str> = change["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        [
            "/projects/hello_world/environments/dev/assets/managed_server",
            "/projects/hello_world/environments/staging/assets/managed_server",
            "/projects/hello_world/environments/prod/assets/managed_server",
        ]
    );
    // Each target ran the template's disk_check playbook with its own properties, as the
    // playbook's own messages in each step's log say.
    let logs = sb
        .wasmops(&["runs", "logs", run["id"].as_str().unwrap()])
        .stdout;
    let said = |path: &str, text: &str| {
        logs.lines()
            .any(|l| l.starts_with(&format!("[{path}] ")) && l.contains(text))
    };
    assert!(said("1.1.1.1", "dev-web-01.example.com: / at"), "{logs}");
    assert!(
        said("1.1.3.1", "(threshold 90%)"),
        "prod's asset threshold wins: {logs}"
    );
    assert!(
        said("1.1.2.1", "(threshold 95%)"),
        "staging inherits the project's: {logs}"
    );
    assert_eq!(
        step(&run, "1.1.1.1")["summary"],
        "ok=2 changed=0 unreachable=0 failed=0"
    );
}

#[test]
fn a_templated_target_follows_the_override_and_multi_step_actions_run_in_order() {
    let sb = Sandbox::new();
    let file = repo().join("examples/hello_world/workflows/backup-environment.yaml");
    let ran = sb.wasmops(&[
        "run",
        file.to_str().unwrap(),
        "--project",
        &hello_world(),
        "--set",
        "env=staging",
        "--output",
        "json",
    ]);
    assert_eq!(ran.code, 0, "{}{}", ran.stdout, ran.stderr);
    let run = ran.json();
    assert_eq!(step(&run, "1")["name"], "Backup the staging environment");
    assert_eq!(
        step(&run, "1")["target"],
        "/projects/hello_world/environments/staging/assets/managed_server"
    );
    assert_eq!(
        step(&run, "1.1")["summary"],
        "dumped stg-web-01.example.com"
    );
    assert!(
        step(&run, "1.2")["summary"]
            .as_str()
            .unwrap()
            .starts_with("uploaded backup-stg-web-01.example.com.tar.gz")
    );
}

#[test]
fn properties_merge_project_then_environment_then_asset_then_overrides() {
    let sb = Sandbox::new();
    sb.write(
        "proj/project.yaml",
        r#"
project: shop
properties: { a: project, b: project, c: project, d: project, nested: { x: project, y: project } }
templates:
  box:
    actions:
      show:
        uses: script
        with:
          run: |
            cat >> "$WASMOPS_OUTPUT" <<'JSON'
            props={{ properties | tojson }}
            JSON
environments:
  prod:
    properties: { b: environment, c: environment, d: environment, nested: { y: environment } }
    assets:
      web: { template: box, properties: { c: asset, d: asset } }
"#,
    );
    let (code, run) = sb.run_json(
        "steps:\n  - target: /projects/shop/environments/prod/assets/web\n    action: show\n",
        &[
            "--project",
            sb.path("proj").to_str().unwrap(),
            "--set",
            "d=override",
        ],
    );
    assert_eq!(code, 0, "{run:#}");
    let props: serde_json::Value =
        serde_json::from_str(step(&run, "1.1")["outputs"]["props"].as_str().unwrap()).unwrap();
    assert_eq!(
        props,
        json!({"a": "project", "b": "environment", "c": "asset", "d": "override", "nested": {"x": "project", "y": "environment"}})
    );
}

#[test]
fn a_missing_target_is_an_error_with_a_location_and_a_suggestion() {
    let sb = Sandbox::new();
    let file = sb.write("w.yaml", "steps:\n  - name: deploy\n    target: /projects/hello_world/environments/prd/assets/managed_server\n    action: default\n");
    let ran = sb.wasmops(&[
        "validate",
        file.to_str().unwrap(),
        "--project",
        &hello_world(),
    ]);
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr
            .contains("w.yaml:2:5: environment `prd` not found; did you mean `prod`?"),
        "{}",
        ran.stderr
    );
    let file = sb.write("w2.yaml", "steps:\n  - target: /projects/hello_world/environments/dev/assets/managed_server\n    action: restart\n");
    let ran = sb.wasmops(&[
        "validate",
        file.to_str().unwrap(),
        "--project",
        &hello_world(),
    ]);
    assert!(ran.stderr.contains("action `restart` not found in template `managed_server`; known: backup, default, disk_check"), "{}", ran.stderr);
}
