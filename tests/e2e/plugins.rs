//! Plugins from a directory, what the host sends them, and the script plugin's other modes.

use crate::daemon_support::Daemon;
use crate::support::{Sandbox, step, test_plugins};

#[test]
fn the_request_context_carries_the_environment_of_the_target_or_the_run() {
    let sb = Sandbox::new();
    sb.write(
        "project/project.yaml",
        r#"
project: shop
templates:
  web:
    actions:
      default: { uses: echo, with: { where: "{{ env }}" } }
environments:
  staging:
    assets:
      web: { template: web, properties: { host: stg-1 } }
"#,
    );
    let plugins = test_plugins().to_str().unwrap().to_string();
    let (code, run) = sb.run_json(
        r#"
steps:
  - uses: echo
  - target: /projects/shop/environments/staging/assets/web
    action: default
"#,
        &[
            "--plugins",
            &plugins,
            "--project",
            "project",
            "--set",
            "env=dev",
        ],
    );
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(
        step(&run, "1")["outputs"]["env"],
        "dev",
        "the run's `env` property"
    );
    let inside = &step(&run, "2.1")["outputs"];
    assert_eq!(inside["env"], "staging", "the target asset's environment");
    assert_eq!(
        inside["config"]["where"], "staging",
        "`{{{{ env }}}}` agrees"
    );
    assert_eq!(inside["properties"]["host"], "stg-1");
}

#[test]
fn a_plugin_from_a_directory_gets_the_documented_request() {
    let sb = Sandbox::new();
    let plugins = test_plugins().to_str().unwrap().to_string();
    let (code, run) = sb.run_json(
        r#"
properties: { region: eu-west-1 }
steps:
  - id: first
    uses: echo
    with: { message: "{{ region }}", nested: { n: 1 } }
"#,
        &["--plugins", &plugins],
    );
    assert_eq!(code, 0, "{run:#}");
    let out = &step(&run, "1")["outputs"];
    assert_eq!(out["run_id"], run["id"]);
    assert_eq!(out["step_path"], "1");
    assert_eq!(out["step_id"], "first");
    assert_eq!(out["attempt"], 1);
    assert_eq!(
        out["idempotency_key"],
        format!("{}/1", run["id"].as_str().unwrap())
    );
    assert_eq!(
        out["config"],
        serde_json::json!({"message": "eu-west-1", "nested": {"n": 1}})
    );
    assert_eq!(out["properties"]["region"], "eu-west-1");
    assert_eq!(out["run"]["id"], run["id"]);
    assert_eq!(out["run"]["workflow"], run["workflow"]);
    assert_eq!(out["env"], serde_json::Value::Null, "no environment here");
    assert_eq!(
        out["trigger"],
        serde_json::json!({}),
        "a manual run has no inputs"
    );
    assert_eq!(
        out["wrote_marker"], true,
        "the workspace is writable at its host path"
    );
    let workspace = out["workspace"].as_str().unwrap();
    assert!(
        workspace.ends_with(run["id"].as_str().unwrap()),
        "{workspace}"
    );
    assert!(
        out["source_dir"]
            .as_str()
            .unwrap()
            .starts_with(sb.dir.path().canonicalize().unwrap().to_str().unwrap())
    );

    let listed = sb.wasmops(&["plugins", "list", "--plugins", &plugins]);
    for name in ["condition", "echo", "noop", "script"] {
        assert!(
            listed.stdout.lines().any(|l| l.starts_with(name)),
            "{name} not listed:\n{}",
            listed.stdout
        );
    }
}

