//! One call into a plugin: a fresh store holding the call's capabilities, bounded in memory,
//! CPU and wall time, and the refusals it met.

use crate::capabilities::{CallEnv, Prepare, prepare_all, shared};
use crate::error::{CallFailure, Denials, FailureCause, TrapKind};
use crate::plugin::{Exports, Plugin};
use crate::sandbox::{EPOCH_TICK, Sandbox};
use crate::state::{CallState, MemoryLimit, MemoryLimitExceeded};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use wasmtime::component::{Instance, ResourceTable};
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;

#[derive(Debug, thiserror::Error)]
#[error("cpu time limit exceeded")]
struct CpuBudgetExceeded;

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
            &[Exports],
        ) -> wasmtime::Result<Result<R, String>>,
    ) -> Result<R, CallFailure> {
        let name = plugin.name();
        let linked = self
            .linked(plugin)
            .map_err(|e| CallFailure::setup(name, e.to_string()))?;
        // Waiting for a turn is not the plugin's time: its deadline starts once it has one.
        let _turn = self
            .turns
            .acquire()
            .await
            .map_err(|e| CallFailure::setup(name, e.to_string()))?;
        let limits = &plugin.grants().limits;
        let wall = env
            .timeout
            .map_or(limits.timeout, |t| t.min(limits.timeout));
        // A limit too large to add to the clock is no limit at all.
        let deadline = Instant::now()
            .checked_add(wall)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 86_400));
        let denials = Denials::default();
        let mut wasi = WasiCtxBuilder::new();
        let shared = shared(plugin.grants());
        let caps = prepare_all(
            plugin.grants(),
            &mut Prepare {
                plugin: name,
                env: &env,
                wasi: &mut wasi,
                denials: &denials,
                secrets: &self.secrets,
                settings: self.settings,
                limits,
                deadline,
                shared: &shared,
            },
        )
        .map_err(|e| CallFailure::setup(name, e))?;
        let state = CallState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            memory: MemoryLimit {
                bytes: limits.memory,
                reached: 0,
            },
            caps,
        };
        let engine = &self
            .runtime()
            .map_err(|e| CallFailure::setup(name, e.to_string()))?
            .engine;
        let mut store = Store::new(engine, state);
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
        let (denials, more_denials) = denials.take();
        for denial in &denials {
            env.log.push("warn", &format!("sandbox denied {denial}"));
        }
        if more_denials > 0 {
            let more = format!("sandbox denied {more_denials} more requests");
            env.log.push("warn", &more);
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
            more_denials,
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
    // The root cause names the trap (`wasm trap: … unreachable …`); the first frames of the
    // wasm backtrace help plugin authors find where.
    let reason = err.root_cause().to_string();
    let backtrace = err
        .downcast_ref::<wasmtime::WasmBacktrace>()
        .map(ToString::to_string)
        .unwrap_or_default();
    let frames: Vec<&str> = backtrace
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(8)
        .collect();
    let message = if frames.is_empty() {
        reason
    } else {
        format!("{reason}\n{}", frames.join("\n"))
    };
    TrapKind::Guest { message }
}
