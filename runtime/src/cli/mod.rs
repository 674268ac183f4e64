//! The `wasmops` command line: argument parsing and dispatch to one module per command group.

mod local;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "wasmops",
    version,
    about = "Operations workflows whose every step is a sandboxed WebAssembly component"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, Default, ValueEnum, PartialEq, Eq)]
pub enum Output {
    #[default]
    Text,
    Json,
}

/// Options shared by commands that open the store and load plugins without a daemon.
#[derive(clap::Args, Clone, Debug)]
pub struct LocalOpts {
    /// Data directory (the embedded store).
    #[arg(long, env = "WASMOPS_DATA", default_value = "./wasmops-data")]
    pub data: PathBuf,
    /// Directory of extra plugins (folders with plugin.toml and a .wasm component).
    #[arg(long, env = "WASMOPS_PLUGINS")]
    pub plugins: Option<PathBuf>,
    /// Config file (TOML): secrets and plugin grants.
    #[arg(long, env = "WASMOPS_CONFIG")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workflow file to the end and print the result.
    Run {
        /// The workflow YAML file.
        file: PathBuf,
        /// A project file or directory that `change` steps resolve their targets in.
        #[arg(long)]
        project: Option<PathBuf>,
        /// Property override, `key=value` (repeatable); the value is parsed as YAML.
        #[arg(long = "set", value_name = "KEY=VALUE")]
        set: Vec<String>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        local: LocalOpts,
    },
    /// Check a workflow and print every problem as file:line:column.
    Validate {
        file: PathBuf,
        #[arg(long)]
        project: Option<PathBuf>,
        #[arg(long, env = "WASMOPS_PLUGINS")]
        plugins: Option<PathBuf>,
    },
    /// Inspect runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Inspect installed plugins.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
}

#[derive(Subcommand)]
enum RunsCommand {
    /// List runs, newest first.
    List {
        #[command(flatten)]
        local: LocalOpts,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show one run and its step tree.
    Show {
        id: String,
        #[command(flatten)]
        local: LocalOpts,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Print a run's logs, or one step's (by path or id).
    Logs {
        id: String,
        step: Option<String>,
        #[command(flatten)]
        local: LocalOpts,
    },
}

#[derive(Subcommand)]
enum PluginsCommand {
    /// List the built-in plugins and those in --plugins.
    List {
        #[arg(long, env = "WASMOPS_PLUGINS")]
        plugins: Option<PathBuf>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WASMOPS_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run {
                file,
                project,
                set,
                output,
                local,
            } => local::run(&file, project.as_deref(), &set, output, &local).await,
            Command::Validate {
                file,
                project,
                plugins,
            } => local::validate(&file, project.as_deref(), plugins.as_deref()),
            Command::Runs { command } => match command {
                RunsCommand::List { local, output } => local::runs_list(&local, output),
                RunsCommand::Show { id, local, output } => local::runs_show(&id, &local, output),
                RunsCommand::Logs { id, step, local } => {
                    local::runs_logs(&id, step.as_deref(), &local)
                }
            },
            Command::Plugins { command } => match command {
                PluginsCommand::List { plugins, output } => {
                    local::plugins_list(plugins.as_deref(), output)
                }
            },
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
