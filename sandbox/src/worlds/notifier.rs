//! The `notifier` world: validate a notifier's config and tell it about a run event.

use super::{expect_kind, other_world};
use crate::bindings::types::RunEvent;
use crate::capabilities::CallEnv;
use crate::error::CallFailure;
use crate::kind::PluginKind;
use crate::plugin::Exports;
use crate::plugin::Plugin;
use crate::sandbox::Sandbox;

impl Sandbox {
    /// The problems the plugin finds in a notifier's `with` block (JSON); empty when valid.
    pub async fn notifier_validate(
        &self,
        plugin: &Plugin,
        env: CallEnv,
        config: &str,
    ) -> Result<Vec<String>, CallFailure> {
        let config = config.to_string();
        expect_kind(plugin, PluginKind::Notifier)?;
        self.call(plugin, env, async |store, instance, exports| {
            let Exports::Notifier(notifier) = exports else {
                return Err(other_world());
            };
            let notifier = notifier.load(&mut *store, instance)?;
            Ok(Ok(notifier
                .call_validate(store, &config)
                .await?
                .err()
                .unwrap_or_default()))
        })
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
        expect_kind(plugin, PluginKind::Notifier)?;
        self.call(plugin, env, async |store, instance, exports| {
            let Exports::Notifier(notifier) = exports else {
                return Err(other_world());
            };
            let notifier = notifier.load(&mut *store, instance)?;
            notifier.call_notify(store, &config, event).await
        })
        .await
    }
}
