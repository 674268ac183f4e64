//! The `trigger` world: validate a trigger's config, ask what it listens for, and let it decide
//! what an event means.

use super::{expect_kind, other_world};
use crate::bindings::types::{Subscription, TriggerDecision, TriggerEvent};
use crate::capabilities::CallEnv;
use crate::error::CallFailure;
use crate::kind::PluginKind;
use crate::plugin::Exports;
use crate::plugin::Plugin;
use crate::sandbox::Sandbox;

impl Sandbox {
    /// The problems the plugin finds in a trigger's `with` block (JSON); empty when valid.
    pub async fn trigger_validate(
        &self,
        plugin: &Plugin,
        env: CallEnv,
        config: &str,
    ) -> Result<Vec<String>, CallFailure> {
        let config = config.to_string();
        expect_kind(plugin, PluginKind::Trigger)?;
        self.call(plugin, env, async |store, instance, exports| {
            let Exports::Trigger(trigger) = exports else {
                return Err(other_world());
            };
            let trigger = trigger.load(&mut *store, instance)?;
            Ok(Ok(trigger
                .call_validate(store, &config)
                .await?
                .err()
                .unwrap_or_default()))
        })
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
        expect_kind(plugin, PluginKind::Trigger)?;
        self.call(plugin, env, async |store, instance, exports| {
            let Exports::Trigger(trigger) = exports else {
                return Err(other_world());
            };
            let trigger = trigger.load(&mut *store, instance)?;
            trigger.call_subscribe(store, &config).await
        })
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
        expect_kind(plugin, PluginKind::Trigger)?;
        self.call(plugin, env, async |store, instance, exports| {
            let Exports::Trigger(trigger) = exports else {
                return Err(other_world());
            };
            let trigger = trigger.load(&mut *store, instance)?;
            Ok(Ok(trigger.call_on_event(store, &config, event).await?))
        })
        .await
    }
}
