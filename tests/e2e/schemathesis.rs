//! `docs/openapi.yaml` against a real daemon with schemathesis: every check, a fixed seed, on a
//! daemon holding a project, a published workflow and a finished run, so that the operations on
//! them reach their logic. The document and the daemon agree, schema-valid requests are taken,
//! schema-violating ones refused, and nothing answers a 5xx. The operations that refuse some
//! schema-valid requests by design are named, with why, in `tests/schemathesis/schemathesis.toml`.

use crate::daemon::{daemon_with_hello_world, start};
use crate::daemon_support::JANE;
use crate::pip_tools;
use crate::support::repo;
use serde_json::json;
use std::process::Command;

#[test]
fn schemathesis_finds_no_mismatch_between_the_document_and_the_daemon() {
    let schemathesis = pip_tools::schemathesis();
    let (sb, d) = daemon_with_hello_world();
    let (status, body) = d.post(
        JANE,
        "/api/v1/projects/hello_world/workflows/preflight/publish",
        json!({}),
    );
    assert_eq!(status, 200, "{body:#}");
    let run = start(&d, "/projects/hello_world/workflows/preflight", json!({}));
    d.wait_status(&run, "succeeded");

    let mut cmd = Command::new("python3");
    // Its cache (`.schemathesis/`) goes where it runs: the test's folder, not the clone.
    cmd.current_dir(sb.dir.path())
        .args(["-m", "schemathesis.cli", "--config-file"])
        .arg(repo().join("tests/schemathesis/schemathesis.toml"))
        .arg("run")
        .arg(repo().join("docs/openapi.yaml"))
        .args(["--url", &d.url])
        .args(["--header", &format!("Authorization: Bearer {JANE}")])
        .args(["--checks", "all", "--max-examples", "20", "--seed", "1"])
        .env("WASMOPS_ST_PROJECT", "hello_world")
        .env("WASMOPS_ST_WORKFLOW", "preflight")
        .env("WASMOPS_ST_RUN", &run)
        .env("NO_COLOR", "1");
    schemathesis.apply(&mut cmd);
    let out = cmd.output().expect("run schemathesis");
    assert!(
        out.status.success(),
        "schemathesis found mismatches:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
