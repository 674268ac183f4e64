//! `terraform`: `plan`, `apply` and `destroy` in a configuration directory, read through
//! Terraform's documented machine-readable UI stream (`-json`): what a plan will do, what an
//! apply did, its outputs (sensitive ones never shown) and its diagnostics.
//!
//! The configuration is copied into the run workspace (`terraform/<dir>`) the first time a step
//! of the run uses it, and Terraform runs there: its `.terraform`, lock file, local state and the
//! saved plan stay with the run, so a `plan` step and the `apply` after its approval share them.

mod ui;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use wasmops_sdk::prelude::*;

/// The saved plan's name in the working copy (for the default workspace; see [`plan_file`]).
const PLAN_FILE: &str = "wasmops.tfplan";

/// Where a `plan` of this workspace saves its plan: one file per workspace, so an `apply` in
/// one workspace never picks up the plan of another.
fn plan_file(config: &Config) -> String {
    match config.workspace.as_deref().map(str::trim) {
        None | Some("" | "default") => PLAN_FILE.to_string(),
        Some(workspace) => {
            let safe: String = workspace
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            format!("wasmops.{safe}.tfplan")
        }
    }
}
/// Files copied from a configuration directory, at most.
const MAX_FILES: usize = 10_000;

/// The `with` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    action: Action,
    /// The configuration directory, relative to the workflow's or project's files.
    #[serde(default = "here")]
    dir: String,
    /// `-var NAME=VALUE` (lists and maps as JSON).
    #[serde(default)]
    vars: BTreeMap<String, Value>,
    /// `-var-file`, relative to `dir`.
    #[serde(default)]
    var_files: Vec<String>,
    /// Selected (and created when missing) before anything else.
    workspace: Option<String>,
    /// `-backend-config KEY=VALUE` at init.
    #[serde(default)]
    backend_config: BTreeMap<String, Value>,
    /// `apply`: the saved plan to apply, relative to the workspace (a `plan` step's
    /// `plan_file` output); the one the last `plan` of `dir` saved when absent.
    plan_file: Option<String>,
    /// `apply`: the plan file must have this SHA-256 (the digest an approval bound to).
    plan_sha256: Option<String>,
}

fn here() -> String {
    ".".into()
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Action {
    Plan,
    Apply,
    Destroy,
}

/// One configuration's working copy in the workspace.
struct WorkingCopy {
    /// Absolute (the plugin's view of the workspace).
    dir: PathBuf,
    /// Relative to the workspace, as programs and outputs name it.
    relative: String,
}

struct Terraform;

impl Step for Terraform {
    type Config = Config;

    fn describe() -> Info {
        Info::new("Runs terraform plan, apply and destroy; summaries and outputs from Terraform's JSON")
            .with_schema(json!({
                "type": "object",
                "additionalProperties": false,
                "required": ["action"],
                "properties": {
                    "action": { "enum": ["plan", "apply", "destroy"] },
                    "dir": { "type": "string", "description": "Configuration directory, relative to the workflow's files (default .)" },
                    "vars": { "type": "object", "description": "-var NAME=VALUE" },
                    "var_files": { "type": "array", "items": { "type": "string" }, "description": "-var-file, relative to dir" },
                    "workspace": { "type": "string", "description": "Terraform workspace, created when missing" },
                    "backend_config": { "type": "object", "description": "-backend-config KEY=VALUE at init" },
                    "plan_file": { "type": "string", "description": "apply: the plan step's plan_file (default: the last plan of dir)" },
                    "plan_sha256": { "type": "string", "description": "apply: refuse unless the plan file has this digest" }
                }
            }))
            .with_outputs(["plan_file", "plan_sha256", "to_add", "to_change", "to_destroy", "added", "changed", "destroyed"])
    }

    fn validate(config: &Config) -> Result<(), Error> {
        let inside = |what: &str, path: &str| {
            let p = Path::new(path);
            if p.is_absolute() || p.components().any(|c| c.as_os_str() == "..") {
                return Err(Error::new(format!(
                    "{what}: `{path}` must be a relative path without `..`"
                )));
            }
            Ok(())
        };
        inside("dir", &config.dir)?;
        for file in &config.var_files {
            inside("var_files", file)?;
        }
        if let Some(plan) = &config.plan_file {
            inside("plan_file", plan)?;
        }
        let names = config.vars.keys().chain(config.backend_config.keys());
        if let Some(bad) = names.into_iter().find(|k| k.is_empty() || k.contains('=')) {
            return Err(Error::new(format!("`{bad}` is not a variable name")));
        }
        if config.action != Action::Apply
            && (config.plan_file.is_some() || config.plan_sha256.is_some())
        {
            return Err(Error::new(
                "plan_file and plan_sha256 are for `action: apply`",
            ));
        }
        Ok(())
    }

    fn run(ctx: &Context, config: Config) -> Result<Outcome, Error> {
        let copy = working_copy(ctx, &config)?;
        prepare(&copy, &config)?;
        match config.action {
            Action::Plan => plan(&copy, &config),
            Action::Apply => apply(ctx, &copy, &config),
            Action::Destroy => {
                let mut args = vec!["destroy".to_string(), "-auto-approve".into()];
                args.extend(var_args(&config));
                changed(&copy, args)
            }
        }
    }
}

/// The configuration's copy in the workspace, made the first time the run uses it.
fn working_copy(ctx: &Context, config: &Config) -> Result<WorkingCopy, Error> {
    let source = ctx.resolve_source_path(config.dir.trim());
    let slug: String = config
        .dir
        .trim()
        .trim_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let relative = format!("terraform/{}", if slug.is_empty() { "_" } else { &slug });
    let dir = ctx.resolve_workspace_path(&relative);
    if !dir.exists() {
        if !source.is_dir() {
            return Err(Error::new(format!(
                "dir: `{}` is not a directory of the workflow's files",
                config.dir
            )));
        }
        let mut copied = 0;
        copy_tree(&source, &dir, &mut copied).context("copying the configuration")?;
    }
    Ok(WorkingCopy { dir, relative })
}

fn copy_tree(from: &Path, to: &Path, copied: &mut usize) -> Result<(), Error> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        // Another machine's provider binaries and state are never the run's.
        let saved_plan = name
            .to_str()
            .is_some_and(|n| n.starts_with("wasmops.") && n.ends_with(".tfplan"));
        if name == ".terraform" || name == "terraform.tfstate" || saved_plan {
            continue;
        }
        *copied += 1;
        if *copied > MAX_FILES {
            return Err(Error::new(format!("more than {MAX_FILES} files")));
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &to.join(&name), copied)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(&name))?;
        }
    }
    Ok(())
}

