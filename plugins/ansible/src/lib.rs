//! `ansible`: runs `ansible-playbook` and reports what Ansible itself says happened: the play
//! recap per host (`ok=3 changed=1 unreachable=0 failed=0`) and the task and host of each
//! failure, read from a small callback of ours (`recap.py`), not from the text Ansible prints.
//!
//! Everything Ansible keeps between runs (its home, `~/.ansible`, temp files) goes into the
//! step's folder of the run workspace (`ansible/<step>`), never into the home of the user the
//! daemon runs as.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use wasmops_sdk::prelude::*;
use wasmops_sdk::serde_json;

/// The callback that writes Ansible's events as JSON lines.
const RECAP_CALLBACK: &str = include_str!("recap.py");
/// Task messages quoted in a failure, at most.
const MAX_FAILURES_SHOWN: usize = 5;

/// The `with` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The playbook, relative to the workflow's or project's files.
    playbook: String,
    /// An inventory file (relative like the playbook), or the hosts themselves; `localhost`
    /// over the local connection when absent.
    inventory: Option<Inventory>,
    /// `--limit`: hosts or groups of the inventory.
    limit: Option<String>,
    /// `--extra-vars`, passed as a JSON file.
    #[serde(default)]
    extra_vars: BTreeMap<String, Value>,
    /// `--tags`.
    #[serde(default)]
    tags: Vec<String>,
    /// `--skip-tags`.
    #[serde(default)]
    skip_tags: Vec<String>,
    /// `--check`: report what would change, change nothing.
    #[serde(default)]
    check: bool,
    /// `--diff`: show the changes to files and templates.
    #[serde(default)]
    diff: bool,
}

/// `inventory: hosts.ini` or `inventory: [web-1, web-2]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Inventory {
    File(String),
    Hosts(Vec<String>),
}

struct Ansible;

impl Step for Ansible {
    type Config = Config;

    fn describe() -> Info {
        Info::new("Runs an Ansible playbook; the play recap and each failed task from Ansible's own callback")
            .with_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["playbook"],
                "properties": {
                    "playbook": { "type": "string", "description": "The playbook, relative to the workflow's or project's files" },
                    "inventory": {
                        "description": "An inventory file, or the hosts; localhost over the local connection when absent",
                        "oneOf": [
                            { "type": "string" },
                            { "type": "array", "items": { "type": "string" } }
                        ]
                    },
                    "limit": { "type": "string", "description": "--limit: hosts or groups" },
                    "extra_vars": { "type": "object", "description": "--extra-vars" },
                    "tags": { "type": "array", "items": { "type": "string" } },
                    "skip_tags": { "type": "array", "items": { "type": "string" } },
                    "check": { "type": "boolean", "description": "--check: change nothing" },
                    "diff": { "type": "boolean", "description": "--diff" }
                }
            }))
            .with_outputs(["recap", "ok", "changed", "unreachable", "failed", "skipped"])
    }

    fn validate(config: &Config) -> Result<(), Error> {
        check_relative("playbook", &config.playbook)?;
        match &config.inventory {
            Some(Inventory::File(file)) => check_relative("inventory", file)?,
            Some(Inventory::Hosts(hosts)) => {
                if hosts.is_empty() {
                    return Err(Error::new("inventory: name at least one host"));
                }
                for host in hosts {
                    check_word("inventory", host)?;
                }
            }
            None => {}
        }
        if let Some(limit) = &config.limit {
            check_word("limit", limit)?;
        }
        for tag in config.tags.iter().chain(&config.skip_tags) {
            check_word("tags", tag)?;
        }
        for name in config.extra_vars.keys() {
            let ok = name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok {
                return Err(Error::new(format!(
                    "extra_vars: `{name}` is not an Ansible variable name"
                )));
            }
        }
        Ok(())
    }

    fn run(ctx: &Context, config: Config) -> Result<Outcome, Error> {
        let folder = StepFolder::make(ctx)?;
        let mut args = vec!["-i".to_string(), inventory(ctx, &config, &folder)];
        if let Some(limit) = &config.limit {
            args.extend(["--limit".into(), limit.clone()]);
        }
        if !config.tags.is_empty() {
            args.extend(["--tags".into(), config.tags.join(",")]);
        }
        if !config.skip_tags.is_empty() {
            args.extend(["--skip-tags".into(), config.skip_tags.join(",")]);
        }
        if config.check {
            args.push("--check".into());
        }
        if config.diff {
            args.push("--diff".into());
        }
        if !config.extra_vars.is_empty() {
            let file = folder.path("extra_vars.json");
            std::fs::write(&file, serde_json::to_vec(&config.extra_vars)?)
                .context("writing the extra vars")?;
            args.extend(["--extra-vars".into(), "@extra_vars.json".into()]);
        }
        args.push(folder.reach(ctx, &ctx.resolve_source_path(config.playbook.trim())));
        let mut env = folder.env();
        if only_local(&config) {
            // Modules run by the interpreter ansible-playbook itself runs under, which the
            // sandbox grants; discovery would pick whatever python3 comes first on PATH.
            args.splice(
                0..0,
                [
                    "--extra-vars".to_string(),
                    "ansible_python_interpreter={{ ansible_playbook_python }}".into(),
                ],
            );
            env.push((
                "ANSIBLE_REMOTE_TEMP".into(),
                folder.path("tmp/remote").display().to_string(),
            ));
        }
        let out = Command::new("ansible-playbook")
            .args(args)
            .cwd(&folder.relative)
            .envs(env)
            .run()?;
        let events = folder.events()?;
        let recap = Recap::from_events(&events);
        if recap.hosts.is_empty() {
            // Ansible stopped before any play ran: a syntax error, a missing playbook or
            // inventory. Its own words are the last lines it printed.
            let said = if out.stderr.is_empty() {
                out.stdout_tail(8)
            } else {
                out.stderr_str()
                    .trim()
                    .lines()
                    .rev()
                    .take(8)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            return Err(Error::new(format!(
                "ansible-playbook stopped before any play ran (exit code {}): {said}",
                out.exit_code.map_or("none".into(), |c| c.to_string())
            )));
        }
        let outcome = recap.outcome();
        if let Some(failure) = recap.failure(&events) {
            return Err(Error::new(failure));
        }
        if !out.success() {
            return Err(Error::new(format!(
                "ansible-playbook exited with code {} after: {}",
                out.exit_code.map_or("none".into(), |c| c.to_string()),
                recap.summary()
            )));
        }
        Ok(outcome)
    }
}

