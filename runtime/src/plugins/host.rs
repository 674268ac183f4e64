//! The wasmtime side: one engine, a pre-instantiated component per plugin, and a fresh store and
//! instance for every call, with the call's capabilities and limits in the store.

use super::exec::{ExecPolicy, ExecRequest};
use super::http::{HttpGrant, HttpPolicy};
use super::manifest::FileMode;
use super::output::PluginOutput;
use super::registry::Plugin;
use crate::steplog::StepLog;
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

wasmtime::component::bindgen!({
    path: "../wit",
    world: "wasmops:plugin/step-plugin",
    imports: { default: async },
    exports: { default: async },
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
    },
});

pub use self::exports::wasmops::plugin::step::{StepInfo, StepOutcome as WitOutcome};
pub use self::wasmops::plugin::types::{
    Decision, DecisionKind, StepRequest, StepResult, WaitRequest,
};

/// Plugin instances created since start, for `/metrics`.
pub static INSTANTIATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How often the epoch ticks; CPU budgets are counted in these.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Engine-wide setup shared by every plugin.
pub struct Runtime {
    pub engine: Engine,
    pub linker: Linker<CallState>,
    /// Where compiled components are cached; none compiles every time.
    pub cache_dir: Option<std::path::PathBuf>,
}

impl Runtime {
    pub fn new(cache_dir: Option<std::path::PathBuf>) -> anyhow::Result<Runtime> {
        if let Some(dir) = &cache_dir {
            std::fs::create_dir_all(dir)?;
        }
        let mut config = wasmtime::Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool_config()));
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)?;
        // Our own interfaces one by one: `wasi:http` is linked above with its own view.
        self::wasmops::plugin::log::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        self::wasmops::plugin::secrets::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;
        self::wasmops::plugin::exec::add_to_linker::<_, HasSelf<_>>(&mut linker, |s| s)?;

        // A detached ticker: it holds only a weak engine handle, so it ends with the engine.
        let weak = engine.weak();
        std::thread::Builder::new()
            .name("wasmops-epoch".into())
            .spawn(move || {
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(EPOCH_TICK);
                }
            })?;
        Ok(Runtime {
            engine,
            linker,
            cache_dir,
        })
    }
}

/// Instances come from pre-reserved slots with copy-on-write memory images, so a fresh instance
/// per step costs microseconds. Sized for the largest plugins we ship or test (a componentize-py
/// component has 14 core instances and starts with 13 MiB of memory).
fn pool_config() -> wasmtime::PoolingAllocationConfig {
    let mut pool = wasmtime::PoolingAllocationConfig::default();
    pool.total_component_instances(1000)
        .total_core_instances(4000)
        .total_memories(2000)
        .total_tables(4000)
        .max_core_instances_per_component(64)
        .max_memories_per_component(16)
        .max_tables_per_component(64)
        .max_component_instance_size(1 << 20)
        .max_core_instance_size(4 << 20)
        .table_elements(100_000)
        .max_memory_size(4 << 30)
        // Keep the first pages of recently used slots resident: the next instance of the same
        // plugin reuses them without faulting.
        .linear_memory_keep_resident(4 << 20)
        .table_keep_resident(64 << 10)
        .max_unused_warm_slots(100);
    pool
}

/// Everything one call may touch. Built fresh per call; dropped with the store.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    http: WasiHttpCtx,
    http_policy: HttpPolicy,
    call: Arc<CallContext>,
}

/// What the sandbox refused during one call, so a failed step names the capability involved
/// whatever the plugin made of the refusal.
#[derive(Clone, Default)]
pub struct Denials(Arc<std::sync::Mutex<Vec<String>>>);

impl Denials {
    pub fn push(&self, reason: String) {
        self.0.lock().unwrap().push(reason);
    }

    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

pub struct CallContext {
    pub plugin: String,
    pub log: StepLog,
    pub exec: ExecPolicy,
    /// Granted secret name → value.
    pub secrets: Vec<(String, String)>,
    /// When the step's time is up; exec children never outlive it.
    pub deadline: Instant,
    pub http_grants: Vec<HttpGrant>,
    /// Operator setting: granted names may resolve to private or loopback addresses.
    pub http_allow_private: bool,
    pub denials: Denials,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            hooks: &mut self.http_policy,
            table: &mut self.table,
            ctx: &mut self.http,
        }
    }
}

