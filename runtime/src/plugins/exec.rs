//! The `exec` host import: runs a granted program in the run workspace with an explicit
//! environment, streams its output into the step log, and kills it on timeout.

use super::confine::Confinement;
use crate::steplog::StepLog;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::process::Command;

/// Captured output kept per stream; the log still sees everything up to its own cap.
const MAX_CAPTURE: usize = 1 << 20;

/// What one plugin call may run, fixed when the call starts.
#[derive(Clone, Debug)]
pub struct ExecPolicy {
    /// Granted program name → absolute path, resolved once at load.
    pub programs: BTreeMap<String, PathBuf>,
    pub workspace: PathBuf,
    /// Host variables granted to the plugin, passed on to its programs.
    pub env: Vec<(String, String)>,
    /// Landlock and network namespace for every program it starts.
    pub confinement: Confinement,
}

pub struct ExecRequest {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub cwd: Option<String>,
    pub stdin: Option<Vec<u8>>,
    pub timeout: Duration,
}

pub struct ExecOutput {
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// Finds `program` on the host PATH.
pub fn resolve_program(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return None;
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

impl ExecPolicy {
    pub async fn run(&self, req: ExecRequest, log: &StepLog) -> Result<ExecOutput, String> {
        let program = self.programs.get(&req.program).ok_or_else(|| {
            let granted: Vec<&str> = self.programs.keys().map(String::as_str).collect();
            format!(
                "exec: program `{}` is not granted (capability `exec`; granted: {})",
                req.program,
                if granted.is_empty() {
                    "none".to_string()
                } else {
                    granted.join(", ")
                }
            )
        })?;
        let cwd = self.working_dir(req.cwd.as_deref())?;
        // /tmp is outside the confinement; programs get a temporary directory in the workspace.
        let tmp = self.workspace.join(".tmp");
        std::fs::create_dir_all(&tmp)
            .map_err(|e| format!("exec: cannot create {}: {e}", tmp.display()))?;

        let mut cmd = Command::new(program);
        cmd.args(&req.args)
            .current_dir(&cwd)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.workspace)
            .env("LANG", "C.UTF-8")
            .env("TMPDIR", &tmp)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(req.env.iter().map(|(k, v)| (k, v)))
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
        if let Some(warning) = self
            .confinement
            .apply(&mut cmd)
            .map_err(|e| format!("exec: `{}` cannot run confined: {e}", req.program))?
        {
            log.push("warn", &warning);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start `{}` (confined): {e}", req.program))?;
        let pgid = child.id();
        // Dropped early (a cancelled step) kills the whole group, not just the leader.
        let _group = GroupGuard(pgid);

        if let (Some(input), Some(mut stdin)) = (req.stdin, child.stdin.take()) {
            tokio::spawn(async move {
                let _ = stdin.write_all(&input).await;
            });
        }
        let stdout = tokio::spawn(pump(child.stdout.take().unwrap(), log.clone(), "stdout"));
        let stderr = tokio::spawn(pump(child.stderr.take().unwrap(), log.clone(), "stderr"));

        let (status, timed_out) = match tokio::time::timeout(req.timeout, child.wait()).await {
            Ok(status) => (status.ok(), false),
            Err(_) => {
                kill_group(pgid);
                (child.wait().await.ok(), true)
            }
        };
        // A grandchild holding the pipes open must not keep the step alive.
        kill_group(pgid);
        let stdout = stdout.await.unwrap_or_default();
        let stderr = stderr.await.unwrap_or_default();
        Ok(ExecOutput {
            exit_code: if timed_out {
                None
            } else {
                status.and_then(|s| s.code())
            },
            timed_out,
            stdout,
            stderr,
        })
    }

    /// The workspace, or a directory inside it; never anywhere else.
    fn working_dir(&self, cwd: Option<&str>) -> Result<PathBuf, String> {
        let Some(cwd) = cwd else {
            return Ok(self.workspace.clone());
        };
        let joined = self.workspace.join(cwd);
        let resolved = joined
            .canonicalize()
            .map_err(|e| format!("exec: working directory `{cwd}`: {e}"))?;
        let root = self
            .workspace
            .canonicalize()
            .map_err(|e| format!("exec: workspace: {e}"))?;
        if resolved.starts_with(&root) {
            Ok(resolved)
        } else {
            Err(format!(
                "exec: working directory `{cwd}` is outside the run workspace (capability `files`)"
            ))
        }
    }
}

struct GroupGuard(Option<u32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        kill_group(self.0);
    }
}

fn kill_group(pgid: Option<u32>) {
    if let Some(pgid) = pgid {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is involved.
        unsafe {
            libc::kill(-(pgid as i32), libc::SIGKILL);
        }
    }
}

/// Copies a stream into the log line by line and keeps the first MAX_CAPTURE bytes.
async fn pump(stream: impl AsyncRead + Unpin, log: StepLog, name: &'static str) -> Vec<u8> {
    let mut reader = BufReader::new(stream);
    let mut captured = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                log.push(name, &String::from_utf8_lossy(&line));
                let room = MAX_CAPTURE.saturating_sub(captured.len());
                captured.extend_from_slice(&line[..line.len().min(room)]);
            }
        }
    }
    captured
}
