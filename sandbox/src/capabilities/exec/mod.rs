//! The `exec` capability: a plugin runs a granted program in the run workspace with an explicit
//! environment; its output streams into the call's log, it is killed at the deadline, and it is
//! confined like the plugin itself.
//!
//! - [`programs`]: granted names resolved to absolute paths, and the roots they need to start;
//! - [`probe`]: what this kernel can enforce;
//! - `ruleset`: the Landlock rules; `syscalls`: the seccomp filter;
//! - [`confine`]: the policy of one program run, from the grants and the call;
//! - `child`: the code between fork and exec (all of exec's `unsafe`).

mod cgroup;
mod child;
pub mod confine;
pub mod probe;
pub mod programs;
mod ruleset;
mod syscalls;
pub mod workspace;

use super::phases::{CallData, FileMode, HostCapability, Prepare, narrow};
use crate::bindings::exec::{Command as WitCommand, Host, Output as WitOutput};
use crate::call_log::CallLog;
use crate::error::{Capability, Denial, Denials, GrantError};
use confine::{Confinement, ProgramLimits};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;
use wasmtime::component::{HasSelf, Linker};

/// Captured output kept per stream; the log still sees everything up to its own cap.
const MAX_CAPTURE: usize = 1 << 20;

/// The exec capability.
pub(crate) struct Exec;

/// `exec = ["terraform"]` and `network = true` in `[capabilities]`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecRequest {
    /// Programs it may run, by name.
    pub exec: Vec<String>,
    /// Programs it runs may use the network; otherwise they get a network namespace of their
    /// own.
    pub network: bool,
}

/// The operator's `exec` list and network switch.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExecOperator {
    /// Keeps only these of the requested programs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<Vec<String>>,
    /// `false` takes away network access the plugin requested for its programs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<bool>,
}

/// The programs in force.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ExecGrant {
    /// Program name → absolute path, resolved once at load.
    pub programs: BTreeMap<String, PathBuf>,
    /// Granted programs not found on this host.
    pub missing_programs: Vec<String>,
    /// Programs it runs may use the network.
    pub network: bool,
    /// What the granted programs need to start (install prefixes, interpreters), found once at
    /// load rather than on every call.
    #[serde(skip)]
    roots: Vec<PathBuf>,
}

/// What one call may run.
pub(crate) struct ExecState {
    programs: BTreeMap<String, PathBuf>,
    /// Granted, but not found on the daemon's PATH at load.
    missing: Vec<String>,
    /// None for calls without a workspace (triggers, notifiers): nothing can run.
    workspace: Option<PathBuf>,
    /// Host variables granted to the plugin, passed on to its programs.
    env: Vec<(String, String)>,
    confinement: Confinement,
    /// The size the workspace may grow to while a program runs.
    workspace_limit: u64,
    log: CallLog,
    deadline: Instant,
    denials: Denials,
}

