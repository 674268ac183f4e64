//! `slack`: posts one message to an incoming webhook (text, Block Kit blocks, or both) as a
//! step, and, as a notifier, a card for each run event it is told about ([`card`]).
//!
//! The webhook URL is a secret the plugin reads itself (`webhook_secret`, by name): it is never
//! in the workflow or the step's `with`, and no log line, output or error names it. Sending,
//! with Slack's rate limits honoured, is in [`webhook`].

mod card;
mod webhook;

use serde::Deserialize;
use wasmops_sdk::prelude::*;
use wasmops_sdk::serde_json;

/// Slack refuses more blocks than this in one message.
const MAX_BLOCKS: usize = 50;

/// The `with` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The secret holding the incoming webhook's URL (`slack_webhook` when absent).
    webhook_secret: Option<String>,
    /// `#deployments`: where the webhook's app posts (named in the summary; older webhooks
    /// also honour it).
    channel: Option<String>,
    /// The message, or the notification text beside `blocks`.
    text: Option<String>,
    /// Block Kit blocks.
    blocks: Option<Vec<Value>>,
    username: Option<String>,
    icon_emoji: Option<String>,
    /// Reply in this thread (the `ts` of its first message).
    thread_ts: Option<String>,
}

impl Config {
    fn payload(&self) -> Value {
        let mut payload = serde_json::Map::new();
        let fields = [
            ("text", &self.text),
            ("channel", &self.channel),
            ("username", &self.username),
            ("icon_emoji", &self.icon_emoji),
            ("thread_ts", &self.thread_ts),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                payload.insert(key.into(), json!(value));
            }
        }
        if let Some(blocks) = &self.blocks {
            payload.insert("blocks".into(), json!(blocks));
        }
        Value::Object(payload)
    }

    fn secret_name(&self) -> &str {
        self.webhook_secret
            .as_deref()
            .unwrap_or("slack_webhook")
            .trim()
    }

    fn sent_to(&self) -> String {
        match &self.channel {
            Some(channel) => format!("Message sent to {channel}"),
            None => "Message sent".into(),
        }
    }
}

struct Slack;

impl Step for Slack {
    type Config = Config;

    fn describe() -> Info {
        Info::new("Posts a message to a Slack incoming webhook (Block Kit), honouring 429 Retry-After")
            .with_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "webhook_secret": { "type": "string", "description": "The secret holding the webhook URL (default slack_webhook)" },
                    "channel": { "type": "string", "description": "Where it posts, e.g. #deployments" },
                    "text": { "type": "string", "description": "The message (the notification text beside blocks)" },
                    "blocks": { "type": "array", "description": "Block Kit blocks" },
                    "username": { "type": "string" },
                    "icon_emoji": { "type": "string" },
                    "thread_ts": { "type": "string", "description": "Reply in this thread" }
                }
            }))
            .with_outputs(["attempts"])
    }

    fn validate(config: &Config) -> Result<(), Error> {
        webhook::check_secret_name(config.secret_name())?;
        check_message(config)
    }

    fn run(_ctx: &Context, config: Config) -> Result<Outcome, Error> {
        let attempts = webhook::post(config.secret_name(), &config.payload())?;
        Ok(Outcome::summary(config.sent_to()).with_output("attempts", attempts))
    }
}

fn check_message(config: &Config) -> Result<(), Error> {
    let text = config.text.as_deref().is_some_and(|t| !t.trim().is_empty());
    let blocks = config.blocks.as_ref().is_some_and(|b| !b.is_empty());
    if !text && !blocks {
        return Err(Error::new("give `text`, `blocks`, or both"));
    }
    if config.blocks.as_ref().is_some_and(|b| b.len() > MAX_BLOCKS) {
        return Err(Error::new(format!(
            "blocks: Slack takes at most {MAX_BLOCKS} in one message"
        )));
    }
    Ok(())
}

wasmops_sdk::step_plugin!(Slack);
wasmops_sdk::notifier_plugin!(SlackNotifier);

use card::SlackNotifier;

#[cfg(test)]
mod tests {
    use super::*;

    fn config(with: Value) -> Config {
        serde_json::from_value(with).unwrap()
    }

    #[test]
    fn the_webhook_is_a_secret_by_name_and_a_message_has_content() {
        let check = |with: Value| Slack::validate(&config(with)).map_err(|e| e.to_string());
        assert!(check(json!({"text": "hi"})).is_ok());
        assert!(
            check(json!({"webhook_secret": "slack_ops", "blocks": [{"type": "divider"}]})).is_ok()
        );
        let written_out = check(
            json!({"webhook_secret": "https://hooks.slack.com/services/T/B/x", "text": "hi"}),
        );
        assert!(written_out.unwrap_err().contains("is not a secret's name"));
        assert!(check(json!({})).unwrap_err().contains("give `text`"));
        let many = vec![json!({"type": "divider"}); 51];
        assert!(
            check(json!({"blocks": many}))
                .unwrap_err()
                .contains("at most 50")
        );
    }

    #[test]
    fn the_payload_has_what_was_given() {
        let c = config(
            json!({"channel": "#deployments", "text": "done", "blocks": [{"type": "divider"}]}),
        );
        assert_eq!(
            c.payload(),
            json!({"channel": "#deployments", "text": "done", "blocks": [{"type": "divider"}]})
        );
        assert_eq!(c.sent_to(), "Message sent to #deployments");
    }
}
