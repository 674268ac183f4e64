//! The trigger and notifier worlds, bound end to end: real test plugins (`header-trigger`,
//! `recording-notifier`) called through the sandbox API in process, with the same capabilities
//! enforced as for steps, and installed, listed and refused as steps through the binary.

use crate::support::{Sandbox, test_plugins};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use wasmops::plugins::Registry;
use wasmops_sandbox::{
    CallEnv, Capability, FailureCause, OperatorGrant, PluginKind, RunEvent, Sandbox as Host,
    SandboxOptions, Secrets, Subscription, TriggerDecision, TriggerEvent,
};

/// A sandbox with the test plugins loaded, the operator's `[plugins.NAME]` sections and
/// secrets as given. Every test plugin the sections leave out gets an empty section, which
/// grants what it requests: these tests are about what a consenting operator's grants allow.
fn host(operator: &str, secrets: &[(&str, &str)]) -> Registry {
    let mut operator: BTreeMap<String, OperatorGrant> = toml::from_str(operator).unwrap();
    for name in ["header-trigger", "recording-notifier", "echo", "hostile"] {
        operator.entry(name.to_string()).or_default();
    }
    let secrets = Secrets::from_values(
        secrets
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let sandbox = Host::new(SandboxOptions {
        operator,
        secrets,
        ..SandboxOptions::default()
    })
    .unwrap();
    let registry = Registry::builtin(Arc::new(sandbox)).unwrap();
    registry.load_dir(test_plugins()).unwrap();
    registry
}

fn event(headers: &[(&str, &str)], body: &str) -> TriggerEvent {
    TriggerEvent {
        source: "http".into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.as_bytes().to_vec(),
        details: "{}".into(),
    }
}

#[tokio::test]
async fn a_trigger_subscribes_and_decides_on_events() {
    let registry = host("", &[]);
    let sandbox = registry.sandbox();
    let trigger = registry.get("header-trigger").unwrap();
    assert_eq!(trigger.kind(), PluginKind::Trigger);
    let config = r#"{"header": "X-Deploy", "value": "yes"}"#;

    let problems = sandbox
        .trigger_validate(&trigger, CallEnv::default(), r#"{"header": ""}"#)
        .await
        .unwrap();
    assert_eq!(problems, ["`header` must not be empty"]);
    assert!(
        sandbox
            .trigger_validate(&trigger, CallEnv::default(), config)
            .await
            .unwrap()
            .is_empty()
    );

    let subscriptions = sandbox
        .trigger_subscribe(&trigger, CallEnv::default(), config)
        .await
        .unwrap();
    assert!(matches!(subscriptions[..], [Subscription::HttpRoute]));

    let env = CallEnv::default();
    let fired = sandbox
        .trigger_on_event(
            &trigger,
            env.clone(),
            config,
            &event(&[("x-deploy", "yes")], r#"{"commit": "abc1234"}"#),
        )
        .await
        .unwrap();
    let TriggerDecision::Fire(inputs) = fired else {
        panic!("expected fire, got {fired:?}");
    };
    let inputs: Value = serde_json::from_str(&inputs).unwrap();
    assert_eq!(inputs["header"], "yes");
    assert_eq!(inputs["payload"]["commit"], "abc1234");
    let log = env.log.drain();
    assert!(
        log.iter()
            .any(|l| l.stream == "info" && l.text.contains("looking for header `X-Deploy`")),
        "the log capability works in the trigger world: {log:?}"
    );

    let ignored = sandbox
        .trigger_on_event(&trigger, CallEnv::default(), config, &event(&[], ""))
        .await
        .unwrap();
    assert!(matches!(ignored, TriggerDecision::Ignore), "{ignored:?}");
    let rejected = sandbox
        .trigger_on_event(
            &trigger,
            CallEnv::default(),
            config,
            &event(&[("X-Deploy", "no")], ""),
        )
        .await
        .unwrap();
    let TriggerDecision::Reject(reason) = rejected else {
        panic!("expected reject, got {rejected:?}");
    };
    assert!(reason.contains("wrong value"), "{reason}");
}

#[tokio::test]
async fn a_trigger_reads_only_the_secrets_granted_to_it() {
    let registry = host(
        "",
        &[
            ("trigger_token", "tok-trigger-5678"),
            ("db_password", "hunter2-db"),
        ],
    );
    let sandbox = registry.sandbox();
    let trigger = registry.get("header-trigger").unwrap();
    let hit = event(&[("X-Go", "1")], "");

    let granted = r#"{"header": "X-Go", "secret": "trigger_token"}"#;
    let fired = sandbox
        .trigger_on_event(&trigger, CallEnv::default(), granted, &hit)
        .await
        .unwrap();
    let TriggerDecision::Fire(inputs) = fired else {
        panic!("expected fire, got {fired:?}");
    };
    assert_eq!(
        serde_json::from_str::<Value>(&inputs).unwrap()["secret_len"],
        16
    );

    let env = CallEnv::default();
    let refused = r#"{"header": "X-Go", "secret": "db_password"}"#;
    let decision = sandbox
        .trigger_on_event(&trigger, env.clone(), refused, &hit)
        .await
        .unwrap();
    let TriggerDecision::Reject(reason) = decision else {
        panic!("expected reject, got {decision:?}");
    };
    assert!(
        reason.contains("`db_password` is not granted to plugin `header-trigger`")
            && reason.contains("(capability `secrets`)"),
        "{reason}"
    );
    assert!(!reason.contains("hunter2"), "{reason}");
    let log = env.log.drain();
    assert!(
        log.iter()
            .any(|l| l.stream == "warn" && l.text.starts_with("sandbox denied secrets:")),
        "{log:?}"
    );
}

/// Records the JSON bodies POSTed to it, answering 204.
fn recorder() -> (u16, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let bodies = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut length, mut chunked) = (0, false);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let line = line.to_ascii_lowercase();
                if let Some(v) = line.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                chunked |= line.starts_with("transfer-encoding:") && line.contains("chunked");
            }
            let body = if chunked {
                read_chunks(&mut reader)
            } else {
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                body
            };
            if let Ok(json) = serde_json::from_slice(&body) {
                bodies.lock().unwrap().push(json);
            }
            let _ = stream.write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n");
        }
    });
    (port, seen)
}

