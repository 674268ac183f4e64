//! Python tools the tests drive (componentize-py, schemathesis), installed by the harness itself
//! when the machine lacks them: `cargo test --workspace` alone must pass on a fresh machine.
//!
//! A tool already on the machine at the pinned version is used as it is. Otherwise it is
//! installed once with `pip install --target` into a cache outside the clone
//! (`$XDG_CACHE_HOME/wasmops/pip/NAME-VERSION`, else `~/.cache/…`), under a file lock so that
//! tests running at once install it only once, and marked complete only after pip succeeded.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where a tool's script and package are: prepend `bin` to PATH and `lib` to PYTHONPATH.
#[derive(Debug, Clone)]
pub struct PipTool {
    /// `None` when the machine's own install is used.
    installed: Option<(PathBuf, PathBuf)>,
}

impl PipTool {
    /// Makes `cmd` find this tool as a script on PATH and as a Python module.
    pub fn apply(&self, cmd: &mut Command) {
        let Some((bin, lib)) = &self.installed else {
            return;
        };
        let prepend = |var: &str, dir: &Path| {
            let mut paths = vec![dir.to_path_buf()];
            if let Some(old) = std::env::var_os(var) {
                paths.extend(std::env::split_paths(&old));
            }
            std::env::join_paths(paths).unwrap()
        };
        cmd.env("PATH", prepend("PATH", bin))
            .env("PYTHONPATH", prepend("PYTHONPATH", lib));
    }
}

/// componentize-py at `version`: the machine's, or the harness's cached install.
pub fn componentize_py(version: &str) -> &'static PipTool {
    static TOOL: OnceLock<PipTool> = OnceLock::new();
    TOOL.get_or_init(|| pinned("componentize-py", version, componentize_py_version))
}

/// The schemathesis the API test runs (its command line changes between major versions).
pub const SCHEMATHESIS: &str = "4.32.5";

/// schemathesis at [`SCHEMATHESIS`]: the machine's, or the harness's cached install.
pub fn schemathesis() -> &'static PipTool {
    static TOOL: OnceLock<PipTool> = OnceLock::new();
    TOOL.get_or_init(|| {
        pinned("schemathesis", SCHEMATHESIS, |tool| {
            module_version(tool, "schemathesis")
        })
    })
}

/// `name` at `version`: the machine's own when `probe` finds that version there, else the
/// harness's install, which `probe` must then find.
fn pinned(name: &str, version: &str, probe: fn(&PipTool) -> Option<String>) -> PipTool {
    if probe(&PipTool { installed: None }).as_deref() == Some(version) {
        return PipTool { installed: None };
    }
    let tool = install(name, version);
    match probe(&tool) {
        Some(v) if v == version => tool,
        other => panic!("{name} {version} was installed by the test harness but reports {other:?}"),
    }
}

/// `MODULE.__version__` as `python3` sees it through `tool`.
fn module_version(tool: &PipTool, module: &str) -> Option<String> {
    let mut cmd = Command::new("python3");
    cmd.args([
        "-c",
        &format!("import {module}; print({module}.__version__)"),
    ]);
    tool.apply(&mut cmd);
    let out = cmd.output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `componentize-py --version` through `tool`: from the script, else the module.
fn componentize_py_version(tool: &PipTool) -> Option<String> {
    let mut script = Command::new("componentize-py");
    script.arg("--version");
    tool.apply(&mut script);
    let mut module = Command::new("python3");
    module.args([
        "-c",
        "import sys; from componentize_py import script; \
         sys.argv[0] = 'componentize-py'; sys.exit(script())",
        "--version",
    ]);
    tool.apply(&mut module);
    [script, module].into_iter().find_map(|mut cmd| {
        let out = cmd.output().ok().filter(|o| o.status.success())?;
        // `componentize-py 0.25.1`
        let text = String::from_utf8_lossy(&out.stdout);
        text.split_whitespace().last().map(str::to_string)
    })
}

/// Installs `name==version` into the cache once, under a lock; returns where it is.
fn install(name: &str, version: &str) -> PipTool {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir)
        .join("wasmops/pip");
    std::fs::create_dir_all(&cache).unwrap();
    let dir = cache.join(format!("{name}-{version}"));
    let lock = std::fs::File::create(cache.join(format!("{name}-{version}.lock"))).unwrap();
    lock.lock().unwrap();
    let complete = dir.join(".complete");
    if !complete.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!(
            "installing {name}=={version} for the tests into {}",
            dir.display()
        );
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("--target")
            .arg(&dir)
            .arg(format!("{name}=={version}"))
            .output()
            .unwrap_or_else(|e| panic!("python3 -m pip: {e}; the tests need python3 with pip"));
        assert!(
            out.status.success(),
            "pip install {name}=={version} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&complete, "").unwrap();
    }
    PipTool {
        installed: Some((dir.join("bin"), dir)),
    }
}
