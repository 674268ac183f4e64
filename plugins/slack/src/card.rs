//! The notifier: a run's outcome as the seed's "Deployment Complete" card: workflow,
//! environment, status, duration, the changes Terraform applied, who or what triggered it and
//! the commit.

use crate::webhook;
use serde::Deserialize;
use wasmops_sdk::prelude::*;
use wasmops_sdk::{Notifier, RunEvent};

/// A notifier's `with` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardConfig {
    /// The secret holding the incoming webhook's URL (`slack_webhook` when absent).
    webhook_secret: Option<String>,
    channel: Option<String>,
    /// Shown as the environment; else the run's `environment` property, when it was set.
    environment: Option<String>,
    /// The card's title instead of "Deployment Complete", "Deployment Failed"….
    title: Option<String>,
    username: Option<String>,
    icon_emoji: Option<String>,
}

impl CardConfig {
    fn secret_name(&self) -> &str {
        self.webhook_secret
            .as_deref()
            .unwrap_or("slack_webhook")
            .trim()
    }
}

pub struct SlackNotifier;

impl Notifier for SlackNotifier {
    type Config = CardConfig;

    fn validate(config: &CardConfig) -> Result<(), Error> {
        webhook::check_secret_name(config.secret_name())
    }

    fn notify(config: &CardConfig, event: &RunEvent) -> Result<(), Error> {
        webhook::post(config.secret_name(), &card(config, event)).map(drop)
    }
}

