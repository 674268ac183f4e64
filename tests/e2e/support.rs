//! Drives the real `wasmops` binary in a scratch directory, as a user would.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl From<Output> for Ran {
    fn from(o: Output) -> Ran {
        Ran {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Runs `wasmops ARGS` with the sandbox's data directory.
    pub fn wasmops(&self, args: &[&str]) -> Ran {
        self.wasmops_with_env(args, &[])
    }

    /// Runs `wasmops ARGS` with the sandbox's data directory and these environment variables.
    /// Unless `env` sets PATH, ansible-playbook is on it, as the hello_world example needs.
    pub fn wasmops_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Ran {
        Command::new(env!("CARGO_BIN_EXE_wasmops"))
            .args(args)
            .env("PATH", crate::pip_tools::ansible_core().path())
            .envs(env.iter().copied())
            .current_dir(self.dir.path())
            .env("WASMOPS_DATA", self.path("data"))
            .env_remove("WASMOPS_PLUGINS")
            .env_remove("WASMOPS_CONFIG")
            .output()
            .expect("run wasmops")
            .into()
    }

    /// Writes a workflow and runs it with `--output json`.
    pub fn run_json(&self, yaml: &str, extra: &[&str]) -> (i32, Value) {
        let file = self.write("workflow.yaml", yaml);
        let mut args = vec!["run", file.to_str().unwrap(), "--output", "json"];
        args.extend_from_slice(extra);
        let ran = self.wasmops(&args);
        let json = ran.json();
        (ran.code, json)
    }
}

/// The directory of test plugins built from `tests/plugins/`.
#[allow(dead_code, reason = "not every test module uses every helper")]
pub fn test_plugins() -> &'static Path {
    Path::new(env!("WASMOPS_TEST_PLUGINS"))
}

/// The step at `path`, or null while the run has no such step yet (for polling).
pub fn try_step<'a>(run: &'a Value, path: &str) -> &'a Value {
    fn find<'a>(steps: &'a Value, path: &str) -> Option<&'a Value> {
        steps.as_array()?.iter().find_map(|s| {
            if s["path"] == path {
                Some(s)
            } else {
                find(&s["children"], path)
            }
        })
    }
    find(&run["steps"], path).unwrap_or(&Value::Null)
}

/// The step at `path` (`2.1`) in a run's JSON.
pub fn step<'a>(run: &'a Value, path: &str) -> &'a Value {
    let found = try_step(run, path);
    assert!(!found.is_null(), "no step {path} in {run:#}");
    found
}

pub fn time(step: &Value, field: &str) -> chrono::DateTime<chrono::Utc> {
    step[field]
        .as_str()
        .unwrap_or_else(|| panic!("step has no {field}: {step:#}"))
        .parse()
        .unwrap()
}

/// The repository root, for examples.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}
