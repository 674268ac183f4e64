//! A plugin author's path: `plugin new`, one build command, `plugins install`, `plugins inspect`,
//! and a run that uses the plugin.

use crate::support::{Sandbox, step};
use std::process::Command;

#[test]
fn a_new_rust_plugin_builds_installs_and_runs() {
    let sb = Sandbox::new();
    let created = sb.wasmops(&[
        "plugin",
        "new",
        "greeter",
        "--lang",
        "rust",
        "--dir",
        sb.dir.path().to_str().unwrap(),
    ]);
    assert_eq!(created.code, 0, "{}", created.stderr);
    let dir = sb.path("greeter");
    for file in [
        "Cargo.toml",
        "plugin.toml",
        "src/lib.rs",
        "wasmops-sdk/src/lib.rs",
        "wit/plugin.wit",
        "wit/deps/http/http.wit",
    ] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }

    // The one build command from the scaffold's README, with a shared cache for speed.
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_BUILD_TARGET")
        .status()
        .unwrap();
    assert!(status.success(), "the scaffold does not build");

    let installed = sb.wasmops(&["plugins", "install", dir.to_str().unwrap()]);
    assert_eq!(installed.code, 0, "{}", installed.stderr);
    assert!(
        installed
            .stdout
            .starts_with("installed greeter 0.1.0 (sha256:"),
        "{}",
        installed.stdout
    );

    let inspect = sb.wasmops(&["plugins", "inspect", "greeter", "--output", "json"]);
    assert_eq!(inspect.code, 0, "{}", inspect.stderr);
    let info = inspect.json();
    assert_eq!(info["kind"], "step");
    assert_eq!(info["world"], "wasmops:plugin/step-plugin@0.1.0");
    assert!(info["digest"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(
        info["grants"]["programs"],
        serde_json::json!({}),
        "nothing granted that was not requested"
    );

    let (code, run) = sb.run_json(
        "steps:\n  - uses: greeter\n    with: { name: operators }\n",
        &[],
    );
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(step(&run, "1")["summary"], "hello, operators");
    assert_eq!(step(&run, "1")["outputs"]["greeting"], "hello, operators");
}

#[test]
fn inspect_shows_requested_capabilities_and_the_grants_in_force() {
    let sb = Sandbox::new();
    let config = sb.write("wasmops.toml", "[plugins.script]\nexec = [\"bash\"]\n");
    let ran = sb.wasmops(&[
        "plugins",
        "inspect",
        "script",
        "--config",
        config.to_str().unwrap(),
        "--output",
        "json",
    ]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let info = ran.json();
    assert_eq!(
        info["requested"]["exec"],
        serde_json::json!(["bash", "python3", "node"])
    );
    let granted: Vec<&String> = info["grants"]["programs"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(granted, ["bash"], "the operator narrowed exec to bash");
    let text = sb.wasmops(&["plugins", "inspect", "script"]);
    assert!(
        text.stdout
            .contains("world:        wasmops:plugin/step-plugin@0.1.0"),
        "{}",
        text.stdout
    );
    let missing = sb.wasmops(&["plugins", "inspect", "nope"]);
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("no plugin `nope`"),
        "{}",
        missing.stderr
    );
}
