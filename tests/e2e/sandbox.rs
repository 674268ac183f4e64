//! The sandbox refuses, one capability at a time: each attempt fails its step with a reason that
//! names the capability, and the next run still succeeds.

use crate::support::{Sandbox, step, test_plugins};
use std::io::{Read, Write};
use std::net::TcpListener;

/// Runs one `hostile` step (with optional extra YAML keys and a config file) and returns the run.
fn attack(
    sb: &Sandbox,
    attack: &str,
    target: &str,
    extra: &str,
    config: Option<&str>,
) -> (i32, serde_json::Value) {
    let plugins = test_plugins().to_str().unwrap().to_string();
    let mut args = vec!["--plugins".to_string(), plugins];
    // The operator's section is what grants an added plugin its request; an empty one grants
    // all of it, so these attacks meet the sandbox's rules rather than the bare defaults.
    let mut config = config.unwrap_or_default().to_string();
    if !config.contains("[plugins.hostile]") {
        config.push_str("\n[plugins.hostile]\n");
    }
    args.push("--config".into());
    args.push(sb.write("wasmops.toml", &config).to_str().unwrap().into());
    let yaml = format!(
        "steps:\n  - name: attack\n    uses: hostile\n{extra}    with: {{ attack: {attack}, target: \"{target}\" }}\n"
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    sb.run_json(&yaml, &args)
}

fn error_of(run: &serde_json::Value) -> String {
    step(run, "1")["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error: {run:#}"))
        .to_string()
}

/// The daemon is fine afterwards: a plain run still succeeds.
fn still_works(sb: &Sandbox) {
    let (code, run) = sb.run_json("steps:\n  - uses: noop\n", &[]);
    assert_eq!(code, 0, "a following run failed: {run:#}");
}