#[test]
fn script_runs_files_next_to_the_workflow_and_node() {
    let sb = Sandbox::new();
    sb.write("scripts/report.sh", "#!/usr/bin/env bash\necho \"report for $1 in $(basename \"$PWD\")\"\necho \"arg=$1\" >> \"$WASMOPS_OUTPUT\"\n");
    let (code, run) = sb.run_json(
        r#"
steps:
  - uses: script
    with: { file: scripts/report.sh, args: [nightly] }
  - uses: script
    with:
      shell: node
      env: { GREETING: bonjour }
      run: console.log(process.env.GREETING + " from node " + process.version)
"#,
        &[],
    );
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(step(&run, "1")["outputs"]["arg"], "nightly");
    assert!(
        step(&run, "1")["summary"]
            .as_str()
            .unwrap()
            .starts_with("report for nightly in wfr_")
    );
    assert!(
        step(&run, "2")["summary"]
            .as_str()
            .unwrap()
            .starts_with("bonjour from node v")
    );
}

#[test]
fn programs_see_only_an_explicit_environment() {
    let sb = Sandbox::new();
    let file = sb.write("w.yaml", "steps:\n  - uses: script\n    with: { run: 'echo \"leaked=${WASMOPS_TEST_AMBIENT:-none}\"' }\n");
    let ran: crate::support::Ran = std::process::Command::new(env!("CARGO_BIN_EXE_wasmops"))
        .args(["run", file.to_str().unwrap(), "--output", "json"])
        .env("WASMOPS_DATA", sb.path("data"))
        .env("WASMOPS_TEST_AMBIENT", "from-the-daemon")
        .output()
        .unwrap()
        .into();
    assert_eq!(step(&ran.json(), "1")["summary"], "leaked=none");
}

#[test]
fn a_plugin_named_like_a_path_is_refused_and_nothing_is_touched() {
    let sb = Sandbox::new();
    // A directory beside the data directory that a name like `../victim` would reach.
    let victim = sb.write("victim/keep.txt", "still here");
    for name in ["../victim", "../../victim", "/tmp/wasmops-victim"] {
        let dir = echo_named(&sb, &format!("evil-{}", name.len()), name);
        let ran = sb.wasmops(&["plugins", "install", dir.to_str().unwrap()]);
        assert_ne!(ran.code, 0, "{name}: {}", ran.stdout);
        assert!(
            ran.stderr.contains("is not allowed"),
            "{name}: {}",
            ran.stderr
        );
    }
    assert_eq!(std::fs::read_to_string(victim).unwrap(), "still here");
    assert!(
        !sb.path("data/plugins").exists()
            || std::fs::read_dir(sb.path("data/plugins")).unwrap().count() == 0
    );
}

