//! `slack`: posts one message to an incoming webhook: text, Block Kit blocks, or both.
//!
//! Slack answers a burst with 429 and a `Retry-After`; the message is sent again after that
//! many seconds (a few times at most), and after a doubling delay on a 5xx or a connection
//! error. The webhook URL is a secret the plugin reads itself (`webhook_secret`, by name): it is
//! never in the workflow or the step's `with`, and no log line, output or error names it.

use serde::Deserialize;
use std::time::Duration;
use wasmops_sdk::http::{Request, Response};
use wasmops_sdk::prelude::*;
use wasmops_sdk::serde_json;

/// Sends after the first, on 429 or 5xx or a connection error.
const MAX_RETRIES: u32 = 5;
/// The longest `Retry-After` honoured; a longer one fails the step with what Slack asked.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The first delay after a 5xx or a connection error; it doubles.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
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
        let name = config.secret_name();
        let named = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !named {
            return Err(Error::new(format!(
                "webhook_secret: `{name}` is not a secret's name; the webhook URL goes in the \
                 config's [secrets] and this names it, e.g. `webhook_secret: slack_webhook`"
            )));
        }
        check_message(config)
    }

    fn run(_ctx: &Context, config: Config) -> Result<Outcome, Error> {
        let name = config.secret_name();
        let webhook = wasmops_sdk::secrets::get(name)?;
        let webhook = webhook.trim();
        if !(webhook.starts_with("https://") || webhook.starts_with("http://")) {
            return Err(Error::new(format!("secret `{name}` is not an http(s) URL")));
        }
        let request = Request::post(webhook)
            .timeout(Duration::from_secs(30))
            .json(&config.payload())?;
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let wait = match request.clone().send() {
                Ok(response) if response.status == 200 => {
                    return Ok(Outcome::summary(config.sent_to()).with_output("attempts", attempt));
                }
                Ok(response) if attempt > MAX_RETRIES => return Err(refused(&response)),
                Ok(response) if response.status == 429 => retry_after(&response)?,
                Ok(response) if response.status >= 500 => backoff,
                Ok(response) => return Err(refused(&response)),
                // The host's message names the URL; this one must not.
                Err(e) if e.is_denial() => {
                    return Err(Error::new(
                        "the webhook's host is not granted to the slack plugin \
                         ([plugins.slack] http)",
                    ));
                }
                Err(_) if attempt > MAX_RETRIES => {
                    return Err(Error::new(format!(
                        "the webhook could not be reached after {attempt} attempts"
                    )));
                }
                Err(_) => backoff,
            };
            wasmops_sdk::log::warn(format!(
                "attempt {attempt}: Slack asked to wait; sending again in {}",
                HumanDuration(wait)
            ));
            std::thread::sleep(wait);
            backoff = (backoff * 2).min(MAX_RETRY_AFTER);
            attempt += 1;
        }
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

/// How long a 429 asks to wait: `Retry-After` seconds (1 when it says nothing usable).
fn retry_after(response: &Response) -> Result<Duration, Error> {
    let seconds = response
        .header("retry-after")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(1);
    let wait = Duration::from_secs(seconds);
    if wait > MAX_RETRY_AFTER {
        return Err(Error::new(format!(
            "Slack is rate limiting this webhook and asked to wait {seconds}s, longer than \
             {}s",
            MAX_RETRY_AFTER.as_secs()
        )));
    }
    Ok(wait)
}

/// Slack's refusal (`invalid_payload`, `channel_not_found`, `no_service`…), without the URL.
fn refused(response: &Response) -> Error {
    let said: String = response.text().trim().chars().take(200).collect();
    Error::new(format!(
        "Slack refused the message: HTTP {}{}",
        response.status,
        if said.is_empty() {
            String::new()
        } else {
            format!(" {said}")
        }
    ))
}

wasmops_sdk::step_plugin!(Slack);

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
