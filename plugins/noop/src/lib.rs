//! `noop`: completes at once with a fixed summary and whatever outputs it is given.
//!
//! It exists for benchmarks (the cost of a step is then the host's cost) and for tests of the host:
//! `fail` makes it return an error and `panic` makes the instance trap, so both failure paths can
//! be exercised with a real component. Keep it doing as little as possible.

use serde::Deserialize;
use wasmops_sdk::prelude::*;

/// The `with` block; every key is optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Summary line; `ok` when absent.
    summary: Option<String>,
    /// Copied to the step's outputs as is.
    #[serde(default)]
    outputs: Outputs,
    /// Fail the step with this message.
    fail: Option<String>,
    /// Panic (trap the instance) with this message.
    panic: Option<String>,
}

struct Noop;

impl Step for Noop {
    type Config = Config;

    fn describe() -> Info {
        Info::default().with_schema(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "summary": { "type": "string", "description": "Summary line (default `ok`)" },
                "outputs": { "type": "object", "description": "Copied to the step's outputs" },
                "fail": { "type": "string", "description": "Fail the step with this message" },
                "panic": { "type": "string", "description": "Trap the plugin with this message" }
            }
        }))
    }

    fn run(_ctx: &Context, config: Config) -> Result<Outcome, Error> {
        if let Some(message) = config.panic {
            panic!("{message}");
        }
        if let Some(message) = config.fail {
            return Err(Error::new(message));
        }
        Ok(
            Outcome::summary(config.summary.unwrap_or_else(|| "ok".into()))
                .with_outputs(config.outputs),
        )
    }
}

wasmops_sdk::step_plugin!(Noop);