/// A `Transfer-Encoding: chunked` body.
fn read_chunks(reader: &mut impl BufRead) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        if reader.read_line(&mut size).unwrap_or(0) == 0 {
            return body;
        }
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        let mut chunk = vec![0; size + 2];
        if size == 0 || reader.read_exact(&mut chunk).is_err() {
            return body;
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

fn run_event(status: &str) -> RunEvent {
    RunEvent {
        run_id: "wfr_abc12345".into(),
        workflow: "/projects/p/workflows/deploy".into(),
        status: status.into(),
        run: json!({"id": "wfr_abc12345", "status": status}).to_string(),
    }
}

#[tokio::test]
async fn a_notifier_reaches_a_granted_host_and_nothing_else() {
    let (port, seen) = recorder();
    let url = json!({"url": format!("http://localhost:{port}/events")}).to_string();

    // The operator lets it reach a loopback address; the plugin asked for localhost.
    let registry = host("[recording-notifier]\nallow_private_http = true\n", &[]);
    let sandbox = registry.sandbox();
    let notifier = registry.get("recording-notifier").unwrap();
    assert_eq!(notifier.kind(), PluginKind::Notifier);
    sandbox
        .notify(&notifier, CallEnv::default(), &url, &run_event("failed"))
        .await
        .unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            json!({"run_id": "wfr_abc12345", "workflow": "/projects/p/workflows/deploy", "status": "failed"})
        ]
    );

    // Without the operator's word, localhost resolves to a private address: refused.
    let registry = host("", &[]);
    let notifier = registry.get("recording-notifier").unwrap();
    let failure = registry
        .sandbox()
        .notify(&notifier, CallEnv::default(), &url, &run_event("failed"))
        .await
        .unwrap_err();
    assert_eq!(failure.denials[0].capability, Capability::Http);
    assert!(
        failure
            .to_string()
            .contains("a private, loopback or reserved address"),
        "{failure}"
    );

    // A host it never asked for is refused whatever the operator allows.
    let registry = host("[recording-notifier]\nallow_private_http = true\n", &[]);
    let notifier = registry.get("recording-notifier").unwrap();
    let elsewhere = json!({"url": format!("http://127.0.0.1:{port}/events")}).to_string();
    let failure = registry
        .sandbox()
        .notify(
            &notifier,
            CallEnv::default(),
            &elsewhere,
            &run_event("failed"),
        )
        .await
        .unwrap_err();
    assert_eq!(failure.denials[0].capability, Capability::Http);
    assert!(failure.to_string().contains("is not granted"), "{failure}");
    assert_eq!(seen.lock().unwrap().len(), 1, "nothing else got through");

    assert_eq!(
        registry
            .sandbox()
            .notifier_validate(&notifier, CallEnv::default(), r#"{"url": "ftp://x"}"#)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_plugin_is_called_only_through_its_own_world() {
    let registry = host("", &[]);
    let sandbox = registry.sandbox();
    let trigger = registry.get("header-trigger").unwrap();
    let failure = sandbox
        .notify(&trigger, CallEnv::default(), "{}", &run_event("failed"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            failure.cause,
            FailureCause::WrongKind {
                expected: PluginKind::Notifier,
                actual: PluginKind::Trigger
            }
        ),
        "{failure:?}"
    );
    assert_eq!(
        failure.to_string(),
        "plugin `header-trigger` is a trigger plugin, not a notifier plugin"
    );
    let noop = registry.get("noop").unwrap();
    let failure = sandbox
        .trigger_subscribe(&noop, CallEnv::default(), "{}")
        .await
        .unwrap_err();
    assert!(matches!(failure.cause, FailureCause::WrongKind { .. }));
}

#[test]
fn trigger_and_notifier_plugins_install_and_are_not_steps() {
    let sb = Sandbox::new();
    for name in ["header-trigger", "recording-notifier"] {
        let dir = test_plugins().join(name);
        let installed = sb.wasmops(&["plugins", "install", dir.to_str().unwrap()]);
        assert_eq!(installed.code, 0, "{}", installed.stderr);
    }
    let inspect = sb.wasmops(&["plugins", "inspect", "header-trigger", "--output", "json"]);
    assert_eq!(inspect.code, 0, "{}", inspect.stderr);
    let info = inspect.json();
    assert_eq!(info["kind"], "trigger");
    assert_eq!(info["world"], "wasmops:plugin/trigger-plugin@0.1.0");
    // No section in the config: it asked for secrets, and gets the defaults until the operator
    // writes one.
    assert_eq!(info["requested"]["secrets"], json!(["trigger_*"]));
    assert_eq!(info["grants"]["secrets"], json!([]));
    assert_eq!(info["grant_basis"], "defaults");
    let text = sb.wasmops(&["plugins", "inspect", "header-trigger"]);
    assert!(
        text.stdout.contains("defaults: log and workspace only"),
        "{}",
        text.stdout
    );
    let config = sb.write("wasmops.toml", "[plugins.header-trigger]\n");
    let inspect = sb.wasmops(&[
        "plugins",
        "inspect",
        "header-trigger",
        "--output",
        "json",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(inspect.json()["grants"]["secrets"], json!(["trigger_*"]));
    assert_eq!(inspect.json()["grant_basis"], "operator_section");
    let list = sb.wasmops(&["plugins", "list"]);
    assert!(
        list.stdout
            .lines()
            .any(|l| l.starts_with("recording-notifier")
                && l.contains("notifier")
                && l.contains("notifier-plugin@0.1.0")),
        "{}",
        list.stdout
    );

    let file = sb.write(
        "w.yaml",
        "steps:\n  - uses: header-trigger\n    with: { header: X }\n",
    );
    let ran = sb.wasmops(&["validate", file.to_str().unwrap()]);
    assert_eq!(ran.code, 2, "{}", ran.stdout);
    assert!(
        ran.stderr
            .contains("plugin `header-trigger` is a trigger plugin, not a step"),
        "{}",
        ran.stderr
    );
}