fn check_relative(what: &str, path: &str) -> Result<(), Error> {
    let path = path.trim();
    if path.is_empty() {
        return Err(Error::new(format!("{what}: give a path")));
    }
    let escapes = Path::new(path).components().any(|c| {
        !matches!(
            c,
            std::path::Component::Normal(_) | std::path::Component::CurDir
        )
    });
    if escapes {
        return Err(Error::new(format!(
            "{what}: `{path}` must be relative to the workflow's files, without `..`"
        )));
    }
    Ok(())
}

/// A host, group, pattern or tag: one word Ansible reads, never an option.
fn check_word(what: &str, word: &str) -> Result<(), Error> {
    let ok = !word.trim().is_empty()
        && !word.starts_with('-')
        && !word.chars().any(|c| c.is_whitespace() || c.is_control());
    if !ok {
        return Err(Error::new(format!(
            "{what}: `{word}` is not a name Ansible takes"
        )));
    }
    Ok(())
}

/// Names Ansible reaches over the local connection.
const LOCAL_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// `-i`: the inventory file, or the hosts listed as Ansible's `a,b,` list (localhost when
/// none).
fn inventory(ctx: &Context, config: &Config, folder: &StepFolder) -> String {
    match &config.inventory {
        Some(Inventory::File(file)) => folder.reach(ctx, &ctx.resolve_source_path(file.trim())),
        Some(Inventory::Hosts(hosts)) => format!("{},", hosts.join(",")),
        None => "localhost,".into(),
    }
}

/// Whether every host is this machine: only then do Ansible's temp files on the "remote" side
/// go to the step's folder. The default, `~/.ansible/tmp`, is in the home of the user programs
/// run as, which is not theirs to write (`/nonexistent` for nobody); on a real remote host it
/// is the right place.
fn only_local(config: &Config) -> bool {
    match &config.inventory {
        None => true,
        Some(Inventory::Hosts(hosts)) => hosts.iter().all(|h| LOCAL_HOSTS.contains(&h.as_str())),
        Some(Inventory::File(_)) => false,
    }
}

/// The step's folder in the workspace: Ansible's home and temp files, the callback, the events.
struct StepFolder {
    /// Absolute.
    dir: std::path::PathBuf,
    /// Relative to the workspace, as the program's working directory.
    relative: String,
}

