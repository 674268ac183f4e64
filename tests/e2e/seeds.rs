//! The seeds' pipelines as the examples ship them, run under the daemon against local stand-ins:
//! Terraform (the stand-in, or the real one on PATH), a health endpoint, a Slack webhook.

use crate::daemon::start;
use crate::daemon_support::{Daemon, JANE};
use crate::http_server::Server;
use crate::support::{Sandbox, repo, step};
use serde_json::{Value, json};

#[test]
fn production_deploy_plans_waits_for_an_approval_bound_to_the_plan_applies_tests_and_notifies() {
    let sb = Sandbox::new();
    let health = Server::start(|_, _| ("200 OK", String::new(), "healthy".into()));
    let slack = Server::start(|_, _| ("200 OK", String::new(), "ok".into()));
    let grants = format!(
        "[secrets]\nslack_webhook = \"{}\"\n\n[plugins.http]\nhttp = [\"http://127.0.0.1:*\"]\nallow_private_http = true\n\n[plugins.slack]\nhttp = [\"http://127.0.0.1:*\"]\nallow_private_http = true\n",
        slack.url("/services/T1/B1/secret0token0value")
    );
    let d = Daemon::start_with_path(sb.dir.path(), &grants, &repo().join("tests/terraform"));
    let example = repo().join("examples/production-deploy");
    let applied = d.cli(&["apply", example.to_str().unwrap()]);
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    let workflow = "/projects/shop/workflows/production-deploy";
    let (status, body) = d.post(
        JANE,
        "/api/v1/projects/shop/workflows/production-deploy/publish",
        json!({}),
    );
    assert_eq!(status, 200, "{body:#}");

    let id = start(&d, workflow, json!({"health_url": health.url("/health")}));
    let waiting = d.wait_status(&id, "waiting");
    assert_eq!(
        step(&waiting, "1")["summary"],
        "3 to add, 0 to change, 0 to destroy"
    );
    let bound = &step(&waiting, "2")["wait"]["approves"];
    assert_eq!(bound["step"], "plan");
    assert_eq!(bound["summary"], "3 to add, 0 to change, 0 to destroy");
    assert_eq!(
        bound["sha256"],
        step(&waiting, "1")["outputs"]["plan_sha256"]
    );
    let shown = d.cli(&["runs", "show", &id]).stdout;
    assert!(
        shown.contains("→ Approves plan: 3 to add, 0 to change, 0 to destroy (sha256 "),
        "{shown}"
    );

    let (status, body) = d.post(
        JANE,
        &format!("/api/v1/runs/{id}/steps/2/approve"),
        json!({"comment": "ship it"}),
    );
    assert_eq!(status, 200, "{body:#}");
    let done = d.wait_status(&id, "succeeded");
    assert_eq!(step(&done, "2")["approved_by"], "jane@example.com");
    assert_eq!(
        step(&done, "3")["summary"],
        "3 added, 0 changed, 0 destroyed"
    );
    assert_eq!(step(&done, "4")["summary"], "HTTP 200 OK");
    assert_eq!(step(&done, "5")["summary"], "Message sent to #deployments");
    let message: Value = serde_json::from_str(&slack.seen()[0].body).unwrap();
    assert!(
        message["text"]
            .as_str()
            .unwrap()
            .contains("3 added, 0 changed, 0 destroyed, health HTTP 200 OK"),
        "{message:#}"
    );
    let shown = d.cli(&["runs", "show", &id]).stdout;
    for expected in [
        "→ 3 to add, 0 to change, 0 to destroy",
        "→ Approved by jane@example.com",
        "→ 3 added, 0 changed, 0 destroyed",
        "→ HTTP 200 OK",
        "→ Message sent to #deployments",
    ] {
        assert!(shown.contains(expected), "{expected:?} not in:\n{shown}");
    }
    assert!(!shown.contains("secret0token0value"), "{shown}");
}

#[test]
fn scheduled_backup_dumps_uploads_what_it_dumped_and_cleans_up() {
    let sb = Sandbox::new();
    let storage = Server::start(|_, _| ("201 Created", String::new(), String::new()));
    let config = sb.write(
        "wasmops.toml",
        "[plugins.http]\nhttp = [\"http://127.0.0.1:*\"]\nallow_private_http = true\n",
    );
    let example = repo().join("examples/scheduled-backup/scheduled-backup.yaml");
    let ran = sb.wasmops(&[
        "run",
        example.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--set",
        &format!("storage_url={}", storage.url("/orders")),
        "--output",
        "json",
    ]);
    let run = ran.json();
    assert_eq!(ran.code, 0, "{run:#}");
    assert!(
        step(&run, "1")["summary"]
            .as_str()
            .unwrap()
            .starts_with("dumped orders (")
    );
    assert_eq!(step(&run, "2")["summary"], "HTTP 201 Created");
    assert!(
        step(&run, "3")["summary"]
            .as_str()
            .unwrap()
            .starts_with("removed the local dump")
    );

    let seen = storage.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let id = run["id"].as_str().unwrap();
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].path, format!("/orders/{id}.sql"));
    assert!(
        seen[0].body.contains("CREATE TABLE orders"),
        "{:?}",
        seen[0].body
    );
}

#[test]
fn environment_promotion_applies_each_workspace_and_waits_before_prod() {
    let sb = Sandbox::new();
    let d = Daemon::start_with_path(sb.dir.path(), "", &repo().join("tests/terraform"));
    let example = repo().join("examples/environment-promotion");
    let applied = d.cli(&["apply", example.to_str().unwrap()]);
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    let (status, body) = d.post(
        JANE,
        "/api/v1/projects/promo/workflows/promote/publish",
        json!({}),
    );
    assert_eq!(status, 200, "{body:#}");

    let id = start(&d, "/projects/promo/workflows/promote", json!({}));
    let waiting = d.wait_status(&id, "waiting");
    assert_eq!(
        step(&waiting, "1")["summary"],
        "1 added, 0 changed, 0 destroyed"
    );
    assert_eq!(
        step(&waiting, "2")["summary"],
        "2 added, 0 changed, 0 destroyed"
    );
    assert_eq!(
        step(&waiting, "3")["summary"],
        "3 to add, 0 to change, 0 to destroy"
    );
    assert_eq!(step(&waiting, "4")["wait"]["approves"]["step"], "plan_prod");

    let (status, body) = d.post(
        JANE,
        &format!("/api/v1/runs/{id}/steps/4/approve"),
        json!({}),
    );
    assert_eq!(status, 200, "{body:#}");
    let done = d.wait_status(&id, "succeeded");
    assert_eq!(
        step(&done, "5")["summary"],
        "3 added, 0 changed, 0 destroyed"
    );
    assert_eq!(
        step(&done, "5")["outputs"]["instances"],
        json!(["web-0", "web-1", "web-2"])
    );
}
