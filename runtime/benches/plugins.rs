//! Plugin host benchmarks: instantiate + call of a no-op step (Rust and, when built, Python),
//! start-up with every built-in plugin loaded from the compile cache, and rendering a step's
//! `with:` in the template renderer component. Prints figures.

mod common;
use common::{median, ms, us, verdict};

use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmops::plugins::Registry;
use wasmops_sandbox::{CallEnv, Plugin, Sandbox, SandboxOptions, StepRequest};

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

        let sandbox = sandbox(&cache);
        let registry = Registry::builtin(sandbox.clone()).unwrap();
        let noop = registry.get("noop").unwrap();
        let (p50, p99) = call_latency(&sandbox, &noop, "{}", dir.path(), 2000, false).await;
        println!("noop instantiate + call: p50 {} p99 {} (2,000 calls)", us(p50), us(p99));
        println!("  target: p50 ≤ 50 µs -> {}", verdict(p50 <= Duration::from_micros(50)));

        // The plugins that call out: what a call costs the host before any program or request.
        for (name, with) in [
            ("http", r#"{"url": "https://example.com/health", "retries": 3, "expect_status": [200, 204]}"#),
            ("terraform", r#"{"action": "plan", "dir": "infra", "vars": {"replicas": 3}}"#),
            ("slack", r##"{"channel": "#deployments", "text": "done", "blocks": [{"type": "divider"}]}"##),
            ("ansible", r#"{"playbook": "site.yml", "inventory": ["web-1", "web-2"], "tags": ["deploy"], "extra_vars": {"release": "1.4"}}"#),
        ] {
            let plugin = registry.get(name).unwrap();
            let (p50, p99) = call_latency(&sandbox, &plugin, with, dir.path(), 2000, true).await;
            println!("{name} instantiate + validate call: p50 {} p99 {} (2,000 calls)", us(p50), us(p99));
        }

        template_latency();

        let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/plugins/hello-python");
        match registry.load_plugin(&python) {
            Ok(name) => {
                let plugin = registry.get(&name).unwrap();
                let (p50, p99) = call_latency(&sandbox, &plugin, r#"{"name": "bench"}"#, dir.path(), 200, true).await;
                println!("python ({name}) instantiate + validate call: p50 {} p99 {} (200 calls)", us(p50), us(p99));
                println!("  target: p50 ≤ 5 ms -> {}", verdict(p50 <= Duration::from_millis(5)));
            }
            Err(e) => println!("python plugin: not measured ({e}); build it with examples/plugins/hello-python/build.sh"),
        }
    });
}

fn sandbox(cache: &std::path::Path) -> Arc<Sandbox> {
    Arc::new(
        Sandbox::new(SandboxOptions {
            cache_dir: Some(cache.to_path_buf()),
            ..SandboxOptions::default()
        })
        .unwrap(),
    )
}

fn startup(cache: &std::path::Path) -> Duration {
    let started = Instant::now();
    let sandbox = sandbox(cache);
    let registry = Registry::builtin(sandbox.clone()).unwrap();
    for plugin in registry.all() {
        sandbox.pre_instantiate(&plugin).unwrap();
    }
    started.elapsed()
}

/// `validate` calls into the plugin without it doing any work of its own (the Python example's
/// `run` starts a program); `run` for the Rust no-op.
async fn call_latency(
    sandbox: &Sandbox,
    plugin: &Arc<Plugin>,
    config: &str,
    workspace: &std::path::Path,
    n: usize,
    validate: bool,
) -> (Duration, Duration) {
    sandbox.pre_instantiate(plugin).unwrap();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + 20 {
        let env = CallEnv {
            workspace: Some(workspace.to_path_buf()),
            timeout: Some(Duration::from_secs(60)),
            ..CallEnv::default()
        };
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
        let started = Instant::now();
        if validate {
            sandbox.step_validate(plugin, env, config).await.unwrap();
        } else {
            sandbox.step_run(plugin, env, &request).await.unwrap();
        }
        let took = started.elapsed();
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

/// A `with:` of three templated strings against a context with a large output beside what they
/// read, rendered in the memory-capped renderer component.
fn template_latency() {
    use serde_json::json;
    use wasmops::workflow::template::render_value;
    let ctx = json!({
        "properties": {"hostname": "web-1", "env": "prod"},
        "steps": {"plan": {"outputs": {"to_add": "3", "plan_file": "/w/plan", "log": "x".repeat(100_000)}}},
    });
    let with = json!({
        "url": "https://{{ properties.hostname }}/health",
        "args": ["--plan", "{{ steps.plan.outputs.plan_file }}"],
        "when": "{{ steps.plan.outputs.to_add | int > 0 }}",
    });
    let started = Instant::now();
    render_value(&with, &ctx).unwrap();
    let first = started.elapsed();
    let mut samples: Vec<Duration> = (0..2000)
        .map(|_| {
            let started = Instant::now();
            render_value(&with, &ctx).unwrap();
            started.elapsed()
        })
        .collect();
    samples.sort();
    println!(
        "template render of a with: (3 templates): p50 {} p99 {} (2,000 renders; the first, compiling the renderer: {})",
        us(samples[1000]),
        us(samples[1980]),
        ms(first)
    );
}
