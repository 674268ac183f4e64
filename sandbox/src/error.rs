//! What can go wrong loading or calling a plugin, as values: a refusal names its capability, a
//! trap its kind. Text is made only when an error is shown.

use crate::kind::PluginKind;
use serde::Serialize;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A capability a plugin can be granted. Refusals and grants name one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Capability {
    /// Leveled lines into the step log.
    Log,
    /// Secret values, by granted name.
    Secrets,
    /// Host environment variables, by granted name.
    Env,
    /// The run workspace and operator-granted directories.
    Files,
    /// Outbound `wasi:http` requests to granted hosts.
    Http,
    /// Granted programs, confined.
    Exec,
}

impl Capability {
    /// The name used in `plugin.toml`, the config file and messages.
    pub fn name(self) -> &'static str {
        match self {
            Capability::Log => "log",
            Capability::Secrets => "secrets",
            Capability::Env => "env",
            Capability::Files => "files",
            Capability::Http => "http",
            Capability::Exec => "exec",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One thing the sandbox refused a plugin during a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denial {
    /// The capability the plugin lacked.
    pub capability: Capability,
    /// What was refused, e.g. ``program `python3` is not granted``.
    pub what: String,
    /// What would help, e.g. `granted: bash`.
    pub hint: Option<String>,
}

impl Denial {
    pub(crate) fn new(capability: Capability, what: impl Into<String>) -> Denial {
        Denial {
            capability,
            what: what.into(),
            hint: None,
        }
    }

    pub(crate) fn hint(mut self, hint: impl Into<String>) -> Denial {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Denial {
            capability,
            what,
            hint,
        } = self;
        write!(f, "{capability}: {what} (capability `{capability}`")?;
        if let Some(hint) = hint {
            write!(f, "; {hint}")?;
        }
        f.write_str(")")
    }
}

impl std::error::Error for Denial {}

/// The refusals one call keeps; a plugin looping on a refused request cannot grow the host's
/// memory, only the count of the ones left out.
const MAX_DENIALS: usize = 32;

/// What the sandbox refused during one call, shared by the capabilities that refuse.
#[derive(Clone, Default)]
pub(crate) struct Denials(Arc<Mutex<Refused>>);

#[derive(Default)]
struct Refused {
    kept: Vec<Denial>,
    more: u64,
}

impl Denials {
    fn refused(&self) -> std::sync::MutexGuard<'_, Refused> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a refusal and returns the message the plugin gets.
    pub(crate) fn refuse(&self, denial: Denial) -> String {
        let message = denial.to_string();
        let mut refused = self.refused();
        if refused.kept.len() < MAX_DENIALS {
            refused.kept.push(denial);
        } else {
            refused.more = refused.more.saturating_add(1);
        }
        message
    }

    /// The refusals kept, and how many more there were.
    pub(crate) fn take(&self) -> (Vec<Denial>, u64) {
        let mut refused = self.refused();
        (
            std::mem::take(&mut refused.kept),
            std::mem::take(&mut refused.more),
        )
    }
}

/// Why a call trapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrapKind {
    /// The guest spent its CPU budget (counted in epoch ticks while it runs).
    CpuTime {
        /// The budget.
        limit: Duration,
    },
    /// The guest asked for more linear memory than it may have.
    Memory {
        /// The limit in bytes.
        limit: u64,
    },
    /// The whole call, host calls included, took longer than allowed.
    WallTime {
        /// The limit.
        limit: Duration,
    },
    /// The guest trapped on its own: a panic, an unreachable, an out-of-bounds access.
    Guest {
        /// The trap's first line, then a short backtrace.
        message: String,
    },
}

/// A request or a grant that cannot be honoured, found when a plugin is loaded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct GrantError {
    /// The capability whose request or operator grant is malformed; none for the limits.
    pub capability: Option<Capability>,
    /// What is wrong with it.
    pub message: String,
}

impl GrantError {
    pub(crate) fn new(capability: Capability, message: impl Into<String>) -> GrantError {
        GrantError {
            capability: Some(capability),
            message: message.into(),
        }
    }

    pub(crate) fn limits(message: String) -> GrantError {
        GrantError {
            capability: None,
            message,
        }
    }
}

/// Why a plugin could not be loaded or made ready to run.
#[derive(Clone, Debug, thiserror::Error)]
pub enum LoadError {
    /// The engine itself could not be set up.
    #[error("cannot set up the plugin runtime: {0}")]
    Runtime(String),
    /// `plugin.toml` is malformed or targets a world this host does not link.
    #[error("{0}")]
    Manifest(String),
    /// A capability request or the operator's grant cannot be honoured.
    #[error("plugin `{plugin}`: {error}")]
    Grant {
        /// The plugin's name.
        plugin: String,
        /// What is wrong.
        error: GrantError,
    },
    /// The bytes are not a valid component for this engine.
    #[error("plugin `{plugin}` is not a valid component: {message}")]
    Compile {
        /// The plugin's name.
        plugin: String,
        /// The compiler's message.
        message: String,
    },
    /// The component imports something this host does not provide.
    #[error("plugin `{plugin}` cannot be linked: {message}")]
    Link {
        /// The plugin's name.
        plugin: String,
        /// The linker's message.
        message: String,
    },
    /// The component lacks the export its kind requires.
    #[error("plugin `{plugin}` does not export the {kind} interface of {world}: {message}")]
    MissingExport {
        /// The plugin's name.
        plugin: String,
        /// Its kind, whose interface is missing.
        kind: PluginKind,
        /// The world it says it targets.
        world: String,
        /// What the lookup said.
        message: String,
    },
}

