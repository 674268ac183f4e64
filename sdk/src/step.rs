//! The [`Step`] trait a plugin implements, and the glue [`crate::step_plugin!`] uses to turn it
//! into the WIT `step` export.
//!
//! The glue owns everything that is the same in every plugin: parsing the `with` block into the
//! plugin's typed config (with one consistent error message), running the plugin's own checks in
//! both `validate` and `run`, converting outcomes to WIT records, and logging panics before the
//! instance traps so the step log says why. The config and panic parts are shared with triggers and
//! notifiers (`glue.rs`).

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::bindings::wasmops::plugin::types::{StepInfo, StepOutcome, StepRequest};
use crate::glue::{checked_config, host_json, install_panic_hook, validate_lines};
use crate::{Context, Decision, Error, Info, Outcome};

/// A step plugin. All functions are associated functions: the host makes a fresh instance for
/// every call, so there is no state to keep between them anyway.
pub trait Step {
    /// The `with` block, deserialized with serde. Use `#[serde(deny_unknown_fields)]` so typos in
    /// workflows are caught by `validate`.
    type Config: DeserializeOwned;

    /// What the plugin says about itself. The default has the crate's Cargo.toml `description`,
    /// an empty config schema and no declared outputs.
    fn describe() -> Info {
        Info::default()
    }

    /// Checks beyond what deserializing `Config` already checks (e.g. "exactly one of `run` or
    /// `file`"). Called on `validate` and again before `run` and `resume`.
    fn validate(config: &Self::Config) -> Result<(), Error> {
        let _ = config;
        Ok(())
    }

    /// Does the work.
    fn run(ctx: &Context, config: Self::Config) -> Result<Outcome, Error>;

    /// Continues a step that returned [`Outcome::Waiting`], with the state it parked with and the
    /// decision (continue, approve, reject, timeout). Only waiting steps need it.
    fn resume(
        ctx: &Context,
        config: Self::Config,
        state: Value,
        decision: Decision,
    ) -> Result<Outcome, Error> {
        let _ = (ctx, config, state, decision);
        Err(Error::new(
            "this step does not wait, so it cannot be resumed",
        ))
    }
}

fn config_for<S: Step>(ctx: &Context) -> Result<S::Config, Error> {
    checked_config::<S::Config>(ctx.raw_config(), S::validate, "step")
}

/// `describe` for plugin `S`; `fallback_description` is its crate's description.
#[doc(hidden)]
pub fn describe<S: Step>(fallback_description: &str) -> StepInfo {
    S::describe().into_wit(fallback_description)
}

/// `validate` for plugin `S`: each line of the error is one entry.
#[doc(hidden)]
pub fn validate<S: Step>(config: &str) -> Result<(), Vec<String>> {
    validate_lines::<S::Config>(config, S::validate)
}

/// `run` for plugin `S`.
#[doc(hidden)]
pub fn run<S: Step>(request: StepRequest) -> Result<StepOutcome, String> {
    install_panic_hook();
    let ctx = Context::from_request(request);
    let config = config_for::<S>(&ctx).map_err(Error::into_message)?;
    S::run(&ctx, config)
        .map(Outcome::into_wit)
        .map_err(Error::into_message)
}

/// `resume` for plugin `S`.
#[doc(hidden)]
pub fn resume<S: Step>(
    request: StepRequest,
    state: String,
    decision: Decision,
) -> Result<StepOutcome, String> {
    install_panic_hook();
    let ctx = Context::from_request(request);
    let config = config_for::<S>(&ctx).map_err(Error::into_message)?;
    let state = host_json(&state, "wait state").map_err(Error::into_message)?;
    S::resume(&ctx, config, state, decision)
        .map(Outcome::into_wit)
        .map_err(Error::into_message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        run: String,
        #[serde(default)]
        n: u32,
    }

    struct Plugin;

    impl Step for Plugin {
        type Config = Config;

        fn validate(config: &Config) -> Result<(), Error> {
            if config.n > 5 {
                return Err("`n` must be at most 5\nsecond line".into());
            }
            Ok(())
        }

        fn run(_ctx: &Context, config: Config) -> Result<Outcome, Error> {
            Ok(Outcome::summary(config.run))
        }
    }

    fn request(config: &str) -> StepRequest {
        StepRequest {
            run_id: "wfr_x".into(),
            step_path: "1".into(),
            step_id: None,
            config: config.into(),
            context: "{}".into(),
            attempt: 1,
            idempotency_key: "k".into(),
            workspace: "/ws".into(),
            source_dir: None,
        }
    }

    #[test]
    fn config_errors_are_clear() {
        assert_eq!(
            run::<Plugin>(request("{}")).unwrap_err(),
            "invalid `with` for step: missing field `run`"
        );
        assert_eq!(
            validate::<Plugin>(r#"{"run": "x", "nn": 1}"#).unwrap_err(),
            vec!["unknown field `nn`, expected `run` or `n`".to_string()]
        );
        assert_eq!(
            validate::<Plugin>(r#"{"run": "x", "n": 9}"#)
                .unwrap_err()
                .len(),
            2
        );
        assert!(validate::<Plugin>(r#"{"run": "x"}"#).is_ok());
    }

    #[test]
    fn runs() {
        let StepOutcome::Completed(result) = run::<Plugin>(request(r#"{"run":"hi"}"#)).unwrap()
        else {
            panic!("not completed")
        };
        assert_eq!(result.summary.as_deref(), Some("hi"));
        assert_eq!(result.outputs, "{}");
    }
}
