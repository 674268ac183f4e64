//! Run a program the plugin was granted (`capabilities.exec` in `plugin.toml`).
//!
//! A builder in the style of `std::process::Command`, because that is what Rust authors reach for.
//! The host confines the child (filesystem, network), streams its stdout and stderr into the step
//! log as it runs, and also returns both in full — so do not log them again, just inspect them.
//!
//! ```no_run
//! use std::time::Duration;
//! use wasmops_sdk::exec::Command;
//!
//! # fn f() -> Result<(), wasmops_sdk::Error> {
//! let out = Command::new("terraform")
//!     .args(["plan", "-out=tfplan", "-input=false"])
//!     .env("TF_IN_AUTOMATION", "1")
//!     .cwd("infra")
//!     .timeout(Duration::from_secs(600))
//!     .run()?
//!     .check()?;
//! let plan = out.stdout_str();
//! # Ok(()) }
//! ```

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use crate::Error;
use crate::duration::format_duration;

/// A program invocation, built up and then [`run`](Command::run).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    program: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    cwd: Option<String>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

impl Command {
    /// A command for `program`, a name from the plugin's grant such as `bash`.
    pub fn new(program: impl Into<String>) -> Self {
        Self {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            stdin: None,
            timeout: None,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl Into<String>) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Appends several arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets one environment variable, replacing an earlier value for the same name. The child sees
    /// only these variables besides PATH, HOME and any the operator granted.
    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        match self.env.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.env.push((key, value)),
        }
        self
    }

    /// Sets several environment variables (see [`Command::env`]).
    pub fn envs<I, K, V>(mut self, vars: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        for (key, value) in vars {
            self = self.env(key, value);
        }
        self
    }

    /// Working directory; must be inside the run workspace. The workspace itself when not set.
    pub fn cwd(mut self, dir: impl AsRef<Path>) -> Self {
        self.cwd = Some(dir.as_ref().to_string_lossy().into_owned());
        self
    }

    /// Bytes written to the child's stdin (otherwise stdin is empty).
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// Kill the child after this long. The step's own deadline applies regardless.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// The program name.
    pub fn program(&self) -> &str {
        &self.program
    }

    /// The arguments so far.
    pub fn get_args(&self) -> &[String] {
        &self.args
    }

    /// The environment so far, in the order it was set.
    pub fn get_envs(&self) -> &[(String, String)] {
        &self.env
    }

    /// Runs the program to completion. `Err` only when it could not be started (not granted, not
    /// found); a non-zero exit is an `Ok` [`Output`] — see [`Output::check`].
    #[cfg(target_arch = "wasm32")]
    pub fn run(&self) -> Result<Output, Error> {
        use crate::bindings::wasmops::plugin::exec;
        let command = exec::Command {
            program: self.program.clone(),
            args: self.args.clone(),
            env: self.env.clone(),
            cwd: self.cwd.clone(),
            stdin: self.stdin.clone(),
            timeout_ms: self
                .timeout
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX)),
        };
        let out = exec::run(&command)
            .map_err(|message| Error::new(format!("cannot run `{}`: {message}", self.program)))?;
        Ok(Output {
            program: self.program.clone(),
            timeout: self.timeout,
            exit_code: out.exit_code,
            timed_out: out.timed_out,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// Outside a wasm host there is nothing to run programs with; this always fails.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn run(&self) -> Result<Output, Error> {
        Err(Error::new(format!(
            "cannot run `{}`: exec is only available inside a wasmops host",
            self.program
        )))
    }
}

/// How a program ended and what it printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Output {
    /// The program that ran (for messages).
    pub program: String,
    /// The timeout it ran under, if one was set (for messages).
    pub timeout: Option<Duration>,
    /// The exit code; `None` when killed by a signal or the timeout.
    pub exit_code: Option<i32>,
    /// The timeout (the command's or the step's) killed it.
    pub timed_out: bool,
    /// What it printed on stdout (the first MiB; the step log has it all, up to its cap).
    pub stdout: Vec<u8>,
    /// What it printed on stderr (likewise).
    pub stderr: Vec<u8>,
}

