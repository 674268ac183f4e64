//! Secrets end to end: a long multi-line key read with `file:` and a basic-auth password, printed
//! by a failing script in every form tools print them, never reach the store, the data
//! directory, the API, the daemon's log or the CLI in clear; and a template that reads a secret
//! where no grant decides who sees it is a validation error at its line and column.

use crate::daemon_support::{Daemon, JANE};
use crate::support::{Sandbox, repo, step};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::json;
use std::path::{Path, PathBuf};

const PASSWORD: &str = "hunter2/Very+Secret=pw";

/// A PEM-like private key: 26 lines of 64 base64 characters between the armour lines.
fn pem() -> String {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let body: Vec<String> = (0..26)
        .map(|_| {
            (0..64)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    alphabet[(state % 64) as usize] as char
                })
                .collect()
        })
        .collect();
    format!(
        "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----",
        body.join("\n")
    )
}

/// Every form in which the script below prints the secrets, as text to look for.
fn forms(key: &str) -> Vec<String> {
    let mut forms = vec![key.to_string(), PASSWORD.to_string()];
    forms.extend(key.lines().filter(|l| l.len() == 64).map(str::to_string));
    let encoded = STANDARD.encode(key);
    for width in [76, 64] {
        forms.extend(
            encoded
                .as_bytes()
                .chunks(width)
                .filter(|c| c.len() == width)
                .map(|c| String::from_utf8(c.to_vec()).unwrap()),
        );
    }
    forms.push(encoded);
    forms.push(STANDARD.encode(format!("deploy:{PASSWORD}")));
    forms.push(STANDARD.encode(PASSWORD).trim_end_matches('=').to_string());
    forms.push(URL_SAFE_NO_PAD.encode(PASSWORD));
    forms.push(urlencoding::encode(PASSWORD).into_owned());
    forms
}

/// The first form of a secret found in `text`, shortened for the failure message.
fn leak<'a>(text: &str, forms: &'a [String]) -> Option<&'a str> {
    forms
        .iter()
        .find(|f| text.contains(f.as_str()))
        .map(|f| &f[..f.len().min(40)])
}