/// `terraform` in the working copy, its output streamed to the step log by the host.
fn terraform(copy: &WorkingCopy, args: &[String]) -> Command {
    Command::new("terraform")
        .args(args.iter().cloned())
        .cwd(&copy.relative)
        .env("TF_IN_AUTOMATION", "1")
        .env("TF_INPUT", "0")
        .env("CHECKPOINT_DISABLE", "1")
}

/// `init` when the copy was never initialised, then the workspace.
fn prepare(copy: &WorkingCopy, config: &Config) -> Result<(), Error> {
    if !copy.dir.join(".terraform").exists() {
        let mut args = vec![
            "init".to_string(),
            "-input=false".into(),
            "-no-color".into(),
        ];
        for (key, value) in &config.backend_config {
            args.push(format!("-backend-config={key}={}", scalar(value)));
        }
        terraform(copy, &args).run()?.check()?;
    }
    if let Some(workspace) = &config.workspace {
        let args = [
            "workspace",
            "select",
            "-or-create",
            "-no-color",
            workspace.as_str(),
        ];
        terraform(copy, &args.map(String::from)).run()?.check()?;
    }
    Ok(())
}

fn var_args(config: &Config) -> Vec<String> {
    let mut args: Vec<String> = config
        .vars
        .iter()
        .map(|(name, value)| format!("-var={name}={}", scalar(value)))
        .collect();
    args.extend(config.var_files.iter().map(|f| format!("-var-file={f}")));
    args
}

