//! Input written to hurt: alias bombs, deep nesting, duplicate keys, numbers past any sensible
//! range. Each is refused with `file:line:column` (CLI) or a 4xx with the position (API), and
//! nothing it names is ever built in memory.

use crate::daemon::daemon_with_hello_world;
use crate::daemon_support::JANE;
use crate::support::Sandbox;
use serde_json::json;

/// Nine levels of ten aliases: 10^9 nodes once expanded, from under 600 bytes.
fn alias_bomb() -> String {
    let mut text = String::from("name: bomb\nx0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let p = i - 1;
        let refs = vec![format!("*a{p}"); 10].join(", ");
        text.push_str(&format!("x{i}: &a{i} [{refs}]\n"));
    }
    text.push_str("steps:\n  - uses: noop\n");
    text
}

fn validate(sb: &Sandbox, yaml: &str) -> (i32, String) {
    let file = sb.write("wf.yaml", yaml);
    let ran = sb.wasmops(&["validate", file.to_str().unwrap()]);
    (ran.code, ran.stderr + &ran.stdout)
}

#[test]
fn yaml_that_would_expand_or_nest_without_end_is_refused_with_a_position() {
    let sb = Sandbox::new();
    let (code, out) = validate(&sb, &alias_bomb());
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("wf.yaml:7:") && out.contains("expands to more than 500000 nodes"),
        "{out}"
    );

    let deep: String = (0..1_000)
        .map(|i| format!("{}k:\n", " ".repeat(i)))
        .collect();
    let (code, out) = validate(&sb, &deep);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("wf.yaml:65:") && out.contains("more than 64 deep"),
        "{out}"
    );

    let (code, out) = validate(&sb, "name: a\nsteps:\n  - uses: noop\nname: b\n");
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains(
            "wf.yaml:4:1: the key `name` appears twice in this mapping (first at line 1, column 1)"
        ),
        "{out}"
    );
}

#[test]
fn numbers_past_their_range_are_errors_not_panics() {
    let sb = Sandbox::new();
    let (code, out) = validate(
        &sb,
        "steps:\n  - uses: noop\n    retry: { attempts: 4294967295, delay: 18446744073709551615 }\n  - uses: noop\n    timeout: 9000000000000s\n  - uses: noop\n    retry: 18446744073709551615\n  - type: wait\n    requires_approval_from: { users: [jane@example.com] }\n    timeout: 100000000000000\n",
    );
    assert_eq!(code, 2, "{out}");
    for expected in [
        "wf.yaml:3:24: `attempts` is at most 100, found 4294967295",
        // Past 2^64 YAML reads a float: the duration is refused all the same.
        "wf.yaml:3:43: `18446744073709552000` is not a duration",
        "wf.yaml:5:14: `9000000000000s` is not a duration",
        "wf.yaml:7:12: `retry` is at most 100, found 18446744073709552000",
        "wf.yaml:10:14: `100000000000000` is not a duration",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }

    // At the bounds, a retry's backoff stays finite: the longest delay is an hour.
    let (code, out) = validate(
        &sb,
        "steps:\n  - uses: noop\n    retry: { attempts: 100, delay: 366d, backoff: 10 }\n",
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn the_api_refuses_the_same_documents_with_a_4xx_and_the_position() {
    let (_sb, d) = daemon_with_hello_world();
    let path = "/api/v1/projects/hello_world/workflows/bomb";
    for (yaml, expected) in [
        (alias_bomb(), "expands to more than 500000 nodes"),
        ("steps: []\nsteps: []\n".to_string(), "appears twice"),
    ] {
        let (status, body) = d.call(Some(JANE), "PUT", path, Some(json!({ "yaml": yaml })));
        let (status, body) = if status == 200 {
            d.post(JANE, &format!("{path}/publish"), json!({}))
        } else {
            (status, body)
        };
        assert!((400..500).contains(&status), "{status} {body:#}");
        let text = body.to_string();
        assert!(text.contains(expected), "{body:#}");
    }
    // The same daemon still answers.
    d.get("/api/v1/runs");
}

#[test]
fn codes_that_are_not_plain_names_are_refused() {
    let (_sb, d) = daemon_with_hello_world();
    for code in ["..", "a%2Fb", "x%00y", "Caps", "-lead", &"x".repeat(65)] {
        let path = format!("/api/v1/projects/hello_world/workflows/{code}");
        let (status, body) = d.call(
            Some(JANE),
            "PUT",
            &path,
            Some(json!({ "yaml": "steps:\n  - uses: noop\n" })),
        );
        // `..` is resolved away by the router (no such route); every other code reaches the
        // check and is refused by name.
        assert!((400..500).contains(&status), "{code}: {status} {body:#}");
        if code != ".." {
            assert!(
                body.to_string().contains("is not allowed"),
                "{code}: {body:#}"
            );
        }
    }
    let (status, body) = d.post(
        JANE,
        "/api/v1/projects/hello_world/workflows/greet/duplicate",
        json!({ "code": "../../escape" }),
    );
    assert!((400..500).contains(&status), "{status} {body:#}");
    // Nothing of them was stored.
    let listed = d.get("/api/v1/workflows").to_string();
    assert!(
        !listed.contains("escape") && !listed.contains("a/b"),
        "{listed}"
    );
}

#[test]
fn a_client_that_never_finishes_its_request_head_is_disconnected() {
    use std::io::{Read, Write};
    let (_sb, d) = daemon_with_hello_world();
    let mut slow = std::net::TcpStream::connect(d.url.trim_start_matches("http://")).unwrap();
    slow.write_all(b"GET /api/v1/runs HTTP/1.1\r\nHost: x\r\nX-Slow: a")
        .unwrap();
    slow.set_read_timeout(Some(std::time::Duration::from_secs(40)))
        .unwrap();
    let started = std::time::Instant::now();
    // Others are served meanwhile.
    d.get("/api/v1/runs");
    let mut rest = Vec::new();
    let closed = slow.read_to_end(&mut rest);
    assert!(
        closed.is_ok() && started.elapsed() < std::time::Duration::from_secs(30),
        "{closed:?} after {:?}",
        started.elapsed()
    );
}

#[test]
fn thousands_of_missing_references_are_each_reported_and_only_the_first_get_hints() {
    let sb = Sandbox::new();
    let steps: String = (0..2_000)
        .map(|i| {
            format!("  - id: s{i}\n    uses: noop\n    with: {{ summary: \"{{{{ steps.t{i}.outputs.x }}}}\" }}\n")
        })
        .collect();
    let (code, out) = validate(&sb, &format!("steps:\n{steps}"));
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("2000 error(s)"), "{}", &out[out.len() - 200..]);
    let hinted = out.matches("did you mean").count();
    assert_eq!(hinted, 50, "hints past the first 50 cost a search each");
}

#[test]
fn a_byte_that_is_not_utf8_and_an_error_at_the_end_are_placed_on_the_text() {
    let sb = Sandbox::new();
    let file = sb.path("wf.yaml");
    std::fs::write(
        &file,
        b"name: x\nsteps:\n  - uses: noop\n    with: { summary: \"caf\xe9\" }\n",
    )
    .unwrap();
    let ran = sb.wasmops(&["validate", file.to_str().unwrap()]);
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr
            .contains("wf.yaml:4:26: byte 0xe9 is not UTF-8 text"),
        "{}",
        ran.stderr
    );
    // The same through `run`, and in a project's workflows folder.
    let ran = sb.wasmops(&["run", file.to_str().unwrap()]);
    assert_ne!(ran.code, 0);
    assert!(ran.stderr.contains("wf.yaml:4:26"), "{}", ran.stderr);

    // An error at the very end of a file with no final newline points at its last line.
    let (code, out) = validate(&sb, "name: x\nsteps:\n  - uses: noop\n    with: {");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("wf.yaml:4:12: invalid YAML"), "{out}");
}