fn assert_clean(what: &str, text: &str, forms: &[String]) {
    if let Some(found) = leak(text, forms) {
        panic!("{what} holds a secret ({found}…):\n{text}");
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

/// Every file under the data directory, sled's included, read as raw bytes.
fn assert_data_dir_clean(data: &Path, forms: &[String]) {
    let files = files_under(data);
    assert!(
        files.iter().any(|f| f.to_string_lossy().contains("db")),
        "no sled files under {}: {files:?}",
        data.display()
    );
    for file in files {
        let bytes = std::fs::read(&file).unwrap();
        assert_clean(
            &file.display().to_string(),
            &String::from_utf8_lossy(&bytes),
            forms,
        );
    }
}

/// Prints both secrets plain, line by line, base64 (76 and 64 columns, one line, URL-safe),
/// as basic auth; writes them to `$WASMOPS_OUTPUT`, workspace files and its temporary
/// directory; then fails.
const WORKFLOW: &str = r#"
steps:
  - name: leaky deploy
    uses: script
    with:
      env:
        KEY: "{{ secrets.tls_key }}"
        PW: "{{ secrets.api_password }}"
      run: |
        echo "keep me" > notes.txt
        printf '%s\n' "$KEY"
        printf '%s' "$KEY" | base64
        printf '%s' "$KEY" | base64 -w 64
        printf '%s' "$KEY" | base64 -w 0; echo
        printf 'Authorization: Basic %s\n' "$(printf 'deploy:%s' "$PW" | base64 -w 0)"
        printf '%s' "$PW" | base64 -w 0 | tr '+/' '-_'; echo
        echo "pw=$PW" >&2
        { echo "key<<EOF"; printf '%s\n' "$KEY"; echo EOF; echo "pw=$PW"; } >> "$WASMOPS_OUTPUT"
        printf '%s' "$KEY" > leaked-key.pem
        mkdir -p nested && printf 'deploy:%s' "$PW" | base64 > nested/auth.b64
        printf '%s\n' "$KEY" > "$TMPDIR/key-copy"
        printf '%s\n' "$KEY" >&2
        exit 7
"#;

fn config(sb: &Sandbox, key: &str) -> String {
    let key_file = sb.write("secrets/tls.key", &format!("{key}\n"));
    format!(
        "[secrets]\ntls_key = \"file:{}\"\napi_password = \"{PASSWORD}\"\n\n[plugins.script]\nsecrets = [\"tls_key\", \"api_password\"]\n",
        key_file.display()
    )
}

#[test]
fn a_failed_run_leaves_no_secret_in_clear_anywhere() {
    let sb = Sandbox::new();
    let key = pem();
    let forms = forms(&key);
    let config = config(&sb, &key);
    let config_file = sb.write("wasmops.toml", &config);
    let config_arg = config_file.to_str().unwrap();

    // Embedded: `wasmops run`, then the CLI's views of the stored run.
    let file = sb.write("leak.yaml", WORKFLOW);
    let file = file.to_str().unwrap();
    let ran = sb.wasmops(&["run", file, "--config", config_arg, "--output", "json"]);
    assert_eq!(ran.code, 1, "{}\n{}", ran.stdout, ran.stderr);
    assert_clean("wasmops run stdout", &ran.stdout, &forms);
    assert_clean("wasmops run stderr", &ran.stderr, &forms);
    let run = ran.json();
    let error = step(&run, "1")["error"].as_str().unwrap();
    assert!(error.contains("exit code 7"), "{error}");
    assert!(
        error.contains("***"),
        "the failure's stderr tail is redacted: {error}"
    );
    let id = run["id"].as_str().unwrap();
    for args in [
        vec!["runs", "logs", id],
        vec!["runs", "show", id],
        vec!["runs", "show", id, "--output", "json"],
        vec!["runs", "list"],
    ] {
        let shown = sb.wasmops(&args);
        assert_eq!(shown.code, 0, "{args:?}: {}", shown.stderr);
        assert_clean(
            &format!("{args:?}"),
            &(shown.stdout + &shown.stderr),
            &forms,
        );
    }
    let logs = sb.wasmops(&["runs", "logs", id]).stdout;
    assert!(
        logs.contains("Authorization: Basic ZGVwbG95Om***"),
        "{logs}"
    );
    // The workspace is kept for a retry, less what held a secret.
    let workspace = sb.path("data/workspaces").join(id);
    assert!(workspace.join("notes.txt").is_file(), "a clean file stays");
    assert!(!workspace.join("leaked-key.pem").exists());
    assert!(!workspace.join("nested/auth.b64").exists());
    assert!(!workspace.join(".wasmops/outputs").exists());

    // The daemon: publish, run, and read it back through the API.
    let d = Daemon::start_logged(sb.dir.path(), &config);
    let applied = d.cli(&[
        "apply",
        &repo().join("examples/hello_world").display().to_string(),
    ]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    let api = "/api/v1/projects/hello_world/workflows/leak";
    let (status, body) = d.call(Some(JANE), "PUT", api, Some(json!({"yaml": WORKFLOW})));
    assert_eq!(status, 200, "{body:#}");
    let (status, body) = d.post(JANE, &format!("{api}/publish"), json!({}));
    assert_eq!(status, 200, "{body:#}");
    let (status, started) = d.post(
        JANE,
        "/api/v1/runs",
        json!({"workflow": "/projects/hello_world/workflows/leak"}),
    );
    assert_eq!(status, 201, "{started:#}");
    let daemon_run = started["id"].as_str().unwrap().to_string();
    let done = d.wait_status(&daemon_run, "failed");
    assert_clean("the run from the API", &done.to_string(), &forms);
    for path in [
        format!("/api/v1/runs/{daemon_run}"),
        format!("/api/v1/runs/{daemon_run}/logs"),
        "/api/v1/runs".to_string(),
        "/api/v1/plugins".to_string(),
        format!("{api}/history"),
    ] {
        let (status, body) = d.call(Some(JANE), "GET", &path, None);
        assert_eq!(status, 200, "{path}: {body:#}");
        assert_clean(&path, &body.to_string(), &forms);
    }
    drop(d);
    let daemon_log = std::fs::read_to_string(sb.path("daemon.log")).unwrap_or_default();
    assert_clean("the daemon's log", &daemon_log, &forms);

    assert_data_dir_clean(&sb.path("data"), &forms);
}

#[test]
fn templates_that_read_secrets_where_no_grant_decides_are_validation_errors() {
    let sb = Sandbox::new();
    let config = sb.write(
        "wasmops.toml",
        "[secrets]\napi_password = \"pw-123456789\"\ndeploy_key = \"k-123456789\"\n[plugins.script]\nsecrets = [\"deploy_*\"]\n",
    );
    let file = sb.write(
        "wf.yaml",
        r#"steps:
  - name: "deploy {{ secrets.api_password }}"
    uses: noop
  - uses: noop
    with: { token: "{{ secrets.api_password }}" }
  - uses: script
    when: "secrets.deploy_key != ''"
    with:
      env:
        KEY: "{{ secrets.deploy_key }}"
        PW: "{{ secrets.api_password }}"
      run: echo ok
  - target: "/projects/p/environments/{{ secrets.deploy_key }}/assets/a"
    action: default
  - target: /projects/p/workflows/w
    property_overrides:
      - { token: "{{ secrets.api_password }}" }
  - uses: script
    with: { run: "echo {{ secrets['deploy_key'] }}" }
"#,
    );
    let ran = sb.wasmops(&[
        "validate",
        file.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(ran.code, 2, "{}", ran.stdout);
    let out = ran.stderr;
    for expected in [
        "wf.yaml:2:11: `name` reads `secrets.api_password`; secrets may only be read in the `with:` of a plugin step whose plugin is granted them (at `steps[0].name`)",
        "wf.yaml:5:20: `with.token` reads `secrets.api_password`, which plugin `noop` is not granted (at `steps[1].with.token`)\n    hint: plugin `noop` does not request it",
        "wf.yaml:7:11: `when` reads `secrets.deploy_key`; secrets may only be read",
        "wf.yaml:11:13: `with.env.PW` reads `secrets.api_password`, which plugin `script` is not granted (at `steps[2].with.env.PW`)\n    hint: the config's `[plugins.script] secrets` leaves it out; add `api_password` there to grant it",
        "wf.yaml:13:13: `target` reads `secrets.deploy_key`; secrets may only be read",
        "wf.yaml:17:18: `property_overrides[0].token` reads `secrets.api_password`; secrets may only be read",
        "wf.yaml:19:18: `with.run` reads `secrets` as a whole (at `steps[5].with.run`)\n    hint: read one secret by name",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert!(
        !out.contains("`with.env.KEY`"),
        "deploy_key is granted to script: {out}"
    );
    assert!(out.contains("7 error(s)"), "{out}");
}
