//! The [`Trigger`] trait a trigger plugin implements, its SDK types, and the glue
//! [`crate::trigger_plugin!`] uses to turn it into the WIT `trigger` export.
//!
//! A trigger says what the host should listen for on its behalf ([`Subscription`]s) and then
//! decides, one [`TriggerEvent`] at a time, whether a run starts ([`Verdict`]). The WIT
//! `on-event` has no error channel, so an `Err` from [`Trigger::on_event`] (including a bad config)
//! becomes a rejection carrying the error message.

use std::borrow::Cow;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::Error;
use crate::bindings::wasmops::plugin::types::{
    Subscription as WitSubscription, TriggerDecision, TriggerEvent as WitTriggerEvent,
};
use crate::glue::{checked_config, host_json, install_panic_hook, validate_lines};

/// A trigger plugin. All functions are associated functions: the host makes a fresh instance for
/// every call, so there is no state to keep between them.
pub trait Trigger {
    /// The trigger's `with` block, deserialized with serde. Use `#[serde(deny_unknown_fields)]` so
    /// typos in workflows are caught by `validate`.
    type Config: DeserializeOwned;

    /// Checks beyond what deserializing `Config` already checks. Called on `validate` and again
    /// before `subscribe` and `on_event`.
    fn validate(config: &Self::Config) -> Result<(), Error> {
        let _ = config;
        Ok(())
    }

    /// What the host should listen for on this trigger's behalf.
    fn subscribe(config: &Self::Config) -> Result<Vec<Subscription>, Error>;

    /// Decides what one event (a request, a tick, a finished run) means. An `Err` rejects the
    /// event with the error's message.
    fn on_event(config: &Self::Config, event: &TriggerEvent) -> Result<Verdict, Error>;
}

/// Something the host listens for on a trigger's behalf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Subscription {
    /// Requests to the trigger's route under `/hooks/{project}/{workflow}/{trigger}`.
    HttpRoute,
    /// A schedule.
    Cron {
        /// A five-field cron expression, or `@daily` and friends.
        expression: String,
        /// The IANA time zone the expression is read in, e.g. `Europe/Berlin` or `UTC`.
        time_zone: String,
    },
    /// Calls `on_event` (with source `poll`) every so often; at least every millisecond.
    Poll(Duration),
    /// Another workflow's run finished with one of the statuses.
    WorkflowFinished {
        /// The workflow whose runs to watch.
        workflow: String,
        /// `succeeded`, `failed`, `cancelled`…
        statuses: Vec<String>,
    },
}

impl Subscription {
    /// A schedule read in `time_zone`.
    pub fn cron(expression: impl Into<String>, time_zone: impl Into<String>) -> Self {
        Self::Cron {
            expression: expression.into(),
            time_zone: time_zone.into(),
        }
    }

    /// A schedule read in UTC.
    pub fn cron_utc(expression: impl Into<String>) -> Self {
        Self::cron(expression, "UTC")
    }

    /// Runs of `workflow` that finished with one of `statuses`.
    pub fn workflow_finished<I, S>(workflow: impl Into<String>, statuses: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::WorkflowFinished {
            workflow: workflow.into(),
            statuses: statuses.into_iter().map(Into::into).collect(),
        }
    }

    /// The WIT value the host receives. Fails for a poll interval under a millisecond, which the
    /// WIT cannot express.
    pub fn into_wit(self) -> Result<WitSubscription, Error> {
        Ok(match self {
            Self::HttpRoute => WitSubscription::HttpRoute,
            Self::Cron {
                expression,
                time_zone,
            } => WitSubscription::Cron((expression, time_zone)),
            Self::Poll(interval) => {
                let millis = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
                if millis == 0 {
                    return Err(Error::new(format!(
                        "a poll interval must be at least 1ms, got {interval:?}"
                    )));
                }
                WitSubscription::Poll(millis)
            }
            Self::WorkflowFinished { workflow, statuses } => {
                WitSubscription::WorkflowFinished((workflow, statuses))
            }
        })
    }
}

/// One event a trigger decides on: an HTTP request, a cron tick, a poll, a finished run.
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerEvent {
    /// `http`, `cron`, `poll` or `workflow`.
    pub source: String,
    /// Request headers as sent (empty for other sources).
    pub headers: Vec<(String, String)>,
    /// The request body (empty for other sources).
    pub body: Vec<u8>,
    /// Extra details (the schedule time, the finished run…); `null` when there are none.
    pub details: Value,
}

impl TriggerEvent {
    /// An event from `source` with no headers, no body and `null` details; for unit tests of
    /// plugin logic, with the `with_*` methods.
    pub fn new(source: impl Into<String>) -> Self {
        Self {
            source: source.into(),
            headers: Vec::new(),
            body: Vec::new(),
            details: Value::Null,
        }
    }

