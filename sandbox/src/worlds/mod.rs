//! The worlds a plugin can target, one file each: the calls the engine makes into a plugin of
//! that kind.

mod notifier;
mod step;
mod trigger;

use crate::error::{CallFailure, FailureCause};
use crate::kind::PluginKind;
use crate::plugin::Plugin;

/// Refuses a call into a plugin of another kind before anything is instantiated.
fn expect_kind(plugin: &Plugin, expected: PluginKind) -> Result<(), CallFailure> {
    if plugin.kind() == expected {
        return Ok(());
    }
    Err(CallFailure {
        plugin: plugin.name().to_string(),
        cause: FailureCause::WrongKind {
            expected,
            actual: plugin.kind(),
        },
        denials: Vec::new(),
    })
}

/// The error a call body returns when the linked exports are not its world's, which
/// [`expect_kind`] rules out before the call.
fn other_world() -> wasmtime::Error {
    wasmtime::format_err!("the plugin's exports are not of this world")
}
