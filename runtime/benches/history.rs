//! History benchmarks: with 100,000 runs in the store, what an operator asks most often
//! (`/metrics`, the runs page, one workflow's runs, `wasmops runs list`) must not slow down
//! with the size of the history. Fills a sled store, starts the real daemon on it and prints
//! figures; `cargo bench --bench history`.

mod common;
use common::{median, ms, us, verdict};

use chrono::{TimeZone, Utc};
use serde_json::Map;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmops::records::{Run, RunSpec, RunStatus, Trigger};
use wasmops::store::{RunStore, SledStore};

const RUNS: usize = 100_000;
const WORKFLOWS: usize = 20;
const TOKEN: &str = "bench-viewer-token-0123456789";
const TARGET: Duration = Duration::from_millis(50);

fn main() {
    // WASMOPS_BENCH_DIR keeps the filled store for the next time (filling takes a minute).
    let (dir, _cleanup) = match std::env::var_os("WASMOPS_BENCH_DIR") {
        Some(kept) => (std::path::PathBuf::from(kept), None),
        None => {
            let temp = tempfile::tempdir().unwrap();
            (temp.path().to_path_buf(), Some(temp))
        }
    };
    let data = dir.join("data");
    if !data.join("filled").exists() {
        let filled = Instant::now();
        fill(&data);
        std::fs::write(data.join("filled"), "").unwrap();
        println!(
            "stored {RUNS} runs of {WORKFLOWS} workflows in {:.1} s",
            filled.elapsed().as_secs_f64()
        );
    }

    let config = dir.join("wasmops.toml");
    let hash = hex::encode(Sha256::digest(TOKEN.as_bytes()));
    std::fs::write(
        &config,
        format!("[[users]]\nname = \"viewer@example.com\"\ntoken_sha256 = \"{hash}\"\n"),
    )
    .unwrap();
    let started = Instant::now();
    let daemon = Daemon::start(&data, &config);
    println!("daemon up on that store in {}", ms(started.elapsed()));

    let workflow = "/projects/bench/workflows/w7";
    let figures = [
        ("GET /metrics", daemon.median_get("/metrics")),
        (
            "GET /api/v1/runs (first page of 100)",
            daemon.median_get("/api/v1/runs"),
        ),
        (
            "GET /api/v1/runs?status=failed (a rarer state)",
            daemon.median_get("/api/v1/runs?status=failed"),
        ),
        (
            "GET /api/v1/runs?workflow=W (one workflow's history)",
            daemon.median_get(&format!("/api/v1/runs?workflow={workflow}")),
        ),
        (
            "`wasmops runs list` against the daemon, whole process",
            daemon.median_cli(&["runs", "list"]),
        ),
        (
            "`wasmops runs list --workflow W --status failed`, whole process",
            daemon.median_cli(&["runs", "list", "--workflow", workflow, "--status", "failed"]),
        ),
    ];
    drop(daemon);
    let local = median_of(10, || {
        let ran = Command::new(env!("CARGO_BIN_EXE_wasmops"))
            .args(["runs", "list", "--data"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(ran.success());
    });
    println!("with {RUNS} stored runs (median of repeated calls):");
    for (what, took) in figures.into_iter().chain([(
        "`wasmops runs list` from the data directory, whole process",
        local,
    )]) {
        println!("  {what}: {} -> {}", figure(took), verdict(took <= TARGET));
    }
    println!("  target: each under {}", ms(TARGET));
}

/// Writes the runs through the store itself, many at once so they share flushes.
fn fill(data: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = Arc::new(SledStore::open(data).unwrap());
        let spec = |workflow: &str| RunSpec {
            workflow_yaml: "steps:\n  - uses: noop\n".into(),
            file: "w.yaml".into(),
            label: workflow.into(),
            version: Some(1),
            source_dir: None,
            overrides: Map::new(),
            trigger: Trigger::manual(None),
            from_file: false,
            projects_sha256: None,
        };
        let base = Utc::now().timestamp_millis() - RUNS as i64 * 1000;
        for batch in 0..RUNS / 1000 {
            let mut writers = tokio::task::JoinSet::new();
            for i in batch * 1000..(batch + 1) * 1000 {
                let store = store.clone();
                let workflow = format!("/projects/bench/workflows/w{}", i % WORKFLOWS);
                let spec = spec(&workflow);
                let status = match i % 50 {
                    0 => RunStatus::Failed,
                    1 => RunStatus::Cancelled,
                    _ => RunStatus::Succeeded,
                };
                let created = Utc.timestamp_millis_opt(base + i as i64 * 1000).unwrap();
                let run = Run {
                    id: format!("wfr_b{i:07}"),
                    workflow,
                    version: Some(1),
                    file: None,
                    status,
                    trigger: Trigger::manual(Some("bench".into())),
                    property_overrides: Map::new(),
                    created_at: created,
                    started_at: Some(created),
                    finished_at: Some(created),
                    duration_ms: Some(1200),
                    error: None,
                    interruptions: 0,
                    progress_at_interruption: 0,
                    steps: Vec::new(),
                };
                writers.spawn(async move { store.create(&run, &spec).await.unwrap() });
            }
            writers.join_all().await;
        }
    });
}

/// Below a millisecond in µs, above in ms.
fn figure(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        us(d)
    } else {
        ms(d)
    }
}

fn median_of(n: usize, mut once: impl FnMut()) -> Duration {
    once();
    let mut samples: Vec<Duration> = (0..n)
        .map(|_| {
            let t = Instant::now();
            once();
            t.elapsed()
        })
        .collect();
    median(&mut samples)
}

/// The real daemon on the filled store, stopped when dropped.
struct Daemon {
    child: Child,
    url: String,
    agent: ureq::Agent,
}

impl Daemon {
    fn start(data: &Path, config: &Path) -> Daemon {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_wasmops"))
            .args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data"])
            .arg(data)
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let daemon = Daemon {
            child,
            url: format!("http://127.0.0.1:{port}"),
            agent: ureq::Agent::new_with_defaults(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while daemon
            .agent
            .get(format!("{}/healthz", daemon.url))
            .call()
            .is_err()
        {
            assert!(Instant::now() < deadline, "the daemon did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    fn median_get(&self, path: &str) -> Duration {
        median_of(30, || {
            let mut answer = self
                .agent
                .get(format!("{}{path}", self.url))
                .header("authorization", format!("Bearer {TOKEN}"))
                .call()
                .unwrap();
            answer.body_mut().read_to_string().unwrap();
        })
    }

    fn median_cli(&self, args: &[&str]) -> Duration {
        median_of(10, || {
            let ran = Command::new(env!("CARGO_BIN_EXE_wasmops"))
                .args(args)
                .env("WASMOPS_SERVER", &self.url)
                .env("WASMOPS_TOKEN", TOKEN)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(ran.success());
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
