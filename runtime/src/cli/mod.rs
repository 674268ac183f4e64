//! The `wasmops` command line: argument parsing and dispatch to one module per command group.

mod local;
mod scaffold;

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
        #[command(flatten)]
        local: LocalOpts,
    },
    /// Inspect runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// List, install and inspect plugins.
    Plugins {
        #[command(subcommand)]
        command: PluginsCommand,
    },
    /// Start a new plugin.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Create a plugin folder that builds to a component with one command.
    New {
        name: String,
        #[arg(long, value_parser = ["rust", "python"], default_value = "rust")]
        lang: String,
        /// Where to create the folder.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
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
    /// List the built-in plugins, installed ones and those in --plugins.
    List {
        #[command(flatten)]
        local: LocalOpts,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Check a plugin folder (plugin.toml and component) and install it into the data directory.
    Install {
        dir: PathBuf,
        #[command(flatten)]
        local: LocalOpts,
    },
    /// Show a plugin's manifest, digest, requested capabilities and the grants in force.
    Inspect {
        name: String,
        #[command(flatten)]
        local: LocalOpts,
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
                local,
            } => local::validate(&file, project.as_deref(), &local),
            Command::Runs { command } => match command {
                RunsCommand::List { local, output } => local::runs_list(&local, output),
                RunsCommand::Show { id, local, output } => local::runs_show(&id, &local, output),
                RunsCommand::Logs { id, step, local } => {
                    local::runs_logs(&id, step.as_deref(), &local)
                }
            },
            Command::Plugins { command } => match command {
                PluginsCommand::List { local, output } => local::plugins_list(&local, output),
                PluginsCommand::Install { dir, local } => local::plugins_install(&dir, &local),
                PluginsCommand::Inspect {
                    name,
                    local,
                    output,
                } => local::plugins_inspect(&name, &local, output),
            },
            Command::Plugin { command } => match command {
                PluginCommand::New { name, lang, dir } => {
                    let created = scaffold::new_plugin(&name, &lang, &dir)?;
                    println!("created {}", created.display());
                    match lang.as_str() {
                        "rust" => println!(
                            "build it:   cd {} && cargo build --release",
                            created.display()
                        ),
                        _ => println!("build it:   cd {} && ./build.sh", created.display()),
                    }
                    println!("install it: wasmops plugins install {}", created.display());
                    Ok(ExitCode::SUCCESS)
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
