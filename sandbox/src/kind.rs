//! The kinds of plugin and the world each targets.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The world versions this host links, by plugin kind.
pub const SUPPORTED_WORLDS: &[(PluginKind, &str)] = &[
    (PluginKind::Step, "wasmops:plugin/step-plugin@0.1.0"),
    (PluginKind::Trigger, "wasmops:plugin/trigger-plugin@0.1.0"),
    (PluginKind::Notifier, "wasmops:plugin/notifier-plugin@0.1.0"),
];

/// The kind of a plugin: which interface it exports.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Exports `step`: runs as a step of a workflow.
    Step,
    /// Exports `trigger`: starts runs.
    Trigger,
    /// Exports `notifier`: is told about runs.
    Notifier,
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PluginKind::Step => "step",
            PluginKind::Trigger => "trigger",
            PluginKind::Notifier => "notifier",
        })
    }
}

/// The newest world this host links for a kind.
pub(crate) fn newest_world(kind: PluginKind) -> &'static str {
    SUPPORTED_WORLDS
        .iter()
        .rev()
        .find(|(k, _)| *k == kind)
        .map(|(_, world)| *world)
        .unwrap_or_default()
}