/// Why a call did not produce the plugin's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureCause {
    /// The plugin returned an error of its own (its text).
    Plugin(String),
    /// The instance trapped or ran out of a limit.
    Trap(TrapKind),
    /// The plugin could not be loaded or the call could not be set up.
    Setup(String),
    /// The plugin is of another kind than the call needs.
    WrongKind {
        /// What the call needs.
        expected: PluginKind,
        /// What the plugin is.
        actual: PluginKind,
    },
}

/// A failed call: the cause, and everything the sandbox refused the plugin along the way (a
/// failure that followed a refusal is usually explained by it, whatever the plugin made of it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallFailure {
    /// The plugin called.
    pub plugin: String,
    /// Why the call failed.
    pub cause: FailureCause,
    /// Refusals during the call, in order (the first few dozen).
    pub denials: Vec<Denial>,
    /// How many more refusals there were than `denials` holds.
    pub more_denials: u64,
}

impl CallFailure {
    pub(crate) fn setup(plugin: &str, message: impl Into<String>) -> CallFailure {
        CallFailure {
            plugin: plugin.to_string(),
            cause: FailureCause::Setup(message.into()),
            denials: Vec::new(),
            more_denials: 0,
        }
    }
}

impl fmt::Display for CallFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let plugin = &self.plugin;
        match &self.cause {
            FailureCause::Plugin(message) | FailureCause::Setup(message) => f.write_str(message)?,
            FailureCause::Trap(TrapKind::CpuTime { limit }) => write!(
                f,
                "plugin `{plugin}` exceeded its time limit ({})",
                humantime::format_duration(*limit)
            )?,
            FailureCause::Trap(TrapKind::WallTime { limit }) => write!(
                f,
                "plugin `{plugin}` timed out after {}",
                humantime::format_duration(*limit)
            )?,
            FailureCause::Trap(TrapKind::Memory { limit }) => write!(
                f,
                "plugin `{plugin}` exceeded its memory limit ({} MiB)",
                limit >> 20
            )?,
            FailureCause::Trap(TrapKind::Guest { message }) => {
                write!(f, "plugin `{plugin}` crashed: {message}")?;
            }
            FailureCause::WrongKind { expected, actual } => write!(
                f,
                "plugin `{plugin}` is a {actual} plugin, not a {expected} plugin"
            )?,
        }
        if !self.denials.is_empty() {
            let denials: Vec<String> = self.denials.iter().map(ToString::to_string).collect();
            write!(f, "\nsandbox denied: {}", denials.join("; "))?;
            if self.more_denials > 0 {
                write!(f, "; and {} more", self.more_denials)?;
            }
            if self.more_denials > 0 {
                write!(f, "; and {} more", self.more_denials)?;
            }
        } else if let FailureCause::Plugin(message)
        | FailureCause::Trap(TrapKind::Guest { message }) = &self.cause
            && let Some(hint) = guest_error_hint(message)
        {
            write!(f, "\n{hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CallFailure {}

/// Filesystem refusals happen inside the guest's libc (no preopen matches, or a read-only
/// one), so the host never sees them; recognise the guest's messages and name the capability.
fn guest_error_hint(error: &str) -> Option<&'static str> {
    const SIGNS: &[&str] = &[
        "pre-opened file descriptor",
        "Capabilities insufficient",
        "Operation not permitted",
        "Read-only file system",
        "Permission denied",
        // WASI's ENOENT: a path outside every preopen simply does not exist for the guest.
        "(os error 44)",
    ];
    SIGNS.iter().any(|s| error.contains(s)).then_some(
        "sandbox: a plugin sees only the run workspace and the directories granted to it (capability `files`)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_keeps_the_first_refusals_and_counts_the_rest() {
        let denials = Denials::default();
        for i in 0..MAX_DENIALS + 8 {
            denials.refuse(Denial::new(Capability::Http, format!("request {i}")));
        }
        let (kept, more) = denials.take();
        assert_eq!((kept.len(), more), (MAX_DENIALS, 8));
        let failure = CallFailure {
            plugin: "p".into(),
            cause: FailureCause::Plugin("refused".into()),
            denials: kept,
            more_denials: more,
        };
        let text = failure.to_string();
        assert!(
            text.starts_with("refused\nsandbox denied: http: request 0"),
            "{text}"
        );
        assert!(text.ends_with("; and 8 more"), "{text}");
        assert_eq!(denials.take(), (Vec::new(), 0), "taken once");
    }
}
