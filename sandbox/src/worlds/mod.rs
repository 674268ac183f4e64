//! The worlds a plugin can target, one file each: the calls the engine makes into a plugin of
//! that kind.

mod notifier;
mod step;
mod trigger;

use crate::capabilities::CallEnv;
use crate::error::{CallFailure, FailureCause};
use crate::kind::PluginKind;
use crate::plugin::{Exports, Plugin};
use crate::sandbox::Sandbox;
use crate::state::CallState;
use wasmtime::Store;
use wasmtime::component::Instance;

/// Finds a world's export in an instance; `None` when the plugin's exports are another world's.
type Load<G> = fn(&[Exports], &mut Store<CallState>, &Instance) -> Option<wasmtime::Result<G>>;

impl Sandbox {
    /// One call into the `kind` export of `plugin`: refused before anything is instantiated
    /// when the plugin is of another kind; otherwise the export is loaded from a fresh
    /// instance and `body` calls it.
    async fn world_call<G, R>(
        &self,
        plugin: &Plugin,
        kind: PluginKind,
        env: CallEnv,
        load: Load<G>,
        body: impl AsyncFnOnce(G, &mut Store<CallState>) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, CallFailure> {
        if !plugin.is(kind) {
            return Err(CallFailure {
                plugin: plugin.name().to_string(),
                cause: FailureCause::WrongKind {
                    expected: kind,
                    actual: plugin.kind(),
                },
                denials: Vec::new(),
                more_denials: 0,
            });
        }
        self.call(plugin, env, async |store, instance, exports| {
            let export = load(exports, store, instance).unwrap_or_else(|| {
                Err(wasmtime::format_err!(
                    "the plugin's exports are not of the {kind} world"
                ))
            })?;
            body(export, store).await
        })
        .await
    }
}
