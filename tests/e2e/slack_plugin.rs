//! The built-in `slack` step against a local webhook: Block Kit payloads, 429 with
//! `Retry-After` honoured, Slack's refusals, and the webhook URL (a secret) kept out of
//! everything the run shows.

use crate::http_server::Server;
use crate::support::{Sandbox, step};
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The secret part of the webhook's path, as Slack's own webhooks have one.
const TOKEN: &str = "xK9fQ2mZ7wR4tY1u";

/// A webhook that asks the first message to wait a second, then takes it; and one that is gone.
fn webhook() -> Server {
    let sent = AtomicUsize::new(0);
    Server::start(move |request, _| match request.path.as_str() {
        p if p.ends_with(TOKEN) && sent.fetch_add(1, Ordering::SeqCst) == 0 => (
            "429 Too Many Requests",
            "retry-after: 1\r\n".into(),
            "rate_limited".into(),
        ),
        p if p.ends_with(TOKEN) => ("200 OK", String::new(), "ok".into()),
        _ => ("404 Not Found", String::new(), "no_service".into()),
    })
}

fn config(sb: &Sandbox, hook: &str) -> String {
    let config = format!(
        "[secrets]\nslack_webhook = \"{hook}\"\n\n[plugins.slack]\nhttp = [\"http://127.0.0.1:*\"]\nallow_private_http = true\n"
    );
    sb.write("wasmops.toml", &config).display().to_string()
}

const NOTIFY: &str = r##"steps:
  - name: Notify
    uses: slack
    with:
      channel: "#deployments"
      text: "Deployment complete: {{ run.workflow }}"
      blocks:
        - type: header
          text: { type: plain_text, text: "Deployment Complete" }
        - type: section
          fields:
            - { type: mrkdwn, text: "*Environment:*\nproduction" }
            - { type: mrkdwn, text: "*Status:*\nSucceeded" }
"##;

#[test]
fn a_message_waits_as_slack_asks_and_the_webhook_never_shows() {
    let (sb, server) = (Sandbox::new(), webhook());
    let hook = server.url(&format!("/services/T0001/B0001/{TOKEN}"));
    let config = config(&sb, &hook);
    let (code, run) = sb.run_json(NOTIFY, &["--config", &config]);
    assert_eq!(code, 0, "{run:#}");
    let notify = step(&run, "1");
    assert_eq!(notify["summary"], "Message sent to #deployments");
    assert_eq!(notify["outputs"]["attempts"], 2);

    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let payload: Value = serde_json::from_str(&seen[1].body).unwrap();
    assert_eq!(payload["channel"], "#deployments");
    assert_eq!(payload["blocks"][0]["text"]["text"], "Deployment Complete");
    assert!(
        payload["text"]
            .as_str()
            .unwrap()
            .starts_with("Deployment complete"),
        "{payload:#}"
    );
    assert_eq!(seen[1].content_type, "application/json");

    // The wait is in the step's log; the webhook is in nothing the run shows.
    let id = run["id"].as_str().unwrap();
    let logs = sb.wasmops(&["runs", "logs", id]).stdout;
    assert!(logs.contains("sending again in 1s"), "{logs}");
    let shown = format!("{run}{logs}{}", sb.wasmops(&["runs", "show", id]).stdout);
    assert!(!shown.contains(TOKEN), "{shown}");
}

#[test]
fn messages_to_one_webhook_go_at_most_one_a_second() {
    let (sb, server) = (
        Sandbox::new(),
        Server::start(|_, _| ("200 OK", String::new(), "ok".into())),
    );
    let hook = server.url(&format!("/services/T0001/B0001/{TOKEN}"));
    let config = config(&sb, &hook);
    let (code, run) = sb.run_json(
        "steps:\n  - run_as: parallel\n    children:\n      - { uses: slack, with: { text: one } }\n      - { uses: slack, with: { text: two } }\n      - { uses: slack, with: { text: three } }\n",
        &["--config", &config],
    );
    assert_eq!(code, 0, "{run:#}");
    let seen = server.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    // A lower bound only: a busy machine can space them further, never closer.
    for pair in seen.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= std::time::Duration::from_millis(950),
            "two messages {gap:?} apart"
        );
    }
}