impl Output {
    /// Exited with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0) && !self.timed_out
    }

    /// Stdout as text (invalid UTF-8 replaced).
    pub fn stdout_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stdout)
    }

    /// Stderr as text (invalid UTF-8 replaced).
    pub fn stderr_str(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.stderr)
    }

    /// The last `lines` lines of stdout, trailing blank lines dropped.
    pub fn stdout_tail(&self, lines: usize) -> String {
        tail(&self.stdout_str(), lines)
    }

    /// The last `lines` lines of stderr, trailing blank lines dropped.
    pub fn stderr_tail(&self, lines: usize) -> String {
        tail(&self.stderr_str(), lines)
    }

    /// The last `lines` lines of stderr, or of stdout when stderr has nothing: where the reason
    /// for a failure usually is.
    pub fn error_tail(&self, lines: usize) -> String {
        let stderr = self.stderr_tail(lines);
        if stderr.is_empty() {
            self.stdout_tail(lines)
        } else {
            stderr
        }
    }

    /// `None` on success, else why it failed: `exit code 2: <last lines>`, `timed out after 5m`,
    /// or `killed by a signal: <last lines>`. The tail is up to `tail_lines` lines of
    /// [`Output::error_tail`].
    pub fn failure(&self, tail_lines: usize) -> Option<String> {
        if self.success() {
            return None;
        }
        let reason = if self.timed_out {
            return Some(match self.timeout {
                Some(timeout) => format!("timed out after {}", format_duration(timeout)),
                None => "timed out".to_string(),
            });
        } else {
            match self.exit_code {
                Some(code) => format!("exit code {code}"),
                None => "killed by a signal".to_string(),
            }
        };
        let tail = self.error_tail(tail_lines);
        Some(if tail.is_empty() {
            reason
        } else {
            format!("{reason}: {tail}")
        })
    }

    /// `Ok(self)` on success, else an error like ``` `terraform` exit code 1: Error: … ```.
    pub fn check(self) -> Result<Self, Error> {
        match self.failure(20) {
            None => Ok(self),
            Some(reason) => Err(Error::new(format!("`{}` {reason}", self.program))),
        }
    }
}

/// The last `lines` lines of `text` without trailing blank lines or the final newline.
pub fn tail(text: &str, lines: usize) -> String {
    let trimmed = text.trim_end();
    if lines == 0 || trimmed.is_empty() {
        return String::new();
    }
    let start = trimmed
        .rmatch_indices('\n')
        .nth(lines - 1)
        .map_or(0, |(i, _)| i + 1);
    trimmed[start..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(exit_code: Option<i32>, timed_out: bool, stdout: &str, stderr: &str) -> Output {
        Output {
            program: "bash".into(),
            timeout: Some(Duration::from_secs(90)),
            exit_code,
            timed_out,
            stdout: stdout.into(),
            stderr: stderr.into(),
        }
    }

    #[test]
    fn tails() {
        assert_eq!(tail("a\nb\nc\n\n", 2), "b\nc");
        assert_eq!(tail("a\nb\nc", 5), "a\nb\nc");
        assert_eq!(tail("", 3), "");
        assert_eq!(tail("x\n", 0), "");
    }

    #[test]
    fn failures() {
        assert_eq!(output(Some(0), false, "", "").failure(20), None);
        assert_eq!(
            output(Some(2), false, "out\n", "e1\ne2\n")
                .failure(1)
                .unwrap(),
            "exit code 2: e2"
        );
        assert_eq!(
            output(Some(1), false, "o1\no2\n", "").failure(20).unwrap(),
            "exit code 1: o1\no2"
        );
        assert_eq!(
            output(Some(1), false, "", "").failure(20).unwrap(),
            "exit code 1"
        );
        assert_eq!(
            output(None, true, "", "x").failure(20).unwrap(),
            "timed out after 1m30s"
        );
        assert_eq!(
            output(None, false, "", "").failure(20).unwrap(),
            "killed by a signal"
        );
        assert_eq!(
            output(Some(3), false, "", "boom")
                .check()
                .unwrap_err()
                .message(),
            "`bash` exit code 3: boom"
        );
    }

    #[test]
    fn env_replaces() {
        let cmd = Command::new("bash")
            .env("A", "1")
            .env("B", "2")
            .env("A", "3");
        assert_eq!(
            cmd.get_envs(),
            &[("A".into(), "3".into()), ("B".into(), "2".into())]
        );
    }
}
