//! `recording-notifier`: POSTs each run event it is told about to a URL, so end-to-end tests can
//! record what the host notified and whether the `http` grant let it through.

use serde::Deserialize;
use wasmops_sdk::http::Request;
use wasmops_sdk::prelude::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Where to POST `{ "run_id", "workflow", "status" }`.
    url: String,
}

struct RecordingNotifier;

impl Notifier for RecordingNotifier {
    type Config = Config;

    fn validate(config: &Config) -> Result<(), Error> {
        if !(config.url.starts_with("http://") || config.url.starts_with("https://")) {
            wasmops_sdk::bail!("`url` must be an http(s) URL, got `{}`", config.url);
        }
        Ok(())
    }

    fn notify(config: &Config, event: &RunEvent) -> Result<(), Error> {
        wasmops_sdk::info!(
            "recording `{}` of run {} ({}) at {}",
            event.status,
            event.run_id,
            event.workflow,
            config.url
        );
        let body = json!({
            "run_id": event.run_id,
            "workflow": event.workflow,
            "status": event.status,
        });
        let response = Request::post(&config.url)
            .json(&body)?
            .send()
            .map_err(|e| e.context(format!("cannot record run {}", event.run_id)))?;
        if !(200..300).contains(&response.status) {
            wasmops_sdk::bail!(
                "cannot record run {}: POST {} answered {}: {}",
                event.run_id,
                config.url,
                response.status,
                wasmops_sdk::exec::tail(&response.text(), 5)
            );
        }
        Ok(())
    }
}

wasmops_sdk::notifier_plugin!(RecordingNotifier);
