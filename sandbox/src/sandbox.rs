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
use std::sync::OnceLock;
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
    /// Started on the first compile: commands that only read manifests (list, inspect,
    /// validate) never reserve the instance pool or start the epoch thread.
    runtime: OnceLock<Result<Runtime, LoadError>>,
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) operator: BTreeMap<String, OperatorGrant>,
    pub(crate) secrets: Secrets,
    pub(crate) settings: SandboxSettings,
    pub(crate) instantiations: AtomicU64,
    /// Turns for plugin calls: at most [`compile::MAX_CONCURRENT_CALLS`] run at once (one
    /// fiber stack each), the rest wait rather than fail on an exhausted pool.
    pub(crate) turns: tokio::sync::Semaphore,
}

/// The engine and the linker with every capability's host functions.
pub(crate) struct Runtime {
    pub(crate) engine: wasmtime::Engine,
    pub(crate) linker: Linker<CallState>,
}

impl Runtime {
    /// Sets up the engine and links every capability (phase 1 of each).
    fn start() -> Result<Runtime, LoadError> {
        let setup = |e: wasmtime::Error| LoadError::Runtime(format!("{e:#}"));
        let engine = compile::engine(EPOCH_TICK).map_err(setup)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(setup)?;
        capabilities::link_all(&mut linker).map_err(setup)?;
        Ok(Runtime { engine, linker })
    }
}

impl Sandbox {
    /// A sandbox with these grants, secrets and settings; the engine starts when a plugin is
    /// first compiled.
    pub fn new(options: SandboxOptions) -> Result<Sandbox, LoadError> {
        if let Some(dir) = &options.cache_dir {
            std::fs::create_dir_all(dir)
                .map_err(|e| LoadError::Runtime(format!("cannot create {}: {e}", dir.display())))?;
        }
        Ok(Sandbox {
            runtime: OnceLock::new(),
            cache_dir: options.cache_dir,
            operator: options.operator,
            secrets: options.secrets,
            settings: options.settings,
            instantiations: AtomicU64::new(0),
            turns: tokio::sync::Semaphore::new(compile::MAX_CONCURRENT_CALLS),
        })
    }

    /// The host-wide settings in force.
    pub fn settings(&self) -> SandboxSettings {
        self.settings
    }

    /// Whether the operator lets an installed plugin named `name` take a built-in's place
    /// (`[plugins.NAME] replace_builtin = true`).
    pub fn may_replace_builtin(&self, name: &str) -> bool {
        self.operator.get(name).is_some_and(|o| o.replace_builtin)
    }

    /// The operator's secret values, for templates and redaction.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// Plugin instances created since start, for `/metrics`.
    pub fn instantiations(&self) -> u64 {
        self.instantiations.load(Ordering::Relaxed)
    }

    /// The engine and linker, started on first use.
    pub(crate) fn runtime(&self) -> Result<&Runtime, LoadError> {
        self.runtime
            .get_or_init(Runtime::start)
            .as_ref()
            .map_err(Clone::clone)
    }
}
