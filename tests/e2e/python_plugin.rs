//! A real Python plugin: `examples/plugins/hello-python` built with componentize-py into a WASI 0.2
//! component, installed with `--plugins DIR` and run by the real binary.
//!
//! componentize-py comes from the machine when it has the pinned version, else the harness
//! installs it into a cache (see `pip_tools`). Building the component (~15 s) and compiling it
//! in wasmtime (~10 s, once; the second run loads it from the plugin cache) make this the
//! slowest end-to-end test, so it builds once and runs both cases in one sandbox.

use crate::pip_tools;
use crate::support::{Sandbox, repo, step};
use std::path::Path;
use std::process::Command;

/// The componentize-py version the example, the SDK docs and the tests use.
const COMPONENTIZE_PY: &str = "0.25.1";

/// Copies the example's sources (not a `.wasm` or generated bindings left from a local build)
/// into `dest` and builds `hello_python.wasm` there with its own build.sh.
fn build_example(dest: &Path) {
    let componentize_py = pip_tools::componentize_py(COMPONENTIZE_PY);
    let example = repo().join("examples/plugins/hello-python");
    std::fs::create_dir_all(dest).unwrap();
    for name in ["app.py", "build.sh", "plugin.toml"] {
        std::fs::copy(example.join(name), dest.join(name)).unwrap();
    }
    let started = std::time::Instant::now();
    let mut build = Command::new("bash");
    build
        .arg(dest.join("build.sh"))
        .env("WASMOPS_WIT", repo().join("wit"));
    componentize_py.apply(&mut build);
    let out = build.output().expect("run build.sh");
    assert!(
        out.status.success(),
        "build.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let wasm = dest.join("hello_python.wasm");
    let size = std::fs::metadata(&wasm)
        .unwrap_or_else(|e| panic!("build.sh wrote no {}: {e}", wasm.display()))
        .len();
    eprintln!(
        "built hello_python.wasm: {:.1} MiB in {:.1?}",
        size as f64 / (1 << 20) as f64,
        started.elapsed()
    );
}

fn host_kernel() -> String {
    let out = Command::new("uname").arg("-s").output().expect("uname");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn a_python_plugin_built_with_componentize_py_runs_and_reports_bad_config() {
    let sb = Sandbox::new();
    let plugin_dir = sb.path("plugins/hello-python");
    build_example(&plugin_dir);
    let plugins = sb.path("plugins");
    let plugins = plugins.to_str().unwrap();
    // The operator consents to what the plugin requests with a section of its own.
    let config = sb.write("wasmops.toml", "[plugins.hello-python]\n");
    let config = config.to_str().unwrap().to_string();

    // A good `with`: summary, outputs (one from a program run through `exec`), and the log line.
    let (code, run) = sb.run_json(
        r#"
properties: { who: Ada }
steps:
  - id: greet
    uses: hello-python
    with: { name: "{{ who }}" }
"#,
        &["--plugins", plugins, "--config", &config],
    );
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(run["status"], "succeeded", "{run:#}");
    let greet = step(&run, "1");
    assert_eq!(greet["status"], "succeeded", "{greet:#}");
    assert_eq!(greet["summary"], "hello, Ada from Python");
    let outputs = &greet["outputs"];
    assert_eq!(outputs["greeting"], "hello, Ada from Python");
    assert_eq!(
        outputs["kernel"],
        host_kernel(),
        "from `bash -c 'uname -s'`"
    );
    assert!(
        outputs["python"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{outputs:#}"
    );

    let id = run["id"].as_str().unwrap();
    let logs = sb.wasmops(&["runs", "logs", id]);
    assert_eq!(logs.code, 0, "{}", logs.stderr);
    assert!(
        logs.stdout.contains("greeting Ada (step 1, attempt 1)"),
        "the plugin's log line is missing:\n{}",
        logs.stdout
    );
    assert!(
        logs.stdout.contains(&host_kernel()),
        "exec output is streamed into the log:\n{}",
        logs.stdout
    );

    // A bad `with`: the plugin's own `validate` (an `Err` raised in Python) refuses it at its
    // line before anything runs.
    let file = sb.write(
        "bad.yaml",
        "steps:\n  - uses: hello-python\n    with: { nam: Ada, shout: \"yes\" }\n",
    );
    let ran = sb.wasmops(&[
        "run",
        file.to_str().unwrap(),
        "--plugins",
        plugins,
        "--config",
        &config,
    ]);
    assert_eq!(ran.code, 2, "{}{}", ran.stdout, ran.stderr);
    for expected in [
        "bad.yaml:3:",
        "invalid `with` for hello-python",
        "missing `name`",
        "`shout` must be true or false",
        "unknown key `nam`",
    ] {
        assert!(
            ran.stderr.contains(expected),
            "{expected:?} not in {:?}",
            ran.stderr
        );
    }
}

#[test]
fn a_new_python_plugin_builds_with_its_script_and_runs() {
    let componentize_py = pip_tools::componentize_py(COMPONENTIZE_PY);
    let sb = Sandbox::new();
    let created = sb.wasmops(&[
        "plugin",
        "new",
        "py-greeter",
        "--lang",
        "python",
        "--dir",
        sb.path("plugins").to_str().unwrap(),
    ]);
    assert_eq!(created.code, 0, "{}", created.stderr);
    let dir = sb.path("plugins/py-greeter");
    assert!(dir.join("wit/plugin.wit").is_file() && dir.join("app.py").is_file());
    let mut build = Command::new("bash");
    build.arg("build.sh").current_dir(&dir);
    componentize_py.apply(&mut build);
    let out = build.output().unwrap();
    assert!(
        out.status.success(),
        "build.sh failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let installed = sb.wasmops(&["plugins", "install", dir.to_str().unwrap()]);
    assert_eq!(installed.code, 0, "{}", installed.stderr);
    // Installed, it gets the defaults until the operator's config has a section for it.
    assert!(
        installed.stdout.contains("granted by: defaults"),
        "{}",
        installed.stdout
    );
    let config = sb.write("wasmops.toml", "[plugins.py-greeter]\n");
    let (code, run) = sb.run_json(
        "steps:\n  - uses: py-greeter\n    with: { name: Grace }\n",
        &["--config", config.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{run:#}");
    assert!(
        step(&run, "1")["summary"]
            .as_str()
            .unwrap()
            .contains("Grace"),
        "{run:#}"
    );
}