/// A copy of the echo test plugin in `folder`, with `name` in its plugin.toml.
fn echo_named(sb: &Sandbox, folder: &str, name: &str) -> std::path::PathBuf {
    let echo = test_plugins().join("echo");
    let dir = sb.path(folder);
    std::fs::create_dir_all(&dir).unwrap();
    let manifest = std::fs::read_to_string(echo.join("plugin.toml"))
        .unwrap()
        .replace("name = \"echo\"", &format!("name = {name:?}"));
    std::fs::write(dir.join("plugin.toml"), manifest).unwrap();
    for entry in std::fs::read_dir(&echo).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wasm") {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

#[test]
fn a_plugin_takes_a_built_ins_name_only_when_the_operator_says_so() {
    let sb = Sandbox::new();
    let dir = echo_named(&sb, "impostor", "wait");
    let dir = dir.to_str().unwrap();
    let ran = sb.wasmops(&["plugins", "install", dir]);
    assert_ne!(ran.code, 0, "{}", ran.stdout);
    assert!(
        ran.stderr.contains("would replace the built-in `wait`")
            && ran.stderr.contains("[plugins.wait] replace_builtin = true"),
        "{}",
        ran.stderr
    );
    assert!(!sb.path("data/plugins/wait").exists());
    let inspect = sb.wasmops(&["plugins", "inspect", "wait"]);
    assert!(inspect.stdout.contains("built-in"), "{}", inspect.stdout);

    let config = sb.write("wasmops.toml", "[plugins.wait]\nreplace_builtin = true\n");
    let config = config.to_str().unwrap();
    let ran = sb.wasmops(&["plugins", "install", dir, "--config", config]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(sb.path("data/plugins/wait/plugin.toml").is_file());
    let inspect = sb.wasmops(&["plugins", "inspect", "wait", "--config", config]);
    assert!(!inspect.stdout.contains("built-in"), "{}", inspect.stdout);
    // Allowed to take the name, it still gets only the defaults until a section grants more.
    assert!(
        inspect.stdout.contains("granted by:   defaults"),
        "{}",
        inspect.stdout
    );
    // Without the setting, the installed impostor is skipped, with a warning naming it and
    // the setting, and the built-in stays.
    let list = sb.wasmops(&["plugins", "list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(
        list.stderr.contains("skipping the installed plugin in")
            && list.stderr.contains("data/plugins/wait")
            && list.stderr.contains("replace_builtin"),
        "{}",
        list.stderr
    );
    let inspect = sb.wasmops(&["plugins", "inspect", "wait"]);
    assert!(inspect.stdout.contains("built-in"), "{}", inspect.stdout);
}

#[test]
fn a_broken_installed_plugin_is_skipped_with_a_warning_and_the_daemon_starts() {
    let sb = Sandbox::new();
    let dir = echo_named(&sb, "mine", "mine");
    let ran = sb.wasmops(&["plugins", "install", dir.to_str().unwrap()]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    // Three kinds of damage beside the good one: a manifest edited into nonsense, a folder
    // with no manifest (both skipped, named), and a component cut short (found when it is
    // first compiled: its steps fail then, with the reason).
    for name in ["garbled", "empty", "cut"] {
        std::fs::create_dir_all(sb.path(&format!("data/plugins/{name}"))).unwrap();
    }
    std::fs::write(sb.path("data/plugins/garbled/plugin.toml"), "name = [").unwrap();
    let cut = echo_named(&sb, "data/plugins/cut", "cut");
    for entry in std::fs::read_dir(&cut).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "wasm") {
            std::fs::write(&path, b"\0asm\x01\0").unwrap();
        }
    }
    // The daemon over this data directory starts (start waits for it to answer) and says
    // what it skipped.
    let d = Daemon::start(sb.dir.path());
    let plugins = d.get("/api/v1/plugins");
    assert!(plugins.to_string().contains("\"mine\""), "{plugins:#}");
    let log = std::fs::read_to_string(sb.path("daemon.log")).unwrap();
    assert!(log.contains("data/plugins/garbled"), "{log}");
    drop(d);
    let list = sb.wasmops(&["plugins", "list"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    assert!(list.stdout.contains("mine"), "{}", list.stdout);
    for name in ["garbled", "empty"] {
        assert!(
            list.stderr.contains(&format!("data/plugins/{name}")),
            "{name} not named in:\n{}",
            list.stderr
        );
    }
}

#[test]
fn installing_again_swaps_the_plugin_whole_and_leaves_nothing_behind() {
    let sb = Sandbox::new();
    let dir = echo_named(&sb, "mine", "mine");
    let dir = dir.to_str().unwrap();
    for _ in 0..2 {
        let ran = sb.wasmops(&["plugins", "install", dir]);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
    }
    let left: Vec<String> = std::fs::read_dir(sb.path("data/plugins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["mine"], "staging folders left behind");
    // A folder that no longer holds a valid plugin installs nothing and keeps the old one.
    std::fs::write(sb.path("mine/plugin.toml"), "name = \"mine\"\n").unwrap();
    let ran = sb.wasmops(&["plugins", "install", dir]);
    assert_ne!(ran.code, 0);
    assert!(sb.path("data/plugins/mine/plugin.toml").is_file());
    let inspect = sb.wasmops(&["plugins", "inspect", "mine"]);
    assert_eq!(inspect.code, 0, "{}", inspect.stderr);
}
