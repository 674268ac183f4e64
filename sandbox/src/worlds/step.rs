//! The `step` world: describe, validate, run and resume a step plugin.

use super::Load;
use crate::bindings::step::Guest;
use crate::bindings::types::{Decision, StepInfo, StepOutcome, StepRequest};
use crate::capabilities::CallEnv;
use crate::error::CallFailure;
use crate::kind::PluginKind;
use crate::plugin::{Exports, Plugin};
use crate::sandbox::Sandbox;

const STEP: Load<Guest> = |exports, store, instance| {
    let found = exports.iter().find_map(|export| match export {
        Exports::Step(step) => Some(step),
        _ => None,
    });
    found.map(|step| step.load(store, instance))
};

impl Sandbox {
    /// What the plugin says about itself: description, config schema, outputs.
    pub async fn step_describe(
        &self,
        plugin: &Plugin,
        env: CallEnv,
    ) -> Result<StepInfo, CallFailure> {
        self.world_call(plugin, PluginKind::Step, env, STEP, async |step, store| {
            Ok(Ok(step.call_describe(store).await?))
        })
        .await
    }

    /// The problems the plugin finds in a `with` block (JSON), one line each; empty when it is
    /// valid.
    pub async fn step_validate(
        &self,
        plugin: &Plugin,
        env: CallEnv,
        config: &str,
    ) -> Result<Vec<String>, CallFailure> {
        let config = config.to_string();
        self.world_call(plugin, PluginKind::Step, env, STEP, async |step, store| {
            let verdict = step.call_validate(store, &config).await?;
            Ok(Ok(verdict.err().unwrap_or_default()))
        })
        .await
    }

    /// Runs a step: it completes, or asks to park the run.
    pub async fn step_run(
        &self,
        plugin: &Plugin,
        env: CallEnv,
        request: &StepRequest,
    ) -> Result<StepOutcome, CallFailure> {
        self.world_call(plugin, PluginKind::Step, env, STEP, async |step, store| {
            step.call_run(store, request).await
        })
        .await
    }

    /// Resumes a parked step with the state it parked with and the decision taken.
    pub async fn step_resume(
        &self,
        plugin: &Plugin,
        env: CallEnv,
        request: &StepRequest,
        state: &str,
        decision: &Decision,
    ) -> Result<StepOutcome, CallFailure> {
        let state = state.to_string();
        self.world_call(plugin, PluginKind::Step, env, STEP, async |step, store| {
            step.call_resume(store, request, &state, decision).await
        })
        .await
    }
}
