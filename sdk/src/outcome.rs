//! What a step hands back: [`Outcome`] (done, or parked waiting for a decision) and [`Info`] (what
//! the plugin says about itself).
//!
//! These are plain Rust values with `serde_json` maps instead of the WIT records' JSON strings, so
//! a plugin never serializes by hand; the conversions to the WIT types live here too.

use std::time::Duration;

use serde_json::{Map, Value};

use crate::bindings::wasmops::plugin::types::{
    Approvers as WitApprovers, StepInfo, StepOutcome, StepResult, WaitRequest,
};

/// Step outputs: a JSON object read by later steps as `steps.<id>.outputs.<key>`.
pub type Outputs = Map<String, Value>;

/// How a step ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Finished successfully.
    Completed {
        /// One line shown under the step, e.g. `3 to add, 1 to change, 0 to destroy`.
        summary: Option<String>,
        /// Outputs later steps can read.
        outputs: Outputs,
    },
    /// Parks the run until a person or a timer decides; the host then calls `resume`.
    Waiting(Wait),
}

impl Outcome {
    /// Completed, with no summary and no outputs yet (add them with the `with_*` methods).
    pub fn completed() -> Self {
        Self::Completed {
            summary: None,
            outputs: Outputs::new(),
        }
    }

    /// Completed with this summary line.
    pub fn summary(summary: impl Into<String>) -> Self {
        Self::completed().with_summary(summary)
    }

    /// Parks the run; see [`Wait`].
    pub fn waiting(wait: Wait) -> Self {
        Self::Waiting(wait)
    }

    /// Sets the summary line (of a wait, too).
    pub fn with_summary(mut self, line: impl Into<String>) -> Self {
        match &mut self {
            Self::Completed { summary, .. } => *summary = Some(line.into()),
            Self::Waiting(wait) => wait.summary = line.into(),
        }
        self
    }

    /// Adds one output. Ignored on a wait, which has no outputs.
    pub fn with_output(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        if let Self::Completed { outputs, .. } = &mut self {
            outputs.insert(key.into(), value.into());
        }
        self
    }

    /// Adds all of these outputs (later keys win). Ignored on a wait.
    pub fn with_outputs(mut self, more: Outputs) -> Self {
        if let Self::Completed { outputs, .. } = &mut self {
            outputs.extend(more);
        }
        self
    }

    /// The WIT value the host receives.
    pub fn into_wit(self) -> StepOutcome {
        match self {
            Self::Completed { summary, outputs } => StepOutcome::Completed(StepResult {
                summary,
                outputs: Value::Object(outputs).to_string(),
            }),
            Self::Waiting(wait) => StepOutcome::Waiting(wait.into_wit()),
        }
    }
}

impl From<Wait> for Outcome {
    fn from(wait: Wait) -> Self {
        Self::Waiting(wait)
    }
}

/// A parked step: the summary shown while waiting, state handed back to `resume`, who may decide
/// and when the timer decides instead.
#[derive(Clone, Debug, PartialEq)]
pub struct Wait {
    /// Shown while waiting, e.g. `Waiting for approval from release-managers`.
    pub summary: String,
    /// Opaque to the host; comes back as `state` in [`crate::Step::resume`].
    pub state: Value,
    /// `None`: anyone with API access may continue.
    pub approvers: Option<Approvers>,
    /// After this long the host resumes the step with a `timeout` decision.
    pub timeout: Option<Duration>,
}

impl Wait {
    /// A wait anyone may continue, with no state and no timeout.
    pub fn new(summary: impl Into<String>) -> Self {
        Self {
            summary: summary.into(),
            state: Value::Null,
            approvers: None,
            timeout: None,
        }
    }

    /// State to get back in `resume`.
    pub fn with_state(mut self, state: Value) -> Self {
        self.state = state;
        self
    }

    /// Only these users and groups may approve or reject.
    pub fn with_approvers(mut self, approvers: Approvers) -> Self {
        self.approvers = Some(approvers);
        self
    }

    /// The timer decides after this long.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    fn into_wit(self) -> WaitRequest {
        WaitRequest {
            summary: self.summary,
            state: self.state.to_string(),
            approvers: self.approvers.map(|a| WitApprovers {
                user_names: a.user_names,
                groups: a.groups,
            }),
            timeout_ms: self
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        }
    }
}

/// Who may decide a [`Wait`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Approvers {
    /// Users who may decide, by name.
    pub user_names: Vec<String>,
    /// Groups whose members may decide.
    pub groups: Vec<String>,
}

/// What a plugin says about itself (`describe`).
#[derive(Clone, Debug, PartialEq)]
pub struct Info {
    /// One sentence. Left empty, the plugin crate's `description` from Cargo.toml is used.
    pub description: String,
    /// JSON Schema of the `with` block; `{}` when the plugin validates by hand.
    pub config_schema: Value,
    /// Output keys the step sets.
    pub outputs: Vec<String>,
}

impl Default for Info {
    fn default() -> Self {
        Self {
            description: String::new(),
            config_schema: Value::Object(Map::new()),
            outputs: Vec::new(),
        }
    }
}

impl Info {
    /// Info with this description, an empty schema and no declared outputs.
    pub fn new(description: impl Into<String>) -> Self {
        Self {
            description: description.into(),
            ..Self::default()
        }
    }

    /// Sets the JSON Schema of the `with` block.
    pub fn with_schema(mut self, schema: Value) -> Self {
        self.config_schema = schema;
        self
    }

    /// Declares the output keys the step sets.
    pub fn with_outputs<I, S>(mut self, keys: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.outputs = keys.into_iter().map(Into::into).collect();
        self
    }

    /// The WIT value; `fallback_description` fills an empty description.
    pub fn into_wit(self, fallback_description: &str) -> StepInfo {
        let description = if self.description.is_empty() {
            fallback_description.to_string()
        } else {
            self.description
        };
        StepInfo {
            description,
            config_schema: self.config_schema.to_string(),
            outputs: self.outputs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_builder() {
        let outcome = Outcome::summary("ok")
            .with_output("n", 3)
            .with_output("s", "x");
        let StepOutcome::Completed(result) = outcome.into_wit() else {
            panic!("not completed")
        };
        assert_eq!(result.summary.as_deref(), Some("ok"));
        assert_eq!(result.outputs, r#"{"n":3,"s":"x"}"#);
    }

    #[test]
    fn wait_builder() {
        let outcome: Outcome = Wait::new("Waiting for approval")
            .with_state(serde_json::json!({"n": 1}))
            .with_timeout(Duration::from_secs(2))
            .into();
        let StepOutcome::Waiting(wait) = outcome.into_wit() else {
            panic!("not waiting")
        };
        assert_eq!(wait.state, r#"{"n":1}"#);
        assert_eq!(wait.timeout_ms, Some(2000));
        assert!(wait.approvers.is_none());
    }

    #[test]
    fn info_falls_back_to_package_description() {
        assert_eq!(Info::default().into_wit("pkg").description, "pkg");
        assert_eq!(Info::new("mine").into_wit("pkg").description, "mine");
        assert_eq!(Info::default().into_wit("").config_schema, "{}");
    }
}
