//! Posting to an incoming webhook whose URL is a secret, as Slack asks: a 429 is sent again
//! after its `Retry-After` (a few times at most), a 5xx or a connection error after a doubling
//! delay. No error or log line names the URL.

use std::time::Duration;
use wasmops_sdk::http::{Request, Response};
use wasmops_sdk::prelude::*;

/// Sends after the first, on 429 or 5xx or a connection error.
const MAX_RETRIES: u32 = 5;
/// The longest `Retry-After` honoured; a longer one fails with what Slack asked.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The first delay after a 5xx or a connection error; it doubles.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// `name` must name a secret, not be the URL written out.
pub fn check_secret_name(name: &str) -> Result<(), Error> {
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
    Ok(())
}

/// Posts `payload` to the webhook in secret `name`; the number of attempts it took.
pub fn post(name: &str, payload: &Value) -> Result<u32, Error> {
    let webhook = wasmops_sdk::secrets::get(name)?;
    let webhook = webhook.trim();
    if !(webhook.starts_with("https://") || webhook.starts_with("http://")) {
        return Err(Error::new(format!("secret `{name}` is not an http(s) URL")));
    }
    let request = Request::post(webhook)
        .timeout(Duration::from_secs(30))
        .json(payload)?;
    let mut backoff = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        let wait = match request.clone().send() {
            Ok(response) if response.status == 200 => return Ok(attempt),
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