impl wasmops::plugin::types::Host for CallState {}

impl wasmops::plugin::log::Host for CallState {
    async fn log(&mut self, level: wasmops::plugin::log::Level, message: String) {
        use self::wasmops::plugin::log::Level;
        let stream = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        for line in message.lines() {
            self.call.log.push(stream, line);
        }
    }
}

impl wasmops::plugin::secrets::Host for CallState {
    async fn get(&mut self, name: String) -> Result<String, String> {
        self.call
            .secrets
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| {
                let reason = format!(
                    "secrets: `{name}` is not granted to plugin `{}` or is not set (capability `secrets`)",
                    self.call.plugin
                );
                self.call.denials.push(reason.clone());
                reason
            })
    }
}

impl wasmops::plugin::exec::Host for CallState {
    async fn run(
        &mut self,
        cmd: wasmops::plugin::exec::Command,
    ) -> Result<wasmops::plugin::exec::Output, String> {
        let remaining = self.call.deadline.saturating_duration_since(Instant::now());
        let timeout = cmd
            .timeout_ms
            .map(Duration::from_millis)
            .map_or(remaining, |t| t.min(remaining));
        let req = ExecRequest {
            program: cmd.program,
            args: cmd.args,
            env: cmd.env,
            cwd: cmd.cwd,
            stdin: cmd.stdin,
            timeout,
        };
        let out = self
            .call
            .exec
            .run(req, &self.call.log)
            .await
            .inspect_err(|e| {
                if e.contains("capability") {
                    self.call.denials.push(e.clone());
                }
            })?;
        Ok(wasmops::plugin::exec::Output {
            exit_code: out.exit_code,
            timed_out: out.timed_out,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }
}

/// One plugin call's limits, from plugin.toml and the step.
pub struct CallLimits {
    pub memory: u64,
    pub wall: Duration,
}

/// A call into the step interface.
pub enum Op {
    Describe,
    Validate(String),
    Run(StepRequest),
    Resume(StepRequest, String, Decision),
}

pub enum OpResult {
    Info(StepInfo),
    Validated(Result<(), Vec<String>>),
    Outcome(Result<WitOutcome, String>),
}

/// Instantiates `plugin` in a fresh store and makes one call, bounded in memory, CPU and time.
pub async fn call(
    runtime: &Runtime,
    plugin: &Plugin,
    call: Arc<CallContext>,
    limits: CallLimits,
    op: Op,
) -> Result<OpResult, String> {
    let pre = plugin.instance_pre(runtime)?;
    let workspace = call.exec.workspace.clone();
    let mut wasi = WasiCtxBuilder::new();
    wasi.stdout(PluginOutput {
        log: call.log.clone(),
        stream: "plugin-stdout",
    });
    wasi.stderr(PluginOutput {
        log: call.log.clone(),
        stream: "plugin-stderr",
    });
    if let Some(mode) = plugin.grants.workspace {
        // Same path inside and out, so paths a plugin builds work for the programs it runs.
        let guest_path = workspace.to_string_lossy().into_owned();
        let perms = match mode {
            FileMode::Rw => FsPerms::ReadWrite,
            FileMode::Ro => FsPerms::ReadOnly,
        };
        wasi.preopened_dir(&workspace, &guest_path, perms)
            .map_err(|e| format!("cannot open the run workspace: {e}"))?;
    }
    for (dir, mode) in &plugin.grants.dirs {
        let perms = match mode {
            FileMode::Rw => FsPerms::ReadWrite,
            FileMode::Ro => FsPerms::ReadOnly,
        };
        wasi.preopened_dir(dir, dir.to_string_lossy(), perms)
            .map_err(|e| format!("cannot open granted directory {}: {e}", dir.display()))?;
    }
    let state = CallState {
        wasi: wasi.build(),
        table: ResourceTable::new(),
        http: WasiHttpCtx::new(),
        http_policy: HttpPolicy {
            grants: call.http_grants.clone(),
            allow_private: call.http_allow_private,
            denials: call.denials.clone(),
        },
        limits: StoreLimitsBuilder::new()
            .memory_size(limits.memory as usize)
            // A componentize-py component alone has 14 core instances.
            .instances(64)
            .trap_on_grow_failure(true)
            .build(),
        call: call.clone(),
    };
    let mut store = Store::new(&runtime.engine, state);
    store.limiter(|s| &mut s.limits);
    // The callback runs once per epoch tick spent executing guest code, so counting calls
    // measures CPU time (time blocked in host calls is not counted; the wall-clock timeout below
    // covers that). Yielding each tick lets that timeout cancel a spinning guest too.
    let cpu_budget = (limits.wall.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64;
    let mut cpu_ticks = 0u64;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        cpu_ticks += 1;
        if cpu_ticks > cpu_budget {
            return Err(wasmtime::Error::msg("cpu time limit exceeded"));
        }
        Ok(UpdateDeadline::Yield(1))
    });

    let work = async {
        let instance = pre.instantiate_async(&mut store).await?;
        INSTANTIATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let step = instance.wasmops_plugin_step();
        wasmtime::Result::Ok(match op {
            Op::Describe => OpResult::Info(step.call_describe(&mut store).await?),
            Op::Validate(config) => {
                OpResult::Validated(step.call_validate(&mut store, &config).await?)
            }
            Op::Run(req) => OpResult::Outcome(step.call_run(&mut store, &req).await?),
            Op::Resume(req, state, decision) => OpResult::Outcome(
                step.call_resume(&mut store, &req, &state, &decision)
                    .await?,
            ),
        })
    };
    let result = match tokio::time::timeout(limits.wall, work).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(trap)) => Err(describe_trap(&call.plugin, trap, &limits)),
        Err(_) => Err(format!(
            "plugin `{}` timed out after {}",
            call.plugin,
            humantime::format_duration(limits.wall)
        )),
    };
    let denials = call.denials.take();
    for reason in &denials {
        call.log.push("warn", &format!("sandbox denied {reason}"));
    }
    // A failure that followed a refusal is explained by it, whatever the plugin said.
    let with_denials = |e: String| {
        if !denials.is_empty() {
            format!("{e}\nsandbox denied: {}", denials.join("; "))
        } else if let Some(hint) = filesystem_hint(&e) {
            format!("{e}\n{hint}")
        } else {
            e
        }
    };
    match result {
        Ok(OpResult::Outcome(Err(e))) => Ok(OpResult::Outcome(Err(with_denials(e)))),
        Err(e) => Err(with_denials(e)),
        ok => ok,
    }
}

/// Filesystem refusals happen inside the guest's libc (no preopen matches, or a read-only one),
/// so the host never sees them; recognise their messages and name the capability.
fn filesystem_hint(error: &str) -> Option<&'static str> {
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

fn describe_trap(plugin: &str, err: wasmtime::Error, limits: &CallLimits) -> String {
    let text = format!("{err:#}");
    if text.contains("cpu time limit exceeded") {
        return format!(
            "plugin `{plugin}` exceeded its time limit ({})",
            humantime::format_duration(limits.wall)
        );
    }
    if text.contains("memory") && (text.contains("grow") || text.contains("limit")) {
        return format!(
            "plugin `{plugin}` exceeded its memory limit ({} MiB)",
            limits.memory >> 20
        );
    }
    // The first line names the trap; wasm backtraces follow and help plugin authors.
    let mut lines = text.lines();
    let head = lines.next().unwrap_or("trap");
    let detail: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).take(8).collect();
    if detail.is_empty() {
        format!("plugin `{plugin}` crashed: {head}")
    } else {
        format!("plugin `{plugin}` crashed: {head}\n{}", detail.join("\n"))
    }
}