    /// Builds an event from the raw WIT record. Fails when `details` is not JSON.
    pub fn from_wit(event: WitTriggerEvent) -> Result<Self, Error> {
        Ok(Self {
            details: host_json(&event.details, "event details")?,
            source: event.source,
            headers: event.headers,
            body: event.body,
        })
    }

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// Sets the details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// The first value of header `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (invalid UTF-8 replaced).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body parsed as JSON into `T` (use [`Value`] for any JSON).
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| Error::new(format!("the event body is not the expected JSON: {e}")))
    }
}

/// Inputs of a run a trigger starts: a JSON object the workflow reads as `trigger.*`.
pub type Inputs = Map<String, Value>;

/// What a trigger decided about one event.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Start a run with these inputs.
    Fire(Inputs),
    /// Not for this trigger: no run starts.
    Ignore,
    /// Refuse the event: no run starts, and the host reports this reason.
    Reject(String),
}

impl Verdict {
    /// Fire with no inputs yet (add them with [`Verdict::with_input`]).
    pub fn fire() -> Self {
        Self::Fire(Inputs::new())
    }

    /// Fire with `inputs`, which must be a JSON object (`null` counts as `{}`).
    pub fn fire_json(inputs: Value) -> Result<Self, Error> {
        match inputs {
            Value::Object(inputs) => Ok(Self::Fire(inputs)),
            Value::Null => Ok(Self::fire()),
            other => Err(Error::new(format!(
                "trigger inputs must be a JSON object, not {other}"
            ))),
        }
    }

    /// Reject with this reason.
    pub fn reject(reason: impl Into<String>) -> Self {
        Self::Reject(reason.into())
    }

    /// Adds one input. Ignored unless firing.
    pub fn with_input(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        if let Self::Fire(inputs) = &mut self {
            inputs.insert(key.into(), value.into());
        }
        self
    }

    /// Adds all of these inputs (later keys win). Ignored unless firing.
    pub fn with_inputs(mut self, more: Inputs) -> Self {
        if let Self::Fire(inputs) = &mut self {
            inputs.extend(more);
        }
        self
    }

    /// The WIT value the host receives.
    pub fn into_wit(self) -> TriggerDecision {
        match self {
            Self::Fire(inputs) => TriggerDecision::Fire(Value::Object(inputs).to_string()),
            Self::Ignore => TriggerDecision::Ignore,
            Self::Reject(reason) => TriggerDecision::Reject(reason),
        }
    }
}

const KIND: &str = "trigger";

/// `validate` for trigger `T`: each line of the error is one entry.
#[doc(hidden)]
pub fn validate<T: Trigger>(config: &str) -> Result<(), Vec<String>> {
    validate_lines::<T::Config>(config, T::validate)
}

/// `subscribe` for trigger `T`.
#[doc(hidden)]
pub fn subscribe<T: Trigger>(config: &str) -> Result<Vec<WitSubscription>, String> {
    install_panic_hook();
    let subscribe = || {
        let config = checked_config::<T::Config>(config, T::validate, KIND)?;
        T::subscribe(&config)?
            .into_iter()
            .map(Subscription::into_wit)
            .collect::<Result<Vec<_>, Error>>()
    };
    subscribe().map_err(Error::into_message)
}

