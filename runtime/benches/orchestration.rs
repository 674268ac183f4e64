//! Orchestration benchmarks: per-step overhead of the engine with the durable store on, and
//! script steps against the shell doing the same work. Prints figures; `cargo bench`.

mod common;
use common::{median, ms, us, verdict};

use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmops::engine::{Engine, EngineParts, Mode};
use wasmops::plugins::Registry;
use wasmops::records::RunSpec;
use wasmops::records::{RunStatus, Trigger};
use wasmops::store::SledStore;
use wasmops_sandbox::{Sandbox, SandboxOptions};

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine(dir.path());

        // Warm up: compile and cache the plugins, touch the store.
        run(&engine, &sequential("uses: noop", 5)).await;
        run(&engine, &sequential("uses: script\n    with: { run: \"true\" }", 2)).await;

        let single_call = plugin_call_cost(&engine).await;
        println!("noop plugin instantiate + call (in a 1-step run, median of 50): {}", us(single_call));

        let mut per_step = Vec::new();
        for _ in 0..5 {
            let t = run(&engine, &sequential("uses: noop", 1000)).await;
            per_step.push(t / 1000);
        }
        let seq = median(&mut per_step);
        println!("sequential, 1,000 noop steps: {} per step (median of 5 runs); overhead beyond the plugin call ≈ {}", us(seq), us(seq.saturating_sub(single_call)));
        println!("  target: ≤ 1 ms per step -> {}", verdict(seq <= Duration::from_millis(1)));

        let mut par = Vec::new();
        for _ in 0..5 {
            par.push(run(&engine, &parallel(200)).await);
        }
        let par = median(&mut par);
        println!("parallel stage, 200 noop steps: {} total, {} per step (median of 5 runs)", ms(par), us(par / 200));
        println!("  target: ≤ 1 ms per step -> {}", verdict(par / 200 <= Duration::from_millis(1)));

        let mut scripts = Vec::new();
        for _ in 0..5 {
            scripts.push(run(&engine, &sequential("uses: script\n    with: { run: \"true\" }", 40)).await);
        }
        let scripts = median(&mut scripts);
        let bash_loop = median(&mut (0..5).map(|_| shell("for i in $(seq 40); do bash --noprofile --norc -eo pipefail -c true; done")).collect::<Vec<_>>());
        let true_loop = median(&mut (0..5).map(|_| shell("for i in $(seq 40); do /usr/bin/env true; done")).collect::<Vec<_>>());
        println!("40 sequential script steps running `true`: {}", ms(scripts));
        println!("bash loop starting `bash -c true` 40 times (the same processes): {}", ms(bash_loop));
        println!("bash loop starting `true` 40 times: {}", ms(true_loop));
        println!("  target: within 2x the bash loop -> {} ({:.2}x)", verdict(scripts <= bash_loop * 2), scripts.as_secs_f64() / bash_loop.as_secs_f64());
    });
}

fn engine(dir: &std::path::Path) -> Arc<Engine> {
    let sandbox = Arc::new(
        Sandbox::new(SandboxOptions {
            cache_dir: Some(dir.join("plugin-cache")),
            ..SandboxOptions::default()
        })
        .unwrap(),
    );
    Engine::new(EngineParts {
        registry: Arc::new(Registry::builtin(sandbox).unwrap()),
        runs: Arc::new(SledStore::open(dir).unwrap()),
        projects: Default::default(),
        workspaces: dir.join("workspaces"),
        mode: Mode::Embedded,
    })
}

fn sequential(step: &str, n: usize) -> String {
    let mut yaml = String::from("steps:\n");
    for _ in 0..n {
        yaml.push_str(&format!("  - {step}\n"));
    }
    yaml
}

fn parallel(n: usize) -> String {
    let mut yaml = String::from("steps:\n  - run_as: parallel\n    children:\n");
    for _ in 0..n {
        yaml.push_str("      - uses: noop\n");
    }
    yaml
}

async fn run(engine: &Arc<Engine>, yaml: &str) -> Duration {
    let started = Instant::now();
    let run = engine.run_to_end(spec(yaml)).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    started.elapsed()
}

/// The plugin's own cost as the engine sees it: a one-step run's recorded step duration.
async fn plugin_call_cost(engine: &Arc<Engine>) -> Duration {
    let mut samples = Vec::new();
    for _ in 0..50 {
        let run = engine
            .run_to_end(spec(&sequential("uses: noop", 1)))
            .await
            .unwrap();
        let step = &run.steps[0];
        let took = step.finished_at.unwrap() - step.started_at.unwrap();
        samples.push(took.to_std().unwrap_or_default());
    }
    median(&mut samples)
}

fn spec(yaml: &str) -> RunSpec {
    RunSpec {
        workflow_yaml: yaml.to_string(),
        file: "bench.yaml".into(),
        label: "bench".into(),
        version: None,
        source_dir: None,
        overrides: Default::default(),
        trigger: Trigger::manual(None),
        from_file: false,
        projects_sha256: None,
    }
}

fn shell(script: &str) -> Duration {
    let started = Instant::now();
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .status()
        .unwrap();
    assert!(status.success());
    started.elapsed()
}
