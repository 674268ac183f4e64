//! The [`Notifier`] trait a notifier plugin implements, the [`RunEvent`] it is told about, and the
//! glue [`crate::notifier_plugin!`] uses to turn it into the WIT `notifier` export.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::Error;
use crate::bindings::wasmops::plugin::types::RunEvent as WitRunEvent;
use crate::glue::{checked_config, host_json, install_panic_hook, validate_lines};

/// A notifier plugin. All functions are associated functions: the host makes a fresh instance for
/// every call, so there is no state to keep between them.
pub trait Notifier {
    /// The notifier's `with` block, deserialized with serde. Use `#[serde(deny_unknown_fields)]`
    /// so typos in workflows are caught by `validate`.
    type Config: DeserializeOwned;

    /// Checks beyond what deserializing `Config` already checks. Called on `validate` and again
    /// before `notify`.
    fn validate(config: &Self::Config) -> Result<(), Error> {
        let _ = config;
        Ok(())
    }

    /// Tells the outside world about a run event. An `Err` is recorded as a failed delivery.
    fn notify(config: &Self::Config, event: &RunEvent) -> Result<(), Error>;
}

/// A change in a run's status that a notifier is told about.
#[derive(Clone, Debug, PartialEq)]
pub struct RunEvent {
    /// The run (`wfr_…`).
    pub run_id: String,
    /// The workflow it runs.
    pub workflow: String,
    /// `queued`, `running`, `waiting`, `succeeded`, `failed` or `cancelled`.
    pub status: String,
    /// The whole run as the API returns it; `null` when the host sent none.
    pub run: Value,
}

impl RunEvent {
    /// An event with `null` for the run; for unit tests of plugin logic.
    pub fn new(
        run_id: impl Into<String>,
        workflow: impl Into<String>,
        status: impl Into<String>,
    ) -> Self {
        Self {
            run_id: run_id.into(),
            workflow: workflow.into(),
            status: status.into(),
            run: Value::Null,
        }
    }

    /// Builds an event from the raw WIT record. Fails when `run` is not JSON.
    pub fn from_wit(event: WitRunEvent) -> Result<Self, Error> {
        Ok(Self {
            run: host_json(&event.run, "run")?,
            run_id: event.run_id,
            workflow: event.workflow,
            status: event.status,
        })
    }

    /// The run is over: `succeeded`, `failed` or `cancelled`.
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "succeeded" | "failed" | "cancelled")
    }
}

const KIND: &str = "notifier";

/// `validate` for notifier `N`: each line of the error is one entry.
#[doc(hidden)]
pub fn validate<N: Notifier>(config: &str) -> Result<(), Vec<String>> {
    validate_lines::<N::Config>(config, N::validate)
}

/// `notify` for notifier `N`.
#[doc(hidden)]
pub fn notify<N: Notifier>(config: &str, event: WitRunEvent) -> Result<(), String> {
    install_panic_hook();
    let notify = || {
        let config = checked_config::<N::Config>(config, N::validate, KIND)?;
        let event = RunEvent::from_wit(event)?;
        N::notify(&config, &event)
    };
    notify().map_err(Error::into_message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        channel: String,
    }

    struct Plugin;

    impl Notifier for Plugin {
        type Config = Config;

        fn validate(config: &Config) -> Result<(), Error> {
            if !config.channel.starts_with('#') {
                return Err(
                    format!("`channel` must start with `#`, got `{}`", config.channel).into(),
                );
            }
            Ok(())
        }

        fn notify(config: &Config, event: &RunEvent) -> Result<(), Error> {
            if event.run["fail"] == true {
                return Err(
                    format!("{}: {} {}", config.channel, event.run_id, event.status).into(),
                );
            }
            Ok(())
        }
    }

    fn event(run: &str) -> WitRunEvent {
        WitRunEvent {
            run_id: "wfr_x".into(),
            workflow: "deploy".into(),
            status: "failed".into(),
            run: run.into(),
        }
    }

    #[test]
    fn config_errors_are_clear() {
        assert_eq!(
            validate::<Plugin>(r##"{"channel": "#ops", "chanel": 1}"##).unwrap_err(),
            vec!["unknown field `chanel`, expected `channel`".to_string()]
        );
        assert_eq!(
            validate::<Plugin>(r#"{"channel": "ops"}"#).unwrap_err(),
            vec!["`channel` must start with `#`, got `ops`".to_string()]
        );
        assert!(validate::<Plugin>(r##"{"channel": "#ops"}"##).is_ok());
        assert_eq!(
            notify::<Plugin>("{}", event("{}")).unwrap_err(),
            "invalid `with` for notifier: missing field `channel`"
        );
        assert_eq!(
            notify::<Plugin>(r#"{"channel": "ops"}"#, event("{}")).unwrap_err(),
            "invalid `with` for notifier: `channel` must start with `#`, got `ops`"
        );
    }

    #[test]
    fn notifies() {
        let config = r##"{"channel": "#ops"}"##;
        assert_eq!(notify::<Plugin>(config, event(r#"{"id":"wfr_x"}"#)), Ok(()));
        assert_eq!(notify::<Plugin>(config, event("")), Ok(()));
        assert_eq!(
            notify::<Plugin>(config, event(r#"{"fail":true}"#)).unwrap_err(),
            "#ops: wfr_x failed"
        );
        assert!(
            notify::<Plugin>(config, event("{"))
                .unwrap_err()
                .starts_with("the host sent invalid run: ")
        );
    }

    #[test]
    fn run_events() {
        let event = RunEvent::from_wit(event(r#"{"id":"wfr_x","status":"failed"}"#)).unwrap();
        assert_eq!(event.run["status"], "failed");
        assert_eq!(event.workflow, "deploy");
        assert!(event.is_finished());
        assert!(!RunEvent::new("wfr_y", "deploy", "running").is_finished());
        assert!(RunEvent::new("wfr_y", "deploy", "running").run.is_null());
    }
}