/// The message: a header, the run's facts as fields, the changes applied, and the trigger.
pub fn card(config: &CardConfig, event: &RunEvent) -> Value {
    let run = &event.run;
    let (title, status) = match event.status.as_str() {
        "succeeded" => ("🚀 Deployment Complete", "Success ✓"),
        "failed" => ("❌ Deployment Failed", "Failed ✗"),
        "cancelled" => ("⏹ Deployment Cancelled", "Cancelled"),
        "waiting" => ("⏸ Waiting for Approval", "Waiting for approval"),
        _ => ("▶️ Deployment Started", "Running"),
    };
    let title = config.title.as_deref().unwrap_or(title);
    let workflow = workflow_name(&event.workflow);
    let mut fields = vec![field("Workflow", workflow), field("Status", status)];
    let environment = config.environment.clone().or_else(|| {
        run.pointer("/property_overrides/environment")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    if let Some(environment) = &environment {
        fields.insert(1, field("Environment", environment));
    }
    if let Some(ms) = run.get("duration_ms").and_then(Value::as_u64) {
        fields.push(field("Duration", &duration(ms)));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": title, "emoji": true}}),
        json!({"type": "section", "fields": fields}),
    ];
    if let Some(changes) = changes_applied(run) {
        blocks.push(section(&format!("*Changes Applied:*\n{changes}")));
    }
    if event.status == "failed"
        && let Some(failure) = run.get("error").and_then(Value::as_str)
    {
        let failure: String = failure.chars().take(500).collect();
        blocks.push(section(&format!("*Error:*\n{failure}")));
    }
    let mut context = vec![format!("Triggered by: {}", triggered_by(run))];
    if let Some(commit) = commit(run) {
        context.push(format!("Commit: {commit}"));
    }
    blocks.push(json!({
        "type": "context",
        "elements": context.iter().map(|text| json!({"type": "mrkdwn", "text": text})).collect::<Vec<_>>(),
    }));
    let mut payload = json!({
        "text": format!("{title}: {workflow} ({})", event.status),
        "blocks": blocks,
    });
    for (key, value) in [
        ("channel", &config.channel),
        ("username", &config.username),
        ("icon_emoji", &config.icon_emoji),
    ] {
        if let Some(value) = value {
            payload[key] = json!(value);
        }
    }
    payload
}

fn field(name: &str, value: &str) -> Value {
    json!({"type": "mrkdwn", "text": format!("*{name}:*\n{value}")})
}

fn section(text: &str) -> Value {
    json!({"type": "section", "text": {"type": "mrkdwn", "text": text}})
}

/// `/projects/p/workflows/production-deploy` → `production-deploy`.
fn workflow_name(workflow: &str) -> &str {
    workflow.rsplit('/').next().unwrap_or(workflow)
}

/// `5m 32s`, as `runs show` writes durations.
fn duration(ms: u64) -> String {
    let secs = ms / 1000;
    match secs {
        0 => format!("{ms}ms"),
        1..60 => format!("{secs}s"),
        60..3600 => format!("{}m {}s", secs / 60, secs % 60),
        _ => format!("{}h {}m", secs / 3600, (secs % 3600) / 60),
    }
}

/// What the run's Terraform applies reported (`added`, `changed`, `destroyed` outputs, summed
/// over every step that has them), as bullets; `None` when no step applied anything.
fn changes_applied(run: &Value) -> Option<String> {
    let mut totals = [0u64; 3];
    let mut found = false;
    let mut pending: Vec<&Value> = run
        .get("steps")
        .and_then(Value::as_array)
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    while let Some(step) = pending.pop() {
        if let Some(children) = step.get("children").and_then(Value::as_array) {
            pending.extend(children);
        }
        let outputs = step.get("outputs");
        let counts = ["added", "changed", "destroyed"].map(|name| {
            outputs
                .and_then(|o| o.get(name))
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        });
        if counts.iter().all(Option::is_some) {
            found = true;
            for (total, count) in totals.iter_mut().zip(counts) {
                *total += count.unwrap_or(0);
            }
        }
    }
    if !found {
        return None;
    }
    let lines: Vec<String> = totals
        .iter()
        .zip(["added", "changed", "destroyed"])
        .filter(|(n, _)| **n > 0)
        .map(|(n, what)| {
            let noun = if *n == 1 { "resource" } else { "resources" };
            format!("• {n} {noun} {what}")
        })
        .collect();
    Some(if lines.is_empty() {
        "• No changes".into()
    } else {
        lines.join("\n")
    })
}

/// Who started the run by hand, or what did: `jane@example.com`, `Git Push`, `Schedule`.
fn triggered_by(run: &Value) -> String {
    let trigger = run.get("trigger");
    if let Some(by) = trigger.and_then(|t| t.get("by")).and_then(Value::as_str) {
        return by.to_string();
    }
    match trigger.and_then(|t| t.get("kind")).and_then(Value::as_str) {
        Some("manual") | None => "Manual".into(),
        Some("git") => "Git Push".into(),
        Some("cron") => "Schedule".into(),
        Some("webhook") => "Webhook".into(),
        Some("incident") => "Incident".into(),
        Some("workflow") => "Another workflow".into(),
        Some(other) => other.to_string(),
    }
}

/// `abc1234 "Add rate limiting to API"` from what the trigger passed in.
fn commit(run: &Value) -> Option<String> {
    let inputs = run.pointer("/trigger/inputs")?;
    let sha: String = inputs.get("commit")?.as_str()?.chars().take(7).collect();
    Some(match inputs.get("message").and_then(Value::as_str) {
        Some(message) => {
            let first_line: String = message
                .lines()
                .next()
                .unwrap_or_default()
                .chars()
                .take(120)
                .collect();
            format!("{sha} \"{first_line}\"")
        }
        None => sha,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(with: Value) -> CardConfig {
        wasmops_sdk::serde_json::from_value(with).unwrap()
    }

    fn texts(payload: &Value) -> String {
        payload.to_string()
    }

    #[test]
    fn a_finished_deploy_is_the_seeds_card() {
        let mut event = RunEvent::new(
            "wfr_1",
            "/projects/p/workflows/production-deploy",
            "succeeded",
        );
        event.run = json!({
            "id": "wfr_1",
            "duration_ms": 332_000,
            "property_overrides": {"environment": "production"},
            "trigger": {"kind": "git", "inputs": {"commit": "abc1234def", "message": "Add rate limiting to API\n\nbody"}},
            "steps": [
                {"path": "1", "outputs": {"to_add": 3}},
                {"path": "2", "children": [
                    {"path": "2.1", "outputs": {"added": 2, "changed": 1, "destroyed": 0}},
                    {"path": "2.2", "outputs": {"added": "1", "changed": "0", "destroyed": "0"}},
                ]},
            ],
        });
        let card = card(&config(json!({"channel": "#deployments"})), &event);
        assert_eq!(card["channel"], "#deployments");
        assert_eq!(card["blocks"][0]["text"]["text"], "🚀 Deployment Complete");
        let shown = texts(&card);
        for expected in [
            "*Workflow:*\\nproduction-deploy",
            "*Environment:*\\nproduction",
            "*Status:*\\nSuccess ✓",
            "*Duration:*\\n5m 32s",
            "• 3 resources added\\n• 1 resource changed",
            "Triggered by: Git Push",
            "Commit: abc1234 \\\"Add rate limiting to API\\\"",
        ] {
            assert!(shown.contains(expected), "{expected} not in {shown}");
        }
        assert!(!shown.contains("destroyed"), "{shown}");
    }

    #[test]
    fn a_failed_run_names_its_error_and_who_started_it() {
        let mut event = RunEvent::new("wfr_2", "deploy", "failed");
        event.run = json!({"error": "step `apply` failed", "trigger": {"kind": "manual", "by": "jane@example.com"}, "steps": []});
        let shown = texts(&card(&config(json!({"environment": "staging"})), &event));
        for expected in [
            "❌ Deployment Failed",
            "*Environment:*\\nstaging",
            "step `apply` failed",
            "Triggered by: jane@example.com",
        ] {
            assert!(shown.contains(expected), "{expected} not in {shown}");
        }
        assert!(!shown.contains("Changes Applied"), "{shown}");
    }

    #[test]
    fn the_webhook_is_named_not_written() {
        assert!(SlackNotifier::validate(&config(json!({}))).is_ok());
        let err = SlackNotifier::validate(&config(
            json!({"webhook_secret": "https://hooks.slack.com/x"}),
        ));
        assert!(
            err.unwrap_err()
                .to_string()
                .contains("is not a secret's name")
        );
    }
}
