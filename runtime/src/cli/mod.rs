//! The `wasmops` command line: argument parsing and dispatch to one module per command group.

mod local;
mod remote;
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
    /// Start the daemon: the API, the embedded store and the plugins.
    Up {
        /// Address to listen on [default: 127.0.0.1:8480, or `listen` in the config].
        #[arg(long)]
        listen: Option<String>,
        /// Data directory [default: ./wasmops-data, or `data` in the config].
        #[arg(long, env = "WASMOPS_DATA")]
        data: Option<PathBuf>,
        #[arg(long, env = "WASMOPS_PLUGINS")]
        plugins: Option<PathBuf>,
        /// Config file (TOML): listen, data, users, secrets, plugin grants.
        #[arg(long, env = "WASMOPS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Load projects (project.yaml and workflows/*.yaml) into the daemon.
    Apply {
        path: PathBuf,
        #[command(flatten)]
        server: remote::ServerOpts,
    },
    /// Manage workflows in the daemon: list, show, validate, publish, duplicate, history,
    /// pause, resume, delete.
    Workflows {
        #[arg(value_parser = ["list", "show", "validate", "publish", "duplicate", "history", "pause", "resume", "delete"])]
        action: String,
        /// The workflow, `/projects/P/workflows/W`.
        path: Option<String>,
        /// For `duplicate`: the new workflow's code.
        new_code: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
        #[command(flatten)]
        server: remote::ServerOpts,
    },
    /// Approve a waiting approval step.
    Approve(DecisionArgs),
    /// Reject a waiting step.
    Reject(DecisionArgs),
    /// Continue a plain wait step.
    Continue(DecisionArgs),
    /// Run a workflow file embedded (no daemon), or a published workflow
    /// (`/projects/P/workflows/W`) on the daemon, and print the result.
    Run {
        /// The workflow YAML file, or a workflow path on the daemon.
        file: PathBuf,
        /// Print the run as soon as the daemon accepts it.
        #[arg(long)]
        detach: bool,
        /// Show progress as steps change state.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        server: remote::ServerOpts,
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

#[derive(clap::Args)]
struct DecisionArgs {
    run: String,
    /// The step's path (`4`) or id.
    step: String,
    #[arg(long)]
    comment: Option<String>,
    #[command(flatten)]
    server: remote::ServerOpts,
}

/// Which runs `runs list` shows, newest first.
#[derive(clap::Args, Clone, Debug)]
pub struct RunsFilter {
    /// Only runs of this workflow (`/projects/P/workflows/W`, or a workflow file's `name`).
    #[arg(long)]
    pub workflow: Option<String>,
    /// Only runs in these states, comma-separated: queued, running, waiting, succeeded,
    /// failed, cancelled.
    #[arg(long)]
    pub status: Option<String>,
    /// At most this many (1 to 1000).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub limit: u16,
    /// Every matching run, page after page, however many there are.
    #[arg(long)]
    pub all: bool,
}

#[derive(Subcommand)]
enum RunsCommand {
    /// List runs, newest first (the latest 50 unless told otherwise).
    List {
        #[command(flatten)]
        filter: RunsFilter,
        #[command(flatten)]
        local: LocalOpts,
        #[command(flatten)]
        server: remote::ServerOpts,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Show one run and its step tree.
    Show {
        id: String,
        #[command(flatten)]
        local: LocalOpts,
        #[command(flatten)]
        server: remote::ServerOpts,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Print a run's logs, or one step's (by path or id).
    Logs {
        id: String,
        step: Option<String>,
        #[command(flatten)]
        local: LocalOpts,
        #[command(flatten)]
        server: remote::ServerOpts,
    },
    /// Stop a queued, running or waiting run (daemon).
    Cancel {
        id: String,
        #[command(flatten)]
        server: remote::ServerOpts,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Run a failed or cancelled run again, keeping its completed steps (daemon).
    Retry {
        id: String,
        #[command(flatten)]
        server: remote::ServerOpts,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
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
    /// Check a plugin folder (plugin.toml and component) and install it into the data
    /// directory, or into the running daemon with --server.
    Install {
        dir: PathBuf,
        #[command(flatten)]
        local: LocalOpts,
        #[command(flatten)]
        server: remote::ServerOpts,
    },
    /// Show a plugin's manifest, digest, requested capabilities and the grants in force.
    Inspect {
        name: String,
        #[command(flatten)]
        local: LocalOpts,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// What a step plugin says about itself: its `with:` schema and the outputs it sets.
    Describe {
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
        // Colour codes only on a terminal: journald, a log file or a pipe gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
    // Commands that talk to the daemon block this thread on HTTP; that is fine here, since it is
    // the thread that drives the runtime, not one of its workers.
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up {
                listen,
                data,
                plugins,
                config,
            } => {
                crate::daemon::up(crate::daemon::UpOptions {
                    listen,
                    data,
                    plugins,
                    config,
                })
                .await?;
                Ok(ExitCode::SUCCESS)
            }
            Command::Apply { path, server } => remote::apply(&path, &server),
            Command::Workflows {
                action,
                path,
                new_code,
                output,
                server,
            } => remote::workflows(
                &action,
                path.as_deref(),
                new_code.as_deref(),
                output,
                &server,
            ),
            Command::Approve(a) => remote::decide("approve", &a.run, &a.step, a.comment, &a.server),
            Command::Reject(a) => remote::decide("reject", &a.run, &a.step, a.comment, &a.server),
            Command::Continue(a) => {
                remote::decide("continue", &a.run, &a.step, a.comment, &a.server)
            }
            Command::Run {
                file,
                detach,
                follow,
                server,
                project,
                set,
                output,
                local,
            } => {
                let target = file.to_string_lossy().into_owned();
                if target.starts_with("/projects/") && !file.exists() {
                    let overrides = local::parse_overrides(&set)?;
                    remote::run(&target, overrides, detach, follow, output, &server)
                } else {
                    local::run(&file, project.as_deref(), &set, output, &local).await
                }
            }
            Command::Validate {
                file,
                project,
                local,
            } => local::validate(&file, project.as_deref(), &local).await,
            // With --server (or WASMOPS_SERVER) runs are the daemon's; without, the local store's.
            Command::Runs { command } => match command {
                RunsCommand::List {
                    filter,
                    server,
                    output,
                    ..
                } if server.server.is_some() => remote::runs_list(&filter, output, &server),
                RunsCommand::List {
                    filter,
                    local,
                    output,
                    ..
                } => local::runs_list(&filter, &local, output).await,
                RunsCommand::Show {
                    id, server, output, ..
                } if server.server.is_some() => {
                    remote::runs("show", Some(&id), None, output, &server)
                }
                RunsCommand::Show {
                    id, local, output, ..
                } => local::runs_show(&id, &local, output).await,
                RunsCommand::Logs {
                    id, step, server, ..
                } if server.server.is_some() => {
                    remote::runs("logs", Some(&id), step.as_deref(), Output::Text, &server)
                }
                RunsCommand::Logs {
                    id, step, local, ..
                } => local::runs_logs(&id, step.as_deref(), &local).await,
                RunsCommand::Cancel { id, server, output } => {
                    remote::runs("cancel", Some(&id), None, output, &server)
                }
                RunsCommand::Retry { id, server, output } => {
                    remote::runs("retry", Some(&id), None, output, &server)
                }
            },
            Command::Plugins { command } => match command {
                PluginsCommand::List { local, output } => local::plugins_list(&local, output),
                PluginsCommand::Install { dir, server, .. } if server.server.is_some() => {
                    remote::install_plugin(&dir, &server)
                }
                PluginsCommand::Install { dir, local, .. } => local::plugins_install(&dir, &local),
                PluginsCommand::Inspect {
                    name,
                    local,
                    output,
                } => local::plugins_inspect(&name, &local, output),
                PluginsCommand::Describe {
                    name,
                    local,
                    output,
                } => local::plugins_describe(&name, &local, output).await,
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
