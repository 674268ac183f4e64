//! `script`: runs an inline script (`run`) or a script file (`file`) with bash, python or node.
//!
//! Outputs follow the GitHub Actions convention: the script appends `key=value` lines (or
//! `key<<EOF` … `EOF` blocks) to the file named by `$WASMOPS_OUTPUT`. The summary is the `summary`
//! output when the script sets one, else the last line it printed. The program's stdout and stderr
//! already stream into the step log through the host, so this plugin never logs them again.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use wasmops_sdk::output_file::OutputFile;
use wasmops_sdk::prelude::*;

/// Lines of stderr (or stdout) quoted in a failure message.
const FAILURE_TAIL_LINES: usize = 20;
/// Longest summary taken from stdout, in characters.
const SUMMARY_MAX_CHARS: usize = 200;

/// The `with` block.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Interpreter; bash when absent.
    #[serde(default)]
    shell: Shell,
    /// Inline script.
    run: Option<String>,
    /// Script path; relative paths are relative to the source directory, else the workspace.
    file: Option<String>,
    /// Extra environment variables; numbers and booleans are stringified.
    #[serde(default)]
    env: BTreeMap<String, Value>,
    /// Arguments passed to the script (`$1`…, `sys.argv[1:]`, `process.argv`).
    #[serde(default)]
    args: Vec<Value>,
    /// Kill the script after this long (`30s`, `5m`, or seconds).
    timeout: Option<HumanDuration>,
    /// Working directory, relative to the workspace; the workspace when absent.
    cwd: Option<String>,
}

/// The interpreters this plugin may run (its `exec` grant).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Shell {
    #[default]
    Bash,
    Python,
    Node,
}

impl Shell {
    const NAMES: &str = "bash, python, node";

    fn parse(name: &str) -> Result<Self, Error> {
        match name.trim().to_ascii_lowercase().as_str() {
            "bash" => Ok(Self::Bash),
            "python" | "python3" => Ok(Self::Python),
            "node" | "nodejs" => Ok(Self::Node),
            _ => Err(Error::new(format!(
                "unknown shell `{name}`: use one of {}",
                Self::NAMES
            ))),
        }
    }

    /// The granted program that runs it.
    fn program(self) -> &'static str {
        match self {
            Self::Bash => "bash",
            Self::Python => "python3",
            Self::Node => "node",
        }
    }

    /// Interpreter arguments before the user's `args`.
    fn script_args(self, script: &Script) -> Vec<String> {
        const BASH: [&str; 4] = ["--noprofile", "--norc", "-eo", "pipefail"];
        let mut out: Vec<String> = Vec::new();
        match (self, script) {
            (Self::Bash, Script::Inline(code)) => {
                out.extend(BASH.map(String::from));
                out.extend(["-c".into(), code.clone()]);
            }
            (Self::Bash, Script::File(path)) => {
                out.extend(BASH.map(String::from));
                out.push(path.clone());
            }
            (Self::Python, Script::Inline(code)) => out.extend(["-c".into(), code.clone()]),
            (Self::Node, Script::Inline(code)) => out.extend(["-e".into(), code.clone()]),
            (Self::Python | Self::Node, Script::File(path)) => out.push(path.clone()),
        }
        out
    }

    /// Arguments after the script: how each interpreter expects positional arguments.
    fn user_args(self, script: &Script, args: Vec<String>) -> Vec<String> {
        if args.is_empty() {
            return args;
        }
        match (self, script) {
            // `bash -c CODE NAME ARGS…`: the first word after the code becomes `$0`.
            (Self::Bash, Script::Inline(_)) => std::iter::once("bash".into()).chain(args).collect(),
            // `node -e CODE --foo` would read `--foo` as a node option.
            (Self::Node, Script::Inline(_)) => std::iter::once("--".into()).chain(args).collect(),
            _ => args,
        }
    }
}

impl<'de> Deserialize<'de> for Shell {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Shell::parse(&name).map_err(|e| serde::de::Error::custom(e.message()))
    }
}

/// What to run: the code itself or a path to it.
#[derive(Debug)]
enum Script {
    Inline(String),
    File(String),
}

