//! The three phases every capability goes through, and what each phase is handed: link (once
//! per engine), grant (once per plugin load), prepare (once per call, from the grant and the
//! call's [`CallEnv`]).

use super::LimitGrant;
use crate::call_log::CallLog;
use crate::error::{Capability, Denials, GrantError};
use crate::secrets::Secrets;
use crate::settings::SandboxSettings;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::fmt::Debug;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wasmtime::component::Linker;
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi_http::WasiHttpView;

/// What the engine hands the sandbox for one call; the sandbox decides the rest from the
/// plugin's grants.
#[derive(Clone, Default)]
pub struct CallEnv {
    /// Where the call's log lines go.
    pub log: CallLog,
    /// The run's workspace: preopened for plugins granted `workspace`, read-write for the
    /// programs they run. None for calls outside a run (triggers, notifiers).
    pub workspace: Option<PathBuf>,
    /// Directories the run's files come from (the workflow's, the project's): readable by the
    /// programs the plugin runs.
    pub sources: Vec<PathBuf>,
    /// The step's own time limit; the plugin's limit applies as well.
    pub timeout: Option<Duration>,
}

/// Read-only or read-write.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum FileMode {
    /// Read only.
    #[default]
    Ro,
    /// Read and write.
    Rw,
}

/// The data of a call's store, as the capabilities' host functions need it: WASI's and
/// `wasi:http`'s views.
pub(crate) trait CallData: WasiHttpView + Send + 'static {}

/// One capability in its three phases.
pub(crate) trait HostCapability {
    /// Which capability this is, for refusals and messages.
    const NAME: Capability;
    /// Its keys in `plugin.toml`'s `[capabilities]` table.
    const REQUEST_KEYS: &'static [&'static str];
    /// Its keys in the operator's `[plugins.NAME]` section.
    const OPERATOR_KEYS: &'static [&'static str];

    /// What a plugin asks for (its keys, flattened into `[capabilities]`).
    type Request: DeserializeOwned + Serialize + Default + Clone + Debug;
    /// What the operator says (its keys, flattened into `[plugins.NAME]`).
    type Operator: DeserializeOwned + Serialize + Default + Clone + Debug;
    /// What the plugin is allowed, decided at load.
    type Grant: Serialize + Default + Clone + Debug + Send + Sync;
    /// What one call may use; the host functions' `self`.
    type State: Send + 'static;

    /// Link: adds the host functions to the shared linker. `state` finds this capability's
    /// state in a call's store.
    fn link<T: CallData>(
        linker: &mut Linker<T>,
        state: fn(&mut T) -> &mut Self::State,
    ) -> wasmtime::Result<()>;

    /// Grant: the request narrowed by the operator.
    fn grant(request: &Self::Request, operator: &Self::Operator)
    -> Result<Self::Grant, GrantError>;

    /// Prepare: the state of one call.
    fn prepare(grant: &Self::Grant, cx: &mut Prepare<'_>) -> Result<Self::State, String>;
}

/// What every capability's prepare phase can see of the call.
pub(crate) struct Prepare<'a> {
    /// The plugin called.
    pub plugin: &'a str,
    pub env: &'a CallEnv,
    /// The plugin's WASI context, being built: preopens, environment, stdio.
    pub wasi: &'a mut WasiCtxBuilder,
    pub denials: &'a Denials,
    pub secrets: &'a Secrets,
    /// Host-wide settings: what to do when programs cannot be fully confined here, and who
    /// they run as.
    pub settings: SandboxSettings,
    /// The plugin's limits in force, its programs' among them.
    pub limits: &'a LimitGrant,
    /// When the call's time is up; programs it starts never outlive it.
    pub deadline: Instant,
    /// What one capability grants that another passes on.
    pub shared: &'a Shared,
}

/// Grants that programs started through `exec` inherit: the host directories `files` grants
/// and the variables `env` grants.
#[derive(Default)]
pub(crate) struct Shared {
    pub dirs: Vec<(PathBuf, FileMode)>,
    pub env: Vec<(String, String)>,
}

/// Keeps the requested entries the operator also lists; all of them when the operator is
/// silent. An operator entry the plugin did not request grants nothing.
pub(crate) fn narrow(requested: &[String], operator: Option<&Vec<String>>) -> Vec<String> {
    match operator {
        None => requested.to_vec(),
        Some(allowed) => requested
            .iter()
            .filter(|r| allowed.contains(r))
            .cloned()
            .collect(),
    }
}
