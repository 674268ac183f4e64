//! The `notifier` world: validate a notifier's config and tell it about a run event.

use super::Load;
use crate::bindings::notifier::Guest;
use crate::bindings::types::RunEvent;
use crate::capabilities::CallEnv;
use crate::error::CallFailure;
use crate::kind::PluginKind;
use crate::plugin::{Exports, Plugin};
use crate::sandbox::Sandbox;

const NOTIFIER: Load<Guest> = |exports, store, instance| {
    let found = exports.iter().find_map(|export| match export {
        Exports::Notifier(notifier) => Some(notifier),
        _ => None,
    });
    found.map(|notifier| notifier.load(store, instance))
};

impl Sandbox {
    /// The problems the plugin finds in a notifier's `with` block (JSON); empty when valid.
    pub async fn notifier_validate(
        &self,
        plugin: &Plugin,
        env: CallEnv,
        config: &str,
    ) -> Result<Vec<String>, CallFailure> {
        let config = config.to_string();
        self.world_call(
            plugin,
            PluginKind::Notifier,
            env,
            NOTIFIER,
            async |notifier, store| {
                let verdict = notifier.call_validate(store, &config).await?;
                Ok(Ok(verdict.err().unwrap_or_default()))
            },
        )
        .await
    }

    /// Tells the plugin about a run event; its error is the delivery's failure.
    pub async fn notify(
        &self,
        plugin: &Plugin,
        env: CallEnv,
        config: &str,
        event: &RunEvent,
    ) -> Result<(), CallFailure> {
        let config = config.to_string();
        self.world_call(
            plugin,
            PluginKind::Notifier,
            env,
            NOTIFIER,
            async |notifier, store| notifier.call_notify(store, &config, event).await,
        )
        .await
    }
}