impl Config {
    fn check(&self) -> Result<(), Error> {
        match (&self.run, &self.file) {
            (Some(_), Some(_)) => {
                return Err(
                    "set either `run` (an inline script) or `file` (a script path), not both"
                        .into(),
                );
            }
            (None, None) => {
                return Err("set `run` (an inline script) or `file` (a script path)".into());
            }
            _ => {}
        }
        if matches!(&self.file, Some(f) if f.trim().is_empty()) {
            return Err("`file` is empty".into());
        }
        for (key, value) in &self.env {
            if key.is_empty() || key.contains(['=', '\0']) {
                return Err(format!("invalid environment variable name `{key}` in `env`").into());
            }
            if key.starts_with("WASMOPS_") {
                return Err(
                    format!("`env.{key}` is set by wasmops and cannot be overridden").into(),
                );
            }
            scalar(value).map_err(|kind| {
                Error::new(format!(
                    "`env.{key}` must be a string, number or boolean, not {kind}"
                ))
            })?;
        }
        for (i, value) in self.args.iter().enumerate() {
            scalar(value).map_err(|kind| {
                Error::new(format!(
                    "`args[{i}]` must be a string, number or boolean, not {kind}"
                ))
            })?;
        }
        Ok(())
    }
}

/// A scalar as an environment/argument string, or the JSON kind that is not allowed.
fn scalar(value: &Value) -> Result<String, &'static str> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err("null"),
        Value::Array(_) => Err("a list"),
        Value::Object(_) => Err("a map"),
    }
}

struct ScriptStep;

impl Step for ScriptStep {
    type Config = Config;

    fn describe() -> Info {
        Info::default()
            .with_schema(schema())
            .with_outputs(["exit_code"])
    }

    fn validate(config: &Config) -> Result<(), Error> {
        config.check()
    }

    fn run(ctx: &Context, config: Config) -> Result<Outcome, Error> {
        let shell = config.shell;
        let script = match (config.run, config.file) {
            (Some(code), _) => Script::Inline(code),
            (None, Some(path)) => Script::File(
                ctx.resolve_source_path(path.trim())
                    .to_string_lossy()
                    .into_owned(),
            ),
            (None, None) => {
                return Err("set `run` (an inline script) or `file` (a script path)".into());
            }
        };
        let args = config
            .args
            .iter()
            .map(|v| scalar(v).unwrap_or_default())
            .collect();

        let output_file = OutputFile::create(ctx)?;
        let mut command = Command::new(shell.program())
            .args(shell.script_args(&script))
            .args(shell.user_args(&script, args));
        if shell == Shell::Python && !config.env.contains_key("PYTHONUNBUFFERED") {
            // Python buffers a piped stdout; unbuffered, its lines reach the step log as printed.
            command = command.env("PYTHONUNBUFFERED", "1");
        }
        command = command
            .envs(
                config
                    .env
                    .iter()
                    .map(|(k, v)| (k.clone(), scalar(v).unwrap_or_default())),
            )
            .envs(ctx.standard_env())
            .envs([output_file.env()]);
        if let Some(dir) = &config.cwd {
            command = command.cwd(ctx.resolve_workspace_path(dir));
        }
        if let Some(timeout) = config.timeout {
            command = command.timeout(timeout.0);
        }

        let output = command.run()?;
        if let Some(failure) = output.failure(FAILURE_TAIL_LINES) {
            return Err(Error::new(failure));
        }

        let mut outputs = output_file.read()?;
        let summary = match outputs.remove("summary") {
            Some(Value::String(s)) if !s.trim().is_empty() => s,
            _ => summary_from_stdout(&output.stdout_str()).unwrap_or_else(|| "exit 0".into()),
        };
        outputs.insert("exit_code".into(), json!(output.exit_code.unwrap_or(0)));
        Ok(Outcome::summary(summary).with_outputs(outputs))
    }
}

wasmops_sdk::step_plugin!(ScriptStep);

/// The last non-blank line of stdout, without colour codes, trimmed and at most
/// [`SUMMARY_MAX_CHARS`] long.
fn summary_from_stdout(stdout: &str) -> Option<String> {
    let line = stdout
        .lines()
        .map(|l| strip_ansi(l).trim().to_string())
        .rfind(|l| !l.is_empty())?;
    Some(truncate(&line, SUMMARY_MAX_CHARS))
}

/// At most `max` characters, the last one `…` when cut.
fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Removes ANSI escape sequences (colours, cursor moves) that tools print even into pipes.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            // CSI: ESC [ parameters… final byte in @..~
            Some('[') => {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: ESC ] … terminated by BEL or ESC \
            Some(']') => {
                chars.next();
                while let Some(c) = chars.next() {
                    if c == '\x07' || (c == '\x1b' && chars.next_if_eq(&'\\').is_some()) {
                        break;
                    }
                }
            }
            Some(_) => {
                chars.next();
            }
            None => {}
        }
    }
    out
}

