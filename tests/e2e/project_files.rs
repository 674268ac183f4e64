//! Project files travel with the project: a script's own files are in its workspace, and
//! nothing beside the workflow (the config, the data directory, other runs) is readable by its
//! programs, in the default layout of one project folder.

use crate::daemon::start;
use crate::daemon_support::{Daemon, JANE};
use crate::support::{Sandbox, step};
use serde_json::json;
use std::process::Command;

/// A project folder as a user keeps it: config, workflow, a script beside it, and the data
/// directory `wasmops run` makes there by default.
fn project_folder(sb: &Sandbox) {
    sb.write(
        "wasmops.toml",
        "[secrets]\ndb_password = \"config-secret-4242\"\n",
    );
    sb.write(
        "scripts/hello.sh",
        "echo \"hello from $(basename \"$0\")\"\n",
    );
    sb.write(
        "deploy.yaml",
        "steps:\n  - name: File\n    uses: script\n    with: { file: scripts/hello.sh }\n  - name: Snoop\n    uses: script\n    with:\n      run: |\n        for f in \"$PWD\"/../../../wasmops.toml \"$PWD\"/../../db/conf \"$PWD\"/../*/ ; do\n          cat \"$f\" 2>/dev/null && echo \"read $f\" || echo \"denied $f\"\n        done\n        ls \"$PWD\"/.. 2>/dev/null && echo listed-workspaces || echo no-listing\n",
    );
}

#[test]
fn a_script_beside_the_config_and_data_reads_only_its_own_files() {
    let sb = Sandbox::new();
    project_folder(&sb);
    // First a run whose workspace stays (it fails), for the second run to look for.
    sb.write(
        "fail.yaml",
        "steps:\n  - uses: script\n    with: { run: \"echo kept > note; exit 3\" }\n",
    );
    let run = |file: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_wasmops"))
            .args(["run", file, "--config", "wasmops.toml", "--output", "json"])
            .current_dir(sb.path(""))
            .env_remove("WASMOPS_DATA")
            .env_remove("WASMOPS_CONFIG")
            .env_remove("WASMOPS_PLUGINS")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.code(),
            serde_json::from_str::<serde_json::Value>(&text).unwrap_or(json!(text)),
        )
    };
    assert_eq!(run("fail.yaml").0, Some(1));
    let (code, run) = run("deploy.yaml");
    assert_eq!(code, Some(0), "{run:#}");
    assert!(
        sb.path("wasmops-data/db").exists(),
        "the default data directory is used"
    );
    assert_eq!(step(&run, "1")["summary"], "hello from hello.sh");
    let logs = Command::new(env!("CARGO_BIN_EXE_wasmops"))
        .args(["runs", "logs", run["id"].as_str().unwrap()])
        .current_dir(sb.path(""))
        .env_remove("WASMOPS_DATA")
        .output()
        .unwrap();
    let logs = String::from_utf8_lossy(&logs.stdout);
    assert!(!logs.contains("config-secret-4242"), "{logs}");
    assert!(!logs.contains("read "), "{logs}");
    assert!(logs.contains("no-listing"), "{logs}");
    assert!(logs.matches("denied ").count() >= 2, "{logs}");
}

#[test]
fn applied_files_travel_to_the_daemon_and_a_caller_cannot_name_a_host_directory() {
    let sb = Sandbox::new();
    let d = Daemon::start(sb.dir.path());
    // The project lives in a folder that is gone by the time it runs.
    let project = sb.path("elsewhere/shop");
    std::fs::create_dir_all(project.join("workflows")).unwrap();
    std::fs::write(project.join("project.yaml"), "project: shop\nname: Shop\n").unwrap();
    std::fs::create_dir_all(project.join("scripts")).unwrap();
    std::fs::write(
        project.join("scripts/deploy.sh"),
        "echo deployed from the catalog\n",
    )
    .unwrap();
    std::fs::write(project.join(".wasmopsignore"), "secret.txt\n").unwrap();
    std::fs::write(project.join("secret.txt"), "not for the daemon").unwrap();
    std::fs::write(
        project.join("workflows/deploy.yaml"),
        "steps:\n  - uses: script\n    with: { file: scripts/deploy.sh }\n  - uses: script\n    with: { run: \"cat secret.txt || echo ignored-file-absent\" }\n",
    )
    .unwrap();
    let applied = d.cli(&["apply", project.to_str().unwrap()]);
    assert_eq!(applied.code, 0, "{}{}", applied.stdout, applied.stderr);
    std::fs::remove_dir_all(sb.path("elsewhere")).unwrap();
    let (status, body) = d.post(
        JANE,
        "/api/v1/projects/shop/workflows/deploy/publish",
        json!({}),
    );
    assert_eq!(status, 200, "{body:#}");
    let id = start(&d, "/projects/shop/workflows/deploy", json!({}));
    let run = d.wait_status(&id, "succeeded");
    assert_eq!(step(&run, "1")["summary"], "deployed from the catalog");
    assert_eq!(step(&run, "2")["summary"], "ignored-file-absent");

    // A caller naming a host directory is refused; so are contents under a wrong digest.
    let (status, body) = d.post(
        JANE,
        "/api/v1/apply",
        json!({"projects": [{"file": "p.yaml", "yaml": "project: evil\nname: Evil\n", "dir": "/"}]}),
    );
    assert_eq!(status, 422, "{body:#}");
    assert!(
        body["detail"].as_str().unwrap().contains("`dir`"),
        "{body:#}"
    );
    let wrong = "0".repeat(64);
    let (status, body) = d.call(
        Some(JANE),
        "PUT",
        &format!("/api/v1/files/{wrong}"),
        Some(json!("x")),
    );
    assert_eq!(status, 400, "{body:#}");
    // A project naming a file never uploaded is refused, naming it.
    let (status, body) = d.post(
        JANE,
        "/api/v1/apply",
        json!({"projects": [{"file": "p.yaml", "yaml": "project: lazy\nname: Lazy\n",
            "files": {"run.sh": {"sha256": "1".repeat(64), "size": 3}}}]}),
    );
    assert_eq!(status, 422, "{body:#}");
    assert!(
        body["detail"].as_str().unwrap().contains("run.sh"),
        "{body:#}"
    );
}
