//! The sandbox itself: the engine every plugin shares, the host capabilities linked into it,
//! and the operator's grants and secrets.

use crate::capabilities::{self, OperatorGrant};
use crate::compile;
use crate::error::LoadError;
use crate::secrets::Secrets;
use crate::settings::SandboxSettings;
use crate::state::CallState;
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

/// The engine every plugin shares, the host capabilities linked into it, and the operator's
/// grants and secrets.
pub struct Sandbox {
    pub(crate) engine: wasmtime::Engine,
    pub(crate) linker: Linker<CallState>,
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) operator: BTreeMap<String, OperatorGrant>,
    pub(crate) secrets: Secrets,
    pub(crate) settings: SandboxSettings,
    pub(crate) instantiations: AtomicU64,
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