/// Answers `n` HTTP requests with 200 and `body`, then stops; returns the port.
fn http_server(n: usize, body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(n) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn a_plugin_cannot_read_outside_its_preopens() {
    let sb = Sandbox::new();
    let secret_file = sb.write("outside/credentials", "aws_secret=xyz");
    let (code, run) = attack(&sb, "read-file", secret_file.to_str().unwrap(), "", None);
    assert_eq!(code, 1);
    let error = error_of(&run);
    assert!(
        error.contains("read ") && !error.contains("aws_secret"),
        "{error}"
    );
    assert!(error.contains("capability `files`"), "{error}");
    still_works(&sb);
}

#[test]
fn a_plugin_cannot_write_a_read_only_workspace() {
    let sb = Sandbox::new();
    let (code, run) = attack(&sb, "write-workspace", "", "", None);
    assert_eq!(code, 1);
    let error = error_of(&run);
    assert!(
        error.contains("owned.txt") && error.contains("capability `files`"),
        "{error}"
    );
    still_works(&sb);
}

#[test]
fn http_to_a_host_not_granted_is_denied() {
    let sb = Sandbox::new();
    let port = http_server(1, "should not be reached");
    let (code, run) = attack(&sb, "http", &format!("http://127.0.0.1:{port}/"), "", None);
    assert_eq!(code, 1);
    let error = error_of(&run);
    assert!(error.contains("denied by the sandbox"), "{error}");
    assert!(
        error.contains(&format!(
            "http: http://127.0.0.1:{port} is not granted (capability `http`)"
        )),
        "{error}"
    );
    still_works(&sb);
}

#[test]
fn a_granted_name_resolving_to_loopback_is_denied_unless_the_operator_allows_it() {
    let sb = Sandbox::new();
    let port = http_server(1, "hello from the test server");
    let url = format!("http://localhost:{port}/health");
    let (code, run) = attack(&sb, "http", &url, "", None);
    assert_eq!(code, 1);
    let error = error_of(&run);
    assert!(
        error.contains("a private, loopback or reserved address (capability `http`"),
        "{error}"
    );

    let (code, run) = attack(
        &sb,
        "http",
        &url,
        "",
        Some("[plugins.hostile]\nallow_private_http = true\n"),
    );
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(step(&run, "1")["summary"], "HTTP 200");
    assert_eq!(
        step(&run, "1")["outputs"]["body"],
        "hello from the test server"
    );
}

#[test]
fn a_program_not_granted_cannot_be_run() {
    let sb = Sandbox::new();
    let (code, run) = attack(&sb, "exec", "python3", "", None);
    assert_eq!(code, 1);
    let error = error_of(&run);
    assert!(
        error.contains("exec: program `python3` is not granted (capability `exec`; granted: bash)"),
        "{error}"
    );
    // The operator can take away even what plugin.toml asked for.
    let (code, run) = attack(
        &sb,
        "exec",
        "bash",
        "",
        Some("[plugins.hostile]\nexec = []\n"),
    );
    assert_eq!(code, 1);
    assert!(
        error_of(&run).contains("program `bash` is not granted"),
        "{run:#}"
    );
    still_works(&sb);
}

#[test]
fn a_secret_not_granted_cannot_be_read_and_a_granted_one_is_redacted() {
    let sb = Sandbox::new();
    let config =
        "[secrets]\ndb_password = \"hunter2-very-secret\"\nallowed_token = \"tok-granted-1234\"\n";
    let (code, run) = attack(&sb, "secret", "db_password", "", Some(config));
    assert_eq!(code, 1);
    let error = error_of(&run);
    assert!(
        error.contains("secrets: `db_password` is not granted to plugin `hostile`"),
        "{error}"
    );
    assert!(!run.to_string().contains("hunter2"));

    let (code, run) = attack(&sb, "print-secret", "allowed_token", "", Some(config));
    assert_eq!(code, 0, "{run:#}");
    assert_eq!(step(&run, "1")["summary"], "secret=***");
    assert_eq!(step(&run, "1")["outputs"]["secret"], "***");
    let logs = sb.wasmops(&["runs", "logs", run["id"].as_str().unwrap()]);
    assert!(
        logs.stdout.contains("the secret is ***") && !logs.stdout.contains("tok-granted-1234"),
        "{}",
        logs.stdout
    );
}

#[test]
fn a_plugin_sees_only_the_environment_variables_granted_to_it() {
    let sb = Sandbox::new();
    let plugins = test_plugins().to_str().unwrap();
    let config = sb.write("wasmops.toml", "[plugins.hostile]\n");
    let config = config.to_str().unwrap();
    let env = [
        ("WASMOPS_TEST_GRANTED", "granted-value"),
        ("WASMOPS_TEST_OTHER", "other-value"),
    ];
    let run = |name: &str| {
        let file = sb.write(
            "env.yaml",
            &format!("steps:\n  - uses: hostile\n    with: {{ attack: env, target: {name} }}\n"),
        );
        let ran = sb.wasmops_with_env(
            &[
                "run",
                file.to_str().unwrap(),
                "--plugins",
                plugins,
                "--config",
                config,
                "--output",
                "json",
            ],
            &env,
        );
        (ran.code, ran.json())
    };
    let (code, granted) = run("WASMOPS_TEST_GRANTED");
    assert_eq!(code, 0, "{granted:#}");
    assert_eq!(
        step(&granted, "1")["summary"],
        "WASMOPS_TEST_GRANTED=granted-value"
    );
    let (code, other) = run("WASMOPS_TEST_OTHER");
    assert_eq!(code, 1);
    assert!(!other.to_string().contains("other-value"), "{other:#}");
    assert!(
        error_of(&other).contains("env WASMOPS_TEST_OTHER"),
        "{other:#}"
    );
}

#[test]
fn an_infinite_loop_is_stopped_at_its_deadline() {
    let sb = Sandbox::new();
    let started = std::time::Instant::now();
    let (code, run) = attack(&sb, "spin", "", "    timeout: 2s\n", None);
    assert_eq!(code, 1);
    assert!(started.elapsed().as_secs() < 30);
    let error = error_of(&run);
    assert!(
        error.contains("timed out after 2s") || error.contains("exceeded its time limit (2s)"),
        "{error}"
    );
    still_works(&sb);
}

#[test]
fn allocating_past_the_memory_limit_fails_the_step() {
    let sb = Sandbox::new();
    let (code, run) = attack(&sb, "allocate", "", "", None);
    assert_eq!(code, 1);
    let error = error_of(&run);
    assert!(error.contains("memory limit (32 MiB)"), "{error}");
    still_works(&sb);
}

#[test]
fn a_script_cannot_read_outside_its_workspace() {
    let sb = Sandbox::new();
    let private = tempfile::tempdir().unwrap();
    let secret = private.path().join("id_rsa");
    std::fs::write(&secret, "-----BEGIN PRIVATE KEY-----").unwrap();
    let yaml = format!(
        "steps:\n  - uses: script\n    with:\n      run: |\n        echo inside > notes.txt && cat notes.txt\n        cat {}\n",
        secret.display()
    );
    let (code, run) = sb.run_json(&yaml, &[]);
    assert_eq!(code, 1, "{run:#}");
    let error = error_of(&run);
    assert!(
        error.contains("Permission denied") && !error.contains("BEGIN PRIVATE KEY"),
        "{error}"
    );
    let logs = sb.wasmops(&["runs", "logs", run["id"].as_str().unwrap()]);
    assert!(
        logs.stdout.contains("stdout: inside"),
        "the workspace itself is writable: {}",
        logs.stdout
    );
    still_works(&sb);
}

#[test]
fn a_script_without_a_network_grant_cannot_reach_a_local_server() {
    let sb = Sandbox::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let yaml = format!(
        "steps:\n  - uses: script\n    with: {{ run: \"echo hi > /dev/tcp/127.0.0.1/{port}\" }}\n"
    );
    let (code, run) = sb.run_json(&yaml, &[]);
    assert_eq!(code, 1, "{run:#}");
    assert!(error_of(&run).contains("Connection refused"), "{run:#}");
    listener.set_nonblocking(true).unwrap();
    assert!(
        listener.accept().is_err(),
        "the script reached the host's loopback"
    );
    still_works(&sb);
}

#[test]
fn an_added_plugin_without_an_operator_section_gets_only_the_defaults() {
    let sb = Sandbox::new();
    let plugins = test_plugins().to_str().unwrap();
    // hostile requests `bash`; with no [plugins.hostile] section it is not granted.
    let yaml = "steps:\n  - name: attack\n    uses: hostile\n    with: { attack: exec, target: \"bash\" }\n";
    let (code, run) = sb.run_json(yaml, &["--plugins", plugins]);
    assert_eq!(code, 1);
    let error = error_of(&run);
    assert!(error.contains("capability `exec`"), "{error}");
    assert!(error.contains("granted: none"), "{error}");
    still_works(&sb);
}

#[test]
fn a_plugin_whose_validate_never_returns_is_asked_once_and_named() {
    let sb = Sandbox::new();
    let plugins = test_plugins().to_str().unwrap().to_string();
    let config = sb.write("wasmops.toml", "[plugins.hostile]\n");
    let blocks: String = ["a", "b", "c"]
        .iter()
        .map(|t| {
            format!("  - uses: hostile\n    with: {{ attack: spin-in-validate, target: {t} }}\n")
        })
        .collect();
    let file = sb.write("wf.yaml", &format!("steps:\n{blocks}"));
    let ran = sb.wasmops(&[
        "validate",
        file.to_str().unwrap(),
        "--plugins",
        &plugins,
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert_eq!(
        ran.stderr
            .matches("plugin `hostile` could not check its `with` block")
            .count(),
        1,
        "{}",
        ran.stderr
    );
    assert!(ran.stderr.contains("wf.yaml:3:"), "{}", ran.stderr);
}
