//! The wasmops sandbox: everything a plugin can touch, behind the small API the engine calls.
//!
//! - [`Sandbox::new`] sets up the engine every plugin shares and links the host capabilities
//!   once;
//! - [`Sandbox::load`] turns a `plugin.toml` and a component into a [`Plugin`] with its grants
//!   decided (its request narrowed by the operator's section, never widened);
//! - the world calls — [`Sandbox::step_run`], [`Sandbox::step_resume`],
//!   [`Sandbox::step_validate`], [`Sandbox::step_describe`], [`Sandbox::trigger_subscribe`],
//!   [`Sandbox::trigger_on_event`], [`Sandbox::notify`]… — each instantiate the plugin in a
//!   fresh store with the capabilities of that one call, bounded in memory, CPU and time.
//!
//! Deny by default: no ambient environment, sockets, files, hosts, programs or secrets. Each
//! capability lives in one file under [`capabilities`]; what the sandbox refused a plugin comes
//! back as [`Denial`] values naming the capability, a trap as a [`TrapKind`].

#![warn(missing_docs)]

mod bindings;
mod call;
pub mod capabilities;
mod compile;
mod error;
pub mod manifest;
mod plugin;
mod redact;
mod worlds;

pub use bindings::types::{
    Approvers, Decision, DecisionKind, RunEvent, StepInfo, StepOutcome, StepRequest, StepResult,
    Subscription, TriggerDecision, TriggerEvent, WaitRequest,
};
pub use call::CallEnv;
pub use capabilities::exec::confine::Unconfined;
pub use capabilities::exec::probe::{ConfinementSupport, support as confinement_support};
pub use capabilities::log::{CallLog, LogLine};
pub use capabilities::secrets::Secrets;
pub use capabilities::{Grants, OperatorGrant, Request};
pub use error::{CallFailure, Capability, Denial, FailureCause, GrantError, LoadError, TrapKind};
pub use manifest::{Manifest, PluginKind};
pub use plugin::Plugin;
pub use redact::Redactor;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmtime::component::Linker;

/// How often the epoch ticks; CPU budgets are counted in these.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// How the sandbox is set up.
#[derive(Clone, Debug, Default)]
pub struct SandboxOptions {
    /// Where compiled components are cached; none compiles on every start.
    pub cache_dir: Option<PathBuf>,
    /// The operator's `[plugins.NAME]` sections, by plugin name.
    pub operator: BTreeMap<String, OperatorGrant>,
    /// The operator's secret values; plugins read the ones granted to them.
    pub secrets: Secrets,
    /// Host-wide settings.
    pub settings: SandboxSettings,
}

/// Host-wide sandbox settings (`[sandbox]` in the config file).
#[derive(Clone, Copy, Debug, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSettings {
    /// When the kernel lacks Landlock or network namespaces: `refuse` to run programs
    /// (default) or `allow` them with what confinement there is.
    #[serde(default)]
    pub unconfined: Unconfined,
}

/// The engine every plugin shares, the host capabilities linked into it, and the operator's
/// grants and secrets.
pub struct Sandbox {
    engine: wasmtime::Engine,
    linker: Linker<call::CallState>,
    cache_dir: Option<PathBuf>,
    operator: BTreeMap<String, OperatorGrant>,
    secrets: Secrets,
    settings: SandboxSettings,
    instantiations: AtomicU64,
}

impl Sandbox {
    /// Sets up the engine and links every capability (phase 1 of each).
    pub fn new(options: SandboxOptions) -> Result<Sandbox, LoadError> {
        let setup = |e: &dyn std::fmt::Display| LoadError::Runtime(e.to_string());
        if let Some(dir) = &options.cache_dir {
            std::fs::create_dir_all(dir).map_err(|e| setup(&e))?;
        }
        let engine = compile::engine(EPOCH_TICK).map_err(|e| setup(&e))?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(|e| setup(&e))?;
        capabilities::link_all(&mut linker).map_err(|e| setup(&e))?;
        Ok(Sandbox {
            engine,
            linker,
            cache_dir: options.cache_dir,
            operator: options.operator,
            secrets: options.secrets,
            settings: options.settings,
            instantiations: AtomicU64::new(0),
        })
    }

    /// The operator's secret values, for templates and redaction.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// The host-wide settings in force.
    pub fn settings(&self) -> SandboxSettings {
        self.settings
    }

    /// Plugin instances created since start, for `/metrics`.
    pub fn instantiations(&self) -> u64 {
        self.instantiations.load(Ordering::Relaxed)
    }
}
