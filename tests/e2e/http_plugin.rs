//! The built-in `http` step against a real server on 127.0.0.1: health checks, retries on 5xx,
//! redirects (each hop through the grant), JSON bodies, and the operator's grant as the only way
//! to reach a host.

use crate::daemon_support::JANE;
use crate::http_server::Server;
use crate::support::{Sandbox, step};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The routes the tests call; `/flaky` fails its first request only.
fn server() -> Server {
    let flaky = AtomicUsize::new(0);
    Server::start(move |request, port| {
        let text = |s: &str| s.to_string();
        match request.path.as_str() {
            "/health" => (
                "200 OK",
                text("content-type: application/json\r\n"),
                text(r#"{"ok": true, "version": "1.4.2"}"#),
            ),
            "/flaky" if flaky.fetch_add(1, Ordering::SeqCst) == 0 => {
                ("503 Service Unavailable", String::new(), text("warming up"))
            }
            "/flaky" => ("200 OK", String::new(), text("ready")),
            "/down" => (
                "503 Service Unavailable",
                String::new(),
                text("maintenance until 14:00"),
            ),
            "/moved" => ("302 Found", text("location: /health\r\n"), String::new()),
            "/away" => (
                "302 Found",
                format!("location: http://localhost:{port}/health\r\n"),
                String::new(),
            ),
            "/echo" => ("201 Created", String::new(), request.body.clone()),
            _ => ("404 Not Found", String::new(), text("no such page")),
        }
    })
}

/// The operator's grant: this server's address, private as it is.
const GRANT: &str = "[plugins.http]\nhttp = [\"http://127.0.0.1:*\"]\nallow_private_http = true\n";

/// Runs `with` as one `http` step under `config`; returns the exit code and the step.
fn run_call(sb: &Sandbox, with: &str, config: &str) -> (i32, Value) {
    let config = sb.write("wasmops.toml", config);
    let yaml = format!("steps:\n  - id: call\n    uses: http\n    with: {with}\n");
    let (code, run) = sb.run_json(&yaml, &["--config", config.to_str().unwrap()]);
    (code, step(&run, "1").clone())
}

#[test]
fn a_health_check_passes_with_the_answer_in_its_outputs() {
    let (sb, server) = (Sandbox::new(), server());
    let (code, call) = run_call(
        &sb,
        &format!("{{ url: \"{}\" }}", server.url("/health")),
        GRANT,
    );
    assert_eq!(code, 0, "{call:#}");
    assert_eq!(call["summary"], "HTTP 200 OK");
    assert_eq!(call["outputs"]["status"], 200);
    assert_eq!(call["outputs"]["json"]["version"], "1.4.2");
    assert_eq!(
        call["outputs"]["headers"]["content-type"],
        "application/json"
    );
    assert_eq!(call["outputs"]["attempts"], 1);
}

#[test]
fn a_503_is_retried_with_backoff_until_it_answers() {
    let (sb, server) = (Sandbox::new(), server());
    let with = format!(
        "{{ url: \"{}\", retries: 2, retry_delay: 100ms }}",
        server.url("/flaky")
    );
    let (code, call) = run_call(&sb, &with, GRANT);
    assert_eq!(code, 0, "{call:#}");
    assert_eq!(call["summary"], "HTTP 200 OK");
    assert_eq!(call["outputs"]["attempts"], 2);
    assert_eq!(call["outputs"]["body"], "ready");

    // Still failing after every retry: the step fails with the status and what the server said.
    let with = format!(
        "{{ url: \"{}\", retries: 1, retry_delay: 50ms }}",
        server.url("/down")
    );
    let (code, call) = run_call(&sb, &with, GRANT);
    assert_ne!(code, 0);
    let error = call["error"].as_str().unwrap();
    assert!(
        error.contains(&format!(
            "HTTP 503 Service Unavailable from GET {} (expected 2xx) after 2 attempts: maintenance until 14:00",
            server.url("/down")
        )),
        "{error}"
    );
}

#[test]
fn redirects_are_followed_only_when_asked_and_only_to_granted_hosts() {
    let (sb, server) = (Sandbox::new(), server());
    let moved = server.url("/moved");
    let (code, call_) = run_call(&sb, &format!("{{ url: \"{moved}\" }}"), GRANT);
    assert_ne!(code, 0);
    assert!(
        call_["error"]
            .as_str()
            .unwrap()
            .contains("HTTP 302 Found from GET"),
        "{call_:#}"
    );
    let (code, followed) = run_call(
        &sb,
        &format!("{{ url: \"{moved}\", follow_redirects: true }}"),
        GRANT,
    );
    assert_eq!(code, 0, "{followed:#}");
    assert_eq!(followed["outputs"]["json"]["ok"], true);

    // `localhost` is the same machine, but not a granted host.
    let (code, away) = run_call(
        &sb,
        &format!(
            "{{ url: \"{}\", follow_redirects: true }}",
            server.url("/away")
        ),
        GRANT,
    );
    assert_ne!(code, 0);
    let error = away["error"].as_str().unwrap();
    assert!(
        error.contains("localhost") && error.contains("denied by the sandbox"),
        "{error}"
    );
    // The refused hop never left the sandbox.
    let paths: Vec<String> = server.seen().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/moved", "/moved", "/health", "/away"]);
}

#[test]
fn a_json_body_is_sent_with_its_content_type() {
    let (sb, server) = (Sandbox::new(), server());
    let with = format!(
        "{{ url: \"{}\", method: post, json: {{ release: \"v2\", replicas: 3 }}, expect_status: 201 }}",
        server.url("/echo")
    );
    let (code, call) = run_call(&sb, &with, GRANT);
    assert_eq!(code, 0, "{call:#}");
    assert_eq!(call["summary"], "HTTP 201 Created");
    assert_eq!(call["outputs"]["json"]["replicas"], 3);
    let seen = server.seen();
    let sent = seen.last().unwrap();
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.content_type, "application/json");
    assert_eq!(
        serde_json::from_str::<Value>(&sent.body).unwrap(),
        serde_json::json!({"release": "v2", "replicas": 3})
    );
}

