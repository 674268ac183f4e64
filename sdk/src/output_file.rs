//! The `$WASMOPS_OUTPUT` convention: programs write step outputs to a file, one `key=value` per
//! line, or `key<<DELIM` … `DELIM` for multi-line values (the GitHub Actions `$GITHUB_OUTPUT`
//! format, which script authors already know).
//!
//! Any plugin that runs user programs can offer it: [`OutputFile::create`] before running,
//! pass [`OutputFile::env`] to the program, then [`OutputFile::read`] the outputs back.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::{Context, Error, Outputs, ResultExt};

/// The environment variable naming the outputs file.
pub const ENV_VAR: &str = "WASMOPS_OUTPUT";

/// An outputs file for one attempt of one step:
/// `<workspace>/.wasmops/outputs/<step_path>.<attempt>.env`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFile {
    path: PathBuf,
}

impl OutputFile {
    /// Creates the directory and an empty file (truncating one left by an earlier run).
    pub fn create(ctx: &Context) -> Result<Self, Error> {
        let dir = ctx.workspace.join(".wasmops").join("outputs");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{}.{}.env", ctx.step_path, ctx.attempt));
        std::fs::write(&path, b"").with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    /// The file's absolute path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `("WASMOPS_OUTPUT", path)`, ready for [`crate::exec::Command::env`].
    pub fn env(&self) -> (String, String) {
        (
            ENV_VAR.to_string(),
            self.path.to_string_lossy().into_owned(),
        )
    }

    /// Reads and parses what the program wrote. A file the program deleted reads as empty.
    pub fn read(&self) -> Result<Outputs, Error> {
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                return Err(Error::from(e).context(format!("reading {}", self.path.display())));
            }
        };
        parse(&String::from_utf8_lossy(&bytes))
    }
}

/// Parses `key=value` lines and `key<<DELIM` heredocs into string outputs. Blank lines are
/// ignored; values keep everything after the first `=` except the line ending; a later key wins.
/// A malformed line is an error naming its line number.
pub fn parse(text: &str) -> Result<Outputs, Error> {
    let mut outputs = Outputs::new();
    let mut lines = text
        .split('\n')
        .map(|line| line.strip_suffix('\r').unwrap_or(line))
        .enumerate()
        .map(|(i, line)| (i + 1, line));
    while let Some((number, line)) = lines.next() {
        if line.trim().is_empty() {
            continue;
        }
        let heredoc = line
            .find("<<")
            .filter(|&at| line.find('=').is_none_or(|eq| at < eq));
        let (key, value) = if let Some(at) = heredoc {
            let (key, delimiter) = (&line[..at], &line[at + 2..]);
            if delimiter.is_empty() {
                return Err(malformed(number, line));
            }
            let mut value: Vec<&str> = Vec::new();
            loop {
                match lines.next() {
                    Some((_, l)) if l == delimiter => break,
                    Some((_, l)) => value.push(l),
                    None => {
                        return Err(Error::new(format!(
                            "line {number} of ${ENV_VAR}: `{}` is never closed by a line `{delimiter}`",
                            shorten(line)
                        )));
                    }
                }
            }
            (key, value.join("\n"))
        } else if let Some((key, value)) = line.split_once('=') {
            (key, value.to_string())
        } else {
            return Err(malformed(number, line));
        };
        if key.is_empty() || key.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Error::new(format!(
                "line {number} of ${ENV_VAR}: invalid output name `{}`",
                shorten(key)
            )));
        }
        outputs.insert(key.to_string(), Value::String(value));
    }
    Ok(outputs)
}

fn malformed(number: usize, line: &str) -> Error {
    Error::new(format!(
        "line {number} of ${ENV_VAR}: expected `key=value` or `key<<DELIMITER`, got `{}`",
        shorten(line)
    ))
}

fn shorten(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_lines() {
        let out = parse("a=1\n\nb= two words \nc=x=y\r\nempty=\n").unwrap();
        assert_eq!(out["a"], "1");
        assert_eq!(out["b"], " two words ");
        assert_eq!(out["c"], "x=y");
        assert_eq!(out["empty"], "");
        assert_eq!(out.len(), 4);
    }

    #[test]
    fn heredoc() {
        let out = parse("notes<<EOF\nline 1\n\nline=3\nEOF\nafter=1\n").unwrap();
        assert_eq!(out["notes"], "line 1\n\nline=3");
        assert_eq!(out["after"], "1");
        let out = parse("x<<E\nE\n").unwrap();
        assert_eq!(out["x"], "");
        // `=` before `<<`: a plain value containing `<<`.
        let out = parse("cmd=a<<b\n").unwrap();
        assert_eq!(out["cmd"], "a<<b");
    }

    #[test]
    fn later_key_wins() {
        assert_eq!(parse("a=1\na=2").unwrap()["a"], "2");
    }

    #[test]
    fn malformed_lines_name_their_number() {
        let err = parse("a=1\njunk\n").unwrap_err();
        assert_eq!(
            err.message(),
            "line 2 of $WASMOPS_OUTPUT: expected `key=value` or `key<<DELIMITER`, got `junk`"
        );
        let err = parse("a=1\nb<<EOF\nx\n").unwrap_err();
        assert!(
            err.message()
                .starts_with("line 2 of $WASMOPS_OUTPUT: `b<<EOF` is never closed")
        );
        assert!(parse("=1").unwrap_err().message().contains("line 1"));
        assert!(
            parse("a b=1")
                .unwrap_err()
                .message()
                .contains("invalid output name")
        );
        assert!(parse("k<<").unwrap_err().message().contains("line 1"));
    }

    #[test]
    fn file_round_trip() {
        let dir = std::env::temp_dir().join(format!("wasmops-sdk-test-{}", std::process::id()));
        let mut ctx = Context::for_tests(&dir);
        ctx.step_path = "2.1".into();
        let file = OutputFile::create(&ctx).unwrap();
        assert!(file.path().ends_with(".wasmops/outputs/2.1.1.env"));
        std::fs::write(file.path(), "k=v\n").unwrap();
        assert_eq!(file.read().unwrap()["k"], "v");
        std::fs::remove_file(file.path()).unwrap();
        assert!(file.read().unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
