//! One call into a plugin: a fresh store holding the call's capabilities, bounded in memory,
//! CPU and wall time, and the refusals it met.

use crate::capabilities::log::CallLog;
use crate::capabilities::{CallCapabilities, Prepare, prepare_all};
use crate::error::{CallFailure, Denial, FailureCause, TrapKind};
use crate::plugin::{Exports, Plugin};
use crate::{EPOCH_TICK, Sandbox};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime::component::{Instance, ResourceTable};
use wasmtime::{ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

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

/// What the sandbox refused during one call, shared by the capabilities that refuse.
#[derive(Clone, Default)]
pub(crate) struct Denials(Arc<Mutex<Vec<Denial>>>);

impl Denials {
    /// Records a refusal and returns the message the plugin gets.
    pub(crate) fn refuse(&self, denial: Denial) -> String {
        let message = denial.to_string();
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(denial);
        message
    }

    fn take(&self) -> Vec<Denial> {
        std::mem::take(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Everything one call may touch: the data of its store, dropped with it.
pub(crate) struct CallState {
    wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    memory: MemoryLimit,
    pub(crate) caps: CallCapabilities,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The per-memory limit, as a typed trap when it is exceeded.
struct MemoryLimit {
    bytes: u64,
}

#[derive(Debug, thiserror::Error)]
#[error("memory limit exceeded")]
struct MemoryLimitExceeded;

#[derive(Debug, thiserror::Error)]
#[error("cpu time limit exceeded")]
struct CpuBudgetExceeded;

impl ResourceLimiter for MemoryLimit {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if u64::try_from(desired).unwrap_or(u64::MAX) > self.bytes {
            return Err(MemoryLimitExceeded.into());
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        _desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(true)
    }

    /// A componentize-py component alone has 14 core instances.
    fn instances(&self) -> usize {
        64
    }
}

impl Sandbox {
    /// Instantiates `plugin` in a fresh store with the call's capabilities and runs `body`
    /// against it, bounded in memory, CPU and time. `body` answers the plugin's own result: an
    /// `Err` there is the plugin's error text.
    pub(crate) async fn call<R>(
        &self,
        plugin: &Plugin,
        env: CallEnv,
        body: impl AsyncFnOnce(
            &mut Store<CallState>,
            &Instance,
            &Exports,
        ) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, CallFailure> {
        let name = plugin.name();
        let linked = self
            .linked(plugin)
            .map_err(|e| CallFailure::setup(name, e.to_string()))?;
        let limits = &plugin.grants.limits;
        let wall = env
            .timeout
            .map_or(limits.timeout, |t| t.min(limits.timeout));
        // A limit too large to add to the clock is no limit at all.
        let deadline = Instant::now()
            .checked_add(wall)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400));
        let denials = Denials::default();
        let mut wasi = WasiCtxBuilder::new();
        let caps = prepare_all(&mut Prepare {
            plugin: name,
            grants: &plugin.grants,
            env: &env,
            wasi: &mut wasi,
            denials: &denials,
            secrets: &self.secrets,
            settings: &self.settings,
            deadline,
        })
        .map_err(|e| CallFailure::setup(name, e))?;
        let state = CallState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            memory: MemoryLimit {
                bytes: limits.memory,
            },
            caps,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.memory);
        // The callback runs once per epoch tick spent executing guest code, so counting calls
        // measures CPU time (time blocked in host calls is not counted; the wall-clock timeout
        // below covers that). Yielding each tick lets that timeout cancel a spinning guest too.
        let cpu_budget = u64::try_from(wall.as_millis() / EPOCH_TICK.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut cpu_ticks = 0u64;
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            cpu_ticks += 1;
            if cpu_ticks > cpu_budget {
                return Err(CpuBudgetExceeded.into());
            }
            Ok(UpdateDeadline::Yield(1))
        });

        let work = async {
            let instance = linked.pre.instantiate_async(&mut store).await?;
            self.instantiations.fetch_add(1, Ordering::Relaxed);
            body(&mut store, &instance, &linked.exports).await
        };
        let outcome = tokio::time::timeout(wall, work).await;
        let denials = denials.take();
        for denial in &denials {
            env.log.push("warn", &format!("sandbox denied {denial}"));
        }
        let cause = match outcome {
            Ok(Ok(Ok(answer))) => return Ok(answer),
            Ok(Ok(Err(message))) => FailureCause::Plugin(message),
            Ok(Err(trap)) => FailureCause::Trap(classify(trap, wall, limits.memory)),
            Err(_) => FailureCause::Trap(TrapKind::WallTime { limit: wall }),
        };
        Err(CallFailure {
            plugin: name.to_string(),
            cause,
            denials,
        })
    }
}

/// Names a trap by the error value the limits raised, not by its text.
fn classify(err: wasmtime::Error, wall: Duration, memory: u64) -> TrapKind {
    if err.downcast_ref::<CpuBudgetExceeded>().is_some() {
        return TrapKind::CpuTime { limit: wall };
    }
    if err.downcast_ref::<MemoryLimitExceeded>().is_some() {
        return TrapKind::Memory { limit: memory };
    }
    // The first line names the trap; wasm backtraces follow and help plugin authors.
    let text = format!("{err:#}");
    let mut lines = text.lines();
    let head = lines.next().unwrap_or("trap");
    let detail: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).take(8).collect();
    let message = if detail.is_empty() {
        head.to_string()
    } else {
        format!("{head}\n{}", detail.join("\n"))
    };
    TrapKind::Guest { message }
}