#[test]
fn no_host_is_reachable_until_the_operator_grants_it() {
    let (sb, server) = (Sandbox::new(), server());
    let with = format!("{{ url: \"{}\" }}", server.url("/health"));
    // No [plugins.http] section: the plugin's any-host request grants nothing by itself.
    let (code, call_) = run_call(&sb, &with, "");
    assert_ne!(code, 0);
    let error = call_["error"].as_str().unwrap();
    assert!(error.contains("denied by the sandbox"), "{error}");
    // Granted, but private addresses not allowed.
    let (code, call_) = run_call(
        &sb,
        &with,
        "[plugins.http]\nhttp = [\"http://127.0.0.1:*\"]\n",
    );
    assert_ne!(code, 0);
    assert!(
        call_["error"].as_str().unwrap().contains("denied"),
        "{call_:#}"
    );
    assert!(server.seen().is_empty());

    let inspected = sb.wasmops(&["plugins", "inspect", "http"]);
    assert_eq!(inspected.code, 0, "{}", inspected.stderr);
    assert!(
        inspected.stdout.contains("https://*:*"),
        "{}",
        inspected.stdout
    );
}

#[test]
fn a_wrong_with_block_is_an_error_at_its_line_before_anything_runs() {
    let sb = Sandbox::new();
    let file = sb.write(
        "wf.yaml",
        "steps:\n  - uses: noop\n  - uses: http\n    with: { url: \"example.com/health\", retries: 50 }\n",
    );
    let ran = sb.wasmops(&["validate", file.to_str().unwrap()]);
    assert_eq!(ran.code, 2, "{}{}", ran.stdout, ran.stderr);
    let out = ran.stdout + &ran.stderr;
    assert!(out.contains("wf.yaml:4:"), "{out}");
    assert!(
        out.contains("invalid `with` for http: url `example.com/health` is not an absolute URL"),
        "{out}"
    );

    // The daemon checks a draft the same way, and will not publish it.
    let (_sb, d) = crate::daemon::daemon_with_hello_world();
    let path = "/api/v1/projects/hello_world/workflows/health";
    let draft = "steps:\n  - uses: http\n    with: { url: \"https://example.com\", retries: 50 }\n";
    let (status, body) = d.call(Some(JANE), "PUT", path, Some(json!({ "yaml": draft })));
    assert_eq!(status, 200, "{body:#}");
    let (_, checked) = d.post(JANE, &format!("{path}/validate"), json!({}));
    assert_eq!(checked["valid"], false, "{checked:#}");
    let error = checked["errors"][0].as_str().unwrap();
    assert!(
        error.contains(":3:")
            && error.contains("invalid `with` for http: retries: 50 is more than 10"),
        "{error}"
    );
    let (status, refused) = d.post(JANE, &format!("{path}/publish"), json!({}));
    assert_ne!(status, 200, "{refused:#}");
}

#[test]
fn describe_shows_the_with_schema_and_outputs() {
    let sb = Sandbox::new();
    let described = sb.wasmops(&["plugins", "describe", "http", "--output", "json"]);
    assert_eq!(described.code, 0, "{}", described.stderr);
    let info: Value = serde_json::from_str(&described.stdout).unwrap();
    assert_eq!(info["config_schema"]["required"], json!(["url"]));
    assert!(info["config_schema"]["properties"]["follow_redirects"].is_object());
    assert!(
        info["outputs"]
            .as_array()
            .unwrap()
            .contains(&json!("status"))
    );
    let missing = sb.wasmops(&["plugins", "describe", "htp"]);
    assert_ne!(missing.code, 0);
    assert!(
        missing.stderr.contains("no plugin `htp`; installed:"),
        "{}",
        missing.stderr
    );
}

#[test]
fn the_daemon_describes_a_step_plugin_to_any_viewer() {
    let (_sb, d) = crate::daemon::daemon_with_hello_world();
    let (status, info) = d.call(
        Some(crate::daemon_support::VIC),
        "GET",
        "/api/v1/plugins/terraform/describe",
        None,
    );
    assert_eq!(status, 200, "{info:#}");
    assert_eq!(info["config_schema"]["required"], json!(["action"]));
    assert!(
        info["outputs"]
            .as_array()
            .unwrap()
            .contains(&json!("plan_sha256"))
    );
    let (status, missing) = d.call(Some(JANE), "GET", "/api/v1/plugins/nope/describe", None);
    assert_eq!(status, 404, "{missing:#}");
    let (status, _) = d.call(None, "GET", "/api/v1/plugins/http/describe", None);
    assert_eq!(status, 401);
}