impl HostCapability for Exec {
    const NAME: Capability = Capability::Exec;
    const REQUEST_KEYS: &'static [&'static str] = &["exec", "network"];
    const OPERATOR_KEYS: &'static [&'static str] = &["exec", "network"];
    type Request = ExecRequest;
    type Operator = ExecOperator;
    type Grant = ExecGrant;
    type State = ExecState;

    fn link<T: CallData>(
        linker: &mut Linker<T>,
        state: fn(&mut T) -> &mut ExecState,
    ) -> wasmtime::Result<()> {
        crate::bindings::exec::add_to_linker::<T, HasSelf<ExecState>>(linker, state)
    }

    fn grant(request: &ExecRequest, operator: &ExecOperator) -> Result<ExecGrant, GrantError> {
        let mut grant = ExecGrant {
            network: request.network && operator.network.unwrap_or(true),
            ..ExecGrant::default()
        };
        for program in narrow(&request.exec, operator.exec.as_ref()) {
            match programs::resolve_program(&program) {
                Some(path) => {
                    grant.programs.insert(program, path);
                }
                None => grant.missing_programs.push(program),
            }
        }
        grant.roots = grant
            .programs
            .values()
            .flat_map(|p| programs::program_roots(p))
            .collect();
        Ok(grant)
    }

    /// Programs may touch the workspace (read-write), the call's source directories and the
    /// directories `files` grants, and what the granted programs need to start.
    fn prepare(grant: &ExecGrant, cx: &mut Prepare<'_>) -> Result<ExecState, String> {
        let mut read_write: Vec<PathBuf> = cx.env.workspace.iter().cloned().collect();
        let mut read_only: Vec<PathBuf> = cx.env.sources.clone();
        for (dir, mode) in &cx.shared.dirs {
            match mode {
                FileMode::Rw => read_write.push(dir.clone()),
                FileMode::Ro => read_only.push(dir.clone()),
            }
        }
        read_only.extend(grant.roots.iter().cloned());
        read_only.sort();
        read_only.dedup();
        Ok(ExecState {
            programs: grant.programs.clone(),
            missing: grant.missing_programs.clone(),
            workspace: cx.env.workspace.clone(),
            env: cx.shared.env.clone(),
            confinement: Confinement {
                read_write,
                read_only,
                network: grant.network,
                unconfined: cx.settings.unconfined,
                run_as: cx.settings.program_user.switch_to(child::is_root()),
                limits: ProgramLimits {
                    processes: Some(cx.limits.processes),
                    memory: Some(cx.limits.program_memory),
                    cpu_seconds: Some(cx.limits.program_cpu.as_secs().max(1)),
                    file_size: Some(cx.limits.workspace_size),
                },
            },
            workspace_limit: cx.limits.workspace_size,
            log: cx.env.log.clone(),
            deadline: cx.deadline,
            denials: cx.denials.clone(),
        })
    }
}

impl Host for ExecState {
    async fn run(&mut self, cmd: WitCommand) -> Result<WitOutput, String> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let timeout = cmd
            .timeout_ms
            .map(Duration::from_millis)
            .map_or(remaining, |t| t.min(remaining));
        match self.spawn(cmd, timeout).await {
            Ok(output) => Ok(output),
            Err(ExecError::Refused(denial)) => Err(self.denials.refuse(denial)),
            Err(ExecError::Failed(message)) => Err(message),
        }
    }
}

/// Why a program did not run.
enum ExecError {
    /// The sandbox refused it.
    Refused(Denial),
    /// It could not be started.
    Failed(String),
}

impl ExecState {
    async fn spawn(&self, req: WitCommand, timeout: Duration) -> Result<WitOutput, ExecError> {
        if self.missing.contains(&req.program) {
            return Err(ExecError::Failed(format!(
                "`{}` is granted but not installed here: it was not on the daemon's PATH when \
                 the plugin was loaded (install it, or add its directory to PATH, and restart)",
                req.program
            )));
        }
        let program = self.programs.get(&req.program).ok_or_else(|| {
            let granted: Vec<&str> = self.programs.keys().map(String::as_str).collect();
            ExecError::Refused(
                Denial::new(
                    Capability::Exec,
                    format!("program `{}` is not granted", req.program),
                )
                .hint(format!(
                    "granted: {}",
                    if granted.is_empty() {
                        "none".to_string()
                    } else {
                        granted.join(", ")
                    }
                )),
            )
        })?;
        let workspace = self.workspace.as_ref().ok_or_else(|| {
            ExecError::Failed("exec: this call has no workspace to run programs in".into())
        })?;
        let cwd = working_dir(workspace, req.cwd.as_deref())?;
        // /tmp is outside the confinement; programs get a temporary directory in the workspace.
        let tmp = workspace.join(".tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| {
            ExecError::Failed(format!("exec: cannot create {}: {e}", tmp.display()))
        })?;