#[test]
fn validating_large_drafts_leaves_the_daemon_responsive() {
    let (_sb, d) = daemon_with_hello_world();
    let steps: String = (0..12_000)
        .map(|i| {
            format!(
                "  - id: s{i}\n    uses: noop\n    with: {{ summary: \"{{{{ run.id }}}} {i}\" }}\n"
            )
        })
        .collect();
    let path = "/api/v1/projects/hello_world/workflows/large";
    let (status, body) = d.call(
        Some(JANE),
        "PUT",
        path,
        Some(json!({ "yaml": format!("steps:\n{steps}") })),
    );
    assert_eq!(status, 200, "{body:#}");
    let finished = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let validations: Vec<_> = (0..2)
        .map(|_| {
            let (url, finished) = (d.url.clone(), finished.clone());
            std::thread::spawn(move || {
                let started = std::time::Instant::now();
                let answer = ureq::post(&format!("{url}{path}/validate"))
                    .header("Authorization", &format!("Bearer {JANE}"))
                    .send_json(json!({}));
                assert!(answer.is_ok(), "{answer:?}");
                finished.lock().unwrap().push(started.elapsed());
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(200));
    // While both validations run, the daemon still answers at once: neither holds an async
    // worker.
    let health = ureq::get(&format!("{}/healthz", d.url)).call();
    let validated_meanwhile = finished.lock().unwrap().len();
    assert!(health.is_ok(), "{health:?}");
    for v in validations {
        v.join().unwrap();
    }
    let took = finished.lock().unwrap().clone();
    assert_eq!(
        validated_meanwhile, 0,
        "/healthz waited for a validation to finish (they took {took:?})"
    );
}

/// Inputs the fuzz targets (`fuzz/`) found crashing, kept so they stay fixed.
#[test]
fn inputs_the_fuzzers_found_fail_validation_and_crash_nothing() {
    let sb = Sandbox::new();
    // The template engine's lexer panicked on `}}` inside an expression ("empty lexer stack").
    for yaml in [
        "steps:\n- if: k}}k\n",
        "steps:\n  - uses: noop\n    when: \"a }} b\"\n",
    ] {
        let (code, out) = validate(&sb, yaml);
        assert_eq!(code, 2, "{yaml:?}: {out}");
        assert!(!out.contains("panicked"), "{out}");
        assert!(out.contains("wf.yaml:"), "{out}");
    }
}