impl StepFolder {
    fn make(ctx: &Context) -> Result<StepFolder, Error> {
        let slug: String = ctx
            .step_name()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let relative = format!("ansible/{slug}");
        let dir = ctx.resolve_workspace_path(&relative);
        for sub in ["home", "tmp/remote", "callback"] {
            std::fs::create_dir_all(dir.join(sub)).context("making the step's folder")?;
        }
        std::fs::write(dir.join("callback/wasmops_recap.py"), RECAP_CALLBACK)
            .context("writing the recap callback")?;
        // A retried step starts a fresh account.
        std::fs::write(dir.join("events.jsonl"), b"").context("starting the events file")?;
        Ok(StepFolder { dir, relative })
    }

    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(name)
    }

    /// `path` as ansible-playbook, started in this folder, should name it: relative when it is
    /// in the workspace. Ansible checks files with access(2), which judges by the real user
    /// alone: a program user may open a workspace file but not pass, by access(2), a data
    /// directory only root may list on the way to it.
    fn reach(&self, ctx: &Context, path: &Path) -> String {
        match path.strip_prefix(&ctx.workspace) {
            // The folder is `ansible/<step>`, two levels below the workspace.
            Ok(inside) => format!("../../{}", inside.display()),
            Err(_) => path.display().to_string(),
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        let at = |name: &str| self.path(name).display().to_string();
        vec![
            // `~/.ansible` and everything else Ansible keeps: here, not in the daemon's home.
            ("HOME".into(), at("home")),
            ("ANSIBLE_HOME".into(), at("home/.ansible")),
            ("ANSIBLE_LOCAL_TEMP".into(), at("tmp")),
            ("ANSIBLE_CALLBACK_PLUGINS".into(), at("callback")),
            ("ANSIBLE_CALLBACKS_ENABLED".into(), "wasmops_recap".into()),
            ("WASMOPS_ANSIBLE_EVENTS".into(), at("events.jsonl")),
            ("ANSIBLE_NOCOLOR".into(), "1".into()),
            ("ANSIBLE_RETRY_FILES_ENABLED".into(), "0".into()),
            ("ANSIBLE_PYTHON_INTERPRETER".into(), "auto_silent".into()),
            // Ansible refuses to start without a UTF-8 locale.
            ("LANG".into(), "C.UTF-8".into()),
            ("LC_ALL".into(), "C.UTF-8".into()),
        ]
    }

    /// The events the step reports from: the first failures and the last recap, read a line
    /// at a time (a play over many hosts writes far more `ok` lines than a plugin's memory
    /// should hold). Lines that are not JSON are skipped.
    fn events(&self) -> Result<Vec<Value>, Error> {
        use std::io::BufRead;
        let file =
            std::fs::File::open(self.path("events.jsonl")).context("reading Ansible's events")?;
        let mut kept = Vec::new();
        let mut stats = None;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.context("reading Ansible's events")?;
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            match event["event"].as_str() {
                Some("stats") => stats = Some(event),
                Some("failed" | "unreachable") if kept.len() < MAX_FAILURES_SHOWN => {
                    kept.push(event);
                }
                _ => {}
            }
        }
        kept.extend(stats);
        Ok(kept)
    }
}

/// The play recap: per host, Ansible's counts.
#[derive(Debug, Default, PartialEq)]
struct Recap {
    hosts: BTreeMap<String, BTreeMap<String, u64>>,
}

/// The counts of the recap line, in Ansible's order.
const COUNTS: [&str; 7] = [
    "ok",
    "changed",
    "unreachable",
    "failures",
    "skipped",
    "rescued",
    "ignored",
];

impl Recap {
    fn from_events(events: &[Value]) -> Recap {
        let Some(stats) = events.iter().rev().find(|e| e["event"] == "stats") else {
            return Recap::default();
        };
        let hosts = stats["hosts"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(host, counts)| {
                let counts = COUNTS
                    .iter()
                    .map(|name| (name.to_string(), counts[*name].as_u64().unwrap_or(0)))
                    .collect();
                (host.clone(), counts)
            })
            .collect();
        Recap { hosts }
    }

    fn total(&self, count: &str) -> u64 {
        self.hosts
            .values()
            .map(|c| c.get(count).copied().unwrap_or(0))
            .sum()
    }

    /// `ok=3 changed=1 unreachable=0 failed=0`, summed over hosts.
    fn summary(&self) -> String {
        format!(
            "ok={} changed={} unreachable={} failed={}",
            self.total("ok"),
            self.total("changed"),
            self.total("unreachable"),
            self.total("failures")
        )
    }

