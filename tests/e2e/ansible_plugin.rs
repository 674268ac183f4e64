//! The built-in `ansible` step with the real ansible-core (the harness installs it in a virtual
//! environment when the machine lacks it): playbooks against localhost over the local
//! connection, inside the sandbox, with the recap, check mode, tags, limits and extra vars,
//! failures named by task and host, and Ansible's files kept in the workspace.

use crate::pip_tools;
use crate::support::{Sandbox, step};
use serde_json::Value;

const SITE: &str = r#"- hosts: all
  connection: local
  gather_facts: false
  tasks:
    - name: Write the release file
      ansible.builtin.copy:
        dest: "{{ lookup('env', 'HOME') }}/release.txt"
        content: "release {{ release | default('none') }}\n"
      tags: [deploy]
    - name: Report the release
      ansible.builtin.debug:
        msg: "release {{ release | default('none') }} on {{ inventory_hostname }}"
    - name: Only on demand
      ansible.builtin.command: echo extra
      tags: [never, extra]
"#;

/// Runs `yaml` beside `site.yml` with ansible-playbook on PATH; exit code and run.
fn run(sb: &Sandbox, yaml: &str) -> (i32, Value) {
    let ansible = pip_tools::ansible_core();
    sb.write("site.yml", SITE);
    sb.write(
        "broken.yml",
        "- hosts: all\n  connection: local\n  gather_facts: false\n  tasks:\n    - name: Restart the service\n      ansible.builtin.command: /bin/false\n",
    );
    let file = sb.write("workflow.yaml", yaml);
    let ran = sb.wasmops_with_env(
        &["run", file.to_str().unwrap(), "--output", "json"],
        &[("PATH", &ansible.path())],
    );
    (ran.code, ran.json())
}

/// What the daemon user's `~/.ansible` holds: each entry and its modification time.
fn home_ansible() -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
    let root = std::path::Path::new(&std::env::var("HOME").unwrap()).join(".ansible");
    let mut found = Vec::new();
    let mut pending = vec![root];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path.clone());
            }
            let modified = entry.metadata().and_then(|m| m.modified()).unwrap();
            found.push((path, modified));
        }
    }
    found.sort();
    found
}

#[test]
fn a_playbook_runs_in_the_sandbox_and_reports_ansibles_recap() {
    let sb = Sandbox::new();
    let home_before = home_ansible();
    let (code, run) = run(
        &sb,
        r#"steps:
  - id: deploy
    uses: ansible
    with:
      playbook: site.yml
      inventory: [localhost]
      extra_vars: { release: "1.4.2" }
"#,
    );
    assert_eq!(code, 0, "{run:#}");
    let deploy = step(&run, "1");
    assert_eq!(
        deploy["summary"], "ok=2 changed=1 unreachable=0 failed=0",
        "{deploy:#}"
    );
    assert_eq!(deploy["outputs"]["recap"]["localhost"]["changed"], 1);
    assert_eq!(deploy["outputs"]["changed"], 1);
    // Ansible's home and temp files are the step's, in the workspace.
    assert_eq!(
        home_before,
        home_ansible(),
        "ansible wrote into the daemon user's ~/.ansible"
    );
}

#[test]
fn check_mode_tags_and_limit_reach_ansible() {
    let sb = Sandbox::new();
    let (code, run) = run(
        &sb,
        r#"steps:
  - name: Dry run
    uses: ansible
    with: { playbook: site.yml, check: true, diff: true }
  - name: Only the tagged task, on one host
    uses: ansible
    with: { playbook: site.yml, inventory: [localhost, 127.0.0.1], limit: localhost, tags: [deploy] }
  - name: A task tagged never, asked for
    uses: ansible
    with: { playbook: site.yml, tags: [extra] }
  - name: What check mode left
    uses: script
    with: { run: "test -e ansible/1/home/release.txt && echo written || echo absent" }
"#,
    );
    assert_eq!(code, 0, "{run:#}");
    // Check mode reports the change it would make, and makes none.
    assert_eq!(
        step(&run, "1")["summary"],
        "ok=2 changed=1 unreachable=0 failed=0"
    );
    assert_eq!(
        step(&run, "4")["summary"],
        "absent",
        "check mode wrote the file"
    );
    let tagged = step(&run, "2");
    assert_eq!(
        tagged["summary"], "ok=1 changed=1 unreachable=0 failed=0",
        "{tagged:#}"
    );
    assert_eq!(
        tagged["outputs"]["recap"].as_object().unwrap().len(),
        1,
        "the limit left one host: {tagged:#}"
    );
    assert_eq!(
        step(&run, "3")["summary"],
        "ok=1 changed=1 unreachable=0 failed=0"
    );
}

#[test]
fn a_failed_task_fails_the_step_naming_the_task_and_the_host() {
    let sb = Sandbox::new();
    let (code, run) = run(
        &sb,
        "steps:\n  - uses: ansible\n    with: { playbook: broken.yml }\n",
    );
    assert_eq!(code, 1, "{run:#}");
    let error = step(&run, "1")["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with("task `Restart the service` failed on host `localhost`")
            && error.contains("ok=0 changed=0 unreachable=0 failed=1"),
        "{error}"
    );
}

#[test]
fn a_wrong_with_block_is_refused_before_anything_runs() {
    let sb = Sandbox::new();
    let file = sb.write(
        "workflow.yaml",
        "steps:\n  - uses: ansible\n    with: { playbook: ../../etc/site.yml, limt: web }\n",
    );
    let ran = sb.wasmops(&["validate", file.to_str().unwrap()]);
    assert_eq!(ran.code, 2, "{}", ran.stdout);
    assert!(
        ran.stderr.contains("workflow.yaml:3:") && ran.stderr.contains("unknown field `limt`"),
        "{}",
        ran.stderr
    );
}
