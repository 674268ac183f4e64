//! `header-trigger`: fires when an HTTP request carries a header, so end-to-end tests can drive
//! the trigger world (subscribe, fire, ignore, reject) and see what the host granted it.

use serde::Deserialize;
use wasmops_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The header to look for (any case).
    header: String,
    /// When set, the header must have exactly this value; otherwise the event is rejected.
    #[serde(default)]
    value: Option<String>,
    /// A secret to read on firing; its length becomes the `secret_len` input.
    #[serde(default)]
    secret: Option<String>,
}

struct HeaderTrigger;

impl Trigger for HeaderTrigger {
    type Config = Config;

    fn validate(config: &Config) -> Result<(), Error> {
        if config.header.trim().is_empty() {
            wasmops_sdk::bail!("`header` must not be empty");
        }
        Ok(())
    }

    fn subscribe(_config: &Config) -> Result<Vec<Subscription>, Error> {
        Ok(vec![Subscription::HttpRoute])
    }

    fn on_event(config: &Config, event: &TriggerEvent) -> Result<Verdict, Error> {
        wasmops_sdk::info!("looking for header `{}`", config.header);
        let Some(found) = event.header(&config.header) else {
            return Ok(Verdict::Ignore);
        };
        if let Some(expected) = &config.value
            && expected != found
        {
            return Ok(Verdict::reject(format!(
                "header `{}` has the wrong value",
                config.header
            )));
        }
        let mut verdict = Verdict::fire()
            .with_input("header", found)
            .with_input("source", event.source.clone())
            .with_input("payload", event.json::<Value>().unwrap_or(Value::Null));
        if let Some(name) = &config.secret {
            // An `Err` here becomes a rejection carrying the host's refusal.
            let secret = wasmops_sdk::secrets::get(name)?;
            verdict = verdict.with_input("secret_len", secret.len());
        }
        Ok(verdict)
    }
}

wasmops_sdk::trigger_plugin!(HeaderTrigger);