        // The whole environment, last setting of a name winning, as the program will see it.
        let mut env: BTreeMap<OsString, OsString> = BTreeMap::new();
        env.insert("PATH".into(), std::env::var_os("PATH").unwrap_or_default());
        env.insert("HOME".into(), workspace.into());
        env.insert("LANG".into(), "C.UTF-8".into());
        env.insert("TMPDIR".into(), tmp.clone().into());
        for (k, v) in self.env.iter().chain(req.env.iter()) {
            env.insert(k.into(), v.into());
        }
        let target = confine::ExecTarget::new(
            program,
            req.args.iter().map(OsStr::new),
            env.iter().map(|(k, v)| (k.as_os_str(), v.as_os_str())),
        )
        .map_err(|e| ExecError::Failed(format!("exec: `{}`: {e}", req.program)))?;
        let mut cmd = Command::new(program);
        cmd.args(&req.args)
            .current_dir(&cwd)
            .env_clear()
            .envs(&env)
            .stdin(if req.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout also stops what the program started.
            .process_group(0)
            .kill_on_drop(true);
        // The run's memory and processes in all, where the kernel lets the daemon bound them
        // (rlimits stay the floor everywhere).
        let cgroup = probe::support()
            .cgroups
            .then(|| {
                confine::RunCgroup::create(
                    self.confinement.limits.memory.unwrap_or(u64::MAX),
                    self.confinement.limits.processes.unwrap_or(u64::MAX),
                )
                .ok()
            })
            .flatten();
        if let Some(warning) = self
            .confinement
            .apply(&mut cmd, target, cgroup.as_ref())
            .map_err(|e| {
                ExecError::Failed(format!("exec: `{}` cannot run confined: {e}", req.program))
            })?
        {
            self.log.push("warn", &warning);
        }
        if let Some((uid, gid)) = self.confinement.run_as {
            let root = workspace.clone();
            tokio::task::spawn_blocking(move || workspace::hand_over(&root, uid, gid))
                .await
                .map_err(|e| ExecError::Failed(format!("exec: {e}")))?
                .map_err(|e| ExecError::Failed(format!("exec: {e}")))?;
        }
        let mut child = cmd.spawn().map_err(|e| {
            ExecError::Failed(format!("cannot start `{}` (confined): {e}", req.program))
        })?;
        // Dropped early (a cancelled step) kills the whole group, not just the leader.
        let group = GroupGuard(child.id());

        if let (Some(input), Some(mut stdin)) = (req.stdin, child.stdin.take()) {
            tokio::spawn(async move {
                let _ = stdin.write_all(&input).await;
            });
        }
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(ExecError::Failed(
                "exec: the program has no output pipes".into(),
            ));
        };
        let stdout = tokio::spawn(pump(out, self.log.clone(), "stdout"));
        let stderr = tokio::spawn(pump(err, self.log.clone(), "stderr"));

        let ended = tokio::select! {
            status = child.wait() => Ended::Exited(status.ok()),
            () = tokio::time::sleep(timeout) => Ended::TimedOut,
            over = watch_size(workspace.clone(), self.workspace_limit) => Ended::WorkspaceFull(over),
        };
        // A grandchild holding the pipes open must not keep the step alive.
        group.kill();
        let status = match ended {
            Ended::Exited(status) => status,
            _ => child.wait().await.ok(),
        };
        let stdout = stdout.await.unwrap_or_default();
        let mut stderr = stderr.await.unwrap_or_default();
        if let Ended::WorkspaceFull(size) = ended {
            return Err(ExecError::Failed(format!(
                "exec: `{}` was stopped: the workspace reached {} bytes, past its limit of {} \
                 bytes ([limits] workspace_size)",
                req.program, size, self.workspace_limit
            )));
        }
        let exit_code = status.and_then(|s| s.code());
        let bound = cgroup
            .as_ref()
            .and_then(confine::RunCgroup::bound_hit)
            .or_else(|| exit_code.and_then(bound_hit));
        drop(cgroup);
        if let Some(bound) = bound {
            let line = format!("wasmops: `{}` was stopped: {bound}\n", req.program);
            self.log.push("stderr", &line);
            stderr.extend_from_slice(line.as_bytes());
        }
        let timed_out = matches!(ended, Ended::TimedOut);
        Ok(WitOutput {
            exit_code: if timed_out { None } else { exit_code },
            timed_out,
            stdout,
            stderr,
        })
    }
}

