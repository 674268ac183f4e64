//! `wait`: the human steps. A plain wait parks the run until anyone continues it; with approvers it
//! is a gate only they may approve or reject. The host keeps the run parked durably and calls
//! `resume` with the decision, or with `timeout` when the deadline passes.

use serde::Deserialize;
use std::time::Duration;
use wasmops_sdk::prelude::*;
use wasmops_sdk::{Approvers, DecisionKind};

/// Built by the host from the workflow's `wait` step.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default)]
    user_names: Vec<String>,
    #[serde(default)]
    ldap_groups: Vec<String>,
    /// Milliseconds until the timeout decision.
    timeout_ms: Option<u64>,
    /// `reject` (default) or `approve`: what a timeout decides. Never approve silently by default.
    #[serde(default = "reject")]
    on_timeout: String,
}

fn reject() -> String {
    "reject".into()
}

struct Wait;

impl Step for Wait {
    type Config = Config;

    fn run(_ctx: &Context, config: Config) -> Result<Outcome, Error> {
        let gate = !config.user_names.is_empty() || !config.ldap_groups.is_empty();
        let mut wait = if gate {
            let mut who: Vec<String> = config.user_names.clone();
            who.extend(config.ldap_groups.iter().map(|g| format!("group {g}")));
            wasmops_sdk::Wait::new(format!("Waiting for approval from {}", who.join(", ")))
                .with_approvers(Approvers {
                    user_names: config.user_names,
                    groups: config.ldap_groups,
                })
        } else {
            wasmops_sdk::Wait::new("Waiting for someone to continue")
        };
        if let Some(ms) = config.timeout_ms {
            wait = wait.with_timeout(Duration::from_millis(ms));
        }
        Ok(Outcome::waiting(wait))
    }

    fn resume(
        _ctx: &Context,
        config: Config,
        _state: Value,
        decision: Decision,
    ) -> Result<Outcome, Error> {
        let by = decision.actor.clone().unwrap_or_else(|| "nobody".into());
        let comment = decision.comment.clone().filter(|c| !c.trim().is_empty());
        let with_comment = |text: String| match &comment {
            Some(c) => format!("{text}: {c}"),
            None => text,
        };
        let done = |verb: &str| {
            Ok(Outcome::summary(with_comment(format!("{verb} by {by}")))
                .with_output("decision", verb.to_lowercase())
                .with_output("by", by.clone())
                .with_output("comment", comment.clone()))
        };
        match decision.kind {
            DecisionKind::Continue => done("Continued"),
            DecisionKind::Approve => done("Approved"),
            DecisionKind::Reject => Err(Error::new(with_comment(format!("Rejected by {by}")))),
            DecisionKind::Timeout if config.on_timeout == "approve" => Ok(Outcome::summary(
                "No decision in time: approved (on_timeout: approve)",
            )
            .with_output("decision", "approved")
            .with_output("by", "timeout")),
            DecisionKind::Timeout => Err(Error::new(
                "No decision in time: rejected (on_timeout: reject)",
            )),
        }
    }
}

wasmops_sdk::step_plugin!(Wait);
