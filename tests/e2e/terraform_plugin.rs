//! The built-in `terraform` step: plan, apply of the saved plan (bound to its digest), destroy,
//! and Terraform's own diagnostic on failure. Every test runs against the stand-in in
//! `tests/terraform` (Terraform's documented JSON formats), and again against a real
//! `terraform` when the machine has one on PATH, with the same `terraform_data` configuration.

use crate::support::{Sandbox, repo, step};
use serde_json::{Value, json};
use std::path::PathBuf;

/// The configuration both speak: three `terraform_data` resources and two outputs.
const MAIN_TF: &str = r#"variable "replicas" { default = 3 }

resource "terraform_data" "web" {
  count = var.replicas
  input = "web-${count.index}"
}

output "names" { value = terraform_data.web[*].output }

output "token" {
  value     = "s3cr3t-token-value"
  sensitive = true
}
"#;

/// The PATH each test runs under: the stand-in first; the machine's own when it has a real one.
fn terraforms() -> Vec<(&'static str, String)> {
    let system = std::env::var("PATH").unwrap_or_default();
    let standin: PathBuf = repo().join("tests/terraform");
    let mut paths = vec![("stand-in", format!("{}:{system}", standin.display()))];
    let real = std::process::Command::new("terraform")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if real {
        paths.push(("terraform", system));
    }
    paths
}

/// Runs `yaml` beside `infra/main.tf` (with `main_tf`) under `path`; exit code and run.
fn run(sb: &Sandbox, yaml: &str, main_tf: &str, path: &str) -> (i32, Value) {
    sb.write("infra/main.tf", main_tf);
    let file = sb.write("workflow.yaml", yaml);
    let ran = sb.wasmops_with_env(
        &["run", file.to_str().unwrap(), "--output", "json"],
        &[("PATH", path)],
    );
    (ran.code, ran.json())
}

const PIPELINE: &str = r#"steps:
  - id: plan
    uses: terraform
    with: { action: plan, dir: infra }
  - id: apply
    uses: terraform
    with: { action: apply, dir: infra, plan_sha256: "{{ steps.plan.outputs.plan_sha256 }}" }
  - id: destroy
    uses: terraform
    with: { action: destroy, dir: infra, vars: { replicas: 3 } }
"#;

#[test]
fn plan_apply_and_destroy_report_what_terraform_says() {
    for (which, path) in terraforms() {
        let sb = Sandbox::new();
        let (code, run) = run(&sb, PIPELINE, MAIN_TF, &path);
        assert_eq!(code, 0, "{which}: {run:#}");
        let plan = step(&run, "1");
        assert_eq!(
            plan["summary"], "3 to add, 0 to change, 0 to destroy",
            "{which}"
        );
        assert_eq!(plan["outputs"]["to_add"], 3, "{which}");
        assert_eq!(
            plan["outputs"]["plan_file"],
            "terraform/infra/wasmops.tfplan"
        );
        let digest = plan["outputs"]["plan_sha256"].as_str().unwrap();
        assert!(
            digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()),
            "{digest}"
        );

        let apply = step(&run, "2");
        assert_eq!(
            apply["summary"], "3 added, 0 changed, 0 destroyed",
            "{which}"
        );
        assert_eq!(
            apply["outputs"]["names"],
            json!(["web-0", "web-1", "web-2"]),
            "{which}"
        );
        assert_eq!(apply["outputs"]["token"], "(sensitive)", "{which}");

        let destroy = step(&run, "3");
        assert_eq!(
            destroy["summary"], "0 added, 0 changed, 3 destroyed",
            "{which}"
        );

        let logs = sb
            .wasmops(&["runs", "logs", run["id"].as_str().unwrap()])
            .stdout;
        assert!(
            !format!("{run}{logs}").contains("s3cr3t-token-value"),
            "{which}: a sensitive output was shown"
        );
    }
}

#[test]
fn an_apply_refuses_a_plan_that_is_not_the_approved_one() {
    let yaml = r#"steps:
  - uses: terraform
    with: { action: plan, dir: infra }
  - uses: terraform
    with: { action: apply, dir: infra, plan_sha256: "0000000000000000000000000000000000000000000000000000000000000000" }
"#;
    for (which, path) in terraforms() {
        let sb = Sandbox::new();
        let (code, run) = run(&sb, yaml, MAIN_TF, &path);
        assert_ne!(code, 0, "{which}");
        let error = step(&run, "2")["error"].as_str().unwrap().to_string();
        assert!(
            error.contains("plan changed since it was approved"),
            "{which}: {error}"
        );
    }
}

#[test]
fn a_failing_plan_fails_with_terraforms_own_diagnostic() {
    let broken = format!("{MAIN_TF}\noutput \"gone\" {{ value = terraform_data.missing.id }}\n");
    let yaml = "steps:\n  - uses: terraform\n    with: { action: plan, dir: infra }\n";
    for (which, path) in terraforms() {
        let sb = Sandbox::new();
        let (code, run) = run(&sb, yaml, &broken, &path);
        assert_ne!(code, 0, "{which}");
        let error = step(&run, "1")["error"].as_str().unwrap().to_string();
        assert!(
            error.starts_with("Error: Reference to undeclared resource")
                && error.contains("\"terraform_data\" \"missing\"")
                && error.contains("(main.tf:15)"),
            "{which}: {error}"
        );
    }
}

#[test]
fn a_missing_terraform_is_named_as_missing_not_as_refused() {
    let sb = Sandbox::new();
    let yaml = "steps:\n  - uses: terraform\n    with: { action: plan, dir: infra }\n";
    let (code, run) = run(&sb, yaml, MAIN_TF, "/usr/bin:/bin");
    assert_ne!(code, 0);
    let error = step(&run, "1")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("`terraform` is granted but not installed here"),
        "{error}"
    );
}

#[test]
fn an_apply_uses_only_its_own_workspaces_plan_and_only_once() {
    let yaml = r#"steps:
  - uses: terraform
    with: { action: plan, dir: infra, workspace: prod, vars: { replicas: 3 } }
  - uses: terraform
    with: { action: apply, dir: infra, workspace: dev, vars: { replicas: 1 } }
  - uses: terraform
    with: { action: apply, dir: infra, workspace: prod }
  - uses: terraform
    with: { action: apply, dir: infra, workspace: prod, vars: { replicas: 2 } }
"#;
    for (which, path) in terraforms() {
        let sb = Sandbox::new();
        let (code, run) = run(&sb, yaml, MAIN_TF, &path);
        assert_eq!(code, 0, "{which}: {run:#}");
        assert_eq!(
            step(&run, "1")["outputs"]["plan_file"],
            "terraform/infra/wasmops.prod.tfplan"
        );
        // dev's apply plans for itself, not from prod's saved plan.
        assert_eq!(
            step(&run, "2")["summary"],
            "1 added, 0 changed, 0 destroyed",
            "{which}"
        );
        assert_eq!(
            step(&run, "3")["summary"],
            "3 added, 0 changed, 0 destroyed",
            "{which}"
        );
        // The saved plan was used up: this apply plans afresh.
        assert_eq!(
            step(&run, "4")["summary"],
            "0 added, 0 changed, 1 destroyed",
            "{which}"
        );
    }
}
