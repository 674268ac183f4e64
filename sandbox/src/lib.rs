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
mod call_log;
pub mod capabilities;
mod compile;
mod error;
mod kind;
mod limits;
pub mod manifest;
mod plugin;
mod renderer;
mod sandbox;
mod secrets;
mod settings;
mod state;
mod worlds;

pub use bindings::types::{
    Approvers, Decision, DecisionKind, RunEvent, StepInfo, StepOutcome, StepRequest, StepResult,
    Subscription, TriggerDecision, TriggerEvent, WaitRequest,
};
pub use call_log::{CallLog, LogLine};
pub use capabilities::exec::probe::{ConfinementSupport, support as confinement_support};
pub use capabilities::exec::workspace::remove_beneath;
pub use capabilities::{CallEnv, Grants, OperatorGrant, Request};
pub use error::{CallFailure, Capability, Denial, FailureCause, GrantError, LoadError, TrapKind};
pub use kind::{PluginKind, SUPPORTED_WORLDS};
pub use limits::{Limits, parse_duration, parse_size};
pub use manifest::{Manifest, check_name};
pub use plugin::{GrantBasis, Plugin, Provenance};
pub use renderer::{RenderError, RenderSession, TemplateRenderer};
pub use sandbox::{EPOCH_TICK, Sandbox, SandboxOptions};
pub use secrets::{Redactor, Secrets};
pub use settings::{ProgramUser, SandboxSettings, Unconfined};
