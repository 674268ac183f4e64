//! Plugin host benchmarks: instantiate + call of a no-op step (Rust and, when built, Python) and
//! start-up with every built-in plugin loaded from the compile cache. Prints figures.

mod common;
use common::{median, ms, us, verdict};

use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmops::plugins::host::{self, CallContext, CallLimits, Op, OpResult, StepRequest};
use wasmops::plugins::{Plugin, Registry, Runtime};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("plugin-cache");

        // Start-up: a fresh runtime and registry, every built-in compiled (first) or loaded.
        let cold = startup(&cache);
        let mut warm: Vec<Duration> = (0..10).map(|_| startup(&cache)).collect();
        let warm = median(&mut warm);
        println!("start-up with all built-in plugins: {} compiling, {} from the cache (median of 10)", ms(cold), ms(warm));
        println!("  target: ≤ 500 ms from the cache -> {}", verdict(warm <= Duration::from_millis(500)));

        let runtime = Runtime::new(Some(cache.clone())).unwrap();
        let registry = Registry::builtin(Default::default()).unwrap();
        let noop = registry.get("noop").unwrap();
        let (p50, p99) = call_latency(&runtime, &noop, "{}", dir.path(), 2000, false).await;
        println!("noop instantiate + call: p50 {} p99 {} (2,000 calls)", us(p50), us(p99));
        println!("  target: p50 ≤ 50 µs -> {}", verdict(p50 <= Duration::from_micros(50)));

        let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/plugins/hello-python");
        let registry = Registry::default();
        match registry.load_plugin(&python) {
            Ok(name) => {
                let plugin = registry.get(&name).unwrap();
                let (p50, p99) = call_latency(&runtime, &plugin, r#"{"name": "bench"}"#, dir.path(), 200, true).await;
                println!("python ({name}) instantiate + validate call: p50 {} p99 {} (200 calls)", us(p50), us(p99));
                println!("  target: p50 ≤ 5 ms -> {}", verdict(p50 <= Duration::from_millis(5)));
            }
            Err(e) => println!("python plugin: not measured ({e}); build it with examples/plugins/hello-python/build.sh"),
        }
    });
}

fn startup(cache: &std::path::Path) -> Duration {
    let started = Instant::now();
    let runtime = Runtime::new(Some(cache.to_path_buf())).unwrap();
    let registry = Registry::builtin(Default::default()).unwrap();
    for plugin in registry.all() {
        plugin.instance_pre(&runtime).unwrap();
    }
    started.elapsed()
}

/// `validate` calls into the plugin without it doing any work of its own (the Python example's
/// `run` starts a program); `run` for the Rust no-op.
async fn call_latency(
    runtime: &Runtime,
    plugin: &Arc<Plugin>,
    config: &str,
    workspace: &std::path::Path,
    n: usize,
    validate: bool,
) -> (Duration, Duration) {
    plugin.instance_pre(runtime).unwrap();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + 20 {
        let call = Arc::new(CallContext {
            plugin: plugin.name().to_string(),
            log: Default::default(),
            exec: wasmops::plugins::exec::ExecPolicy {
                programs: plugin.grants.programs.clone(),
                workspace: workspace.to_path_buf(),
                env: Vec::new(),
                confinement: Default::default(),
            },
            secrets: Vec::new(),
            deadline: Instant::now() + Duration::from_secs(60),
            http_grants: Vec::new(),
            http_allow_private: false,
            denials: Default::default(),
        });
        let request = StepRequest {
            run_id: "wfr_bench000".into(),
            step_path: "1".into(),
            step_id: None,
            config: config.into(),
            context: "{}".into(),
            attempt: 1,
            idempotency_key: format!("wfr_bench000/{i}"),
            workspace: workspace.display().to_string(),
            source_dir: None,
        };
        let limits = CallLimits {
            memory: plugin.grants.memory,
            wall: Duration::from_secs(60),
        };
        let started = Instant::now();
        let op = if validate {
            Op::Validate(config.to_string())
        } else {
            Op::Run(request)
        };
        let result = host::call(runtime, plugin, call, limits, op).await.unwrap();
        let took = started.elapsed();
        if let OpResult::Outcome(Err(e)) = &result {
            panic!("the call failed: {e}");
        }
        if i >= 20 {
            samples.push(took);
        }
    }
    samples.sort();
    (
        samples[samples.len() / 2],
        samples[samples.len() * 99 / 100],
    )
}