/// How waiting for a program ended.
enum Ended {
    Exited(Option<std::process::ExitStatus>),
    TimedOut,
    /// The workspace grew past its limit (its size then).
    WorkspaceFull(u64),
}

/// Which resource limit an exit code says was hit: programs run under a PID namespace's init,
/// which reports a death by signal N as 128 + N, and the kernel signals these two limits.
fn bound_hit(code: i32) -> Option<&'static str> {
    match code.checked_sub(128)? {
        libc::SIGXCPU => Some("its CPU time limit was reached ([limits] program_cpu)"),
        libc::SIGXFSZ => {
            Some("it wrote a file larger than the workspace limit ([limits] workspace_size)")
        }
        _ => None,
    }
}

/// Resolves once the workspace holds more than `limit` bytes, checking twice a second.
async fn watch_size(workspace: PathBuf, limit: u64) -> u64 {
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let root = workspace.clone();
        if let Ok(Some(size)) =
            tokio::task::spawn_blocking(move || workspace::size_beyond(&root, limit)).await
        {
            return size;
        }
    }
}

/// The workspace, or a directory inside it; never anywhere else.
fn working_dir(workspace: &std::path::Path, cwd: Option<&str>) -> Result<PathBuf, ExecError> {
    let Some(cwd) = cwd else {
        return Ok(workspace.to_path_buf());
    };
    let resolved = workspace
        .join(cwd)
        .canonicalize()
        .map_err(|e| ExecError::Failed(format!("exec: working directory `{cwd}`: {e}")))?;
    let root = workspace
        .canonicalize()
        .map_err(|e| ExecError::Failed(format!("exec: workspace: {e}")))?;
    if resolved.starts_with(&root) {
        Ok(resolved)
    } else {
        Err(ExecError::Refused(Denial::new(
            Capability::Files,
            format!("working directory `{cwd}` is outside the run workspace"),
        )))
    }
}

/// Kills a program's process group when dropped.
struct GroupGuard(Option<u32>);

impl GroupGuard {
    fn kill(&self) {
        if let Some(pgid) = self.0 {
            child::kill_process_group(pgid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A line longer than this reaches the log in pieces: output without newlines must not grow
/// the daemon's memory.
const MAX_LINE: usize = 64 << 10;

/// Copies a stream into the log line by line (lines cut at [`MAX_LINE`]) and keeps the first
/// [`MAX_CAPTURE`] bytes.
async fn pump(stream: impl AsyncRead + Unpin, log: CallLog, name: &'static str) -> Vec<u8> {
    let mut reader = BufReader::new(stream);
    let mut captured = Vec::new();
    let mut line = Vec::new();
    loop {
        let chunk = match reader.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(chunk) => chunk,
        };
        let room = MAX_LINE - line.len();
        let (take, complete) = match chunk.iter().take(room).position(|&b| b == b'\n') {
            Some(at) => (at + 1, true),
            None => (
                chunk.len().min(room),
                line.len() + chunk.len().min(room) == MAX_LINE,
            ),
        };
        line.extend_from_slice(&chunk[..take]);
        reader.consume(take);
        if complete {
            flush_line(&mut line, &mut captured, &log, name);
        }
    }
    if !line.is_empty() {
        flush_line(&mut line, &mut captured, &log, name);
    }
    captured
}

fn flush_line(line: &mut Vec<u8>, captured: &mut Vec<u8>, log: &CallLog, name: &str) {
    log.push(name, &String::from_utf8_lossy(line));
    let room = MAX_CAPTURE.saturating_sub(captured.len());
    captured.extend_from_slice(&line[..line.len().min(room)]);
    line.clear();
}