/// `on-event` for trigger `T`: an error becomes a rejection with its message.
#[doc(hidden)]
pub fn on_event<T: Trigger>(config: &str, event: WitTriggerEvent) -> TriggerDecision {
    install_panic_hook();
    let decide = || {
        let config = checked_config::<T::Config>(config, T::validate, KIND)?;
        let event = TriggerEvent::from_wit(event)?;
        T::on_event(&config, &event)
    };
    match decide() {
        Ok(verdict) => verdict.into_wit(),
        Err(error) => TriggerDecision::Reject(error.into_message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        token: String,
        #[serde(default)]
        poll_ms: Option<u64>,
    }

    struct Plugin;

    impl Trigger for Plugin {
        type Config = Config;

        fn validate(config: &Config) -> Result<(), Error> {
            if config.token.is_empty() {
                return Err("`token` must not be empty".into());
            }
            Ok(())
        }

        fn subscribe(config: &Config) -> Result<Vec<Subscription>, Error> {
            let mut subscriptions = vec![
                Subscription::HttpRoute,
                Subscription::cron_utc("@daily"),
                Subscription::workflow_finished("build", ["succeeded", "failed"]),
            ];
            if let Some(ms) = config.poll_ms {
                subscriptions.push(Subscription::Poll(Duration::from_millis(ms)));
            }
            Ok(subscriptions)
        }

        fn on_event(config: &Config, event: &TriggerEvent) -> Result<Verdict, Error> {
            match event.header("X-Token") {
                None => Ok(Verdict::Ignore),
                Some(token) if token != config.token => Ok(Verdict::reject("wrong token")),
                Some(_) => {
                    let body: Value = event.json()?;
                    Ok(Verdict::fire()
                        .with_input("source", event.source.clone())
                        .with_input("body", body)
                        .with_input("details", event.details.clone()))
                }
            }
        }
    }

    fn event(headers: &[(&str, &str)], body: &str, details: &str) -> WitTriggerEvent {
        WitTriggerEvent {
            source: "http".into(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
            details: details.into(),
        }
    }

    #[test]
    fn config_errors_are_clear() {
        assert_eq!(
            validate::<Plugin>(r#"{"token": "t", "tokn": 1}"#).unwrap_err(),
            vec!["unknown field `tokn`, expected `token` or `poll_ms`".to_string()]
        );
        assert_eq!(
            validate::<Plugin>(r#"{"token": ""}"#).unwrap_err(),
            vec!["`token` must not be empty".to_string()]
        );
        assert!(validate::<Plugin>(r#"{"token": "t"}"#).is_ok());
        assert_eq!(
            subscribe::<Plugin>("{}").unwrap_err(),
            "invalid `with` for trigger: missing field `token`"
        );
        // `validate` runs before `on_event`, and its error is a rejection.
        let TriggerDecision::Reject(reason) =
            on_event::<Plugin>(r#"{"token": ""}"#, event(&[("x-token", "")], "{}", ""))
        else {
            panic!("not rejected")
        };
        assert_eq!(
            reason,
            "invalid `with` for trigger: `token` must not be empty"
        );
    }

    #[test]
    fn subscriptions_convert() {
        let subscriptions = subscribe::<Plugin>(r#"{"token": "t", "poll_ms": 1500}"#).unwrap();
        assert_eq!(subscriptions.len(), 4);
        assert!(matches!(subscriptions[0], WitSubscription::HttpRoute));
        assert!(matches!(
            &subscriptions[1],
            WitSubscription::Cron((expression, zone)) if expression == "@daily" && zone == "UTC"
        ));
        assert!(matches!(
            &subscriptions[2],
            WitSubscription::WorkflowFinished((workflow, statuses))
                if workflow == "build" && statuses == &["succeeded", "failed"]
        ));
        assert!(matches!(subscriptions[3], WitSubscription::Poll(1500)));
        assert_eq!(
            subscribe::<Plugin>(r#"{"token": "t", "poll_ms": 0}"#).unwrap_err(),
            "a poll interval must be at least 1ms, got 0ns"
        );
    }

    #[test]
    fn decisions_convert() {
        let config = r#"{"token": "t"}"#;
        assert!(matches!(
            on_event::<Plugin>(config, event(&[], "", "")),
            TriggerDecision::Ignore
        ));
        assert!(matches!(
            on_event::<Plugin>(config, event(&[("X-TOKEN", "nope")], "", "")),
            TriggerDecision::Reject(reason) if reason == "wrong token"
        ));
        let TriggerDecision::Fire(inputs) = on_event::<Plugin>(
            config,
            event(&[("x-token", "t")], r#"{"ref":"main"}"#, r#"{"at":1}"#),
        ) else {
            panic!("did not fire")
        };
        assert_eq!(
            serde_json::from_str::<Value>(&inputs).unwrap(),
            json!({"source": "http", "body": {"ref": "main"}, "details": {"at": 1}})
        );
    }

    #[test]
    fn errors_become_rejections() {
        let config = r#"{"token": "t"}"#;
        let TriggerDecision::Reject(reason) =
            on_event::<Plugin>(config, event(&[("x-token", "t")], "not json", ""))
        else {
            panic!("not rejected")
        };
        assert!(
            reason.starts_with("the event body is not the expected JSON: "),
            "{reason}"
        );
        let TriggerDecision::Reject(reason) =
            on_event::<Plugin>(config, event(&[("x-token", "t")], "{}", "{"))
        else {
            panic!("not rejected")
        };
        assert!(
            reason.starts_with("the host sent invalid event details: "),
            "{reason}"
        );
    }

    #[test]
    fn event_helpers() {
        let event = TriggerEvent::new("http")
            .with_header("Content-Type", "application/json")
            .with_header("content-type", "text/plain")
            .with_body(r#"{"n": 2}"#);
        assert_eq!(event.header("CONTENT-TYPE"), Some("application/json"));
        assert_eq!(event.header("x-missing"), None);
        assert_eq!(event.text(), r#"{"n": 2}"#);
        assert_eq!(event.json::<Value>().unwrap()["n"], 2);
        assert!(event.details.is_null());
        assert!(TriggerEvent::new("cron").json::<Value>().is_err());
    }

    #[test]
    fn verdict_builders() {
        assert_eq!(
            Verdict::fire_json(json!({"a": 1})).unwrap(),
            Verdict::fire().with_input("a", 1)
        );
        assert_eq!(Verdict::fire_json(Value::Null).unwrap(), Verdict::fire());
        assert_eq!(
            Verdict::fire_json(json!([1])).unwrap_err().message(),
            "trigger inputs must be a JSON object, not [1]"
        );
        assert_eq!(Verdict::Ignore.with_input("a", 1), Verdict::Ignore);
        let TriggerDecision::Fire(inputs) = Verdict::fire().into_wit() else {
            panic!("did not fire")
        };
        assert_eq!(inputs, "{}");
    }
}
