//! The `trigger` world: validate a trigger's config, ask what it listens for, and let it decide
//! what an event means.

use super::Load;
use crate::bindings::trigger::Guest;
use crate::bindings::types::{Subscription, TriggerDecision, TriggerEvent};
use crate::capabilities::CallEnv;
use crate::error::CallFailure;
use crate::kind::PluginKind;
use crate::plugin::{Exports, Plugin};
use crate::sandbox::Sandbox;

const TRIGGER: Load<Guest> = |exports, store, instance| {
    let found = exports.iter().find_map(|export| match export {
        Exports::Trigger(trigger) => Some(trigger),
        _ => None,
    });
    found.map(|trigger| trigger.load(store, instance))
};

impl Sandbox {
    /// The problems the plugin finds in a trigger's `with` block (JSON); empty when valid.
    pub async fn trigger_validate(
        &self,
        plugin: &Plugin,
        env: CallEnv,
        config: &str,
    ) -> Result<Vec<String>, CallFailure> {
        let config = config.to_string();
        self.world_call(
            plugin,
            PluginKind::Trigger,
            env,
            TRIGGER,
            async |trigger, store| {
                let verdict = trigger.call_validate(store, &config).await?;
                Ok(Ok(verdict.err().unwrap_or_default()))
            },
        )
        .await
    }

    /// What the host should listen for on the trigger's behalf.
    pub async fn trigger_subscribe(
        &self,
        plugin: &Plugin,
        env: CallEnv,
        config: &str,
    ) -> Result<Vec<Subscription>, CallFailure> {
        let config = config.to_string();
        self.world_call(
            plugin,
            PluginKind::Trigger,
            env,
            TRIGGER,
            async |trigger, store| trigger.call_subscribe(store, &config).await,
        )
        .await
    }

    /// What one event means: fire with inputs, ignore it, or reject it with a reason.
    pub async fn trigger_on_event(
        &self,
        plugin: &Plugin,
        env: CallEnv,
        config: &str,
        event: &TriggerEvent,
    ) -> Result<TriggerDecision, CallFailure> {
        let config = config.to_string();
        self.world_call(
            plugin,
            PluginKind::Trigger,
            env,
            TRIGGER,
            async |trigger, store| Ok(Ok(trigger.call_on_event(store, &config, event).await?)),
        )
        .await
    }
}