    fn outcome(&self) -> Outcome {
        let recap: serde_json::Map<String, Value> = self
            .hosts
            .iter()
            .map(|(host, counts)| {
                let counts: serde_json::Map<String, Value> = counts
                    .iter()
                    .map(|(name, n)| {
                        let name = if name == "failures" { "failed" } else { name };
                        (name.to_string(), json!(n))
                    })
                    .collect();
                (host.clone(), Value::Object(counts))
            })
            .collect();
        Outcome::summary(self.summary())
            .with_output("recap", Value::Object(recap))
            .with_output("ok", self.total("ok"))
            .with_output("changed", self.total("changed"))
            .with_output("unreachable", self.total("unreachable"))
            .with_output("failed", self.total("failures"))
            .with_output("skipped", self.total("skipped"))
    }

    /// The step's failure when a host failed or was unreachable: each task and host, with
    /// Ansible's message.
    fn failure(&self, events: &[Value]) -> Option<String> {
        if self.total("failures") == 0 && self.total("unreachable") == 0 {
            return None;
        }
        let failed: Vec<String> = events
            .iter()
            .filter(|e| e["event"] == "failed" || e["event"] == "unreachable")
            .take(MAX_FAILURES_SHOWN)
            .map(|e| {
                let verb = if e["event"] == "unreachable" {
                    "could not reach"
                } else {
                    "failed on"
                };
                let msg = e["msg"].as_str().unwrap_or_default().trim();
                let msg: String = msg
                    .lines()
                    .next()
                    .unwrap_or_default()
                    .chars()
                    .take(300)
                    .collect();
                format!(
                    "task `{}` {verb} host `{}`{}",
                    e["task"].as_str().unwrap_or_default(),
                    e["host"].as_str().unwrap_or_default(),
                    if msg.is_empty() {
                        String::new()
                    } else {
                        format!(": {msg}")
                    }
                )
            })
            .collect();
        Some(format!("{} ({})", failed.join("; "), self.summary()))
    }
}

wasmops_sdk::step_plugin!(Ansible);

#[cfg(test)]
mod tests {
    use super::*;

    fn config(with: Value) -> Result<Config, String> {
        serde_json::from_value(with).map_err(|e| e.to_string())
    }

    fn check(with: Value) -> Result<(), String> {
        Ansible::validate(&config(with)?).map_err(|e| e.to_string())
    }

    #[test]
    fn a_with_block_names_a_playbook_inside_and_words_ansible_takes() {
        assert!(check(json!({"playbook": "site.yml"})).is_ok());
        assert!(check(json!({"playbook": "plays/site.yml", "inventory": ["web-1", "web-2"], "limit": "web-1", "tags": ["deploy"], "check": true, "extra_vars": {"version": "1.2"}})).is_ok());
        assert!(
            check(json!({"playbook": "../etc/x.yml"}))
                .unwrap_err()
                .contains("without `..`")
        );
        assert!(
            check(json!({"playbook": "/etc/x.yml"}))
                .unwrap_err()
                .contains("without `..`")
        );
        assert!(
            check(json!({"playbook": "site.yml", "limit": "--become"}))
                .unwrap_err()
                .contains("not a name")
        );
        assert!(
            check(json!({"playbook": "site.yml", "inventory": []}))
                .unwrap_err()
                .contains("at least one host")
        );
        assert!(
            check(json!({"playbook": "site.yml", "extra_vars": {"a-b": 1}}))
                .unwrap_err()
                .contains("variable name")
        );
        assert!(
            check(json!({"playbok": "site.yml"}))
                .unwrap_err()
                .contains("unknown field")
        );
    }

    #[test]
    fn the_recap_and_failures_come_from_the_callbacks_events() {
        let events = vec![
            json!({"event": "ok", "host": "localhost", "task": "Gathering", "changed": false, "msg": ""}),
            json!({"event": "failed", "host": "web-1", "task": "Restart nginx", "changed": false, "msg": "Unable to restart service nginx\nmore"}),
            json!({"event": "stats", "hosts": {
                "localhost": {"ok": 3, "changed": 1, "unreachable": 0, "failures": 0, "skipped": 1, "rescued": 0, "ignored": 0},
                "web-1": {"ok": 1, "changed": 0, "unreachable": 0, "failures": 1, "skipped": 0, "rescued": 0, "ignored": 0}
            }}),
        ];
        let recap = Recap::from_events(&events);
        assert_eq!(recap.summary(), "ok=4 changed=1 unreachable=0 failed=1");
        assert_eq!(
            recap.failure(&events).unwrap(),
            "task `Restart nginx` failed on host `web-1`: Unable to restart service nginx (ok=4 changed=1 unreachable=0 failed=1)"
        );
        assert!(Recap::from_events(&events[..2]).hosts.is_empty());
    }
}