fn schema() -> Value {
    json!({
        "type": "object",
        "additionalProperties": false,
        "oneOf": [{ "required": ["run"] }, { "required": ["file"] }],
        "properties": {
            "shell": { "enum": ["bash", "python", "node"], "default": "bash" },
            "run": { "type": "string", "description": "Inline script" },
            "file": {
                "type": "string",
                "description": "Script path; relative to the workflow's directory, else the workspace"
            },
            "env": {
                "type": "object",
                "additionalProperties": { "type": ["string", "number", "boolean"] }
            },
            "args": { "type": "array", "items": { "type": ["string", "number", "boolean"] } },
            "timeout": {
                "type": ["string", "integer"],
                "description": "e.g. `30s`, `5m`, or a number of seconds"
            },
            "cwd": { "type": "string", "description": "Working directory relative to the workspace" }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: Value) -> Result<Config, Error> {
        let config: Config = wasmops_sdk::parse_config(&json.to_string())?;
        config.check()?;
        Ok(config)
    }

    #[test]
    fn shells() {
        assert_eq!(config(json!({"run": "x"})).unwrap().shell, Shell::Bash);
        assert_eq!(
            config(json!({"run": "x", "shell": "Python"}))
                .unwrap()
                .shell,
            Shell::Python
        );
        assert_eq!(
            config(json!({"run": "x", "shell": "zsh"}))
                .unwrap_err()
                .message(),
            "unknown shell `zsh`: use one of bash, python, node"
        );
    }

    #[test]
    fn run_xor_file() {
        assert!(
            config(json!({}))
                .unwrap_err()
                .message()
                .contains("set `run`")
        );
        assert!(
            config(json!({"run": "a", "file": "b"}))
                .unwrap_err()
                .message()
                .contains("not both")
        );
        assert!(config(json!({"file": "deploy.sh"})).is_ok());
    }

    #[test]
    fn env_values() {
        assert!(config(json!({"run": "x", "env": {"A": "s", "B": 2, "C": true}})).is_ok());
        assert_eq!(
            config(json!({"run": "x", "env": {"A": [1]}}))
                .unwrap_err()
                .message(),
            "`env.A` must be a string, number or boolean, not a list"
        );
        assert!(config(json!({"run": "x", "env": {"WASMOPS_OUTPUT": "x"}})).is_err());
        assert!(config(json!({"run": "x", "args": ["a", 1, null]})).is_err());
        assert!(config(json!({"run": "x", "timeout": "5m"})).is_ok());
        assert!(config(json!({"run": "x", "timeout": "soon"})).is_err());
        assert!(config(json!({"run": "x", "shel": "bash"})).is_err());
    }

    #[test]
    fn command_lines() {
        let inline = Script::Inline("echo hi".into());
        let file = Script::File("/src/x.sh".into());
        assert_eq!(
            Shell::Bash.script_args(&inline),
            ["--noprofile", "--norc", "-eo", "pipefail", "-c", "echo hi"]
        );
        assert_eq!(
            Shell::Bash.user_args(&inline, vec!["a".into()]),
            ["bash", "a"]
        );
        assert_eq!(
            Shell::Bash.script_args(&file),
            ["--noprofile", "--norc", "-eo", "pipefail", "/src/x.sh"]
        );
        assert_eq!(Shell::Bash.user_args(&file, vec!["a".into()]), ["a"]);
        assert_eq!(Shell::Python.script_args(&inline), ["-c", "echo hi"]);
        assert_eq!(Shell::Node.script_args(&inline), ["-e", "echo hi"]);
        assert_eq!(
            Shell::Node.user_args(&inline, vec!["--x".into()]),
            ["--", "--x"]
        );
        assert_eq!(Shell::Node.script_args(&file), ["/src/x.sh"]);
        assert!(Shell::Python.user_args(&inline, vec![]).is_empty());
    }

    #[test]
    fn summaries() {
        assert_eq!(
            summary_from_stdout("a\n  last line  \n\n").as_deref(),
            Some("last line")
        );
        assert_eq!(summary_from_stdout("\n \n"), None);
        assert_eq!(
            summary_from_stdout("\x1b[32mgreen\x1b[0m done\n").as_deref(),
            Some("green done")
        );
        let long = "x".repeat(300);
        let summary = summary_from_stdout(&long).unwrap();
        assert_eq!(summary.chars().count(), SUMMARY_MAX_CHARS);
        assert!(summary.ends_with('…'));
    }
}
