//! Commands that work without a daemon: run a workflow file, validate, inspect stored runs.

use super::{LocalOpts, Output, RunsFilter};
use crate::config::Config;
use crate::engine::{Engine, EngineParts, Mode};
use crate::plugins::Registry;
use crate::project::Projects;
use crate::records::{Run, RunSpec, RunStatus, Trigger};
use crate::store::{RunQuery, RunStore, SledStore, list_all};
use crate::workflow::{Workflow, parse_workflow};
use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Map, Value};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Exit code for input the user must fix (bad YAML, unknown plugin…), as opposed to a failed run.
const EXIT_INVALID: u8 = 2;

pub async fn run(
    file: &Path,
    project: Option<&Path>,
    set: &[String],
    output: Output,
    local: &LocalOpts,
) -> Result<ExitCode> {
    let overrides = parse_overrides(set)?;
    let config = load_config(local)?;
    let projects = load_projects(project)?;
    // A secret that cannot be read is reported after the workflow's own problems: they come
    // first. Until then the sandbox holds none (nothing runs before the check).
    let secrets = config.secrets();
    let sandbox = config
        .sandbox(
            Some(local.data.join("plugin-cache")),
            secrets.clone().unwrap_or_default(),
        )
        .map_err(|e| anyhow!(e))?;
    let registry = Registry::load(sandbox, Some(&local.data), local.plugins.as_deref())
        .map_err(|e| anyhow!(e))?;
    let workflow = match load_workflow(file, &registry, &projects).await {
        Ok(wf) => wf,
        Err(code) => return Ok(code),
    };
    secrets.map_err(|e| anyhow!(e))?;
    let runs: Arc<dyn RunStore> = Arc::new(
        SledStore::open(&local.data)
            .context("is a daemon or another run using this data directory? pass --data DIR")?,
    );
    let engine = Engine::new(EngineParts {
        registry: Arc::new(registry),
        runs,
        projects,
        workspaces: local.data.join("workspaces"),
        mode: Mode::Embedded,
    });
    let label = workflow.name.clone().unwrap_or_else(|| {
        file.file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    });
    let source_dir = file
        .canonicalize()
        .ok()
        .and_then(|f| f.parent().map(Path::to_path_buf));
    let text = crate::yaml::read_source(file).map_err(|d| anyhow::anyhow!("{d}"))?;
    let run = engine
        .run_to_end(RunSpec {
            workflow_yaml: text,
            file: file.display().to_string(),
            label,
            version: None,
            source_dir,
            overrides,
            trigger: Trigger::manual(std::env::var("USER").ok()),
            from_file: true,
            projects_sha256: None,
        })
        .await?;
    print_run(&run, output)?;
    Ok(if run.status == RunStatus::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub async fn validate(file: &Path, project: Option<&Path>, local: &LocalOpts) -> Result<ExitCode> {
    let registry = local_registry(local, None)?;
    let projects = load_projects(project)?;
    match load_workflow(file, &registry, &projects).await {
        Ok(wf) => {
            let count = {
                let mut n = 0;
                wf.walk(&mut |_| n += 1);
                n
            };
            println!("{}: valid ({count} steps)", file.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(code) => Ok(code),
    }
}

/// The embedded store in the data directory, to read from and exit.
fn open_runs(local: &LocalOpts) -> Result<Arc<dyn RunStore>> {
    Ok(Arc::new(SledStore::open_for_reading(&local.data)?))
}

pub async fn runs_list(filter: &RunsFilter, local: &LocalOpts, output: Output) -> Result<ExitCode> {
    let store = open_runs(local)?;
    let query = RunQuery {
        workflow: filter.workflow.clone(),
        statuses: RunStatus::parse_list(filter.status.as_deref().unwrap_or_default())
            .map_err(|e| anyhow!("--status: {e}"))?,
        limit: usize::from(filter.limit),
        ..RunQuery::default()
    };
    let (runs, more) = if filter.all {
        (list_all(store.as_ref(), query).await?, false)
    } else {
        let page = store.list(&query).await?;
        (page.runs, page.next.is_some())
    };
    print_runs(&runs, more, output)
}

/// Run headers as a table or a JSON array; a note on stderr when there are more.
pub fn print_runs(runs: &[Run], more: bool, output: Output) -> Result<ExitCode> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(runs)?),
        Output::Text => {
            for run in runs {
                let took = run
                    .duration_ms
                    .map(crate::render::duration)
                    .unwrap_or_default();
                println!(
                    "{}  {:<10} {:<8} {}  {}",
                    run.id,
                    run.status.as_str(),
                    took,
                    run.created_at.format("%Y-%m-%d %H:%M:%S"),
                    run.workflow
                );
            }
            if more {
                eprintln!(
                    "(the newest {} shown; --limit N shows more, --all every one)",
                    runs.len()
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn runs_show(id: &str, local: &LocalOpts, output: Output) -> Result<ExitCode> {
    let store = open_runs(local)?;
    let run = store
        .run(id)
        .await?
        .ok_or_else(|| anyhow!("no run `{id}` in {}", local.data.display()))?;
    print_run(&run, output)?;
    Ok(ExitCode::SUCCESS)
}

pub async fn runs_logs(id: &str, step: Option<&str>, local: &LocalOpts) -> Result<ExitCode> {
    let store = open_runs(local)?;
    let run = store
        .run(id)
        .await?
        .ok_or_else(|| anyhow!("no run `{id}` in {}", local.data.display()))?;
    let path = match step {
        None => None,
        Some(s) => Some(
            crate::engine::find_by_path_or_id(&run.steps, s)
                .map(|step| step.path.clone())
                .ok_or_else(|| anyhow!("run `{id}` has no step with path or id `{s}`"))?,
        ),
    };
    for (path, line) in store.logs(id, path.as_deref()).await? {
        println!("[{path}] {}: {}", line.stream, line.text);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn plugins_list(local: &LocalOpts, output: Output) -> Result<ExitCode> {
    let registry = local_registry(local, None)?;
    match output {
        Output::Json => {
            let list: Vec<Value> = registry
                .all()
                .iter()
                .map(|p| plugin_json(&registry, p))
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        Output::Text => {
            for p in registry.all() {
                let kind = p.kinds_label();
                println!(
                    "{:<12} {:<8} {:<13} {:<34} sha256:{}  {}",
                    p.name(),
                    p.manifest.version,
                    kind,
                    p.manifest.world,
                    &p.digest[..12],
                    p.manifest.description
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Checks a plugin folder the way a run would use it, then copies it into `<data>/plugins/NAME`
/// (a running daemon picks it up at its next start; `--server` installs into the daemon now).
pub fn plugins_install(dir: &Path, local: &LocalOpts) -> Result<ExitCode> {
    let registry = local_registry(local, Some(local.data.join("plugin-cache")))?;
    let plugin = registry.install(dir, &local.data).map_err(|e| anyhow!(e))?;
    println!(
        "installed {} {} (sha256:{}) into {}",
        plugin.name(),
        plugin.manifest.version,
        plugin.digest,
        local.data.join("plugins").join(plugin.name()).display()
    );
    println!(
        "granted by: {}",
        plugin.grant_basis().describe(plugin.name())
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn plugins_describe(name: &str, local: &LocalOpts, output: Output) -> Result<ExitCode> {
    let registry = local_registry(local, None)?;
    let info = registry.describe(name).await?;
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&info)?),
        Output::Text => {
            println!(
                "{name}: {}",
                info["description"].as_str().unwrap_or_default()
            );
            let outputs: Vec<&str> = info["outputs"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            println!("outputs: {}", outputs.join(", "));
            println!(
                "with: {}",
                serde_json::to_string_pretty(&info["config_schema"])?
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn plugins_inspect(name: &str, local: &LocalOpts, output: Output) -> Result<ExitCode> {
    let registry = local_registry(local, None)?;
    let plugin = registry.find(name).map_err(|e| anyhow!(e))?;
    let json = plugin_json(&registry, &plugin);
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&json)?),
        Output::Text => {
            let m = &plugin.manifest;
            println!("name:         {}", m.name);
            println!("version:      {}", m.version);
            println!("kind:         {}", plugin.kinds_label());
            println!("world:        {}", m.world);
            println!("digest:       sha256:{}", plugin.digest);
            println!(
                "origin:       {}",
                json["origin"].as_str().unwrap_or_default()
            );
            println!("description:  {}", m.description);
            println!("requested:    {}", serde_json::to_string(&m.capabilities)?);
            println!("limits:       {}", serde_json::to_string(&m.limits)?);
            println!(
                "granted by:   {}",
                plugin.grant_basis().describe(plugin.name())
            );
            println!("in force:     {}", serde_json::to_string(&plugin.grants())?);
            let exec = &plugin.grants().exec;
            if !exec.programs.is_empty() {
                println!(
                    "confinement:  {}",
                    wasmops_sandbox::confinement_support().summary()
                );
                println!(
                    "programs run: {}",
                    registry.sandbox().settings().program_user.describe()
                );
            }
            if !exec.missing_programs.is_empty() {
                println!(
                    "warning:      programs not found on this host: {}",
                    exec.missing_programs.join(", ")
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn plugin_json(registry: &Registry, p: &wasmops_sandbox::Plugin) -> Value {
    let mut json = p.summary();
    json["origin"] = registry
        .origin(p.name())
        .map(|o| o.to_string())
        .unwrap_or_default()
        .into();
    json["description"] = p.manifest.description.clone().into();
    json["limits"] = serde_json::json!(p.manifest.limits);
    let support = wasmops_sandbox::confinement_support();
    json["confinement"] = serde_json::json!({
        "summary": support.summary(),
        "features": support,
    });
    json
}

/// `--config FILE`, or the defaults.
fn load_config(local: &LocalOpts) -> Result<Config> {
    match &local.config {
        Some(path) => Config::load(path).map_err(|e| anyhow!(e)),
        None => Ok(Config::default()),
    }
}

/// Built-ins, then plugins installed in the data directory, then `--plugins`; later wins. For
/// commands that run no plugin, so no secrets are read.
fn local_registry(local: &LocalOpts, cache_dir: Option<std::path::PathBuf>) -> Result<Registry> {
    let config = load_config(local)?;
    let sandbox = config
        .sandbox(cache_dir, Default::default())
        .map_err(|e| anyhow!(e))?;
    Registry::load(sandbox, Some(&local.data), local.plugins.as_deref()).map_err(|e| anyhow!(e))
}

fn print_run(run: &Run, output: Output) -> Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(run)?),
        Output::Text => print!("{}", crate::render::run_text(run)),
    }
    Ok(())
}

/// Parses and checks a workflow (its references, then its plugins' `with` blocks); on problems
/// prints them and returns the exit code to use.
async fn load_workflow(
    file: &Path,
    registry: &Registry,
    projects: &Projects,
) -> std::result::Result<Workflow, ExitCode> {
    let name = file.display().to_string();
    let text = match crate::yaml::read_source(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("1 error(s) in {name}");
            return Err(ExitCode::from(EXIT_INVALID));
        }
    };
    let workflow = parse_workflow(&name, &text).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("{} error(s) in {name}", errors.0.len());
        ExitCode::from(EXIT_INVALID)
    })?;
    let mut errors = crate::validate::check_references(&workflow, registry, projects);
    errors.extend(crate::with_blocks::check_with_blocks(&workflow, registry, projects).await);
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        eprintln!("{} error(s) in {name}", errors.len());
        return Err(ExitCode::from(EXIT_INVALID));
    }
    Ok(workflow)
}

fn load_projects(project: Option<&Path>) -> Result<Projects> {
    match project {
        None => Ok(Projects::default()),
        Some(path) => Projects::load(path).map_err(|errors| anyhow!("{errors}")),
    }
}

/// `--set key=value`; values are YAML so `--set count=3` is a number and `--set env=dev` a string.
pub fn parse_overrides(set: &[String]) -> Result<Map<String, Value>> {
    let mut map = Map::new();
    for item in set {
        let Some((key, value)) = item.split_once('=') else {
            bail!("--set `{item}`: write KEY=VALUE");
        };
        let parsed: Value =
            serde_yaml::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()));
        let parsed = if parsed.is_null() && !value.is_empty() && value != "null" {
            Value::String(value.to_string())
        } else {
            parsed
        };
        map.insert(key.trim().to_string(), parsed);
    }
    Ok(map)
}