#[test]
fn a_refusal_fails_the_step_with_slacks_reason_and_without_the_url() {
    let (sb, server) = (Sandbox::new(), webhook());
    let hook = server.url("/services/T0001/B0001/revoked0000000000");
    let config = config(&sb, &hook);
    let (code, run) = sb.run_json(NOTIFY, &["--config", &config]);
    assert_ne!(code, 0);
    let error = step(&run, "1")["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("Slack refused the message: HTTP 404 no_service"),
        "{error}"
    );
    assert!(
        !error.contains("revoked") && !error.contains("/services/"),
        "{error}"
    );
}

#[test]
fn a_webhook_written_into_the_workflow_is_refused_before_anything_runs() {
    let sb = Sandbox::new();
    let file = sb.write(
        "wf.yaml",
        "steps:\n  - uses: slack\n    with: { webhook: \"https://hooks.slack.com/services/T/B/x\", text: hi }\n  - uses: slack\n    with: { webhook_secret: \"https://hooks.slack.com/x\", text: hi }\n",
    );
    let ran = sb.wasmops(&["validate", file.to_str().unwrap()]);
    assert_eq!(ran.code, 2);
    assert!(
        ran.stderr.contains("wf.yaml:3:") && ran.stderr.contains("unknown field `webhook`"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr.contains("wf.yaml:5:") && ran.stderr.contains("is not a secret's name"),
        "{}",
        ran.stderr
    );
}

/// The built-in plugins in process, with the operator letting `slack` reach a loopback webhook
/// held in its `slack_webhook` secret.
fn notifier_host(hook: &str) -> wasmops::plugins::Registry {
    let operator =
        toml::from_str("[slack]\nhttp = [\"http://127.0.0.1:*\"]\nallow_private_http = true\n")
            .unwrap();
    let secrets = wasmops_sandbox::Secrets::from_values(
        [("slack_webhook".to_string(), hook.to_string())].into(),
    );
    let sandbox = wasmops_sandbox::Sandbox::new(wasmops_sandbox::SandboxOptions {
        operator,
        secrets,
        ..Default::default()
    })
    .unwrap();
    wasmops::plugins::Registry::builtin(std::sync::Arc::new(sandbox)).unwrap()
}

#[tokio::test]
async fn as_a_notifier_it_posts_the_runs_card() {
    // A real run, whose step reports what a Terraform apply reports.
    let sb = Sandbox::new();
    let (code, run) = sb.run_json(
        "steps:\n  - name: Apply\n    uses: noop\n    with: { outputs: { added: 3, changed: 1, destroyed: 0 } }\n",
        &["--set", "environment=production"],
    );
    assert_eq!(code, 0, "{run:#}");
    let server = Server::start(|_, _| ("200 OK", String::new(), "ok".into()));
    let registry = notifier_host(&server.url(&format!("/services/T0001/B0001/{TOKEN}")));
    let slack = registry.get("slack").unwrap();
    assert!(
        slack.is(wasmops_sandbox::PluginKind::Step)
            && slack.is(wasmops_sandbox::PluginKind::Notifier)
    );
    let event = wasmops_sandbox::RunEvent {
        run_id: run["id"].as_str().unwrap().into(),
        workflow: run["workflow"].as_str().unwrap().into(),
        status: "succeeded".into(),
        run: run.to_string(),
    };
    let sandbox = registry.sandbox();
    let config = r##"{"channel": "#deployments"}"##;
    assert_eq!(
        sandbox
            .notifier_validate(&slack, wasmops_sandbox::CallEnv::default(), config)
            .await
            .unwrap(),
        Vec::<String>::new()
    );
    sandbox
        .notify(&slack, wasmops_sandbox::CallEnv::default(), config, &event)
        .await
        .unwrap();

    let seen = server.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    let card: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(card["channel"], "#deployments");
    assert_eq!(card["blocks"][0]["text"]["text"], "🚀 Deployment Complete");
    let shown = card.to_string();
    for expected in [
        "*Workflow:*\\nworkflow",
        "*Environment:*\\nproduction",
        "*Status:*\\nSuccess ✓",
        "• 3 resources added\\n• 1 resource changed",
        "Triggered by: Manual",
    ] {
        assert!(shown.contains(expected), "{expected} not in {shown}");
    }

    // As a step, the same plugin still needs its message.
    let problems = sandbox
        .step_validate(&slack, wasmops_sandbox::CallEnv::default(), "{}")
        .await
        .unwrap();
    assert!(
        problems.iter().any(|p| p.contains("give `text`")),
        "{problems:?}"
    );
}