/// A string as it is; anything else as JSON, which Terraform reads for lists and maps.
fn scalar(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn plan(copy: &WorkingCopy, config: &Config) -> Result<Outcome, Error> {
    let file = plan_file(config);
    let mut args = vec![
        "plan".to_string(),
        "-json".into(),
        "-input=false".into(),
        format!("-out={file}"),
    ];
    args.extend(var_args(config));
    let output = terraform(copy, &args).run()?;
    ui::failure(&output)?;
    let counts = ui::plan_counts(&output.stdout);
    let bytes = std::fs::read(copy.dir.join(&file)).context("reading the saved plan")?;
    Ok(Outcome::summary(format!(
        "{} to add, {} to change, {} to destroy",
        counts.add, counts.change, counts.destroy
    ))
    .with_output("plan_file", format!("{}/{file}", copy.relative))
    .with_output("plan_sha256", hex::encode(Sha256::digest(&bytes)))
    .with_output("to_add", counts.add)
    .with_output("to_change", counts.change)
    .with_output("to_destroy", counts.destroy))
}

fn apply(ctx: &Context, copy: &WorkingCopy, config: &Config) -> Result<Outcome, Error> {
    let mut args = vec!["apply".to_string()];
    // The last plan of this workspace, when none is named: applied once, then removed, so a
    // later apply in the run plans afresh rather than replaying it.
    let last_plan = copy.dir.join(plan_file(config));
    let saved = match &config.plan_file {
        Some(file) => Some((ctx.resolve_workspace_path(file), file.clone())),
        None => last_plan.exists().then(|| {
            (
                last_plan.clone(),
                format!("{}/{}", copy.relative, plan_file(config)),
            )
        }),
    };
    match (&saved, &config.plan_sha256) {
        (Some((path, shown)), expected) => {
            let bytes =
                std::fs::read(path).map_err(|e| Error::new(format!("plan file `{shown}`: {e}")))?;
            let digest = hex::encode(Sha256::digest(&bytes));
            if let Some(expected) = expected
                && !expected.trim().eq_ignore_ascii_case(&digest)
            {
                return Err(Error::new(format!(
                    "plan changed since it was approved: `{shown}` has SHA-256 {digest}, the \
                     approval was for {}",
                    expected.trim()
                )));
            }
            // Absolute: the workspace has the same path for the plugin and its programs.
            args.push(path.to_string_lossy().into_owned());
        }
        (None, Some(_)) => {
            return Err(Error::new(
                "plan_sha256 is set but there is no saved plan to check: run a `plan` first",
            ));
        }
        (None, None) => {
            args.push("-auto-approve".into());
            args.extend(var_args(config));
        }
    }
    let applied = changed(copy, args)?;
    if config.plan_file.is_none() && last_plan.exists() {
        std::fs::remove_file(&last_plan).context("removing the applied plan")?;
    }
    Ok(applied)
}

/// `apply` or `destroy` with `-json`: the summary from its change summary, every output as a
/// step output (sensitive ones as `(sensitive)`), and Terraform's own diagnostic on failure.
fn changed(copy: &WorkingCopy, mut args: Vec<String>) -> Result<Outcome, Error> {
    args.insert(1, "-json".into());
    args.insert(2, "-input=false".into());
    let output = terraform(copy, &args).run()?;
    ui::failure(&output)?;
    let stream = ui::Stream::parse(&output.stdout);
    let changes = stream.change_summary.unwrap_or_default();
    let mut outcome = Outcome::summary(format!(
        "{} added, {} changed, {} destroyed",
        changes.add, changes.change, changes.destroy
    ))
    .with_output("added", changes.add)
    .with_output("changed", changes.change)
    .with_output("destroyed", changes.destroy);
    for (name, value) in stream.outputs {
        outcome = outcome.with_output(name, value);
    }
    Ok(outcome)
}

wasmops_sdk::step_plugin!(Terraform);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmops_sdk::serde_json;

    fn config(with: Value) -> Config {
        serde_json::from_value(with).unwrap()
    }

    #[test]
    fn validation_keeps_paths_inside_and_apply_options_on_apply() {
        let check = |with: Value| Terraform::validate(&config(with)).map_err(|e| e.to_string());
        assert!(check(json!({"action": "plan", "dir": "infra/prod"})).is_ok());
        assert!(
            check(json!({"action": "apply", "plan_file": "terraform/infra/wasmops.tfplan"}))
                .is_ok()
        );
        for (with, expected) in [
            (
                json!({"action": "plan", "dir": "../elsewhere"}),
                "without `..`",
            ),
            (json!({"action": "plan", "dir": "/etc"}), "relative path"),
            (
                json!({"action": "plan", "plan_sha256": "ab"}),
                "for `action: apply`",
            ),
            (
                json!({"action": "plan", "vars": {"a=b": 1}}),
                "not a variable name",
            ),
        ] {
            let error = check(with.clone()).unwrap_err();
            assert!(error.contains(expected), "{with}: {error}");
        }
        assert!(serde_json::from_value::<Config>(json!({"action": "import"})).is_err());
    }

    #[test]
    fn variables_are_strings_or_json() {
        let c = config(
            json!({"action": "plan", "vars": {"n": 3, "tags": {"a": "b"}, "s": "x"}, "var_files": ["prod.tfvars"]}),
        );
        assert_eq!(
            var_args(&c),
            [
                "-var=n=3",
                "-var=s=x",
                r#"-var=tags={"a":"b"}"#,
                "-var-file=prod.tfvars"
            ]
        );
    }
}
